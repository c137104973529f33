#!/usr/bin/env python3
"""SciPy/numpy references for the HRV values (operators/src/cardio/hrv.rs).

Reads the reference beat annotations of MIT-BIH record 100 with the wfdb
package (beat labels only, as bxb's isqrs), cuts them into 300 s windows
every 150 s, and per window computes on the beat times t = sample / fs:

- RR = diff(t) in ms; mean HR = 60000 / mean(RR); SDNN = std(RR, ddof=1);
  RMSSD = sqrt(mean(diff(RR)^2)); pNN50 = 100 * mean(|diff(RR)| > 50 ms);
- the RR series placed at t[1:], numpy.interp onto a 4 Hz grid from t[1]
  to t[-1]; scipy.signal.welch(grid, fs=4, nperseg=256) with its defaults;
  LF = sum(PSD[k]) * df over f_k in [0.04, 0.15), HF over [0.15, 0.40).

engine/tests/hrv_reference.rs feeds the same beat times (read with our MIT
annotation reader) to `Hrv::compute` and compares to 1e-9 relative.

Usage: python3 scripts/make_hrv_references.py [SHARED_DATA_DIR]
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import scipy
import wfdb
from scipy import signal

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "reference" / "cardio" / "hrv_100.json"
BEATS = set("NLRBAaJSVrFejnE/fQ?")
WINDOW_S, HOP_S = 300.0, 150.0


def hrv(t):
    rr = np.diff(t) * 1e3
    d = np.diff(rr)
    values = {
        "beats": float(len(t)),
        "mean_hr_bpm": 60000.0 / rr.mean(),
        "sdnn_ms": rr.std(ddof=1),
        "rmssd_ms": np.sqrt(np.mean(d * d)),
        "pnn50": 100.0 * np.mean(np.abs(d) > 50.0),
    }
    at = t[1:]
    points = int(np.floor((at[-1] - at[0]) * 4.0 + 1e-9)) + 1
    grid_t = at[0] + np.arange(points) / 4.0
    grid = np.interp(grid_t, at, rr)
    f, p = signal.welch(grid, fs=4.0, nperseg=256)
    df = f[1] - f[0]
    lf = p[(f >= 0.04) & (f < 0.15)].sum() * df
    hf = p[(f >= 0.15) & (f < 0.40)].sum() * df
    values.update(lf_ms2=lf, hf_ms2=hf, lf_hf=lf / hf)
    return values


def main():
    data = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SIGFAB_SHARED_DATA", REPO.parent / "shared" / "data"))
    ann = wfdb.rdann(str(data / "wfdb" / "100"), "atr")
    fs = 360.0
    samples = np.array([s for s, c in zip(ann.sample, ann.symbol) if c in BEATS])
    t = samples / fs
    windows = []
    start = 0.0
    while start + WINDOW_S <= t[-1]:
        sel = t[(t >= start) & (t < start + WINDOW_S)]
        windows.append({"start_s": start, "values": hrv(sel)})
        start += HOP_S
    out = {
        "record": "wfdb/100",
        "generator": f"scripts/make_hrv_references.py, numpy {np.__version__}, scipy {scipy.__version__}, wfdb {wfdb.__version__}",
        "fs": fs,
        "beats": len(samples),
        "beat_sample_sum": int(samples.sum()),
        "window_s": WINDOW_S,
        "hop_s": HOP_S,
        "windows": windows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}: {len(windows)} windows")


if __name__ == "__main__":
    main()
