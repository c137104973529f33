//! FIR filters and resampling on the real 64-channel EDF (first 60 s), one
//! core, 40 ms frames; peers in the same run: `scipy.signal.lfilter` and
//! `scipy.signal.oaconvolve` (FIR), `scipy.signal.resample_poly`.
//!
//! The first table is the crossover measurement: direct convolution and
//! overlap-save for tap counts 16..4096 (a Hamming low-pass at 30 Hz);
//! `FFT_CROSSOVER_TAPS` in operators/src/filters/fir_operator.rs is set
//! from it (docs/filters.md).
//!
//!     cargo bench -p sigfab-benches --bench fir_filters

use std::path::Path;

use sigfab_benches::{
    frames_of, median_and_best_time, pin_to_one_core, python_numbers, read_recording, speedup,
    with_raw_samples,
};
use sigfab_engine::shared_data;
use sigfab_operators::filters::design::Band;
use sigfab_operators::filters::fir::{FirDesign, FirLength, FirWindow};
use sigfab_operators::filters::{ChannelSelection, FirFilter, FirMethod, Resample, ResampleFactors};
use sigfab_operators::{Frame, Item, Operator, Output};

const RUNS: usize = 5;
const RECORDING: &str = "edf/eegmmidb-style-64ch-128hz.edf";
const SECONDS: usize = 60;
const TAPS: [usize; 9] = [16, 32, 64, 128, 192, 256, 512, 1024, 4096];
const RESAMPLE: [(u32, u32); 2] = [(25, 32), (2, 1)];

fn lowpass(taps: usize) -> FirDesign {
    FirDesign {
        band: Band::Lowpass(30.0),
        length: FirLength::Taps(taps, FirWindow::Hamming),
        minimum_phase: false,
    }
}

/// Median seconds to run every frame through `operator` (frames are
/// cloned before timing; the operator is fresh each run).
fn time_operator(make: impl Fn() -> Box<dyn Operator>, frames: &[Frame]) -> f64 {
    let mut out = Output::default();
    let mut batches: Vec<Vec<Frame>> = (0..RUNS + 1).map(|_| frames.to_vec()).collect();
    let (median, _) = median_and_best_time(RUNS, || {
        let mut operator = make();
        let batch = batches.pop().unwrap_or_default();
        for frame in batch {
            operator.process(Item::Frame(frame), &mut out).expect("accepted");
            out.drain().for_each(drop);
        }
    });
    median.as_secs_f64()
}

/// SciPy medians: lfilter and oaconvolve per tap count, then resample_poly
/// per factor pair.
fn scipy_seconds(raw: &Path, channels: usize) -> Option<Vec<f64>> {
    let taps: Vec<String> = TAPS.iter().map(|t| t.to_string()).collect();
    let factors: Vec<String> = RESAMPLE.iter().map(|(u, d)| format!("({u}, {d})")).collect();
    let script = format!(
        "import os, time\nos.environ['OMP_NUM_THREADS'] = '1'\nimport numpy as np\nfrom scipy import signal\n\
         x = np.fromfile('{raw}', dtype='<f4').reshape({channels}, -1).astype(np.float64)\n\
         def med(f):\n    f(); ts = []\n    for _ in range({RUNS}):\n        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)\n    ts.sort(); return ts[len(ts) // 2]\n\
         out = []\n\
         for n in [{taps}]:\n    h = signal.firwin(n, 30, fs=128)\n    out.append(med(lambda: signal.lfilter(h, 1.0, x, axis=-1)))\n    out.append(med(lambda: signal.oaconvolve(x, h[None, :], axes=-1)))\n\
         for up, down in [{factors}]:\n    out.append(med(lambda: signal.resample_poly(x, up, down, axis=-1)))\n\
         print(' '.join(str(v) for v in out))",
        raw = raw.display(),
        taps = taps.join(", "),
        factors = factors.join(", "),
    );
    for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
        std::env::set_var(var, "1");
    }
    python_numbers(&script).filter(|v| v.len() == 2 * TAPS.len() + RESAMPLE.len())
}

fn main() {
    let pinned = pin_to_one_core();
    let path = shared_data::require(RECORDING);
    let (specs, mut channels) = read_recording(&path);
    let rate = specs[0].sample_rate;
    let len = (rate as usize * SECONDS).min(channels[0].len());
    channels.iter_mut().for_each(|c| c.truncate(len));
    let channel_samples = (channels.len() * len) as f64;
    let scipy = with_raw_samples(&channels, |raw| scipy_seconds(raw, channels.len()));
    let frames = frames_of(&specs, &channels, (rate * 0.040).round() as usize);
    println!(
        "\nFIR low-pass 30 Hz (Hamming) on {RECORDING}, {} channels x {len} samples at {rate} Hz in 40 ms frames, median of {RUNS} runs, {}",
        channels.len(),
        if pinned { "pinned to one core" } else { "NOT pinned" }
    );
    println!("| taps | direct M ch-samples/s | overlap-save M ch-samples/s | faster | lfilter M/s | oaconvolve M/s | faster of ours ÷ lfilter (medians) |");
    println!("|---:|---:|---:|---|---:|---:|---:|");
    let rate_of = |seconds: f64| channel_samples / seconds / 1e6;
    for (i, &taps) in TAPS.iter().enumerate() {
        let direct = time_operator(
            || {
                Box::new(FirFilter::new(
                    lowpass(taps),
                    ChannelSelection::All,
                    FirMethod::Direct,
                ))
            },
            &frames,
        );
        let fft = time_operator(
            || {
                Box::new(FirFilter::new(
                    lowpass(taps),
                    ChannelSelection::All,
                    FirMethod::Fft,
                ))
            },
            &frames,
        );
        let peer = scipy.as_ref().map(|s| (s[2 * i], s[2 * i + 1]));
        let fmt = |v: Option<f64>| v.map_or("n/a".into(), |s| format!("{:.1}", rate_of(s)));
        println!(
            "| {taps} | {:.1} | {:.1} | {} | {} | {} | {} |",
            rate_of(direct),
            rate_of(fft),
            if direct <= fft { "direct" } else { "overlap-save" },
            fmt(peer.map(|p| p.0)),
            fmt(peer.map(|p| p.1)),
            speedup(direct.min(fft), peer.map(|p| p.0)),
        );
    }
    println!("\nresample_poly-equal polyphase resampling, same frames");
    println!("| up/down | ours M in-samples/s | resample_poly M/s | ratio |");
    println!("|---|---:|---:|---:|");
    for (i, &(up, down)) in RESAMPLE.iter().enumerate() {
        let ours = time_operator(
            || Box::new(Resample::new(ResampleFactors::Ratio { up, down })),
            &frames,
        );
        let peer = scipy.as_ref().map(|s| s[2 * TAPS.len() + i]);
        println!(
            "| {up}/{down} | {:.1} | {} | {} |",
            rate_of(ours),
            peer.map_or("n/a".into(), |p| format!("{:.1}", rate_of(p))),
            speedup(ours, peer),
        );
    }
}
