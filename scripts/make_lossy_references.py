#!/usr/bin/env python3
"""Singular values of mean-centred blocks, from numpy, for the lossy codec's test
(engine/tests/codec_lossy_real_data.rs). Writes tests/reference/codec/lossy_svd.json.

Blocks: the first 2 s of the 64-channel EEG (MNE, in µV as the EDF declares) and the
first 10 s of MIT-BIH 100 and the 125 Hz channels of MIMIC 03700181 (wfdb, physical units). Each channel is
cast to f32 first (what our readers give), then centred in f64 and decomposed with
np.linalg.svd (LAPACK gesdd)."""
import json
import os

import mne
import numpy as np
import wfdb

DATA = os.environ.get("SIGFAB_SHARED_DATA", os.path.join(os.path.dirname(__file__), "../../shared/data"))
OUT = os.path.join(os.path.dirname(__file__), "../tests/reference/codec/lossy_svd.json")


def values(block_f32):
    x = block_f32.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return np.linalg.svd(x, compute_uv=False).tolist()


def main():
    out = []
    raw = mne.io.read_raw_edf(os.path.join(DATA, "edf/eegmmidb-style-64ch-128hz.edf"), preload=True, verbose=False)
    eeg = raw.get_data(units="uV")[:, : 2 * 128].astype(np.float32)
    out.append({"recording": "edf/eegmmidb-style-64ch-128hz.edf", "seconds": 2, "singular_values": values(eeg)})
    # 03700181 is multi-rate (MCL1 at 500 Hz, ABP and RESP at 125 Hz): a lossy block holds
    # one rate, so its reference is the 125 Hz pair.
    for name, rate, channels in [("100", 360, [0, 1]), ("03700181", 125, [1, 2])]:
        rec = wfdb.rdrecord(os.path.join(DATA, "wfdb", name), sampto=10 * rate, channels=channels)
        x = rec.p_signal.T.astype(np.float32)
        out.append({"recording": f"wfdb/{name}", "channels": channels, "seconds": 10, "singular_values": values(x)})
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
