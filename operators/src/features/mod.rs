//! Windowed features: per-channel sliding windows (length and hop) that
//! never cross a gap ([`windowed`]), and the features computed per window.
//!
//! * [`welch`]: Welch PSD equal to `scipy.signal.welch` defaults, band
//!   powers, spectral edge frequencies, peak frequency, spectral entropy.
//! * [`BandPowers`]: Welch features per window.
//! * [`TimeFeatures`]: line length, RMS, Hjorth parameters, zero crossings,
//!   burst-suppression ratio ([`time`]).
//! * [`SignalQuality`]: flat-line, clipping, NaN, line-noise and
//!   out-of-range fractions and a quality flag ([`quality`]); the same
//!   computation gates the other operators' records.
//! * [`AudioFeatures`]: RMS, dBFS, log-mel energies, spectral centroid
//!   ([`audio`]).
//!
//! See `docs/features.md` for the record schemas, definitions and speed.

pub mod audio;
mod lanes;
pub mod quality;
pub mod time;
pub mod welch;
pub mod windowed;

mod fft;
mod operator;

pub use audio::{AudioConfig, AudioFeatures};
pub use operator::{BandPowers, BandPowersConfig, SpectralKernel};
pub use quality::{QualityConfig, SignalQuality};
pub use time::{TimeFeatures, TimeFeaturesConfig};
pub use welch::{Band, SpectralFeatures, Welch, WelchError};
pub use windowed::{WindowConfig, WindowKernel, Windowed};

#[cfg(test)]
mod tests;
