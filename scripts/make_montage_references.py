#!/usr/bin/env python3
"""numpy references for the montage operator (operators/src/montage.rs).

Reads the first 5 s of all 64 channels of the EEG recording with our own
reader (`sigfab dump`, as make_filter_references.py does) and writes, under
tests/reference/montage/:
- outputs.json + outputs.f32: in float64 numpy,
  * common average over all 64 channels (8 stored output channels),
  * linked reference to the mean of T9 and T10 (8 stored),
  * the double banana (all 18, names matched T7=T3, T8=T4, P7=T5, P8=T6),
  * a matrix montage (two rows) with gain, offset and DC removal by the
    documented one-pole running mean (tau 1 s, mean started at the first
    value), computed with scipy.signal.lfilter;
  stored as little-endian float32.

Usage: python3 scripts/make_montage_references.py [SHARED_DATA_DIR]
"""

import json
import sys
from pathlib import Path

import numpy as np
import scipy
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_filter_references as iir  # noqa: E402

REPO = iir.REPO
OUT_DIR = REPO / "tests" / "reference" / "montage"
RECORDING = "edf/eegmmidb-style-64ch-128hz.edf"
RATE = 128.0
SECONDS = 5
STORED = ["Fc5.", "C3..", "Cz..", "C4..", "Fp1.", "O1..", "T7..", "Pz.."]
BANANA = [("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"), ("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"),
          ("T6", "O2"), ("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"), ("Fp2", "F4"), ("F4", "C4"),
          ("C4", "P4"), ("P4", "O2"), ("Fz", "Cz"), ("Cz", "Pz")]
MODERN = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
MATRIX = [("laplacian_C3", {"C3..": 1.0, "C1..": -0.25, "C5..": -0.25, "Fc3.": -0.25, "Cp3.": -0.25}),
          ("half_sum", {"O1..": 0.5, "O2..": 0.5})]
GAIN = {"laplacian_C3": 2.0}
OFFSET = {"half_sum": -3.0}
DC_TAU_S = 1.0


def names_of():
    text = iir.subprocess.run(
        ["cargo", "run", "--quiet", "--bin", "sigfab", "--", "dump", str(iir.shared_dir() / RECORDING),
         "--duration", "0.01"], cwd=REPO, check=True, capture_output=True, text=True).stdout
    return text.splitlines()[0].split(",")[1:]


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    names = names_of()
    x32 = iir.read_excerpt(RECORDING, names, SECONDS)
    x = x32.astype(np.float64)
    index = {n: i for i, n in enumerate(names)}
    by_label = {n.rstrip(".").lower(): i for i, n in enumerate(names)}
    blob = bytearray()
    cases = []

    def store(name, out_names, y):
        cases.append({"name": name, "channels": out_names, "offset": len(blob) // 4, "samples_per_channel": int(y.shape[1])})
        blob.extend(y.astype("<f4").tobytes())

    car = x - x.mean(axis=0, keepdims=True)
    store("common_average", STORED, car[[index[n] for n in STORED]])
    ref = x[[index["T9.."], index["T10."]]].mean(axis=0, keepdims=True)
    linked = x - ref
    store("linked_T9_T10", STORED, linked[[index[n] for n in STORED]])
    label = lambda n: by_label[MODERN.get(n, n).lower()]
    banana = np.array([x[label(a)] - x[label(b)] for a, b in BANANA])
    store("double_banana", [f"{a}-{b}" for a, b in BANANA], banana)
    rows = []
    a = 1.0 - np.exp(-1.0 / (DC_TAU_S * RATE))
    for name, weights in MATRIX:
        y = sum(w * x[index[n]] for n, w in weights.items())
        mean, _ = signal.lfilter([a], [1.0, -(1.0 - a)], y, zi=[(1.0 - a) * y[0]])
        y = (y - mean) * GAIN.get(name, 1.0) + OFFSET.get(name, 0.0)
        rows.append(y)
    store("matrix_dc_gain_offset", [n for n, _ in MATRIX], np.array(rows))
    (OUT_DIR / "outputs.f32").write_bytes(bytes(blob))
    meta = {
        "generated_by": "scripts/make_montage_references.py",
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "recording": RECORDING,
        "channels": names,
        "samples_per_channel": int(x.shape[1]),
        "first_samples": [float(v) for v in x32[:, 0]],
        "sum": float(x.sum()),
        "matrix": [{"name": n, "weights": w} for n, w in MATRIX],
        "gain": GAIN,
        "offset": OFFSET,
        "dc_time_constant_s": DC_TAU_S,
        "cases": cases,
    }
    (OUT_DIR / "outputs.json").write_text(json.dumps(meta, indent=1) + "\n")
    for f in sorted(OUT_DIR.iterdir()):
        print(f"{f.relative_to(REPO)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
