//! Welch power spectral density and the features computed from it.
//!
//! [`Welch::psd`] matches `scipy.signal.welch(x, fs, nperseg=n)` with its
//! defaults: periodic Hann window (`get_window('hann', n)`), 50 % overlap
//! (`noverlap = n // 2`), constant detrend per segment, one-sided density
//! scaling, mean over segments. Work is in f64; the FFT plan, window and
//! scratch are made once per segment length and reused for every window.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::fft::{PerLength, PowerSpectrum};

/// Why a Welch estimator or feature set cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WelchError {
    #[error("segment of {0} samples is too short (at least 2)")]
    SegmentTooShort(usize),
    #[error("window of {window} samples is shorter than the segment of {segment}")]
    WindowShorterThanSegment { window: usize, segment: usize },
    #[error("band {name} must satisfy 0 <= low < high")]
    BadBand { name: String },
    #[error("no bands given")]
    NoBands,
}

/// A named frequency band `[low_hz, high_hz)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    pub name: String,
    pub low_hz: f64,
    pub high_hz: f64,
}

impl Band {
    pub fn new(name: &str, low_hz: f64, high_hz: f64) -> Self {
        Self {
            name: name.to_string(),
            low_hz,
            high_hz,
        }
    }

    /// delta 1–4, theta 4–8, alpha 8–13, beta 13–30, gamma 30–50 Hz.
    pub fn eeg_defaults() -> Vec<Band> {
        vec![
            Band::new("delta", 1.0, 4.0),
            Band::new("theta", 4.0, 8.0),
            Band::new("alpha", 8.0, 13.0),
            Band::new("beta", 13.0, 30.0),
            Band::new("gamma", 30.0, 50.0),
        ]
    }
}

/// A Welch estimator for one segment length.
pub struct Welch {
    segment: usize,
    transform: Transform,
    /// Shared by every estimator of this length ([`shared_window`]).
    window: Arc<[f64]>,
    /// 1 / (fs · Σ w²), SciPy's density scale, without the one-sided ×2.
    scale_per_hz: f64,
    psd: Vec<f64>,
    /// Periodograms (|FFT|², unscaled) of recent segments keyed by the
    /// index of their first sample in the caller's stream: with a hop
    /// shorter than the segment step, consecutive windows share segments,
    /// and each is transformed once instead of once per window.
    keys: [Option<u64>; CACHED_SEGMENTS],
    /// Slot i's periodogram is `powers[i * bins..(i + 1) * bins]`.
    powers: Vec<f64>,
    next_slot: usize,
}

/// How periodograms are transformed: [`PowerSpectrum`] for the lengths it
/// supports (128 and 256, about twice as fast), realfft for the others.
enum Transform {
    Lanes(PowerSpectrum),
    RealFft {
        fft: Arc<dyn RealToComplex<f64>>,
        input: Vec<f64>,
        spectrum: Vec<Complex<f64>>,
        scratch: Vec<Complex<f64>>,
    },
}

impl Transform {
    fn new(segment: usize) -> Self {
        if let Some(lanes) = PowerSpectrum::new(segment) {
            return Self::Lanes(lanes);
        }
        let fft = shared_plan(segment);
        Self::RealFft {
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
        }
    }
}

/// DC, and Nyquist for an even segment of `n`, have no negative-frequency
/// twin: their unscaled sums `(dc, nyquist)` take `scale`, not twice it.
#[inline(always)]
fn rescale_ends(psd: &mut [f64], (dc, nyquist): (f64, f64), scale: f64, n: usize) {
    let last = psd.len() - 1;
    psd[0] = dc * scale;
    if n.is_multiple_of(2) {
        psd[last] = nyquist * scale;
    }
}

/// The forward FFT plan for `segment` samples, one per length for the
/// whole process: a band_powers operator has an estimator per channel, and
/// 64 copies of the same twiddle tables only crowd the cache. Plans are
/// kept for every length ever asked for (a few KiB each; lengths come from
/// the configured segment and the streams' rates).
fn shared_plan(segment: usize) -> Arc<dyn RealToComplex<f64>> {
    static PLANNER: std::sync::OnceLock<std::sync::Mutex<RealFftPlanner<f64>>> = std::sync::OnceLock::new();
    let planner = PLANNER.get_or_init(|| std::sync::Mutex::new(RealFftPlanner::new()));
    // A panic while planning cannot leave the planner half-updated in a
    // way that matters: it only caches finished plans.
    let mut planner = planner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    planner.plan_fft_forward(segment)
}

/// The periodic Hann window (sym=False, as scipy.signal.get_window('hann',
/// n)) of `segment` samples, shared per length like the FFT plans: a
/// 64-channel operator would otherwise compute 64 copies (a cosine per
/// sample, most of a new stream's setup time).
fn shared_window(segment: usize) -> Arc<[f64]> {
    static WINDOWS: PerLength<[f64]> = PerLength::new();
    WINDOWS.get(segment, || {
        (0..segment)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / segment as f64).cos())
            .collect()
    })
}

/// Segments remembered by [`Welch::psd_at`]. Windows of S segments with a
/// hop of half the segment step (2 s / 250 ms windows, 1 s segments) need
/// the last 2S − 1 = 5; any hop of at least the step needs S. Fewer slots
/// than needed cost recomputed segments, never other values; more cost
/// cache: 64 channels' periodograms are 64 × 6 × 520 bytes, 195 KiB.
const CACHED_SEGMENTS: usize = 6;

/// Windows of up to this many segments look all of them up first and sum
/// them in one pass ([`sum_scaled`]); longer ones add each after its lookup.
const FUSED_SEGMENTS: usize = 4;
// A lookup pins at most FUSED_SEGMENTS − 1 slots: one must stay free.
const _: () = assert!(FUSED_SEGMENTS <= CACHED_SEGMENTS);

/// `psd` = the sum of the periodograms `rows`, in order, times the
/// one-sided density scale: one pass, the same additions in the same order
/// as adding each row in turn to zeros (0 + q = q for these non-negative
/// powers), so the same bits.
#[inline(always)]
fn sum_scaled<const R: usize>(psd: &mut [f64], rows: [&[f64]; R], scale: f64, n: usize) {
    let sum_at = |i: usize| rows[1..].iter().fold(rows[0][i], |sum, row| sum + row[i]);
    let last = psd.len() - 1;
    let ends = (sum_at(0), sum_at(last));
    let twice = 2.0 * scale;
    let rows = rows.map(|row| &row[..psd.len()]);
    for (i, p) in psd.iter_mut().enumerate() {
        *p = rows[1..].iter().fold(rows[0][i], |sum, row| sum + row[i]) * twice;
    }
    rescale_ends(psd, ends, scale, n);
}

impl std::fmt::Debug for Welch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Welch").field("segment", &self.segment).finish()
    }
}

impl Welch {
    pub fn new(segment: usize) -> Result<Self, WelchError> {
        if segment < 2 {
            return Err(WelchError::SegmentTooShort(segment));
        }
        let window = shared_window(segment);
        let energy: f64 = window.iter().map(|w| w * w).sum();
        Ok(Self {
            segment,
            transform: Transform::new(segment),
            psd: vec![0.0; segment / 2 + 1],
            keys: [None; CACHED_SEGMENTS],
            powers: vec![0.0; CACHED_SEGMENTS * (segment / 2 + 1)],
            next_slot: 0,
            scale_per_hz: 1.0 / energy,
            window,
        })
    }

    pub fn segment(&self) -> usize {
        self.segment
    }

    /// Number of one-sided PSD bins.
    pub fn bins(&self) -> usize {
        self.segment / 2 + 1
    }

    /// The PSD of `x` sampled at `fs` Hz (units²/Hz), bin k at k·fs/segment.
    pub fn psd(&mut self, x: &[f64], fs: f64) -> &[f64] {
        self.forget();
        self.psd_at(x, fs, 0)
    }

    /// As [`Welch::psd`] for `x` starting at sample `first` of a contiguous
    /// run: segments already transformed (same first sample) are reused.
    /// Call [`Welch::forget`] whenever sample indices stop naming the same
    /// samples (a new run).
    pub fn psd_at(&mut self, x: &[f64], fs: f64, first: u64) -> &[f64] {
        let mut psd = std::mem::take(&mut self.psd);
        self.psd_at_into(x, fs, first, &mut psd);
        self.psd = psd;
        &self.psd
    }

    /// As [`Welch::psd_at`], written into `psd` ([`Welch::bins`] long), for
    /// callers that keep PSDs elsewhere (`band_powers` batches them for
    /// its features) and would otherwise copy them there. Panics if `psd`
    /// has another length (a bug in the caller).
    pub fn psd_at_into(&mut self, x: &[f64], fs: f64, first: u64, psd: &mut [f64]) {
        assert_eq!(psd.len(), self.bins(), "one PSD value per bin");
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { self.psd_at_avx2(x, fs, first, psd) };
            return;
        }
        self.psd_at_inline(x, fs, first, psd);
    }

    /// [`Welch::psd_at_into`] compiled for AVX2: its loops (detrend and
    /// window, |X|², the segment sum, the scaling) run 4 lanes wide instead
    /// of SSE2's 2. The same operations in the same order: the same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn psd_at_avx2(&mut self, x: &[f64], fs: f64, first: u64, psd: &mut [f64]) {
        self.psd_at_inline(x, fs, first, psd);
    }

    #[inline(always)]
    fn psd_at_inline(&mut self, x: &[f64], fs: f64, first: u64, psd: &mut [f64]) {
        let n = self.segment;
        let step = n - n / 2;
        let segments = if x.len() < n { 0 } else { (x.len() - n / 2) / step };
        // One-sided: every bin but DC (and Nyquist for even n) holds the
        // power of its negative-frequency twin too.
        let scale = self.scale_per_hz / (fs * segments.max(1) as f64);
        match segments {
            0 => psd.fill(0.0),
            1..=FUSED_SEGMENTS => {
                let mut slots = [0; FUSED_SEGMENTS];
                let mut pinned = 0u32;
                for (s, slot) in slots.iter_mut().enumerate().take(segments) {
                    *slot = self.periodogram(&x[s * step..s * step + n], first + (s * step) as u64, pinned);
                    pinned |= 1 << *slot;
                }
                let (powers, bins) = (&self.powers, psd.len());
                let rows = |k: usize| &powers[slots[k] * bins..(slots[k] + 1) * bins];
                match segments {
                    1 => sum_scaled(psd, [rows(0)], scale, n),
                    2 => sum_scaled(psd, [rows(0), rows(1)], scale, n),
                    3 => sum_scaled(psd, [rows(0), rows(1), rows(2)], scale, n),
                    _ => sum_scaled(psd, [rows(0), rows(1), rows(2), rows(3)], scale, n),
                }
            }
            _ => {
                psd.fill(0.0);
                let bins = psd.len();
                for s in 0..segments {
                    // Each segment is added right after its lookup: a later
                    // lookup may reuse its cache slot.
                    let slot = self.periodogram(&x[s * step..s * step + n], first + (s * step) as u64, 0);
                    for (p, q) in psd.iter_mut().zip(&self.powers[slot * bins..(slot + 1) * bins]) {
                        *p += q;
                    }
                }
                let last = psd.len() - 1;
                let ends = (psd[0], psd[last]);
                psd.iter_mut().for_each(|p| *p *= 2.0 * scale);
                rescale_ends(psd, ends, scale, n);
            }
        }
    }

    /// Drops the remembered segments.
    pub fn forget(&mut self) {
        self.keys = [None; CACHED_SEGMENTS];
    }

    /// The cache slot holding |FFT(detrended, windowed segment)|² for the
    /// segment starting at sample `start`, computed if not remembered into
    /// a slot outside the bit set `pinned` (slots the caller still reads).
    #[inline(always)]
    fn periodogram(&mut self, segment: &[f64], start: u64, pinned: u32) -> usize {
        if let Some(slot) = self.keys.iter().position(|&key| key == Some(start)) {
            return slot;
        }
        // Round robin (the oldest inserted segment is the earliest one),
        // skipping pinned slots: fewer than CACHED_SEGMENTS are pinned.
        let mut slot = self.next_slot;
        while pinned & (1 << slot) != 0 {
            slot = (slot + 1) % CACHED_SEGMENTS;
        }
        self.next_slot = (slot + 1) % CACHED_SEGMENTS;
        let n = self.segment;
        let (segment, window) = (&segment[..n], &self.window[..n]);
        let bins = n / 2 + 1;
        let power = &mut self.powers[slot * bins..(slot + 1) * bins];
        match &mut self.transform {
            Transform::Lanes(lanes) => lanes.compute(segment, window, power),
            Transform::RealFft {
                fft,
                input,
                spectrum,
                scratch,
            } => {
                let mean = sum(segment) / n as f64;
                for i in 0..n {
                    input[i] = (segment[i] - mean) * window[i];
                }
                // Lengths come from the plan itself, so processing cannot
                // fail; a failure would leave NaN power rather than a stale
                // segment.
                match fft.process_with_scratch(input, spectrum, scratch) {
                    Ok(()) => {
                        for (p, c) in power.iter_mut().zip(spectrum.iter()) {
                            *p = c.norm_sqr();
                        }
                    }
                    Err(_) => power.iter_mut().for_each(|p| *p = f64::NAN),
                }
            }
        }
        self.keys[slot] = Some(start);
        slot
    }
}

/// Spectral features of one PSD: absolute and relative band powers, spectral
/// edge frequencies and peak frequency.
///
/// Integration rule: a band's power is Σ PSD\[k\] · df over the bins whose
/// frequency f_k = k·df lies in `[low, high)`, df = fs / segment. Total power
/// is the same sum over `[min band low, max band high)`; relative = band /
/// total. SEF_p is the lowest bin frequency in the edge range at which the
/// cumulative power reaches p of the range's power; the peak is the
/// frequency of the largest bin in the range (first one on ties).
#[derive(Clone, Debug, PartialEq)]
pub struct SpectralFeatures {
    pub bands: Vec<Band>,
    /// `[low, high)` for SEF and peak frequency.
    pub edge_range_hz: (f64, f64),
    /// Edge fractions, e.g. 0.5, 0.9, 0.95 for SEF50/90/95.
    pub edges: Vec<f64>,
}

impl SpectralFeatures {
    pub fn new(bands: Vec<Band>, edge_range_hz: Option<(f64, f64)>) -> Result<Self, WelchError> {
        if bands.is_empty() {
            return Err(WelchError::NoBands);
        }
        if let Some(b) = bands.iter().find(|b| !(b.low_hz >= 0.0 && b.low_hz < b.high_hz)) {
            return Err(WelchError::BadBand { name: b.name.clone() });
        }
        let span = Self::span(&bands);
        Ok(Self {
            edge_range_hz: edge_range_hz.unwrap_or(span),
            bands,
            edges: vec![0.5, 0.9, 0.95],
        })
    }

    fn span(bands: &[Band]) -> (f64, f64) {
        let low = bands.iter().map(|b| b.low_hz).fold(f64::INFINITY, f64::min);
        let high = bands.iter().map(|b| b.high_hz).fold(f64::NEG_INFINITY, f64::max);
        (low, high)
    }

    /// Value names, in the order [`SpectralFeatures::compute`] writes them.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.bands.iter().map(|b| format!("{}_abs", b.name)).collect();
        names.extend(self.bands.iter().map(|b| format!("{}_rel", b.name)));
        names.push("total_power".into());
        names.extend(self.edges.iter().map(|e| format!("sef{}", (e * 100.0).round())));
        names.push("peak_hz".into());
        names.push("spectral_entropy".into());
        names
    }

    /// Appends the feature values of `psd` (bin spacing `df`) to `out`.
    pub fn compute(&self, psd: &[f64], df: f64, out: &mut Vec<f64>) {
        self.plan(psd.len(), df).compute(psd, out);
    }

    /// Whether the edges can be found in one walk: targets that only grow
    /// and never block a later edge, i.e. ascending, positive fractions
    /// (the defaults).
    pub fn one_walk(&self) -> bool {
        self.edges.is_sorted() && self.edges.iter().all(|&e| e > 0.0)
    }

    /// The bin ranges for PSDs of `bins` bins spaced `df`, computed once
    /// per channel instead of once per window.
    pub fn plan(&self, bins: usize, df: f64) -> FeaturePlan {
        let (low, high) = Self::span(&self.bands);
        let (lo, hi) = self.edge_range_hz;
        FeaturePlan {
            df,
            total: bins_in(bins, df, low, high),
            bands: self
                .bands
                .iter()
                .map(|b| bins_in(bins, df, b.low_hz, b.high_hz))
                .collect(),
            edge: bins_in(bins, df, lo, hi),
            one_walk: self.one_walk(),
            edges: self.edges.clone(),
        }
    }
}

/// [`SpectralFeatures`] with the bin ranges resolved for one bin spacing.
#[derive(Clone, Debug, PartialEq)]
pub struct FeaturePlan {
    pub(super) df: f64,
    pub(super) total: std::ops::Range<usize>,
    pub(super) bands: Vec<std::ops::Range<usize>>,
    pub(super) edge: std::ops::Range<usize>,
    pub(super) edges: Vec<f64>,
    /// `edges` can be found in one walk ([`edge_frequencies`]).
    pub(super) one_walk: bool,
}

impl FeaturePlan {
    /// How many values [`FeaturePlan::compute`] pushes.
    pub fn values(&self) -> usize {
        2 * self.bands.len() + 1 + self.edges.len() + 2
    }

    /// As [`SpectralFeatures::compute`], same values bit for bit.
    pub fn compute(&self, psd: &[f64], out: &mut Vec<f64>) {
        self.compute_with(psd, out, true);
    }

    /// [`FeaturePlan::compute`]; `fused` allows the one-pass AVX-512 path
    /// for the edge-range features (tests turn it off to compare).
    #[inline(always)]
    fn compute_with(&self, psd: &[f64], out: &mut Vec<f64>, fused: bool) {
        let df = self.df;
        let total_sum = sum(&psd[self.total.clone()]);
        let total = total_sum * df;
        let first = out.len();
        out.extend(self.bands.iter().map(|r| sum(&psd[r.clone()]) * df));
        for i in 0..self.bands.len() {
            out.push(out[first + i] / total);
        }
        out.push(total);
        let range = self.edge.clone();
        // The same sum over the same bins in the same order when the edge
        // range is the bands' span (the default): reuse it.
        let range_power = if range == self.total {
            total_sum
        } else {
            sum(&psd[range.clone()])
        };
        #[cfg(target_arch = "x86_64")]
        if fused && self.one_walk && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above, and with it
            // AVX2, the features `range_features_avx512` is compiled for.
            unsafe {
                range_features_avx512(
                    &psd[range.clone()],
                    range.start,
                    df,
                    &self.edges,
                    range_power,
                    out,
                )
            };
            return;
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = fused;
        if self.one_walk {
            edge_frequencies(psd, range.clone(), df, &self.edges, range_power, out);
        } else {
            for &edge in &self.edges {
                out.push(edge_frequency(psd, range.clone(), df, edge * range_power));
            }
        }
        out.push(peak_frequency(psd, range.clone(), df));
        out.push(entropy_of(&psd[range], range_power));
    }
}

/// Indices of bins with k·df in `[low, high)`.
fn bins_in(bins: usize, df: f64, low: f64, high: f64) -> std::ops::Range<usize> {
    let start = first_bin_at_or_above(bins, df, low);
    let end = first_bin_at_or_above(bins, df, high).max(start);
    start..end
}

/// The lowest k < bins with k·df >= f (bins when none): a division, then
/// the exact comparison the rule states, so rounding in the division cannot
/// move a band edge.
fn first_bin_at_or_above(bins: usize, df: f64, f: f64) -> usize {
    let mut k = ((f / df).ceil().max(0.0) as usize).min(bins);
    while k > 0 && (k - 1) as f64 * df >= f {
        k -= 1;
    }
    while k < bins && (k as f64) * df < f {
        k += 1;
    }
    k
}

/// Σ PSD · df over the bins in `[low, high)`.
pub fn band_power(psd: &[f64], df: f64, low: f64, high: f64) -> f64 {
    sum(&psd[bins_in(psd.len(), df, low, high)]) * df
}

/// Σ x in four interleaved partial sums: an in-order f64 sum is one chain
/// of dependent adds (latency-bound, never vectorised); four chains are
/// not. The order is fixed, so the result is the same on every call.
#[inline(always)]
fn sum(x: &[f64]) -> f64 {
    let mut partial = [0.0; 4];
    let chunks = x.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (s, &v) in partial.iter_mut().zip(chunk) {
            *s += v;
        }
    }
    rest.iter()
        .fold((partial[0] + partial[1]) + (partial[2] + partial[3]), |s, &v| {
            s + v
        })
}

/// Lowest bin frequency at which the cumulative sum reaches `target`
/// (NaN when the range is empty or holds no power).
fn edge_frequency(psd: &[f64], range: std::ops::Range<usize>, df: f64, target: f64) -> f64 {
    let mut cumulative = 0.0;
    for k in range {
        cumulative += psd[k];
        if cumulative >= target && target > 0.0 {
            return k as f64 * df;
        }
    }
    f64::NAN
}

/// [`edge_frequency`] of every edge fraction in `edges` (ascending), pushed
/// in order: one walk of the cumulative sum instead of one per edge (the
/// walk is a chain of dependent adds). The sum and the comparisons are
/// those of separate walks, so the results are the same bits.
fn edge_frequencies(
    psd: &[f64],
    range: std::ops::Range<usize>,
    df: f64,
    edges: &[f64],
    range_power: f64,
    out: &mut Vec<f64>,
) {
    let first = out.len();
    out.extend(std::iter::repeat_n(f64::NAN, edges.len()));
    let mut next = 0;
    let mut cumulative = 0.0;
    for k in range {
        cumulative += psd[k];
        while let Some(&edge) = edges.get(next) {
            let target = edge * range_power;
            // A target that is not positive (a power so small that the
            // fraction of it underflows, or NaN) is never reached: NaN, as
            // its own walk gives, and the next edge may still be found.
            if target.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                next += 1;
                continue;
            }
            if cumulative < target || cumulative.is_nan() {
                break;
            }
            out[first + next] = k as f64 * df;
            next += 1;
        }
        if next == edges.len() {
            return;
        }
    }
}

/// Normalised Shannon entropy of the PSD bins `p` (the edge range):
/// q_k = p_k / Σ p, H = −Σ q_k log2 q_k / log2(N) with 0·log 0 = 0 and N
/// the number of bins, so 1 is a flat spectrum and 0 a single line
/// (`antropy.spectral_entropy(normalize=True)` restricted to the range).
/// NaN when the range has fewer than 2 bins or holds no power.
pub fn spectral_entropy(p: &[f64]) -> f64 {
    entropy_of(p, sum(p))
}

/// [`spectral_entropy`] of `p` whose sum is `total`.
fn entropy_of(p: &[f64], total: f64) -> f64 {
    if p.len() < 2 || total <= 0.0 || total.is_nan() {
        return f64::NAN;
    }
    h_sum(p, total) / (p.len() as f64).log2()
}

/// −Σ q log2 q, q = p / total, 8 or 4 bins per instruction where the CPU
/// has AVX-512 or AVX2 with FMA. Every path runs the same operations in
/// the same order: the same bits.
fn h_sum(p: &[f64], total: f64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above, and with it
        // AVX2 (every AVX-512F CPU has it), the features `h_sum_avx512`
        // is compiled for.
        return unsafe { h_sum_avx512(p, total) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above, the
        // features `h_sum_avx2` is compiled for.
        return unsafe { h_sum_avx2(p, total) };
    }
    h_sum_portable(p, total)
}

/// [`h_sum_portable`] four bins per instruction, written out in intrinsics
/// (left to itself LLVM vectorised the loop only 2 lanes wide): lane j of
/// the vector sums is partial sum j, every operation is the portable one
/// (its FMAs included), so the result is the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn h_sum_avx2(p: &[f64], total: f64) -> f64 {
    use std::arch::x86_64::*;
    let inverse = 1.0 / total;
    let chunks = p.chunks_exact(4);
    let rest = chunks.remainder();
    let mut partial = _mm256_setzero_pd();
    let inverse_v = _mm256_set1_pd(inverse);
    let (zero, one) = (_mm256_setzero_pd(), _mm256_set1_pd(1.0));
    for chunk in chunks {
        let four: &[f64; 4] = chunk.try_into().expect("chunks of 4");
        // SAFETY: the pointer reaches exactly the 4 values of `four`.
        let q = _mm256_mul_pd(unsafe { _mm256_loadu_pd(four.as_ptr()) }, inverse_v);
        let positive = _mm256_cmp_pd::<_CMP_GT_OQ>(q, zero);
        let kept = _mm256_blendv_pd(zero, q, positive);
        let argument = _mm256_blendv_pd(one, q, positive);
        let negated = _mm256_xor_pd(kept, _mm256_set1_pd(-0.0));
        partial = _mm256_add_pd(partial, _mm256_mul_pd(negated, log2_avx2(argument)));
    }
    let mut lanes = [0.0; 4];
    // SAFETY: `lanes` holds exactly 4 f64.
    unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), partial) };
    let term = |x: f64| {
        let q = x * inverse;
        let positive = q > 0.0;
        -(if positive { q } else { 0.0 }) * log2(if positive { q } else { 1.0 })
    };
    rest.iter()
        .fold((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]), |h, &x| h + term(x))
}

/// [`h_sum_avx2`] with the logs taken 8 bins per instruction: each
/// 8-bin block's terms are added to the same 4 partial sums as the 4-bin
/// path, low half then high half, so the sums (and bits) are the same; the
/// remaining 0-7 bins' terms are computed in one masked block and added
/// one by one in order, as the scalar tail does.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn h_sum_avx512(p: &[f64], total: f64) -> f64 {
    use std::arch::x86_64::*;
    let inverse = _mm512_set1_pd(1.0 / total);
    let terms = |x: __m512d| entropy_terms_avx512(x, inverse);
    let chunks = p.chunks_exact(8);
    let rest = chunks.remainder();
    let mut partial = _mm256_setzero_pd();
    for chunk in chunks {
        let eight: &[f64; 8] = chunk.try_into().expect("chunks of 8");
        // SAFETY: the pointer reaches exactly the 8 values of `eight`.
        let t = terms(unsafe { _mm512_loadu_pd(eight.as_ptr()) });
        partial = _mm256_add_pd(partial, _mm512_castpd512_pd256(t));
        partial = _mm256_add_pd(partial, _mm512_extractf64x4_pd::<1>(t));
    }
    // The tail: a block of 4 goes to the partial sums, the last 0-3 are
    // added after them, in order.
    let mut padded = [0.0; 8];
    padded[..rest.len()].copy_from_slice(rest);
    // SAFETY: `padded` holds exactly 8 f64.
    let t = terms(unsafe { _mm512_loadu_pd(padded.as_ptr()) });
    finish_h_sum_avx512(partial, t, rest.len())
}

/// `−q·log2 q` per lane, `q = x · inverse`, and 0 where q is not positive
/// (or NaN): the terms of [`h_sum`], operation for operation.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) fn entropy_terms_avx512(
    x: std::arch::x86_64::__m512d,
    inverse: std::arch::x86_64::__m512d,
) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let q = _mm512_mul_pd(x, inverse);
    let positive = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(q, _mm512_setzero_pd());
    let kept = _mm512_maskz_mov_pd(positive, q);
    let argument = _mm512_mask_blend_pd(positive, _mm512_set1_pd(1.0), q);
    let negated = _mm512_castsi512_pd(_mm512_xor_si512(
        _mm512_castpd_si512(kept),
        _mm512_set1_epi64(i64::MIN),
    ));
    _mm512_mul_pd(negated, log2_avx512(argument))
}

/// The entropy sum from the 4 partial sums of the whole 8-bin blocks and
/// the terms `t` of the last block, padded, holding `rest` (< 8) bins: a
/// block of 4 goes to the partial sums, the last 0-3 are added after
/// them, in order (as [`h_sum_avx2`]'s scalar tail).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn finish_h_sum_avx512(
    mut partial: std::arch::x86_64::__m256d,
    t: std::arch::x86_64::__m512d,
    rest: usize,
) -> f64 {
    use std::arch::x86_64::*;
    let mut tail = [0.0; 8];
    // SAFETY: `tail` holds exactly 8 f64.
    unsafe { _mm512_storeu_pd(tail.as_mut_ptr(), t) };
    let singles = if rest >= 4 {
        partial = _mm256_add_pd(partial, _mm512_castpd512_pd256(t));
        &tail[4..rest]
    } else {
        &tail[..rest]
    };
    let mut lanes = [0.0; 4];
    // SAFETY: `lanes` holds exactly 4 f64.
    unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), partial) };
    singles
        .iter()
        .fold((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]), |h, &t| h + t)
}

/// The edge-range features in one pass over its bins `p` (bin `start`
/// first), 8 bins per step: the SEF edges (ascending, positive: the
/// one-walk case of [`edge_frequencies`]), the peak frequency and the
/// spectral entropy, pushed in that order. Each is the same bits as its
/// own walk: the cumulative sum is the same chain of scalar adds in bin
/// order (it now runs beside the entropy's vector work instead of alone,
/// where its latency was the cost), the entropy adds the same terms to
/// the same partial sums as [`h_sum_avx512`], and the peak is the first
/// bin holding the largest value, as [`peak_frequency`] finds it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn range_features_avx512(
    p: &[f64],
    start: usize,
    df: f64,
    edges: &[f64],
    power: f64,
    out: &mut Vec<f64>,
) {
    use std::arch::x86_64::*;
    let first = out.len();
    out.extend(std::iter::repeat_n(f64::NAN, edges.len()));
    let inverse = _mm512_set1_pd(1.0 / power);
    let terms = |x: __m512d| entropy_terms_avx512(x, inverse);
    // Edges still to find; the walk stops at the first one not reached
    // (a target that is not positive is never reached).
    let mut next = 0;
    let mut cumulative = 0.0;
    let mut running = [0.0; 8];
    let mut walk = |block: &[f64], at: usize, out: &mut Vec<f64>| {
        if next == edges.len() {
            return;
        }
        for (r, &v) in running.iter_mut().zip(block) {
            cumulative += v;
            *r = cumulative;
        }
        // SAFETY: `running` holds exactly 8 f64.
        let sums = unsafe { _mm512_loadu_pd(running.as_ptr()) };
        let valid: __mmask8 = if block.len() >= 8 {
            0xff
        } else {
            (1u8 << block.len()) - 1
        };
        while let Some(&edge) = edges.get(next) {
            let target = edge * power;
            // A target that is not positive (or NaN) is never reached: NaN,
            // and the next edge may still be found (as in `edge_frequencies`).
            if target.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                next += 1;
                continue;
            }
            let reached = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(sums, _mm512_set1_pd(target)) & valid;
            if reached == 0 {
                break;
            }
            out[first + next] = (start + at + reached.trailing_zeros() as usize) as f64 * df;
            next += 1;
        }
    };
    let mut best = _mm512_set1_pd(f64::NEG_INFINITY);
    let mut partial = _mm256_setzero_pd();
    let chunks = p.chunks_exact(8);
    let rest = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        let eight: &[f64; 8] = chunk.try_into().expect("chunks of 8");
        // SAFETY: the pointer reaches exactly the 8 values of `eight`.
        let x = unsafe { _mm512_loadu_pd(eight.as_ptr()) };
        let t = terms(x);
        partial = _mm256_add_pd(partial, _mm512_castpd512_pd256(t));
        partial = _mm256_add_pd(partial, _mm512_extractf64x4_pd::<1>(t));
        // A NaN bin leaves the maximum as it was (the second operand).
        best = _mm512_max_pd(x, best);
        walk(chunk, 8 * c, out);
    }
    let mut padded = [0.0; 8];
    padded[..rest.len()].copy_from_slice(rest);
    // SAFETY: `padded` holds exactly 8 f64.
    let x = unsafe { _mm512_loadu_pd(padded.as_ptr()) };
    let valid: __mmask8 = ((1u16 << rest.len()) - 1) as u8;
    best = _mm512_mask_max_pd(best, valid, x, best);
    walk(rest, p.len() - rest.len(), out);
    let h = finish_h_sum_avx512(partial, terms(x), rest.len());
    // The peak: the first bin equal to the largest (the sequential search
    // keeps a NaN first bin, which nothing is greater than).
    let peak = match p.first() {
        None => f64::NAN,
        Some(head) if head.is_nan() => start as f64 * df,
        Some(_) => {
            let largest = _mm512_reduce_max_pd(best);
            let at = p.iter().position(|&v| v == largest).unwrap_or(0);
            (start + at) as f64 * df
        }
    };
    out.push(peak);
    out.push(if p.len() < 2 || power <= 0.0 || power.is_nan() {
        f64::NAN
    } else {
        h / (p.len() as f64).log2()
    });
}

/// [`log2`] on 8 lanes, operation for operation: `getexp` and `getmant`
/// split x exactly as [`log2`]'s bit operations do (subnormals included), and
/// the table is two registers indexed by `permutex2var`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn log2_avx512(x: std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let c = |v: f64| _mm512_set1_pd(v);
    let x = _mm512_min_pd(x, c(f64::MAX));
    let e = _mm512_getexp_pd(x);
    let m = _mm512_getmant_pd::<_MM_MANT_NORM_1_2, _MM_MANT_SIGN_SRC>(x);
    let fold = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(m, c(LOG2_FOLD));
    let m = _mm512_mask_mul_pd(m, fold, m, c(0.5));
    let e = _mm512_mask_add_pd(e, fold, e, c(1.0));
    // permutex2var reads the low 4 bits of each index.
    let j = _mm512_srli_epi64::<48>(_mm512_add_epi64(
        _mm512_castpd_si512(m),
        _mm512_set1_epi64(LOG2_ROUND_INDEX as i64),
    ));
    let table = |t: &[f64; 16]| {
        // SAFETY: each load reads 8 of the table's 16 f64.
        let (low, high) = unsafe { (_mm512_loadu_pd(t.as_ptr()), _mm512_loadu_pd(t[8..].as_ptr())) };
        _mm512_permutex2var_pd(low, j, high)
    };
    let r = _mm512_fmadd_pd(m, table(&LOG2_INVC), c(-1.0));
    let mut p = c(LOG2_P[7]);
    for &k in LOG2_P[..7].iter().rev() {
        p = _mm512_fmadd_pd(p, r, c(k));
    }
    let ln = _mm512_fmadd_pd(_mm512_mul_pd(r, r), p, r);
    _mm512_add_pd(
        e,
        _mm512_fmadd_pd(ln, c(std::f64::consts::LOG2_E), table(&LOG2_LOGC)),
    )
}

/// [`log2`] on 4 lanes, operation for operation.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn log2_avx2(x: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    let c = |v: f64| _mm256_set1_pd(v);
    let bits_of = |v: u64| _mm256_set1_epi64x(v as i64);
    let x = _mm256_min_pd(x, c(f64::MAX));
    let subnormal = _mm256_cmp_pd::<_CMP_LT_OQ>(x, c(f64::MIN_POSITIVE));
    let x = _mm256_blendv_pd(x, _mm256_mul_pd(x, c(LOG2_TWO_54)), subnormal);
    let offset = _mm256_blendv_pd(c(1023.0), c(1023.0 + 54.0), subnormal);
    let bits = _mm256_add_epi64(_mm256_castpd_si256(x), bits_of(LOG2_ONE_BITS - LOG2_LOW_BITS));
    let exponent = _mm256_or_si256(bits_of(LOG2_TWO_52_BITS), _mm256_srli_epi64::<52>(bits));
    let e = _mm256_sub_pd(
        _mm256_sub_pd(_mm256_castsi256_pd(exponent), c(LOG2_TWO_52)),
        offset,
    );
    let m_bits = _mm256_add_epi64(
        _mm256_and_si256(bits, bits_of(LOG2_MANTISSA)),
        bits_of(LOG2_LOW_BITS),
    );
    let j = _mm256_and_si256(
        _mm256_srli_epi64::<48>(_mm256_add_epi64(m_bits, bits_of(LOG2_ROUND_INDEX))),
        bits_of(15),
    );
    // SAFETY: every index is in 0..16, within each 16-entry table.
    let (invc, logc) = unsafe {
        (
            _mm256_i64gather_pd::<8>(LOG2_INVC.as_ptr(), j),
            _mm256_i64gather_pd::<8>(LOG2_LOGC.as_ptr(), j),
        )
    };
    let r = _mm256_fmadd_pd(_mm256_castsi256_pd(m_bits), invc, c(-1.0));
    let mut p = c(LOG2_P[7]);
    for &k in LOG2_P[..7].iter().rev() {
        p = _mm256_fmadd_pd(p, r, c(k));
    }
    let ln = _mm256_fmadd_pd(_mm256_mul_pd(r, r), p, r);
    _mm256_add_pd(e, _mm256_fmadd_pd(ln, c(std::f64::consts::LOG2_E), logc))
}

#[inline(always)]
fn h_sum_portable(p: &[f64], total: f64) -> f64 {
    // Branch-free: q <= 0 (or NaN) contributes 0 · log2(1). Four partial
    // sums, the ones the vector paths keep in their lanes.
    // One division per window, not per bin.
    let inverse = 1.0 / total;
    let term = |x: f64| {
        let q = x * inverse;
        let positive = q > 0.0;
        -(if positive { q } else { 0.0 }) * log2(if positive { q } else { 1.0 })
    };
    let mut partial = [0.0; 4];
    let chunks = p.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (sum, &x) in partial.iter_mut().zip(chunk) {
            *sum += term(x);
        }
    }
    rest.iter()
        .fold((partial[0] + partial[1]) + (partial[2] + partial[3]), |h, &x| {
            h + term(x)
        })
}

// The tables and polynomial of `scripts/make_log2_tables.py`.
const LOG2_INVC: [f64; 16] = [
    1.0,
    0.941_176_470_588_235_3,
    0.888_888_888_888_888_8,
    0.842_105_263_157_894_7,
    0.8,
    0.761_904_761_904_761_9,
    0.727_272_727_272_727_3,
    0.695_652_173_913_043_5,
    0.666_666_666_666_666_6,
    0.64,
    0.615_384_615_384_615_4,
    0.592_592_592_592_592_6,
    0.571_428_571_428_571_4,
    0.551_724_137_931_034_5,
    0.533_333_333_333_333_3,
    0.516_129_032_258_064_5,
];
const LOG2_LOGC: [f64; 16] = [
    0.0,
    0.087_462_841_250_339_43,
    0.169_925_001_442_312_46,
    0.247_927_513_443_585_57,
    0.321_928_094_887_362_3,
    0.392_317_422_778_760_36,
    0.459_431_618_637_297_2,
    0.523_561_956_057_013,
    0.584_962_500_721_156_3,
    0.643_856_189_774_724_7,
    0.700_439_718_141_092_1,
    0.754_887_502_163_468_7,
    0.807_354_922_057_604_2,
    0.857_980_995_127_572_1,
    0.906_890_595_608_518_6,
    0.954_196_310_386_875_2,
];
const LOG2_P: [f64; 8] = [
    -0.499_999_999_999_999_3,
    0.333_333_333_333_332_7,
    -0.250_000_000_023_320_4,
    0.200_000_000_021_200_9,
    -0.166_666_547_282_562_6,
    0.142_857_034_323_692_23,
    -0.125_195_531_266_766_3,
    0.111_288_869_870_067_53,
];
/// m at or above this is halved (and e raised): m lies in [1 − 1/64, 2 − 1/32).
const LOG2_FOLD: f64 = 1.968_75;
/// The bits of 1 − 1/64, the low end of m.
const LOG2_LOW_BITS: u64 = 0x3fef_8000_0000_0000;
const LOG2_ONE_BITS: u64 = 0x3ff0_0000_0000_0000;
const LOG2_MANTISSA: u64 = 0x000f_ffff_ffff_ffff;
/// Half an index step in m's bits: `(bits + this) >> 48`, mod 16, is the
/// nearest j of c_j = 1 + j/16 (0 for m below 1).
const LOG2_ROUND_INDEX: u64 = 1 << 47;
const LOG2_TWO_54: f64 = 18_014_398_509_481_984.0;
// 2^52 as f64: OR-ing a 52-bit integer into its mantissa and subtracting
// 2^52 converts it exactly without an i64 -> f64 convert (which AVX2 lacks).
const LOG2_TWO_52_BITS: u64 = 0x4330_0000_0000_0000;
const LOG2_TWO_52: f64 = 4_503_599_627_370_496.0;

/// log2(x) for x > 0 within an ulp or two of `f64::log2` (exact at powers of
/// two; +∞ is taken as `f64::MAX`), with plain arithmetic and bit operations
/// (no libm call, no division) so that loops over many bins vectorise: the
/// spectral entropy takes one log per bin.
///
/// x = 2^e · m with m in [1 − 1/64, 2 − 1/32) (subnormal x first scaled by
/// 2^54); c = 1 + j/16 the nearest of 16 table points, r = m/c − 1 by one
/// FMA with the tabulated 1/c (|r| ≤ 1/32), ln(1 + r) = r + r²·P(r) with a
/// degree-7 polynomial, and log2 x = e + (log2 c + ln(1 + r)·log2 e).
/// Every path (this one, AVX2, AVX-512) runs the same roundings, FMA
/// included, so they give the same bits.
#[inline(always)]
fn log2(x: f64) -> f64 {
    let x = x.min(f64::MAX);
    let subnormal = x < f64::MIN_POSITIVE;
    let x = if subnormal { x * LOG2_TWO_54 } else { x };
    let offset = if subnormal { 1023.0 + 54.0 } else { 1023.0 };
    // Shift so that the exponent field rounds m into [1 − 1/64, 2 − 1/32).
    let bits = x.to_bits().wrapping_add(LOG2_ONE_BITS - LOG2_LOW_BITS);
    let e = f64::from_bits(LOG2_TWO_52_BITS | (bits >> 52)) - LOG2_TWO_52 - offset;
    let m_bits = (bits & LOG2_MANTISSA) + LOG2_LOW_BITS;
    let j = ((m_bits + LOG2_ROUND_INDEX) >> 48) as usize & 15;
    let r = f64::from_bits(m_bits).mul_add(LOG2_INVC[j], -1.0);
    let p = LOG2_P[..7].iter().rev().fold(LOG2_P[7], |p, &k| p.mul_add(r, k));
    let ln = (r * r).mul_add(p, r);
    e + ln.mul_add(std::f64::consts::LOG2_E, LOG2_LOGC[j])
}

fn peak_frequency(psd: &[f64], range: std::ops::Range<usize>, df: f64) -> f64 {
    let bins = &psd[range.clone()];
    let Some(&head) = bins.first() else {
        return f64::NAN;
    };
    // First index of the largest value (strictly greater wins, as before).
    let (mut best, mut at) = (head, 0);
    for (i, &p) in bins.iter().enumerate().skip(1) {
        if p > best {
            best = p;
            at = i;
        }
    }
    (range.start + at) as f64 * df
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_power_lands_in_its_band_and_parseval_holds() {
        let fs = 128.0;
        let x: Vec<f64> = (0..256)
            .map(|i| 3.0 * (2.0 * std::f64::consts::PI * 10.0 * i as f64 / fs).sin())
            .collect();
        let mut welch = Welch::new(128).unwrap();
        let psd = welch.psd(&x, fs).to_vec();
        let features = SpectralFeatures::new(Band::eeg_defaults(), None).unwrap();
        let mut values = Vec::new();
        features.compute(&psd, fs / 128.0, &mut values);
        // Sine power A²/2 = 4.5; Hann leakage stays within 9–11 Hz.
        assert!((values[2] - 4.5).abs() < 1e-9, "alpha {}", values[2]);
        assert!((values[7] - 1.0).abs() < 1e-9);
        assert_eq!(values[values.len() - 2], 10.0, "peak");
        // Hann leakage spreads the line over 3 of 49 bins (1-50 Hz).
        let entropy = values[values.len() - 1];
        assert!(entropy > 0.0 && entropy < 0.3, "spectral entropy {entropy}");
        assert_eq!(values[11], 10.0, "sef50");
    }

    #[test]
    fn spectral_entropy_is_one_for_flat_and_zero_for_a_line() {
        assert!((spectral_entropy(&[2.0; 16]) - 1.0).abs() < 1e-15);
        let mut line = [0.0; 16];
        line[3] = 5.0;
        assert_eq!(spectral_entropy(&line), 0.0);
        // Two equal lines of 4 bins: log2(2) / log2(4) = 0.5.
        assert!((spectral_entropy(&[1.0, 0.0, 1.0, 0.0]) - 0.5).abs() < 1e-15);
        assert!(spectral_entropy(&[0.0; 4]).is_nan());
    }

    #[test]
    fn bin_ranges_follow_the_comparison_rule() {
        for (df, low, high) in [
            (1.0, 4.0, 8.0),
            (0.5, 1.0, 1.2),
            (128.0 / 200.0, 13.0, 30.0),
            (1.0, 70.0, 90.0),
        ] {
            let bins = 65;
            let expected: Vec<usize> = (0..bins)
                .filter(|&k| k as f64 * df >= low && (k as f64 * df) < high)
                .collect();
            let got: Vec<usize> = bins_in(bins, df, low, high).collect();
            assert_eq!(got, expected, "df {df} [{low}, {high})");
        }
    }

    #[test]
    fn cached_segments_give_the_same_bits_as_a_fresh_estimate() {
        let x: Vec<f64> = (0..2048)
            .map(|i| ((i * 7919) % 1000) as f64 * 0.01 - 5.0)
            .collect();
        // 1 to 4 segments (looked up together, summed in one pass) and 5
        // and 9 (added one by one), hops shorter than, equal to and longer
        // than the segment step.
        for window in [128, 192, 256, 320, 384, 640] {
            for hop in [16, 32, 64, 96] {
                let (mut cached, mut fresh) = (Welch::new(128).unwrap(), Welch::new(128).unwrap());
                for start in (0..=x.len() - window).step_by(hop) {
                    let w = &x[start..start + window];
                    let ours = cached.psd_at(w, 128.0, start as u64).to_vec();
                    assert_eq!(
                        ours,
                        fresh.psd(w, 128.0),
                        "window {window}, hop {hop}, at {start}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_avx2_and_baseline_builds_give_the_same_psd_bits() {
        let x: Vec<f64> = (0..1024)
            .map(|i| ((i * 7919) % 1000) as f64 * 0.01 - 5.0 + (i as f64 * 0.1).sin())
            .collect();
        for (window, segment) in [(256, 128), (1024, 128), (128, 128), (300, 64), (129, 128)] {
            let (mut dispatched, mut baseline) = (Welch::new(segment).unwrap(), Welch::new(segment).unwrap());
            for start in (0..=x.len() - window).step_by(37) {
                let w = &x[start..start + window];
                let ours = dispatched.psd_at(w, 128.0, start as u64).to_vec();
                let mut theirs = vec![0.0; baseline.bins()];
                baseline.psd_at_inline(w, 128.0, start as u64, &mut theirs);
                let bits = |v: &[f64]| v.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&ours), bits(&theirs), "window {window} at {start}");
            }
        }
    }

    #[test]
    fn log2_agrees_with_std() {
        let mut worst: f64 = 0.0;
        // From deep in the subnormals (where a ×1.37 step still moves x).
        let mut x = 1e-320;
        while x < 1e300 {
            for y in [x, x * 1.000_1, x * std::f64::consts::SQRT_2, x * 1.9] {
                let (ours, std) = (log2(y), y.log2());
                worst = worst.max((ours - std).abs() / std.abs().max(1.0));
            }
            x *= 1.37;
        }
        assert!(worst < 4e-16, "worst error {worst:e}");
        // Near 1, where log2 x is small, relative to the value itself.
        let mut worst_near_one: f64 = 0.0;
        for i in 1..20_000 {
            let d = i as f64 * 1.3e-6;
            for y in [1.0 + d, 1.0 - d / 2.0, 1.0 + d * d] {
                worst_near_one = worst_near_one.max(((log2(y) - y.log2()) / y.log2()).abs());
            }
        }
        assert!(
            worst_near_one < 4e-16,
            "worst relative error near 1 {worst_near_one:e}"
        );
        for k in -1074..1024 {
            // Built from bits: powi underflows to 0 in the subnormals.
            let x = if k < -1022 {
                f64::from_bits(1 << (k + 1074))
            } else {
                f64::from_bits(((k + 1023) as u64) << 52)
            };
            assert_eq!(log2(x), k as f64, "2^{k}");
        }
    }

    #[test]
    fn log2_is_the_same_bits_on_every_path() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut xs: Vec<f64> = (0..20_000)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Any positive finite bits, and ones near 1.
                match i % 3 {
                    0 => f64::from_bits(state >> 1).min(f64::MAX),
                    1 => 1.0 + ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) / 8.0,
                    _ => f64::from_bits((state >> 12) | 0x3ff0_0000_0000_0000),
                }
            })
            .filter(|x| x.is_finite() && *x > 0.0)
            .collect();
        // The fold, the index rounding points, the ends of the range.
        for j in 0..=32 {
            let edge = 1.0 + j as f64 / 32.0;
            xs.extend([edge, f64::from_bits(edge.to_bits() - 1), edge * 0.5]);
        }
        xs.extend([f64::MIN_POSITIVE, 5e-324, f64::MAX, f64::INFINITY]);
        #[cfg(target_arch = "x86_64")]
        for four in xs.chunks(4) {
            let mut input = [1.0; 8];
            input[..four.len()].copy_from_slice(four);
            let ours: Vec<u64> = input.iter().map(|&x| log2(x).to_bits()).collect();
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                use std::arch::x86_64::*;
                let mut out = [0.0; 4];
                // SAFETY: AVX2 and FMA checked just above; the loads and
                // stores reach 4 f64 of 8-element arrays.
                unsafe { _mm256_storeu_pd(out.as_mut_ptr(), log2_avx2(_mm256_loadu_pd(input.as_ptr()))) };
                let simd: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
                assert_eq!(simd, ours[..4], "AVX2 at {input:?}");
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                use std::arch::x86_64::*;
                let mut out = [0.0; 8];
                // SAFETY: AVX-512F checked just above; 8-element arrays.
                unsafe { _mm512_storeu_pd(out.as_mut_ptr(), log2_avx512(_mm512_loadu_pd(input.as_ptr()))) };
                let simd: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
                assert_eq!(simd, ours, "AVX-512 at {input:?}");
            }
        }
    }

    #[test]
    fn entropy_sums_agree_bitwise_across_paths() {
        // Zeros, subnormals, huge and ordinary values, lengths with and
        // without a remainder.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in [0, 1, 3, 4, 5, 49, 64, 65, 129] {
            let p: Vec<f64> = (0..len)
                .map(|i| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    match i % 7 {
                        0 => 0.0,
                        1 => f64::from_bits(state >> 13),
                        2 => 1e-310 * (state % 1000) as f64,
                        _ => (state >> 11) as f64 * 1e-12,
                    }
                })
                .collect();
            let total = sum(&p).max(f64::MIN_POSITIVE);
            let portable = h_sum_portable(&p, total);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: AVX2 and FMA checked just above.
                let simd = unsafe { h_sum_avx2(&p, total) };
                assert_eq!(simd.to_bits(), portable.to_bits(), "{len} bins");
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F (and with it AVX2) checked just above.
                let simd = unsafe { h_sum_avx512(&p, total) };
                assert_eq!(simd.to_bits(), portable.to_bits(), "{len} bins, AVX-512");
            }
            assert_eq!(h_sum(&p, total).to_bits(), portable.to_bits());
        }
    }

    #[test]
    fn fused_range_features_agree_bitwise_with_separate_walks() {
        let mut state = 0x51_7cc1_b727_220a_u64;
        let mut random = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let band_sets = [
            Band::eeg_defaults(),
            vec![Band::new("a", 0.0, 3.0), Band::new("b", 3.0, 64.0)],
            vec![Band::new("narrow", 10.0, 11.0)],
        ];
        for trial in 0..300 {
            let bins = [65, 33, 129, 2, 9][trial % 5];
            let psd: Vec<f64> = (0..bins)
                .map(|_| match random() % 23 {
                    0 => 0.0,
                    1 if trial % 3 == 0 => f64::NAN,
                    2 => 1e-310,
                    5 if trial % 11 == 0 => 5e-324,
                    3 => -0.0,
                    4 => 7.5,
                    _ => (random() >> 11) as f64 * 1e-9,
                })
                .collect();
            let bands = band_sets[trial % band_sets.len()].clone();
            let edge = [None, Some((0.5, 40.0)), Some((3.0, 3.5)), Some((90.0, 99.0))][trial % 4];
            let mut features = SpectralFeatures::new(bands, edge).unwrap();
            if trial % 7 == 3 {
                features.edges = vec![0.05, 0.5, 0.5, 0.9, 0.95, 1.0];
            }
            let plan = features.plan(bins, 1.0);
            let (mut fused, mut separate) = (Vec::new(), Vec::new());
            plan.compute_with(&psd, &mut fused, true);
            plan.compute_with(&psd, &mut separate, false);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused), bits(&separate), "trial {trial}: {psd:?}");
        }
        // A range holding one subnormal step of power: SEF50's target
        // underflows to 0 (never reached), SEF90's and SEF95's do not.
        let mut psd = vec![0.0; 65];
        psd[20] = 5e-324;
        let plan = SpectralFeatures::new(Band::eeg_defaults(), Some((0.5, 40.0)))
            .unwrap()
            .plan(65, 1.0);
        let (mut fused, mut separate) = (Vec::new(), Vec::new());
        plan.compute_with(&psd, &mut fused, true);
        plan.compute_with(&psd, &mut separate, false);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fused), bits(&separate));
        // SEF90, SEF95 and the peak at bin 20 (SEF50 is NaN).
        assert_eq!(fused.iter().filter(|v| **v == 20.0).count(), 3, "{fused:?}");
    }

    #[test]
    fn one_walk_finds_the_same_edges_as_one_walk_per_edge() {
        let edges = [0.05, 0.5, 0.5, 0.9, 0.95, 1.0];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for trial in 0..200 {
            let psd: Vec<f64> = (0..65)
                .map(|i| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    if (i + trial) % 5 == 0 {
                        0.0
                    } else {
                        (state >> 11) as f64 / (1u64 << 53) as f64
                    }
                })
                .collect();
            let range = (trial % 7)..(65 - trial % 11);
            // 5e-324 (one subnormal step): half of it rounds to 0, 0.9 of it
            // does not, so SEF50's target is 0 and SEF90's is not.
            for power in [sum(&psd[range.clone()]), 0.0, f64::NAN, 1e300, 5e-324] {
                let mut one = Vec::new();
                edge_frequencies(&psd, range.clone(), 0.5, &edges, power, &mut one);
                let each: Vec<f64> = edges
                    .iter()
                    .map(|&e| edge_frequency(&psd, range.clone(), 0.5, e * power))
                    .collect();
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&one), bits(&each), "trial {trial}, power {power}");
            }
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Welch::new(1).is_err());
        assert!(SpectralFeatures::new(vec![Band::new("x", 4.0, 4.0)], None).is_err());
        assert!(SpectralFeatures::new(vec![], None).is_err());
    }
}
