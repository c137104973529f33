//! Heart-rate variability of a window of beat times.
//!
//! Time domain, on the RR intervals between consecutive beats of the window
//! (no ectopic-beat editing): mean heart rate `60 / mean(RR)`, SDNN (sample
//! standard deviation, ddof = 1), RMSSD, pNN50 (% of successive differences
//! larger than 50 ms).
//!
//! Frequency domain: the RR series (ms, each value placed at the time of the
//! beat that ends its interval) is linearly interpolated onto a 4 Hz grid
//! starting at the first such time (`numpy.interp`), and its PSD is
//! `scipy.signal.welch(rr, fs=4, nperseg=256)` (Hann, 50 % overlap,
//! constant detrend per segment). LF = Σ PSD·df over bins in
//! [0.04, 0.15) Hz, HF over [0.15, 0.40) Hz (ms²). LF, HF and LF/HF are
//! NaN when the grid holds fewer than 256 points (64 s of beats).

use crate::features::{welch::band_power, Welch};

/// RR resampling rate for the spectrum, Hz.
pub const RESAMPLE_HZ: f64 = 4.0;
/// Welch segment (nperseg) on the resampled series: 64 s.
pub const SEGMENT: usize = 256;
pub const LF_HZ: (f64, f64) = (0.04, 0.15);
pub const HF_HZ: (f64, f64) = (0.15, 0.40);

/// The values of one window; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HrvValues {
    pub beats: usize,
    pub mean_hr_bpm: f64,
    pub sdnn_ms: f64,
    pub rmssd_ms: f64,
    pub pnn50: f64,
    pub lf_ms2: f64,
    pub hf_ms2: f64,
    pub lf_hf: f64,
}

impl HrvValues {
    pub const NAMES: [&'static str; 8] = [
        "beats",
        "mean_hr_bpm",
        "sdnn_ms",
        "rmssd_ms",
        "pnn50",
        "lf_ms2",
        "hf_ms2",
        "lf_hf",
    ];

    pub fn as_array(&self) -> [f64; 8] {
        [
            self.beats as f64,
            self.mean_hr_bpm,
            self.sdnn_ms,
            self.rmssd_ms,
            self.pnn50,
            self.lf_ms2,
            self.hf_ms2,
            self.lf_hf,
        ]
    }
}

/// Reusable buffers and the Welch estimator.
#[derive(Debug)]
pub struct Hrv {
    welch: Welch,
    rr: Vec<f64>,
    grid: Vec<f64>,
}

impl Default for Hrv {
    fn default() -> Self {
        Self::new()
    }
}

impl Hrv {
    pub fn new() -> Self {
        Self {
            // SEGMENT ≥ 2, so this cannot fail.
            welch: Welch::new(SEGMENT).unwrap_or_else(|_| unreachable!("segment of 256 is valid")),
            rr: Vec::new(),
            grid: Vec::new(),
        }
    }

    /// HRV of beats at `times_s` (seconds, increasing).
    pub fn compute(&mut self, times_s: &[f64]) -> HrvValues {
        self.rr.clear();
        self.rr.extend(times_s.windows(2).map(|w| (w[1] - w[0]) * 1e3));
        let rr = &self.rr;
        let n = rr.len();
        let nan = f64::NAN;
        let mean = if n > 0 {
            rr.iter().sum::<f64>() / n as f64
        } else {
            nan
        };
        let sdnn = if n > 1 {
            (rr.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            nan
        };
        let (rmssd, pnn50) = if n > 1 {
            let diffs = rr.windows(2).map(|w| w[1] - w[0]);
            let sq = diffs.clone().map(|d| d * d).sum::<f64>() / (n - 1) as f64;
            let over = diffs.filter(|d| d.abs() > 50.0).count();
            (sq.sqrt(), 100.0 * over as f64 / (n - 1) as f64)
        } else {
            (nan, nan)
        };
        let (lf, hf) = self.spectrum(&times_s[times_s.len().min(1)..]);
        HrvValues {
            beats: times_s.len(),
            mean_hr_bpm: 60_000.0 / mean,
            sdnn_ms: sdnn,
            rmssd_ms: rmssd,
            pnn50,
            lf_ms2: lf,
            hf_ms2: hf,
            lf_hf: lf / hf,
        }
    }

    /// LF and HF power of the RR series placed at `at` (one time per RR).
    fn spectrum(&mut self, at: &[f64]) -> (f64, f64) {
        let (Some(&first), Some(&last)) = (at.first(), at.last()) else {
            return (f64::NAN, f64::NAN);
        };
        let points = ((last - first) * RESAMPLE_HZ + 1e-9).floor() as usize + 1;
        if points < SEGMENT {
            return (f64::NAN, f64::NAN);
        }
        self.grid.clear();
        let mut j = 0;
        for k in 0..points {
            let t = first + k as f64 / RESAMPLE_HZ;
            while j + 1 < at.len() && at[j + 1] < t {
                j += 1;
            }
            let value = if j + 1 >= at.len() || t <= at[j] {
                self.rr[j.min(self.rr.len() - 1)]
            } else {
                let f = (t - at[j]) / (at[j + 1] - at[j]);
                self.rr[j] + f * (self.rr[j + 1] - self.rr[j])
            };
            self.grid.push(value);
        }
        let psd = self.welch.psd(&self.grid, RESAMPLE_HZ);
        let df = RESAMPLE_HZ / SEGMENT as f64;
        (
            band_power(psd, df, LF_HZ.0, LF_HZ.1),
            band_power(psd, df, HF_HZ.0, HF_HZ.1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_domain_by_hand() {
        // RR: 800, 850, 780, 900 ms.
        let times = [0.0, 0.8, 1.65, 2.43, 3.33];
        let v = Hrv::new().compute(&times);
        assert_eq!(v.beats, 5);
        let rr = [800.0, 850.0, 780.0, 900.0];
        let mean: f64 = rr.iter().sum::<f64>() / 4.0;
        assert!((v.mean_hr_bpm - 60_000.0 / mean).abs() < 1e-9);
        let var = rr.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 3.0;
        assert!((v.sdnn_ms - var.sqrt()).abs() < 1e-9);
        // diffs 50, -70, 120: only |d| > 50 count.
        let rmssd = ((50f64.powi(2) + 70f64.powi(2) + 120f64.powi(2)) / 3.0).sqrt();
        assert!((v.rmssd_ms - rmssd).abs() < 1e-9);
        assert!((v.pnn50 - 200.0 / 3.0).abs() < 1e-9);
        assert!(v.lf_ms2.is_nan() && v.hf_ms2.is_nan());
    }

    #[test]
    fn respiratory_modulation_lands_in_hf() {
        // RR modulated at 0.25 Hz (HF) around 1 s for 5 minutes.
        let mut times = vec![0.0];
        while *times.last().unwrap_or(&0.0) < 300.0 {
            let t = *times.last().unwrap_or(&0.0);
            times.push(t + 1.0 + 0.05 * (2.0 * std::f64::consts::PI * 0.25 * t).sin());
        }
        let v = Hrv::new().compute(&times);
        assert!(v.hf_ms2 > 10.0 * v.lf_ms2, "{v:?}");
        assert!(v.lf_hf < 0.1);
    }
}
