//! The JSON encoding: one object per message, for low-rate devices and
//! debugging. `docs/wire-format.md` is the specification.
//!
//! The encoder writes JSON by hand (no intermediate tree, no per-sample
//! allocation). The decoder parses in two passes: the first reads only `v`,
//! so a future version's message is reported as such rather than as an
//! unknown field; the second is strict (`deny_unknown_fields`, objects only).
//! Floats are parsed from their JSON text with Rust's correctly rounded
//! parser (via `RawValue`), so every f32 sample and f64 rate or value that
//! the encoder writes reads back bit for bit.

use std::io::Write as _;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Record};

use super::{
    channel_slices, check_count, check_rate, check_str, WireError, MAX_CHANNELS, MAX_LABELS, MAX_MESSAGE_LEN,
    MAX_METADATA, MAX_VALUES, VERSION,
};

// ---------------------------------------------------------------- encoding

/// Appends the JSON encoding of `item` to `out`, without a trailing newline.
pub fn encode_json(item: &Item, out: &mut Vec<u8>) {
    match item {
        Item::Frame(frame) => frame_json(frame, out),
        Item::Record(record) => record_json(record, out),
    }
}

fn frame_json(frame: &Frame, out: &mut Vec<u8>) {
    out.reserve(256 + 12 * frame.sample_count());
    out.extend_from_slice(b"{\"v\":1,\"type\":\"frame\",\"stream_id\":");
    put_str(out, &frame.stream_id);
    out.extend_from_slice(b",\"modality\":");
    put_str(out, frame.modality.as_str());
    put_fmt(
        out,
        format_args!(",\"start_ns\":{},\"sequence\":{}", frame.start_ns, frame.sequence),
    );
    put_fmt(
        out,
        format_args!(",\"discontinuity\":{},\"channels\":[", frame.discontinuity),
    );
    for (i, (spec, samples)) in channel_slices(frame).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        put_str(out, &spec.name);
        out.extend_from_slice(b",\"unit\":");
        put_str(out, &spec.unit);
        out.extend_from_slice(b",\"rate\":");
        put_float(out, spec.sample_rate);
        out.extend_from_slice(b",\"samples\":[");
        for (j, &sample) in samples.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            put_float(out, sample);
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"],\"metadata\":{");
    for (i, (key, value)) in frame.metadata.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, key);
        out.push(b':');
        put_str(out, value);
    }
    out.extend_from_slice(b"}}");
}

fn record_json(record: &Record, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"v\":1,\"type\":\"record\",\"stream_id\":");
    put_str(out, &record.stream_id);
    out.extend_from_slice(b",\"kind\":");
    put_str(out, &record.kind);
    put_fmt(
        out,
        format_args!(
            ",\"start_ns\":{},\"end_ns\":{},\"sequence\":{},\"values\":{{",
            record.start_ns, record.end_ns, record.sequence
        ),
    );
    for (i, (name, value)) in record.values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, name);
        out.push(b':');
        put_float(out, value);
    }
    out.push(b'}');
    if !record.labels.is_empty() {
        out.extend_from_slice(b",\"labels\":{");
        for (i, (key, value)) in record.labels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            put_str(out, key);
            out.push(b':');
            put_str(out, value);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// `Vec<u8>`'s `io::Write` never fails, so the result carries nothing.
fn put_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
}

/// Shortest text that parses back to the same value (`{:?}` uses exponent
/// notation for very large and small values, which JSON allows); every
/// non-finite value becomes `null`.
fn put_float<T: std::fmt::Debug + JsonFloat>(out: &mut Vec<u8>, x: T) {
    if x.is_finite() {
        put_fmt(out, format_args!("{x:?}"));
    } else {
        out.extend_from_slice(b"null");
    }
}

/// A JSON string: escapes `"`, `\` and control characters; copies the rest
/// (already valid UTF-8) in runs.
fn put_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut run = 0;
    let mut unicode = *b"\\u0000";
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                unicode[4] = HEX[usize::from(b >> 4)];
                unicode[5] = HEX[usize::from(b & 15)];
                &unicode
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        out.extend_from_slice(escape);
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

// ---------------------------------------------------------------- decoding

/// Decodes one JSON message; whitespace around the object is allowed,
/// anything else is not.
pub fn decode_json(bytes: &[u8]) -> Result<Item, WireError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(WireError::MessageTooLarge {
            len: bytes.len() as u64,
            max: MAX_MESSAGE_LEN as u64,
        });
    }
    let envelope: MapOnly<Envelope> = parse(bytes)?;
    match envelope.0.v {
        Some(1) => {}
        Some(version) => return Err(WireError::UnsupportedVersion { version }),
        None => return Err(WireError::MissingField { field: "v" }),
    }
    let message: MapOnly<MessageJson> = parse(bytes)?;
    let message = message.0;
    match need(message.message_type.as_deref(), "type")? {
        "frame" => build_frame(message).map(Item::Frame),
        "record" => build_record(message).map(Item::Record),
        _ => Err(WireError::UnknownMessageTypeName),
    }
}

fn parse<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, WireError> {
    serde_json::from_slice(bytes).map_err(|e| WireError::from_json(&e))
}

/// First pass: only the version; every other field is skipped unread.
#[derive(Deserialize)]
struct Envelope {
    v: Option<u64>,
}

/// Second pass: every field either message type may have. Which ones a type
/// requires or forbids is checked by [`build_frame`] and [`build_record`],
/// so that a missing field gets a typed error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageJson {
    #[allow(dead_code)] // checked by the first pass
    v: Option<u64>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    stream_id: Option<String>,
    sequence: Option<JsonInt<u64>>,
    start_ns: Option<JsonInt<i64>>,
    // frame only
    modality: Option<String>,
    discontinuity: Option<bool>,
    channels: Option<Vec<MapOnly<ChannelJson>>>,
    metadata: Option<Pairs<String>>,
    // record only
    kind: Option<String>,
    end_ns: Option<JsonInt<i64>>,
    values: Option<Pairs<JsonFloatValue<f64>>>,
    labels: Option<Pairs<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelJson {
    name: String,
    unit: String,
    rate: JsonFloatValue<f64>,
    samples: Samples,
}

fn build_frame(m: MessageJson) -> Result<Frame, WireError> {
    forbid(m.kind.is_some(), "kind", "frame")?;
    forbid(m.end_ns.is_some(), "end_ns", "frame")?;
    forbid(m.values.is_some(), "values", "frame")?;
    forbid(m.labels.is_some(), "labels", "frame")?;
    let stream_id = need(m.stream_id, "stream_id")?;
    check_str("stream id", &stream_id)?;
    let modality = Modality::parse(&need(m.modality, "modality")?).ok_or(WireError::UnknownModalityName)?;
    let start_ns = need(m.start_ns, "start_ns")?.0;
    let sequence = need(m.sequence, "sequence")?.0;
    let (layout, counts, samples) = build_channels(need(m.channels, "channels")?)?;
    let metadata = m.metadata.map_or_else(Vec::new, |p| p.0);
    check_count(metadata.len(), MAX_METADATA, |count, max| {
        WireError::TooManyMetadata { count, max }
    })?;
    for (key, value) in &metadata {
        check_str("metadata key", key)?;
        check_str("metadata value", value)?;
    }
    let mut frame = Frame::new(
        stream_id.into(),
        modality,
        layout,
        start_ns,
        sequence,
        counts,
        samples,
    )?;
    frame.discontinuity = m.discontinuity.unwrap_or(false);
    frame.metadata = metadata.into();
    Ok(frame)
}

type Channels = (Arc<ChannelLayout>, Vec<u32>, Vec<f32>);

/// Moves the per-channel sample arrays into one planar buffer.
fn build_channels(channels: Vec<MapOnly<ChannelJson>>) -> Result<Channels, WireError> {
    check_count(channels.len(), MAX_CHANNELS, |count, max| {
        WireError::TooManyChannels { count, max }
    })?;
    let total = channels.iter().map(|c| c.0.samples.0.len()).sum();
    let mut samples = Vec::with_capacity(total);
    let mut counts = Vec::with_capacity(channels.len());
    let mut specs = Vec::with_capacity(channels.len());
    for (index, MapOnly(channel)) in channels.into_iter().enumerate() {
        check_str("channel name", &channel.name)?;
        check_str("channel unit", &channel.unit)?;
        check_rate(index, channel.rate.0)?;
        // Cannot fail: the input is at most 64 MiB, so fewer than 2^32 samples.
        counts.push(u32::try_from(channel.samples.0.len()).unwrap_or(u32::MAX));
        samples.extend_from_slice(&channel.samples.0);
        specs.push(ChannelSpec {
            name: channel.name,
            unit: channel.unit,
            sample_rate: channel.rate.0,
        });
    }
    Ok((Arc::new(ChannelLayout::new(specs)), counts, samples))
}

fn build_record(m: MessageJson) -> Result<Record, WireError> {
    forbid(m.modality.is_some(), "modality", "record")?;
    forbid(m.discontinuity.is_some(), "discontinuity", "record")?;
    forbid(m.channels.is_some(), "channels", "record")?;
    forbid(m.metadata.is_some(), "metadata", "record")?;
    let stream_id = need(m.stream_id, "stream_id")?;
    check_str("stream id", &stream_id)?;
    let kind = need(m.kind, "kind")?;
    check_str("record kind", &kind)?;
    let values = need(m.values, "values")?.0;
    check_count(values.len(), MAX_VALUES, |count, max| WireError::TooManyValues {
        count,
        max,
    })?;
    for (name, _) in &values {
        check_str("value name", name)?;
    }
    let labels = m.labels.map_or_else(Vec::new, |p| p.0);
    check_count(labels.len(), MAX_LABELS, |count, max| WireError::TooManyLabels {
        count,
        max,
    })?;
    for (key, value) in &labels {
        check_str("label key", key)?;
        check_str("label value", value)?;
    }
    Ok(Record {
        stream_id: stream_id.into(),
        sequence: need(m.sequence, "sequence")?.0,
        kind: kind.into(),
        start_ns: need(m.start_ns, "start_ns")?.0,
        end_ns: need(m.end_ns, "end_ns")?.0,
        values: values.into_iter().map(|(n, v)| (Arc::from(n), v.0)).collect(),
        labels: labels
            .into_iter()
            .map(|(k, v)| (Arc::from(k), Arc::from(v)))
            .collect(),
    })
}

fn need<T>(value: Option<T>, field: &'static str) -> Result<T, WireError> {
    value.ok_or(WireError::MissingField { field })
}

fn forbid(present: bool, field: &'static str, message_type: &'static str) -> Result<(), WireError> {
    if present {
        Err(WireError::FieldNotAllowed { field, message_type })
    } else {
        Ok(())
    }
}

/// Accepts only a JSON object for `T`: serde's derived structs would also
/// take an array of the fields in order, which the format does not allow.
struct MapOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(MapOnly)
    }
}

/// A JSON object read in order, duplicates kept, into key/value pairs.
struct Pairs<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<V> {
            type Value = Pairs<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs<V>, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor(PhantomData))
    }
}

/// An integer given as a JSON number or as a decimal string (for clients,
/// such as JavaScript, whose numbers lose precision beyond 2^53).
struct JsonInt<T>(T);

impl<'de, T> Deserialize<'de> for JsonInt<T>
where
    T: TryFrom<i64> + TryFrom<u64> + FromStr,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IntVisitor(PhantomData)).map(JsonInt)
    }
}

struct IntVisitor<T>(PhantomData<T>);

impl<T> Visitor<'_> for IntVisitor<T>
where
    T: TryFrom<i64> + TryFrom<u64> + FromStr,
{
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer or a decimal string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom("integer out of range"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom("integer out of range"))
    }

    /// Only `-?[0-9]+`: Rust's parser would also take a leading `+`.
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        let digits = s.strip_prefix('-').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(E::custom("expected a decimal integer string"));
        }
        s.parse().map_err(|_| E::custom("integer out of range"))
    }
}

/// Floats the decoder reads from their JSON text.
trait JsonFloat: FromStr + Copy {
    const NAN: Self;
    fn is_finite(self) -> bool;
}

impl JsonFloat for f32 {
    const NAN: Self = f32::NAN;
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl JsonFloat for f64 {
    const NAN: Self = f64::NAN;
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

/// `null` is NaN; a number must be finite in `T` (`1e39` is not an f32).
fn parse_float<T: JsonFloat>(raw: &RawValue) -> Result<T, &'static str> {
    let text = raw.get().trim();
    if text == "null" {
        return Ok(T::NAN);
    }
    // A raw value is valid JSON, so one that starts like a number is a JSON
    // number, whose grammar is a subset of what `FromStr` accepts.
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err("expected a number or null");
    }
    match text.parse::<T>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err("number out of range"),
        Err(_) => Err("invalid number"),
    }
}

/// A number or `null` (NaN).
struct JsonFloatValue<T>(T);

impl<'de, T: JsonFloat> Deserialize<'de> for JsonFloatValue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(deserializer)?;
        parse_float(raw).map(JsonFloatValue).map_err(de::Error::custom)
    }
}

/// A sample array, pushed straight into a `Vec<f32>`.
struct Samples(Vec<f32>);

impl<'de> Deserialize<'de> for Samples {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SamplesVisitor;
        impl<'de> Visitor<'de> for SamplesVisitor {
            type Value = Samples;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of numbers and nulls")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Samples, A::Error> {
                let mut samples = Vec::new();
                while let Some(JsonFloatValue(x)) = seq.next_element::<JsonFloatValue<f32>>()? {
                    samples.push(x);
                }
                Ok(Samples(samples))
            }
        }
        deserializer.deserialize_seq(SamplesVisitor)
    }
}

const _: () = assert!(VERSION == 1, "the encoder above writes \"v\":1 literally");
