//! Wire format v1: how frames and records travel between processes and files.
//!
//! Two encodings of the same messages, specified byte by byte in
//! `docs/wire-format.md`:
//! * **binary** — a 12-byte header (magic `SGFB`, version, type, flags, total
//!   length), a little-endian body and a CRC-32C trailer. Samples are planar
//!   f32, so encoding is one reserve and a copy loop;
//! * **JSON** — one object per message for low-rate devices and debugging;
//!   NaN samples (gaps) are `null`.
//!
//! Every message carries its channel specs inline, so a consumer can start
//! decoding mid-stream. Decoders never panic, check each length against the
//! bytes that remain before allocating, and reject anything not in the spec
//! (unknown version, type, flag bits, fields, trailing bytes) with a typed
//! [`WireError`] that never quotes message content.
//!
//! A byte stream of concatenated binary messages (a `.sgfb` file) is split
//! with [`split_binary`].

mod binary;
mod error;
mod json;

#[cfg(test)]
mod tests;

use sigfab_operators::{ChannelSpec, Frame, FrameError, Item, Record};

pub use binary::{
    decode_binary, encode_frame_binary, encode_record_binary, encoded_binary_len, split_binary,
};
pub use error::WireError;
pub use json::{decode_json, encode_json};

/// The version this module writes and the only one it reads.
pub const VERSION: u8 = 1;
/// First four bytes of every binary message.
pub const MAGIC: [u8; 4] = *b"SGFB";
/// Fixed binary header: magic, version, type, flags (u16), total length (u32).
pub const HEADER_LEN: usize = 12;
/// The CRC-32C trailer of a binary message.
pub const CRC_LEN: usize = 4;
/// Largest message, in bytes, in either encoding (64 MiB).
pub const MAX_MESSAGE_LEN: usize = 64 << 20;
/// Most channels in one frame.
pub const MAX_CHANNELS: usize = 4096;
/// Longest string (stream id, channel name or unit, record kind, value
/// name, metadata key or value), in UTF-8 bytes.
pub const MAX_STRING_LEN: usize = 1024;
/// Most metadata entries in one frame.
pub const MAX_METADATA: usize = 1024;
/// Most named values in one record.
pub const MAX_VALUES: usize = 65_536;
/// Most labels (string pairs) on one record.
pub const MAX_LABELS: usize = 1024;

/// Which encoding a byte slice holds or should hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    Binary,
    Json,
}

/// Appends one encoded message to `out`; JSON gets no trailing newline.
///
/// Never fails: an item beyond the limits above still encodes, into a
/// message that every decoder rejects with the matching error (length fields
/// saturate rather than wrap). Call [`check_limits`] first to find out early.
pub fn encode(item: &Item, encoding: Encoding, out: &mut Vec<u8>) {
    match (encoding, item) {
        (Encoding::Binary, Item::Frame(frame)) => encode_frame_binary(frame, out),
        (Encoding::Binary, Item::Record(record)) => encode_record_binary(record, out),
        (Encoding::Json, item) => encode_json(item, out),
    }
}

/// Decodes exactly one message; `bytes` must hold nothing else.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<Item, WireError> {
    match encoding {
        Encoding::Binary => decode_binary(bytes),
        Encoding::Json => decode_json(bytes),
    }
}

/// Checks that `item` is within the format's limits, so that its binary
/// encoding decodes. (Its JSON encoding is larger, so may still exceed
/// [`MAX_MESSAGE_LEN`].)
pub fn check_limits(item: &Item) -> Result<(), WireError> {
    match item {
        Item::Frame(frame) => check_frame(frame)?,
        Item::Record(record) => check_record(record)?,
    }
    let len = encoded_binary_len(item);
    if len > MAX_MESSAGE_LEN as u64 {
        return Err(WireError::MessageTooLarge {
            len,
            max: MAX_MESSAGE_LEN as u64,
        });
    }
    Ok(())
}

fn check_frame(frame: &Frame) -> Result<(), WireError> {
    check_str("stream id", &frame.stream_id)?;
    let channels = &frame.layout.channels;
    if channels.len() != frame.counts().len() {
        return Err(FrameError::CountsMismatch {
            counts: frame.counts().len(),
            channels: channels.len(),
        }
        .into());
    }
    check_count(channels.len(), MAX_CHANNELS, |count, max| {
        WireError::TooManyChannels { count, max }
    })?;
    for (channel, spec) in channels.iter().enumerate() {
        check_str("channel name", &spec.name)?;
        check_str("channel unit", &spec.unit)?;
        check_rate(channel, spec.sample_rate)?;
    }
    check_count(frame.metadata.len(), MAX_METADATA, |count, max| {
        WireError::TooManyMetadata { count, max }
    })?;
    for (key, value) in &frame.metadata {
        check_str("metadata key", key)?;
        check_str("metadata value", value)?;
    }
    Ok(())
}

fn check_record(record: &Record) -> Result<(), WireError> {
    check_str("stream id", &record.stream_id)?;
    check_str("record kind", &record.kind)?;
    check_count(record.values.len(), MAX_VALUES, |count, max| {
        WireError::TooManyValues { count, max }
    })?;
    for (name, _) in &record.values {
        check_str("value name", name)?;
    }
    check_count(record.labels.len(), MAX_LABELS, |count, max| {
        WireError::TooManyLabels { count, max }
    })?;
    for (key, value) in &record.labels {
        check_str("label key", key)?;
        check_str("label value", value)?;
    }
    Ok(())
}

pub(crate) fn check_str(field: &'static str, s: &str) -> Result<(), WireError> {
    if s.len() > MAX_STRING_LEN {
        return Err(WireError::StringTooLong {
            field,
            len: s.len(),
            max: MAX_STRING_LEN,
        });
    }
    Ok(())
}

pub(crate) fn check_count(
    count: usize,
    max: usize,
    err: impl FnOnce(usize, usize) -> WireError,
) -> Result<(), WireError> {
    if count > max {
        return Err(err(count, max));
    }
    Ok(())
}

pub(crate) fn check_rate(channel: usize, rate: f64) -> Result<(), WireError> {
    if rate.is_finite() && rate > 0.0 {
        Ok(())
    } else {
        Err(WireError::BadSampleRate { channel })
    }
}

/// Every channel of the frame's layout with its samples. A caller may have
/// replaced `frame.layout` with one that does not match the sample counts;
/// then channels without a count get no samples and samples without a channel
/// are left out, so both encoders still write a well-formed message (which
/// [`check_limits`] would have refused).
pub(crate) fn channel_slices(frame: &Frame) -> impl Iterator<Item = (&ChannelSpec, &[f32])> {
    let mut rest = frame.samples();
    frame
        .layout
        .channels
        .iter()
        .enumerate()
        .map(move |(index, spec)| {
            let count = frame.counts().get(index).map_or(0, |&c| c as usize);
            let (head, tail) = rest.split_at(count.min(rest.len()));
            rest = tail;
            (spec, head)
        })
}

/// True when two items are equal with every float compared by bit pattern.
/// A binary round trip must pass this (`==` fails on NaN gaps); a JSON round
/// trip passes it for items whose non-finite floats are all `f32::NAN` /
/// `f64::NAN`, as JSON turns every non-finite value into `null` and back.
pub fn same_bits(a: &Item, b: &Item) -> bool {
    match (a, b) {
        (Item::Frame(a), Item::Frame(b)) => same_frame_bits(a, b),
        (Item::Record(a), Item::Record(b)) => same_record_bits(a, b),
        _ => false,
    }
}

fn same_frame_bits(a: &Frame, b: &Frame) -> bool {
    let specs_equal = a.layout.len() == b.layout.len()
        && a.layout.channels.iter().zip(&b.layout.channels).all(|(x, y)| {
            x.name == y.name && x.unit == y.unit && x.sample_rate.to_bits() == y.sample_rate.to_bits()
        });
    specs_equal
        && a.stream_id == b.stream_id
        && a.modality == b.modality
        && a.start_ns == b.start_ns
        && a.sequence == b.sequence
        && a.discontinuity == b.discontinuity
        && a.counts() == b.counts()
        && a.samples().len() == b.samples().len()
        && a.samples()
            .iter()
            .zip(b.samples())
            .all(|(x, y)| x.to_bits() == y.to_bits())
        && a.metadata == b.metadata
}

fn same_record_bits(a: &Record, b: &Record) -> bool {
    a.stream_id == b.stream_id
        && a.sequence == b.sequence
        && a.kind == b.kind
        && a.start_ns == b.start_ns
        && a.end_ns == b.end_ns
        && a.values.len() == b.values.len()
        && a.values
            .iter()
            .zip(&b.values)
            .all(|((n, x), (m, y))| n == m && x.to_bits() == y.to_bits())
        && a.labels == b.labels
}
