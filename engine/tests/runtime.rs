//! The runtime's guarantees, end to end through real files: every frame is
//! delivered exactly where the graph says, in order per stream; rejected
//! frames land in the dead letters with a reason; queues stay bounded; a stop
//! drains everything in flight.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sigfab_engine::ack::AckStatus;
use sigfab_engine::runtime::{self, RunOptions, RunReport};
use sigfab_engine::sinks::MAX_BATCH;
use sigfab_engine::wire::{self, Encoding};
use sigfab_operators::Item;

/// A fresh folder for one test's pipeline and outputs.
fn workdir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sigfab-test-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test folder");
    dir
}

fn run_yaml(dir: &Path, yaml: &str, options: RunOptions) -> RunReport {
    let file = dir.join("pipeline.yaml");
    std::fs::write(&file, yaml).expect("write pipeline");
    let (pipeline, graph) = sigfab_engine::config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(runtime::run(&pipeline, &graph, &options))
        .expect("pipeline runs")
}

fn read_items(path: &Path) -> Vec<Item> {
    std::fs::read_to_string(path)
        .expect("output file")
        .lines()
        .map(|line| wire::decode(line.as_bytes(), Encoding::Json).expect("valid wire JSON"))
        .collect()
}

#[test]
fn every_frame_reaches_every_sink_in_order_per_stream() {
    let dir = workdir("delivery");
    let report = run_yaml(
        &dir,
        r#"
sources:
  beds:
    synthetic: { signal: ecg, streams: 3, duration: 4s, frame: 40ms, seed: 5, start_ns: 0 }
sinks:
  a:
    inputs: [beds]
    file: { path: a.jsonl }
  b:
    inputs: [beds]
    file: { path: b.jsonl, fsync: false }
"#,
        RunOptions::default(),
    );
    let frames = 3 * 100;
    assert_eq!(
        report.acks,
        vec![(AckStatus::Delivered, frames)],
        "each frame acknowledged once"
    );
    for sink in ["a.jsonl", "b.jsonl"] {
        let items = read_items(&dir.join(sink));
        assert_eq!(items.len() as u64, frames);
        for stream in ["beds-0", "beds-1", "beds-2"] {
            let sequences: Vec<u64> = items
                .iter()
                .filter(|i| i.stream_id() == stream)
                .map(Item::sequence)
                .collect();
            assert_eq!(sequences, (0..100).collect::<Vec<_>>(), "{sink} {stream}");
        }
    }
}

#[test]
fn rejected_frames_land_in_the_dead_letters_with_their_reason() {
    let dir = workdir("dead-letters");
    let report = run_yaml(
        &dir,
        r#"
sources:
  ecg:
    synthetic: { signal: ecg, duration: 10s, frame: 100ms, seed: 2 }
operators:
  checked:
    inputs: [ecg]
    validate: { max_abs: 0.5 }
sinks:
  out:
    inputs: [checked]
    file: { path: ok.jsonl }
dead_letter:
  path: dead/letters.jsonl
"#,
        RunOptions::default(),
    );
    let rejected = report.count(AckStatus::DeadLettered);
    let delivered = report.count(AckStatus::Delivered);
    assert!(
        rejected > 10 && delivered > 10,
        "R peaks exceed 0.5 mV in some frames only"
    );
    assert_eq!(rejected + delivered, 100);
    assert_eq!(report.dead_letters, rejected);
    assert_eq!(report.unhandled(), 0);
    let letters = std::fs::read_to_string(dir.join("dead/letters.jsonl")).expect("dead letters");
    assert_eq!(letters.lines().count() as u64, rejected);
    for line in letters.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(value["reason"], "sample magnitude above validate.max_abs");
        assert_eq!(value["node"], "checked");
        let item = serde_json::to_vec(&value["item"]).expect("item");
        let Item::Frame(frame) = wire::decode(&item, Encoding::Json).expect("the frame itself is kept")
        else {
            panic!("a frame was rejected");
        };
        assert!(frame.samples().iter().any(|x| x.abs() > 0.5));
    }
    assert_eq!(read_items(&dir.join("ok.jsonl")).len() as u64, delivered);
}

#[test]
fn rejections_without_a_dead_letter_sink_count_as_unhandled() {
    let dir = workdir("no-dead-letters");
    let report = run_yaml(
        &dir,
        r#"
sources:
  ecg:
    synthetic: { signal: ecg, duration: 2s, frame: 100ms }
operators:
  checked:
    inputs: [ecg]
    validate: { channels: 12 }
sinks:
  out:
    inputs: [checked]
    file: { path: ok.jsonl }
"#,
        RunOptions::default(),
    );
    assert_eq!(report.acks, vec![(AckStatus::Rejected, 20)]);
    assert_eq!(report.unhandled(), 20);
}

#[test]
fn queues_bound_the_frames_in_flight() {
    let dir = workdir("bounded");
    let report = run_yaml(
        &dir,
        r#"
settings:
  queue_capacity: 4
sources:
  beds:
    synthetic: { signal: eeg, channels: 32, streams: 4, duration: 30s, frame: 40ms }
operators:
  one:
    inputs: [beds]
    passthrough: {}
  two:
    inputs: [one]
    passthrough: {}
sinks:
  out:
    inputs: [two]
    file: { path: out.sgfb, format: binary }
"#,
        RunOptions::default(),
    );
    let total = 4 * 750;
    assert_eq!(report.count(AckStatus::Delivered), total);
    // Three queues of 4, one item held by each of the four tasks, and one
    // sink batch awaiting its flush.
    let bound = 3 * 4 + 4 + MAX_BATCH as u64;
    assert!(
        report.max_in_flight <= bound,
        "{} frames were in flight; the queues allow at most {bound}",
        report.max_in_flight
    );
}

#[test]
fn a_stop_drains_what_is_in_flight() {
    let dir = workdir("stop");
    let report = run_yaml(
        &dir,
        r#"
sources:
  live:
    synthetic: { signal: eeg, pace: realtime, frame: 20ms }
operators:
  stats:
    inputs: [live]
    frame_stats: {}
sinks:
  out:
    inputs: [stats]
    file: { path: stats.jsonl }
"#,
        RunOptions {
            run_for: Some(Duration::from_millis(400)),
            ..RunOptions::default()
        },
    );
    assert!(report.interrupted);
    let delivered = report.count(AckStatus::Delivered);
    assert!(
        (5..=25).contains(&delivered),
        "{delivered} frames in 400 ms of 20 ms frames"
    );
    assert_eq!(report.unhandled(), 0, "nothing abandoned on stop");
    assert_eq!(read_items(&dir.join("stats.jsonl")).len() as u64, delivered);
}

#[test]
fn filters_keep_each_streams_state_through_the_runtime() {
    use sigfab_operators::filters::design::Band;
    use sigfab_operators::filters::{ChannelSelection, IirDesign, IirFilter};
    use sigfab_operators::{Operator, Output};

    let dir = workdir("filters");
    let report = run_yaml(
        &dir,
        r#"
sources:
  beds:
    synthetic: { signal: ecg, streams: 3, duration: 2s, frame: 40ms, seed: 9, start_ns: 0 }
operators:
  clean:
    inputs: [beds]
    butterworth: { kind: bandpass, order: 2, cutoff_hz: [0.5, 40], warm_start: true }
sinks:
  raw:
    inputs: [beds]
    file: { path: raw.jsonl, fsync: false }
  filtered:
    inputs: [clean]
    file: { path: filtered.jsonl, fsync: false }
"#,
        RunOptions::default(),
    );
    assert_eq!(report.unhandled(), 0);
    let raw = read_items(&dir.join("raw.jsonl"));
    let filtered = read_items(&dir.join("filtered.jsonl"));
    for stream in ["beds-0", "beds-1", "beds-2"] {
        let design = IirDesign::Butterworth {
            order: 2,
            band: Band::Bandpass(0.5, 40.0),
        };
        let mut alone = IirFilter::new(design, ChannelSelection::All, true);
        let mut out = Output::default();
        let expected: Vec<Item> = raw
            .iter()
            .filter(|i| i.stream_id() == stream)
            .flat_map(|item| {
                alone.process(item.clone(), &mut out).expect("filter");
                out.drain().collect::<Vec<_>>()
            })
            .collect();
        let got: Vec<&Item> = filtered.iter().filter(|i| i.stream_id() == stream).collect();
        assert_eq!(got.len(), 50, "{stream}");
        assert!(
            got.iter().zip(&expected).all(|(a, b)| *a == b),
            "{stream} filtered as if alone"
        );
    }
}
