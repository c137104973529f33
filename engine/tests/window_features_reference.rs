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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sigfab_engine::config::{DurationSpec, FileSourceSpec, Located, Pace};
use sigfab_engine::sources::file::FileSource;
use sigfab_engine::sources::FrameSource;
use sigfab_engine::{readers, shared_data};
use sigfab_operators::features::{
    AudioConfig, AudioFeatures, QualityConfig, SignalQuality, TimeFeatures, TimeFeaturesConfig, WindowConfig,
};
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Operator, Output, Record};

fn reference(name: &str) -> Value {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/reference/features")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

fn number(value: &Value) -> f64 {
    value.as_f64().expect("a number")
}

fn names(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().expect("a name").to_string())
        .collect()
}

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

/// The excerpt as one frame, read with our readers; checks it is what numpy
/// was fed.
fn whole_excerpt(meta: &Value) -> Frame {
    let path = shared_data::require(meta["recording"].as_str().expect("recording"));
    let mut reader = readers::open(&path).expect("open recording");
    let header = reader.header().clone();
    let mut all = vec![Vec::new(); header.signals.len()];
    while reader.read_blocks(256, &mut all).expect("read") > 0 {}
    let len = meta["samples_per_channel"].as_u64().expect("length") as usize;
    let mut specs = Vec::new();
    let mut samples = Vec::new();
    for (name, first) in names(&meta["channels"])
        .iter()
        .zip(meta["first_samples"].as_array().expect("first"))
    {
        let index = header
            .signals
            .iter()
            .position(|s| &s.name == name)
            .expect("channel");
        let signal = &header.signals[index];
        specs.push(ChannelSpec {
            name: signal.name.clone(),
            unit: signal.unit.clone(),
            sample_rate: signal.sample_rate,
        });
        let expected: Vec<f32> = first
            .as_array()
            .expect("first")
            .iter()
            .map(|x| number(x) as f32)
            .collect();
        assert_eq!(
            all[index][..expected.len()],
            expected[..],
            "input differs from the script's"
        );
        samples.extend_from_slice(&all[index][..len]);
    }
    let sum: f64 = samples.iter().map(|&x| f64::from(x)).sum();
    let expected_sum = number(&meta["sum"]);
    assert!((sum - expected_sum).abs() <= 1e-9 * expected_sum.abs().max(1.0));
    let counts = vec![len as u32; specs.len()];
    let layout = Arc::new(ChannelLayout::new(specs));
    Frame::new("ref".into(), Modality::Eeg, layout, 0, 0, counts, samples).expect("frame")
}

fn run(op: &mut dyn Operator, frames: impl IntoIterator<Item = Frame>) -> Vec<Record> {
    let mut out = Output::default();
    let mut records = Vec::new();
    for frame in frames {
        op.process(Item::Frame(frame), &mut out).expect("processed");
        records.extend(out.drain().map(|item| match item {
            Item::Record(r) => r,
            Item::Frame(_) => panic!("windowed operators emit records only"),
        }));
    }
    records
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
            .filter(|r| r.values[0].0.starts_with(&format!("{channel}.")))
            .collect();
        assert_eq!(ours.len(), starts.len(), "{channel}");
        for (w, record) in ours.iter().enumerate() {
            let start = starts[w].as_u64().expect("start") as f64 / rate;
            assert_eq!(record.start_ns, (start * 1e9).round() as i64);
            assert_eq!(record.values.len(), value_names.len() + 1);
            for (v, name) in value_names.iter().enumerate() {
                let (ours_name, ours) = &record.values[v];
                assert_eq!(&**ours_name, format!("{channel}.{name}"));
                let theirs = number(&meta["values"][c][w][v]);
                let error = (ours - theirs).abs() / theirs.abs().max(floor);
                worst = worst.max(error);
                assert!(
                    error <= tolerance,
                    "{channel} window {w} {name}: {ours} vs {theirs}"
                );
            }
            let (name, latency) = &record.values[value_names.len()];
            assert!(name.ends_with(".latency_s"));
            assert_eq!(*latency, number(&meta["window_s"]));
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
    let bsr = records.iter().filter(|r| r.values[6].1 > 0.0).count();
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
fn framing_invariance(meta: &Value, make: fn(&Value) -> Box<dyn Operator>) {
    let sorted = |mut records: Vec<Record>| {
        records.sort_by(|a, b| (a.end_ns, &a.values[0].0).cmp(&(b.end_ns, &b.values[0].0)));
        records
    };
    let whole = run(&mut *make(meta), [whole_excerpt(meta)]);
    let path = shared_data::require(meta["recording"].as_str().expect("recording"));
    let end_ns = whole.last().map(|r| r.end_ns).unwrap_or_default();
    for frame_ms in [1, 7, 40] {
        let spec = FileSourceSpec {
            path: Located::new(path.to_string_lossy().into_owned(), Default::default()),
            frame: Located::new(DurationSpec(Duration::from_millis(frame_ms)), Default::default()),
            pace: Pace::Fast,
            stream_id: Some("ref".into()),
            modality: None,
            metadata: Default::default(),
        };
        let mut source = FileSource::open(&path, &spec).expect("file source");
        let mut frames = Vec::new();
        while let Some(frame) = source.next_frame().expect("frame") {
            if frame.start_ns - frames.first().map_or(frame.start_ns, |f: &Frame| f.start_ns) > end_ns {
                break;
            }
            frames.push(frame);
        }
        let origin = frames.first().map_or(0, |f| f.start_ns);
        let framed: Vec<Record> = run(&mut *make(meta), frames)
            .into_iter()
            .filter(|r| r.end_ns - origin <= end_ns)
            .map(|r| Record {
                sequence: 0,
                start_ns: r.start_ns - origin,
                end_ns: r.end_ns - origin,
                ..r
            })
            .collect();
        let whole: Vec<Record> = whole
            .iter()
            .cloned()
            .map(|r| Record { sequence: 0, ..r })
            .collect();
        assert_eq!(framed.len(), whole.len(), "{frame_ms} ms frames: record count");
        assert!(
            sorted(framed) == sorted(whole),
            "{frame_ms} ms frames change the records"
        );
    }
}

#[test]
fn time_features_are_the_same_for_any_framing() {
    framing_invariance(&reference("time_features.json"), time_operator);
}

#[test]
fn signal_quality_is_the_same_for_any_framing() {
    framing_invariance(&reference("signal_quality.json"), quality_operator);
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
