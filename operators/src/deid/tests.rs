use std::sync::Arc;

use zeroize::Zeroizing;

use super::*;
use crate::{ChannelLayout, ChannelSpec, Modality, Values};

fn key(byte: u8, version: u32) -> PseudonymKey {
    PseudonymKey::new(Zeroizing::new(vec![byte; 32]), version).expect("32-byte key")
}

fn settings() -> DeidSettings {
    DeidSettings {
        policy: Policy::safe_harbor(),
        date_shift: DateShift::default(),
        unlisted_annotation: UnlistedAnnotation::Redact,
    }
}

/// 2021-06-15T10:30:00Z, a Tuesday.
const START_NS: i64 = 1_623_753_000_000_000_000;

fn frame(stream: &str, entries: &[(&str, &str)]) -> Frame {
    let layout = Arc::new(ChannelLayout::new(vec![ChannelSpec {
        name: "ECG".into(),
        unit: "mV".into(),
        sample_rate: 250.0,
    }]));
    let mut frame = Frame::new(
        stream.into(),
        Modality::Ecg,
        layout,
        START_NS,
        0,
        vec![2],
        vec![0.5, 0.6],
    )
    .expect("valid frame");
    let entries: Vec<(String, String)> = entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    frame.metadata = entries.into();
    frame
}

fn run(op: &mut Deidentify, frame: Frame) -> Frame {
    let mut out = Output::default();
    op.process(Item::Frame(frame), &mut out).expect("never rejects");
    let first = out.drain().next();
    match first {
        Some(Item::Frame(f)) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

const CANARIES: &[(&str, &str)] = &[
    ("patient", "MCH-0234567 F 02-MAY-1951 Canary_Janedoe"),
    ("recording", "Startdate 02-MAR-2002 PSG-1234/2002 NN Telemetry03"),
    ("name", "Canary Janedoe"),
    ("mrn", "7654321"),
    ("birth_date", "1951-05-02"),
    ("device_serial", "SN-CANARY-99"),
    ("ip", "10.1.2.3"),
    ("ward_phone_extension", "5551234"),
    ("annotation", "+3.5\t\tCanary Janedoe fell asleep"),
    ("annotation", "+4\t1\tSleep stage 2"),
    ("format", "edf+"),
];

#[test]
fn no_canary_value_survives_the_default_policy() {
    let mut op = Deidentify::new(key(9, 2), settings());
    let out = run(&mut op, frame("bed-7", CANARIES));
    let text: String = out.metadata.iter().map(|(k, v)| format!("{k}={v};")).collect();
    for needle in [
        "Canary",
        "Janedoe",
        "0234567",
        "7654321",
        "1951-05",
        "SN-CANARY",
        "10.1.2.3",
        "5551234",
    ] {
        assert!(!text.contains(needle), "{needle} leaked: {text}");
    }
    assert!(!out.stream_id.contains("bed-7"));
    assert_eq!(out.meta("format"), Some("edf+"));
    assert_eq!(out.meta("birth_date"), Some("1951"));
    let annotations: Vec<&str> = out
        .metadata
        .iter()
        .filter(|(k, _)| k == "annotation")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(annotations, ["+3.5\t\t[redacted]", "+4\t1\tSleep stage 2"]);
}

#[test]
fn patient_keys_share_one_pseudonym_and_drive_one_date_shift_across_streams() {
    let mut op = Deidentify::new(key(9, 1), settings());
    let header = run(
        &mut op,
        frame("bed-1", &[("format", "edf+"), ("patient", "MCH-0234567 F X X")]),
    );
    let monitor = run(&mut op, frame("bed-2", &[("mrn", "MCH-0234567")]));
    assert_eq!(header.meta("patient"), monitor.meta("mrn"));
    assert!(header.meta("patient").is_some_and(|p| p.starts_with("p1-")));
    assert_eq!(header.start_ns, monitor.start_ns);
    assert_ne!(header.stream_id, monitor.stream_id);
}

#[test]
fn only_edf_plus_headers_are_split_into_subfields() {
    let mut op = Deidentify::new(key(9, 1), settings());
    let wfdb = |comments: &str| frame("bed", &[("format", "wfdb"), ("patient", comments)]);
    let a = run(&mut op, wfdb("69 M 1085 1629 x1 Aldomet"));
    let b = run(&mut op, wfdb("69 F 1090 1700 x1 Digoxin"));
    assert_ne!(
        a.meta("patient"),
        b.meta("patient"),
        "two 69-year-olds are not one patient"
    );
}

#[test]
fn dates_move_by_whole_weeks_within_range_and_never_by_zero() {
    for patient in 0..300 {
        let mut op = Deidentify::new(key(3, 1), settings());
        let out = run(&mut op, frame("bed", &[("mrn", &format!("{patient:07}"))]));
        let shift = out.start_ns - START_NS;
        assert_ne!(shift, 0);
        assert_eq!(shift % (7 * NS_PER_DAY), 0, "weekday and time of day are kept");
        assert!(shift.abs() <= 364 * NS_PER_DAY);
    }
    let days = DeidSettings {
        date_shift: DateShift {
            max_days: 30,
            whole_weeks: false,
        },
        ..settings()
    };
    let shifts: HashSet<i64> = (0..200)
        .map(|p| {
            let mut op = Deidentify::new(key(3, 1), days.clone());
            run(&mut op, frame("bed", &[("mrn", &p.to_string())])).start_ns - START_NS
        })
        .collect();
    assert!(shifts
        .iter()
        .all(|s| s % NS_PER_DAY == 0 && s.abs() <= 30 * NS_PER_DAY && *s != 0));
    assert!(
        shifts.iter().any(|s| s % (7 * NS_PER_DAY) != 0),
        "whole days, not only weeks"
    );
}

#[test]
fn pseudonyms_are_stable_across_instances_and_change_with_the_key() {
    let first = run(
        &mut Deidentify::new(key(5, 1), settings()),
        frame("bed-1", &[("mrn", "1234567")]),
    );
    let again = run(
        &mut Deidentify::new(key(5, 1), settings()),
        frame("bed-1", &[("mrn", "1234567")]),
    );
    let rotated = run(
        &mut Deidentify::new(key(6, 2), settings()),
        frame("bed-1", &[("mrn", "1234567")]),
    );
    assert_eq!(first, again);
    assert_ne!(first.meta("mrn"), rotated.meta("mrn"));
    assert!(rotated.meta("mrn").is_some_and(|p| p.starts_with("p2-")));
    assert_ne!(first.stream_id, rotated.stream_id);
}

#[test]
fn records_follow_their_stream_and_the_audit_counts_without_values() {
    let mut op = Deidentify::new(key(4, 7), settings());
    let shifted = run(&mut op, frame("bed-1", CANARIES));
    run(&mut op, frame("bed-1", CANARIES));
    let record = Record {
        stream_id: "bed-1".into(),
        sequence: 1,
        kind: "frame_stats".into(),
        start_ns: START_NS,
        end_ns: START_NS + 10,
        values: Values::default(),
        labels: vec![("sex".into(), "F".into()), ("bed".into(), "12".into())],
    };
    let mut out = Output::default();
    op.process(Item::Record(record), &mut out).expect("never rejects");
    op.finish(&mut out);
    let items: Vec<Item> = out.drain().collect();
    let Item::Record(moved) = &items[0] else {
        panic!("record expected")
    };
    assert_eq!(
        (moved.start_ns, &moved.stream_id),
        (shifted.start_ns, &shifted.stream_id)
    );
    // Labels pass the same policy: sex is kept, an unlisted key is dropped.
    assert_eq!(moved.labels, vec![(Arc::from("sex"), Arc::from("F"))]);
    let Item::Record(audit) = &items[1] else {
        panic!("audit record expected")
    };
    assert_eq!(&*audit.kind, AUDIT_KIND);
    let value = |name: &str| audit.value(name);
    assert_eq!(value("key_version"), Some(7.0));
    assert_eq!(value("frames"), Some(2.0));
    assert_eq!(value("records"), Some(1.0));
    assert_eq!(value("patients"), Some(1.0));
    assert_eq!(value("fields_kept"), Some(3.0));
    assert_eq!(value("fields_pseudonymised"), Some(4.0));
    assert_eq!(value("fields_generalised"), Some(2.0));
    assert_eq!(value("fields_dropped"), Some(11.0));
    assert_eq!(value("annotations_redacted"), Some(2.0));
    assert!(audit.stream_id.ends_with(op.policy_fingerprint()));
}

#[test]
fn ages_over_89_become_90_plus_and_unknown_keys_fail_closed() {
    let mut op = Deidentify::new(key(1, 1), settings());
    let out = run(
        &mut op,
        frame("s", &[("age", "93"), ("bed_label", "Canary"), ("zip", "02139")]),
    );
    assert_eq!(out.meta("age"), Some("90+"));
    assert_eq!(out.meta("bed_label"), None);
    assert_eq!(out.meta("zip"), Some("021"));
}

#[test]
fn annotation_timing_is_only_numbers_and_text_with_tabs_is_redacted_whole() {
    let mut op = Deidentify::new(key(1, 1), settings());
    let entries = [
        ("annotation", "+1\t\tCanary\tT1"),
        ("annotation", "Canary\tx\tT1"),
        ("annotation", "+2.5\t0.5\tT1"),
    ];
    let out = run(&mut op, frame("s", &entries));
    let values: Vec<&str> = out.metadata.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["+1\t\t[redacted]", "[redacted]", "+2.5\t0.5\tT1"]);
}

#[test]
fn unlisted_annotations_can_be_dropped() {
    let drop = DeidSettings {
        unlisted_annotation: UnlistedAnnotation::Drop,
        ..settings()
    };
    let mut op = Deidentify::new(key(1, 1), drop);
    let out = run(
        &mut op,
        frame("s", &[("annotation", "+1\t\tCanary"), ("annotation", "T1")]),
    );
    let kept: Vec<&str> = out.metadata.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(kept, ["T1"]);
}

#[test]
fn debug_shows_neither_key_nor_values() {
    let op = Deidentify::new(key(0x41, 1), settings());
    let text = format!("{op:?}");
    assert!(text.contains("[redacted]") && !text.contains("AAAA"));
}
