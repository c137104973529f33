//! Windowed features: per-channel sliding windows (length and hop) that
//! never cross a gap, and Welch spectral EEG features on each window.
//!
//! * [`welch`]: Welch PSD equal to `scipy.signal.welch` defaults, band
//!   powers, spectral edge frequencies and peak frequency.
//! * [`BandPowers`]: the operator; see `docs/features.md` for the record
//!   schema, the integration rule and measured speed.

pub mod welch;

mod operator;

pub use operator::{BandPowers, BandPowersConfig};
pub use welch::{Band, SpectralFeatures, Welch, WelchError};
