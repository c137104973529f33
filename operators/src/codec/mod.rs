//! Lossless codec for blocks of integer waveform samples (`docs/codec.md`).
//!
//! A block holds, per channel, the integer samples of a stretch of seconds at
//! the recording's resolution plus the gap runs (missing samples). Each
//! channel is predicted (FLAC's fixed polynomials or quantised LPC, chosen by
//! estimated size; a channel with few distinct values is predicted on their
//! ranks in a value table), its residuals Rice-coded with a parameter that
//! adapts at every sample, and the block sealed with a CRC-32C. Decoding
//! checks everything and never panics.
//!
//! [`SampleGrid`] maps f32 physical values (what readers and frames carry)
//! to those integers and back, bit-exactly, and refuses values off the grid.
//!
//! [`LossyEncoder`] is the lossy mode: PCA across channels, the right
//! singular vectors coded with this codec, refused above a PRD bound.
//!
//! Pure and synchronous; the encoder and decoder keep their buffers, so a
//! steady stream of blocks does not allocate.

mod bits;
mod block;
mod grid;
mod lossy;
#[cfg(test)]
mod lossy_tests;
mod predict;
mod rice;
#[cfg(test)]
mod tests;

pub use block::{BlockDecoder, BlockEncoder, CodecConfig};
pub use grid::SampleGrid;
pub use lossy::{prd, singular_values, LossyConfig, LossyDecoder, LossyEncoder, LossyError, LossyReport};

/// Most samples (all channels, gaps included) one block may hold; bounds
/// what a decoder allocates for a hostile block.
pub const MAX_BLOCK_SAMPLES: usize = 1 << 24;
/// Block lengths the codec is meant for, in seconds.
pub const BLOCK_SECONDS: std::ops::RangeInclusive<u32> = 1..=10;

/// A run of missing samples: `len` samples from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GapRun {
    pub start: u32,
    pub len: u32,
}

impl GapRun {
    pub fn end(self) -> u64 {
        u64::from(self.start) + u64::from(self.len)
    }
}

/// One channel of a block: integer samples, with 0 under every gap run.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChannelData {
    pub samples: Vec<i32>,
    /// Sorted, non-empty, non-overlapping runs inside `samples`.
    pub gaps: Vec<GapRun>,
}

impl ChannelData {
    pub fn clear(&mut self) {
        self.samples.clear();
        self.gaps.clear();
    }

    /// Appends a missing sample, extending the last gap run when adjacent.
    pub fn push_gap(&mut self) {
        let index = self.samples.len() as u32;
        match self.gaps.last_mut() {
            Some(run) if run.end() == u64::from(index) => run.len += 1,
            _ => self.gaps.push(GapRun { start: index, len: 1 }),
        }
        self.samples.push(0);
    }

    /// Whether sample `index` is missing.
    pub fn is_gap(&self, index: usize) -> bool {
        let index = index as u64;
        self.gaps
            .iter()
            .any(|g| u64::from(g.start) <= index && index < g.end())
    }
}

/// A block: one [`ChannelData`] per channel; channels may hold different
/// sample counts (multi-rate records).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChannelBlock {
    pub channels: Vec<ChannelData>,
}

/// Samples in `seconds` of a channel at `rate_hz`, for `seconds` in
/// [`BLOCK_SECONDS`] (rounded to the nearest sample).
pub fn block_len(rate_hz: f64, seconds: u32) -> Result<usize, CodecError> {
    let len = (rate_hz * f64::from(seconds)).round();
    let samples_ok = (1.0..=MAX_BLOCK_SAMPLES as f64).contains(&len);
    if !(BLOCK_SECONDS.contains(&seconds) && samples_ok) {
        return Err(CodecError::BlockLength);
    }
    Ok(len as usize)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("codec block is truncated")]
    Truncated,
    #[error("not a codec block (bad magic)")]
    BadMagic,
    #[error("unsupported codec block version {0}")]
    UnsupportedVersion(u8),
    #[error("codec block checksum mismatch: the block is corrupted")]
    ChecksumMismatch,
    #[error("corrupt codec block: {0}")]
    Corrupt(&'static str),
    #[error("a block holds at most 65535 channels, got {0}")]
    TooManyChannels(usize),
    #[error("a block holds at most {MAX_BLOCK_SAMPLES} samples")]
    TooManySamples,
    #[error("channel {channel}: gap runs must be non-empty, sorted, non-overlapping and inside the block")]
    InvalidGaps { channel: usize },
    #[error("channel {channel}: sample {index} lies in a gap run but is not 0")]
    ValueInGap { channel: usize, index: usize },
    #[error("sample {index} is not on the declared grid, so it cannot be coded losslessly")]
    OffGrid { index: usize },
    #[error("invalid sample grid: {0}")]
    InvalidGrid(&'static str),
    #[error("a block lasts 1–10 s and holds 1 to {MAX_BLOCK_SAMPLES} samples per channel")]
    BlockLength,
}
