//! Channel-samples/s of the EEG cleaning chain — 4th-order Butterworth
//! band-pass 0.5–45 Hz then a 50 Hz notch (Q 30), five second-order sections
//! — on the real 64-channel EDF, on one core; the peer is
//! `scipy.signal.sosfilt` on the same samples in the same run. Ours runs as
//! one `iir` operator (both stages in one pass) and as two operators
//! (`butterworth` then `notch`).
//!
//!     cargo bench -p sigfab-benches --bench iir_filters

use std::path::Path;

use sigfab_benches::{
    frames_of, median_and_best_time, pin_to_one_core, python_median_and_best, read_recording, speedup,
    with_raw_samples,
};
use sigfab_engine::shared_data;
use sigfab_operators::filters::design::Band;
use sigfab_operators::filters::sos::Kernel;
use sigfab_operators::filters::{ChannelSelection, IirDesign, IirFilter};
use sigfab_operators::{Frame, Item, Operator, Output};

const RUNS: usize = 15;
const RECORDING: &str = "edf/eegmmidb-style-64ch-128hz.edf";

/// How the two stages run: one fused operator or two in a row.
#[derive(Clone, Copy)]
enum Chain {
    Fused,
    TwoOperators,
}

fn chain(kernel: Kernel, shape: Chain) -> Vec<IirFilter> {
    let bandpass = IirDesign::Butterworth {
        order: 4,
        band: Band::Bandpass(0.5, 45.0),
    };
    let notch = IirDesign::Notch {
        frequency: 50.0,
        q: 30.0,
        harmonics: 0,
    };
    match shape {
        Chain::Fused => vec![IirFilter::cascade(
            vec![bandpass, notch],
            ChannelSelection::All,
            false,
            kernel,
        )],
        Chain::TwoOperators => vec![
            IirFilter::with_kernel(bandpass, ChannelSelection::All, false, kernel),
            IirFilter::with_kernel(notch, ChannelSelection::All, false, kernel),
        ],
    }
}

/// Median and best seconds to run every frame through the chain (the
/// frames are filtered in place again on each run; only the time matters).
fn time_chain(kernel: Kernel, shape: Chain, frames: &mut [Option<Frame>]) -> (f64, f64) {
    let mut operators = chain(kernel, shape);
    let mut out = Output::default();
    let (median, best) = median_and_best_time(RUNS, || {
        for slot in frames.iter_mut() {
            let mut item = Item::Frame(slot.take().expect("frame in its slot"));
            for operator in operators.iter_mut() {
                operator
                    .process(item, &mut out)
                    .expect("filter accepts the frame");
                item = out.drain().next().expect("one frame out");
            }
            let Item::Frame(frame) = item else {
                unreachable!("filters emit frames")
            };
            *slot = Some(frame);
        }
    });
    (median.as_secs_f64(), best.as_secs_f64())
}

/// Median and best seconds of `sosfilt` on the same samples.
fn scipy_seconds(raw: &Path, channels: usize) -> Option<(f64, f64)> {
    let script = format!(
        "import os, time\nimport numpy as np\nfrom scipy import signal\n\
         x = np.fromfile('{raw}', dtype='<f4').reshape({channels}, -1).astype(np.float64)\n\
         sos = np.vstack([signal.butter(4, [0.5, 45], 'bandpass', fs=128, output='sos'),\n\
                          np.hstack(signal.iirnotch(50, 30, fs=128))])\n\
         signal.sosfilt(sos, x, axis=-1)\n\
         ts = []\n\
         for _ in range({RUNS}):\n    t = time.perf_counter(); signal.sosfilt(sos, x, axis=-1); ts.append(time.perf_counter() - t)\n\
         ts.sort(); print(ts[len(ts) // 2], ts[0])",
        raw = raw.display()
    );
    python_median_and_best(&script)
}

fn main() {
    let pinned = pin_to_one_core();
    let path = shared_data::require(RECORDING);
    let (specs, channels) = read_recording(&path);
    let rate = specs[0].sample_rate;
    assert!(
        specs.iter().all(|s| s.sample_rate == rate),
        "one rate across channels"
    );
    let channel_samples = (channels.len() * channels[0].len()) as f64;
    let scipy = with_raw_samples(&channels, |raw| scipy_seconds(raw, channels.len()));
    let whole = channels[0].len();
    let frame_40ms = (rate * 0.040).round() as usize;
    let simd = Kernel::detect();
    let cases = [
        (
            "ours, iir (one pass), SIMD (AVX2+FMA if present), whole record as one frame",
            simd,
            Chain::Fused,
            whole,
        ),
        (
            "ours, iir (one pass), SIMD, 1 s frames",
            simd,
            Chain::Fused,
            rate as usize,
        ),
        (
            "ours, iir (one pass), SIMD, 40 ms frames",
            simd,
            Chain::Fused,
            frame_40ms,
        ),
        (
            "ours, butterworth + notch (two passes), SIMD, whole record",
            simd,
            Chain::TwoOperators,
            whole,
        ),
        (
            "ours, butterworth + notch (two passes), SIMD, 40 ms frames",
            simd,
            Chain::TwoOperators,
            frame_40ms,
        ),
        (
            "ours, iir (one pass), portable scalar fallback, whole record",
            Kernel::portable(),
            Chain::Fused,
            whole,
        ),
    ];
    println!(
        "\nband-pass 0.5-45 Hz (order 4) + 50 Hz notch (Q 30), 5 sections: {RECORDING}, {} channels x {} samples at {rate} Hz, median of {RUNS} runs, {}; detected kernel: {}",
        channels.len(),
        channels[0].len(),
        if pinned { "pinned to one core" } else { "NOT pinned (sched_setaffinity failed)" },
        Kernel::detect().name()
    );
    println!("| case | median ms | M channel-samples/s (median) | (best run) | vs scipy.signal.sosfilt (median) | (best) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let per_second = |seconds: f64| channel_samples / seconds;
    let only = std::env::var("SIGFAB_BENCH_ONLY").unwrap_or_default();
    for (name, kernel, shape, frame_len) in cases.iter().filter(|(name, ..)| name.contains(&only)) {
        let mut frames: Vec<Option<Frame>> = frames_of(&specs, &channels, *frame_len)
            .into_iter()
            .map(Some)
            .collect();
        let (median, best) = time_chain(*kernel, *shape, &mut frames);
        println!(
            "| {name} | {:.3} | {:.0} | {:.0} | {} | {} |",
            median * 1e3,
            per_second(median) / 1e6,
            per_second(best) / 1e6,
            speedup(median, scipy.map(|s| s.0)),
            speedup(best, scipy.map(|s| s.1)),
        );
    }
    match scipy {
        Some((median, best)) => println!(
            "| peer: scipy.signal.sosfilt (f64, one thread) | {:.3} | {:.0} | {:.0} | 1.0x | 1.0x |",
            median * 1e3,
            per_second(median) / 1e6,
            per_second(best) / 1e6
        ),
        None => println!("| peer: scipy.signal.sosfilt | n/a (pip install numpy scipy) | | | | |"),
    }
}
