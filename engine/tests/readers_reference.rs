//! Our readers against reference extracts written by MNE and wfdb-python
//! (scripts/make_reference_extracts.py; CI does not run Python).
//!
//! Acceptance: every extracted sample within one quantisation step, NaN where
//! the oracle has NaN, whole-signal sums within n * step, identical counts,
//! and the same annotations.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sigfab_engine::readers::{open, Annotation, RecordingReader};
use sigfab_engine::shared_data::require;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference(name: &str) -> Value {
    let path = repo_root().join("tests/reference").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads the whole recording in odd-sized chunks, collecting annotations.
fn read_all(path: &Path) -> (Box<dyn RecordingReader>, Vec<Vec<f32>>, Vec<Annotation>) {
    let mut reader = open(path).unwrap_or_else(|e| panic!("open: {e}"));
    let mut out = vec![Vec::new(); reader.header().signals.len()];
    let mut annotations = reader.take_annotations();
    let mut blocks = 0u64;
    loop {
        let n = reader
            .read_blocks(37, &mut out)
            .unwrap_or_else(|e| panic!("read: {e}"));
        annotations.extend(reader.take_annotations());
        if n == 0 {
            break;
        }
        blocks += n as u64;
    }
    assert_eq!(blocks, reader.header().total_blocks, "blocks read vs header");
    (reader, out, annotations)
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("expected a number, got {v}"))
}

/// MNE rewrites "uV" as "µV" and reports units it does not know as "n/a".
fn same_unit(ours: &str, theirs: &str) -> bool {
    ours == theirs || (ours == "uV" && theirs == "µV") || theirs == "n/a"
}

fn check_signals(reader: &dyn RecordingReader, data: &[Vec<f32>], reference: &Value) {
    let refs = reference["signals"].as_array().expect("signals");
    let header = reader.header();
    assert_eq!(header.signals.len(), refs.len(), "signal count");
    for ((info, values), r) in header.signals.iter().zip(data).zip(refs) {
        let name = r["name"].as_str().expect("name");
        assert_eq!(info.name, name);
        assert!(
            same_unit(&info.unit, r["unit"].as_str().unwrap_or("")),
            "{name}: unit {}",
            info.unit
        );
        assert!(
            (info.sample_rate - num(&r["sample_rate"])).abs() < 1e-9,
            "{name}: rate"
        );
        let step = num(&r["resolution"]);
        assert!(
            (info.resolution - step).abs() <= step * 1e-9,
            "{name}: resolution {}",
            info.resolution
        );
        check_values(name, values, r, step);
    }
}

fn check_values(name: &str, values: &[f32], r: &Value, step: f64) {
    let count = num(&r["count"]) as usize;
    assert_eq!(values.len(), count, "{name}: sample count");
    let valid: Vec<f64> = values
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| f64::from(v))
        .collect();
    assert_eq!(
        count - valid.len(),
        num(&r["nan_count"]) as usize,
        "{name}: NaN count"
    );
    let sum: f64 = valid.iter().sum();
    assert!(
        (sum - num(&r["sum"])).abs() <= valid.len() as f64 * step,
        "{name}: sum {sum} vs {}",
        r["sum"]
    );
    if let (Some(min), Some(max)) = (r["min"].as_f64(), r["max"].as_f64()) {
        let (our_min, our_max) = valid
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(
            (our_min - min).abs() <= step && (our_max - max).abs() <= step,
            "{name}: min/max"
        );
    }
    for window in r["windows"].as_array().expect("windows") {
        let start = num(&window["start"]) as usize;
        for (k, expected) in window["values"].as_array().expect("values").iter().enumerate() {
            let ours = values[start + k];
            match expected.as_f64() {
                None => assert!(
                    ours.is_nan(),
                    "{name}[{}]: {ours} where the oracle has NaN",
                    start + k
                ),
                Some(e) => assert!(
                    (f64::from(ours) - e).abs() <= step,
                    "{name}[{}]: {ours} vs {e} (step {step})",
                    start + k
                ),
            }
        }
    }
}

fn check_start(reader: &dyn RecordingReader, reference: &Value) {
    let ours = reader.header().start_ns;
    match reference["start_s"].as_f64() {
        None => assert_eq!(ours, None, "start time"),
        Some(s) => assert_eq!(ours, Some((s * 1e9).round() as i64), "start time"),
    }
}

fn check_edf_annotations(ours: &[Annotation], reference: &Value) {
    let r = &reference["annotations"];
    assert_eq!(ours.len(), num(&r["count"]) as usize, "annotation count");
    for (a, e) in ours.iter().zip(r["first"].as_array().expect("first")) {
        assert!(
            (a.onset_ns as f64 / 1e9 - num(&e["onset_s"])).abs() < 1e-6,
            "onset {}",
            a.onset_ns
        );
        let duration = a.duration_ns.unwrap_or(0) as f64 / 1e9;
        assert!((duration - num(&e["duration_s"])).abs() < 1e-6, "duration");
        assert_eq!(a.text, e["text"].as_str().expect("text"));
    }
}

fn check_edf(file: &str, name: &str) {
    let reference = reference(name);
    let (reader, data, annotations) = read_all(&require(file));
    check_signals(reader.as_ref(), &data, &reference);
    check_start(reader.as_ref(), &reference);
    check_edf_annotations(&annotations, &reference);
}

#[test]
fn edf_plus_64ch_matches_mne() {
    check_edf("edf/eegmmidb-style-64ch-128hz.edf", "eegmmidb-style-64ch-128hz");
}

#[test]
fn bdf_plus_19ch_matches_mne() {
    check_edf("edf/19ch-125hz-annotations.bdf", "19ch-125hz-annotations");
    // MNE reports the accelerometer unit as "n/a"; the header says "G".
    let reader = open(&require("edf/19ch-125hz-annotations.bdf")).expect("open");
    let acc = reader
        .header()
        .signals
        .iter()
        .find(|s| s.name == "acc1")
        .expect("acc1");
    assert_eq!(acc.unit, "G");
}

fn check_wfdb(path: &Path, name: &str) -> Vec<Annotation> {
    let reference = reference(name);
    let (reader, data, annotations) = read_all(path);
    check_signals(reader.as_ref(), &data, &reference);
    check_start(reader.as_ref(), &reference);
    annotations
}

#[test]
fn wfdb_100_matches_wfdb_python() {
    // The record path without extension, as users pass it.
    let annotations = check_wfdb(&require("wfdb/100.hea").with_extension(""), "100");
    let r = &reference("100")["annotations"];
    assert_eq!(annotations.len(), num(&r["count"]) as usize);
    for (code, count) in r["codes"].as_object().expect("codes") {
        let ours = annotations
            .iter()
            .filter(|a| a.code.as_deref() == Some(code))
            .count();
        assert_eq!(ours, num(count) as usize, "code {code}");
    }
    let beats = annotations
        .iter()
        .filter(|a| a.code.as_deref() != Some("+"))
        .count();
    assert_eq!(beats, 2273, "MIT-BIH 100 has 2273 beat annotations");
    for (a, e) in annotations.iter().zip(r["first"].as_array().expect("first")) {
        assert!((a.onset_ns as f64 / 1e9 - num(&e["onset_s"])).abs() < 1e-6);
        assert_eq!(a.code.as_deref(), e["code"].as_str());
        assert_eq!(a.text, e["text"].as_str().expect("text"));
        assert_eq!(a.channel, Some(num(&e["channel"]) as usize));
    }
    let last = annotations.last().expect("annotations");
    assert!((last.onset_ns as f64 / 1e9 - num(&r["last"]["onset_s"])).abs() < 1e-6);
}

#[test]
fn wfdb_mimic_multifrequency_skew_matches_wfdb_python() {
    let annotations = check_wfdb(&require("wfdb/03700181.hea"), "03700181");
    assert!(annotations.is_empty());
}

#[test]
fn wfdb_multisegment_fixture_matches_wfdb_python_m2s() {
    let path = repo_root().join("tests/data/multiseg/multi");
    check_wfdb(&path, "multiseg");
}

#[test]
fn wfdb_signal_formats_match_wfdb_python() {
    let reference = reference("formats");
    for (format, r) in reference.as_object().expect("formats") {
        let path = repo_root().join(format!("tests/data/formats/fmt_{format}.hea"));
        let (reader, data, _) = read_all(&path);
        check_signals(reader.as_ref(), &data, r);
    }
}
