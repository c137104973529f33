//! Samples/s for file → sink with no operators, on the real 64-channel EDF,
//! on one core; the peer is MNE's EDF reader on the same file in the same run.
//!
//!     cargo bench -p sigfab-benches --bench file_to_sink

use std::path::Path;
use std::time::Duration;

use sigfab_benches::{median_time, pin_to_one_core, python_seconds};
use sigfab_engine::ack::AckStatus;
use sigfab_engine::{config, runtime, shared_data};

const RUNS: usize = 15;

fn pipeline(dir: &Path, edf: &Path, sink: &str) -> std::path::PathBuf {
    let file = dir.join(format!(
        "bench-{}.yaml",
        sink.split_whitespace().next().unwrap_or("x")
    ));
    let yaml = format!(
        "sources:\n  eeg:\n    file: {{ path: {edf}, frame: 40ms }}\nsinks:\n  out:\n    inputs: [eeg]\n    {sink}\n",
        edf = edf.display()
    );
    std::fs::write(&file, yaml).expect("write bench pipeline");
    file
}

fn time_pipeline(file: &Path, samples: u64) -> Duration {
    let (loaded, graph) = config::load(file).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    median_time(RUNS, || {
        let report = rt
            .block_on(runtime::run(&loaded, &graph, &runtime::RunOptions::default()))
            .expect("bench pipeline runs");
        assert_eq!(report.unhandled(), 0);
        assert!(report.count(AckStatus::Delivered) > 0);
        let read: u64 = report.nodes.iter().map(|n| n.samples_in).sum();
        assert_eq!(read, samples, "every sample went through");
    })
}

fn main() {
    let pinned = pin_to_one_core();
    let edf = shared_data::require("edf/eegmmidb-style-64ch-128hz.edf");
    let edf = edf.canonicalize().expect("EDF path");
    let dir = std::env::temp_dir().join(format!("sigfab-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench folder");
    let samples = {
        let reader = sigfab_engine::readers::open(&edf).expect("open EDF");
        let h = reader.header();
        h.samples_per_block
            .iter()
            .map(|&n| u64::from(n) * h.total_blocks)
            .sum::<u64>()
    };
    let out = dir.join("out.sgfb");
    let cases = [
        (
            "file -> binary, /dev/null",
            "file: { path: /dev/null, format: binary, fsync: false }".to_string(),
        ),
        (
            "file -> binary file, fsync",
            format!("file: {{ path: {}, format: binary, fsync: true }}", out.display()),
        ),
        (
            "file -> JSON Lines, /dev/null",
            "file: { path: /dev/null, format: jsonl, fsync: false }".to_string(),
        ),
    ];
    let peer = format!(
        "import time, mne\nmne.set_log_level('ERROR')\nts=[]\nfor _ in range({RUNS}):\n    t=time.perf_counter(); r=mne.io.read_raw_edf('{}', preload=True); d=r.get_data(); ts.append(time.perf_counter()-t)\nts.sort(); print(ts[len(ts)//2])",
        edf.display()
    );
    let peer_seconds = python_seconds(&peer);
    println!(
        "\nfile -> sink, no operators: {} ({samples} samples, 64 ch at 128 Hz), 40 ms frames, median of {RUNS} runs, {}",
        edf.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        if pinned { "pinned to one core" } else { "NOT pinned (sched_setaffinity failed)" }
    );
    println!("| case | median ms | M samples/s | vs MNE read_raw_edf |");
    println!("|---|---:|---:|---:|");
    let peer_rate = peer_seconds.map(|s| samples as f64 / s);
    // SIGFAB_BENCH_ONLY=<text> runs only the cases whose name contains it
    // (for profiling one case).
    let only = std::env::var("SIGFAB_BENCH_ONLY").unwrap_or_default();
    for (name, sink) in cases.iter().filter(|(name, _)| name.contains(&only)) {
        let t = time_pipeline(&pipeline(&dir, &edf, sink), samples);
        let rate = samples as f64 / t.as_secs_f64();
        let ratio = peer_rate.map_or("n/a".to_string(), |p| format!("{:.1}x", rate / p));
        println!(
            "| {name} | {:.2} | {:.1} | {ratio} |",
            t.as_secs_f64() * 1e3,
            rate / 1e6
        );
    }
    match (peer_seconds, peer_rate) {
        (Some(s), Some(rate)) => println!(
            "| peer: MNE read_raw_edf(preload) + get_data | {:.2} | {:.1} | 1.0x |",
            s * 1e3,
            rate / 1e6
        ),
        _ => println!("| peer: MNE read_raw_edf | n/a (pip install mne) | | |"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
