//! Shared helpers of the bench binaries: pinning to one core, timing, and
//! running a peer in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Modality};

/// Pins this process (and the threads it starts later) to CPU 0, so a figure
/// "per core" means one core, whatever the runtime's thread count.
pub fn pin_to_one_core() -> bool {
    pin_to_cpu(0)
}

/// Pins the calling thread (and the threads it starts later) to one CPU.
pub fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: `cpu_set_t` is plain data; zeroed is the empty set, CPU_SET
    // writes inside it, and sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Median of `runs` timings of `f` (after one warm-up run).
pub fn median_time(runs: usize, f: impl FnMut()) -> Duration {
    median_and_best_time(runs, f).0
}

/// Median and fastest of `runs` timings of `f` (after one warm-up run). On
/// a shared machine the fastest run is the one least disturbed by others.
pub fn median_and_best_time(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[times.len() / 2], times[0])
}

/// Runs a Python snippet that prints one number (seconds); `None` when
/// Python or its packages are missing, so the table says so instead of
/// failing.
pub fn python_seconds(script: &str) -> Option<f64> {
    python_numbers(script)?.first().copied()
}

/// Runs a Python snippet that prints numbers separated by spaces; `None`
/// when Python or its packages are missing or the output is not numbers.
pub fn python_numbers(script: &str) -> Option<Vec<f64>> {
    let output = Command::new("python3").arg("-c").arg(script).output().ok()?;
    if !output.status.success() {
        eprintln!(
            "peer failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect()
}

/// A recording, whole, as the readers give it: channel specs and samples.
pub fn read_recording(path: &Path) -> (Vec<ChannelSpec>, Vec<Vec<f32>>) {
    let mut reader = sigfab_engine::readers::open(path).expect("open the recording");
    let specs = reader.header().signals.iter().map(|s| s.channel_spec()).collect();
    let channels = sigfab_engine::readers::read_to_end(reader.as_mut()).expect("read the recording");
    (specs, channels)
}

/// One stream's channels cut into frames of `frame_len` samples per channel.
pub fn frames_of(specs: &[ChannelSpec], channels: &[Vec<f32>], frame_len: usize) -> Vec<Frame> {
    let layout = Arc::new(ChannelLayout::new(specs.to_vec()));
    let len = channels[0].len();
    (0..len)
        .step_by(frame_len)
        .enumerate()
        .map(|(sequence, start)| {
            let end = (start + frame_len).min(len);
            let samples: Vec<f32> = channels
                .iter()
                .flat_map(|c| c[start..end].iter().copied())
                .collect();
            let counts = vec![(end - start) as u32; channels.len()];
            Frame::new(
                "bench".into(),
                Modality::Eeg,
                layout.clone(),
                0,
                sequence as u64,
                counts,
                samples,
            )
            .expect("consistent frame")
        })
        .collect()
}

/// Runs `peer` with the path of a temporary file holding `channels` as
/// planar little-endian f32 (what a Python peer reads with `np.fromfile`).
pub fn with_raw_samples<T>(channels: &[Vec<f32>], peer: impl FnOnce(&Path) -> T) -> T {
    let raw: PathBuf = std::env::temp_dir().join(format!("sigfab-bench-{}.f32", std::process::id()));
    let bytes: Vec<u8> = channels.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).expect("write samples for the peer");
    let result = peer(&raw);
    let _ = std::fs::remove_file(&raw);
    result
}

/// Runs a Python peer that prints its median and best seconds, with SciPy
/// and anything it links held to one thread.
pub fn python_median_and_best(script: &str) -> Option<(f64, f64)> {
    for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
        std::env::set_var(var, "1");
    }
    match python_numbers(script)?[..] {
        [median, best] => Some((median, best)),
        _ => None,
    }
}

/// How many times faster than the peer, as printed in the tables
/// ("4.3x"), or "n/a" when the peer did not run.
pub fn speedup(ours_seconds: f64, peer_seconds: Option<f64>) -> String {
    peer_seconds.map_or("n/a".to_string(), |peer| format!("{:.1}x", peer / ours_seconds))
}
