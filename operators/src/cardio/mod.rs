//! Cardiac waveforms: ECG R peaks and HRV, arterial-pressure and PPG pulses,
//! SpO2 by ratio of ratios.
//!
//! * [`QrsDetector`]: streaming, causal Pan–Tompkins-style R-peak detector
//!   with a bounded look-back.
//! * [`Hrv`]: time- and frequency-domain HRV of a window of beats.
//! * [`EcgBeats`]: the `ecg_beats` operator (beat and HRV records).
//! * [`PulseDetector`], [`Pulses`]: ABP/PPG pulse onsets (slope sum
//!   function) and the `pulses` operator (systolic, diastolic, mean, rate).
//!
//! * [`Spo2`]: the `spo2` operator (ratio of ratios of red and IR PPG).
//!
//! Record schemas, delays and measured accuracy: `docs/features.md`.

pub mod hrv;
pub mod pulse;
pub mod qrs;
pub mod spo2;

mod ecg;
mod iir;
mod pulses;
mod streams;

pub use ecg::{EcgBeats, EcgBeatsConfig};
pub use hrv::{Hrv, HrvValues};
pub use pulse::{Pulse, PulseDetector};
pub use pulses::Pulses;
pub use qrs::{Beat, QrsDetector};
pub use spo2::{Spo2, Spo2Config};
