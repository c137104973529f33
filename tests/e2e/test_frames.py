"""Frames cut from `sigfab dump` of MIT-BIH record 100 (no broker needed)."""

from __future__ import annotations

from frames import FRAME_NS, START_NS, dump, record_100_frames, sample_boundary
from wire import decode, encode, f32_bits


def test_sample_clock_at_360_hz():
    # 40 ms at 360 Hz is 14.4 samples: frames alternate 15 and 14 and never drift.
    counts = [sample_boundary(k + 1, FRAME_NS, 360.0) - sample_boundary(k, FRAME_NS, 360.0) for k in range(5)]
    assert counts == [15, 14, 15, 14, 14]
    assert sample_boundary(25 * 3600, FRAME_NS, 360.0) == 3600 * 360


def test_non_integer_rate_does_not_drift():
    total = sample_boundary(25 * 3600, FRAME_NS, 249.89)
    assert total == 899_604  # ceil(3600 × 249.89)


def test_frames_of_record_100_cover_every_sample(sigfab, shared_data):
    names, columns = dump(sigfab, shared_data / "wfdb" / "100", 0, 20)
    frames = record_100_frames(sigfab, shared_data, "bed-1", 0, 20)

    assert len(frames) == 500
    assert [f.sequence for f in frames] == list(range(500))
    assert frames[1].start_ns - frames[0].start_ns == FRAME_NS and frames[0].start_ns == START_NS
    assert {len(f.channels[0].samples) for f in frames} == {14, 15}
    for c, name in enumerate(names):
        joined = [s for f in frames for s in f.channels[c].samples]
        assert joined == columns[c], name
    # The first samples of record 100 (MLII, V5), as the WFDB header and data give them.
    assert (frames[0].channels[0].samples[0], frames[0].channels[1].samples[0]) == (columns[0][0], columns[1][0])
    assert abs(columns[0][0] - -0.145) < 1e-6 and abs(columns[1][0] - -0.065) < 1e-6


def test_frames_survive_the_json_encoding_bit_for_bit(sigfab, shared_data):
    for frame in record_100_frames(sigfab, shared_data, "bed-2", 20, 2):
        back = decode(encode(frame))
        assert back == frame
        assert [f32_bits(s) for c in back.channels for s in c.samples] == [
            f32_bits(s) for c in frame.channels for s in c.samples
        ]
