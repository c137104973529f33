#!/usr/bin/env python3
"""Cross-checks the beat matcher of engine/tests/ecg_reference.rs against
wfdb.processing.compare_annotations on record 100 (run by hand, not in CI).

1. SIGFAB_WRITE_DETECTIONS=/tmp/det100.txt cargo test --release -p sigfab-engine \
       --test ecg_reference record_100 -- --nocapture
   (writes our detected R-peak sample indices, one a line, and prints our
   TP/FN/FP and Se/PPV)
2. python3 scripts/check_ecg_matcher.py /tmp/det100.txt [SHARED_DATA_DIR]
   prints wfdb's counts on the same detections with a 150 ms window
   (54 samples at 360 Hz), beat labels only; they must equal ours.
"""

import os
import sys
from pathlib import Path

import numpy as np
import wfdb
from wfdb import processing

BEATS = set("NLRBAaJSVrFejnE/fQ?")


def main():
    detections = np.loadtxt(sys.argv[1], dtype=np.int64)
    data = Path(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("SIGFAB_SHARED_DATA", "../shared/data"))
    ann = wfdb.rdann(str(data / "wfdb" / "100"), "atr")
    ref = np.array([s for s, c in zip(ann.sample, ann.symbol) if c in BEATS], dtype=np.int64)
    cmp = processing.compare_annotations(ref, detections, int(round(0.150 * ann.fs)))
    tp = cmp.tp
    fn = cmp.fn
    fp = cmp.fp
    print(f"wfdb compare_annotations: reference {len(ref)}, test {len(detections)}, "
          f"TP {tp} FN {fn} FP {fp}, Se {100 * cmp.sensitivity:.2f} %, PPV {100 * cmp.positive_predictivity:.2f} %")


if __name__ == "__main__":
    main()
