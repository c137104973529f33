//! Causal IIR and FIR filters and rational resampling. IIR: Butterworth low-, high-, band-pass and band-stop of
//! any order, and mains notches, as cascades of second-order sections.
//!
//! * [`design`]: coefficients in f64, equal to SciPy's to rounding.
//! * [`sos`]: the runtime cascade (f64 state, AVX2 across channels).
//! * [`fir`]: `firwin`-equal FIR design, direct and overlap-save kernels;
//!   [`FirFilter`] is its operator.
//! * [`resample`]: streaming polyphase resampling as `resample_poly`.
//! * [`IirFilter`]: the IIR operator; see `docs/filters.md` for parameters, gap
//!   behaviour and measured speed.

pub mod design;
pub mod fir;
pub mod resample;
pub mod sos;

mod fir_operator;
mod operator;

pub use fir_operator::{FirFilter, FirMethod, FirReport, FFT_CROSSOVER_TAPS};
pub use operator::{ChannelSelection, IirDesign, IirFilter};
pub use resample::{Resample, ResampleFactors};

/// Seeded uniform noise in [-0.5, 0.5) for the filter tests.
#[cfg(test)]
mod test_noise {
    pub fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }
}
