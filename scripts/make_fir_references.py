#!/usr/bin/env python3
"""SciPy references for the FIR filters and the resampler (operators/src/filters).

Writes, under tests/reference/fir/:
- designs.json: scipy.signal.firwin for a table of kinds, tap counts,
  windows and sample rates; kaiserord + firwin(window=('kaiser', beta)) for
  attenuation/transition pairs; scipy.signal.minimum_phase(method=
  'homomorphic') of some of them. engine/tests/fir_reference.rs compares
  our taps with these (1e-12 for firwin, the minimum-phase tolerance is
  stated in the test).
- outputs.json + outputs.f32: scipy.signal.lfilter(h, 1, x) and
  scipy.signal.resample_poly(x, up, down) in float64 on the real EEG and
  ECG excerpts of make_filter_references.py (read by our readers through
  `sigfab dump`), and resample_poly on seeded noise at 500 Hz -> 256 Hz and
  44.1 kHz -> 16 kHz; stored as little-endian float32.

Usage: python3 scripts/make_fir_references.py [SHARED_DATA_DIR]
"""

import json
import sys
from pathlib import Path

import numpy as np
import scipy
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_filter_references as iir  # noqa: E402  (excerpt reading, noise)

REPO = iir.REPO
OUT_DIR = REPO / "tests" / "reference" / "fir"
RATES = {"eeg": 128.0, "ecg": 360.0}

WINDOWS = {"hamming": "hamming", "hann": "hann", "blackman": "blackman", "kaiser_6": ("kaiser", 6.0)}


def firwin(numtaps, edges, kind, window, fs):
    pass_zero = kind in ("lowpass", "bandstop")
    cutoff = edges[0] if len(edges) == 1 else edges
    return signal.firwin(numtaps, cutoff, window=window, pass_zero=pass_zero, fs=fs)


def kaiser_design(attenuation, transition, edges, kind, fs):
    numtaps, beta = signal.kaiserord(attenuation, transition / (fs / 2))
    if kind in ("highpass", "bandstop") and numtaps % 2 == 0:
        numtaps += 1
    return firwin(numtaps, edges, kind, ("kaiser", beta), fs), numtaps, beta


def design_table():
    bands = {"lowpass": [[30.0]], "highpass": [[1.0]], "bandpass": [[1.0, 40.0], [8.0, 12.0]], "bandstop": [[45.0, 55.0]]}
    out = []
    for fs in [128.0, 249.89, 360.0]:
        for kind, edge_list in bands.items():
            for edges in edge_list:
                for numtaps in [11, 64, 65, 129]:
                    if numtaps % 2 == 0 and kind in ("highpass", "bandstop"):
                        continue
                    for wname, window in WINDOWS.items():
                        h = firwin(numtaps, edges, kind, window, fs)
                        out.append({"sample_rate": fs, "kind": kind, "cutoff_hz": edges, "taps": numtaps,
                                    "window": wname, "h": h.tolist()})
    kaiser = []
    for fs in [128.0, 360.0]:
        for kind, edges in [("lowpass", [30.0]), ("highpass", [0.5]), ("bandpass", [1.0, 40.0]), ("bandstop", [45.0, 55.0])]:
            for attenuation, transition in [(40.0, 4.0), (60.0, 2.0), (80.0, 5.0), (21.0, 3.0)]:
                h, numtaps, beta = kaiser_design(attenuation, transition, edges, kind, fs)
                kaiser.append({"sample_rate": fs, "kind": kind, "cutoff_hz": edges, "attenuation_db": attenuation,
                               "transition_hz": transition, "taps": int(numtaps), "beta": beta, "h": h.tolist()})
    minimum = []
    for fs, kind, edges, numtaps, wname in [(128.0, "lowpass", [30.0], 101, "hamming"),
                                            (360.0, "bandpass", [1.0, 40.0], 255, "blackman"),
                                            (128.0, "highpass", [1.0], 65, "hann"),
                                            (360.0, "lowpass", [40.0], 64, "kaiser_6")]:
        h = firwin(numtaps, edges, kind, WINDOWS[wname], fs)
        hm = signal.minimum_phase(h, method="homomorphic")
        minimum.append({"sample_rate": fs, "kind": kind, "cutoff_hz": edges, "taps": numtaps, "window": wname,
                        "h": hm.tolist()})
    return {"firwin": out, "kaiser": kaiser, "minimum_phase": minimum}


# FIR cases on the real excerpts: (name, excerpt, kind, edges, length, minimum_phase)
# length: ("taps", n, window) or ("kaiser", attenuation_db, transition_hz).
FIR_CASES = [
    ("eeg_lowpass_30_101_hamming", "eeg", "lowpass", [30.0], ("taps", 101, "hamming"), False),
    ("eeg_bandpass_1_40_kaiser_60db_2hz", "eeg", "bandpass", [1.0, 40.0], ("kaiser", 60.0, 2.0), False),
    ("eeg_lowpass_30_101_hamming_minphase", "eeg", "lowpass", [30.0], ("taps", 101, "hamming"), True),
    ("ecg_lowpass_40_63_blackman", "ecg", "lowpass", [40.0], ("taps", 63, "blackman"), False),
    ("ecg_highpass_0.5_kaiser_60db_0.5hz", "ecg", "highpass", [0.5], ("kaiser", 60.0, 0.5), False),
    ("ecg_bandstop_58_62_kaiser_40db_2hz", "ecg", "bandstop", [58.0, 62.0], ("kaiser", 40.0, 2.0), False),
]

# Resampling of the excerpts: (name, excerpt, up, down).
RESAMPLE_CASES = [
    ("ecg_360_to_250", "ecg", 25, 18),
    ("eeg_128_to_100", "eeg", 25, 32),
    ("eeg_128_to_256", "eeg", 2, 1),
]

# Resampling of seeded noise (iir.splitmix64): (name, seed, rate, seconds, up, down).
NOISE_CASES = [
    ("noise_500_to_256", 7, 500.0, 4.0, 64, 125),
    ("noise_44100_to_16000", 8, 44100.0, 0.25, 160, 441),
]


def fir_taps(case):
    _, excerpt, kind, edges, length, minphase = case
    fs = RATES[excerpt]
    if length[0] == "taps":
        h = firwin(length[1], edges, kind, WINDOWS[length[2]], fs)
        length_json = {"taps": length[1], "window": length[2]}
    else:
        h, _, _ = kaiser_design(length[1], length[2], edges, kind, fs)
        length_json = {"attenuation_db": length[1], "transition_hz": length[2]}
    if minphase:
        h = signal.minimum_phase(h, method="homomorphic")
    return h, length_json


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    excerpts, inputs = {}, {}
    for name, recording, channels, seconds in iir.EXCERPTS:
        x = iir.read_excerpt(recording, channels, seconds)
        inputs[name] = x
        excerpts[name] = {
            "recording": recording,
            "channels": channels,
            "samples_per_channel": int(x.shape[1]),
            "first_samples": [[float(v) for v in row[:8]] for row in x],
            "sum": float(x.astype(np.float64).sum()),
        }
    blob = bytearray()
    fir_cases, resample_cases = [], []
    for case in FIR_CASES:
        name, excerpt, kind, edges, _, minphase = case
        h, length_json = fir_taps(case)
        y = signal.lfilter(h, 1.0, inputs[excerpt].astype(np.float64), axis=-1)
        fir_cases.append({"name": name, "excerpt": excerpt, "sample_rate": RATES[excerpt], "kind": kind,
                          "cutoff_hz": edges, **length_json, "minimum_phase": minphase, "taps_designed": len(h),
                          "offset": len(blob) // 4, "values": int(y.size)})
        blob += y.astype("<f4").tobytes()
    for name, excerpt, up, down in RESAMPLE_CASES:
        y = signal.resample_poly(inputs[excerpt].astype(np.float64), up, down, axis=-1)
        resample_cases.append({"name": name, "excerpt": excerpt, "sample_rate": RATES[excerpt], "up": up,
                               "down": down, "per_channel": int(y.shape[1]), "offset": len(blob) // 4,
                               "values": int(y.size)})
        blob += y.astype("<f4").tobytes()
    noise_cases = []
    for name, seed, fs, seconds, up, down in NOISE_CASES:
        n = int(fs * seconds)
        x = iir.splitmix64(seed, n)
        y = signal.resample_poly(x.astype(np.float64), up, down)
        noise_cases.append({"name": name, "seed": seed, "sample_rate": fs, "samples": n, "up": up, "down": down,
                            "input_sum": float(x.astype(np.float64).sum()), "per_channel": int(y.size),
                            "offset": len(blob) // 4, "values": int(y.size)})
        blob += y.astype("<f4").tobytes()
    (OUT_DIR / "outputs.f32").write_bytes(bytes(blob))
    meta = {
        "generated_by": "scripts/make_fir_references.py",
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "excerpts": excerpts,
        "outputs_file": "outputs.f32 (little-endian float32, channel after channel per case)",
        "fir": fir_cases,
        "resample": resample_cases,
        "resample_noise": noise_cases,
    }
    (OUT_DIR / "outputs.json").write_text(json.dumps(meta, indent=1) + "\n")
    (OUT_DIR / "designs.json").write_text(json.dumps(design_table()) + "\n")
    for f in sorted(OUT_DIR.iterdir()):
        print(f"{f.relative_to(REPO)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
