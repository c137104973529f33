//! The file source replays real recordings without losing, duplicating or
//! moving a sample, however the stream is cut into frames.

use std::path::Path;
use std::time::Duration;

use sigfab_engine::config::{DurationSpec, FileSourceSpec, Located, Pace};
use sigfab_engine::readers;
use sigfab_engine::shared_data;
use sigfab_engine::sources::file::FileSource;
use sigfab_engine::sources::FrameSource;

const RECORDINGS: [&str; 4] = [
    "edf/eegmmidb-style-64ch-128hz.edf",
    "edf/19ch-125hz-annotations.bdf",
    "wfdb/100",
    "wfdb/03700181",
];

fn spec(path: &Path, frame: Duration) -> FileSourceSpec {
    FileSourceSpec {
        path: Located::new(path.to_string_lossy().into_owned(), Default::default()),
        frame: Located::new(DurationSpec(frame), Default::default()),
        pace: Pace::Fast,
        stream_id: Some("bed-1".into()),
        modality: None,
        metadata: Default::default(),
    }
}

/// Every channel's samples, straight from the reader.
fn read_whole(path: &Path) -> Vec<Vec<f32>> {
    let mut reader = readers::open(path).expect("open");
    readers::read_to_end(reader.as_mut()).expect("read")
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn framing_never_changes_the_samples() {
    for recording in RECORDINGS {
        let path = shared_data::require(recording);
        let whole = read_whole(&path);
        for frame_ms in [3u64, 7, 40, 1000, 10_000_000] {
            let mut source =
                FileSource::open(&path, &spec(&path, Duration::from_millis(frame_ms))).expect("open");
            let mut joined = vec![Vec::new(); whole.len()];
            let mut sequence = 0;
            let mut start_ns = None;
            while let Some(frame) = source.next_frame().expect("frame") {
                assert_eq!(frame.sequence, sequence, "{recording}: sequences count up from 0");
                let expected_start = start_ns.get_or_insert(frame.start_ns);
                assert_eq!(
                    frame.start_ns,
                    *expected_start + (sequence * frame_ms * 1_000_000) as i64
                );
                for (c, (_, samples)) in frame.channels().enumerate() {
                    joined[c].extend_from_slice(samples);
                }
                sequence += 1;
            }
            for (c, (got, want)) in joined.iter().zip(&whole).enumerate() {
                assert!(
                    same_bits(got, want),
                    "{recording} channel {c}, {frame_ms} ms frames"
                );
            }
        }
    }
}

#[test]
fn multi_rate_frames_hold_each_channels_share_of_the_time() {
    // MIMIC 03700181: MCL1 at 500 Hz, ABP and RESP at 125 Hz.
    let path = shared_data::require("wfdb/03700181");
    let mut source = FileSource::open(&path, &spec(&path, Duration::from_millis(40))).expect("open");
    let frame = source.next_frame().expect("read").expect("a frame");
    assert_eq!(frame.counts(), &[20, 5, 5]);
    assert_eq!(frame.layout.channels[0].sample_rate, 500.0);
    assert_eq!(frame.duration_ns(), 40_000_000);
}

#[test]
fn header_identification_travels_as_metadata_for_de_identification() {
    let path = shared_data::require("wfdb/100");
    let mut source = FileSource::open(&path, &spec(&path, Duration::from_millis(40))).expect("open");
    let frame = source.next_frame().expect("read").expect("a frame");
    assert_eq!(frame.meta("format"), Some("wfdb"));
    assert!(frame.meta("patient").is_some_and(|p| p.contains("Aldomet")));
    assert!(
        !format!("{frame:?}").contains("Aldomet"),
        "Debug output must not show PHI"
    );
}

/// Every EDF+ annotation with text travels once, on the frame whose span
/// reaches its onset, with its onset relative to the recording start.
#[test]
fn annotations_travel_once_on_the_frame_that_reaches_their_onset() {
    let path = shared_data::require("edf/19ch-125hz-annotations.bdf");
    let mut expected = Vec::new();
    let mut reader = readers::open(&path).expect("open reader");
    let mut out = vec![Vec::new(); reader.header().signals.len()];
    while reader.read_blocks(1, &mut out).expect("read") > 0 {
        expected.extend(
            reader
                .take_annotations()
                .into_iter()
                .filter(|a| !a.text.trim().is_empty()),
        );
    }
    let frame_ns = 250_000_000;
    let mut source = FileSource::open(&path, &spec(&path, Duration::from_nanos(frame_ns))).expect("open");
    let mut carried = Vec::new();
    while let Some(frame) = source.next_frame().expect("read") {
        let end_ns = (frame.sequence as i64 + 1) * frame_ns as i64;
        for (_, value) in frame.metadata.iter().filter(|(k, _)| k == "annotation") {
            let (onset, rest) = value.split_once('\t').expect("onset\tduration\ttext");
            let onset_ns = (onset.parse::<f64>().expect("seconds") * 1e9).round() as i64;
            assert!(
                onset_ns < end_ns,
                "annotation at {onset} carried before its frame"
            );
            carried.push(rest.split_once('\t').expect("duration\ttext").1.to_string());
        }
    }
    let texts: Vec<String> = expected.iter().map(|a| a.text.clone()).collect();
    assert!(!texts.is_empty(), "the recording has annotations");
    assert_eq!(carried, texts);
}
