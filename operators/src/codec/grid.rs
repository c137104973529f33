//! Exact mapping between f32 physical values and integer samples.

use super::{ChannelData, CodecError};

/// How a recording turns integer (digital) samples into f32 physical values.
/// Each variant is the very formula a reader uses, so quantising a value the
/// reader produced and mapping it back gives the same f32 bits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SampleGrid {
    /// `(digital × scale + offset)` in f64, rounded to f32: EDF and BDF, and
    /// any f32 declared to lie on a grid of step `scale` (offset 0).
    Affine { scale: f64, offset: f64 },
    /// `((digital − baseline) / gain)` in f64, rounded to f32: WFDB.
    Wfdb { gain: f64, baseline: i64 },
}

impl SampleGrid {
    /// A checked affine grid: `scale` finite and non-zero, `offset` finite.
    pub fn affine(scale: f64, offset: f64) -> Result<Self, CodecError> {
        if !(scale.is_finite() && scale != 0.0 && offset.is_finite()) {
            return Err(CodecError::InvalidGrid(
                "scale must be finite and non-zero, offset finite",
            ));
        }
        Ok(SampleGrid::Affine { scale, offset })
    }

    /// A checked WFDB grid: `gain` finite and non-zero.
    pub fn wfdb(gain: f64, baseline: i64) -> Result<Self, CodecError> {
        if !(gain.is_finite() && gain != 0.0) {
            return Err(CodecError::InvalidGrid("gain must be finite and non-zero"));
        }
        Ok(SampleGrid::Wfdb { gain, baseline })
    }

    /// The physical value of a digital sample.
    #[inline]
    pub fn to_physical(self, digital: i32) -> f32 {
        match self {
            SampleGrid::Affine { scale, offset } => (f64::from(digital) * scale + offset) as f32,
            SampleGrid::Wfdb { gain, baseline } => ((i64::from(digital) - baseline) as f64 / gain) as f32,
        }
    }

    /// The digital sample whose physical value has exactly the bits of
    /// `physical`, if any. NaN has none.
    pub fn to_digital(self, physical: f32) -> Option<i32> {
        let x = f64::from(physical);
        let estimate = match self {
            SampleGrid::Affine { scale, offset } => (x - offset) / scale,
            SampleGrid::Wfdb { gain, baseline } => x * gain + baseline as f64,
        }
        .round();
        if !(estimate.is_finite() && estimate.abs() <= f64::from(i32::MAX)) {
            return None;
        }
        // f32 rounding may land the estimate one step off; look either side.
        let centre = estimate as i64;
        [centre, centre - 1, centre + 1]
            .into_iter()
            .filter_map(|d| i32::try_from(d).ok())
            .find(|&d| self.to_physical(d).to_bits() == physical.to_bits())
    }

    /// Replaces `out` with the digital samples of `physical`: NaN (any NaN)
    /// becomes a gap; a value off the grid is refused with its index.
    pub fn quantise(self, physical: &[f32], out: &mut ChannelData) -> Result<(), CodecError> {
        out.clear();
        for (index, &x) in physical.iter().enumerate() {
            if x.is_nan() {
                out.push_gap();
            } else {
                let digital = self.to_digital(x).ok_or(CodecError::OffGrid { index })?;
                out.samples.push(digital);
            }
        }
        Ok(())
    }

    /// Appends the physical values of `data` to `out`, NaN in the gaps.
    pub fn dequantise(self, data: &ChannelData, out: &mut Vec<f32>) {
        let start = out.len();
        out.extend(data.samples.iter().map(|&d| self.to_physical(d)));
        for gap in &data.gaps {
            let run = start + gap.start as usize..start + gap.end() as usize;
            if let Some(slots) = out.get_mut(run) {
                slots.fill(f32::NAN);
            }
        }
    }
}
