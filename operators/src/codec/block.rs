//! The block format (byte by byte in `docs/codec.md`): encoder and decoder.

use std::ops::Range;

use super::bits::{read_varint, write_varint, BitReader, BitWriter};
use super::predict::{
    analyse_lpc, best_fixed_order, LpcScratch, Predictor, PredictorKind, MAX_FIXED_ORDER, MAX_LPC_ORDER,
    MAX_PRECISION,
};
use super::rice::{self, RicePlan};
use super::{ChannelBlock, ChannelData, CodecError, GapRun, MAX_BLOCK_SAMPLES};

const MAGIC: [u8; 4] = *b"SFCB";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 12;
const CRC_LEN: usize = 4;

const KIND_FIXED: u64 = 0;
const KIND_LPC: u64 = 1;
const KIND_CONSTANT: u64 = 2;
const WARMUP_WIDTH_BITS: u32 = 6;
const ESCAPE_WIDTH_BITS: u32 = 7;

/// Encoder settings. LPC order 12 (FLAC -8's) is the default: on our records orders up to
/// 32 changed the ratio by under 0.1 % and cost speed (`docs/codec.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecConfig {
    /// Highest LPC order tried (0 = fixed predictors only); at most 32.
    pub max_lpc_order: u8,
    /// Bits per quantised LPC coefficient, sign included: 2–16.
    pub lpc_precision: u8,
    /// Highest Rice partition order: 0–8.
    pub max_partition_order: u8,
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig {
            max_lpc_order: 12,
            lpc_precision: 15,
            max_partition_order: 8,
        }
    }
}

/// One candidate's coding of a channel.
#[derive(Default)]
struct Candidate {
    predictor: Option<Predictor>,
    zigzagged: Vec<u64>,
    plan: RicePlan,
    bits: u64,
}

/// Encodes blocks; keeps its working buffers between calls.
#[derive(Default)]
pub struct BlockEncoder {
    config: CodecConfig,
    segments: Vec<Range<usize>>,
    sums: Vec<u64>,
    lpc: LpcScratch,
    best: Candidate,
    trial: Candidate,
}

impl BlockEncoder {
    pub fn new(config: CodecConfig) -> Self {
        let config = CodecConfig {
            max_lpc_order: config.max_lpc_order.min(MAX_LPC_ORDER as u8),
            lpc_precision: config.lpc_precision.clamp(2, MAX_PRECISION as u8),
            max_partition_order: config.max_partition_order.min(rice::MAX_PARTITION_ORDER as u8),
        };
        BlockEncoder {
            config,
            ..Default::default()
        }
    }

    /// Appends the coded block to `out`. Fails, writing nothing, on invalid
    /// gap runs, a non-zero sample in a gap, or a block over the limits.
    pub fn encode(&mut self, block: &ChannelBlock, out: &mut Vec<u8>) -> Result<(), CodecError> {
        check_block(block)?;
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(0);
        out.extend_from_slice(&(block.channels.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 4]); // payload length, filled below
        for channel in &block.channels {
            self.encode_channel(channel, out);
        }
        let payload = out.len() - start - HEADER_LEN;
        let Ok(payload) = u32::try_from(payload) else {
            out.truncate(start);
            return Err(CodecError::TooManySamples);
        };
        out[start + 8..start + HEADER_LEN].copy_from_slice(&payload.to_le_bytes());
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    fn encode_channel(&mut self, channel: &ChannelData, out: &mut Vec<u8>) {
        write_varint(out, channel.samples.len() as u32);
        write_varint(out, channel.gaps.len() as u32);
        let mut previous_end = 0;
        for gap in &channel.gaps {
            write_varint(out, gap.start - previous_end);
            write_varint(out, gap.len);
            previous_end = gap.start + gap.len;
        }
        segments(channel.samples.len(), &channel.gaps, &mut self.segments);
        let samples = &channel.samples;
        let coded = || self.segments.iter().map(|s| &samples[s.clone()]);
        // The widest zigzagged sample is as wide as all of them or-ed together.
        let warmup_width = rice::width(coded().fold(0, |acc, s| acc | or_zigzagged(s)));
        let mut writer = BitWriter::new(out);
        let first = coded().find_map(|s| s.first().copied()).unwrap_or(0);
        if coded().all(|s| s.iter().all(|&v| v == first)) {
            writer.write(KIND_CONSTANT, 2);
            writer.write(u64::from(warmup_width), WARMUP_WIDTH_BITS);
            writer.write(rice::zigzag(first.into()), warmup_width);
        } else {
            self.choose_predictor(samples, warmup_width);
            self.write_predicted(samples, warmup_width, &mut writer);
        }
        writer.finish();
    }

    /// Leaves the cheapest of the best fixed predictor and LPC in `best`.
    fn choose_predictor(&mut self, samples: &[i32], warmup_width: u32) {
        let fixed = Predictor::fixed(best_fixed_order(samples, &self.segments));
        self.try_candidate(samples, fixed, warmup_width, true);
        let config = self.config;
        if let Some(lpc) = analyse_lpc(
            samples,
            &self.segments,
            config.max_lpc_order.into(),
            config.lpc_precision.into(),
            &mut self.lpc,
        ) {
            self.try_candidate(samples, lpc, warmup_width, false);
        }
    }

    fn try_candidate(&mut self, samples: &[i32], predictor: Predictor, warmup_width: u32, first: bool) {
        let trial = &mut self.trial;
        trial.zigzagged.clear();
        let mut warmups = 0;
        for segment in &self.segments {
            let s = &samples[segment.clone()];
            warmups += s.len().min(predictor.order);
            predictor.zigzag_residuals(s, &mut trial.zigzagged);
        }
        let max_order = u32::from(self.config.max_partition_order);
        rice::plan(&trial.zigzagged, max_order, &mut self.sums, &mut trial.plan);
        let coefficient_bits = match predictor.kind {
            PredictorKind::Lpc => predictor.order as u64 * u64::from(predictor.precision),
            _ => 0,
        };
        trial.bits =
            (trial.plan.bits).saturating_add(warmups as u64 * u64::from(warmup_width) + coefficient_bits);
        trial.predictor = Some(predictor);
        if first || trial.bits < self.best.bits {
            std::mem::swap(&mut self.best, &mut self.trial);
        }
    }

    fn write_predicted(&self, samples: &[i32], warmup_width: u32, writer: &mut BitWriter) {
        let best = &self.best;
        let Some(p) = best.predictor else { return };
        match p.kind {
            PredictorKind::Fixed => {
                writer.write(KIND_FIXED, 2);
                writer.write(p.order as u64, 3);
            }
            _ => {
                writer.write(KIND_LPC, 2);
                writer.write(p.order as u64 - 1, 5);
                writer.write(u64::from(p.precision - 1), 4);
                writer.write(u64::from(p.shift), 5);
                for &c in &p.coefs[..p.order] {
                    writer.write(c as u64, p.precision); // two's complement, low bits
                }
            }
        }
        writer.write(u64::from(warmup_width), WARMUP_WIDTH_BITS);
        let escape_width = rice::width(best.zigzagged.iter().fold(0, |acc, &u| acc | u));
        writer.write(u64::from(escape_width), ESCAPE_WIDTH_BITS);
        for segment in &self.segments {
            let warmup = segment.start..segment.end.min(segment.start + p.order);
            for &v in &samples[warmup] {
                writer.write(rice::zigzag(v.into()), warmup_width);
            }
        }
        rice::write(writer, &best.zigzagged, &best.plan, escape_width);
    }
}

/// The zigzagged samples or-ed together (a loop LLVM vectorises).
fn or_zigzagged(samples: &[i32]) -> u64 {
    let or = samples
        .iter()
        .fold(0u32, |acc, &v| acc | ((v << 1) ^ (v >> 31)) as u32);
    u64::from(or)
}

/// Checks the limits, the gap runs and the zeros under them.
fn check_block(block: &ChannelBlock) -> Result<(), CodecError> {
    let channels = block.channels.len();
    if channels > usize::from(u16::MAX) {
        return Err(CodecError::TooManyChannels(channels));
    }
    let total: usize = block.channels.iter().map(|c| c.samples.len()).sum();
    if total > MAX_BLOCK_SAMPLES {
        return Err(CodecError::TooManySamples);
    }
    for (channel, data) in block.channels.iter().enumerate() {
        let mut previous_end = 0u64;
        for gap in &data.gaps {
            if gap.len == 0 || u64::from(gap.start) < previous_end || gap.end() > data.samples.len() as u64 {
                return Err(CodecError::InvalidGaps { channel });
            }
            let run = gap.start as usize..gap.end() as usize;
            if let Some(offset) = data.samples[run].iter().position(|&v| v != 0) {
                let index = gap.start as usize + offset;
                return Err(CodecError::ValueInGap { channel, index });
            }
            previous_end = gap.end();
        }
    }
    Ok(())
}

/// The gap-free runs of a channel of `len` samples with (checked) `gaps`.
fn segments(len: usize, gaps: &[GapRun], out: &mut Vec<Range<usize>>) {
    out.clear();
    let mut start = 0;
    for gap in gaps {
        if gap.start as usize > start {
            out.push(start..gap.start as usize);
        }
        start = gap.end() as usize;
    }
    if len > start {
        out.push(start..len);
    }
}

/// Decodes blocks; keeps its working buffers between calls.
#[derive(Default)]
pub struct BlockDecoder {
    segments: Vec<Range<usize>>,
    residuals: Vec<i64>,
}

impl BlockDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one block into `block`, reusing its buffers. Any malformed
    /// input is a [`CodecError`]; `block` is then unspecified.
    pub fn decode_into(&mut self, bytes: &[u8], block: &mut ChannelBlock) -> Result<(), CodecError> {
        let (channels, payload) = open_block(bytes)?;
        block.channels.resize_with(channels, ChannelData::default);
        let mut at = 0;
        let mut budget = MAX_BLOCK_SAMPLES;
        for channel in &mut block.channels {
            self.decode_channel(payload, &mut at, &mut budget, channel)?;
        }
        if at != payload.len() {
            return Err(CodecError::Corrupt("bytes left after the last channel"));
        }
        Ok(())
    }

    /// Decodes one block into a new [`ChannelBlock`].
    pub fn decode(&mut self, bytes: &[u8]) -> Result<ChannelBlock, CodecError> {
        let mut block = ChannelBlock::default();
        self.decode_into(bytes, &mut block)?;
        Ok(block)
    }

    fn decode_channel(
        &mut self,
        payload: &[u8],
        at: &mut usize,
        budget: &mut usize,
        channel: &mut ChannelData,
    ) -> Result<(), CodecError> {
        channel.clear();
        let len = read_varint(payload, at)? as usize;
        *budget = budget.checked_sub(len).ok_or(CodecError::TooManySamples)?;
        read_gaps(payload, at, len, &mut channel.gaps)?;
        channel.samples.resize(len, 0);
        segments(len, &channel.gaps, &mut self.segments);
        let mut reader = BitReader::new(&payload[*at..]);
        let kind = reader.read(2)?;
        if kind == KIND_CONSTANT {
            let width = read_width(&mut reader, WARMUP_WIDTH_BITS, 32)?;
            let value = read_sample(&mut reader, width)?;
            for segment in &self.segments {
                channel.samples[segment.clone()].fill(value);
            }
        } else {
            let predictor = read_predictor(&mut reader, kind)?;
            self.decode_predicted(&mut reader, &predictor, &mut channel.samples)?;
        }
        *at += reader.bytes_consumed();
        Ok(())
    }

    fn decode_predicted(
        &mut self,
        reader: &mut BitReader,
        predictor: &Predictor,
        samples: &mut [i32],
    ) -> Result<(), CodecError> {
        let warmup_width = read_width(reader, WARMUP_WIDTH_BITS, 32)?;
        let escape_width = read_width(reader, ESCAPE_WIDTH_BITS, 64)?;
        let mut residual_count = 0;
        for segment in &self.segments {
            let warmup = segment.start..segment.end.min(segment.start + predictor.order);
            residual_count += segment.len() - warmup.len();
            for v in &mut samples[warmup] {
                *v = read_sample(reader, warmup_width)?;
            }
        }
        // Every residual takes at least one bit: refuse before allocating.
        if residual_count > reader.bits_left() {
            return Err(CodecError::Truncated);
        }
        rice::read(reader, residual_count, escape_width, &mut self.residuals)?;
        let mut residuals = &self.residuals[..];
        for segment in &self.segments {
            let count = segment.len().saturating_sub(predictor.order);
            let (these, rest) = residuals.split_at(count);
            predictor
                .restore(&mut samples[segment.clone()], these)
                .map_err(|()| CodecError::Corrupt("decoded sample outside the i32 range"))?;
            residuals = rest;
        }
        Ok(())
    }
}

/// Checks magic, version, length and CRC; returns the channel count and payload.
fn open_block(bytes: &[u8]) -> Result<(usize, &[u8]), CodecError> {
    if bytes.len() < HEADER_LEN + CRC_LEN {
        return Err(CodecError::Truncated);
    }
    if bytes[..4] != MAGIC {
        return Err(CodecError::BadMagic);
    }
    if bytes[4] != VERSION {
        return Err(CodecError::UnsupportedVersion(bytes[4]));
    }
    if bytes[5] != 0 {
        return Err(CodecError::Corrupt("reserved flags set"));
    }
    let channels = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
    let payload_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let end = HEADER_LEN.checked_add(payload_len).ok_or(CodecError::Truncated)?;
    match bytes.len().checked_sub(CRC_LEN) {
        Some(crc_at) if crc_at == end => {}
        Some(crc_at) if crc_at < end => return Err(CodecError::Truncated),
        _ => return Err(CodecError::Corrupt("bytes after the checksum")),
    }
    let stored = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
    if crc32c::crc32c(&bytes[..end]) != stored {
        return Err(CodecError::ChecksumMismatch);
    }
    Ok((channels, &bytes[HEADER_LEN..end]))
}

fn read_gaps(payload: &[u8], at: &mut usize, len: usize, gaps: &mut Vec<GapRun>) -> Result<(), CodecError> {
    let count = read_varint(payload, at)? as usize;
    // Each run takes at least two bytes: refuse before allocating.
    if count > payload.len().saturating_sub(*at) / 2 {
        return Err(CodecError::Truncated);
    }
    let mut previous_end = 0u64;
    for _ in 0..count {
        let start = previous_end + u64::from(read_varint(payload, at)?);
        let run_len = read_varint(payload, at)?;
        let end = start + u64::from(run_len);
        if run_len == 0 || end > len as u64 {
            return Err(CodecError::Corrupt("gap run empty or past the channel's end"));
        }
        gaps.push(GapRun {
            start: start as u32,
            len: run_len,
        });
        previous_end = end;
    }
    Ok(())
}

fn read_width(reader: &mut BitReader, bits: u32, max: u32) -> Result<u32, CodecError> {
    let width = reader.read(bits)? as u32;
    if width > max {
        return Err(CodecError::Corrupt("sample or escape width too large"));
    }
    Ok(width)
}

fn read_sample(reader: &mut BitReader, width: u32) -> Result<i32, CodecError> {
    let value = rice::unzigzag(reader.read(width)?);
    i32::try_from(value).map_err(|_| CodecError::Corrupt("warm-up sample outside the i32 range"))
}

fn read_predictor(reader: &mut BitReader, kind: u64) -> Result<Predictor, CodecError> {
    match kind {
        KIND_FIXED => {
            let order = reader.read(3)? as usize;
            if order > MAX_FIXED_ORDER {
                return Err(CodecError::Corrupt("fixed predictor order above 4"));
            }
            Ok(Predictor::fixed(order))
        }
        KIND_LPC => {
            let order = reader.read(5)? as usize + 1;
            let precision = reader.read(4)? as u32 + 1;
            let shift = reader.read(5)? as u32;
            let mut coefs = [0i64; MAX_LPC_ORDER];
            for c in &mut coefs[..order] {
                // Sign-extend a `precision`-bit two's complement value.
                let raw = reader.read(precision)? as i64;
                *c = (raw << (64 - precision)) >> (64 - precision);
            }
            Ok(Predictor {
                kind: PredictorKind::Lpc,
                order,
                precision,
                shift,
                coefs,
            })
        }
        _ => Err(CodecError::Corrupt("unknown predictor kind")),
    }
}
