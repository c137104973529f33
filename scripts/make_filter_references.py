#!/usr/bin/env python3
"""SciPy references for the IIR filters (operators/src/filters).

Writes, under tests/reference/filters/:
- designs.json: scipy.signal.butter(..., output='sos') and iirnotch for a
  table of kinds, orders, edges and sample rates (including the fractional
  249.89 Hz of WFDB), which engine/tests/filters_reference.rs compares with
  our design to 1e-9;
- outputs.json + outputs.f32: scipy.signal.sosfilt (float64) on real
  excerpts, stored as little-endian float32 (compared at relative RMS error
  <= 1e-5, so float32 storage, 6e-8, does not matter);
- the one-hour 0.1 Hz high-pass at 1 kHz on seeded noise (every 1000th
  output and the last 1000), for the stability test.

The input is read with our own readers (`sigfab dump`, shortest round-trip
text of each f32), so SciPy filters exactly the samples the Rust test
filters; each excerpt also records its first samples and float64 sum, and
the test checks them before comparing outputs.

Usage: python3 scripts/make_filter_references.py [SHARED_DATA_DIR]
       (default: $SIGFAB_SHARED_DATA or ../shared/data beside the repo;
       needs numpy and scipy, and cargo to build sigfab)
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
OUT_DIR = REPO / "tests" / "reference" / "filters"

# Real excerpts: (name, recording, channels, seconds from the start).
EXCERPTS = [
    ("eeg", "edf/eegmmidb-style-64ch-128hz.edf", ["Fc5.", "Fc3.", "Cz..", "O2.."], 30),
    ("ecg", "wfdb/100", ["MLII", "V5"], 20),
]

# Filters run on the excerpts. A filter is a list of stages (one pipeline
# operator each); a stage is a butterworth or notch design.
OUTPUT_CASES = [
    ("eeg_bandpass_0.5_45_o4", "eeg", [("butter", 4, [0.5, 45], "bandpass")], False),
    ("eeg_notch_50_q30", "eeg", [("notch", 50, 30, 0)], False),
    ("eeg_bandpass_then_notch", "eeg", [("butter", 4, [0.5, 45], "bandpass"), ("notch", 50, 30, 0)], False),
    ("eeg_highpass_1_o2_warm", "eeg", [("butter", 2, 1.0, "highpass")], True),
    ("eeg_lowpass_30_o5", "eeg", [("butter", 5, 30.0, "lowpass")], False),
    ("eeg_bandstop_45_55_o3_warm", "eeg", [("butter", 3, [45, 55], "bandstop")], True),
    ("ecg_highpass_0.5_o2_warm", "ecg", [("butter", 2, 0.5, "highpass")], True),
    ("ecg_bandpass_0.5_40_o3", "ecg", [("butter", 3, [0.5, 40], "bandpass")], False),
    ("ecg_notch_60_q30_harmonics_2", "ecg", [("notch", 60, 30, 2)], True),
    ("ecg_lowpass_40_o8", "ecg", [("butter", 8, 40.0, "lowpass")], False),
]

DESIGN_RATES = [128.0, 249.89, 360.0, 1000.0]


def shared_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    env = os.environ.get("SIGFAB_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def read_excerpt(recording, channels, seconds):
    """The named channels, as float32 exactly as our readers give them."""
    text = subprocess.run(
        ["cargo", "run", "--quiet", "--bin", "sigfab", "--", "dump", str(shared_dir() / recording),
         "--channels", ",".join(channels), "--duration", str(seconds)],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][1:] == channels, rows[0]
    return np.array([[np.float32(v) for v in row[1:]] for row in rows[1:]], dtype=np.float32).T


def notch_sos(frequency, q, harmonics, fs):
    rows = []
    for k in range(1, harmonics + 2):
        if k > 1 and k * frequency >= fs / 2:
            break
        b, a = signal.iirnotch(k * frequency, q, fs=fs)
        rows.append(np.concatenate([b, a]))
    return np.array(rows)


def stage_sos(stage, fs):
    if stage[0] == "butter":
        _, order, cutoff, kind = stage
        return signal.butter(order, cutoff, kind, fs=fs, output="sos")
    _, frequency, q, harmonics = stage
    return notch_sos(frequency, q, harmonics, fs)


def stage_json(stage):
    if stage[0] == "butter":
        _, order, cutoff, kind = stage
        edges = cutoff if isinstance(cutoff, list) else [cutoff]
        return {"type": "butterworth", "kind": kind, "order": order, "cutoff_hz": edges}
    _, frequency, q, harmonics = stage
    return {"type": "notch", "frequency_hz": frequency, "q": q, "harmonics": harmonics}


def design_table():
    designs = []
    for kind in ["lowpass", "highpass"]:
        for order in [1, 2, 3, 4, 5, 8]:
            for cutoff in [0.1, 1.0, 40.0]:
                designs.append(("butter", order, cutoff, kind))
    for kind, bands in [("bandpass", [[0.5, 45], [8, 12]]), ("bandstop", [[45, 55], [58, 62]])]:
        for order in [1, 2, 3, 4, 6]:
            for band in bands:
                designs.append(("butter", order, band, kind))
    for frequency in [50, 60]:
        for q in [10, 30, 50]:
            designs.append(("notch", frequency, q, 0))
    out = []
    for fs in DESIGN_RATES:
        for stage in designs:
            sos = stage_sos(stage, fs)
            out.append({
                "sample_rate": fs,
                **stage_json(stage),
                "sos": sos.tolist(),
                "zi": signal.sosfilt_zi(sos).tolist(),
            })
    return out


def splitmix64(seed, n):
    """The generator the Rust test uses: uniform in [-0.5, 0.5) as float32."""
    mask = (1 << 64) - 1
    state = seed
    out = np.empty(n, dtype=np.float32)
    for i in range(n):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        out[i] = np.float32((z >> 40) / float(1 << 24) - 0.5)
    return out


def stability_case():
    """One hour at 1 kHz of 1000 uV offset plus 100 uV-wide noise, through
    a 2nd-order 0.1 Hz high-pass."""
    fs, n = 1000.0, 3_600_000
    x = (np.float32(1000.0) + np.float32(100.0) * splitmix64(2024, n)).astype(np.float32)
    sos = signal.butter(2, 0.1, "highpass", fs=fs, output="sos")
    y = signal.sosfilt(sos, x.astype(np.float64))
    every = 1000
    return {
        "sample_rate": fs,
        "samples": n,
        "seed": 2024,
        "offset": 1000.0,
        "scale": 100.0,
        "stage": stage_json(("butter", 2, 0.1, "highpass")),
        "input_sum": float(x.astype(np.float64).sum()),
        "every": every,
        "sampled_outputs": y[::every].tolist(),
        "last_outputs": y[-1000:].tolist(),
        "max_abs_output": float(np.abs(y).max()),
    }


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    excerpts = {}
    inputs = {}
    for name, recording, channels, seconds in EXCERPTS:
        x = read_excerpt(recording, channels, seconds)
        inputs[name] = x
        excerpts[name] = {
            "recording": recording,
            "channels": channels,
            "samples_per_channel": int(x.shape[1]),
            "first_samples": [[float(v) for v in row[:8]] for row in x],
            "sum": float(x.astype(np.float64).sum()),
        }
    rates = {"eeg": 128.0, "ecg": 360.0}
    blob = bytearray()
    cases = []
    for name, excerpt, stages, warm in OUTPUT_CASES:
        fs = rates[excerpt]
        x = inputs[excerpt].astype(np.float64)
        sos = np.vstack([stage_sos(s, fs) for s in stages])
        if warm:
            # Each stage is its own operator, warm-started on its own input.
            y = x
            for stage in stages:
                rows = stage_sos(stage, fs)
                zi = signal.sosfilt_zi(rows)[:, None, :] * y[None, :, 0:1]
                y, _ = signal.sosfilt(rows, y, axis=-1, zi=zi)
        else:
            y = signal.sosfilt(sos, x, axis=-1)
        cases.append({
            "name": name,
            "excerpt": excerpt,
            "sample_rate": fs,
            "warm_start": warm,
            "stages": [stage_json(s) for s in stages],
            "offset": len(blob) // 4,
            "values": int(y.size),
        })
        blob += y.astype("<f4").tobytes()
    (OUT_DIR / "outputs.f32").write_bytes(bytes(blob))
    meta = {
        "generated_by": "scripts/make_filter_references.py",
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "excerpts": excerpts,
        "outputs_file": "outputs.f32 (little-endian float32, channel after channel per case)",
        "cases": cases,
        "stability": stability_case(),
    }
    (OUT_DIR / "outputs.json").write_text(json.dumps(meta, indent=1) + "\n")
    (OUT_DIR / "designs.json").write_text(json.dumps(design_table()) + "\n")
    for f in sorted(OUT_DIR.iterdir()):
        print(f"{f.relative_to(REPO)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
