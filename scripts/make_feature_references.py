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
  the range's sum; peak = f_k of the largest PSD bin in the range (first on ties).

engine/tests/features_reference.rs compares our records with these values to
1e-4 relative.

Usage: python3 scripts/make_feature_references.py [SHARED_DATA_DIR]
       (default: $SIGFAB_SHARED_DATA or ../shared/data; needs numpy, scipy, cargo)
"""

import csv
import io
import json
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
    return absolute + [a / total for a in absolute] + [total] + sefs + [peak]


def main():
    data = read_excerpt()
    fs = 128.0
    window, hop = int(WINDOW_S * fs), int(HOP_S * fs)
    starts = list(range(0, data.shape[1] - window + 1, hop))
    names = ([f"{b[0]}_abs" for b in BANDS] + [f"{b[0]}_rel" for b in BANDS] + ["total_power"]
             + [f"sef{round(e * 100)}" for e in EDGES] + ["peak_hz"])
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


if __name__ == "__main__":
    main()
