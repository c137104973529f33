#!/usr/bin/env python3
"""SciPy references for the Welch band-power features (operators/src/features).

Writes tests/reference/features/band_powers.json: for a real EEG excerpt
(read with our own readers through `sigfab dump`, so SciPy sees exactly the
f32 samples the Rust test sees), every 2 s window every 250 ms of each
channel, and per window scipy.signal.welch(x, fs, nperseg=1 s) with its
defaults (periodic Hann, noverlap = nperseg // 2, detrend='constant',
scaling='density', average='mean', one-sided) in float64, then:

- band power = sum of PSD[k] * df over bins with f_k in [low, high);
- total = the same over [lowest band low, highest band high); rel = band / total;
- SEF p = lowest f_k in the edge range where the cumulative PSD reaches p of
  the range's sum; peak = f_k of the largest PSD bin in the range (first on ties);
- spectral entropy = -sum(q log2 q) / log2(N) over the N edge-range bins,
  q = PSD / sum(PSD) (0 log 0 = 0).

It also writes, with numpy implementations of the definitions in
docs/features.md on the same windows:
- time_features.json: line length, RMS, Hjorth activity/mobility/complexity,
  zero crossings, burst-suppression ratio (compared to 1e-6 relative);
- signal_quality.json: flat, clipping, NaN, line-noise (scipy welch) and
  out-of-range fractions, ok, reasons (1e-6 relative);
- audio_features.json: a synthetic 16 kHz signal (tone + chirp + LCG noise,
  formula repeated in engine/tests/window_features_reference.rs) and per
  25 ms / 10 ms window RMS, dBFS, 40 HTK log-mel energies, centroid
  (1e-5 relative, absolute below 1).

engine/tests/features_reference.rs compares our records with these values to
1e-4 relative.

Usage: python3 scripts/make_feature_references.py [SHARED_DATA_DIR]
       (default: $SIGFAB_SHARED_DATA or ../shared/data; needs numpy, scipy, cargo)
"""

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy
from scipy import signal

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "reference" / "features" / "band_powers.json"

RECORDING = "edf/eegmmidb-style-64ch-128hz.edf"
CHANNELS = ["Fc5.", "Cz..", "Oz..", "T8.."]
SECONDS = 12
WINDOW_S, HOP_S, SEGMENT_S = 2.0, 0.25, 1.0
BANDS = [("delta", 1, 4), ("theta", 4, 8), ("alpha", 8, 13), ("beta", 13, 30), ("gamma", 30, 50)]
EDGES = [0.5, 0.9, 0.95]


def shared_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    env = os.environ.get("SIGFAB_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def read_excerpt():
    """The named channels, as float32 exactly as our readers give them."""
    text = subprocess.run(
        ["cargo", "run", "--quiet", "--bin", "sigfab", "--", "dump", str(shared_dir() / RECORDING),
         "--channels", ",".join(CHANNELS), "--duration", str(SECONDS)],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][1:] == CHANNELS, rows[0]
    return np.array([[np.float32(v) for v in row[1:]] for row in rows[1:]], dtype=np.float32).T


def features(x, fs):
    nperseg = int(round(SEGMENT_S * fs))
    f, psd = signal.welch(x.astype(np.float64), fs=fs, nperseg=nperseg)
    df = f[1] - f[0]

    def power(lo, hi):
        return psd[(f >= lo) & (f < hi)].sum() * df

    lo = min(b[1] for b in BANDS)
    hi = max(b[2] for b in BANDS)
    absolute = [power(b[1], b[2]) for b in BANDS]
    total = power(lo, hi)
    in_range = (f >= lo) & (f < hi)
    fr, pr = f[in_range], psd[in_range]
    cumulative = np.cumsum(pr)
    sefs = [float(fr[np.argmax(cumulative >= e * pr.sum())]) for e in EDGES]
    peak = float(fr[np.argmax(pr)])
    q = pr / pr.sum()
    nz = q[q > 0]
    entropy = float(-(nz * np.log2(nz)).sum() / np.log2(len(pr)))
    return absolute + [a / total for a in absolute] + [total] + sefs + [peak, entropy]


# Time-domain features (operators/src/features/time.rs).
SUPPRESSION_THRESHOLD, SUPPRESSION_MIN_S = 25.0, 0.25
TIME_NAMES = ["line_length", "rms", "activity", "mobility", "complexity", "zero_crossings", "bsr"]


def runs(mask):
    """Lengths of the runs of True in mask, with their start indices."""
    out, start = [], None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i - start))
            start = None
    return out


def time_features(x, fs):
    x = x.astype(np.float64)
    dx, ddx = np.diff(x), np.diff(x, n=2)
    activity = np.var(x)
    mobility = np.sqrt(np.var(dx) / activity)
    complexity = np.sqrt(np.var(ddx) / np.var(dx)) / mobility
    y = x - x.mean()
    crossings = np.count_nonzero(np.diff(y < 0))
    min_run = max(1, int(round(SUPPRESSION_MIN_S * fs)))
    suppressed = sum(n for _, n in runs(np.abs(x) < SUPPRESSION_THRESHOLD) if n >= min_run)
    return [np.abs(dx).sum(), np.sqrt(np.mean(x * x)), activity, mobility, complexity,
            float(crossings), suppressed / len(x)]


# Signal quality (operators/src/features/quality.rs), default thresholds.
QUALITY = {"flat_min_s": 0.1, "mains_hz": 50.0, "segment_s": 1.0, "range": [-500.0, 500.0],
           "max": [0.1, 0.05, 0.1, 0.5, 0.05]}
QUALITY_NAMES = ["flat_fraction", "clip_fraction", "nan_fraction", "line_noise_ratio",
                 "out_of_range_fraction", "ok", "reasons"]


def quality(x, fs):
    x = x.astype(np.float64)
    n = len(x)
    flat_min = max(2, int(round(QUALITY["flat_min_s"] * fs)))
    same = np.concatenate([[False], np.diff(x) == 0])
    # A run of k equal differences is a flat run of k + 1 samples.
    flat = sum(k + 1 for _, k in runs(same[1:]) if k + 1 >= flat_min)
    lo, hi = x.min(), x.max()
    clip = 0 if lo == hi else (np.count_nonzero(x == lo) - 1) + (np.count_nonzero(x == hi) - 1)
    nan = np.count_nonzero(np.isnan(x))
    f, psd = signal.welch(x, fs=fs, nperseg=min(int(round(QUALITY["segment_s"] * fs)), n))
    line = psd[np.abs(f - QUALITY["mains_hz"]) <= 1].sum() / psd[(f >= 1) & (f < 100)].sum()
    lo_r, hi_r = QUALITY["range"]
    oor = np.count_nonzero((x < lo_r) | (x > hi_r))
    values = [flat / n, clip / n, nan / n, line, oor / n]
    reasons = sum(bit for v, m, bit in zip(values, QUALITY["max"], [1, 2, 4, 8, 16]) if v > m)
    return values + [1.0 if reasons == 0 else 0.0, float(reasons)]


# Audio (operators/src/features/audio.rs).
AUDIO_RATE, AUDIO_N, AUDIO_WINDOW, AUDIO_HOP, N_FFT, MELS = 16000.0, 8000, 400, 160, 512, 40


def audio_signal():
    """The synthetic test signal, as f32, with the same f64 operations in
    the same order as the Rust test (math.sin is the platform libm, as Rust's)."""
    state = 12345
    out = []
    for i in range(AUDIO_N):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        noise = (state >> 11) / float(1 << 53) * 2.0 - 1.0
        t = i / AUDIO_RATE
        tone = 0.3 * math.sin(2.0 * math.pi * 440.0 * t)
        chirp = 0.2 * math.sin(2.0 * math.pi * (200.0 * t + 5800.0 * t * t))
        out.append(tone + chirp + 0.05 * noise)
    return np.array(out, dtype=np.float32)


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(fs):
    lo, hi = hz_to_mel(0.0), hz_to_mel(fs / 2)
    edges = mel_to_hz(lo + (hi - lo) * np.arange(MELS + 2) / (MELS + 1))
    f = np.arange(N_FFT // 2 + 1) * fs / N_FFT
    bank = np.zeros((MELS, len(f)))
    for b in range(MELS):
        up = (f - edges[b]) / (edges[b + 1] - edges[b])
        down = (edges[b + 2] - f) / (edges[b + 2] - edges[b + 1])
        bank[b] = np.maximum(0.0, np.minimum(up, down))
    return bank


def audio_features(x, bank):
    x = x.astype(np.float64)
    rms = np.sqrt(np.mean(x * x))
    dbfs = 20.0 * np.log10(max(rms, 1e-10))
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(len(x)) / len(x))
    spectrum = np.fft.rfft(x * hann, n=N_FFT)
    power = np.abs(spectrum) ** 2
    magnitude = np.sqrt(power)
    f = np.arange(len(power)) * AUDIO_RATE / N_FFT
    mels = np.log10(np.maximum(bank @ power, 1e-10))
    centroid = (f * magnitude).sum() / magnitude.sum()
    return [rms, dbfs] + list(mels) + [centroid]


def write(name, out):
    path = OUT.parent / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


def main():
    data = read_excerpt()
    fs = 128.0
    window, hop = int(WINDOW_S * fs), int(HOP_S * fs)
    starts = list(range(0, data.shape[1] - window + 1, hop))
    names = ([f"{b[0]}_abs" for b in BANDS] + [f"{b[0]}_rel" for b in BANDS] + ["total_power"]
             + [f"sef{round(e * 100)}" for e in EDGES] + ["peak_hz", "spectral_entropy"])
    out = {
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "recording": RECORDING,
        "channels": CHANNELS,
        "sample_rate": fs,
        "samples_per_channel": int(data.shape[1]),
        "first_samples": [[float(v) for v in c[:8]] for c in data],
        "sum": float(data.astype(np.float64).sum()),
        "window_s": WINDOW_S, "hop_s": HOP_S, "segment_s": SEGMENT_S,
        "bands": [{"name": b[0], "hz": [b[1], b[2]]} for b in BANDS],
        "names": names,
        "window_starts": starts,
        "values": [[features(c[s:s + window], fs) for s in starts] for c in data],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}: {len(CHANNELS)} channels x {len(starts)} windows")
    common = {k: out[k] for k in ["recording", "channels", "sample_rate", "samples_per_channel",
                                  "first_samples", "sum", "window_s", "hop_s", "window_starts"]}
    write("time_features.json", {
        **common, "numpy": np.__version__,
        "suppression_threshold": SUPPRESSION_THRESHOLD, "suppression_min_s": SUPPRESSION_MIN_S,
        "names": TIME_NAMES,
        "values": [[[float(v) for v in time_features(c[s:s + window], fs)] for s in starts]
                   for c in data],
    })
    write("signal_quality.json", {
        **common, "numpy": np.__version__, "scipy": scipy.__version__, "quality": QUALITY,
        "names": QUALITY_NAMES,
        "values": [[[float(v) for v in quality(c[s:s + window], fs)] for s in starts] for c in data],
    })
    x = audio_signal()
    bank = mel_filterbank(AUDIO_RATE)
    audio_starts = list(range(0, AUDIO_N - AUDIO_WINDOW + 1, AUDIO_HOP))
    write("audio_features.json", {
        "numpy": np.__version__, "sample_rate": AUDIO_RATE, "samples": AUDIO_N,
        "sum": float(x.astype(np.float64).sum()), "window": AUDIO_WINDOW, "hop": AUDIO_HOP,
        "n_fft": N_FFT, "mel_bands": MELS, "window_s": AUDIO_WINDOW / AUDIO_RATE,
        "names": ["rms", "dbfs"] + [f"mel{b:02}" for b in range(MELS)] + ["centroid_hz"],
        "window_starts": audio_starts,
        "values": [[[float(v) for v in audio_features(x[s:s + AUDIO_WINDOW], bank)]
                    for s in audio_starts]],
    })


if __name__ == "__main__":
    main()
