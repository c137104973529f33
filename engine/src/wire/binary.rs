//! The binary encoding: header, little-endian body, CRC-32C trailer.
//! `docs/wire-format.md` is the specification; this file follows it field by
//! field, in the same order.

use std::sync::Arc;

use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Record};

use super::{
    channel_slices, check_count, check_rate, WireError, CRC_LEN, HEADER_LEN, MAGIC, MAX_CHANNELS, MAX_LABELS,
    MAX_MESSAGE_LEN, MAX_METADATA, MAX_STRING_LEN, MAX_VALUES, VERSION,
};

pub(crate) const TYPE_FRAME: u8 = 1;
pub(crate) const TYPE_RECORD: u8 = 2;
pub(crate) const FLAG_DISCONTINUITY: u16 = 1;
/// Record flag: a labels section follows the values.
pub(crate) const FLAG_LABELS: u16 = 1;

/// Smallest possible message: a header and a CRC around an empty body.
const MIN_MESSAGE_LEN: usize = HEADER_LEN + CRC_LEN;
/// Offset of the total-length field in the header.
const LENGTH_OFFSET: usize = 8;
/// Fewest body bytes one channel spec, metadata entry or record value can
/// take; used to cap pre-allocation by what the input can actually hold.
const MIN_CHANNEL_LEN: usize = 2 + 2 + 8 + 4;
const MIN_METADATA_LEN: usize = 2 + 2;
const MIN_VALUE_LEN: usize = 2 + 8;

// ---------------------------------------------------------------- encoding

/// Appends the binary encoding of `frame` to `out`.
pub fn encode_frame_binary(frame: &Frame, out: &mut Vec<u8>) {
    out.reserve(usize::try_from(frame_len(frame)).unwrap_or(0));
    let flags = if frame.discontinuity {
        FLAG_DISCONTINUITY
    } else {
        0
    };
    let start = begin(out, TYPE_FRAME, flags);
    put_str(out, &frame.stream_id);
    out.push(frame.modality.code());
    out.extend_from_slice(&frame.start_ns.to_le_bytes());
    out.extend_from_slice(&frame.sequence.to_le_bytes());
    put_u16_len(out, frame.layout.len());
    for (spec, samples) in channel_slices(frame) {
        put_str(out, &spec.name);
        put_str(out, &spec.unit);
        out.extend_from_slice(&spec.sample_rate.to_le_bytes());
        // A frame's channel holds at most u32::MAX samples (its count is a u32).
        out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    }
    for (_, samples) in channel_slices(frame) {
        put_samples(out, samples);
    }
    put_u16_len(out, frame.metadata.len());
    for (key, value) in &frame.metadata {
        put_str(out, key);
        put_str(out, value);
    }
    finish(out, start);
}

/// Appends the binary encoding of `record` to `out`.
pub fn encode_record_binary(record: &Record, out: &mut Vec<u8>) {
    out.reserve(usize::try_from(record_len(record)).unwrap_or(0));
    let flags = if record.labels.is_empty() { 0 } else { FLAG_LABELS };
    let start = begin(out, TYPE_RECORD, flags);
    put_str(out, &record.stream_id);
    put_str(out, &record.kind);
    out.extend_from_slice(&record.start_ns.to_le_bytes());
    out.extend_from_slice(&record.end_ns.to_le_bytes());
    out.extend_from_slice(&record.sequence.to_le_bytes());
    let count = u32::try_from(record.values.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for (name, value) in &record.values {
        put_str(out, name);
        out.extend_from_slice(&value.to_le_bytes());
    }
    if !record.labels.is_empty() {
        put_u16_len(out, record.labels.len());
        for (key, value) in &record.labels {
            put_str(out, key);
            put_str(out, value);
        }
    }
    finish(out, start);
}

/// Exact size of the item's binary encoding (may exceed the limits).
pub fn encoded_binary_len(item: &Item) -> u64 {
    match item {
        Item::Frame(frame) => frame_len(frame),
        Item::Record(record) => record_len(record),
    }
}

fn frame_len(frame: &Frame) -> u64 {
    let str_len = |s: &str| 2 + s.len() as u64;
    let channels: u64 = channel_slices(frame)
        .map(|(c, samples)| str_len(&c.name) + str_len(&c.unit) + 8 + 4 + 4 * samples.len() as u64)
        .sum();
    let metadata: u64 = frame.metadata.iter().map(|(k, v)| str_len(k) + str_len(v)).sum();
    let body = str_len(&frame.stream_id) + 1 + 8 + 8 + 2 + channels;
    (HEADER_LEN + CRC_LEN) as u64 + body + 2 + metadata
}

fn record_len(record: &Record) -> u64 {
    let str_len = |s: &str| 2 + s.len() as u64;
    let values: u64 = record.values.iter().map(|(n, _)| str_len(n) + 8).sum();
    let labels: u64 = match record.labels.is_empty() {
        true => 0,
        false => {
            2 + record
                .labels
                .iter()
                .map(|(k, v)| str_len(k) + str_len(v))
                .sum::<u64>()
        }
    };
    let body = str_len(&record.stream_id) + str_len(&record.kind) + 8 + 8 + 8 + 4 + values + labels;
    (HEADER_LEN + CRC_LEN) as u64 + body
}

/// Writes the header with a zero length (patched by [`finish`]); returns
/// where the message starts in `out`.
fn begin(out: &mut Vec<u8>, message_type: u8, flags: u16) -> usize {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(message_type);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    start
}

/// Patches the total length and appends the CRC. An oversized message gets a
/// saturated length, which decoders reject as too large.
fn finish(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start + CRC_LEN;
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out[start + LENGTH_OFFSET..start + LENGTH_OFFSET + 4].copy_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// A u16 count; saturates so that an over-limit count is rejected, not wrapped.
fn put_u16_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u16_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// One resize, then a fixed-width copy loop that the compiler vectorises (on
/// little-endian targets it is a plain copy).
fn put_samples(out: &mut Vec<u8>, samples: &[f32]) {
    let start = out.len();
    out.resize(start + 4 * samples.len(), 0);
    for (dst, sample) in out[start..].chunks_exact_mut(4).zip(samples) {
        dst.copy_from_slice(&sample.to_le_bytes());
    }
}

// ---------------------------------------------------------------- decoding

/// The fields of a header that passed its own checks.
struct Header {
    message_type: u8,
    flags: u16,
    len: usize,
}

/// For a byte stream of concatenated binary messages: the length of the
/// message at the start of `buf`, `None` if `buf` does not hold all of it yet
/// (read more and call again), or an error if the header is invalid (the
/// stream cannot be resynchronised; stop). Only the header is checked: pass
/// `&buf[..len]` to [`decode_binary`] for the rest.
pub fn split_binary(buf: &[u8]) -> Result<Option<usize>, WireError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let header = read_header(buf)?;
    Ok((buf.len() >= header.len).then_some(header.len))
}

/// Decodes one binary message; `bytes` must be exactly that message.
pub fn decode_binary(bytes: &[u8]) -> Result<Item, WireError> {
    let header = read_header(bytes)?;
    if bytes.len() < header.len {
        return Err(WireError::Truncated {
            field: "message",
            offset: 0,
            needed: header.len,
            available: bytes.len(),
        });
    }
    if bytes.len() > header.len {
        return Err(WireError::TrailingBytes {
            count: bytes.len() - header.len,
        });
    }
    let body_end = header.len - CRC_LEN;
    check_crc(&bytes[..body_end], &bytes[body_end..])?;
    let mut r = Reader {
        bytes: &bytes[..body_end],
        pos: HEADER_LEN,
    };
    let item = match header.message_type {
        TYPE_FRAME => Item::Frame(read_frame(&mut r, header.flags)?),
        TYPE_RECORD => Item::Record(read_record(&mut r, header.flags)?),
        code => return Err(WireError::UnknownMessageType { code }),
    };
    match r.remaining() {
        0 => Ok(item),
        count => Err(WireError::TrailingBytes { count }),
    }
}

/// Magic and version first, so that other formats and future versions are
/// named as such rather than reported as corrupt.
fn read_header(bytes: &[u8]) -> Result<Header, WireError> {
    let mut r = Reader { bytes, pos: 0 };
    let found: [u8; 4] = r.array("magic")?;
    if found != MAGIC {
        return Err(WireError::BadMagic { found });
    }
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(WireError::UnsupportedVersion {
            version: version.into(),
        });
    }
    let message_type = r.u8("message type")?;
    let flags = r.u16("flags")?;
    let len = r.u32("total length")?;
    if len as usize > MAX_MESSAGE_LEN {
        return Err(WireError::MessageTooLarge {
            len: len.into(),
            max: MAX_MESSAGE_LEN as u64,
        });
    }
    if (len as usize) < MIN_MESSAGE_LEN {
        return Err(WireError::MessageTooShort {
            declared: len.into(),
            min: MIN_MESSAGE_LEN as u64,
        });
    }
    Ok(Header {
        message_type,
        flags,
        len: len as usize,
    })
}

fn check_crc(covered: &[u8], trailer: &[u8]) -> Result<(), WireError> {
    let mut stored = [0u8; 4];
    stored.copy_from_slice(trailer);
    let stored = u32::from_le_bytes(stored);
    let computed = crc32c::crc32c(covered);
    if stored == computed {
        Ok(())
    } else {
        Err(WireError::ChecksumMismatch { stored, computed })
    }
}

fn read_frame(r: &mut Reader<'_>, flags: u16) -> Result<Frame, WireError> {
    if flags & !FLAG_DISCONTINUITY != 0 {
        return Err(WireError::UnknownFlags { flags });
    }
    let stream_id: Arc<str> = r.str("stream id")?.into();
    let code = r.u8("modality")?;
    let modality = Modality::from_code(code).ok_or(WireError::UnknownModality { code })?;
    let start_ns = r.i64("start_ns")?;
    let sequence = r.u64("sequence")?;
    let (layout, counts) = read_channels(r)?;
    let samples = read_samples(r, &counts)?;
    let metadata = read_metadata(r)?;
    let mut frame = Frame::new(stream_id, modality, layout, start_ns, sequence, counts, samples)?;
    frame.discontinuity = flags & FLAG_DISCONTINUITY != 0;
    frame.metadata = metadata.into();
    Ok(frame)
}

fn read_channels(r: &mut Reader<'_>) -> Result<(Arc<ChannelLayout>, Vec<u32>), WireError> {
    let count = usize::from(r.u16("channel count")?);
    check_count(count, MAX_CHANNELS, |count, max| WireError::TooManyChannels {
        count,
        max,
    })?;
    let capacity = count.min(r.remaining() / MIN_CHANNEL_LEN);
    let mut channels = Vec::with_capacity(capacity);
    let mut counts = Vec::with_capacity(capacity);
    for channel in 0..count {
        let name = r.str("channel name")?.to_owned();
        let unit = r.str("channel unit")?.to_owned();
        let sample_rate = r.f64("sample rate")?;
        check_rate(channel, sample_rate)?;
        counts.push(r.u32("sample count")?);
        channels.push(ChannelSpec {
            name,
            unit,
            sample_rate,
        });
    }
    Ok((Arc::new(ChannelLayout::new(channels)), counts))
}

/// Takes all sample bytes first, so a huge declared count fails as
/// truncation before anything is allocated.
fn read_samples(r: &mut Reader<'_>, counts: &[u32]) -> Result<Vec<f32>, WireError> {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let len = usize::try_from(total.saturating_mul(4)).unwrap_or(usize::MAX);
    let bytes = r.take(len, "samples")?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn read_metadata(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, WireError> {
    let count = usize::from(r.u16("metadata count")?);
    check_count(count, MAX_METADATA, |count, max| WireError::TooManyMetadata {
        count,
        max,
    })?;
    let mut metadata = Vec::with_capacity(count.min(r.remaining() / MIN_METADATA_LEN));
    for _ in 0..count {
        let key = r.str("metadata key")?.to_owned();
        let value = r.str("metadata value")?.to_owned();
        metadata.push((key, value));
    }
    Ok(metadata)
}

fn read_record(r: &mut Reader<'_>, flags: u16) -> Result<Record, WireError> {
    if flags & !FLAG_LABELS != 0 {
        return Err(WireError::UnknownFlags { flags });
    }
    let stream_id = r.str("stream id")?.into();
    let kind = r.str("record kind")?.into();
    let start_ns = r.i64("start_ns")?;
    let end_ns = r.i64("end_ns")?;
    let sequence = r.u64("sequence")?;
    let count = r.u32("value count")? as usize;
    check_count(count, MAX_VALUES, |count, max| WireError::TooManyValues {
        count,
        max,
    })?;
    let mut values = Vec::with_capacity(count.min(r.remaining() / MIN_VALUE_LEN));
    for _ in 0..count {
        let name: Arc<str> = r.str("value name")?.into();
        values.push((name, r.f64("value")?));
    }
    let labels = if flags & FLAG_LABELS != 0 {
        read_labels(r)?
    } else {
        Vec::new()
    };
    Ok(Record {
        stream_id,
        sequence,
        kind,
        start_ns,
        end_ns,
        values: values.into(),
        labels,
    })
}

type Labels = Vec<(Arc<str>, Arc<str>)>;

/// The labels section: a u16 count (1 to 1024: the flag says there is at
/// least one, so every record has one encoding) and key/value strings.
fn read_labels(r: &mut Reader<'_>) -> Result<Labels, WireError> {
    let count = usize::from(r.u16("label count")?);
    if count == 0 {
        return Err(WireError::EmptyLabels);
    }
    check_count(count, MAX_LABELS, |count, max| WireError::TooManyLabels {
        count,
        max,
    })?;
    let mut labels = Vec::with_capacity(count.min(r.remaining() / MIN_METADATA_LEN));
    for _ in 0..count {
        let key: Arc<str> = r.str("label key")?.into();
        let value: Arc<str> = r.str("label value")?.into();
        labels.push((key, value));
    }
    Ok(labels)
}

/// A bounds-checked cursor: every read checks the remaining length first
/// and reports the field and offset when it is short.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let taken = rest.get(..len).ok_or(WireError::Truncated {
            field,
            offset: self.pos,
            needed: len,
            available: rest.len(),
        })?;
        self.pos += len;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        self.array(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        self.array(field).map(u64::from_le_bytes)
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, WireError> {
        self.array(field).map(i64::from_le_bytes)
    }

    fn f64(&mut self, field: &'static str) -> Result<f64, WireError> {
        self.array(field).map(f64::from_le_bytes)
    }

    /// A u16 length, checked against the limit before the bytes are read.
    fn str(&mut self, field: &'static str) -> Result<&'a str, WireError> {
        let len = usize::from(self.u16(field)?);
        if len > MAX_STRING_LEN {
            return Err(WireError::StringTooLong {
                field,
                len,
                max: MAX_STRING_LEN,
            });
        }
        std::str::from_utf8(self.take(len, field)?).map_err(|_| WireError::InvalidUtf8 { field })
    }
}
