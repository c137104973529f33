//! What the windowed-feature reference tests share: the committed
//! reference files, the real excerpt they were computed on, running an
//! operator, and the framing-invariance check.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sigfab_engine::config::{DurationSpec, FileSourceSpec, Located, Pace};
use sigfab_engine::sources::file::FileSource;
use sigfab_engine::sources::FrameSource;
use sigfab_engine::{readers, shared_data};
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Operator, Output, Record};

/// `tests/reference/features/NAME`, parsed.
pub fn reference(name: &str) -> Value {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/reference/features")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

pub fn number(value: &Value) -> f64 {
    value.as_f64().expect("a number")
}

pub fn names(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().expect("a name").to_string())
        .collect()
}

/// The excerpt as one frame, read with our readers; checks it is what the
/// reference script was fed.
pub fn whole_excerpt(meta: &Value) -> Frame {
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

/// Every record the operator emits for `frames`.
pub fn run(op: &mut dyn Operator, frames: impl IntoIterator<Item = Frame>) -> Vec<Record> {
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

/// The operator gives the same records (times relative to the stream
/// start, sequence numbers aside) for file frames of 1, 7 and 40 ms as for
/// the whole excerpt in one frame. The file's layout orders the channels
/// differently from the excerpt's, so records compare in (window, first
/// value name) order.
pub fn assert_framing_invariant(meta: &Value, make: fn(&Value) -> Box<dyn Operator>) {
    let sorted = |mut records: Vec<Record>| {
        records.sort_by(|a, b| (a.end_ns, &a.values.name(0)).cmp(&(b.end_ns, &b.values.name(0))));
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
