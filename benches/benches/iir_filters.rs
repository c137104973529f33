//! Channel-samples/s of the EEG cleaning chain — 4th-order Butterworth
//! band-pass 0.5–45 Hz then a 50 Hz notch (Q 30), five second-order sections
//! — on the real 64-channel EDF, on one core; the peer is
//! `scipy.signal.sosfilt` on the same samples in the same run. Ours runs as
//! one `iir` operator (both stages in one pass) and as two operators
//! (`butterworth` then `notch`). SciPy stays running beside ours and the two
//! are timed in alternating rounds; the ratio is the median of the rounds'
//! ratios (see `PythonPeer`).
//!
//!     cargo bench -p sigfab-benches --bench iir_filters

use std::path::Path;

use sigfab_benches::{
    frames_of, median_time, paired_rounds, pin_to_one_core, read_recording, with_raw_samples, PythonPeer,
};
use sigfab_engine::shared_data;
use sigfab_operators::filters::design::Band;
use sigfab_operators::filters::sos::Kernel;
use sigfab_operators::filters::{ChannelSelection, IirDesign, IirFilter};
use sigfab_operators::{Frame, Item, Operator, Output};

const RUNS: usize = 15;
/// Rounds of ours then SciPy, and SciPy's runs per round (~8 ms each).
const ROUNDS: usize = 11;
const PEER_RUNS: usize = 5;
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

/// Runs every frame through the chain once (the frames are filtered in
/// place again on each run; only the time matters).
fn run_chain(operators: &mut [IirFilter], out: &mut Output, frames: &mut [Option<Frame>]) {
    for slot in frames.iter_mut() {
        let mut item = Item::Frame(slot.take().expect("frame in its slot"));
        for operator in operators.iter_mut() {
            operator.process(item, out).expect("filter accepts the frame");
            item = out.drain().next().expect("one frame out");
        }
        let Item::Frame(frame) = item else {
            unreachable!("filters emit frames")
        };
        *slot = Some(frame);
    }
}

/// SciPy's `sosfilt` on the same samples, kept running as a paired peer.
fn scipy_peer(raw: &Path, channels: usize) -> Option<PythonPeer> {
    let setup = format!(
        "import numpy as np\nfrom scipy import signal\n\
         x = np.fromfile('{raw}', dtype='<f4').reshape({channels}, -1).astype(np.float64)\n\
         sos = np.vstack([signal.butter(4, [0.5, 45], 'bandpass', fs=128, output='sos'),\n\
                          np.hstack(signal.iirnotch(50, 30, fs=128))])\n\
         def run():\n    signal.sosfilt(sos, x, axis=-1)",
        raw = raw.display()
    );
    PythonPeer::start(&setup)
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
    let mut scipy = with_raw_samples(&channels, |raw| scipy_peer(raw, channels.len()));
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
    println!(
        "{ROUNDS} rounds, each ours ({RUNS} runs) then SciPy ({PEER_RUNS} runs); ratio = SciPy's round median / ours"
    );
    println!("| case | median ms | M channel-samples/s (median) | vs scipy.signal.sosfilt (median round) | (lowest - highest round) |");
    println!("|---|---:|---:|---:|---:|");
    let per_second = |seconds: f64| channel_samples / seconds;
    let only = std::env::var("SIGFAB_BENCH_ONLY").unwrap_or_default();
    let mut peer_seconds = Vec::new();
    for (name, kernel, shape, frame_len) in cases.iter().filter(|(name, ..)| name.contains(&only)) {
        let mut frames: Vec<Option<Frame>> = frames_of(&specs, &channels, *frame_len)
            .into_iter()
            .map(Some)
            .collect();
        let mut operators = chain(*kernel, *shape);
        let mut out = Output::default();
        let run = || run_chain(&mut operators, &mut out, &mut frames);
        match scipy
            .as_mut()
            .and_then(|peer| paired_rounds(ROUNDS, RUNS, run, peer, PEER_RUNS))
        {
            Some(paired) => {
                peer_seconds.push(paired.peer);
                println!(
                    "| {name} | {:.3} | {:.0} | {:.1}x | {:.1}x - {:.1}x |",
                    paired.ours * 1e3,
                    per_second(paired.ours) / 1e6,
                    paired.ratio,
                    paired.ratio_low,
                    paired.ratio_high,
                );
            }
            None => {
                let mut operators = chain(*kernel, *shape);
                let mut out = Output::default();
                let median =
                    median_time(RUNS, || run_chain(&mut operators, &mut out, &mut frames)).as_secs_f64();
                println!(
                    "| {name} | {:.3} | {:.0} | n/a | |",
                    median * 1e3,
                    per_second(median) / 1e6
                );
            }
        }
    }
    peer_seconds.sort_by(f64::total_cmp);
    match peer_seconds.get(peer_seconds.len() / 2) {
        Some(&median) => println!(
            "| peer: scipy.signal.sosfilt (f64, one thread), median over every round | {:.3} | {:.0} | 1.0x | |",
            median * 1e3,
            per_second(median) / 1e6,
        ),
        None => println!("| peer: scipy.signal.sosfilt | n/a (pip install numpy scipy) | | | |"),
    }
}
