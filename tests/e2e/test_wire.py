"""wire.py against the examples and rules of docs/wire-format.md (no broker, no engine)."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import pytest

from wire import Channel, Frame, Record, WireError, decimal_to_f32, decode, encode, f32_bits, shortest_f32, to_f32

REPO = Path(__file__).resolve().parents[2]
SPEC = (REPO / "docs" / "wire-format.md").read_text()


def spec_example(name: str) -> bytes:
    """The JSON example marked `<!-- example:NAME -->` in the specification."""
    match = re.search(rf"<!-- example:{name} -->\s*```json\n(.*?)\n```", SPEC, re.S)
    assert match, f"example {name} not found in docs/wire-format.md"
    return match.group(1).encode()


def test_frame_example_decodes_to_the_documented_fields():
    frame = decode(spec_example("frame-json"))
    assert isinstance(frame, Frame)
    assert (frame.stream_id, frame.modality, frame.start_ns, frame.sequence, frame.discontinuity) == (
        "bed-1",
        "ecg",
        1_700_000_000_000_000_000,
        7,
        True,
    )
    ii, abp = frame.channels
    assert (ii.name, ii.unit, ii.rate, ii.samples) == ("II", "mV", 250.0, [0.5, -1.0])
    assert (abp.name, abp.unit, abp.rate) == ("ABP", "mmHg", 125.0)
    assert len(abp.samples) == 1 and math.isnan(abp.samples[0])
    assert frame.metadata == [("site", "icu-3")]


@pytest.mark.parametrize("name", ["frame-json", "record-json"])
def test_encoder_reproduces_the_examples_byte_for_byte(name):
    example = spec_example(name)
    assert encode(decode(example)) == example


def test_javascript_frame_with_string_timestamp():
    frame = decode(spec_example("js-frame-json"))
    assert frame.start_ns == 1_700_000_000_000_000_000
    assert frame.discontinuity is False and frame.metadata == []
    assert frame.channels == [Channel("SpO2", "%", 1.0, [97.0])]
    assert decode(encode(frame)) == frame


def test_record_example():
    record = decode(spec_example("record-json"))
    assert isinstance(record, Record)
    assert (record.stream_id, record.kind, record.start_ns, record.end_ns, record.sequence) == (
        "bed-1",
        "frame_stats",
        -5,
        40_000_000,
        42,
    )
    (rms_name, rms), (mean_name, mean) = record.values
    assert (rms_name, rms, mean_name) == ("II.rms", 0.25, "ABP.mean") and math.isnan(mean)


def test_round_trip_keeps_f32_bits_and_metadata_order():
    samples = [0.1, -0.145, 1e-45, 3.4028235e38, -0.0, 123456.789]
    frame = Frame(
        stream_id="bed-9",
        modality="abp",
        start_ns=2**63 - 1,
        sequence=2**64 - 1,
        channels=[Channel("ABP", "mmHg", 124.945, samples)],
        metadata=[("k", "1"), ("k", "2"), ("é", "ü")],
    )
    back = decode(encode(frame))
    assert [f32_bits(x) for x in back.channels[0].samples] == [f32_bits(x) for x in samples]
    assert back.channels[0].rate == 124.945
    assert (back.start_ns, back.sequence, back.metadata) == (frame.start_ns, frame.sequence, frame.metadata)


def test_whitespace_around_the_object_is_accepted():
    assert decode(b" \n\t" + spec_example("record-json") + b"\r\n").sequence == 42


FRAME = '{"v":1,"type":"frame","stream_id":"s","modality":"ecg","start_ns":0,"sequence":0,"channels":[%s]%s}'
CHANNEL = '{"name":"II","unit":"mV","rate":%s,"samples":[%s]}'


def frame_text(channel: str = CHANNEL % ("250.0", "0.5"), extra: str = "") -> str:
    return FRAME % (channel, extra)


@pytest.mark.parametrize(
    "text, complaint",
    [
        (frame_text(extra=',"colour":"red"'), "unknown field"),
        (frame_text(extra=',"kind":"x"'), "unknown field"),  # a record-only field in a frame
        (frame_text('{"name":"II","unit":"mV","rate":250.0,"samples":[],"gain":1}'), "unknown field"),
        (frame_text(extra=',"v":1'), "duplicate"),
        (frame_text().replace('"v":1', '"v":2').replace('"channels"', '"colour":1,"channels"'), "unsupported version"),
        (frame_text().replace('"v":1', '"v":1.0'), "integer 1"),
        (frame_text().replace('"v":1,', ""), "missing field 'v'"),
        (frame_text().replace('"sequence":0', '"sequence":null'), "missing field 'sequence'"),
        (frame_text().replace('"sequence":0', '"sequence":-1'), "out of range"),
        (frame_text().replace('"sequence":0', '"sequence":"1.0"'), "decimal string"),
        (frame_text().replace('"sequence":0', '"sequence":1.0'), "integer"),
        (frame_text().replace('"start_ns":0', '"start_ns":9223372036854775808'), "out of range"),
        (frame_text().replace('"modality":"ecg"', '"modality":"ECG"'), "modality"),
        (frame_text(CHANNEL % ("0", "")), "finite and > 0"),
        (frame_text(CHANNEL % ("null", "")), "missing field 'rate'"),
        (frame_text(CHANNEL % ("1e309", "")), "finite range"),
        (frame_text(CHANNEL % ("250", "1e39")), "finite range of f32"),
        (frame_text(CHANNEL % ("250", "NaN")), "not JSON"),
        (frame_text(CHANNEL % ("250", '"0.5"')), "expected a number"),
        (frame_text('["II","mV",250.0,[0.5]]'), "expected an object"),
        (frame_text(extra=',"metadata":{"k":null}'), "expected a string"),
        (frame_text().replace('"stream_id":"s"', '"stream_id":"%s"' % ("x" * 1025)), "exceeds 1024"),
        (frame_text().replace('"stream_id":"s"', '"stream_id":"\\ud800"'), "UTF-8"),
        (frame_text() + " {}", "not JSON"),
        ("[1]", "must be a JSON object"),
        ("not a frame", "not JSON"),
    ],
)
def test_decoder_rejects(text, complaint):
    with pytest.raises(WireError, match=re.escape(complaint)):
        decode(text.encode())


def test_rejects_messages_over_64_mib():
    with pytest.raises(WireError, match="exceeds"):
        decode(b" " * (64 * 1024 * 1024 + 1))


def test_integers_beyond_2_53_are_exact():
    frame = decode(frame_text().replace('"sequence":0', '"sequence":18446744073709551615').encode())
    assert frame.sequence == 2**64 - 1


def test_decimal_to_f32_rounds_once():
    # Just above the midpoint between 1.0 and the next f32: going through f64
    # lands exactly on the midpoint, and ties-to-even would wrongly give 1.0.
    midpoint = Fraction(1) + Fraction(1, 2**24)
    above = midpoint + Fraction(1, 2**80)
    text = _exact_decimal(above)
    assert float(text) == float(midpoint)
    assert decimal_to_f32(text) == 1.0 + 2**-23
    assert decimal_to_f32(_exact_decimal(midpoint)) == 1.0  # a true tie goes to even


def test_shortest_f32_is_shortest_and_exact():
    assert shortest_f32(decimal_to_f32("0.1")) == "0.1"
    assert shortest_f32(decimal_to_f32("-0.145")) == "-0.145"
    assert shortest_f32(16777216.0) == "16777216.0"
    assert shortest_f32(to_f32(1e-45)) == "1e-45"


def _exact_decimal(x: Fraction) -> str:
    """The exact decimal expansion of a dyadic fraction."""
    digits = 0
    while (x * 10**digits).denominator != 1:
        digits += 1
    scaled = int(x * 10**digits)
    return f"{scaled // 10**digits}.{scaled % 10**digits:0{digits}d}"
