//! Channel-windows/s of the `band_powers` operator — 2 s windows every
//! 250 ms, Welch with 1 s Hann segments (50 % overlap), five EEG bands,
//! SEF50/90/95 and peak frequency — on the real 64-channel EDF in 40 ms
//! frames, on one core; the peer is `scipy.signal.welch` (all channels of a
//! window in one vectorised call) plus the band sums, on the same windows
//! in the same run. A second peer does the operator's whole work: after
//! the same `welch` call, all 16 values of a band_powers record (absolute
//! and relative band powers, total, SEF50/90/95, peak, spectral entropy),
//! vectorised over channels with the formulas of the accuracy references
//! (scripts/make_feature_references.py). Each peer stays running beside
//! ours and the two are timed in alternating rounds; the ratio is the
//! median of the rounds' ratios.
//! Each timed run gets its own copies of the frames, made untimed one
//! second (25 frames) at a time just before they are processed: the
//! operators consume their frames, which in a pipeline come owned from a
//! source that has just decoded them (copying all 3,174 frames, 4 MB,
//! before the timer left them out of cache, which no pipeline does).
//! SciPy's input array is likewise made untimed.
//!
//! Second table: the whole EEG chain (4th-order Butterworth band-pass
//! 0.5-45 Hz, 50 Hz notch, band_powers) as beds of 64-channel 256 Hz EEG
//! per core. The recording is 128 Hz; its samples are relabelled 256 Hz
//! (not resampled), so filters, windows (512 samples) and segments (256)
//! cost exactly what a 256 Hz stream costs, and the record lasts half as
//! long. Beds = channel-samples/s / (64 × 256). Two more rows time the
//! stages alone (the filters; band_powers on the filtered frames), so the
//! split of the chain's time is visible.
//!
//!     cargo bench -p sigfab-benches --bench band_powers

use std::path::Path;
use std::time::Duration;

use sigfab_benches::{
    frames_of, median_and_best_of, paired_rounds_of, pin_to_one_core, read_recording, time_of,
    with_raw_samples, PythonPeer,
};
use sigfab_engine::shared_data;
use sigfab_operators::features::{BandPowers, BandPowersConfig};
use sigfab_operators::filters::design::Band;
use sigfab_operators::filters::sos::Kernel;
use sigfab_operators::filters::{ChannelSelection, IirDesign, IirFilter};
use sigfab_operators::{ChannelSpec, Frame, Item, Operator, Output};

const RUNS: usize = 7;
/// Rounds of ours then SciPy (one SciPy run, ~0.3 s, per round).
const ROUNDS: usize = 7;
const RECORDING: &str = "edf/eegmmidb-style-64ch-128hz.edf";

/// Runs `frames` through `op`; the number of records (channel-windows)
/// it made.
fn run_ours(op: &mut BandPowers, frames: Vec<Frame>) -> usize {
    let mut out = Output::default();
    let mut records = 0;
    for frame in frames {
        op.process(Item::Frame(frame), &mut out).expect("accepted");
        records += out.drain().count();
    }
    records
}

/// Frames copied and timed together: one second of 40 ms frames.
const CHUNK: usize = 25;

/// How long `run` takes on copies of `frames`, each chunk of [`CHUNK`]
/// copied untimed just before `run` gets it: operators consume their
/// frames, as in a pipeline, where frames come owned from a source that
/// has just decoded them, so copying them is the harness's work, not the
/// operators', and the copies are as fresh in cache as a source's.
fn time_on_copies(frames: &[Frame], mut run: impl FnMut(Vec<Frame>)) -> Duration {
    frames
        .chunks(CHUNK)
        .map(|chunk| {
            let owned = chunk.to_vec();
            time_of(|| run(owned))
        })
        .sum()
}

/// [`run_ours`] timed on copies of `frames` through a fresh operator (its
/// channels are set up by the first frame, in the timed part): the time
/// and the record count.
fn timed_run(frames: &[Frame]) -> (Duration, usize) {
    let mut op = BandPowers::new(BandPowersConfig::eeg_default());
    let mut records = 0;
    let time = time_on_copies(frames, |owned| records += run_ours(&mut op, owned));
    (time, records)
}

/// Median and best seconds of [`timed_run`], and its record count.
fn time_ours(frames: &[Frame]) -> (f64, f64, usize) {
    let mut records = 0;
    let (median, best) = median_and_best_of(RUNS, || {
        let (time, made) = timed_run(frames);
        records = made;
        time
    });
    (median.as_secs_f64(), best.as_secs_f64(), records)
}

/// Passes each frame through `chain` in order, handing what comes out of
/// the last operator to `take`.
fn run_chain(chain: &mut [Box<dyn Operator>], frames: Vec<Frame>, mut take: impl FnMut(Item)) {
    let (mut a, mut b) = (Output::default(), Output::default());
    for frame in frames {
        a.push(Item::Frame(frame));
        for op in chain.iter_mut() {
            for item in a.drain() {
                op.process(item, &mut b).expect("accepted");
            }
            std::mem::swap(&mut a, &mut b);
        }
        a.drain().for_each(&mut take);
    }
}

/// Median and best seconds of the filters + band_powers chain over every
/// frame, and the records made.
fn time_chain(frames: &[Frame]) -> (f64, f64, usize) {
    let mut records = 0;
    let (median, best) = median_and_best_of(RUNS, || {
        let mut chain: [Box<dyn Operator>; 2] = [
            filters(),
            Box::new(BandPowers::new(BandPowersConfig::eeg_default())),
        ];
        records = 0;
        time_on_copies(frames, |owned| run_chain(&mut chain, owned, |_| records += 1))
    });
    (median.as_secs_f64(), best.as_secs_f64(), records)
}

/// Median and best seconds of the filters alone over every frame, and
/// the filtered frames (for timing band_powers alone on them).
fn time_filters(frames: &[Frame]) -> (f64, f64, Vec<Frame>) {
    let mut filtered = Vec::new();
    let (median, best) = median_and_best_of(RUNS, || {
        filtered.clear();
        let mut chain = [filters()];
        time_on_copies(frames, |owned| {
            run_chain(&mut chain, owned, |item| {
                if let Item::Frame(f) = item {
                    filtered.push(f);
                }
            })
        })
    });
    (median.as_secs_f64(), best.as_secs_f64(), filtered)
}

/// The chain's filters: 4th-order Butterworth band-pass 0.5-45 Hz, then a
/// 50 Hz notch, as one `iir` operator (as pipelines/eeg-clean.yaml has them).
fn filters() -> Box<dyn Operator> {
    let bandpass = IirDesign::Butterworth {
        order: 4,
        band: Band::Bandpass(0.5, 45.0),
    };
    let notch = IirDesign::Notch {
        frequency: 50.0,
        q: 30.0,
        harmonics: 0,
    };
    Box::new(IirFilter::cascade(
        vec![bandpass, notch],
        ChannelSelection::All,
        false,
        Kernel::detect(),
    ))
}

/// What a SciPy peer computes per window start, after `signal.welch` on
/// all channels at once.
#[derive(Clone, Copy)]
enum PeerWork {
    /// The five band sums only.
    BandSums,
    /// The operator's 16 values, vectorised over channels, with the
    /// formulas of scripts/make_feature_references.py (the accuracy
    /// references; the entropy through `scipy.special.entr`): absolute and
    /// relative band powers, total, SEF50/90/95, peak frequency, spectral
    /// entropy.
    AllValues,
}

impl PeerWork {
    fn label(self) -> &'static str {
        match self {
            PeerWork::BandSums => "scipy.signal.welch (64 channels per call) + band sums",
            PeerWork::AllValues => {
                "scipy.signal.welch (64 channels per call) + the operator's 16 values (numpy)"
            }
        }
    }
}

/// SciPy on the same windows, kept running as a paired peer.
fn scipy_peer(raw: &Path, channels: usize, work: PeerWork) -> Option<PythonPeer> {
    // The bins of each band and of the edge range are found once, before
    // the timed runs, as the operator's plan does: the peer's per-window
    // work is the welch call and the values only.
    let values = match work {
        PeerWork::BandSums => "[p[:, m].sum(axis=-1) for m in masks]",
        PeerWork::AllValues => {
            "absolute = [p[:, m].sum(axis=-1) * df for m in masks]\n        \
             pr = p[:, edge]\n        \
             total = pr.sum(axis=-1)\n        \
             total_power = total * df\n        \
             relative = [a / total_power for a in absolute]\n        \
             cumulative = np.cumsum(pr, axis=-1)\n        \
             sefs = [fr[np.argmax(cumulative >= e * total[:, None], axis=-1)] for e in (0.5, 0.9, 0.95)]\n        \
             peak = fr[np.argmax(pr, axis=-1)]\n        \
             entropy = special.entr(pr / total[:, None]).sum(axis=-1) / np.log(pr.shape[-1])"
        }
    };
    let setup = format!(
        "import numpy as np\nfrom scipy import signal, special\n\
         x = np.fromfile('{raw}', dtype='<f4').reshape({channels}, -1).astype(np.float64)\n\
         f, _ = signal.welch(x[:, :256], fs=128, nperseg=128, axis=-1)\n\
         df = f[1] - f[0]\n\
         masks = [(f >= lo) & (f < hi) for lo, hi in [(1, 4), (4, 8), (8, 13), (13, 30), (30, 50)]]\n\
         edge = (f >= 1) & (f < 50)\n\
         fr = f[edge]\n\
         def run():\n    for s in range(0, x.shape[1] - 256 + 1, 32):\n        \
         f, p = signal.welch(x[:, s:s + 256], fs=128, nperseg=128, axis=-1)\n        {values}",
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
    assert_eq!(rate, 128.0, "the SciPy peer assumes 128 Hz");
    let works = [PeerWork::BandSums, PeerWork::AllValues];
    let mut peers = with_raw_samples(&channels, |raw| {
        works.map(|work| scipy_peer(raw, channels.len(), work))
    });
    let frames = frames_of(&specs, &channels, (rate * 0.040).round() as usize);
    let windows = run_ours(
        &mut BandPowers::new(BandPowersConfig::eeg_default()),
        frames.clone(),
    );
    let expected = channels.len() * ((channels[0].len() - 256) / 32 + 1);
    assert_eq!(windows, expected, "same windows as the peer");
    println!(
        "\nband_powers 2 s / 250 ms, Welch 1 s segments: {RECORDING}, {} channels x {} samples at {rate} Hz, {windows} channel-windows, {ROUNDS} rounds of ours ({RUNS} runs) then SciPy (1 run) per peer, {}",
        channels.len(),
        channels[0].len(),
        if pinned { "pinned to one core" } else { "NOT pinned (sched_setaffinity failed)" },
    );
    println!("| case | median ms | channel-windows/s (median) | vs SciPy (median round) | (lowest - highest round) |");
    println!("|---|---:|---:|---:|---:|");
    let rate_of = |seconds: f64| windows as f64 / seconds;
    for (work, peer) in works.into_iter().zip(peers.iter_mut()) {
        let paired = peer.as_mut().and_then(|peer| {
            paired_rounds_of(
                ROUNDS,
                RUNS,
                || std::hint::black_box(timed_run(&frames)).0,
                peer,
                1,
            )
        });
        match paired {
            Some(p) => {
                println!(
                    "| ours, band_powers operator, 40 ms frames (rounds paired with the next row) | {:.1} | {:.0} | {:.1}x | {:.1}x - {:.1}x |",
                    p.ours * 1e3,
                    rate_of(p.ours),
                    p.ratio,
                    p.ratio_low,
                    p.ratio_high,
                );
                println!(
                    "| peer: {} | {:.1} | {:.0} | 1.0x | |",
                    work.label(),
                    p.peer * 1e3,
                    rate_of(p.peer),
                );
            }
            None => {
                let (median, _, _) = time_ours(&frames);
                println!(
                    "| ours, band_powers operator, 40 ms frames | {:.1} | {:.0} | n/a | |",
                    median * 1e3,
                    rate_of(median),
                );
                println!("| peer: {} | n/a (pip install numpy scipy) | | | |", work.label());
            }
        }
    }
    drop(peers);

    // The whole chain at 256 Hz (relabelled, see the header).
    let relabelled: Vec<ChannelSpec> = specs
        .iter()
        .map(|s| ChannelSpec {
            sample_rate: 256.0,
            ..s.clone()
        })
        .collect();
    let frames = frames_of(&relabelled, &channels, 10);
    let (median, best, windows) = time_chain(&frames);
    let channel_samples = (channels.len() * channels[0].len()) as f64;
    let beds = |seconds: f64| channel_samples / seconds / (64.0 * 256.0);
    println!(
        "\nEEG chain (Butterworth 4th-order band-pass 0.5-45 Hz + 50 Hz notch + band_powers 2 s / 250 ms), samples relabelled 256 Hz, 40 ms frames, {windows} channel-windows, median of {RUNS} runs"
    );
    println!("| case | median ms | channel-samples/s (median) | (best) | beds of 64 ch x 256 Hz per core (median) | (best) |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| ours, iir (band-pass + notch, one pass) + band_powers | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} |",
        median * 1e3,
        channel_samples / median,
        channel_samples / best,
        beds(median),
        beds(best),
    );
    // Where the chain's time goes: each stage alone on its own input.
    let (f_median, f_best, filtered) = time_filters(&frames);
    let (b_median, b_best, b_windows) = time_ours(&filtered);
    assert_eq!(b_windows, windows, "the same windows as the chain");
    for (case, m, b) in [
        ("of which: iir (band-pass + notch) alone", f_median, f_best),
        (
            "of which: band_powers alone, on the filtered frames",
            b_median,
            b_best,
        ),
    ] {
        println!(
            "| {case} ({:.0} % of the stages' sum) | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} |",
            100.0 * m / (f_median + b_median),
            m * 1e3,
            channel_samples / m,
            channel_samples / b,
            beds(m),
            beds(b),
        );
    }
}
