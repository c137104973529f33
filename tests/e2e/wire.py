"""Wire format v1, JSON encoding: an independent encoder and decoder.

Written from docs/wire-format.md alone (sections 1, 2 and 4), without reading
the Rust implementation, to show that the specification suffices.  Frames and
records are plain dataclasses; samples are Python floats holding f32 values.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from fractions import Fraction

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_STRING_BYTES = 1024
MAX_CHANNELS = 4096
MAX_METADATA = 1024
MAX_VALUES = 65536
MAX_SAMPLES_PER_CHANNEL = 2**32 - 1

MODALITIES = ("other", "eeg", "ecg", "abp", "ppg", "spo2", "resp", "audio")

I64 = (-(2**63), 2**63 - 1)
U64 = (0, 2**64 - 1)

FRAME_FIELDS = {"v", "type", "stream_id", "modality", "start_ns", "sequence", "discontinuity", "channels", "metadata"}
RECORD_FIELDS = {"v", "type", "stream_id", "kind", "start_ns", "end_ns", "sequence", "values"}
CHANNEL_FIELDS = {"name", "unit", "rate", "samples"}

_DECIMAL_INTEGER = re.compile(r"-?[0-9]+")


class WireError(ValueError):
    """A message that does not conform to wire format v1 (JSON)."""


@dataclass
class Channel:
    name: str
    unit: str
    rate: float
    samples: list[float]


@dataclass
class Frame:
    stream_id: str
    modality: str
    start_ns: int
    sequence: int
    channels: list[Channel]
    discontinuity: bool = False
    metadata: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Record:
    stream_id: str
    kind: str
    start_ns: int
    end_ns: int
    sequence: int
    values: list[tuple[str, float]]


# ---------------------------------------------------------------- f32 helpers


def to_f32(x: float) -> float:
    """Round a float to the nearest f32 (ties to even); raises OverflowError past f32's range."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _f32_step(y: float, up: bool) -> float:
    """The next f32 after the finite f32 y, towards +inf (up) or -inf."""
    bits = f32_bits(y)
    if y == 0:
        tiny = struct.unpack("<f", struct.pack("<I", 1))[0]
        return tiny if up else -tiny
    bits += 1 if (y > 0) == up else -1
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def decimal_to_f32(text: str) -> float:
    """Correctly rounded conversion of JSON number text to f32.

    Going through f64 first can round twice; that gives a wrong answer only
    when the f64 lands exactly on the midpoint between two f32 values (the
    midpoint is itself an f64, so rounding cannot cross it), so that case is
    settled against the exact decimal value.
    """
    wide = float(text)
    if math.isinf(wide):
        raise OverflowError
    narrow = to_f32(wide)  # ties to even; OverflowError past f32's range
    if narrow == wide:
        return narrow
    other = _f32_step(narrow, up=wide > narrow)
    if math.isinf(other):  # beyond the largest f32: the gap below stands in for the one above
        other = 2 * narrow - _f32_step(narrow, up=wide < narrow)
    midpoint = (Fraction(narrow) + Fraction(other)) / 2
    exact = Fraction(text)
    if Fraction(wide) != midpoint or exact == midpoint:
        return narrow
    return other if (exact > midpoint) == (other > narrow) else narrow


def shortest_f32(x: float) -> str:
    """The shortest decimal that reads back as the same f32."""
    for digits in range(1, 10):
        text = f"{x:.{digits}g}"
        try:
            if to_f32(float(text)) == x:
                return _pretty(repr(float(text)))
        except OverflowError:  # rounded up past the largest f32
            continue
    raise AssertionError("9 significant digits always round-trip an f32")


def shortest_f64(x: float) -> str:
    return _pretty(repr(x))


def _pretty(text: str) -> str:
    """Python's repr of a finite float as JSON: exponents lose '+' and leading zeros."""
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


# ---------------------------------------------------------------- encoding


def encode(message: Frame | Record) -> bytes:
    """One message as compact JSON (no whitespace, no newline)."""
    if isinstance(message, Frame):
        text = _encode_frame(message)
    elif isinstance(message, Record):
        text = _encode_record(message)
    else:
        raise TypeError(f"not a wire message: {type(message).__name__}")
    return text.encode("utf-8")


def _string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _sample(x: float) -> str:
    x = to_f32(x) if math.isfinite(x) else x
    return shortest_f32(x) if math.isfinite(x) else "null"


def _value(x: float) -> str:
    return shortest_f64(x) if math.isfinite(x) else "null"


def _encode_frame(f: Frame) -> str:
    channels = ",".join(
        "{"
        f'"name":{_string(c.name)},"unit":{_string(c.unit)},"rate":{_value(c.rate)},'
        f'"samples":[{",".join(_sample(s) for s in c.samples)}]'
        "}"
        for c in f.channels
    )
    metadata = ",".join(f"{_string(k)}:{_string(v)}" for k, v in f.metadata)
    return (
        f'{{"v":1,"type":"frame","stream_id":{_string(f.stream_id)},"modality":{_string(f.modality)},'
        f'"start_ns":{f.start_ns},"sequence":{f.sequence},'
        f'"discontinuity":{"true" if f.discontinuity else "false"},'
        f'"channels":[{channels}],"metadata":{{{metadata}}}}}'
    )


def _encode_record(r: Record) -> str:
    values = ",".join(f"{_string(k)}:{_value(v)}" for k, v in r.values)
    return (
        f'{{"v":1,"type":"record","stream_id":{_string(r.stream_id)},"kind":{_string(r.kind)},'
        f'"start_ns":{r.start_ns},"end_ns":{r.end_ns},"sequence":{r.sequence},"values":{{{values}}}}}'
    )


# ---------------------------------------------------------------- decoding


class _Number(str):
    """JSON number text with a fraction or exponent, kept exact until its target type is known."""


class _Pairs(list):
    """A JSON object, as its members in order (duplicates kept)."""


def _reject_constant(name: str):
    raise WireError(f"not JSON: {name} is not a number")


def decode(data: bytes | str) -> Frame | Record:
    """Decode exactly one JSON message; raises WireError on anything non-conforming."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        text = data.decode("utf-8")
        tree = json.loads(
            text,
            object_pairs_hook=_Pairs,
            parse_float=_Number,
            parse_constant=_reject_constant,
        )
    except WireError:
        raise
    except UnicodeDecodeError as e:
        raise WireError(f"not UTF-8 at byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise WireError(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except (ValueError, RecursionError):  # e.g. an integer of more than 4300 digits, deep nesting
        raise WireError("not JSON: a number or nesting beyond this decoder's limits") from None
    if not isinstance(tree, _Pairs):
        raise WireError(f"message must be a JSON object, found {_kind(tree)}")
    members = _members(tree, "message")
    _check_version(members)
    kind = _string_field(members, "type")
    if kind == "frame":
        return _decode_frame(members)
    if kind == "record":
        return _decode_record(members)
    raise WireError("type must be \"frame\" or \"record\"")


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, _Number)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Pairs):
        return "object"
    return "array"


def _members(pairs: _Pairs, where: str) -> dict:
    """A struct-like object: duplicate members are rejected."""
    members = {}
    for key, value in pairs:
        if key in members:
            raise WireError(f"{where}: duplicate field {key!r}")
        members[key] = value
    return members


def _check_version(members: dict) -> None:
    v = members.get("v")
    if v is None:
        raise WireError("missing field 'v'")
    if type(v) is not int:
        raise WireError(f"v must be the integer 1, found {_kind(v)}")
    if v != 1:
        raise WireError(f"unsupported version {v}")


def _check_fields(members: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(members) - allowed)
    if unknown:
        raise WireError(f"{where}: unknown field {unknown[0]!r}")


def _required(members: dict, name: str):
    value = members.get(name)
    if value is None:
        raise WireError(f"missing field {name!r}")
    return value


def _checked_string(value, what: str) -> str:
    if not isinstance(value, str) or isinstance(value, _Number):
        raise WireError(f"{what}: expected a string, found {_kind(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise WireError(f"{what}: not valid UTF-8 (lone surrogate)") from None
    if size > MAX_STRING_BYTES:
        raise WireError(f"{what}: {size} bytes exceeds {MAX_STRING_BYTES}")
    return value


def _string_field(members: dict, name: str) -> str:
    return _checked_string(_required(members, name), name)


def _integer_field(members: dict, name: str, bounds: tuple[int, int]) -> int:
    value = _required(members, name)
    if type(value) is int:
        number = value
    elif type(value) is str and _DECIMAL_INTEGER.fullmatch(value):
        number = int(value)
    else:
        raise WireError(f"{name}: expected an integer or a decimal string, found {_kind(value)}")
    if not bounds[0] <= number <= bounds[1]:
        raise WireError(f"{name}: out of range")
    return number


def _float(value, what: str, narrow: bool) -> float:
    """A JSON number or null (NaN) as f32 (narrow) or f64."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, _Number)):
        raise WireError(f"{what}: expected a number or null, found {_kind(value)}")
    try:
        if narrow:
            return decimal_to_f32(str(value))
        number = float(str(value))
    except OverflowError:
        number = math.inf
    if math.isinf(number):
        raise WireError(f"{what}: outside the finite range of {'f32' if narrow else 'f64'}")
    return number


def _array(value, what: str, limit: int) -> list:
    if not isinstance(value, list) or isinstance(value, _Pairs):
        raise WireError(f"{what}: expected an array, found {_kind(value)}")
    if len(value) > limit:
        raise WireError(f"{what}: {len(value)} entries exceed {limit}")
    return value


def _object(value, what: str, limit: int) -> _Pairs:
    if not isinstance(value, _Pairs):
        raise WireError(f"{what}: expected an object, found {_kind(value)}")
    if len(value) > limit:
        raise WireError(f"{what}: {len(value)} entries exceed {limit}")
    return value


def _decode_channel(value, index: int) -> Channel:
    where = f"channels[{index}]"
    if not isinstance(value, _Pairs):
        raise WireError(f"{where}: expected an object, found {_kind(value)}")
    members = _members(value, where)
    _check_fields(members, CHANNEL_FIELDS, where)
    rate = _float(_required(members, "rate"), f"{where}.rate", narrow=False)
    if not (math.isfinite(rate) and rate > 0):
        raise WireError(f"{where}.rate: must be finite and > 0")
    samples = _array(_required(members, "samples"), f"{where}.samples", MAX_SAMPLES_PER_CHANNEL)
    return Channel(
        name=_checked_string(_required(members, "name"), f"{where}.name"),
        unit=_checked_string(_required(members, "unit"), f"{where}.unit"),
        rate=rate,
        samples=[_float(s, f"{where}.samples[{i}]", narrow=True) for i, s in enumerate(samples)],
    )


def _decode_frame(members: dict) -> Frame:
    _check_fields(members, FRAME_FIELDS, "frame")
    modality = _string_field(members, "modality")
    if modality not in MODALITIES:
        raise WireError("modality: unknown name")
    discontinuity = members.get("discontinuity")
    if discontinuity is not None and not isinstance(discontinuity, bool):
        raise WireError(f"discontinuity: expected a boolean, found {_kind(discontinuity)}")
    metadata = members.get("metadata")
    metadata = [] if metadata is None else _object(metadata, "metadata", MAX_METADATA)
    channels = _array(_required(members, "channels"), "channels", MAX_CHANNELS)
    return Frame(
        stream_id=_string_field(members, "stream_id"),
        modality=modality,
        start_ns=_integer_field(members, "start_ns", I64),
        sequence=_integer_field(members, "sequence", U64),
        discontinuity=bool(discontinuity),
        channels=[_decode_channel(c, i) for i, c in enumerate(channels)],
        metadata=[
            (_checked_string(k, "metadata key"), _checked_string(v, "metadata value")) for k, v in metadata
        ],
    )


def _decode_record(members: dict) -> Record:
    _check_fields(members, RECORD_FIELDS, "record")
    values = _object(_required(members, "values"), "values", MAX_VALUES)
    return Record(
        stream_id=_string_field(members, "stream_id"),
        kind=_string_field(members, "kind"),
        start_ns=_integer_field(members, "start_ns", I64),
        end_ns=_integer_field(members, "end_ns", I64),
        sequence=_integer_field(members, "sequence", U64),
        values=[
            (_checked_string(k, "value name"), _float(v, f"values[{i}]", narrow=False))
            for i, (k, v) in enumerate(values)
        ],
    )
