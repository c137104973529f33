//! Time-domain EEG features per channel per window (`eeg_time_features`).
//! With x the window (n samples, f64), m its mean, dx = diff(x),
//! ddx = diff(dx), var the population variance (ddof 0):
//!
//! * `line_length` = Σ |dx| (a sum over the window, in the channel's unit);
//! * `rms` = sqrt(mean(x²)) (raw, not mean-removed);
//! * `activity` = var(x); `mobility` = sqrt(var(dx) / var(x));
//!   `complexity` = sqrt(var(ddx) / var(dx)) / mobility (Hjorth 1970;
//!   NaN when a variance is 0);
//! * `zero_crossings`: count of i with (x_i − m < 0) ≠ (x_{i+1} − m < 0),
//!   sign changes of the mean-removed signal (a count, not a rate);
//! * `bsr` (burst-suppression ratio): fraction of the window's samples in
//!   suppressions, a suppression being a maximal run of samples with
//!   |x| < `suppression_threshold` (5 µV by default, in the channel's
//!   unit, on the raw signal: band-pass it upstream) lasting at least
//!   `suppression_min_s` (0.5 s; in samples round(0.5 · rate)). A run cut
//!   by the window's edge counts by its part inside the window.

use super::windowed::{WindowConfig, WindowKernel, Windowed};
use crate::{ChannelSpec, Item, Modality, Operator, Output, Rejected};

#[derive(Clone, Debug, PartialEq)]
pub struct TimeFeaturesConfig {
    pub suppression_threshold: f64,
    pub suppression_min_s: f64,
}

impl Default for TimeFeaturesConfig {
    fn default() -> Self {
        Self {
            suppression_threshold: 5.0,
            suppression_min_s: 0.5,
        }
    }
}

pub const TIME_NAMES: [&str; 7] = [
    "line_length",
    "rms",
    "activity",
    "mobility",
    "complexity",
    "zero_crossings",
    "bsr",
];

#[derive(Debug, Clone)]
pub struct TimeKernel {
    config: TimeFeaturesConfig,
}

impl TimeKernel {
    pub fn new(config: TimeFeaturesConfig) -> Self {
        Self { config }
    }
}

fn variance(mut values: impl Iterator<Item = f64> + Clone) -> f64 {
    let (sum, n) = values.clone().fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    let mean = sum / n as f64;
    let mut total = 0.0;
    for v in values.by_ref() {
        total += (v - mean) * (v - mean);
    }
    total / n as f64
}

impl WindowKernel for TimeKernel {
    /// Minimum suppression run in samples.
    type Channel = usize;

    fn kind(&self) -> &'static str {
        "eeg_time_features"
    }

    fn names(&self) -> Vec<String> {
        TIME_NAMES.iter().map(|n| n.to_string()).collect()
    }

    fn channel(&self, spec: &ChannelSpec, _modality: Modality, _window: usize) -> Result<usize, String> {
        Ok(((self.config.suppression_min_s * spec.sample_rate).round() as usize).max(1))
    }

    fn compute(&mut self, min_run: &mut usize, x: &[f64], _first: u64, _rate: f64, out: &mut Vec<f64>) {
        let n = x.len() as f64;
        let dx = x.windows(2).map(|w| w[1] - w[0]);
        let ddx = x.windows(3).map(|w| (w[2] - w[1]) - (w[1] - w[0]));
        let line_length: f64 = dx.clone().map(f64::abs).sum();
        let rms = (x.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
        let activity = variance(x.iter().copied());
        let var_dx = variance(dx);
        let var_ddx = variance(ddx);
        let mobility = (var_dx / activity).sqrt();
        let complexity = (var_ddx / var_dx).sqrt() / mobility;
        let mean = x.iter().sum::<f64>() / n;
        let crossings = x
            .windows(2)
            .filter(|w| (w[0] - mean < 0.0) != (w[1] - mean < 0.0))
            .count();
        let threshold = self.config.suppression_threshold;
        let mut suppressed = 0;
        let mut run = 0;
        for v in x.iter().map(|v| v.abs() < threshold).chain([false]) {
            if v {
                run += 1;
            } else {
                if run >= *min_run {
                    suppressed += run;
                }
                run = 0;
            }
        }
        out.extend([
            line_length,
            rms,
            activity,
            mobility,
            complexity,
            crossings as f64,
            suppressed as f64 / n,
        ]);
    }
}

/// The `eeg_time_features` operator.
#[derive(Debug)]
pub struct TimeFeatures(Windowed<TimeKernel>);

impl TimeFeatures {
    pub fn new(windows: WindowConfig, config: TimeFeaturesConfig) -> Self {
        Self(Windowed::new(
            windows,
            Ok(TimeKernel::new(config)),
            "eeg_time_features",
        ))
    }
}

impl Operator for TimeFeatures {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        self.0.process(item, out)
    }
}
