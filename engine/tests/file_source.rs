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
    }
}

/// Every channel's samples, straight from the reader.
fn read_whole(path: &Path) -> Vec<Vec<f32>> {
    let mut reader = readers::open(path).expect("open");
    let mut out = vec![Vec::new(); reader.header().signals.len()];
    while reader.read_blocks(1024, &mut out).expect("read") > 0 {}
    out
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
