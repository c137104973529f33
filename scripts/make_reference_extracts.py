#!/usr/bin/env python3
"""Reference extracts for the recording readers (engine/src/readers).

Reads every recording in shared/data with independent readers -- MNE for
EDF/BDF, wfdb-python for WFDB -- and writes small JSON extracts under
tests/reference/ that engine/tests/readers_reference.rs compares against
(CI does not run Python). It also (re)generates the multi-segment WFDB
fixture in tests/data/multiseg/, cut from MIT-BIH record 100.

Usage: python3 scripts/make_reference_extracts.py [SHARED_DATA_DIR]
       (default: $SIGFAB_SHARED_DATA or ../shared/data beside the repo)

Known differences between the oracles and the EDF formula, handled here:
- MNE scales signals to SI (uV -> V); we divide by MNE's per-channel unit
  factor (_raw_extras['units']) to compare in the file's units.
- MNE drops the "EDF/BDF Annotations" channels (they become annotations).
- MNE returns stim channels (BDF "Trigger") as raw digital values, without
  the physical calibration; for those channels we apply the EDF formula
  (physical = (d - dmin) * (pmax - pmin) / (dmax - dmin) + pmin) to MNE's
  digital values.
- wfdb-python keeps the NUL padding of annotation AUX strings ("(N\\x00");
  our reader strips it, so the extract stores the stripped text.
- wfdb-python returns skewed samples past the end of the file as NaN; so do we.
"""

import json
import os
import sys
from pathlib import Path

import mne
import numpy as np
import wfdb

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tests" / "reference"
MULTISEG_DIR = REPO / "tests" / "data" / "multiseg"
WINDOW = 16  # samples per extract window


def shared_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    env = os.environ.get("SIGFAB_SHARED_DATA")
    return Path(env) if env else REPO.parent.parent / "shared" / "data"


def as_list(values):
    return [None if np.isnan(v) else float(v) for v in values]


def signal_extract(name, unit, rate, resolution, values, extra_starts=()):
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    valid = values[~np.isnan(values)]
    starts = sorted({0, max(0, n // 2 - WINDOW // 2), max(0, n - WINDOW), *extra_starts})
    return {
        "name": name,
        "unit": unit,
        "sample_rate": float(rate),
        "resolution": float(resolution),
        "count": n,
        "nan_count": int(n - len(valid)),
        "sum": float(valid.sum()),
        "min": float(valid.min()) if len(valid) else None,
        "max": float(valid.max()) if len(valid) else None,
        "windows": [{"start": s, "values": as_list(values[s : s + WINDOW])} for s in starts],
    }


def edf_extract(path, relative):
    bdf = path.suffix.lower() == ".bdf"
    read = mne.io.read_raw_bdf if bdf else mne.io.read_raw_edf
    raw = read(path, preload=True, verbose="error")
    extras = raw._raw_extras[0]
    data = raw.get_data()
    signals = []
    for i, name in enumerate(raw.ch_names):
        pmin, pmax = extras["physical_min"][i], extras["physical_max"][i]
        dmin, dmax = extras["digital_min"][i], extras["digital_max"][i]
        resolution = abs((pmax - pmin) / (dmax - dmin))
        if i in extras["stim_channel_idxs"]:
            values = (data[i] - dmin) * (pmax - pmin) / (dmax - dmin) + pmin
        else:
            values = data[i] / extras["units"][i]
        signals.append(signal_extract(name, raw._orig_units.get(name), raw.info["sfreq"], resolution, values))
    ann = raw.annotations
    annotations = {
        "count": len(ann),
        "first": [
            {"onset_s": float(o), "duration_s": float(d), "text": str(t)}
            for o, d, t in list(zip(ann.onset, ann.duration, ann.description))[:12]
        ],
    }
    meas = raw.info["meas_date"]
    return {
        "source": relative,
        "oracle": f"mne {mne.__version__}",
        "start_s": None if meas is None else meas.timestamp(),
        "signals": signals,
        "annotations": annotations,
    }


def wfdb_extract(record, relative, m2s=False, extra_starts=()):
    if m2s:
        rec = wfdb.rdrecord(str(record), m2s=True)
        channels = [rec.p_signal[:, i] for i in range(rec.n_sig)]
        spf = [1] * rec.n_sig
        # m2s leaves adc_gain unset; the layout segment holds the gains.
        layout = wfdb.rdheader(str(Path(record).parent / wfdb.rdheader(str(record)).seg_name[0]))
        rec.adc_gain = layout.adc_gain
    else:
        rec = wfdb.rdrecord(str(record), smooth_frames=False)
        channels = rec.e_p_signal
        spf = rec.samps_per_frame
    signals = [
        signal_extract(rec.sig_name[i], rec.units[i], rec.fs * spf[i], 1.0 / rec.adc_gain[i], channels[i], extra_starts)
        for i in range(rec.n_sig)
    ]
    start = None
    if rec.base_date is not None and rec.base_time is not None:
        import datetime as dt

        start = dt.datetime.combine(rec.base_date, rec.base_time, tzinfo=dt.timezone.utc).timestamp()
    out = {
        "source": relative,
        "oracle": f"wfdb {wfdb.__version__}",
        "start_s": start,
        "signals": signals,
    }
    if Path(str(record) + ".atr").exists():
        out["annotations"] = wfdb_annotations(record, rec.fs)
    return out


def wfdb_annotations(record, fs):
    ann = wfdb.rdann(str(record), "atr")
    codes = {}
    for s in ann.symbol:
        codes[s] = codes.get(s, 0) + 1
    first = [
        {"onset_s": float(s) / fs, "code": c, "text": a.rstrip("\x00"), "channel": int(ch)}
        for s, c, a, ch in list(zip(ann.sample, ann.symbol, ann.aux_note, ann.chan))[:12]
    ]
    last = {"onset_s": float(ann.sample[-1]) / fs, "code": ann.symbol[-1]}
    return {"count": len(ann.sample), "codes": codes, "first": first, "last": last}


def make_multiseg(shared):
    """A variable-layout multi-segment record cut from MIT-BIH 100:
    layout | both leads, fmt 212 (720) | ~ gap (360) | V5 only, fmt 16, other
    gain (540) | MLII only, fmt 80, baseline (360)."""
    MULTISEG_DIR.mkdir(parents=True, exist_ok=True)
    src = wfdb.rdrecord(str(shared / "wfdb" / "100"), physical=False)
    d = src.d_signal
    fs = 360

    def write(name, cols, names, fmt, gain, baseline, digital):
        wfdb.wrsamp(
            name,
            fs=fs,
            units=["mV"] * len(cols),
            sig_name=names,
            d_signal=digital,
            fmt=[fmt] * len(cols),
            adc_gain=[gain] * len(cols),
            baseline=[baseline] * len(cols),
            write_dir=str(MULTISEG_DIR),
        )

    write("multi_1", [0, 1], ["MLII", "V5"], "212", 200.0, 1024, d[0:720, :].astype(np.int64))
    v5 = ((d[1500:2040, 1:2].astype(np.int64) - 1024) * 2)  # gain 400, baseline 0
    write("multi_3", [1], ["V5"], "16", 400.0, 0, v5)
    mlii = np.clip((d[3000:3360, 0:1].astype(np.int64) - 1024) // 8 + 10, -127, 127)  # gain 25, baseline 10
    write("multi_4", [0], ["MLII"], "80", 25.0, 10, mlii)
    (MULTISEG_DIR / "multi_layout.hea").write_text(
        "multi_layout 2 360 0\n~ 0 200(1024)/mV 11 1024 0 0 0 MLII\n~ 0 200(1024)/mV 11 1024 0 0 0 V5\n"
    )
    (MULTISEG_DIR / "multi.hea").write_text(
        "multi/5 2 360 1980 10:20:30 02/03/2004\n"
        "multi_layout 0\nmulti_1 720\n~ 360\nmulti_3 540\nmulti_4 360\n"
        "# variable-layout fixture cut from MIT-BIH record 100 by scripts/make_reference_extracts.py\n"
    )
    return MULTISEG_DIR / "multi"


FORMATS_DIR = REPO / "tests" / "data" / "formats"
FORMATS = ["16", "24", "32", "80", "212"]  # those wfdb-python can write


def make_formats(shared):
    """One small record per signal format, 999 samples of record 100's MLII
    (an odd count, so the 212 file ends in a half group)."""
    FORMATS_DIR.mkdir(parents=True, exist_ok=True)
    src = wfdb.rdrecord(str(shared / "wfdb" / "100"), physical=False, sampto=999)
    d = src.d_signal[:, 0:1].astype(np.int64) - 1024
    for f in FORMATS:
        x = np.clip(d, -127, 127) if f == "80" else d
        wfdb.wrsamp(f"fmt_{f}", fs=360, units=["mV"], sig_name=[f"f{f}"], d_signal=x, fmt=[f],
                    adc_gain=[200.0], baseline=[3], write_dir=str(FORMATS_DIR))
    return {f: wfdb_extract(FORMATS_DIR / f"fmt_{f}", f"tests/data/formats/fmt_{f}") for f in FORMATS}


def write(name, extract):
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(extract, indent=1, allow_nan=False) + "\n")
    print(f"wrote {path.relative_to(REPO)}")


def main():
    shared = shared_dir()
    write("eegmmidb-style-64ch-128hz", edf_extract(shared / "edf" / "eegmmidb-style-64ch-128hz.edf", "edf/eegmmidb-style-64ch-128hz.edf"))
    write("19ch-125hz-annotations", edf_extract(shared / "edf" / "19ch-125hz-annotations.bdf", "edf/19ch-125hz-annotations.bdf"))
    write("100", wfdb_extract(shared / "wfdb" / "100", "wfdb/100"))
    write("03700181", wfdb_extract(shared / "wfdb" / "03700181", "wfdb/03700181"))
    multi = make_multiseg(shared)
    # Extra windows straddle the segment boundaries (720, 1080, 1620).
    write("multiseg", wfdb_extract(multi, "tests/data/multiseg/multi", m2s=True, extra_starts=(712, 1072, 1612)))
    write("formats", make_formats(shared))


if __name__ == "__main__":
    main()
