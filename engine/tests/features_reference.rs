//! The Welch band-power features against SciPy, on real EEG.
//!
//! References come from `scripts/make_feature_references.py` (numpy + scipy,
//! not run in CI) under `tests/reference/features/`: every 2 s / 250 ms
//! window of four channels of the 64-channel EEG, read by our readers as the
//! script read them, with `scipy.signal.welch` + the integration rule of
//! docs/features.md. Checked here:
//! - accuracy: every value of every record within 1e-4 relative of SciPy's;
//! - framing: records identical for 1, 7 and 40 ms frames from the file
//!   source and for the whole excerpt in one frame;
//! - gaps: no record's window contains a NaN sample.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sigfab_engine::config::{DurationSpec, FileSourceSpec, Located, Pace};
use sigfab_engine::sources::file::FileSource;
use sigfab_engine::sources::FrameSource;
use sigfab_engine::{readers, shared_data};
use sigfab_operators::features::{Band, BandPowers, BandPowersConfig};
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Operator, Output, Record};

/// Largest relative difference allowed against SciPy.
const MAX_RELATIVE_ERROR: f64 = 1e-4;

fn reference() -> Value {
    let path: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/features/band_powers.json");
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

/// The operator configured as the script computed.
fn operator(meta: &Value) -> BandPowers {
    let bands = meta["bands"]
        .as_array()
        .expect("bands")
        .iter()
        .map(|b| {
            Band::new(
                b["name"].as_str().expect("band name"),
                number(&b["hz"][0]),
                number(&b["hz"][1]),
            )
        })
        .collect();
    BandPowers::new(BandPowersConfig {
        window_s: number(&meta["window_s"]),
        hop_s: number(&meta["hop_s"]),
        segment_s: number(&meta["segment_s"]),
        bands,
        edge_range_hz: None,
        channels: Some(names(&meta["channels"])),
    })
}

/// The excerpt as one frame, read with our readers; checks it is what SciPy
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

fn run(op: &mut BandPowers, frames: impl IntoIterator<Item = Frame>) -> Vec<Record> {
    let mut out = Output::default();
    let mut records = Vec::new();
    for frame in frames {
        op.process(Item::Frame(frame), &mut out).expect("processed");
        records.extend(out.drain().map(|item| match item {
            Item::Record(r) => r,
            Item::Frame(_) => panic!("band_powers emits records only"),
        }));
    }
    records
}

fn sorted(mut records: Vec<Record>) -> Vec<Record> {
    records.sort_by(|a, b| (a.end_ns, &a.values[0].0).cmp(&(b.end_ns, &b.values[0].0)));
    records
}

#[test]
fn band_powers_equal_scipy_welch_on_real_eeg() {
    let meta = reference();
    let records = run(&mut operator(&meta), [whole_excerpt(&meta)]);
    let channels = names(&meta["channels"]);
    let value_names = names(&meta["names"]);
    let windows = meta["window_starts"].as_array().expect("starts").len();
    assert_eq!(records.len(), channels.len() * windows);
    let mut worst: f64 = 0.0;
    for (c, channel) in channels.iter().enumerate() {
        // Channel names end in dots ("Cz.."), so match on the full prefix.
        let ours: Vec<&Record> = records
            .iter()
            .filter(|r| r.values[0].0.starts_with(&format!("{channel}.")))
            .collect();
        assert_eq!(ours.len(), windows, "{channel}");
        for (w, record) in ours.iter().enumerate() {
            let start =
                meta["window_starts"][w].as_u64().expect("start") as f64 / number(&meta["sample_rate"]);
            assert_eq!(record.start_ns, (start * 1e9).round() as i64);
            assert_eq!(record.end_ns - record.start_ns, 2_000_000_000);
            for (v, name) in value_names.iter().enumerate() {
                let (ours_name, ours) = &record.values[v];
                assert_eq!(&**ours_name, format!("{channel}.{name}"));
                let theirs = number(&meta["values"][c][w][v]);
                let error = (ours - theirs).abs() / theirs.abs().max(1e-300);
                worst = worst.max(error);
                assert!(
                    error <= MAX_RELATIVE_ERROR,
                    "{channel} window {w} {name}: {ours} vs {theirs}"
                );
            }
            assert_eq!(
                record.values.last().map(|(n, v)| (n.ends_with(".latency_s"), *v)),
                Some((true, 2.0))
            );
        }
    }
    eprintln!("worst relative error against SciPy: {worst:.2e}");
}

#[test]
fn records_are_the_same_for_any_framing() {
    let meta = reference();
    let whole = run(&mut operator(&meta), [whole_excerpt(&meta)]);
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
        let framed: Vec<Record> = run(&mut operator(&meta), frames)
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
        // The file's layout orders the channels differently from the
        // excerpt's, so compare in (window, channel name) order.
        assert_eq!(framed.len(), whole.len(), "{frame_ms} ms frames: record count");
        assert!(
            sorted(framed) == sorted(whole),
            "{frame_ms} ms frames change the records"
        );
    }
}

#[test]
fn no_window_contains_a_nan() {
    let meta = reference();
    let mut frame = whole_excerpt(&meta);
    let len = frame.counts()[0] as usize;
    // Gaps in channel 1 at 3.1 s and channel 2 at 5 s and 5.5 s.
    let rate = frame.layout.channels[0].sample_rate;
    let gaps = [
        (1, (3.1 * rate) as usize),
        (2, (5.0 * rate) as usize),
        (2, (5.5 * rate) as usize),
    ];
    for &(c, i) in &gaps {
        frame.channel_mut(c)[i] = f32::NAN;
    }
    let records = run(&mut operator(&meta), [frame.clone()]);
    let names = names(&meta["channels"]);
    for record in &records {
        let c = names
            .iter()
            .position(|n| record.values[0].0.starts_with(&format!("{n}.")))
            .expect("channel");
        let first = (record.start_ns as f64 * rate / 1e9).round() as usize;
        let last = (record.end_ns as f64 * rate / 1e9).round() as usize;
        assert!(last <= len);
        assert!(
            frame.channel(c)[first..last].iter().all(|x| !x.is_nan()),
            "window spans a gap"
        );
        assert!(record.values.iter().all(|(_, v)| v.is_finite()));
    }
    let per_channel = |c: usize| {
        records
            .iter()
            .filter(|r| r.values[0].0.starts_with(&format!("{}.", names[c])))
            .count()
    };
    assert!(per_channel(1) < per_channel(0) && per_channel(2) < per_channel(1));
}
