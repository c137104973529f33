//! FIR filters: window-method design equal to `scipy.signal.firwin` (and
//! `kaiserord`, `kaiser_beta`, `minimum_phase(method='homomorphic')`), and
//! two causal streaming kernels:
//!
//! * [`DirectFir`]: direct convolution, f64 accumulation over a contiguous
//!   history + frame buffer (the dot product vectorises); no added latency;
//! * [`FftFir`]: overlap-save with `realfft` in blocks of `hop` new samples;
//!   it adds exactly `hop` samples of latency (an output sample is released
//!   when its block is complete), reported by [`FftFir::latency`].
//!
//! Both give each output sample from the same arithmetic whatever the
//! framing, so the joined output is bitwise independent of how the stream
//! was cut. See `docs/filters.md` for tolerances and the measured crossover.

use std::f64::consts::PI;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use super::design::Band;

/// Why an FIR design is impossible. Messages hold design parameters only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FirError {
    #[error("an FIR filter needs at least 1 tap")]
    NoTaps,
    #[error("{frequency} Hz is not strictly between 0 and the Nyquist frequency {nyquist} Hz")]
    OutsideNyquist { frequency: f64, nyquist: f64 },
    #[error("band edges must be increasing, got {low} Hz and {high} Hz")]
    EdgesNotIncreasing { low: f64, high: f64 },
    #[error(
        "a {kind} FIR filter passes the Nyquist frequency, so it needs an odd number of taps, not {taps}"
    )]
    EvenTapsPassNyquist { kind: &'static str, taps: usize },
    #[error("kaiser design needs attenuation_db > 0 and 0 < transition_hz < Nyquist")]
    BadKaiserSpec,
    #[error("the design asks for {taps} taps, more than the limit of {limit}")]
    TooManyTaps { taps: usize, limit: usize },
}

/// Most taps accepted (a 1 kHz signal at 0.1 Hz transition needs ~20 000).
pub const MAX_TAPS: usize = 1 << 17;

/// Window of the window method (`scipy.signal.get_window(..., fftbins=False)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FirWindow {
    Hamming,
    Hann,
    Blackman,
    /// Kaiser window with shape parameter beta.
    Kaiser(f64),
}

/// How long the filter is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FirLength {
    /// This many taps, with the given window.
    Taps(usize, FirWindow),
    /// `scipy.signal.kaiserord(attenuation_db, transition_hz / nyquist)`:
    /// taps and Kaiser beta from the stop-band attenuation and transition
    /// width; the count is raised to the next odd number when the band
    /// passes the Nyquist frequency (high-pass, band-stop).
    Kaiser { attenuation_db: f64, transition_hz: f64 },
}

/// What to design, once per sample rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FirDesign {
    pub band: Band,
    pub length: FirLength,
    /// Replace the linear-phase taps by `scipy.signal.minimum_phase(taps,
    /// method='homomorphic')`: about half the taps, a magnitude response
    /// that is the square root of the linear-phase one, and no constant
    /// delay.
    pub minimum_phase: bool,
}

/// Designed taps and the delay they impose.
#[derive(Clone, Debug, PartialEq)]
pub struct FirTaps {
    pub taps: Vec<f64>,
    /// Group delay in samples of a linear-phase design, `(taps - 1) / 2`;
    /// `None` for a minimum-phase design (its delay depends on frequency).
    pub delay_samples: Option<f64>,
}

impl FirDesign {
    pub fn taps(&self, sample_rate: f64) -> Result<FirTaps, FirError> {
        let nyquist = sample_rate / 2.0;
        let (edges, pass_zero, kind): (Vec<f64>, bool, &'static str) = match self.band {
            Band::Lowpass(f) => (vec![f], true, "lowpass"),
            Band::Highpass(f) => (vec![f], false, "highpass"),
            Band::Bandpass(l, h) => (vec![l, h], false, "bandpass"),
            Band::Bandstop(l, h) => (vec![l, h], true, "bandstop"),
        };
        for &frequency in &edges {
            if !(frequency > 0.0 && frequency < nyquist) {
                return Err(FirError::OutsideNyquist { frequency, nyquist });
            }
        }
        if let [low, high] = edges[..] {
            if low >= high {
                return Err(FirError::EdgesNotIncreasing { low, high });
            }
        }
        let pass_nyquist = (edges.len() % 2 == 1) != pass_zero;
        let (numtaps, window) = match self.length {
            FirLength::Taps(n, w) => (n, w),
            FirLength::Kaiser {
                attenuation_db,
                transition_hz,
            } => {
                if !(attenuation_db > 0.0 && transition_hz > 0.0 && transition_hz < nyquist) {
                    return Err(FirError::BadKaiserSpec);
                }
                let (n, beta) = kaiserord(attenuation_db, transition_hz / nyquist);
                let n = if pass_nyquist && n.is_multiple_of(2) {
                    n + 1
                } else {
                    n
                };
                (n, FirWindow::Kaiser(beta))
            }
        };
        if numtaps == 0 {
            return Err(FirError::NoTaps);
        }
        if numtaps > MAX_TAPS {
            return Err(FirError::TooManyTaps {
                taps: numtaps,
                limit: MAX_TAPS,
            });
        }
        if pass_nyquist && numtaps.is_multiple_of(2) {
            return Err(FirError::EvenTapsPassNyquist { kind, taps: numtaps });
        }
        let normalized: Vec<f64> = edges.iter().map(|f| f / nyquist).collect();
        let taps = firwin(numtaps, &normalized, pass_zero, window);
        Ok(if self.minimum_phase {
            FirTaps {
                taps: minimum_phase(&taps),
                delay_samples: None,
            }
        } else {
            FirTaps {
                delay_samples: Some((numtaps as f64 - 1.0) / 2.0),
                taps,
            }
        })
    }
}

/// `scipy.signal.firwin(numtaps, cutoff, window=window, pass_zero=pass_zero,
/// scale=True)` with `cutoff` as fractions of the Nyquist frequency,
/// strictly increasing in (0, 1). The caller checks that a filter passing
/// the Nyquist frequency has an odd tap count.
pub fn firwin(numtaps: usize, cutoff: &[f64], pass_zero: bool, window: FirWindow) -> Vec<f64> {
    let pass_nyquist = (cutoff.len() % 2 == 1) != pass_zero;
    let mut edges = Vec::with_capacity(cutoff.len() + 2);
    if pass_zero {
        edges.push(0.0);
    }
    edges.extend_from_slice(cutoff);
    if pass_nyquist {
        edges.push(1.0);
    }
    let alpha = 0.5 * (numtaps as f64 - 1.0);
    let m: Vec<f64> = (0..numtaps).map(|i| i as f64 - alpha).collect();
    let mut h = vec![0.0; numtaps];
    for band in edges.chunks_exact(2) {
        let (left, right) = (band[0], band[1]);
        for (hi, &mi) in h.iter_mut().zip(&m) {
            *hi += right * sinc(right * mi);
            *hi -= left * sinc(left * mi);
        }
    }
    let w = get_window(window, numtaps);
    for (hi, wi) in h.iter_mut().zip(&w) {
        *hi *= wi;
    }
    let (left, right) = (edges[0], edges[1]);
    let scale_frequency = if left == 0.0 {
        0.0
    } else if right == 1.0 {
        1.0
    } else {
        0.5 * (left + right)
    };
    let s: f64 = h
        .iter()
        .zip(&m)
        .map(|(hi, mi)| hi * (PI * mi * scale_frequency).cos())
        .sum();
    for hi in &mut h {
        *hi /= s;
    }
    h
}

/// numpy's normalised sinc.
fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let y = PI * x;
        y.sin() / y
    }
}

/// A symmetric window of `m` points, as `scipy.signal.get_window(window, m,
/// fftbins=False)`.
pub fn get_window(window: FirWindow, m: usize) -> Vec<f64> {
    if m == 1 {
        return vec![1.0];
    }
    // np.linspace(-pi, pi, m) for the cosine windows.
    let step = 2.0 * PI / (m as f64 - 1.0);
    let fac = |n: usize| if n == m - 1 { PI } else { -PI + n as f64 * step };
    let cosine = |a: &[f64]| -> Vec<f64> {
        (0..m)
            .map(|n| {
                a.iter()
                    .enumerate()
                    .map(|(k, ak)| ak * (k as f64 * fac(n)).cos())
                    .sum()
            })
            .collect()
    };
    match window {
        FirWindow::Hamming => cosine(&[0.54, 0.46]),
        FirWindow::Hann => cosine(&[0.5, 0.5]),
        FirWindow::Blackman => cosine(&[0.42, 0.50, 0.08]),
        FirWindow::Kaiser(beta) => {
            let alpha = (m as f64 - 1.0) / 2.0;
            let denominator = bessel_i0(beta);
            (0..m)
                .map(|n| {
                    let r = (n as f64 - alpha) / alpha;
                    bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / denominator
                })
                .collect()
        }
    }
}

/// Modified Bessel function of the first kind, order 0, by its power
/// series (all terms positive, so no cancellation: relative error ~1e-16
/// for the betas of FIR design).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut k = 1.0;
    while term > sum * 1e-18 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// `scipy.signal.kaiser_beta`.
pub fn kaiser_beta(attenuation_db: f64) -> f64 {
    let a = attenuation_db;
    if a > 50.0 {
        0.1102 * (a - 8.7)
    } else if a > 21.0 {
        0.5842 * (a - 21.0).powf(0.4) + 0.07886 * (a - 21.0)
    } else {
        0.0
    }
}

/// `scipy.signal.kaiserord(ripple, width)`: taps and beta; `width` is a
/// fraction of the Nyquist frequency.
pub fn kaiserord(ripple_db: f64, width: f64) -> (usize, f64) {
    let a = ripple_db.abs();
    let numtaps = (a - 7.95) / 2.285 / (PI * width) + 1.0;
    (numtaps.ceil().max(1.0) as usize, kaiser_beta(a))
}

/// `scipy.signal.minimum_phase(h, method='homomorphic')` (default `n_fft`,
/// `half=True`): `len(h) / 2` rounded up taps whose magnitude response
/// approximates the square root of `h`'s.
pub fn minimum_phase(h: &[f64]) -> Vec<f64> {
    let n = h.len();
    let n_fft = if n <= 1 {
        1
    } else {
        let wanted = (2.0 * (n as f64 - 1.0) / 0.01).log2().ceil();
        1usize << (wanted as u32)
    }
    .max(2);
    let mut planner = RealFftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(n_fft);
    let inverse = planner.plan_fft_inverse(n_fft);
    let mut buffer = vec![0.0; n_fft];
    buffer[..n].copy_from_slice(h);
    let mut spectrum = forward.make_output_vec();
    // Lengths match by construction, so these cannot fail.
    let _ = forward.process(&mut buffer, &mut spectrum);
    let magnitudes: Vec<f64> = spectrum.iter().map(|c| c.norm()).collect();
    let floor = 1e-7
        * magnitudes
            .iter()
            .copied()
            .filter(|&m| m > 0.0)
            .fold(f64::INFINITY, f64::min);
    // Real, even log-magnitude: its inverse DFT is real.
    for (c, m) in spectrum.iter_mut().zip(&magnitudes) {
        *c = Complex::new(0.5 * (m + floor).ln(), 0.0);
    }
    let _ = inverse.process(&mut spectrum, &mut buffer);
    let scale = 1.0 / n_fft as f64;
    let stop = n_fft / 2;
    for (i, x) in buffer.iter_mut().enumerate() {
        let w = if i == 0 {
            1.0
        } else if i < stop {
            2.0
        } else if i == stop && n_fft % 2 == 1 {
            1.0
        } else {
            0.0
        };
        *x *= scale * w;
    }
    let _ = forward.process(&mut buffer, &mut spectrum);
    for c in &mut spectrum {
        *c = c.exp();
    }
    // The exponential of a Hermitian spectrum is Hermitian; the real
    // inverse wants exactly real end points.
    if let Some(first) = spectrum.first_mut() {
        first.im = 0.0;
    }
    if n_fft.is_multiple_of(2) {
        if let Some(last) = spectrum.last_mut() {
            last.im = 0.0;
        }
    }
    let _ = inverse.process(&mut spectrum, &mut buffer);
    let n_out = n / 2 + n % 2;
    buffer[..n_out].iter().map(|x| x * scale).collect()
}

/// Sum of `a[i] * b[i]` in a fixed order (four lanes, then their sum), so
/// the result does not depend on where the slices came from.
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for k in 0..4 {
            lanes[k] += x[k] * y[k];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Direct-form causal FIR of one channel: `y[n] = Σ h[k] x[n-k]`, history
/// starting at zero (as `scipy.signal.lfilter(h, 1, x)`).
#[derive(Debug, Clone)]
pub struct DirectFir {
    /// Taps reversed, so output n is a dot product with a forward slice.
    reversed: Arc<[f64]>,
    /// The last `taps - 1` inputs, then the current frame's (scratch).
    line: Vec<f64>,
}

impl DirectFir {
    pub fn new(taps: Arc<[f64]>) -> Self {
        let reversed: Arc<[f64]> = taps.iter().rev().copied().collect();
        let line = vec![0.0; reversed.len().saturating_sub(1)];
        Self { reversed, line }
    }

    pub fn reset(&mut self) {
        let keep = self.reversed.len().saturating_sub(1);
        self.line.clear();
        self.line.resize(keep, 0.0);
    }

    /// Filters `x` in place. Allocates only while a frame is longer than
    /// any before.
    pub fn process(&mut self, x: &mut [f32]) {
        let taps = self.reversed.len();
        let keep = taps.saturating_sub(1);
        self.line.extend(x.iter().map(|&v| f64::from(v)));
        for (i, y) in x.iter_mut().enumerate() {
            *y = dot(&self.line[i..i + taps], &self.reversed) as f32;
        }
        let len = self.line.len();
        self.line.copy_within(len - keep.., 0);
        self.line.truncate(keep);
    }
}

/// Overlap-save causal FIR of one channel: blocks of `hop` new samples
/// through an FFT of `fft_len = hop + taps - 1` points. Output sample n is
/// `y[n - hop]` (zeros first): the block latency.
pub struct FftFir {
    taps: usize,
    hop: usize,
    spectrum: Arc<[Complex<f64>]>,
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn ComplexToReal<f64>>,
    /// `taps - 1` samples of history, then up to `hop` new ones.
    input: Vec<f64>,
    fill: usize,
    /// The last completed block's outputs, released one per new input.
    output: Vec<f64>,
    work: Vec<f64>,
    bins: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl std::fmt::Debug for FftFir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FftFir")
            .field("taps", &self.taps)
            .field("hop", &self.hop)
            .finish()
    }
}

/// The transform shared by every channel of one design.
#[derive(Clone)]
pub struct FftPlan {
    taps: usize,
    hop: usize,
    spectrum: Arc<[Complex<f64>]>,
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn ComplexToReal<f64>>,
}

impl std::fmt::Debug for FftPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FftPlan")
            .field("taps", &self.taps)
            .field("hop", &self.hop)
            .finish()
    }
}

impl FftPlan {
    /// FFT length: of the two powers of two from `2 * taps` up, the one
    /// with the least estimated work per output sample,
    /// `L log2 L / (L - taps + 1)` (longer blocks save little work and add
    /// latency).
    pub fn new(taps: &[f64]) -> Self {
        let n = taps.len().max(1);
        let first = (2 * n).next_power_of_two().max(8);
        let fft_len = (0..2)
            .map(|k| first << k)
            .min_by(|&a, &b| {
                let cost = |l: usize| l as f64 * (l as f64).log2() / (l - n + 1) as f64;
                cost(a).total_cmp(&cost(b))
            })
            .unwrap_or(first);
        let mut planner = RealFftPlanner::<f64>::new();
        let forward = planner.plan_fft_forward(fft_len);
        let inverse = planner.plan_fft_inverse(fft_len);
        let mut padded = vec![0.0; fft_len];
        padded[..taps.len()].copy_from_slice(taps);
        let mut spectrum = forward.make_output_vec();
        let _ = forward.process(&mut padded, &mut spectrum);
        let scale = 1.0 / fft_len as f64;
        spectrum.iter_mut().for_each(|c| *c *= scale);
        Self {
            taps: n,
            hop: fft_len - n + 1,
            spectrum: spectrum.into(),
            forward,
            inverse,
        }
    }

    /// Samples of latency the block processing adds.
    pub fn latency(&self) -> usize {
        self.hop
    }
}

impl FftFir {
    pub fn new(plan: &FftPlan) -> Self {
        let fft_len = plan.hop + plan.taps - 1;
        let scratch_len = plan.forward.get_scratch_len().max(plan.inverse.get_scratch_len());
        Self {
            taps: plan.taps,
            hop: plan.hop,
            spectrum: plan.spectrum.clone(),
            forward: plan.forward.clone(),
            inverse: plan.inverse.clone(),
            input: vec![0.0; fft_len],
            fill: 0,
            output: vec![0.0; plan.hop],
            work: vec![0.0; fft_len],
            bins: plan.forward.make_output_vec(),
            scratch: vec![Complex::default(); scratch_len],
        }
    }

    pub fn latency(&self) -> usize {
        self.hop
    }

    pub fn reset(&mut self) {
        self.input.iter_mut().for_each(|x| *x = 0.0);
        self.output.iter_mut().for_each(|x| *x = 0.0);
        self.fill = 0;
    }

    /// Filters `x` in place (delayed by [`FftFir::latency`]); never allocates.
    pub fn process(&mut self, x: &mut [f32]) {
        let history = self.taps - 1;
        let mut done = 0;
        while done < x.len() {
            let take = (self.hop - self.fill).min(x.len() - done);
            for k in 0..take {
                let sample = &mut x[done + k];
                self.input[history + self.fill + k] = f64::from(*sample);
                *sample = self.output[self.fill + k] as f32;
            }
            self.fill += take;
            done += take;
            if self.fill == self.hop {
                self.block();
                self.fill = 0;
            }
        }
    }

    fn block(&mut self) {
        let history = self.taps - 1;
        self.work.copy_from_slice(&self.input);
        let _ = self
            .forward
            .process_with_scratch(&mut self.work, &mut self.bins, &mut self.scratch);
        for (b, h) in self.bins.iter_mut().zip(self.spectrum.iter()) {
            *b *= h;
        }
        // The product of two real signals' spectra has real end points up
        // to rounding; realfft wants them exactly real.
        if let Some(first) = self.bins.first_mut() {
            first.im = 0.0;
        }
        if self.work.len().is_multiple_of(2) {
            if let Some(last) = self.bins.last_mut() {
                last.im = 0.0;
            }
        }
        let _ = self
            .inverse
            .process_with_scratch(&mut self.bins, &mut self.work, &mut self.scratch);
        self.output.copy_from_slice(&self.work[history..]);
        let len = self.input.len();
        self.input.copy_within(len - history.., 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::test_noise::noise;

    fn lfilter(h: &[f64], x: &[f32]) -> Vec<f64> {
        (0..x.len())
            .map(|n| (0..h.len().min(n + 1)).map(|k| h[k] * f64::from(x[n - k])).sum())
            .collect()
    }

    #[test]
    fn direct_equals_the_textbook_sum_and_ignores_framing() {
        let h: Vec<f64> = firwin(31, &[0.3], true, FirWindow::Hamming);
        let x = noise(500, 3);
        let reference = lfilter(&h, &x);
        let mut whole = x.clone();
        DirectFir::new(h.clone().into()).process(&mut whole);
        for (a, b) in whole.iter().zip(&reference) {
            assert!((f64::from(*a) - b).abs() < 1e-6);
        }
        for size in [1, 7, 40] {
            let mut fir = DirectFir::new(h.clone().into());
            let mut pieces = x.clone();
            pieces.chunks_mut(size).for_each(|c| fir.process(c));
            assert_eq!(pieces, whole, "frames of {size}");
        }
    }

    #[test]
    fn overlap_save_equals_direct_delayed_by_its_hop() {
        let h: Vec<f64> = firwin(101, &[0.2, 0.4], false, FirWindow::Blackman);
        let x = noise(3000, 4);
        let reference = lfilter(&h, &x);
        let plan = FftPlan::new(&h);
        let hop = plan.latency();
        let mut whole = x.clone();
        FftFir::new(&plan).process(&mut whole);
        assert!(whole[..hop].iter().all(|&v| v == 0.0));
        for (a, b) in whole[hop..].iter().zip(&reference) {
            assert!((f64::from(*a) - b).abs() < 1e-6, "{a} vs {b}");
        }
        for size in [1, 7, 40, 333] {
            let mut fir = FftFir::new(&plan);
            let mut pieces = x.clone();
            pieces.chunks_mut(size).for_each(|c| fir.process(c));
            assert_eq!(pieces, whole, "frames of {size}");
        }
    }

    #[test]
    fn lowpass_has_unit_gain_at_dc_and_bandpass_at_its_centre() {
        let h = firwin(51, &[0.25], true, FirWindow::Hann);
        assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        let h = firwin(51, &[0.2, 0.4], false, FirWindow::Kaiser(5.0));
        let centre = 0.3 * PI;
        let gain: f64 = h
            .iter()
            .enumerate()
            .map(|(i, x)| x * (centre * (i as f64 - 25.0)).cos())
            .sum();
        assert!((gain - 1.0).abs() < 1e-14);
    }

    #[test]
    fn highpass_with_even_taps_is_refused() {
        let design = FirDesign {
            band: Band::Highpass(1.0),
            length: FirLength::Taps(64, FirWindow::Hamming),
            minimum_phase: false,
        };
        assert_eq!(
            design.taps(100.0).unwrap_err(),
            FirError::EvenTapsPassNyquist {
                kind: "highpass",
                taps: 64
            }
        );
        let kaiser = FirDesign {
            length: FirLength::Kaiser {
                attenuation_db: 60.0,
                transition_hz: 2.0,
            },
            ..design
        };
        assert_eq!(kaiser.taps(100.0).unwrap().taps.len() % 2, 1);
    }
}
