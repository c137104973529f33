//! Shared helpers of the bench binaries: pinning to one core, timing, and
//! running a peer in the same run.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Modality};

/// The `sigfab` binary's allocator (engine/src/main.rs), so that what the
/// benches time is what a pipeline runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    median_and_best_of(runs, || time_of(&mut f))
}

/// How long `f` takes.
pub fn time_of(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Median and fastest of `runs` durations that `run` measures itself
/// (after one warm-up run): for a run that prepares its input untimed,
/// e.g. owned frames for an operator that consumes them.
pub fn median_and_best_of(runs: usize, mut run: impl FnMut() -> Duration) -> (Duration, Duration) {
    run();
    let mut times: Vec<Duration> = (0..runs).map(|_| run()).collect();
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
    one_thread_python();
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

/// Keeps numpy's BLAS/OpenMP to one thread in the Python peers started
/// after this: SciPy is compared single-threaded.
fn one_thread_python() {
    for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
        std::env::set_var(var, "1");
    }
}

/// A Python peer kept running beside ours, so that the two can be timed in
/// alternating rounds: on this shared machine a peer timed a few seconds
/// apart from ours met different interference (measured: SciPy's `sosfilt`
/// and our filter each moved by a third between runs), while a ratio taken
/// within one round compares like with like.
pub struct PythonPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PythonPeer {
    /// `setup` must define `run()`, the work timed. `None` when Python or
    /// its packages are missing.
    pub fn start(setup: &str) -> Option<PythonPeer> {
        one_thread_python();
        let script = format!(
            "import sys, time\n{setup}\nrun()\nprint('ready', flush=True)\n\
             for line in sys.stdin:\n    ts = []\n    for _ in range(int(line)):\n        \
             t = time.perf_counter(); run(); ts.append(time.perf_counter() - t)\n    \
             ts.sort(); print(ts[len(ts) // 2], flush=True)\n"
        );
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let stdout = BufReader::new(child.stdout.take()?);
        let mut peer = PythonPeer { child, stdin, stdout };
        (peer.line()? == "ready").then_some(peer)
    }

    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).ok()?;
        Some(line.trim().to_string())
    }

    /// Median seconds of `runs` calls of `run()`.
    pub fn median_seconds(&mut self, runs: usize) -> Option<f64> {
        writeln!(self.stdin, "{runs}").ok()?;
        self.stdin.flush().ok()?;
        self.line()?.parse().ok()
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        // The peer may already have exited; nothing else to do then.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rounds of ours then the peer, one after the other.
#[derive(Clone, Copy, Debug)]
pub struct Paired {
    /// Median over rounds of our round medians, seconds.
    pub ours: f64,
    /// Median over rounds of the peer's round medians, seconds.
    pub peer: f64,
    /// Median, lowest and highest of the per-round ratios peer / ours.
    pub ratio: f64,
    pub ratio_low: f64,
    pub ratio_high: f64,
}

/// `rounds` rounds, each timing `ours` (median of `runs` runs after a
/// warm-up) and then the peer (median of `peer_runs` runs).
pub fn paired_rounds(
    rounds: usize,
    runs: usize,
    mut ours: impl FnMut(),
    peer: &mut PythonPeer,
    peer_runs: usize,
) -> Option<Paired> {
    paired_rounds_of(rounds, runs, || time_of(&mut ours), peer, peer_runs)
}

/// As [`paired_rounds`], for a run of ours that measures itself (see
/// [`median_and_best_of`]).
pub fn paired_rounds_of(
    rounds: usize,
    runs: usize,
    mut ours: impl FnMut() -> Duration,
    peer: &mut PythonPeer,
    peer_runs: usize,
) -> Option<Paired> {
    let (mut us, mut them, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mine = median_and_best_of(runs, &mut ours).0.as_secs_f64();
        let theirs = peer.median_seconds(peer_runs)?;
        us.push(mine);
        them.push(theirs);
        ratios.push(theirs / mine);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median(&mut ratios);
    Some(Paired {
        ours: median(&mut us),
        peer: median(&mut them),
        ratio,
        ratio_low: ratios[0],
        ratio_high: ratios[ratios.len() - 1],
    })
}
