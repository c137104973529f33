//! Filter design in f64, following SciPy step by step so the coefficients
//! agree with `scipy.signal.butter(..., output='sos')` and
//! `scipy.signal.iirnotch` to rounding (tested to 1e-9 against SciPy's own
//! output in `tests/reference/filters.json`).
//!
//! Butterworth: analog prototype (`buttap`) → frequency transform
//! (`lp2lp_zpk`, `lp2hp_zpk`, `lp2bp_zpk`, `lp2bs_zpk`) at the pre-warped
//! edge frequencies → bilinear transform (`bilinear_zpk`) → second-order
//! sections (`zpk2sos` with SciPy's default `nearest` pairing, whose section
//! order puts the poles closest to the unit circle last).

use std::f64::consts::PI;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// One second-order section, `b0 + b1 z⁻¹ + b2 z⁻²` over `1 + a1 z⁻¹ + a2 z⁻²`
/// (SciPy's sos row `[b0, b1, b2, 1, a1, a2]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Biquad {
    pub b: [f64; 3],
    /// `a[0]` is always 1.
    pub a: [f64; 3],
}

impl Biquad {
    /// The section as SciPy's six-number sos row.
    pub fn as_sos_row(&self) -> [f64; 6] {
        [self.b[0], self.b[1], self.b[2], self.a[0], self.a[1], self.a[2]]
    }

    /// Gain at 0 Hz, `H(1)`.
    fn dc_gain(&self) -> f64 {
        self.b.iter().sum::<f64>() / self.a.iter().sum::<f64>()
    }
}

/// The band of a Butterworth filter; frequencies in Hz.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Band {
    Lowpass(f64),
    Highpass(f64),
    Bandpass(f64, f64),
    Bandstop(f64, f64),
}

impl Band {
    fn edges(&self) -> Vec<f64> {
        match *self {
            Band::Lowpass(f) | Band::Highpass(f) => vec![f],
            Band::Bandpass(low, high) | Band::Bandstop(low, high) => vec![low, high],
        }
    }
}

/// Why a design is impossible. Messages hold design parameters only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DesignError {
    #[error("filter order must be at least 1")]
    ZeroOrder,
    #[error("{frequency} Hz is not strictly between 0 and the Nyquist frequency {nyquist} Hz")]
    OutsideNyquist { frequency: f64, nyquist: f64 },
    #[error("band edges must be increasing, got {low} Hz and {high} Hz")]
    EdgesNotIncreasing { low: f64, high: f64 },
    #[error("notch quality factor must be positive and finite, got {q}")]
    BadQuality { q: f64 },
    #[error("a section has a pole at z = 1, so it has no steady state")]
    NoSteadyState,
    #[error("a section's numerator starts with 0 (a pure delay), which the filter kernels do not run")]
    ZeroLeadingCoefficient,
}

/// `scipy.signal.butter(order, edges, btype, fs=sample_rate, output='sos')`.
pub fn butterworth(order: usize, band: Band, sample_rate: f64) -> Result<Vec<Biquad>, DesignError> {
    if order == 0 {
        return Err(DesignError::ZeroOrder);
    }
    let nyquist = sample_rate / 2.0;
    let edges = band.edges();
    for &frequency in &edges {
        if !(frequency > 0.0 && frequency < nyquist) {
            return Err(DesignError::OutsideNyquist { frequency, nyquist });
        }
    }
    if let [low, high] = edges[..] {
        if low >= high {
            return Err(DesignError::EdgesNotIncreasing { low, high });
        }
    }
    // SciPy normalises to fs = 2 and pre-warps: 2·fs·tan(π·Wn/fs).
    let warped: Vec<f64> = edges
        .iter()
        .map(|f| 4.0 * (PI * (f / nyquist) / 2.0).tan())
        .collect();
    let prototype = butterworth_prototype(order);
    let analog = match band {
        Band::Lowpass(_) => lowpass_to_lowpass(prototype, warped[0]),
        Band::Highpass(_) => lowpass_to_highpass(prototype, warped[0]),
        Band::Bandpass(..) => lowpass_to_bandpass(prototype, centre(&warped), warped[1] - warped[0]),
        Band::Bandstop(..) => lowpass_to_bandstop(prototype, centre(&warped), warped[1] - warped[0]),
    };
    Ok(zpk_to_sos(bilinear(analog, 2.0)))
}

fn centre(warped: &[f64]) -> f64 {
    (warped[0] * warped[1]).sqrt()
}

/// `scipy.signal.iirnotch(frequency, q, fs=sample_rate)`: a zero pair on the
/// unit circle at `frequency`, -3 dB bandwidth `frequency / q`.
pub fn notch(frequency: f64, q: f64, sample_rate: f64) -> Result<Biquad, DesignError> {
    let nyquist = sample_rate / 2.0;
    if !(frequency > 0.0 && frequency < nyquist) {
        return Err(DesignError::OutsideNyquist { frequency, nyquist });
    }
    if !(q.is_finite() && q > 0.0) {
        return Err(DesignError::BadQuality { q });
    }
    let w0 = 2.0 * frequency / sample_rate;
    let bandwidth = w0 / q * PI;
    let w0 = w0 * PI;
    let beta = (bandwidth / 2.0).tan();
    let gain = 1.0 / (1.0 + beta);
    Ok(Biquad {
        b: [gain, gain * (-2.0 * w0.cos()), gain],
        a: [1.0, -2.0 * gain * w0.cos(), 2.0 * gain - 1.0],
    })
}

/// `scipy.signal.sosfilt_zi`: per section, the state `[z1, z2]` the
/// transposed direct form II is in after a unit step has settled. Multiply by
/// the first sample to start without a transient.
pub fn steady_state(sections: &[Biquad]) -> Result<Vec<[f64; 2]>, DesignError> {
    let mut scale = 1.0;
    sections
        .iter()
        .map(|section| {
            let [b0, b1, b2] = section.b;
            let [_, a1, a2] = section.a;
            let denominator = 1.0 + a1 + a2;
            if denominator == 0.0 {
                return Err(DesignError::NoSteadyState);
            }
            // lfilter_zi: solve (I - companion(a)ᵀ) z = b[1:] - a[1:]·b0.
            let (r1, r2) = (b1 - a1 * b0, b2 - a2 * b0);
            let z1 = (r1 + r2) / denominator;
            let z2 = r2 - a2 * z1;
            let state = [scale * z1, scale * z2];
            scale *= section.dc_gain();
            Ok(state)
        })
        .collect()
}

/// |H| of a cascade at `frequency` Hz, evaluated analytically.
pub fn magnitude_response(sections: &[Biquad], frequency: f64, sample_rate: f64) -> f64 {
    let z_inv = Complex::expi(-2.0 * PI * frequency / sample_rate);
    let z_inv2 = z_inv * z_inv;
    sections
        .iter()
        .map(|s| {
            let numerator = Complex::real(s.b[0]) + z_inv * s.b[1] + z_inv2 * s.b[2];
            let denominator = Complex::real(s.a[0]) + z_inv * s.a[1] + z_inv2 * s.a[2];
            (numerator / denominator).abs()
        })
        .product()
}

/// Zeros, poles and gain.
#[derive(Clone, Debug)]
struct Zpk {
    zeros: Vec<Complex>,
    poles: Vec<Complex>,
    gain: f64,
}

/// `buttap`: poles evenly spaced on the left half of the unit circle.
fn butterworth_prototype(order: usize) -> Zpk {
    let n = order as f64;
    let poles = (0..order)
        .map(|i| {
            let m = -n + 1.0 + 2.0 * i as f64;
            -Complex::expi(PI * m / (2.0 * n))
        })
        .collect();
    Zpk {
        zeros: Vec::new(),
        poles,
        gain: 1.0,
    }
}

fn relative_degree(zpk: &Zpk) -> usize {
    zpk.poles.len() - zpk.zeros.len()
}

fn lowpass_to_lowpass(zpk: Zpk, wo: f64) -> Zpk {
    let degree = relative_degree(&zpk) as i32;
    Zpk {
        zeros: zpk.zeros.iter().map(|&z| z * wo).collect(),
        poles: zpk.poles.iter().map(|&p| p * wo).collect(),
        gain: zpk.gain * wo.powi(degree),
    }
}

fn lowpass_to_highpass(zpk: Zpk, wo: f64) -> Zpk {
    let degree = relative_degree(&zpk);
    let mut zeros: Vec<Complex> = zpk.zeros.iter().map(|&z| Complex::real(wo) / z).collect();
    zeros.extend(std::iter::repeat_n(Complex::ZERO, degree));
    let gain =
        zpk.gain * (product(zpk.zeros.iter().map(|&z| -z)) / product(zpk.poles.iter().map(|&p| -p))).re;
    Zpk {
        zeros,
        poles: zpk.poles.iter().map(|&p| Complex::real(wo) / p).collect(),
        gain,
    }
}

/// Each root r becomes r·bw/2 ± sqrt((r·bw/2)² - wo²).
fn split_around(roots: &[Complex], scaled: impl Fn(Complex) -> Complex, wo: f64) -> Vec<Complex> {
    let scaled: Vec<Complex> = roots.iter().map(|&r| scaled(r)).collect();
    let offset = |r: Complex| (r * r - Complex::real(wo * wo)).sqrt();
    let plus = scaled.iter().map(|&r| r + offset(r));
    let minus = scaled.iter().map(|&r| r - offset(r));
    plus.chain(minus).collect()
}

fn lowpass_to_bandpass(zpk: Zpk, wo: f64, bw: f64) -> Zpk {
    let degree = relative_degree(&zpk);
    let mut zeros = split_around(&zpk.zeros, |z| z * bw / 2.0, wo);
    zeros.extend(std::iter::repeat_n(Complex::ZERO, degree));
    Zpk {
        zeros,
        poles: split_around(&zpk.poles, |p| p * bw / 2.0, wo),
        gain: zpk.gain * bw.powi(degree as i32),
    }
}

fn lowpass_to_bandstop(zpk: Zpk, wo: f64, bw: f64) -> Zpk {
    let degree = relative_degree(&zpk);
    let mut zeros = split_around(&zpk.zeros, |z| Complex::real(bw / 2.0) / z, wo);
    zeros.extend(std::iter::repeat_n(Complex::new(0.0, wo), degree));
    zeros.extend(std::iter::repeat_n(Complex::new(0.0, -wo), degree));
    let gain =
        zpk.gain * (product(zpk.zeros.iter().map(|&z| -z)) / product(zpk.poles.iter().map(|&p| -p))).re;
    Zpk {
        zeros,
        poles: split_around(&zpk.poles, |p| Complex::real(bw / 2.0) / p, wo),
        gain,
    }
}

/// `bilinear_zpk`: s → z = (2fs + s) / (2fs - s); zeros at infinity go to -1.
fn bilinear(zpk: Zpk, fs: f64) -> Zpk {
    let degree = relative_degree(&zpk);
    let fs2 = Complex::real(2.0 * fs);
    let map = |r: &Complex| (fs2 + *r) / (fs2 - *r);
    let mut zeros: Vec<Complex> = zpk.zeros.iter().map(map).collect();
    zeros.extend(std::iter::repeat_n(Complex::real(-1.0), degree));
    let gain = zpk.gain
        * (product(zpk.zeros.iter().map(|&z| fs2 - z)) / product(zpk.poles.iter().map(|&p| fs2 - p))).re;
    Zpk {
        zeros,
        poles: zpk.poles.iter().map(map).collect(),
        gain,
    }
}

fn product(values: impl Iterator<Item = Complex>) -> Complex {
    values.fold(Complex::real(1.0), |acc, v| acc * v)
}

/// `zpk2sos(z, p, k, pairing='nearest')` for a digital filter, step by step.
fn zpk_to_sos(zpk: Zpk) -> Vec<Biquad> {
    let Zpk {
        mut zeros,
        mut poles,
        gain,
    } = zpk;
    let extra_poles = zeros.len().saturating_sub(poles.len());
    let extra_zeros = poles.len().saturating_sub(zeros.len());
    poles.extend(std::iter::repeat_n(Complex::ZERO, extra_poles));
    zeros.extend(std::iter::repeat_n(Complex::ZERO, extra_zeros));
    let n_sections = poles.len().max(zeros.len()).div_ceil(2);
    if poles.len() % 2 == 1 {
        poles.push(Complex::ZERO);
        zeros.push(Complex::ZERO);
    }
    let mut zeros = conjugate_halves_then_reals(zeros);
    let mut poles = conjugate_halves_then_reals(poles);
    let mut sections = vec![
        Biquad {
            b: [0.0; 3],
            a: [0.0; 3],
        };
        n_sections
    ];
    for section in sections.iter_mut().rev() {
        let p1 = poles.remove(closest_to_unit_circle(&poles, |_| true));
        let reals_left = poles.iter().filter(|p| p.is_real()).count();
        *section = if p1.is_real() && reals_left == 0 {
            let z1 = zeros.remove(nearest(&zeros, p1, Which::Real));
            single_section(&[z1, Complex::ZERO], &[p1, Complex::ZERO])
        } else if poles.len() + 1 == zeros.len()
            && !p1.is_real()
            && reals_left == 1
            && zeros.iter().filter(|z| z.is_real()).count() == 1
        {
            let z1 = zeros.remove(nearest(&zeros, p1, Which::Complex));
            single_section(&[z1, z1.conj()], &[p1, p1.conj()])
        } else {
            let p2 = if p1.is_real() {
                poles.remove(closest_to_unit_circle(&poles, Complex::is_real))
            } else {
                p1.conj()
            };
            pair_zeros_with(&mut zeros, p1, p2)
        };
    }
    for b in &mut sections[0].b {
        *b *= gain;
    }
    sections
}

/// The general branch of `zpk2sos`: the zeros nearest to `p1` join `p1, p2`.
fn pair_zeros_with(zeros: &mut Vec<Complex>, p1: Complex, p2: Complex) -> Biquad {
    if zeros.is_empty() {
        return single_section(&[], &[p1, p2]);
    }
    let z1 = zeros.remove(nearest(zeros, p1, Which::Any));
    if !z1.is_real() {
        single_section(&[z1, z1.conj()], &[p1, p2])
    } else if !zeros.is_empty() {
        let z2 = zeros.remove(nearest(zeros, p1, Which::Real));
        single_section(&[z1, z2], &[p1, p2])
    } else {
        single_section(&[z1], &[p1, p2])
    }
}

/// `_cplxreal`: one of each conjugate pair (positive imaginary part, averaged
/// with its partner), then the real roots; each group sorted by real part,
/// then by |imaginary part|.
fn conjugate_halves_then_reals(mut roots: Vec<Complex>) -> Vec<Complex> {
    let tolerance = 100.0 * f64::EPSILON;
    roots.sort_by(|x, y| x.re.total_cmp(&y.re).then(x.im.abs().total_cmp(&y.im.abs())));
    let is_real = |r: &Complex| r.im.abs() <= tolerance * r.abs();
    let reals: Vec<Complex> = roots
        .iter()
        .filter(|r| is_real(r))
        .map(|r| Complex::real(r.re))
        .collect();
    let mut upper: Vec<Complex> = roots
        .iter()
        .filter(|r| !is_real(r) && r.im > 0.0)
        .copied()
        .collect();
    let mut lower: Vec<Complex> = roots
        .iter()
        .filter(|r| !is_real(r) && r.im < 0.0)
        .copied()
        .collect();
    lower.truncate(upper.len());
    // Runs of (nearly) equal real parts are re-sorted by |imaginary part|.
    let mut start = 0;
    while start < upper.len() {
        let mut stop = start + 1;
        while stop < upper.len() && upper[stop].re - upper[stop - 1].re <= tolerance * upper[stop - 1].abs() {
            stop += 1;
        }
        upper[start..stop].sort_by(|x, y| x.im.abs().total_cmp(&y.im.abs()));
        lower[start..stop].sort_by(|x, y| x.im.abs().total_cmp(&y.im.abs()));
        start = stop;
    }
    let mut halves: Vec<Complex> = upper
        .iter()
        .zip(&lower)
        .map(|(&u, &l)| (u + l.conj()) * 0.5)
        .collect();
    halves.extend(reals);
    halves
}

/// `idx_worst` for a digital filter: the first root minimising |1 - |r||.
fn closest_to_unit_circle(roots: &[Complex], keep: impl Fn(&Complex) -> bool) -> usize {
    let mut best: Option<(usize, f64)> = None;
    for (i, r) in roots.iter().enumerate().filter(|(_, r)| keep(r)) {
        let distance = (1.0 - r.abs()).abs();
        if best.is_none_or(|(_, d)| distance < d) {
            best = Some((i, distance));
        }
    }
    best.map_or(0, |(i, _)| i)
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Real,
    Complex,
    Any,
}

/// `_nearest_real_complex_idx`: the root nearest to `to` of the wanted kind.
fn nearest(roots: &[Complex], to: Complex, which: Which) -> usize {
    let mut best: Option<(usize, f64)> = None;
    for (i, r) in roots.iter().enumerate() {
        let wanted = match which {
            Which::Any => true,
            Which::Real => r.is_real(),
            Which::Complex => !r.is_real(),
        };
        let distance = (*r - to).abs();
        if wanted && best.is_none_or(|(_, d)| distance < d) {
            best = Some((i, distance));
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// `_single_zpksos`: polynomials of the roots, right-aligned in the row.
fn single_section(zeros: &[Complex], poles: &[Complex]) -> Biquad {
    Biquad {
        b: right_aligned(&polynomial(zeros)),
        a: right_aligned(&polynomial(poles)),
    }
}

/// `np.poly`, real part (roots come in conjugate pairs or are real).
fn polynomial(roots: &[Complex]) -> Vec<f64> {
    let mut coefficients = vec![Complex::real(1.0)];
    for &root in roots {
        let mut next = coefficients.clone();
        next.push(Complex::ZERO);
        for (i, &c) in coefficients.iter().enumerate() {
            next[i + 1] = next[i + 1] - c * root;
        }
        coefficients = next;
    }
    coefficients.iter().map(|c| c.re).collect()
}

fn right_aligned(coefficients: &[f64]) -> [f64; 3] {
    let mut row = [0.0; 3];
    row[3 - coefficients.len()..].copy_from_slice(coefficients);
    row
}

/// Just enough complex arithmetic for the design.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Complex {
    re: f64,
    im: f64,
}

impl Complex {
    const ZERO: Complex = Complex { re: 0.0, im: 0.0 };

    fn new(re: f64, im: f64) -> Self {
        Self { re, im }
    }

    fn real(re: f64) -> Self {
        Self { re, im: 0.0 }
    }

    /// e^(iθ).
    fn expi(theta: f64) -> Self {
        Self::new(theta.cos(), theta.sin())
    }

    fn conj(self) -> Self {
        Self::new(self.re, -self.im)
    }

    fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }

    /// NumPy's `isreal`: the imaginary part is exactly zero.
    fn is_real(&self) -> bool {
        self.im == 0.0
    }

    /// Principal square root (as `np.sqrt` on complex numbers), computed
    /// without cancellation when the real part is negative.
    fn sqrt(self) -> Self {
        let modulus = self.abs();
        if modulus == 0.0 {
            return Complex::ZERO;
        }
        if self.re >= 0.0 {
            let t = ((modulus + self.re) / 2.0).sqrt();
            Self::new(t, self.im / (2.0 * t))
        } else {
            let t = ((modulus - self.re) / 2.0).sqrt();
            Self::new(self.im.abs() / (2.0 * t), t.copysign(self.im))
        }
    }
}

impl Add for Complex {
    type Output = Complex;
    fn add(self, o: Complex) -> Complex {
        Complex::new(self.re + o.re, self.im + o.im)
    }
}

impl Sub for Complex {
    type Output = Complex;
    fn sub(self, o: Complex) -> Complex {
        Complex::new(self.re - o.re, self.im - o.im)
    }
}

impl Mul for Complex {
    type Output = Complex;
    fn mul(self, o: Complex) -> Complex {
        Complex::new(self.re * o.re - self.im * o.im, self.re * o.im + self.im * o.re)
    }
}

impl Mul<f64> for Complex {
    type Output = Complex;
    fn mul(self, k: f64) -> Complex {
        Complex::new(self.re * k, self.im * k)
    }
}

impl Div<f64> for Complex {
    type Output = Complex;
    fn div(self, k: f64) -> Complex {
        Complex::new(self.re / k, self.im / k)
    }
}

impl Div for Complex {
    type Output = Complex;
    fn div(self, o: Complex) -> Complex {
        let denominator = o.re * o.re + o.im * o.im;
        Complex::new(
            (self.re * o.re + self.im * o.im) / denominator,
            (self.im * o.re - self.re * o.im) / denominator,
        )
    }
}

impl Neg for Complex {
    type Output = Complex;
    fn neg(self) -> Complex {
        Complex::new(-self.re, -self.im)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: &[Biquad], expected: &[[f64; 6]]) {
        assert_eq!(actual.len(), expected.len());
        for (section, row) in actual.iter().zip(expected) {
            for (a, e) in section.as_sos_row().iter().zip(row) {
                assert!((a - e).abs() <= 1e-9, "{:?} vs {row:?}", section.as_sos_row());
            }
        }
    }

    #[test]
    fn second_order_lowpass_matches_scipy() {
        // scipy.signal.butter(2, 10, 'lowpass', fs=100, output='sos')
        let sos = butterworth(2, Band::Lowpass(10.0), 100.0).unwrap();
        assert_close(
            &sos,
            &[[
                0.06745527388907191,
                0.13491054777814382,
                0.06745527388907191,
                1.0,
                -1.142980502539901,
                0.41280159809618866,
            ]],
        );
    }

    #[test]
    fn notch_matches_scipy() {
        // scipy.signal.iirnotch(50, 30, fs=250)
        let section = notch(50.0, 30.0, 250.0).unwrap();
        assert_close(
            &[section],
            &[[
                0.9794827609814495,
                -0.6053536376811252,
                0.9794827609814495,
                1.0,
                -0.6053536376811252,
                0.958965521962899,
            ]],
        );
    }

    #[test]
    fn steady_state_holds_a_constant_input() {
        let sos = butterworth(3, Band::Lowpass(5.0), 100.0).unwrap();
        let zi = steady_state(&sos).unwrap();
        // One step of the cascade from the scaled steady state keeps it.
        let mut x = 2.0;
        for (s, z) in sos.iter().zip(&zi) {
            let (z1, z2) = (z[0] * 2.0, z[1] * 2.0);
            let y = s.b[0] * x + z1;
            assert!((s.b[1] * x - s.a[1] * y + z2 - z1).abs() < 1e-12);
            assert!((s.b[2] * x - s.a[2] * y - z2).abs() < 1e-12);
            x = y;
        }
        assert!((x - 2.0).abs() < 1e-12, "a low-pass passes DC");
    }

    #[test]
    fn impossible_designs_are_refused() {
        assert_eq!(
            butterworth(0, Band::Lowpass(1.0), 100.0),
            Err(DesignError::ZeroOrder)
        );
        assert!(matches!(
            butterworth(2, Band::Highpass(50.0), 100.0),
            Err(DesignError::OutsideNyquist { .. })
        ));
        assert!(matches!(
            butterworth(2, Band::Bandpass(10.0, 5.0), 100.0),
            Err(DesignError::EdgesNotIncreasing { .. })
        ));
        assert!(matches!(
            notch(50.0, 0.0, 250.0),
            Err(DesignError::BadQuality { .. })
        ));
    }
}
