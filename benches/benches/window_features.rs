//! Speed of the other windowed operators, each against a numpy peer doing
//! the same work in the same run, on one core:
//!
//! * `audio_features` (25 ms / 10 ms windows, 40 HTK log-mel bands, RMS,
//!   dBFS, centroid) on 60 s of synthetic 16 kHz mono audio in 20 ms
//!   frames: the real-time factor (audio seconds per wall second). The
//!   peer frames the signal with numpy strides and does the same FFT,
//!   filterbank product and centroid for all windows at once.
//! * `eeg_time_features` and `signal_quality` (2 s / 250 ms) on the real
//!   64-channel EEG in 40 ms frames, channel-windows/s. The time-features
//!   peer is numpy vectorised across channels per window start.
//!
//!     cargo bench -p sigfab-benches --bench window_features

use std::path::Path;

use sigfab_benches::{
    frames_of, median_and_best_time, pin_to_one_core, python_median_and_best, read_recording, speedup,
    with_raw_samples,
};
use sigfab_engine::shared_data;
use sigfab_operators::features::{
    AudioConfig, AudioFeatures, QualityConfig, SignalQuality, TimeFeatures, TimeFeaturesConfig, WindowConfig,
};
use sigfab_operators::{ChannelSpec, Frame, Item, Operator, Output};

const RUNS: usize = 7;
const RECORDING: &str = "edf/eegmmidb-style-64ch-128hz.edf";
const AUDIO_RATE: f64 = 16_000.0;
const AUDIO_SECONDS: usize = 60;

/// Median and best seconds to run every frame through a fresh operator,
/// and the number of records.
fn time_operator(frames: &[Frame], make: &dyn Fn() -> Box<dyn Operator>) -> (f64, f64, usize) {
    let mut records = 0;
    let (median, best) = median_and_best_time(RUNS, || {
        let mut op = make();
        let mut out = Output::default();
        records = 0;
        for frame in frames {
            op.process(Item::Frame(frame.clone()), &mut out)
                .expect("accepted");
            records += out.drain().count();
        }
    });
    (median.as_secs_f64(), best.as_secs_f64(), records)
}

fn audio_peer(raw: &Path) -> Option<(f64, f64)> {
    let script = format!(
        "import time\nimport numpy as np\n\
         x = np.fromfile('{raw}', dtype='<f4').astype(np.float64)\n\
         sr, n, hop, nfft, mels = 16000.0, 400, 160, 512, 40\n\
         def mel(f): return 2595.0 * np.log10(1.0 + f / 700.0)\n\
         edges = 700.0 * (10.0 ** (mel(sr / 2) * np.arange(mels + 2) / (mels + 1) / 2595.0) - 1.0)\n\
         f = np.arange(nfft // 2 + 1) * sr / nfft\n\
         bank = np.maximum(0, np.minimum((f - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None], (edges[2:, None] - f) / (edges[2:] - edges[1:-1])[:, None]))\n\
         hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)\n\
         def run():\n    w = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]\n    \
         rms = np.sqrt((w * w).mean(axis=1)); db = 20 * np.log10(np.maximum(rms, 1e-10))\n    \
         p = np.abs(np.fft.rfft(w * hann, n=nfft, axis=1)) ** 2\n    \
         m = np.log10(np.maximum(p @ bank.T, 1e-10)); mag = np.sqrt(p)\n    \
         c = (mag * f).sum(axis=1) / mag.sum(axis=1)\n    return m\n\
         run()\n\
         ts = []\n\
         for _ in range({RUNS}):\n    t = time.perf_counter(); run(); ts.append(time.perf_counter() - t)\n\
         ts.sort(); print(ts[len(ts) // 2], ts[0])",
        raw = raw.display()
    );
    python_median_and_best(&script)
}

fn time_features_peer(raw: &Path, channels: usize) -> Option<(f64, f64)> {
    let script = format!(
        "import time\nimport numpy as np\n\
         x = np.fromfile('{raw}', dtype='<f4').reshape({channels}, -1).astype(np.float64)\n\
         def run():\n    for s in range(0, x.shape[1] - 256 + 1, 32):\n        w = x[:, s:s + 256]\n        \
         dx = np.diff(w, axis=1); ddx = np.diff(w, n=2, axis=1)\n        \
         ll = np.abs(dx).sum(axis=1); rms = np.sqrt((w * w).mean(axis=1))\n        \
         a = w.var(axis=1); mob = np.sqrt(dx.var(axis=1) / a); comp = np.sqrt(ddx.var(axis=1) / dx.var(axis=1)) / mob\n        \
         y = w - w.mean(axis=1, keepdims=True); zc = np.count_nonzero(np.diff(y < 0, axis=1), axis=1)\n        \
         q = np.abs(w) < 5.0\n\
         run()\n\
         ts = []\n\
         for _ in range({RUNS}):\n    t = time.perf_counter(); run(); ts.append(time.perf_counter() - t)\n\
         ts.sort(); print(ts[len(ts) // 2], ts[0])",
        raw = raw.display()
    );
    python_median_and_best(&script)
}

fn main() {
    let pinned = pin_to_one_core();
    println!(
        "\nwindowed operators, median of {RUNS} runs, {}",
        if pinned {
            "pinned to one core"
        } else {
            "NOT pinned (sched_setaffinity failed)"
        }
    );

    // Audio: deterministic noise plus a tone, 60 s at 16 kHz.
    let n = AUDIO_SECONDS * AUDIO_RATE as usize;
    let mut state: u64 = 1;
    let audio: Vec<f32> = (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            let t = i as f64 / AUDIO_RATE;
            (0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin() + 0.05 * noise) as f32
        })
        .collect();
    let audio = vec![audio];
    let peer = with_raw_samples(&audio, audio_peer);
    let spec = ChannelSpec {
        name: "mic".into(),
        unit: String::new(),
        sample_rate: AUDIO_RATE,
    };
    let frames = frames_of(&[spec], &audio, 320);
    let (median, best, windows) = time_operator(&frames, &|| {
        Box::new(AudioFeatures::new(
            AudioFeatures::default_windows(),
            AudioConfig::default(),
        ))
    });
    println!("\naudio_features, {AUDIO_SECONDS} s of 16 kHz mono, 20 ms frames, {windows} windows (25 ms / 10 ms, 40 mel bands)");
    println!("| case | median ms | real-time factor (median) | (best) | vs numpy (median) | (best) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let rtf = |s: f64| AUDIO_SECONDS as f64 / s;
    println!(
        "| ours, audio_features operator | {:.1} | {:.0}x | {:.0}x | {} | {} |",
        median * 1e3,
        rtf(median),
        rtf(best),
        speedup(median, peer.map(|p| p.0)),
        speedup(best, peer.map(|p| p.1)),
    );
    match peer {
        Some((m, b)) => println!(
            "| peer: numpy, all windows vectorised | {:.1} | {:.0}x | {:.0}x | 1.0x | 1.0x |",
            m * 1e3,
            rtf(m),
            rtf(b)
        ),
        None => println!("| peer: numpy | n/a (pip install numpy) | | | | |"),
    }

    // EEG: time features and quality on the real recording.
    let path = shared_data::require(RECORDING);
    let (specs, channels) = read_recording(&path);
    assert!(
        specs.iter().all(|s| s.sample_rate == 128.0),
        "the peer assumes 128 Hz"
    );
    let peer = with_raw_samples(&channels, |raw| time_features_peer(raw, channels.len()));
    let frames = frames_of(&specs, &channels, 5);
    let windows = || WindowConfig::new(2.0, 0.25);
    let (tm, tb, tw) = time_operator(&frames, &|| {
        Box::new(TimeFeatures::new(windows(), TimeFeaturesConfig::default()))
    });
    let (qm, qb, qw) = time_operator(&frames, &|| {
        Box::new(SignalQuality::new(windows(), QualityConfig::default()))
    });
    assert_eq!(tw, qw);
    println!(
        "\n{RECORDING}: {} channels x {} samples at 128 Hz, 40 ms frames, {tw} channel-windows (2 s / 250 ms)",
        channels.len(),
        channels[0].len()
    );
    println!("| case | median ms | channel-windows/s (median) | (best) | vs numpy time features (median) | (best) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let per_s = |s: f64| tw as f64 / s;
    println!(
        "| ours, eeg_time_features | {:.1} | {:.0} | {:.0} | {} | {} |",
        tm * 1e3,
        per_s(tm),
        per_s(tb),
        speedup(tm, peer.map(|p| p.0)),
        speedup(tb, peer.map(|p| p.1)),
    );
    println!(
        "| ours, signal_quality (incl. Welch line-noise ratio) | {:.1} | {:.0} | {:.0} | | |",
        qm * 1e3,
        per_s(qm),
        per_s(qb),
    );
    match peer {
        Some((m, b)) => println!(
            "| peer: numpy time features (64 channels per call, BSR runs not included) | {:.1} | {:.0} | {:.0} | 1.0x | 1.0x |",
            m * 1e3,
            per_s(m),
            per_s(b)
        ),
        None => println!("| peer: numpy | n/a (pip install numpy) | | | | |"),
    }
}
