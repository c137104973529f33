use std::sync::Arc;

use super::*;
use crate::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Operator, Output, Record};

const HOUR: i64 = 3_600_000_000_000;

fn rec(stream: &str, t_s: i64, labels: &[(&str, &str)]) -> Item {
    Item::Record(Record {
        stream_id: stream.into(),
        sequence: 0,
        kind: "frame_stats".into(),
        start_ns: t_s * 1_000_000_000,
        end_ns: t_s * 1_000_000_000 + 1,
        values: vec![("x".into(), 1.0)].into(),
        labels: labels
            .iter()
            .map(|&(k, v)| (Arc::from(k), Arc::from(v)))
            .collect(),
    })
}

fn gate(k: usize, action: KAction, max_records: usize) -> (KAnonymity, Arc<PrivacyCounters>) {
    let counters = Arc::new(PrivacyCounters::default());
    let config = KAnonymityConfig {
        k,
        quasi_identifiers: vec!["age_band".into(), "sex".into(), "unit".into()],
        window_ns: HOUR,
        action,
        max_records,
    };
    (KAnonymity::new(config, counters.clone()), counters)
}

fn run(op: &mut impl Operator, items: Vec<Item>) -> Vec<Record> {
    let mut out = Output::default();
    for item in items {
        op.process(item, &mut out).expect("accepted");
    }
    op.finish(&mut out);
    out.drain()
        .map(|i| match i {
            Item::Record(r) => r,
            Item::Frame(_) => panic!("record expected"),
        })
        .collect()
}

fn qi(r: &Record) -> (String, String, String) {
    let get = |k: &str| r.label(k).unwrap_or("?").to_string();
    (get("age_band"), get("sex"), get("unit"))
}

#[test]
fn classes_smaller_than_k_are_suppressed_per_window() {
    let (mut op, counters) = gate(3, KAction::Suppress, 1000);
    let a = [("age_band", "60-69"), ("sex", "F"), ("unit", "ICU-A")];
    let b = [("age_band", "70-79"), ("sex", "M"), ("unit", "ICU-A")];
    let mut items = vec![
        rec("s1", 0, &a),
        rec("s2", 10, &a),
        rec("s3", 20, &b),
        rec("s4", 30, &a),
        rec("s5", 40, &b),
    ];
    // Next hour: the two b records of hour 0 do not count here.
    items.push(rec("s6", 3600, &b));
    let out = run(&mut op, items);
    assert_eq!(out.len(), 3);
    assert!(out
        .iter()
        .all(|r| qi(r) == ("60-69".into(), "F".into(), "ICU-A".into())));
    assert_eq!(
        out.iter().map(|r| &*r.stream_id).collect::<Vec<_>>(),
        ["s1", "s2", "s4"],
        "released in arrival order"
    );
    assert_eq!(PrivacyCounters::get(&counters.suppressed), 3);
    assert_eq!(PrivacyCounters::get(&counters.generalised), 0);
}

#[test]
fn generalisation_coarsens_the_most_varied_column_then_suppresses() {
    let (mut op, counters) = gate(2, KAction::Generalise, 1000);
    let items = vec![
        rec("s1", 0, &[("age_band", "60-64"), ("sex", "F"), ("unit", "A")]),
        rec("s2", 1, &[("age_band", "65-69"), ("sex", "F"), ("unit", "A")]),
        rec("s3", 2, &[("age_band", "70-74"), ("sex", "F"), ("unit", "A")]),
        rec("s4", 3, &[("age_band", "75-79"), ("sex", "F"), ("unit", "A")]),
        rec("s5", 4, &[("age_band", "30-34"), ("sex", "M"), ("unit", "B")]),
    ];
    let out = run(&mut op, items);
    // Ages vary most (5 values): one step makes 60-79 ×4 and 20-39 ×1;
    // one record left in a small class (≤ k) is suppressed.
    assert_eq!(out.len(), 4);
    assert!(out
        .iter()
        .all(|r| qi(r) == ("60-79".into(), "F".into(), "A".into())));
    assert_eq!(PrivacyCounters::get(&counters.generalised), 4);
    assert_eq!(PrivacyCounters::get(&counters.suppressed), 1);
}

#[test]
fn generalisation_goes_up_to_star_and_missing_labels_count_as_star() {
    let (mut op, counters) = gate(3, KAction::Generalise, 1000);
    let items = vec![
        rec("s1", 0, &[("age_band", "20-24"), ("sex", "F"), ("unit", "A")]),
        rec("s2", 1, &[("age_band", "50-54"), ("sex", "M"), ("unit", "B")]),
        rec("s3", 2, &[("age_band", "90+"), ("sex", "F"), ("unit", "C")]),
        rec("s4", 3, &[("sex", "M"), ("unit", "D")]),
        rec("s5", 4, &[("age_band", "30-34"), ("sex", "X"), ("unit", "E")]),
    ];
    let out = run(&mut op, items);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|r| qi(r) == ("*".into(), "*".into(), "*".into())));
    assert_eq!(PrivacyCounters::get(&counters.suppressed), 0);
    assert_eq!(generalise_once("age_band", "60-69"), "60-79");
    assert_eq!(generalise_once("age_band", "60-79"), "*");
    assert_eq!(generalise_once("age_band", "90+"), "*");
    assert_eq!(generalise_once("sex", "F"), "*");
}

#[test]
fn a_full_window_closes_early_and_late_records_are_suppressed() {
    let (mut op, counters) = gate(2, KAction::Suppress, 3);
    let a = [("age_band", "60-69"), ("sex", "F"), ("unit", "A")];
    let out = run(
        &mut op,
        vec![
            rec("s1", 0, &a),
            rec("s2", 1, &a),
            rec("s3", 2, &a), // third record: the batch is decided now
            rec("s4", 3, &a), // alone in the next batch: suppressed
            rec("s5", 7200, &a),
            rec("s6", 5, &a), // late for hour 0
        ],
    );
    assert_eq!(out.len(), 3);
    assert_eq!(PrivacyCounters::get(&counters.suppressed), 3);
}

#[test]
fn frames_are_refused_by_the_gate() {
    let (mut op, _) = gate(2, KAction::Suppress, 10);
    let mut out = Output::default();
    assert!(op.process(Item::Frame(frame("s", &[])), &mut out).is_err());
}

fn frame(stream: &str, meta: &[(&str, &str)]) -> Frame {
    let layout = Arc::new(ChannelLayout::new(vec![ChannelSpec {
        name: "II".into(),
        unit: "mV".into(),
        sample_rate: 1.0,
    }]));
    let mut f = Frame::new(stream.into(), Modality::Ecg, layout, 0, 0, vec![1], vec![0.0]).expect("valid");
    for (k, v) in meta {
        f.metadata.push(*k, *v);
    }
    f
}

#[test]
fn attach_labels_copies_listed_keys_and_holds_records_until_a_frame_arrives() {
    let mut op = AttachLabels::new(vec!["sex".into(), "unit".into()], 2);
    let out = run(
        &mut op,
        vec![
            rec("s1", 0, &[]), // held until s1's frame
            Item::Frame(frame("s1", &[("sex", "F"), ("mrn", "123"), ("unit", "A")])),
            rec("s1", 1, &[]),
            rec("s2", 0, &[]),
            rec("s2", 1, &[]),
            rec("s2", 2, &[]), // over max_held: leaves unlabelled
        ],
    );
    let labels: Vec<Vec<(String, String)>> = out
        .iter()
        .map(|r| {
            r.labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect();
    let fu = vec![
        ("sex".to_string(), "F".to_string()),
        ("unit".to_string(), "A".to_string()),
    ];
    assert_eq!(labels, vec![fu.clone(), fu, vec![], vec![], vec![]]);
    assert_eq!(
        out.iter()
            .map(|r| (&*r.stream_id, r.start_ns / 1_000_000_000))
            .collect::<Vec<_>>(),
        [("s1", 0), ("s1", 1), ("s2", 2), ("s2", 0), ("s2", 1)]
    );
}
