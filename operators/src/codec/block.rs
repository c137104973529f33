//! The block format (byte by byte in `docs/codec.md`): encoder and decoder.

use std::ops::Range;

use super::bits::{read_varint, write_varint, BitReader, BitWriter};
use super::predict::{
    analyse_lpc, best_fixed_order, LpcScratch, Predictor, PredictorKind, MAX_FIXED_ORDER, MAX_LPC_ORDER,
    MAX_PRECISION,
};
use super::rice;
use super::{ChannelBlock, ChannelData, CodecError, GapRun, MAX_BLOCK_SAMPLES};

const MAGIC: [u8; 4] = *b"SFCB";
/// Version 2: adaptive Rice residuals (version 1, partitioned Rice, was never persisted).
const VERSION: u8 = 2;
const HEADER_LEN: usize = 12;
const CRC_LEN: usize = 4;

const KIND_FIXED: u64 = 0;
const KIND_LPC: u64 = 1;
const KIND_CONSTANT: u64 = 2;
const WARMUP_WIDTH_BITS: u32 = 6;
const ESCAPE_WIDTH_BITS: u32 = 7;
const TABLE_LEN_BITS: u32 = 24;
/// Value maps are tried only on channels whose range is at most this (the
/// lookup stays in L1/L2) and with at least this many samples (the table
/// must pay for itself).
const MAP_MAX_RANGE: usize = 1 << 15;
const MAP_MIN_SAMPLES: usize = 256;

/// Encoder settings. LPC order 12 (FLAC -8's) is the default: on our records orders up to
/// 32 changed the ratio by under 0.1 % and cost speed. Precision 10 is the default: with
/// 1–10 s blocks (1,250–5,000 samples) the coefficients' cost outweighs their accuracy
/// above it (measured 9–15 bits on three records: 10 is 0.1–0.25 % smaller than 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecConfig {
    /// Highest LPC order tried (0 = fixed predictors only); at most 32.
    pub max_lpc_order: u8,
    /// Bits per quantised LPC coefficient, sign included: 2–16.
    pub lpc_precision: u8,
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig {
            max_lpc_order: 12,
            lpc_precision: 10,
        }
    }
}

/// The chosen predictor of a channel and its zigzagged residuals.
#[derive(Default)]
struct Chosen {
    predictor: Option<Predictor>,
    /// The residuals are `zigzagged[..count]`; the buffer never shrinks, so
    /// it is not zeroed again on every channel before being overwritten.
    zigzagged: Vec<u64>,
    count: usize,
    /// The residuals or-ed together (their width is the escape width).
    or: u64,
}

impl Chosen {
    fn zigzagged(&self) -> &[u64] {
        &self.zigzagged[..self.count]
    }
}

/// Encodes blocks; keeps its working buffers between calls.
#[derive(Default)]
pub struct BlockEncoder {
    config: CodecConfig,
    segments: Vec<Range<usize>>,
    lpc: LpcScratch,
    best: Chosen,
    /// Value map (sparse channels): seen flag, then rank, per value of the
    /// range; the distinct values; each sample's rank; the table's gaps.
    lookup: Vec<u32>,
    table: Vec<i32>,
    ranks: Vec<i32>,
    table_gaps: Vec<u64>,
    /// Scratch for the Rice writer (`BitWriter::begin_bulk`).
    room: Vec<u8>,
    /// Tests force the portable path to compare it with the AVX2 one.
    #[cfg(test)]
    pub(super) portable_only: bool,
    /// Tests force the AVX2 path on an AVX-512 CPU to compare the two.
    #[cfg(test)]
    pub(super) no_avx512: bool,
}

impl BlockEncoder {
    pub fn new(config: CodecConfig) -> Self {
        let config = CodecConfig {
            max_lpc_order: config.max_lpc_order.min(MAX_LPC_ORDER as u8),
            lpc_precision: config.lpc_precision.clamp(2, MAX_PRECISION as u8),
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
        #[cfg(target_arch = "x86_64")]
        {
            #[cfg(test)]
            let fast = !self.portable_only && has_avx2_bmi2();
            #[cfg(not(test))]
            let fast = has_avx2_bmi2();
            #[cfg(test)]
            let wide = fast && !self.no_avx512 && has_avx512();
            #[cfg(not(test))]
            let wide = fast && has_avx512();
            if wide {
                // SAFETY: the CPU has AVX-512 F/VL/BW/DQ, AVX2, BMI1, BMI2 and
                // LZCNT (detected just above), the only requirement of this
                // `target_feature` function.
                unsafe { self.encode_channel_avx512(channel, out) };
                return;
            }
            if fast {
                // SAFETY: the CPU has AVX2, BMI1, BMI2 and LZCNT (detected just
                // above), the only requirement of this `target_feature` function.
                unsafe { self.encode_channel_avx2(channel, out) };
                return;
            }
        }
        self.encode_channel_inline::<false>(channel, out);
    }

    /// The same code as [`Self::encode_channel_inline`] (the hot loops are
    /// `inline(always)`), compiled for AVX2 (+BMI, LZCNT): the integer loops
    /// get 4-lane 64-bit multiplies, the f64 ones 4-lane vectors, the Rice
    /// writer `lzcnt` and flag-free shifts. No FMA is enabled and LLVM never
    /// reassociates floats, so the bytes are the same on every CPU (a test
    /// compares the two paths).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt")]
    fn encode_channel_avx2(&mut self, channel: &ChannelData, out: &mut Vec<u8>) {
        self.encode_channel_inline::<false>(channel, out);
    }

    /// [`Self::encode_channel_avx2`] with AVX-512 as well: 32 vector
    /// registers let the autocorrelation take three lags per pass (`WIDE`),
    /// and the vector loops get 512-bit loads. Measured on an AMD EPYC
    /// (Zen 4, whose 512-bit arithmetic is two 256-bit halves): encode time
    /// −9 % on MIT-BIH 100 from the build alone, −6 % more from the wider
    /// autocorrelation passes. Integer and f64 operations only, in the same
    /// order (no FMA), so the bytes are the same (tested).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,bmi1,bmi2,lzcnt")]
    fn encode_channel_avx512(&mut self, channel: &ChannelData, out: &mut Vec<u8>) {
        self.encode_channel_inline::<true>(channel, out);
    }

    #[inline(always)]
    fn encode_channel_inline<const WIDE: bool>(&mut self, channel: &ChannelData, out: &mut Vec<u8>) {
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
        } else if self.map_values(samples) {
            // Predict the ranks in the value table instead of the values.
            let ranks = std::mem::take(&mut self.ranks);
            let rank_width = rice::width(
                self.segments
                    .iter()
                    .fold(0, |acc, s| acc | or_zigzagged(&ranks[s.clone()])),
            );
            self.choose_predictor::<WIDE>(&ranks, rank_width);
            self.write_header(true, &mut writer);
            self.write_table(&mut writer);
            self.write_body(&ranks, rank_width, &mut writer);
            self.ranks = ranks;
        } else {
            self.choose_predictor::<WIDE>(samples, warmup_width);
            self.write_header(false, &mut writer);
            self.write_body(samples, warmup_width, &mut writer);
        }
        writer.finish();
    }

    /// Whether the channel's values are a sparse set (a signal resampled or
    /// rescaled onto a coarser grid, as MIMIC's MCL1: ~100 distinct values
    /// ~22 apart): then `table` gets the sorted distinct values, `ranks` each
    /// sample's index in it (0 in gaps), and the predictor works on ranks,
    /// which move in steps of one where the values move in steps of ~22.
    /// Sparse means at most one distinct value per four samples and per four
    /// integers of the range. Such a channel repeats its previous value often
    /// (MCL1: half the time; EEG: a few percent), so a vectorised count of
    /// repeats (at least a quarter) screens channels before the costlier
    /// passes.
    #[inline(always)]
    fn map_values(&mut self, samples: &[i32]) -> bool {
        let coded: usize = self.segments.iter().map(|s| s.len()).sum();
        let repeats: usize = self
            .segments
            .iter()
            .map(|s| {
                let s = &samples[s.clone()];
                s.iter()
                    .zip(s.iter().skip(1))
                    .map(|(a, b)| usize::from(a == b))
                    .sum::<usize>()
            })
            .sum();
        if coded < MAP_MIN_SAMPLES || repeats * 4 < coded {
            return false;
        }
        let (mut min, mut max) = (i32::MAX, i32::MIN);
        for s in &self.segments {
            for &v in &samples[s.clone()] {
                min = min.min(v);
                max = max.max(v);
            }
        }
        let range = i64::from(max) - i64::from(min) + 1;
        if range > MAP_MAX_RANGE as i64 {
            return false;
        }
        let range = range as usize;
        // A seen flag per value of the range: independent stores, where a
        // bitmap's read-modify-writes of one word would chain.
        self.lookup.clear();
        self.lookup.resize(range, 0);
        for s in &self.segments {
            for &v in &samples[s.clone()] {
                self.lookup[(v - min) as usize] = 1; // min ≤ v ≤ max
            }
        }
        let distinct = self.lookup.iter().map(|&seen| seen as usize).sum::<usize>();
        if distinct * 4 > coded || distinct * 4 > range {
            return false;
        }
        // The rank of value min + i is the number of distinct values below
        // it. At most one value in four of the range is seen (often far
        // fewer: the BDF's step channels, 13–19 values over up to 2^15), so
        // runs of unseen values are skipped 16 at a time with one vector
        // test, where a branch per value of the range cost 6–20 % of the
        // BDF's encode time.
        self.table.clear();
        for (run, seen) in self.lookup.chunks_mut(16).enumerate() {
            if seen.iter().fold(0, |any, &s| any | s) == 0 {
                continue;
            }
            for (i, rank) in seen.iter_mut().enumerate() {
                if *rank == 1 {
                    *rank = self.table.len() as u32;
                    self.table.push(min + (run * 16 + i) as i32);
                }
            }
        }
        self.ranks.clear();
        self.ranks.resize(samples.len(), 0);
        // The lookup padded to a power of two, indexed through a mask that
        // changes nothing (every v − min is below `range`): the compiler
        // then sees every index in bounds, with no check per sample, and
        // gathers eight or sixteen ranks per instruction.
        self.lookup.resize(range.next_power_of_two(), 0);
        let (lookup, ranks) = (&self.lookup[..], &mut self.ranks[..]);
        let mask = lookup.len() - 1;
        for s in &self.segments {
            for (r, &v) in ranks[s.clone()].iter_mut().zip(&samples[s.clone()]) {
                *r = lookup[(v - min) as usize & mask] as i32;
            }
        }
        true
    }

    /// The value table: its length (24 bits), the first value (6-bit width,
    /// zigzag), then each gap to the next value minus one, adaptive Rice.
    fn write_table(&mut self, writer: &mut BitWriter) {
        let table = &self.table;
        writer.write(table.len() as u64, TABLE_LEN_BITS);
        let first = rice::zigzag(table[0].into());
        writer.write(u64::from(rice::width(first)), WARMUP_WIDTH_BITS);
        writer.write(first, rice::width(first));
        self.table_gaps.clear();
        self.table_gaps.extend(
            table
                .windows(2)
                .map(|w| (i64::from(w[1]) - i64::from(w[0]) - 1) as u64),
        );
        let escape_width = rice::width(self.table_gaps.iter().fold(0, |acc, &u| acc | u));
        writer.write(u64::from(escape_width), ESCAPE_WIDTH_BITS);
        rice::write_adaptive(writer, &mut self.room, &self.table_gaps, escape_width);
    }

    /// Leaves in `best` the best fixed predictor or LPC, whichever has the
    /// fewer estimated bits, with its residuals. The estimate is the size of
    /// Laplacian residuals with the measured mean |residual| (log2(2e·mean)
    /// bits each), plus warm-ups and coefficients: FLAC's fixed-order
    /// criterion, applied across kinds, so only the winner's residuals are
    /// computed (and only LPC's when it wins, the common case).
    #[inline(always)]
    fn choose_predictor<const WIDE: bool>(&mut self, samples: &[i32], warmup_width: u32) {
        let coded: usize = self.segments.iter().map(|s| s.len()).sum();
        let warmups = |segments: &[Range<usize>], order: usize| {
            segments.iter().map(|s| s.len().min(order)).sum::<usize>()
        };
        let (fixed_order, fixed_sum) = best_fixed_order(samples, &self.segments, warmup_width);
        let fixed_warmups = warmups(&self.segments, fixed_order);
        let fixed_bits = estimated_bits(fixed_sum, coded - fixed_warmups, fixed_warmups, warmup_width);
        let config = self.config;
        let lpc = analyse_lpc::<WIDE>(
            samples,
            &self.segments,
            config.max_lpc_order.into(),
            config.lpc_precision.into(),
            &mut self.lpc,
        );
        if let Some(lpc) = lpc {
            self.residuals(samples, warmup_width, lpc);
            let lpc_warmups = warmups(&self.segments, lpc.order);
            // Σ zigzag(r) = 2·Σ|r| − (negative count): half of it is Σ|r| within n/2.
            let (sum, or) = saturating_sum_and_or(self.best.zigzagged());
            let sum = sum / 2;
            self.best.or = or;
            let coefficients = (lpc.order as u64 * u64::from(lpc.precision)) as f64;
            let lpc_bits = estimated_bits(sum, coded - lpc_warmups, lpc_warmups, warmup_width) + coefficients;
            if lpc_bits <= fixed_bits {
                return;
            }
        }
        self.residuals(samples, warmup_width, Predictor::fixed(fixed_order));
        self.best.or = self.best.zigzagged().iter().fold(0, |acc, &u| acc | u);
    }

    #[inline(always)]
    fn residuals(&mut self, samples: &[i32], width: u32, predictor: Predictor) {
        let best = &mut self.best;
        let count = |s: &Range<usize>| s.len().saturating_sub(predictor.order);
        best.count = self.segments.iter().map(count).sum();
        if best.zigzagged.len() < best.count {
            best.zigzagged.resize(best.count, 0);
        }
        let mut at = 0;
        for segment in &self.segments {
            let out = &mut best.zigzagged[at..at + count(segment)];
            predictor.zigzag_residuals(&samples[segment.clone()], width, out);
            at += out.len();
        }
        best.predictor = Some(predictor);
    }

    /// The predictor kind, the mapped flag and the predictor.
    fn write_header(&self, mapped: bool, writer: &mut BitWriter) {
        let Some(p) = self.best.predictor else { return };
        match p.kind {
            PredictorKind::Fixed => {
                writer.write(KIND_FIXED, 2);
                writer.write(u64::from(mapped), 1);
                writer.write(p.order as u64, 3);
            }
            _ => {
                writer.write(KIND_LPC, 2);
                writer.write(u64::from(mapped), 1);
                writer.write(p.order as u64 - 1, 5);
                writer.write(u64::from(p.precision - 1), 4);
                writer.write(u64::from(p.shift), 5);
                for &c in &p.coefs[..p.order] {
                    writer.write(c as u64, p.precision); // two's complement, low bits
                }
            }
        }
    }

    /// Warm-up width, escape width, warm-ups and residuals.
    #[inline(always)]
    fn write_body(&mut self, samples: &[i32], warmup_width: u32, writer: &mut BitWriter) {
        let best = &self.best;
        let Some(p) = best.predictor else { return };
        writer.write(u64::from(warmup_width), WARMUP_WIDTH_BITS);
        let escape_width = rice::width(best.or);
        writer.write(u64::from(escape_width), ESCAPE_WIDTH_BITS);
        for segment in &self.segments {
            let warmup = segment.start..segment.end.min(segment.start + p.order);
            for &v in &samples[warmup] {
                writer.write(rice::zigzag(v.into()), warmup_width);
            }
        }
        rice::write_adaptive(writer, &mut self.room, best.zigzagged(), escape_width);
    }
}

/// Whether the CPU runs the `target_feature(enable = "avx2,bmi1,bmi2,lzcnt")`
/// builds of the encoder and decoder (the result is cached by std).
#[cfg(target_arch = "x86_64")]
fn has_avx2_bmi2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("bmi2")
        && std::arch::is_x86_feature_detected!("lzcnt")
}

/// Whether the CPU also runs the AVX-512 build of the encoder (cached by std).
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512dq")
}

/// Estimated bits of `count` residuals whose absolute values sum to `sum`,
/// as Laplacian (log2(2e·mean) bits each, at least one), plus the warm-ups.
fn estimated_bits(sum: u64, count: usize, warmups: usize, warmup_width: u32) -> f64 {
    let per_residual = if count == 0 {
        0.0
    } else {
        (sum as f64 / count as f64 * 2.0 * std::f64::consts::E)
            .log2()
            .max(1.0)
    };
    per_residual * count as f64 + (warmups as u64 * u64::from(warmup_width)) as f64
}

/// `values` summed with saturation, and or-ed together, in one pass (the
/// escape width comes from the or: a second pass over the residuals cost
/// about 1 % of encode time). The sum from plain (vectorisable) adds: the
/// high and the low 32-bit halves are summed apart, each exactly in a u64
/// for up to 2^32 values (a block holds at most 2^24), and recombined in
/// u128. Inlined, so it gets the vector builds of the encoder.
#[inline(always)]
fn saturating_sum_and_or(values: &[u64]) -> (u64, u64) {
    if values.len() > u32::MAX as usize {
        let or = values.iter().fold(0, |acc, &u| acc | u);
        return (values.iter().fold(0u64, |a, &u| a.saturating_add(u)), or);
    }
    let (high, low, or) = values.iter().fold((0u64, 0u64, 0u64), |(high, low, or), &u| {
        (high + (u >> 32), low + (u & 0xFFFF_FFFF), or | u)
    });
    let total = (u128::from(high) << 32) + u128::from(low);
    (u64::try_from(total).unwrap_or(u64::MAX), or)
}

/// The zigzagged samples or-ed together (a loop LLVM vectorises; inlined,
/// so it gets the AVX2 build of the encoder).
#[inline(always)]
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
    table: Vec<i32>,
}

impl BlockDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one block into `block`, reusing its buffers. Any malformed
    /// input is a [`CodecError`]; `block` is then unspecified.
    pub fn decode_into(&mut self, bytes: &[u8], block: &mut ChannelBlock) -> Result<(), CodecError> {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_bmi2() {
            // SAFETY: the CPU has the features this function is compiled for
            // (detected just above).
            return unsafe { self.decode_into_bmi2(bytes, block) };
        }
        self.decode_into_inline(bytes, block)
    }

    /// [`Self::decode_into_inline`] compiled with BMI2 and LZCNT (the Rice
    /// reader's zero count and variable shifts).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt")]
    fn decode_into_bmi2(&mut self, bytes: &[u8], block: &mut ChannelBlock) -> Result<(), CodecError> {
        self.decode_into_inline(bytes, block)
    }

    #[inline(always)]
    fn decode_into_inline(&mut self, bytes: &[u8], block: &mut ChannelBlock) -> Result<(), CodecError> {
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

    #[inline(always)]
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
            let mapped = reader.read(1)? == 1;
            let predictor = read_predictor(&mut reader, kind)?;
            if mapped {
                read_table(&mut reader, &mut self.table, &mut self.residuals)?;
            }
            self.decode_predicted(&mut reader, &predictor, &mut channel.samples)?;
            if mapped {
                for segment in &self.segments {
                    for v in &mut channel.samples[segment.clone()] {
                        // A negative rank becomes a huge index: refused too.
                        *v = *self
                            .table
                            .get(*v as u32 as usize)
                            .ok_or(CodecError::Corrupt("rank outside the value table"))?;
                    }
                }
            }
        }
        *at += reader.bytes_consumed();
        Ok(())
    }

    #[inline(always)]
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
        rice::read_adaptive(reader, residual_count, escape_width, &mut self.residuals)?;
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

/// Reads a value table written by `BlockEncoder::write_table`; `scratch`
/// takes the coded gaps.
fn read_table(
    reader: &mut BitReader,
    table: &mut Vec<i32>,
    scratch: &mut Vec<i64>,
) -> Result<(), CodecError> {
    let len = reader.read(TABLE_LEN_BITS)? as usize;
    if len == 0 {
        return Err(CodecError::Corrupt("empty value table"));
    }
    let first = {
        let width = read_width(reader, WARMUP_WIDTH_BITS, 32)?;
        read_sample(reader, width)?
    };
    let escape_width = read_width(reader, ESCAPE_WIDTH_BITS, 64)?;
    // Every gap takes at least one bit: refuse before allocating.
    if len - 1 > reader.bits_left() {
        return Err(CodecError::Truncated);
    }
    rice::read_adaptive(reader, len - 1, escape_width, scratch)?;
    table.clear();
    table.push(first);
    let mut previous = i64::from(first);
    for &gap in scratch.iter() {
        let gap =
            i64::try_from(rice::zigzag(gap)).map_err(|_| CodecError::Corrupt("value table gap too large"))?;
        let next = previous
            .checked_add(gap)
            .and_then(|v| v.checked_add(1))
            .and_then(|v| i32::try_from(v).ok())
            .ok_or(CodecError::Corrupt("value table outside the i32 range"))?;
        table.push(next);
        previous = i64::from(next);
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
