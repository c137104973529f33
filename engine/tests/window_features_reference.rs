//! The time-domain, signal-quality and audio feature operators against
//! numpy implementations of their definitions (docs/features.md).
//!
//! References come from `scripts/make_feature_references.py` under
//! `tests/reference/features/`: every 2 s / 250 ms window of four channels
//! of the real 64-channel EEG (read by our readers as the script read
//! them) for `time_features.json` and `signal_quality.json`, and a
//! synthetic 16 kHz signal (formula below, repeated in the script) for
//! `audio_features.json`. Checked here:
//! - accuracy: time features and quality within 1e-6 relative of numpy,
//!   audio features within 1e-5 relative (absolute for |value| < 1);
//! - framing: records identical for 1, 7 and 40 ms frames from the file
//!   source and for the whole excerpt in one frame.

mod features_common;

use std::sync::Arc;

use features_common::{assert_framing_invariant, names, number, reference, run, whole_excerpt};
use serde_json::Value;
use sigfab_operators::features::{
    AudioConfig, AudioFeatures, QualityConfig, SignalQuality, TimeFeatures, TimeFeaturesConfig, WindowConfig,
};
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Modality, Operator, Record};

fn windows(meta: &Value) -> WindowConfig {
    WindowConfig {
        channels: Some(names(&meta["channels"])),
        ..WindowConfig::new(number(&meta["window_s"]), number(&meta["hop_s"]))
    }
}

fn time_operator(meta: &Value) -> Box<dyn Operator> {
    Box::new(TimeFeatures::new(
        windows(meta),
        TimeFeaturesConfig {
            suppression_threshold: number(&meta["suppression_threshold"]),
            suppression_min_s: number(&meta["suppression_min_s"]),
        },
    ))
}

fn quality_operator(meta: &Value) -> Box<dyn Operator> {
    let q = &meta["quality"];
    let config = QualityConfig {
        flat_min_s: number(&q["flat_min_s"]),
        mains_hz: number(&q["mains_hz"]),
        segment_s: number(&q["segment_s"]),
        ..QualityConfig::default()
    };
    // The script's range and thresholds are the documented defaults.
    assert_eq!(
        config.max_flat_fraction,
        number(&q["max"][0]),
        "script thresholds differ from the defaults"
    );
    assert_eq!(config.max_line_noise_ratio, number(&q["max"][3]));
    Box::new(SignalQuality::new(windows(meta), config))
}

/// Every value of every record against the reference; returns the worst
/// relative error. `floor`: errors are relative to max(|reference|, floor).
fn compare(meta: &Value, records: &[Record], channels: &[String], tolerance: f64, floor: f64) -> f64 {
    let value_names = names(&meta["names"]);
    let starts = meta["window_starts"].as_array().expect("starts");
    assert_eq!(records.len(), channels.len() * starts.len());
    let rate = number(&meta["sample_rate"]);
    let mut worst: f64 = 0.0;
    for (c, channel) in channels.iter().enumerate() {
        let ours: Vec<&Record> = records
            .iter()
            .filter(|r| r.values.name(0).starts_with(&format!("{channel}.")))
            .collect();
        assert_eq!(ours.len(), starts.len(), "{channel}");
        for (w, record) in ours.iter().enumerate() {
            let start = starts[w].as_u64().expect("start") as f64 / rate;
            assert_eq!(record.start_ns, (start * 1e9).round() as i64);
            assert_eq!(record.values.len(), value_names.len() + 1);
            for (v, name) in value_names.iter().enumerate() {
                let (ours_name, ours) = record.values.get(v).expect("value");
                assert_eq!(&**ours_name, format!("{channel}.{name}"));
                let theirs = number(&meta["values"][c][w][v]);
                let error = (ours - theirs).abs() / theirs.abs().max(floor);
                worst = worst.max(error);
                assert!(
                    error <= tolerance,
                    "{channel} window {w} {name}: {ours} vs {theirs}"
                );
            }
            let (name, latency) = record.values.get(value_names.len()).expect("latency");
            assert!(name.ends_with(".latency_s"));
            assert_eq!(latency, number(&meta["window_s"]));
        }
    }
    worst
}

#[test]
fn time_features_equal_numpy_on_real_eeg() {
    let meta = reference("time_features.json");
    let records = run(&mut *time_operator(&meta), [whole_excerpt(&meta)]);
    let worst = compare(&meta, &records, &names(&meta["channels"]), 1e-6, 1e-300);
    // The reference exercises burst suppression: some windows are partly suppressed.
    let bsr = records.iter().filter(|r| r.values.number(6) > 0.0).count();
    assert!(bsr > 0, "no window with suppression");
    eprintln!(
        "time features: worst relative error against numpy {worst:.2e}; {bsr} windows with suppression"
    );
}

#[test]
fn signal_quality_equals_numpy_on_real_eeg() {
    let meta = reference("signal_quality.json");
    let records = run(&mut *quality_operator(&meta), [whole_excerpt(&meta)]);
    let worst = compare(&meta, &records, &names(&meta["channels"]), 1e-6, 1e-300);
    eprintln!("signal quality: worst relative error against numpy {worst:.2e}");
}

/// Records of the 64-channel file cut into 1, 7 and 40 ms frames equal the
/// records of the whole excerpt in one frame.
#[test]
fn time_features_are_the_same_for_any_framing() {
    assert_framing_invariant(&reference("time_features.json"), time_operator);
}

#[test]
fn signal_quality_is_the_same_for_any_framing() {
    assert_framing_invariant(&reference("signal_quality.json"), quality_operator);
}

/// The script's synthetic audio: 440 Hz tone, 200 Hz → 6 kHz chirp, LCG
/// noise; same f64 operations in the same order, then f32.
fn audio_signal(n: usize, rate: f64) -> Vec<f32> {
    let mut state: u64 = 12345;
    (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            let t = i as f64 / rate;
            let tone = 0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin();
            let chirp = 0.2 * (2.0 * std::f64::consts::PI * (200.0 * t + 5800.0 * t * t)).sin();
            (tone + chirp + 0.05 * noise) as f32
        })
        .collect()
}

#[test]
fn audio_features_equal_numpy_on_a_synthetic_signal() {
    let meta = reference("audio_features.json");
    let rate = number(&meta["sample_rate"]);
    let n = meta["samples"].as_u64().expect("samples") as usize;
    let x = audio_signal(n, rate);
    let sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
    assert!(
        (sum - number(&meta["sum"])).abs() < 1e-9,
        "signal differs from the script's"
    );
    let window = meta["window"].as_u64().expect("window") as f64 / rate;
    let hop = meta["hop"].as_u64().expect("hop") as f64 / rate;
    let config = AudioConfig {
        mel_bands: meta["mel_bands"].as_u64().expect("bands") as usize,
        n_fft: Some(meta["n_fft"].as_u64().expect("n_fft") as usize),
        ..AudioConfig::default()
    };
    let layout = Arc::new(ChannelLayout::new(vec![ChannelSpec {
        name: "A".into(),
        unit: String::new(),
        sample_rate: rate,
    }]));
    let frame = Frame::new("ref".into(), Modality::Audio, layout, 0, 0, vec![n as u32], x).expect("frame");
    let mut op = AudioFeatures::new(WindowConfig::new(window, hop), config);
    let records = run(&mut op, [frame]);
    let worst = compare(&meta, &records, &["A".to_string()], 1e-5, 1.0);
    eprintln!("audio features: worst relative error against numpy {worst:.2e}");
}
