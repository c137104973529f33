//! The archive sink's acknowledgement contract, through its runtime API: an item is settled
//! `Delivered` only after its segment is finished, fsynced and renamed (never while it sits in
//! an open `.part` segment), every limit that ends a segment releases its items, and a failed
//! write settles the held items `Failed`. With a codec, frames coded into a block are held
//! just the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigfab_engine::ack::{AckCounter, AckStatus};
use sigfab_engine::crypto::keyfile;
use sigfab_engine::crypto::xwing::DecapsulationKey;
use sigfab_engine::runtime::{Envelope, NodeCounters};
use sigfab_engine::sinks::archive_codec::{CodecMode, CodecSettings};
use sigfab_engine::sinks::{ArchiveSink, SegmentLimits};
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality};
use tokio::sync::mpsc;

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sigfab-archive-acks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn recipient_file(dir: &Path) -> PathBuf {
    let identity = DecapsulationKey::generate().expect("rng");
    let path = dir.join("r.recipient");
    std::fs::write(&path, keyfile::recipient_text(identity.encapsulation_key())).expect("write recipient");
    path
}

fn frame(stream: &str, sequence: u64) -> Item {
    let layout = Arc::new(ChannelLayout::new(vec![ChannelSpec {
        name: "II".into(),
        unit: "mV".into(),
        sample_rate: 250.0,
    }]));
    let start_ns = 1_700_000_000_000_000_000 + sequence as i64 * 40_000_000;
    Item::Frame(
        Frame::new(
            Arc::from(stream),
            Modality::Ecg,
            layout,
            start_ns,
            sequence,
            vec![10],
            (0..10).map(|i| i as f32 * 0.1).collect(),
        )
        .expect("frame"),
    )
}

/// Files in `dir` (recursively) whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            n += files_ending(&path, suffix);
        } else if path.to_string_lossy().ends_with(suffix) {
            n += 1;
        }
    }
    n
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    tx: Option<mpsc::Sender<Envelope>>,
    acks: Arc<AckCounter>,
    task: Option<tokio::task::JoinHandle<Result<(), sigfab_engine::sinks::SinkError>>>,
    archive: PathBuf,
}

impl Harness {
    fn start(name: &str, limits: SegmentLimits) -> Harness {
        Harness::start_coded(name, limits, None)
    }

    fn start_coded(name: &str, limits: SegmentLimits, codec: Option<CodecSettings>) -> Harness {
        let dir = tempdir(name);
        let recipient = recipient_file(&dir);
        let archive = dir.join("archive");
        let sink = ArchiveSink::open(&archive, &dir.join("keys"), &[recipient], limits)
            .expect("open sink")
            .pseudonyms_only(false)
            .codec(codec);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, rx) = mpsc::channel(64);
        let task = runtime.spawn_blocking(move || sink.run(rx, &NodeCounters::default()));
        Harness {
            runtime,
            tx: Some(tx),
            acks: Arc::new(AckCounter::default()),
            task: Some(task),
            archive,
        }
    }

    fn send(&self, item: Item) {
        let envelope = Envelope {
            item,
            ack: self.acks.issue(),
            received: Instant::now(),
        };
        let tx = self.tx.as_ref().expect("open");
        self.runtime.block_on(tx.send(envelope)).expect("sink alive");
    }

    /// Waits until `n` items are settled or `limit` passes.
    fn wait_settled(&self, n: u64, limit: Duration) {
        let start = Instant::now();
        while self.acks.total() < n && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn close(&mut self) -> Result<(), sigfab_engine::sinks::SinkError> {
        self.tx = None;
        let task = self.task.take().expect("running");
        self.runtime.block_on(task).expect("sink task")
    }
}

fn limits(flush_interval: Duration, max_pending: usize) -> SegmentLimits {
    SegmentLimits {
        max_bytes: 1 << 30,
        max_span_ns: i64::MAX,
        flush_interval,
        max_pending,
    }
}

#[test]
fn items_are_acknowledged_only_when_their_segment_is_closed() {
    let mut h = Harness::start("interval", limits(Duration::from_millis(800), 10_000));
    for sequence in 0..5 {
        h.send(frame("p1-aaaa", sequence));
    }
    std::thread::sleep(Duration::from_millis(200));
    // Written into an open segment, not acknowledged, nothing finished on disk.
    assert_eq!(h.acks.total(), 0, "acknowledged before the segment closed");
    assert_eq!(files_ending(&h.archive, ".sfa"), 0);
    assert_eq!(files_ending(&h.archive, ".sfa.part"), 1);
    h.wait_settled(5, Duration::from_secs(10));
    assert_eq!(h.acks.count(AckStatus::Delivered), 5);
    assert_eq!(
        files_ending(&h.archive, ".sfa"),
        1,
        "the flush interval ended the segment"
    );
    assert_eq!(files_ending(&h.archive, ".sfa.part"), 0);
    // The end of the input closes the open segment, then acknowledges.
    for sequence in 5..8 {
        h.send(frame("p1-aaaa", sequence));
    }
    h.close().expect("clean close");
    assert_eq!(h.acks.count(AckStatus::Delivered), 8);
    assert_eq!(h.acks.total(), 8);
    assert_eq!(files_ending(&h.archive, ".sfa"), 2);
}

#[test]
fn max_pending_bounds_the_unacknowledged_items() {
    let mut h = Harness::start("pending", limits(Duration::from_secs(3600), 3));
    h.send(frame("p1-aaaa", 0));
    h.send(frame("p1-bbbb", 0));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(h.acks.total(), 0);
    h.send(frame("p1-aaaa", 1));
    h.wait_settled(3, Duration::from_secs(10));
    assert_eq!(
        h.acks.count(AckStatus::Delivered),
        3,
        "3 held items end every open segment"
    );
    assert_eq!(files_ending(&h.archive, ".sfa"), 2);
    h.close().expect("clean close");
}

#[test]
fn a_failed_write_fails_the_held_items_and_stops_the_sink() {
    let mut h = Harness::start("failure", limits(Duration::from_secs(3600), 10_000));
    h.send(frame("p1-aaaa", 0));
    h.send(frame("p1-aaaa", 1));
    // A raw identifier cannot name a keystore entry: the write fails.
    h.send(frame("Jane Doe", 0));
    let error = h.close().expect_err("the sink stops");
    assert!(!error.to_string().contains("Jane"), "{error}");
    assert_eq!(h.acks.count(AckStatus::Failed), 3);
    assert_eq!(h.acks.count(AckStatus::Delivered), 0);
    assert_eq!(files_ending(&h.archive, ".sfa"), 0, "no segment was finished");
}

#[test]
fn coded_blocks_keep_the_acknowledgement_rule() {
    let codec = CodecSettings {
        mode: CodecMode::Lossless,
        block_seconds: 1,
        resolution: Default::default(),
    };
    let mut h = Harness::start_coded("codec", limits(Duration::from_millis(800), 10_000), Some(codec));
    // 30 frames of 40 ms: one whole 1 s block (25 frames) is coded into the open segment,
    // 5 frames wait in the next block; none is acknowledged yet.
    for sequence in 0..30 {
        h.send(frame("p1-aaaa", sequence));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(h.acks.total(), 0, "acknowledged before the segment closed");
    assert_eq!(files_ending(&h.archive, ".sfa"), 0);
    assert_eq!(files_ending(&h.archive, ".sfa.part"), 1);
    // The flush interval ends the segment: the partial block goes in first, then all 30 are
    // settled.
    h.wait_settled(30, Duration::from_secs(10));
    assert_eq!(h.acks.count(AckStatus::Delivered), 30);
    assert_eq!(files_ending(&h.archive, ".sfa"), 1);
    assert_eq!(files_ending(&h.archive, ".sfa.part"), 0);
    h.send(frame("p1-aaaa", 30));
    h.close().expect("clean close");
    assert_eq!(h.acks.count(AckStatus::Delivered), 31);
    assert_eq!(files_ending(&h.archive, ".sfa"), 2);
}
