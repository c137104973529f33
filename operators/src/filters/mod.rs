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
    use std::f64::consts::PI;

    /// |H| estimated from white noise, Welch-averaged H1 = ΣY·X̄ / Σ|X|² with
    /// Hann windows of 8192 samples, at chosen frequencies by direct DFT.
    pub fn measured_response(input: &[f32], output: &[f32], frequencies: &[f64], rate: f64) -> Vec<f64> {
        const SEGMENT: usize = 8192;
        let window: Vec<f64> = (0..SEGMENT)
            .map(|n| 0.5 - 0.5 * (2.0 * PI * n as f64 / SEGMENT as f64).cos())
            .collect();
        frequencies
            .iter()
            .map(|&f| {
                let twiddle: Vec<(f64, f64)> = (0..SEGMENT)
                    .map(|n| {
                        let phase = -2.0 * PI * f / rate * n as f64;
                        (phase.cos() * window[n], phase.sin() * window[n])
                    })
                    .collect();
                let (mut cross_re, mut cross_im, mut power) = (0.0, 0.0, 0.0);
                for start in (0..input.len() - SEGMENT).step_by(SEGMENT / 2) {
                    let dft = |x: &[f32]| {
                        twiddle
                            .iter()
                            .zip(&x[start..start + SEGMENT])
                            .fold((0.0, 0.0), |(re, im), (t, &v)| {
                                (re + t.0 * f64::from(v), im + t.1 * f64::from(v))
                            })
                    };
                    let (xr, xi) = dft(input);
                    let (yr, yi) = dft(output);
                    cross_re += yr * xr + yi * xi;
                    cross_im += yi * xr - yr * xi;
                    power += xr * xr + xi * xi;
                }
                cross_re.hypot(cross_im) / power
            })
            .collect()
    }

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
