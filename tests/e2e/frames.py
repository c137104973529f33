"""Frames of a real recording, cut the way the engine cuts them.

Samples come from `sigfab dump` (physical values as CSV); frames follow the
sample-clock rule of docs/ARCHITECTURE.md: frame k of duration d holds, for a
channel at rate r, the sample indices i with k·d·r <= i < (k+1)·d·r, counted
from the stream start so that non-integer products never drift.
"""

from __future__ import annotations

import csv
import io
import math
import subprocess
from fractions import Fraction
from pathlib import Path

from wire import Channel, Frame, decimal_to_f32

FRAME_NS = 40_000_000
START_NS = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z


def dump(sigfab: Path, record: Path, start_s: float, duration_s: float) -> tuple[list[str], list[list[float]]]:
    """Channel names and per-channel f32 samples of `sigfab dump`."""
    out = subprocess.run(
        [str(sigfab), "dump", str(record), "--start", str(start_s), "--duration", str(duration_s)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    rows = list(csv.reader(io.StringIO(out)))
    header, body = rows[0], rows[1:]
    if header[0] != "time_s" or len(header) < 2:
        raise ValueError(f"unexpected dump header {header}")
    columns = [[decimal_to_f32(row[c]) for row in body] for c in range(1, len(header))]
    return header[1:], columns


def sample_boundary(frame_index: int, frame_ns: int, rate_hz: float) -> int:
    """First sample index at or after frame_index · frame_ns, computed exactly."""
    return math.ceil(Fraction(frame_index * frame_ns, 10**9) * Fraction(repr(rate_hz)))


def frame_count(samples: int, frame_ns: int, rate_hz: float) -> int:
    """Whole frames in `samples` samples (a trailing partial frame is left out)."""
    k = 0
    while sample_boundary(k + 1, frame_ns, rate_hz) <= samples:
        k += 1
    return k


def cut_frames(
    stream_id: str,
    names: list[str],
    units: list[str],
    rate_hz: float,
    columns: list[list[float]],
    modality: str = "ecg",
    frame_ns: int = FRAME_NS,
    start_ns: int = START_NS,
) -> list[Frame]:
    """Frames with sequences from 0, all channels at one rate."""
    frames = []
    for k in range(frame_count(len(columns[0]), frame_ns, rate_hz)):
        lo, hi = sample_boundary(k, frame_ns, rate_hz), sample_boundary(k + 1, frame_ns, rate_hz)
        channels = [
            Channel(name=name, unit=unit, rate=rate_hz, samples=column[lo:hi])
            for name, unit, column in zip(names, units, columns)
        ]
        frames.append(
            Frame(
                stream_id=stream_id,
                modality=modality,
                start_ns=start_ns + k * frame_ns,
                sequence=k,
                channels=channels,
            )
        )
    return frames


def record_100_frames(sigfab: Path, shared_data: Path, stream_id: str, start_s: float, duration_s: float) -> list[Frame]:
    """40 ms frames of MIT-BIH record 100 (MLII and V5, mV, 360 Hz; see `sigfab inspect`)."""
    names, columns = dump(sigfab, shared_data / "wfdb" / "100", start_s, duration_s)
    assert names == ["MLII", "V5"], names
    return cut_frames(stream_id, names, ["mV", "mV"], 360.0, columns)
