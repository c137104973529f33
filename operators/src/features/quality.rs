//! Signal quality per channel per window (`signal_quality`), and the
//! quality gate other windowed operators use to suppress features of bad
//! windows. Definitions (see `docs/features.md`):
//!
//! * `flat_fraction`: samples in flat runs / window samples. A flat run is
//!   a maximal run of samples each within `flat_tolerance` of the one
//!   before, at least `flat_min_s` long (in samples: round(flat_min_s ·
//!   rate), at least 2). NaN ends a run.
//! * `clip_fraction`: with `clip_range` [lo, hi]: samples with x ≤ lo + tol
//!   or x ≥ hi − tol; without (frames carry no physical range): samples
//!   that repeat the window's minimum or maximum (within tol), i.e.
//!   (count at min − 1) + (count at max − 1), so a clean window scores 0.
//! * `nan_fraction`: NaN samples / window samples (readers and sources mark
//!   missing samples NaN; a discontinuity restarts the windows instead).
//! * `line_noise_ratio`: Welch PSD (periodic Hann, segment
//!   min(segment_s · rate, window), 50 % overlap, constant detrend) power
//!   in bins with |f − mains_hz| ≤ 1 Hz over power in bins with
//!   1 ≤ f < 100 Hz; NaN when the window holds a NaN or mains_hz + 1 Hz is
//!   not below Nyquist.
//! * `out_of_range_fraction`: samples outside the physiological range
//!   (YAML `range`, else the modality's default converted to the channel's
//!   unit; none known: 0).
//! * `reasons`: bit 1 flat, 2 clipping, 4 NaN, 8 line noise, 16 out of
//!   range, each set when its value exceeds its `max_*` threshold; `ok` is
//!   1 when `reasons` is 0, else 0.

use super::welch::Welch;
use super::windowed::{WindowConfig, WindowKernel, Windowed};
use crate::{ChannelSpec, Item, Modality, Operator, Output, Rejected};

/// Quality definitions and thresholds; amplitudes in the channel's unit.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityConfig {
    pub flat_min_s: f64,
    pub flat_tolerance: f64,
    pub clip_range: Option<(f64, f64)>,
    pub clip_tolerance: f64,
    /// Physiological range; `None`: the modality's default.
    pub range: Option<(f64, f64)>,
    pub mains_hz: f64,
    pub segment_s: f64,
    pub max_flat_fraction: f64,
    pub max_clip_fraction: f64,
    pub max_nan_fraction: f64,
    pub max_line_noise_ratio: f64,
    pub max_out_of_range_fraction: f64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            flat_min_s: 0.1,
            flat_tolerance: 0.0,
            clip_range: None,
            clip_tolerance: 0.0,
            range: None,
            mains_hz: 50.0,
            segment_s: 1.0,
            max_flat_fraction: 0.1,
            max_clip_fraction: 0.05,
            max_nan_fraction: 0.1,
            max_line_noise_ratio: 0.5,
            max_out_of_range_fraction: 0.05,
        }
    }
}

pub const FLAT: u32 = 1;
pub const CLIPPING: u32 = 2;
pub const NAN: u32 = 4;
pub const LINE_NOISE: u32 = 8;
pub const OUT_OF_RANGE: u32 = 16;

/// The value names, in order.
pub const QUALITY_NAMES: [&str; 7] = [
    "flat_fraction",
    "clip_fraction",
    "nan_fraction",
    "line_noise_ratio",
    "out_of_range_fraction",
    "ok",
    "reasons",
];

/// The default physiological range of a modality, in volts for EEG and ECG
/// (converted by the unit's prefix), mmHg for ABP, full scale for audio.
fn default_range(modality: Modality, unit: &str) -> Option<(f64, f64)> {
    let volts = |limit: f64| {
        let scale = match unit.trim() {
            "V" => 1.0,
            "mV" => 1e-3,
            "uV" | "µV" | "μV" => 1e-6,
            "nV" => 1e-9,
            _ => return None,
        };
        Some((-limit / scale, limit / scale))
    };
    match modality {
        Modality::Eeg => volts(500e-6),
        Modality::Ecg => volts(10e-3),
        Modality::Abp if unit.trim() == "mmHg" => Some((-20.0, 300.0)),
        Modality::Audio => Some((-1.0, 1.0)),
        _ => None,
    }
}

/// The quality computation as a [`WindowKernel`].
#[derive(Debug, Clone)]
pub struct QualityKernel {
    config: QualityConfig,
}

/// One channel's quality state.
pub struct QualityChannel {
    welch: Welch,
    flat_min: usize,
    range: Option<(f64, f64)>,
}

impl QualityKernel {
    pub fn new(config: QualityConfig) -> Self {
        Self { config }
    }

    /// Whether computed quality values flag the window.
    pub fn flagged(values: &[f64]) -> bool {
        values.get(6).is_none_or(|&r| r != 0.0)
    }
}

impl WindowKernel for QualityKernel {
    type Channel = QualityChannel;

    fn kind(&self) -> &'static str {
        "signal_quality"
    }

    fn names(&self) -> Vec<String> {
        QUALITY_NAMES.iter().map(|n| n.to_string()).collect()
    }

    fn channel(
        &self,
        spec: &ChannelSpec,
        modality: Modality,
        window: usize,
    ) -> Result<QualityChannel, String> {
        let segment = ((self.config.segment_s * spec.sample_rate).round() as usize).min(window);
        let welch = Welch::new(segment).map_err(|e| format!("signal_quality: {e}"))?;
        let flat_min = ((self.config.flat_min_s * spec.sample_rate).round() as usize).max(2);
        let range = self.config.range.or_else(|| default_range(modality, &spec.unit));
        Ok(QualityChannel {
            welch,
            flat_min,
            range,
        })
    }

    fn forget(&self, channel: &mut QualityChannel) {
        channel.welch.forget();
    }

    fn keeps_nan(&self) -> bool {
        true
    }

    fn compute(&mut self, ch: &mut QualityChannel, x: &[f64], first: u64, rate: f64, out: &mut Vec<f64>) {
        let c = &self.config;
        let n = x.len() as f64;
        let flat = flat_samples(x, c.flat_tolerance, ch.flat_min) as f64 / n;
        let clip = clipped_samples(x, c.clip_range, c.clip_tolerance) as f64 / n;
        let nans = x.iter().filter(|v| v.is_nan()).count();
        let nan = nans as f64 / n;
        let line = if nans > 0 {
            f64::NAN
        } else {
            line_noise_ratio(&mut ch.welch, x, rate, first, c.mains_hz)
        };
        let out_of_range = ch.range.map_or(0.0, |(lo, hi)| {
            x.iter().filter(|&&v| v < lo || v > hi).count() as f64 / n
        });
        let mut reasons = 0;
        for (value, limit, bit) in [
            (flat, c.max_flat_fraction, FLAT),
            (clip, c.max_clip_fraction, CLIPPING),
            (nan, c.max_nan_fraction, NAN),
            (line, c.max_line_noise_ratio, LINE_NOISE),
            (out_of_range, c.max_out_of_range_fraction, OUT_OF_RANGE),
        ] {
            if value > limit {
                reasons |= bit;
            }
        }
        out.extend([
            flat,
            clip,
            nan,
            line,
            out_of_range,
            if reasons == 0 { 1.0 } else { 0.0 },
            f64::from(reasons),
        ]);
    }
}

/// Samples in flat runs of at least `min` samples.
pub fn flat_samples(x: &[f64], tolerance: f64, min: usize) -> usize {
    let mut total = 0;
    let mut run = 1;
    for i in 1..=x.len() {
        let continues = i < x.len() && (x[i] - x[i - 1]).abs() <= tolerance;
        if continues {
            run += 1;
        } else {
            if run >= min {
                total += run;
            }
            run = 1;
        }
    }
    total
}

/// Clipped samples (see the module notes).
pub fn clipped_samples(x: &[f64], range: Option<(f64, f64)>, tolerance: f64) -> usize {
    match range {
        Some((lo, hi)) => x
            .iter()
            .filter(|&&v| v <= lo + tolerance || v >= hi - tolerance)
            .count(),
        None => {
            let finite = || x.iter().copied().filter(|v| v.is_finite());
            let (Some(lo), Some(hi)) = (finite().reduce(f64::min), finite().reduce(f64::max)) else {
                return 0;
            };
            if lo == hi {
                return 0;
            }
            let at_lo = finite().filter(|&v| v <= lo + tolerance).count();
            let at_hi = finite().filter(|&v| v >= hi - tolerance).count();
            at_lo.saturating_sub(1) + at_hi.saturating_sub(1)
        }
    }
}

/// Power within 1 Hz of `mains` over power in [1, 100) Hz.
fn line_noise_ratio(welch: &mut Welch, x: &[f64], rate: f64, first: u64, mains: f64) -> f64 {
    if mains + 1.0 >= rate / 2.0 {
        return f64::NAN;
    }
    let df = rate / welch.segment() as f64;
    let psd = welch.psd_at(x, rate, first);
    let (mut line, mut broad) = (0.0, 0.0);
    for (k, &p) in psd.iter().enumerate() {
        let f = k as f64 * df;
        if (f - mains).abs() <= 1.0 {
            line += p;
        }
        if (1.0..100.0).contains(&f) {
            broad += p;
        }
    }
    line / broad
}

/// The `signal_quality` operator: one record per channel per window with
/// the values of [`QUALITY_NAMES`] and `latency_s`.
#[derive(Debug)]
pub struct SignalQuality(Windowed<QualityKernel>);

impl SignalQuality {
    pub fn new(windows: WindowConfig, config: QualityConfig) -> Self {
        Self(Windowed::new(
            WindowConfig {
                quality_gate: None,
                ..windows
            },
            Ok(QualityKernel::new(config)),
            "signal_quality",
        ))
    }
}

impl Operator for SignalQuality {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        self.0.process(item, out)
    }
}
