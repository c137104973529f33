//! Lossy block codec: PCA (SVD) across channels, keeping the fewest
//! components that meet a PRD bound (`docs/codec.md`, "Lossy blocks").
//!
//! A block is a channels × samples matrix of f32 physical values, all
//! channels at one rate. Each channel is mean-centred, the centred matrix is
//! decomposed (`nalgebra`'s SVD, pure Rust), and k components are kept: the
//! per-channel means and the k left singular vectors scaled by their singular
//! values as f32, the k right singular vectors quantised to integers and
//! coded with the lossless block codec (prediction + Rice + CRC). The encoder
//! reconstructs exactly as the decoder does and refuses the block
//! ([`LossyError::PrdBound`]) when the PRDN of that reconstruction exceeds
//! the bound; the caller then codes the block losslessly.

use nalgebra::DMatrix;
use ndarray::{Array2, ArrayView2};

use super::{
    BlockDecoder, BlockEncoder, ChannelBlock, ChannelData, CodecConfig, CodecError, MAX_BLOCK_SAMPLES,
};

const MAGIC: [u8; 4] = *b"SFCL";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 20;
const CRC_LEN: usize = 4;
/// Finest quantisation step of a (unit-norm) right singular vector: keeps
/// every quantised value within ±2^28.
const MIN_STEP: f64 = 1.0 / (1u64 << 28) as f64;
/// Fractions of the remaining error budget given to quantisation, tried in turn.
const QUANT_SHARES: [f64; 4] = [0.6, 0.3, 0.1, 0.01];
/// Components tried above the smallest k whose truncation meets the bound;
/// the smallest coded block wins.
const EXTRA_K: usize = 3;

/// Settings of the lossy encoder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossyConfig {
    /// Largest PRDN (percent) a block may have after coding.
    pub prd_bound: f64,
    /// Most components kept (`None`: as many as the block has channels).
    pub max_components: Option<usize>,
    /// Settings of the lossless codec that codes the right singular vectors.
    pub codec: CodecConfig,
}

impl Default for LossyConfig {
    fn default() -> Self {
        LossyConfig {
            prd_bound: 5.0,
            max_components: None,
            codec: CodecConfig::default(),
        }
    }
}

/// What the encoder did with a block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossyReport {
    /// Components kept.
    pub components: usize,
    /// PRD of the decoded block, percent: 100·sqrt(Σ(x−x̂)² / Σx²).
    pub prd: f64,
    /// PRDN, percent: 100·sqrt(Σ(x−x̂)² / Σ(x−x̄)²), x̄ the channel's mean.
    pub prdn: f64,
    /// Bytes of the coded block.
    pub bytes: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossyError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("a lossy block needs 1 to 65535 channels of equal length, 1 or more samples, at most {MAX_BLOCK_SAMPLES} in all")]
    Shape,
    #[error("channel {channel}: sample {index} is missing (NaN); blocks with gaps are coded losslessly")]
    Gap { channel: usize, index: usize },
    #[error("channel {channel}: sample {index} is infinite")]
    Infinite { channel: usize, index: usize },
    #[error("the PRD bound must be a finite number ≥ 0, not {0}")]
    InvalidBound(f64),
    #[error("no coding within the PRD bound: best PRDN {best_prdn:.3} % > bound {bound} % (code this block losslessly)")]
    PrdBound { best_prdn: f64, bound: f64 },
    #[error("the singular value decomposition did not converge")]
    SvdFailed,
}

/// PRD and PRDN (percent) of `decoded` against `original`, over the whole
/// block. A zero denominator gives 0 when the block is exact, else infinity.
pub fn prd(original: ArrayView2<f32>, decoded: ArrayView2<f32>) -> (f64, f64) {
    let (mut error, mut energy, mut centred) = (0.0f64, 0.0f64, 0.0f64);
    for (row, hat) in original.rows().into_iter().zip(decoded.rows()) {
        let n = row.len().max(1) as f64;
        let mean = row.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        for (&x, &y) in row.iter().zip(hat.iter()) {
            let (x, y) = (f64::from(x), f64::from(y));
            error += (x - y) * (x - y);
            energy += x * x;
            centred += (x - mean) * (x - mean);
        }
    }
    let percent = |den: f64| {
        if den > 0.0 {
            100.0 * (error / den).sqrt()
        } else if error == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    };
    (percent(energy), percent(centred))
}

/// The stored parameters of a block: what the decoder reads.
#[derive(Default)]
struct Parts {
    channels: usize,
    samples: usize,
    means: Vec<f32>,
    steps: Vec<f32>,
    /// Channel-major: `loadings[c * k + j]` = u_cj · s_j.
    loadings: Vec<f32>,
    /// k channels of `samples` integers: the quantised right vectors.
    vectors: ChannelBlock,
}

impl Parts {
    fn components(&self) -> usize {
        self.steps.len()
    }

    /// x̂[c][t] = mean_c + Σ_j loading_cj · (step_j · q_j[t]), in f64, in
    /// this order; the encoder and decoder both call this.
    fn reconstruct(&self, out: &mut Array2<f32>) {
        let k = self.components();
        *out = Array2::zeros((self.channels, self.samples));
        for (c, mut row) in out.rows_mut().into_iter().enumerate() {
            let loadings = &self.loadings[c * k..(c + 1) * k];
            for (t, slot) in row.iter_mut().enumerate() {
                let mut acc = f64::from(self.means[c]);
                for (j, &l) in loadings.iter().enumerate() {
                    let q = self.vectors.channels[j].samples[t];
                    acc += f64::from(l) * (f64::from(self.steps[j]) * f64::from(q));
                }
                *slot = acc as f32;
            }
        }
    }
}

/// Encodes lossy blocks.
#[derive(Default)]
pub struct LossyEncoder {
    config: LossyConfig,
    lossless: BlockEncoder,
    parts: Parts,
    trial: Vec<u8>,
    decoded: Array2<f32>,
}

impl LossyEncoder {
    pub fn new(config: LossyConfig) -> Self {
        LossyEncoder {
            config,
            lossless: BlockEncoder::new(config.codec),
            ..Default::default()
        }
    }

    /// Appends the coded block (channels × samples) to `out` and reports its
    /// PRD, PRDN and size; writes nothing and fails with
    /// [`LossyError::PrdBound`] when no k ≤ `max_components` meets the bound,
    /// and with [`LossyError::Gap`] on a NaN (such blocks go lossless).
    pub fn encode(&mut self, block: ArrayView2<f32>, out: &mut Vec<u8>) -> Result<LossyReport, LossyError> {
        let bound = self.config.prd_bound;
        if !(bound.is_finite() && bound >= 0.0) {
            return Err(LossyError::InvalidBound(bound));
        }
        let (channels, samples) = block.dim();
        check_block(block)?;
        let means = channel_means(block);
        let centred = centred(block, &means);
        let denominator: f64 = block
            .rows()
            .into_iter()
            .map(|row| {
                let mean = row.iter().map(|&x| f64::from(x)).sum::<f64>() / samples as f64;
                row.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>()
            })
            .sum();
        let svd = centred
            .try_svd(true, true, f64::EPSILON, 10_000)
            .ok_or(LossyError::SvdFailed)?;
        let (Some(u), Some(v_t)) = (svd.u.as_ref(), svd.v_t.as_ref()) else {
            return Err(LossyError::SvdFailed);
        };
        let values = &svd.singular_values;
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let rank = order.len();
        let max_k = self.config.max_components.unwrap_or(rank).min(rank);
        // Error energy allowed, and what truncation to k leaves: Σ_{i ≥ k} s_i².
        let allowed = (bound / 100.0).powi(2) * denominator;
        let tail = |k: usize| order[k..].iter().map(|&i| values[i] * values[i]).sum::<f64>();
        let first_k = (0..=max_k).find(|&k| tail(k) <= allowed);
        let mut best: Option<(Vec<u8>, LossyReport)> = None;
        let mut best_prdn = f64::INFINITY;
        let start = first_k.unwrap_or(max_k);
        for k in start..=(start + EXTRA_K).min(max_k) {
            let budget = (allowed - tail(k)).max(0.0);
            for share in QUANT_SHARES {
                self.parts.channels = channels;
                self.parts.samples = samples;
                self.parts.means.clone_from(&means);
                self.parts.steps.clear();
                self.parts.loadings.clear();
                self.parts.vectors.channels.resize_with(k, ChannelData::default);
                for (j, &i) in order[..k].iter().enumerate() {
                    // Uniform rounding adds about s²·N·step²/12 of error energy per vector.
                    let s = values[i];
                    let step = if s > 0.0 {
                        (12.0 * share * budget / (k as f64 * samples as f64)).sqrt() / s
                    } else {
                        1.0
                    };
                    let step = step.clamp(MIN_STEP, 1.0) as f32;
                    self.parts.steps.push(step);
                    let data = &mut self.parts.vectors.channels[j];
                    data.clear();
                    data.samples
                        .extend((0..samples).map(|t| (v_t[(i, t)] / f64::from(step)).round() as i32));
                }
                for c in 0..channels {
                    for &i in &order[..k] {
                        self.parts.loadings.push((u[(c, i)] * values[i]) as f32);
                    }
                }
                self.parts.reconstruct(&mut self.decoded);
                let (prd_value, prdn) = prd(block, self.decoded.view());
                best_prdn = best_prdn.min(prdn);
                if prdn <= bound {
                    self.trial.clear();
                    write_block(&self.parts, &mut self.lossless, &mut self.trial)?;
                    let report = LossyReport {
                        components: k,
                        prd: prd_value,
                        prdn,
                        bytes: self.trial.len(),
                    };
                    if best
                        .as_ref()
                        .is_none_or(|(bytes, _)| self.trial.len() < bytes.len())
                    {
                        best = Some((self.trial.clone(), report));
                    }
                    break;
                }
            }
        }
        match best {
            Some((bytes, report)) => {
                out.extend_from_slice(&bytes);
                Ok(report)
            }
            None => Err(LossyError::PrdBound { best_prdn, bound }),
        }
    }
}

/// Singular values, largest first, of the block with each channel's mean
/// removed: what the encoder decomposes.
pub fn singular_values(block: ArrayView2<f32>) -> Result<Vec<f64>, LossyError> {
    check_block(block)?;
    let svd = centred(block, &channel_means(block))
        .try_svd(false, false, f64::EPSILON, 10_000)
        .ok_or(LossyError::SvdFailed)?;
    let mut values: Vec<f64> = svd.singular_values.iter().copied().collect();
    values.sort_by(|a, b| b.total_cmp(a));
    Ok(values)
}

/// Shape in range and every sample finite.
fn check_block(block: ArrayView2<f32>) -> Result<(), LossyError> {
    let (channels, samples) = block.dim();
    check_shape(channels, samples)?;
    for (channel, row) in block.rows().into_iter().enumerate() {
        if let Some(index) = row.iter().position(|x| !x.is_finite()) {
            return Err(if row[index].is_nan() {
                LossyError::Gap { channel, index }
            } else {
                LossyError::Infinite { channel, index }
            });
        }
    }
    Ok(())
}

/// Each channel's mean, computed in f64 and stored as f32.
fn channel_means(block: ArrayView2<f32>) -> Vec<f32> {
    let samples = block.ncols().max(1) as f64;
    block
        .rows()
        .into_iter()
        .map(|row| (row.iter().map(|&x| f64::from(x)).sum::<f64>() / samples) as f32)
        .collect()
}

/// The block minus the stored (f32) means, in f64.
fn centred(block: ArrayView2<f32>, means: &[f32]) -> DMatrix<f64> {
    DMatrix::<f64>::from_fn(block.nrows(), block.ncols(), |c, t| {
        f64::from(block[[c, t]]) - f64::from(means[c])
    })
}

fn check_shape(channels: usize, samples: usize) -> Result<(), LossyError> {
    let ok = (1..=usize::from(u16::MAX)).contains(&channels)
        && samples >= 1
        && channels
            .checked_mul(samples)
            .is_some_and(|n| n <= MAX_BLOCK_SAMPLES);
    if ok {
        Ok(())
    } else {
        Err(LossyError::Shape)
    }
}

/// The byte format (`docs/codec.md`): header, means, steps, loadings, the
/// embedded lossless block of right vectors, CRC-32C.
fn write_block(parts: &Parts, lossless: &mut BlockEncoder, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(&(parts.channels as u16).to_le_bytes());
    out.extend_from_slice(&(parts.samples as u32).to_le_bytes());
    out.extend_from_slice(&(parts.components() as u16).to_le_bytes());
    out.extend_from_slice(&[0; 2]);
    out.extend_from_slice(&[0; 4]); // payload length, below
    for value in parts.means.iter().chain(&parts.steps).chain(&parts.loadings) {
        out.extend_from_slice(&value.to_le_bytes());
    }
    if let Err(e) = lossless.encode(&parts.vectors, out) {
        out.truncate(start);
        return Err(e);
    }
    let Ok(payload) = u32::try_from(out.len() - start - HEADER_LEN) else {
        out.truncate(start);
        return Err(CodecError::TooManySamples);
    };
    out[start + 16..start + HEADER_LEN].copy_from_slice(&payload.to_le_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Decodes lossy blocks; every failure is a [`LossyError`], never a panic.
#[derive(Default)]
pub struct LossyDecoder {
    lossless: BlockDecoder,
    parts: Parts,
}

impl LossyDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The block's reconstruction, channels × samples.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Array2<f32>, LossyError> {
        let mut out = Array2::zeros((0, 0));
        self.decode_into(bytes, &mut out)?;
        Ok(out)
    }

    pub fn decode_into(&mut self, bytes: &[u8], out: &mut Array2<f32>) -> Result<(), LossyError> {
        if bytes.len() < HEADER_LEN + CRC_LEN {
            return Err(CodecError::Truncated.into());
        }
        if bytes[..4] != MAGIC {
            return Err(CodecError::BadMagic.into());
        }
        if bytes[4] != VERSION {
            return Err(CodecError::UnsupportedVersion(bytes[4]).into());
        }
        let u16_at = |i: usize| usize::from(u16::from_le_bytes([bytes[i], bytes[i + 1]]));
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
        if bytes[5] != 0 || u16_at(14) != 0 {
            return Err(CodecError::Corrupt("reserved header bits set").into());
        }
        let payload = u32_at(16);
        if bytes.len() != HEADER_LEN + payload + CRC_LEN {
            return Err(CodecError::Truncated.into());
        }
        let body_end = HEADER_LEN + payload;
        if crc32c::crc32c(&bytes[..body_end]) != u32_at(body_end) as u32 {
            return Err(CodecError::ChecksumMismatch.into());
        }
        let (channels, samples, k) = (u16_at(6), u32_at(8), u16_at(12));
        check_shape(channels, samples).map_err(|_| CodecError::Corrupt("block shape out of range"))?;
        if k > channels.min(samples) {
            return Err(CodecError::Corrupt("more components than channels or samples").into());
        }
        let floats = channels + k + channels * k;
        let vectors_at = HEADER_LEN + 4 * floats;
        if vectors_at > body_end {
            return Err(CodecError::Truncated.into());
        }
        let mut values = bytes[HEADER_LEN..vectors_at]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if values.clone().any(|v| !v.is_finite()) {
            return Err(CodecError::Corrupt("non-finite parameter").into());
        }
        let parts = &mut self.parts;
        parts.channels = channels;
        parts.samples = samples;
        parts.means.clear();
        parts.means.extend(values.by_ref().take(channels));
        parts.steps.clear();
        parts.steps.extend(values.by_ref().take(k));
        parts.loadings.clear();
        parts.loadings.extend(values);
        self.lossless
            .decode_into(&bytes[vectors_at..body_end], &mut parts.vectors)?;
        let vectors = &parts.vectors.channels;
        if vectors.len() != k
            || vectors
                .iter()
                .any(|v| v.samples.len() != samples || !v.gaps.is_empty())
        {
            return Err(CodecError::Corrupt("right vectors do not match the header").into());
        }
        parts.reconstruct(out);
        Ok(())
    }
}
