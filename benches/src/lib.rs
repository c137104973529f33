//! Shared helpers of the bench binaries: pinning to one core, timing, and
//! running a peer in the same run.

use std::process::Command;
use std::time::{Duration, Instant};

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
