//! Audio features per channel per window (`audio_features`), by default on
//! 25 ms windows every 10 ms. With x the window (n samples, f32 audio,
//! full scale 1.0):
//!
//! * `rms` = sqrt(mean(x²)); `dbfs` = 20·log10(max(rms, 1e-10)) (so a
//!   full-scale square wave is 0 dBFS and a full-scale sine −3.01 dBFS);
//! * spectrum: x times a periodic Hann window of n samples, zero-padded to
//!   `n_fft` (default the next power of two ≥ n), real FFT, power
//!   P_k = |X_k|², magnitude |X_k|, f_k = k·rate/n_fft, k = 0..n_fft/2;
//! * `mel00`..: log10(max(Σ_k W_bk P_k, 1e-10)) for `mel_bands` HTK mel
//!   triangles (mel(f) = 2595·log10(1 + f/700)) with edges equally spaced
//!   in mel from `fmin_hz` to `fmax_hz` (default Nyquist), unnormalised
//!   (peak weight 1), weights from the bin frequencies as in
//!   `librosa.filters.mel(htk=True, norm=None)`;
//! * `centroid_hz` = Σ f_k |X_k| / Σ |X_k| (magnitude-weighted, as
//!   librosa's `spectral_centroid`); NaN for a silent window.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::windowed::{WindowConfig, WindowKernel, Windowed};
use crate::{ChannelSpec, Item, Modality, Operator, Output, Rejected};

#[derive(Clone, Debug, PartialEq)]
pub struct AudioConfig {
    pub mel_bands: usize,
    pub fmin_hz: f64,
    /// Default: Nyquist.
    pub fmax_hz: Option<f64>,
    /// Default: next power of two ≥ the window.
    pub n_fft: Option<usize>,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            mel_bands: 40,
            fmin_hz: 0.0,
            fmax_hz: None,
            n_fft: None,
        }
    }
}

pub fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

pub fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// Triangular HTK mel weights, `bands` rows of `n_fft / 2 + 1` bins.
pub fn mel_filterbank(bands: usize, n_fft: usize, rate: f64, fmin: f64, fmax: f64) -> Vec<Vec<f64>> {
    let (lo, hi) = (hz_to_mel(fmin), hz_to_mel(fmax));
    let edges: Vec<f64> = (0..bands + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (bands + 1) as f64))
        .collect();
    let bins = n_fft / 2 + 1;
    (0..bands)
        .map(|b| {
            let (left, centre, right) = (edges[b], edges[b + 1], edges[b + 2]);
            (0..bins)
                .map(|k| {
                    let f = k as f64 * rate / n_fft as f64;
                    let up = (f - left) / (centre - left);
                    let down = (right - f) / (right - centre);
                    up.min(down).max(0.0)
                })
                .collect()
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct AudioKernel {
    config: AudioConfig,
}

impl AudioKernel {
    pub fn new(config: AudioConfig) -> Self {
        Self { config }
    }
}

/// One channel's FFT plan, window, filterbank and scratch.
pub struct AudioChannel {
    fft: Arc<dyn RealToComplex<f64>>,
    hann: Vec<f64>,
    /// Per band: first bin and the weights from there (zeros trimmed).
    mel: Vec<(usize, Vec<f64>)>,
    input: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    power: Vec<f64>,
}

impl WindowKernel for AudioKernel {
    type Channel = AudioChannel;

    fn kind(&self) -> &'static str {
        "audio_features"
    }

    fn names(&self) -> Vec<String> {
        let mut names = vec!["rms".to_string(), "dbfs".to_string()];
        names.extend((0..self.config.mel_bands).map(|b| format!("mel{b:02}")));
        names.push("centroid_hz".into());
        names
    }

    fn channel(
        &self,
        spec: &ChannelSpec,
        _modality: Modality,
        window: usize,
    ) -> Result<AudioChannel, String> {
        let n_fft = self.config.n_fft.unwrap_or(window.next_power_of_two());
        if n_fft < window {
            return Err("audio_features.n_fft is shorter than the window".into());
        }
        let rate = spec.sample_rate;
        let fmax = self.config.fmax_hz.unwrap_or(rate / 2.0);
        if !(self.config.fmin_hz >= 0.0 && self.config.fmin_hz < fmax && fmax <= rate / 2.0) {
            return Err("audio_features mel range is not within [0, Nyquist] for a channel's rate".into());
        }
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        let hann = (0..window)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / window as f64).cos())
            .collect();
        let mel = mel_filterbank(self.config.mel_bands, n_fft, rate, self.config.fmin_hz, fmax)
            .into_iter()
            .map(|row| {
                let first = row.iter().position(|&w| w > 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w > 0.0).map_or(first, |l| l + 1);
                (first, row[first..last].to_vec())
            })
            .collect();
        Ok(AudioChannel {
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            power: vec![0.0; n_fft / 2 + 1],
            fft,
            hann,
            mel,
        })
    }

    fn compute(&mut self, ch: &mut AudioChannel, x: &[f64], _first: u64, rate: f64, out: &mut Vec<f64>) {
        let n = x.len() as f64;
        let rms = (x.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
        out.push(rms);
        out.push(20.0 * rms.max(1e-10).log10());
        ch.input.iter_mut().for_each(|v| *v = 0.0);
        for ((dst, &v), &w) in ch.input.iter_mut().zip(x).zip(&ch.hann) {
            *dst = v * w;
        }
        let ok = ch
            .fft
            .process_with_scratch(&mut ch.input, &mut ch.spectrum, &mut ch.scratch)
            .is_ok();
        let n_fft = ch.input.len() as f64;
        let (mut weighted, mut magnitude) = (0.0, 0.0);
        for (k, (p, c)) in ch.power.iter_mut().zip(&ch.spectrum).enumerate() {
            *p = if ok { c.norm_sqr() } else { f64::NAN };
            let m = p.sqrt();
            weighted += k as f64 * rate / n_fft * m;
            magnitude += m;
        }
        for (first, weights) in &ch.mel {
            let energy: f64 = weights.iter().zip(&ch.power[*first..]).map(|(w, p)| w * p).sum();
            out.push(energy.max(1e-10).log10());
        }
        out.push(if magnitude > 0.0 {
            weighted / magnitude
        } else {
            f64::NAN
        });
    }
}

/// The `audio_features` operator.
#[derive(Debug)]
pub struct AudioFeatures(Windowed<AudioKernel>);

impl AudioFeatures {
    /// 25 ms windows every 10 ms.
    pub fn default_windows() -> WindowConfig {
        WindowConfig::new(0.025, 0.010)
    }

    pub fn new(windows: WindowConfig, config: AudioConfig) -> Self {
        Self(Windowed::new(
            windows,
            Ok(AudioKernel::new(config)),
            "audio_features",
        ))
    }
}

impl Operator for AudioFeatures {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        self.0.process(item, out)
    }
}
