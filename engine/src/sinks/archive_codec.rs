//! Segment plaintext with compressed samples (`docs/security.md`, "Segment plaintext").
//!
//! With `codec: none` a segment's plaintext is binary wire messages, concatenated. With
//! `lossless` or `lossy` it is `"SFAC" ‖ 0x01` followed by **units**: a raw unit holds one wire
//! message as it is (records, and frames that cannot be coded); a block unit holds consecutive
//! frames of one layout, each frame's wire message minus its samples (as a template message
//! and per-frame differences) beside one codec block of all their samples. Decoding rebuilds
//! every frame and wire-encodes it, so a lossless segment gives back exactly the wire messages
//! the sink received (wire encoding is canonical), and a lossy one the same frames with the
//! decoded samples.
//!
//! Frames carry f32 samples without a grid, so each block's grid is found per channel: the
//! declared `resolution`, the previous block's grid, then grids inferred from the samples; a
//! grid is used only if it maps **every** sample of the block back to the same f32 bits. A
//! block with a channel off every grid is written as raw units: lossless means byte-identical.

use std::collections::BTreeMap;
use std::sync::Arc;

use ndarray::Array2;
use sigfab_operators::codec::{
    block_len, BlockDecoder, BlockEncoder, ChannelBlock, ChannelData, LossyConfig, LossyDecoder,
    LossyEncoder, SampleGrid, MAX_BLOCK_SAMPLES,
};
use sigfab_operators::{Frame, Item, Metadata};

use crate::wire::{self, Encoding};

/// First bytes of a coded segment plaintext. A `codec: none` plaintext starts with a wire
/// message (`"SGFB"`) or is empty, so the two never collide.
pub const PLAINTEXT_MAGIC: [u8; 4] = *b"SFAC";
pub const PLAINTEXT_VERSION: u8 = 1;
const UNIT_RAW: u8 = 1;
const UNIT_LOSSLESS: u8 = 2;
const UNIT_LOSSY: u8 = 3;
const GRID_AFFINE: u8 = 0;
const GRID_WFDB: u8 = 1;
const FLAG_DISCONTINUITY: u8 = 1;
const FLAG_METADATA: u8 = 2;

/// How the sink codes samples.
#[derive(Clone, Debug, PartialEq)]
pub enum CodecMode {
    Lossless,
    /// PCA within this PRDN bound (percent), else lossless.
    Lossy {
        max_prdn_percent: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct CodecSettings {
    pub mode: CodecMode,
    pub block_seconds: u32,
    /// Declared grid step per channel name.
    pub resolution: BTreeMap<String, f64>,
}

/// Counts of what the encoder wrote (for tests and measurements).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CodecStats {
    pub lossless_blocks: u64,
    pub lossy_blocks: u64,
    /// Frames written raw because their block was off every grid (or not codable).
    pub raw_frames: u64,
    pub records: u64,
    /// Largest PRDN (percent) of a lossy block.
    pub max_prdn: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentCodecError {
    #[error("corrupt coded segment: {0}")]
    Corrupt(&'static str),
    #[error("unsupported coded segment version {0}")]
    Version(u8),
    #[error("codec block: {0}")]
    Codec(#[from] sigfab_operators::codec::CodecError),
    #[error("lossy codec block: {0}")]
    Lossy(#[from] sigfab_operators::codec::LossyError),
    #[error("wire message in a coded segment: {0}")]
    Wire(#[from] wire::WireError),
    #[error("frame in a coded segment: {0}")]
    Frame(#[from] sigfab_operators::FrameError),
}

/// Whether `next` may join a block whose first frame is `first`.
pub fn same_shape(first: &Frame, next: &Frame) -> bool {
    first.modality == next.modality
        && first.stream_id == next.stream_id
        && (Arc::ptr_eq(&first.layout, &next.layout) || first.layout == next.layout)
}

/// Samples of a frame's channel 0.
fn count0(frame: &Frame) -> usize {
    frame.counts().first().map_or(0, |&n| n as usize)
}

/// Frames of one stream waiting to be coded as one block.
#[derive(Default)]
pub struct PendingBlock {
    pub frames: Vec<Frame>,
    samples: usize,
}

impl PendingBlock {
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether `frame` must start a new block (shape change or size limit).
    pub fn must_flush_before(&self, frame: &Frame) -> bool {
        self.frames.first().is_some_and(|first| {
            !same_shape(first, frame) || self.samples + frame.samples().len() > MAX_BLOCK_SAMPLES
        })
    }

    pub fn push(&mut self, frame: Frame) {
        self.samples += frame.samples().len();
        self.frames.push(frame);
    }

    /// Whether the block holds `block_seconds` of channel 0 (frames are not split, so a block
    /// may end up to one frame longer).
    pub fn is_full(&self, block_seconds: u32) -> bool {
        let Some(first) = self.frames.first() else {
            return false;
        };
        let Some(spec) = first.layout.channels.first() else {
            return true;
        };
        let held: usize = self.frames.iter().map(count0).sum();
        block_len(spec.sample_rate, block_seconds).map_or(true, |len| held >= len)
    }

    pub fn take(&mut self) -> Vec<Frame> {
        self.samples = 0;
        std::mem::take(&mut self.frames)
    }
}

/// Codes blocks into segment plaintext; keeps its buffers between blocks.
pub struct SegmentEncoder {
    settings: CodecSettings,
    lossless: BlockEncoder,
    lossy: Option<LossyEncoder>,
    block: ChannelBlock,
    coded: Vec<u8>,
    values: Vec<f32>,
    pub stats: CodecStats,
}

impl SegmentEncoder {
    pub fn new(settings: CodecSettings) -> SegmentEncoder {
        let lossy = match settings.mode {
            CodecMode::Lossy { max_prdn_percent } => Some(LossyEncoder::new(LossyConfig {
                prd_bound: max_prdn_percent,
                ..LossyConfig::default()
            })),
            CodecMode::Lossless => None,
        };
        SegmentEncoder {
            settings,
            lossless: BlockEncoder::default(),
            lossy,
            block: ChannelBlock::default(),
            coded: Vec::new(),
            values: Vec::new(),
            stats: CodecStats::default(),
        }
    }

    pub fn block_seconds(&self) -> u32 {
        self.settings.block_seconds
    }

    /// Appends the plaintext prefix of a coded segment.
    pub fn start(out: &mut Vec<u8>) {
        out.extend_from_slice(&PLAINTEXT_MAGIC);
        out.push(PLAINTEXT_VERSION);
    }

    /// Appends one item as a raw unit.
    pub fn raw(&mut self, item: &Item, out: &mut Vec<u8>) {
        match item {
            Item::Record(_) => self.stats.records += 1,
            Item::Frame(_) => self.stats.raw_frames += 1,
        }
        out.push(UNIT_RAW);
        wire::encode(item, Encoding::Binary, out);
    }

    /// Appends `frames` (one stream, one layout, in order) as one block unit, or as raw units
    /// when they cannot be coded. `grids` carries the stream's last grids between blocks.
    pub fn block(&mut self, frames: Vec<Frame>, grids: &mut Vec<SampleGrid>, out: &mut Vec<u8>) {
        let Some(first) = frames.first() else { return };
        let channels = first.layout.len();
        let template = template(first);
        let codable = channels > 0 && frames.len() <= u32::MAX as usize;
        if let (true, Some(template)) = (codable, &template) {
            if self.lossy.is_some() && self.try_lossy(template, &frames, out) {
                self.stats.lossy_blocks += 1;
                return;
            }
            if self.try_lossless(template, &frames, grids, out) {
                self.stats.lossless_blocks += 1;
                return;
            }
        }
        {}
        for frame in frames {
            self.raw(&Item::Frame(frame), out);
        }
    }

    /// Gathers channel `c` of every frame into `self.values`.
    fn gather(&mut self, frames: &[Frame], c: usize) {
        self.values.clear();
        for frame in frames {
            self.values.extend_from_slice(frame.channel(c));
        }
    }

    fn try_lossless(
        &mut self,
        template: &Frame,
        frames: &[Frame],
        grids: &mut Vec<SampleGrid>,
        out: &mut Vec<u8>,
    ) -> bool {
        let first = template;
        let channels = first.layout.len();
        self.block.channels.resize_with(channels, ChannelData::default);
        grids.resize(
            channels,
            SampleGrid::Affine {
                scale: 1.0,
                offset: 0.0,
            },
        );
        for (c, (grid, spec)) in grids.iter_mut().zip(&first.layout.channels).enumerate() {
            self.gather(frames, c);
            let declared = self.settings.resolution.get(&spec.name).copied();
            let Some(found) = find_grid(&self.values, declared, *grid, &mut self.block.channels[c]) else {
                return false;
            };
            *grid = found;
        }
        self.coded.clear();
        if self.lossless.encode(&self.block, &mut self.coded).is_err() {
            return false;
        }
        out.push(UNIT_LOSSLESS);
        write_frames(template, frames, out);
        for grid in grids.iter() {
            match *grid {
                SampleGrid::Affine { scale, offset } => {
                    out.push(GRID_AFFINE);
                    out.extend_from_slice(&scale.to_bits().to_be_bytes());
                    out.extend_from_slice(&offset.to_bits().to_be_bytes());
                }
                SampleGrid::Wfdb { gain, baseline } => {
                    out.push(GRID_WFDB);
                    out.extend_from_slice(&gain.to_bits().to_be_bytes());
                    out.extend_from_slice(&baseline.to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&(self.coded.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.coded);
        true
    }

    fn try_lossy(&mut self, template: &Frame, frames: &[Frame], out: &mut Vec<u8>) -> bool {
        let channels = template.layout.len();
        // PCA needs one rate: every frame's channels hold the same count.
        if frames
            .iter()
            .any(|f| f.counts().iter().any(|&n| n as usize != count0(f)))
        {
            return false;
        }
        let samples: usize = frames.iter().map(count0).sum();
        if samples == 0 {
            return false;
        }
        let mut matrix = Array2::<f32>::zeros((channels, samples));
        for c in 0..channels {
            self.gather(frames, c);
            matrix
                .row_mut(c)
                .assign(&ndarray::ArrayView1::from(&self.values[..]));
        }
        let Some(encoder) = self.lossy.as_mut() else {
            return false;
        };
        self.coded.clear();
        // Over the bound, gaps, infinities: the caller codes the block losslessly.
        let Ok(report) = encoder.encode(matrix.view(), &mut self.coded) else {
            return false;
        };
        self.stats.max_prdn = self.stats.max_prdn.max(report.prdn);
        out.push(UNIT_LOSSY);
        write_frames(template, frames, out);
        out.extend_from_slice(&(self.coded.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.coded);
        true
    }
}

/// Quantises `values` onto the first grid that maps every one of them back to its exact f32
/// bits: the stream's previous one, the declared step (offset 0, then the offset and exact
/// step fitted to the values), then grids inferred from the values alone.
/// NaN is a gap, but only the canonical NaN: the codec gives gaps back as `f32::NAN`.
fn find_grid(
    values: &[f32],
    declared: Option<f64>,
    previous: SampleGrid,
    out: &mut ChannelData,
) -> Option<SampleGrid> {
    if values
        .iter()
        .any(|x| x.is_nan() && x.to_bits() != f32::NAN.to_bits())
    {
        return None;
    }
    let fits = |grid: SampleGrid, out: &mut ChannelData| grid.quantise(values, out).is_ok();
    if fits(previous, out) {
        return Some(previous);
    }
    if let Some(step) = declared {
        let candidates = SampleGrid::affine(step, 0.0)
            .ok()
            .into_iter()
            .chain(fit_affine(&distinct_finite(values), step));
        for grid in candidates {
            if fits(grid, out) {
                return Some(grid);
            }
        }
    }
    inferred_grids(values).into_iter().find(|&grid| fits(grid, out))
}

/// The finite values, sorted, each once.
fn distinct_finite(values: &[f32]) -> Vec<f32> {
    let mut distinct: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    distinct.sort_by(f32::total_cmp);
    distinct.dedup_by(|a, b| a.to_bits() == b.to_bits());
    distinct
}

/// Candidate grids for `values`: with δ the smallest difference between distinct values, the
/// WFDB grid `(d − baseline) / gain` with the integer gain nearest 1/δ, then an affine grid
/// `d·scale + offset` (EDF's formula, and WFDB's with any gain) with a step of δ/n for the
/// smallest n ≤ 32 that numbers every value (a signal may never move by a single step), found
/// by [`fit_affine`].
fn inferred_grids(values: &[f32]) -> Vec<SampleGrid> {
    let distinct = distinct_finite(values);
    let Some(&low) = distinct.first() else {
        return Vec::new(); // all gaps: the previous grid (or the default) fits already
    };
    let gaps = || {
        distinct.windows(2).map(|w| {
            (
                f64::from(w[1]) - f64::from(w[0]),
                f64::from(w[0].abs().max(w[1].abs())),
            )
        })
    };
    let smallest = gaps().map(|(d, _)| d).fold(f64::INFINITY, f64::min);
    if !smallest.is_finite() || smallest <= 0.0 {
        // One value: digital 0 is that very value.
        return SampleGrid::affine(1.0, f64::from(low)).into_iter().collect();
    }
    // Of the (near-)smallest gaps, the one between the smallest magnitudes is the most exact
    // (f32 spacing grows with magnitude).
    let step = gaps()
        .filter(|&(d, _)| d <= smallest * 1.01)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(smallest, |(d, _)| d);
    let mut grids = Vec::new();
    let gain = (1.0 / step).round();
    if gain >= 1.0 && ((1.0 / step) - gain).abs() <= 1e-3 * gain {
        grids.extend(SampleGrid::wfdb(gain, 0).ok());
    }
    grids.extend((1..=32).find_map(|n| fit_affine(&distinct, step / f64::from(n))));
    grids
}

/// Finds `scale` and `offset` such that every value `x` is `f32(k·scale + offset)` for an
/// integer k, if the values lie on such a grid. A least-squares fit numbers the values (k) and
/// estimates the grid; then, since each value only says that `k·scale + offset` lies in the
/// interval of reals that round to it, the scale is chosen where the tightest of those
/// intervals leaves the most room (a concave function of the scale, so a ternary search), and
/// the offset in the middle of that room. The caller still checks every sample.
fn fit_affine(distinct: &[f32], step: f64) -> Option<SampleGrid> {
    let xs: Vec<f64> = distinct.iter().map(|&x| f64::from(x)).collect();
    let (low, high) = (*xs.first()?, *xs.last()?);
    // f32 spacing at the largest magnitude: how far a value may be from its exact real.
    let widest = distinct.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let spacing = f64::from(next_f32(widest, true)) - f64::from(widest);
    // δ comes from two f32 values, so it may be off by their spacing. Adjacent values differ
    // by few steps, so number the differences (m = d / scale, rounded) starting with the
    // smallest, refit the scale from all numbered so far (their sum telescopes, so its error
    // stays one spacing), and widen to larger differences as the scale allows.
    let diffs: Vec<f64> = xs.windows(2).map(|w| w[1] - w[0]).collect();
    let growth = (0.1 * step / spacing).clamp(1.5, 16.0);
    let mut scale = step;
    let mut limit = 4.0;
    let largest = diffs.iter().fold(0.0f64, |m, &d| m.max(d)) / step;
    let mut final_passes = 0;
    while final_passes < 2 {
        if limit >= 2.0 * largest {
            final_passes += 1;
        }
        let (mut sum_d, mut sum_m) = (0.0, 0.0);
        for &d in &diffs {
            let m = (d / scale).round();
            if m >= 1.0 && m <= limit {
                sum_d += d;
                sum_m += m;
            }
        }
        if sum_m > 0.0 {
            scale = sum_d / sum_m;
        }
        limit *= growth;
    }
    let mut ks = Vec::with_capacity(xs.len());
    let mut k = 0.0;
    ks.push(k);
    for &d in &diffs {
        k += (d / scale).round();
        ks.push(k);
    }
    let n = ks.len() as f64;
    let (mean_k, mean_x) = (ks.iter().sum::<f64>() / n, xs.iter().sum::<f64>() / n);
    let (mut skk, mut skx) = (0.0, 0.0);
    for (&k, &x) in ks.iter().zip(&xs) {
        skk += (k - mean_k) * (k - mean_k);
        skx += (k - mean_k) * (x - mean_x);
    }
    if skk <= 0.0 {
        return None;
    }
    let scale = skx / skk;
    let offset = mean_x - scale * mean_k;
    // Every value must sit within a quarter step of its numbered place, else this step is wrong.
    let tolerance = (0.25 * scale.abs()).max(spacing);
    if ks
        .iter()
        .zip(&xs)
        .any(|(&k, &x)| (x - (k * scale + offset)).abs() > tolerance)
    {
        return None;
    }
    // The reals that round to x: half-way to each f32 neighbour, narrowed a little so that
    // f64 rounding of k·scale + offset cannot step out.
    let bounds: Vec<(f64, f64, f64)> = distinct
        .iter()
        .zip(&ks)
        .map(|(&x, &k)| {
            let (down, up) = (f64::from(next_f32(x, false)), f64::from(next_f32(x, true)));
            let (lo, hi) = ((down + f64::from(x)) / 2.0, (f64::from(x) + up) / 2.0);
            let margin = (hi - lo) * 1e-6;
            (k, lo + margin, hi - margin)
        })
        .collect();
    let room = |s: f64| {
        let (mut lower, mut upper) = (f64::NEG_INFINITY, f64::INFINITY);
        for &(k, lo, hi) in &bounds {
            lower = lower.max(lo - k * s);
            upper = upper.min(hi - k * s);
        }
        (upper - lower, (upper + lower) / 2.0)
    };
    // The feasible scales are about spacing / span wide; search a few such widths around the fit.
    let reach = (4.0 * spacing / (high - low)).max(1e-9 * scale.abs());
    let (mut a, mut b) = (scale - reach, scale + reach);
    for _ in 0..200 {
        let (m1, m2) = (a + (b - a) / 3.0, b - (b - a) / 3.0);
        if room(m1).0 < room(m2).0 {
            a = m1;
        } else {
            b = m2;
        }
    }
    let scale = (a + b) / 2.0;
    let (width, offset) = room(scale);
    if width < 0.0 {
        return None;
    }
    SampleGrid::affine(scale, offset).ok()
}

/// The next f32 above (`up`) or below a finite `x`.
fn next_f32(x: f32, up: bool) -> f32 {
    if x == 0.0 {
        let tiny = f32::from_bits(1);
        return if up { tiny } else { -tiny };
    }
    let bits = x.to_bits();
    let away = (x > 0.0) == up;
    f32::from_bits(if away { bits + 1 } else { bits - 1 })
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_str(s: &str, out: &mut Vec<u8>) {
    put_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// Frame 0 of a block with no samples (every count 0): what all its frames share. `None` for
/// a layout no frame may have (a bad rate), which then goes raw.
fn template(first: &Frame) -> Option<Frame> {
    let mut template = Frame::new(
        first.stream_id.clone(),
        first.modality,
        first.layout.clone(),
        first.start_ns,
        first.sequence,
        vec![0; first.layout.len()],
        Vec::new(),
    )
    .ok()?;
    template.discontinuity = first.discontinuity;
    template.metadata = first.metadata.clone();
    Some(template)
}

/// The frames of a block without their samples: the template (frame 0's wire message with
/// every sample count 0), the frame count, then per frame its flags, time and sequence
/// differences, sample counts and, when it changed, its metadata.
fn write_frames(template: &Frame, frames: &[Frame], out: &mut Vec<u8>) {
    let first = template;
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    wire::encode_frame_binary(template, out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&(frames.len() as u32).to_be_bytes());
    let (mut start, mut delta, mut sequence) = (first.start_ns, 0i64, first.sequence);
    let mut metadata = &first.metadata;
    for frame in frames {
        let changed = frame.metadata != *metadata;
        out.push(
            if frame.discontinuity {
                FLAG_DISCONTINUITY
            } else {
                0
            } | if changed { FLAG_METADATA } else { 0 },
        );
        let d = frame.start_ns.wrapping_sub(start);
        put_varint(zigzag(d.wrapping_sub(delta)), out);
        put_varint(zigzag(frame.sequence.wrapping_sub(sequence) as i64), out);
        (start, delta, sequence) = (frame.start_ns, d, frame.sequence);
        for &count in frame.counts() {
            put_varint(u64::from(count), out);
        }
        if changed {
            put_varint(frame.metadata.len() as u64, out);
            for (key, value) in frame.metadata.iter() {
                put_str(key, out);
                put_str(value, out);
            }
            metadata = &frame.metadata;
        }
    }
}

/// Reads a coded plaintext, or passes a `codec: none` one through.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SegmentCodecError> {
        if self.rest.len() < n {
            return Err(SegmentCodecError::Corrupt("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, SegmentCodecError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, SegmentCodecError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, SegmentCodecError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn varint(&mut self) -> Result<u64, SegmentCodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SegmentCodecError::Corrupt("varint too long"))
    }

    fn string(&mut self) -> Result<String, SegmentCodecError> {
        let len = usize::try_from(self.varint()?).map_err(|_| SegmentCodecError::Corrupt("string length"))?;
        if len > wire::MAX_STRING_LEN {
            return Err(SegmentCodecError::Corrupt("string too long"));
        }
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| SegmentCodecError::Corrupt("string not UTF-8"))
    }
}

/// One frame's stored fields, samples aside.
struct Skeleton {
    flags: u8,
    start_ns: i64,
    sequence: u64,
    counts: Vec<u32>,
    metadata: Metadata,
}

/// Whether a segment's plaintext is coded (else it is plain wire messages).
pub fn is_coded(plaintext: &[u8]) -> bool {
    plaintext.starts_with(&PLAINTEXT_MAGIC)
}

/// Decodes a coded plaintext into the binary wire messages it stands for, appended to `out`.
/// Checks everything; fails (writing a partial `out` the caller must discard) on any error.
pub fn decode(plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), SegmentCodecError> {
    let mut r = Reader { rest: plaintext };
    if r.take(4)? != PLAINTEXT_MAGIC {
        return Err(SegmentCodecError::Corrupt("bad magic"));
    }
    let version = r.u8()?;
    if version != PLAINTEXT_VERSION {
        return Err(SegmentCodecError::Version(version));
    }
    let mut lossless = BlockDecoder::new();
    let mut lossy = LossyDecoder::new();
    let mut block = ChannelBlock::default();
    let mut values: Vec<Vec<f32>> = Vec::new();
    while !r.rest.is_empty() {
        match r.u8()? {
            UNIT_RAW => {
                let len =
                    wire::split_binary(r.rest)?.ok_or(SegmentCodecError::Corrupt("raw message truncated"))?;
                let message = r.take(len)?;
                wire::decode_binary(message)?;
                out.extend_from_slice(message);
            }
            unit @ (UNIT_LOSSLESS | UNIT_LOSSY) => {
                let (template, skeletons) = read_frames(&mut r)?;
                let channels = template.layout.len();
                values.resize_with(channels, Vec::new);
                if unit == UNIT_LOSSLESS {
                    let mut grids = Vec::with_capacity(channels);
                    for _ in 0..channels {
                        let kind = r.u8()?;
                        let a = f64::from_bits(r.u64()?);
                        let b = r.u64()?;
                        grids.push(match kind {
                            GRID_AFFINE => SampleGrid::affine(a, f64::from_bits(b))?,
                            GRID_WFDB => SampleGrid::wfdb(a, b as i64)?,
                            _ => return Err(SegmentCodecError::Corrupt("unknown grid kind")),
                        });
                    }
                    let len = r.u32()? as usize;
                    lossless.decode_into(r.take(len)?, &mut block)?;
                    if block.channels.len() != channels {
                        return Err(SegmentCodecError::Corrupt("channel count"));
                    }
                    for ((grid, data), v) in grids.iter().zip(&block.channels).zip(values.iter_mut()) {
                        v.clear();
                        grid.dequantise(data, v);
                    }
                } else {
                    let len = r.u32()? as usize;
                    let matrix = lossy.decode(r.take(len)?)?;
                    if matrix.nrows() != channels {
                        return Err(SegmentCodecError::Corrupt("channel count"));
                    }
                    for (row, v) in matrix.rows().into_iter().zip(values.iter_mut()) {
                        v.clear();
                        v.extend(row.iter().copied());
                    }
                }
                rebuild(&template, &skeletons, &values, out)?;
            }
            _ => return Err(SegmentCodecError::Corrupt("unknown unit")),
        }
    }
    Ok(())
}

fn read_frames(r: &mut Reader<'_>) -> Result<(Frame, Vec<Skeleton>), SegmentCodecError> {
    let len = r.u32()? as usize;
    let Item::Frame(template) = wire::decode_binary(r.take(len)?)? else {
        return Err(SegmentCodecError::Corrupt("block template is not a frame"));
    };
    let count = r.u32()? as usize;
    let channels = template.layout.len();
    // Each frame takes at least 3 + channels bytes: bound the allocation by what is there.
    if count.saturating_mul(3 + channels) > r.rest.len() {
        return Err(SegmentCodecError::Corrupt("frame count"));
    }
    let mut skeletons = Vec::with_capacity(count);
    let (mut start, mut delta, mut sequence) = (template.start_ns, 0i64, template.sequence);
    let mut metadata = template.metadata.clone();
    for _ in 0..count {
        let flags = r.u8()?;
        if flags & !(FLAG_DISCONTINUITY | FLAG_METADATA) != 0 {
            return Err(SegmentCodecError::Corrupt("frame flags"));
        }
        delta = delta.wrapping_add(unzigzag(r.varint()?));
        start = start.wrapping_add(delta);
        sequence = sequence.wrapping_add(unzigzag(r.varint()?) as u64);
        let counts = (0..channels)
            .map(|_| u32::try_from(r.varint()?).map_err(|_| SegmentCodecError::Corrupt("sample count")))
            .collect::<Result<Vec<u32>, _>>()?;
        if flags & FLAG_METADATA != 0 {
            let n = usize::try_from(r.varint()?).map_err(|_| SegmentCodecError::Corrupt("metadata count"))?;
            if n > wire::MAX_METADATA {
                return Err(SegmentCodecError::Corrupt("metadata count"));
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push((r.string()?, r.string()?));
            }
            metadata = Metadata::from(entries);
        }
        skeletons.push(Skeleton {
            flags,
            start_ns: start,
            sequence,
            counts,
            metadata: metadata.clone(),
        });
    }
    Ok((template, skeletons))
}

/// Cuts the decoded channels back into the block's frames and wire-encodes each.
fn rebuild(
    template: &Frame,
    skeletons: &[Skeleton],
    values: &[Vec<f32>],
    out: &mut Vec<u8>,
) -> Result<(), SegmentCodecError> {
    let channels = template.layout.len();
    let mut used = vec![0usize; channels];
    for skeleton in skeletons {
        let mut samples = Vec::with_capacity(skeleton.counts.iter().map(|&n| n as usize).sum());
        for (c, &n) in skeleton.counts.iter().enumerate() {
            let end = used[c]
                .checked_add(n as usize)
                .filter(|&end| end <= values[c].len())
                .ok_or(SegmentCodecError::Corrupt("sample counts exceed the block"))?;
            samples.extend_from_slice(&values[c][used[c]..end]);
            used[c] = end;
        }
        let mut frame = Frame::new(
            template.stream_id.clone(),
            template.modality,
            template.layout.clone(),
            skeleton.start_ns,
            skeleton.sequence,
            skeleton.counts.clone(),
            samples,
        )?;
        frame.discontinuity = skeleton.flags & FLAG_DISCONTINUITY != 0;
        frame.metadata = skeleton.metadata.clone();
        wire::encode_frame_binary(&frame, out);
    }
    if used.iter().zip(values).any(|(&u, v)| u != v.len()) {
        return Err(SegmentCodecError::Corrupt("samples left over in the block"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigfab_operators::{ChannelLayout, ChannelSpec, Modality, Record};

    fn layout(channels: usize, rate: f64) -> Arc<ChannelLayout> {
        Arc::new(ChannelLayout::new(
            (0..channels)
                .map(|c| ChannelSpec {
                    name: format!("ch{c}"),
                    unit: "mV".into(),
                    sample_rate: rate,
                })
                .collect(),
        ))
    }

    /// `n` frames of 40 ms at 250 Hz, channel c sample t = value(c, t).
    fn frames(n: usize, channels: usize, value: impl Fn(usize, usize) -> f32) -> Vec<Frame> {
        let layout = layout(channels, 250.0);
        (0..n)
            .map(|i| {
                let samples = (0..channels)
                    .flat_map(|c| (0..10).map(move |t| (c, i * 10 + t)))
                    .map(|(c, t)| value(c, t))
                    .collect();
                let mut frame = Frame::new(
                    "p1-0123456789abcdef0123456789abcdef".into(),
                    Modality::Ecg,
                    layout.clone(),
                    1_700_000_000_000_000_000 + i as i64 * 40_000_000,
                    100 + i as u64,
                    vec![10; channels],
                    samples,
                )
                .expect("frame");
                frame.metadata.push("unit", "icu-3");
                frame
            })
            .collect()
    }

    fn wave(c: usize, t: usize) -> f64 {
        let t = t as f64 / 250.0;
        (c as f64 + 1.0) * (7.0 * t).sin() + 0.3 * (31.0 * t + c as f64).cos()
    }

    fn settings(mode: CodecMode) -> CodecSettings {
        CodecSettings {
            mode,
            block_seconds: 1,
            resolution: BTreeMap::new(),
        }
    }

    /// Codes `items` as the sink does (blocks of one shape, records raw) and returns the
    /// plaintext and the wire messages the sink received.
    fn code(encoder: &mut SegmentEncoder, items: Vec<Item>) -> (Vec<u8>, Vec<u8>) {
        let mut wire_bytes = Vec::new();
        let mut plain = Vec::new();
        SegmentEncoder::start(&mut plain);
        let mut block = PendingBlock::default();
        let mut grids = Vec::new();
        for item in items {
            wire::encode(&item, Encoding::Binary, &mut wire_bytes);
            match item {
                Item::Frame(frame) => {
                    if block.must_flush_before(&frame) {
                        encoder.block(block.take(), &mut grids, &mut plain);
                    }
                    block.push(frame);
                    if block.is_full(encoder.block_seconds()) {
                        encoder.block(block.take(), &mut grids, &mut plain);
                    }
                }
                record => {
                    encoder.block(block.take(), &mut grids, &mut plain);
                    encoder.raw(&record, &mut plain);
                }
            }
        }
        encoder.block(block.take(), &mut grids, &mut plain);
        (plain, wire_bytes)
    }

    fn decoded(plain: &[u8]) -> Vec<u8> {
        assert!(is_coded(plain));
        let mut out = Vec::new();
        decode(plain, &mut out).expect("decode");
        out
    }

    #[test]
    fn on_grid_frames_round_trip_byte_for_byte_and_compress() {
        // WFDB-like values (d / 200 as f32), with gaps, a discontinuity, a sequence jump,
        // changed metadata and a record in between.
        let mut items: Vec<Item> = frames(60, 3, |c, t| {
            if c == 1 && (100..130).contains(&t) {
                f32::NAN
            } else {
                ((wave(c, t) * 200.0).round() / 200.0) as f32
            }
        })
        .into_iter()
        .map(Item::Frame)
        .collect();
        if let Item::Frame(f) = &mut items[30] {
            f.discontinuity = true;
            f.sequence += 1000;
            f.start_ns += 5_000_000_000;
            f.metadata.push("note", "moved");
        }
        let record = Record {
            stream_id: "p1-0123456789abcdef0123456789abcdef".into(),
            sequence: 3,
            kind: "frame_stats".into(),
            start_ns: 1,
            end_ns: 2,
            values: vec![("mean".into(), 0.5)].into(),
            labels: Vec::new(),
        };
        items.insert(45, Item::Record(record));
        let mut encoder = SegmentEncoder::new(settings(CodecMode::Lossless));
        let (plain, wire_bytes) = code(&mut encoder, items);
        assert!(decoded(&plain) == wire_bytes, "not byte-identical");
        assert_eq!(encoder.stats.raw_frames, 0, "{:?}", encoder.stats);
        assert_eq!(encoder.stats.records, 1);
        assert!(encoder.stats.lossless_blocks >= 3, "{:?}", encoder.stats);
        assert!(
            plain.len() * 3 < wire_bytes.len(),
            "{} vs {}",
            plain.len(),
            wire_bytes.len()
        );
    }

    #[test]
    fn edf_like_affine_grids_are_inferred() {
        // d·scale + offset with EDF's usual scale and offset (offset = scale / 2).
        let scale = 6400.0 / 65535.0;
        let offset = -3200.0 + 32768.0 * scale;
        let grid = SampleGrid::affine(scale, offset).expect("grid");
        let items: Vec<Item> = frames(50, 2, |c, t| {
            grid.to_physical((wave(c, t) * 300.0).round() as i32)
        })
        .into_iter()
        .map(Item::Frame)
        .collect();
        let mut encoder = SegmentEncoder::new(settings(CodecMode::Lossless));
        let (plain, wire_bytes) = code(&mut encoder, items);
        assert!(decoded(&plain) == wire_bytes);
        assert_eq!(encoder.stats.raw_frames, 0, "{:?}", encoder.stats);
    }

    #[test]
    fn off_grid_blocks_fall_back_to_raw_messages() {
        // Arbitrary f32 (no grid), a non-canonical NaN, and an on-grid block after them.
        let noisy: Vec<Item> = frames(25, 2, |c, t| (wave(c, t) * 1.000_001_3) as f32 + 1e-7 * t as f32)
            .into_iter()
            .map(Item::Frame)
            .collect();
        let odd_nan = frames(25, 1, |_, t| {
            if t == 7 {
                f32::from_bits(0x7fc0_0001)
            } else {
                t as f32
            }
        });
        let clean = frames(25, 1, |_, t| (t % 17) as f32);
        let items: Vec<Item> = noisy
            .into_iter()
            .chain(odd_nan.into_iter().chain(clean).map(Item::Frame))
            .collect();
        let mut encoder = SegmentEncoder::new(settings(CodecMode::Lossless));
        let (plain, wire_bytes) = code(&mut encoder, items);
        assert!(decoded(&plain) == wire_bytes);
        assert_eq!(encoder.stats.raw_frames, 50, "{:?}", encoder.stats);
        assert_eq!(encoder.stats.lossless_blocks, 1, "{:?}", encoder.stats);
    }

    #[test]
    fn declared_resolution_is_used() {
        let items: Vec<Item> = frames(25, 1, |_, t| ((wave(0, t) * 1000.0).round() * 0.001) as f32)
            .into_iter()
            .map(Item::Frame)
            .collect();
        let mut settings = settings(CodecMode::Lossless);
        settings.resolution.insert("ch0".into(), 0.001);
        let mut encoder = SegmentEncoder::new(settings);
        let (plain, wire_bytes) = code(&mut encoder, items);
        assert!(decoded(&plain) == wire_bytes);
        assert_eq!(encoder.stats.lossless_blocks, 1);
    }

    #[test]
    fn lossy_blocks_keep_the_frames_and_the_prdn_bound() {
        let value = |c: usize, t: usize| {
            ((wave(0, t) * (c as f64 + 1.0) + 0.01 * wave(c, t) * 200.0).round() / 200.0) as f32
        };
        let original = frames(100, 4, value);
        let items: Vec<Item> = original.iter().cloned().map(Item::Frame).collect();
        let mut encoder = SegmentEncoder::new(settings(CodecMode::Lossy {
            max_prdn_percent: 5.0,
        }));
        let (plain, wire_bytes) = code(&mut encoder, items);
        assert!(encoder.stats.lossy_blocks >= 3, "{:?}", encoder.stats);
        assert!(encoder.stats.max_prdn <= 5.0);
        let out = decoded(&plain);
        assert_eq!(out.len(), wire_bytes.len(), "same frames, same sizes");
        let mut rest = &out[..];
        for frame in &original {
            let len = wire::split_binary(rest).expect("header").expect("whole");
            let Item::Frame(back) = wire::decode_binary(&rest[..len]).expect("message") else {
                panic!("a frame")
            };
            rest = &rest[len..];
            assert_eq!(
                (back.start_ns, back.sequence, back.counts(), &*back.layout),
                (frame.start_ns, frame.sequence, frame.counts(), &*frame.layout)
            );
            assert!(back.metadata == frame.metadata);
        }
        assert!(rest.is_empty());
        // A bound nothing meets: every block goes lossless instead, byte-identical.
        let mut encoder = SegmentEncoder::new(settings(CodecMode::Lossy {
            max_prdn_percent: 0.0,
        }));
        let (plain, wire_bytes) = code(&mut encoder, original.into_iter().map(Item::Frame).collect());
        assert_eq!(encoder.stats.lossy_blocks, 0);
        assert!(decoded(&plain) == wire_bytes);
    }

    #[test]
    fn damaged_plaintext_fails_cleanly() {
        let items: Vec<Item> = frames(30, 2, |c, t| (wave(c, t) * 100.0).round() as f32)
            .into_iter()
            .map(Item::Frame)
            .collect();
        let mut encoder = SegmentEncoder::new(settings(CodecMode::Lossless));
        let (plain, _) = code(&mut encoder, items);
        for cut in 5..plain.len() {
            let mut out = Vec::new();
            // Never panics; a cut inside a unit is an error.
            let _ = decode(&plain[..cut], &mut out);
        }
        for at in (0..plain.len()).step_by(7) {
            let mut bytes = plain.clone();
            bytes[at] ^= 0x5a;
            let _ = decode(&bytes, &mut Vec::new());
        }
        let mut other = plain.clone();
        other[4] = 9;
        assert!(matches!(
            decode(&other, &mut Vec::new()),
            Err(SegmentCodecError::Version(9))
        ));
    }
}
