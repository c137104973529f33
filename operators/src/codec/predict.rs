//! Linear predictors: FLAC's fixed polynomials (orders 0–4) and quantised LPC.
//!
//! Both are one integer form, `prediction = (Σ coef[j]·x[n−1−j]) >> shift`
//! in wrapping i64 arithmetic, so the decoder has a single exact loop and
//! any residual, however large, round-trips (wrapping is a bijection).

use std::ops::Range;

use super::rice::zigzag;

pub(crate) const MAX_LPC_ORDER: usize = 32;
pub(crate) const MAX_FIXED_ORDER: usize = 4;
/// Coefficient precision in bits, sign included.
pub(crate) const MAX_PRECISION: u32 = 16;
pub(crate) const MAX_SHIFT: u32 = 31;

/// FLAC's fixed predictors: differences of order 0–4 as coefficients.
const FIXED_COEFS: [&[i64]; MAX_FIXED_ORDER + 1] = [&[], &[1], &[2, -1], &[3, -3, 1], &[4, -6, 4, -1]];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PredictorKind {
    Fixed,
    Lpc,
}

/// A predictor as stored: coefficients for lags 1..=order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Predictor {
    pub kind: PredictorKind,
    pub order: usize,
    /// bits per stored coefficient (LPC only)
    pub precision: u32,
    pub shift: u32,
    pub coefs: [i64; MAX_LPC_ORDER],
}

impl Predictor {
    pub(crate) fn fixed(order: usize) -> Self {
        let mut coefs = [0; MAX_LPC_ORDER];
        coefs[..order].copy_from_slice(FIXED_COEFS[order]);
        Predictor {
            kind: PredictorKind::Fixed,
            order,
            precision: 0,
            shift: 0,
            coefs,
        }
    }

    #[inline]
    fn predict(&self, history: &[i32]) -> i64 {
        // history[k] is x[n−order+k], so lag j+1 is history[order−1−j].
        let lags = history.iter().rev();
        let sum = (self.coefs[..self.order].iter().zip(lags)).fold(0i64, |sum, (&coef, &x)| {
            sum.wrapping_add(coef.wrapping_mul(i64::from(x)))
        });
        sum >> self.shift
    }

    /// Appends the residuals of one gap-free segment past its warm-up (the
    /// reference form; the encoder uses [`Self::zigzag_residuals`]).
    #[cfg(test)]
    pub(crate) fn residuals(&self, segment: &[i32], out: &mut Vec<i64>) {
        if segment.len() <= self.order {
            return;
        }
        match self.kind {
            PredictorKind::Fixed => fixed_residuals(self.order, segment, out),
            PredictorKind::Lpc => {
                out.extend(segment.windows(self.order + 1).map(|w| {
                    let target = i64::from(w[self.order]);
                    target.wrapping_sub(self.predict(&w[..self.order]))
                }));
            }
        }
    }

    /// Rebuilds a segment in place: its warm-up is already there, the rest
    /// comes from `residuals`. Fails when a sample leaves the i32 range.
    #[inline(always)]
    pub(crate) fn restore(&self, segment: &mut [i32], residuals: &[i64]) -> Result<(), ()> {
        match self.order {
            0 => self.restore_order::<0>(segment, residuals),
            1 => self.restore_order::<1>(segment, residuals),
            2 => self.restore_order::<2>(segment, residuals),
            3 => self.restore_order::<3>(segment, residuals),
            4 => self.restore_order::<4>(segment, residuals),
            5 => self.restore_order::<5>(segment, residuals),
            6 => self.restore_order::<6>(segment, residuals),
            7 => self.restore_order::<7>(segment, residuals),
            8 => self.restore_order::<8>(segment, residuals),
            9 => self.restore_order::<9>(segment, residuals),
            10 => self.restore_order::<10>(segment, residuals),
            11 => self.restore_order::<11>(segment, residuals),
            12 => self.restore_order::<12>(segment, residuals),
            _ => self.restore_any(segment, residuals),
        }
    }

    /// [`Self::restore`] for order `N`: coefficients in registers, the
    /// lag loop unrolled (the decoder's hot loop). The last `N` samples are
    /// carried in `history`, not re-read from `segment`: a load of samples
    /// stored one iteration earlier (a vector load over a scalar store)
    /// stalls on store forwarding, and made this loop 3× slower.
    #[inline(always)]
    fn restore_order<const N: usize>(&self, segment: &mut [i32], residuals: &[i64]) -> Result<(), ()> {
        if segment.len() <= N {
            return Ok(());
        }
        let coefs: [i64; N] = std::array::from_fn(|j| self.coefs[j]);
        // history[j] is lag j + 1 of the next sample.
        let mut history: [i64; N] = std::array::from_fn(|j| i64::from(segment[N - 1 - j]));
        for (x, &residual) in segment[N..].iter_mut().zip(residuals) {
            let mut sum = 0i64;
            for j in 0..N {
                sum = sum.wrapping_add(coefs[j].wrapping_mul(history[j]));
            }
            let value = (sum >> self.shift).wrapping_add(residual);
            *x = i32::try_from(value).map_err(|_| ())?;
            for j in (1..N).rev() {
                history[j] = history[j - 1];
            }
            if N > 0 {
                history[0] = value;
            }
        }
        Ok(())
    }

    fn restore_any(&self, segment: &mut [i32], residuals: &[i64]) -> Result<(), ()> {
        for (n, &residual) in (self.order..segment.len()).zip(residuals) {
            let value = self.predict(&segment[n - self.order..n]).wrapping_add(residual);
            segment[n] = i32::try_from(value).map_err(|_| ())?;
        }
        Ok(())
    }
}

impl Predictor {
    /// Writes the zigzagged residuals of one gap-free segment past its
    /// warm-up into `out` (one per sample past the warm-up): the encoder's
    /// hot loop, equal to zigzagging [`Self::residuals`].
    ///
    /// Why this is exact without wrapping: samples are i32 and coefficients
    /// fit in `MAX_PRECISION` (16) bits, so each product is below 2^46 in
    /// magnitude and a sum of at most 32 of them below 2^51; the shifted
    /// prediction and `target − prediction` are then far inside i64, where
    /// wrapping and plain arithmetic agree. The loops are specialised per
    /// order so the coefficients sit in registers and LLVM can unroll them.
    /// `width` bounds the samples: every zigzagged sample is below 2^width
    /// (it picks the i32 loop of [`lpc_zigzag_windows`] when that is exact).
    #[inline(always)]
    pub(crate) fn zigzag_residuals(&self, segment: &[i32], width: u32, out: &mut [u64]) {
        if segment.len() <= self.order {
            return;
        }
        match self.kind {
            PredictorKind::Fixed => fixed_zigzag_residuals(self.order, segment, out),
            PredictorKind::Lpc => match self.order {
                1 => self.lpc_zigzag::<1>(segment, width, out),
                2 => self.lpc_zigzag::<2>(segment, width, out),
                3 => self.lpc_zigzag::<3>(segment, width, out),
                4 => self.lpc_zigzag::<4>(segment, width, out),
                5 => self.lpc_zigzag::<5>(segment, width, out),
                6 => self.lpc_zigzag::<6>(segment, width, out),
                7 => self.lpc_zigzag::<7>(segment, width, out),
                8 => self.lpc_zigzag::<8>(segment, width, out),
                9 => self.lpc_zigzag::<9>(segment, width, out),
                10 => self.lpc_zigzag::<10>(segment, width, out),
                11 => self.lpc_zigzag::<11>(segment, width, out),
                12 => self.lpc_zigzag::<12>(segment, width, out),
                _ => self.lpc_zigzag_any(segment, out),
            },
        }
    }

    /// LPC of exactly order `N`.
    #[inline(always)]
    fn lpc_zigzag<const N: usize>(&self, segment: &[i32], width: u32, out: &mut [u64]) {
        // Coefficients fit in 16 bits: as i32 the products are 32×32→64 bits.
        let coefs: [i32; N] = std::array::from_fn(|j| self.coefs[j] as i32);
        // |sample| ≤ 2^(width−1) (its zigzag is below 2^width), so every
        // prediction sum is at most Σ|coef| · 2^(width−1) in magnitude.
        let coef_sum: u64 = coefs.iter().map(|c| u64::from(c.unsigned_abs())).sum();
        let bound = coef_sum << width.saturating_sub(1).min(32);
        if bound < 1 << 30 {
            lpc_zigzag_windows::<N, i32>(&coefs, self.shift, segment, out);
        } else {
            lpc_zigzag_windows::<N, i64>(&coefs, self.shift, segment, out);
        }
    }

    /// Orders above 12 (not the default): one loop over the runtime order.
    fn lpc_zigzag_any(&self, segment: &[i32], out: &mut [u64]) {
        let coefs = &self.coefs[..self.order];
        for (r, w) in out.iter_mut().zip(segment.windows(self.order + 1)) {
            let lags = w[..self.order].iter().rev();
            let sum: i64 = coefs.iter().zip(lags).map(|(&c, &x)| c * i64::from(x)).sum();
            *r = zigzag(i64::from(w[self.order]) - (sum >> self.shift));
        }
    }
}

/// Integer lanes for [`lpc_zigzag_windows`]: i64 always exact, i32 (twice
/// the lanes per vector, `vpmulld`) when the caller has bounded the sums.
trait Lane: Copy + Default + std::ops::AddAssign {
    fn from_i32(v: i32) -> Self;
    fn mul(self, other: Self) -> Self;
    /// zigzag(target − (sum >> shift)), as the i64 [`zigzag`] gives it.
    fn zigzag_residual(target: Self, sum: Self, shift: u32) -> u64;
}

impl Lane for i64 {
    #[inline(always)]
    fn from_i32(v: i32) -> Self {
        i64::from(v)
    }
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        self * other
    }
    #[inline(always)]
    fn zigzag_residual(target: Self, sum: Self, shift: u32) -> u64 {
        zigzag(target - (sum >> shift))
    }
}

impl Lane for i32 {
    #[inline(always)]
    fn from_i32(v: i32) -> Self {
        v
    }
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        self * other
    }
    #[inline(always)]
    fn zigzag_residual(target: Self, sum: Self, shift: u32) -> u64 {
        // |target| < 2^30 and |sum >> shift| < 2^30 (the caller's bound), so
        // the residual r fits in i32 and its zigzag, below 2^32, is the i64 one.
        let r = target - (sum >> shift.min(31));
        u64::from(((r as u32) << 1) ^ ((r >> 31) as u32))
    }
}

/// Zigzagged residuals of an order-`N` LPC over `segment` (longer than `N`).
///
/// Sixteen targets at a time (measured ~5 % faster than eight), lag by
/// lag: the inner loop is then over independent outputs, which LLVM turns
/// into vector multiplies: of
/// sign-extended i32s into i64 lanes (`vpmuldq`, four per AVX2 vector), or,
/// with `T = i32`, of i32 lanes (`vpmulld`, eight per vector). The i32 loop
/// is exact only when the caller has checked that every prediction sum
/// Σ coef·sample is below 2^30 in magnitude (samples below 2^30 too): then
/// no product, partial sum or residual leaves i32 and it equals the i64 loop.
#[inline(always)]
fn lpc_zigzag_windows<const N: usize, T: Lane>(
    coefs: &[i32; N],
    shift: u32,
    segment: &[i32],
    out: &mut [u64],
) {
    const B: usize = 16;
    let targets = segment.len() - N;
    let out = &mut out[..targets];
    let coefs: [T; N] = coefs.map(T::from_i32);
    let mut n = 0;
    while n + B <= targets {
        // out[n + i] is the residual of segment[N + n + i], whose lag j+1 is
        // segment[N + n + i − 1 − j].
        let mut acc = [T::default(); B];
        for j in 0..N {
            let c = coefs[j];
            let lagged = &segment[N + n - 1 - j..][..B];
            for i in 0..B {
                acc[i] += c.mul(T::from_i32(lagged[i]));
            }
        }
        let target = &segment[N + n..][..B];
        let residuals = &mut out[n..n + B];
        for i in 0..B {
            residuals[i] = T::zigzag_residual(T::from_i32(target[i]), acc[i], shift);
        }
        n += B;
    }
    for (r, w) in out[n..].iter_mut().zip(segment[n..].windows(N + 1)) {
        // w[N − 1 − j] is lag j+1 of the target w[N].
        let mut sum = T::default();
        for j in 0..N {
            sum += coefs[j].mul(T::from_i32(w[N - 1 - j]));
        }
        *r = T::zigzag_residual(T::from_i32(w[N]), sum, shift);
    }
}

/// Fixed-order residuals, zigzagged (see [`fixed_residuals`]). Plain `for`
/// loops: a `for_each` closure was compiled out of line, for the baseline
/// CPU, outside the encoder's AVX2 build.
#[inline(always)]
fn fixed_zigzag_residuals(order: usize, segment: &[i32], out: &mut [u64]) {
    let x = |w: &[i32], i: usize| i64::from(w[i]);
    let pairs = out.iter_mut().zip(segment.windows(order + 1));
    match order {
        0 => {
            for (r, &v) in out.iter_mut().zip(segment) {
                *r = zigzag(v.into());
            }
        }
        1 => {
            for (r, w) in pairs {
                *r = zigzag(x(w, 1) - x(w, 0));
            }
        }
        2 => {
            for (r, w) in pairs {
                *r = zigzag(x(w, 2) - 2 * x(w, 1) + x(w, 0));
            }
        }
        3 => {
            for (r, w) in pairs {
                *r = zigzag(x(w, 3) - 3 * x(w, 2) + 3 * x(w, 1) - x(w, 0));
            }
        }
        _ => {
            for (r, w) in pairs {
                *r = zigzag(x(w, 4) - 4 * x(w, 3) + 6 * x(w, 2) - 4 * x(w, 1) + x(w, 0));
            }
        }
    }
}

/// Fixed-order residuals as repeated differences (exact in i64).
#[cfg(test)]
fn fixed_residuals(order: usize, segment: &[i32], out: &mut Vec<i64>) {
    let x = |i: usize| i64::from(segment[i]);
    let range = order..segment.len();
    match order {
        0 => out.extend(range.map(x)),
        1 => out.extend(range.map(|n| x(n) - x(n - 1))),
        2 => out.extend(range.map(|n| x(n) - 2 * x(n - 1) + x(n - 2))),
        3 => out.extend(range.map(|n| x(n) - 3 * x(n - 1) + 3 * x(n - 2) - x(n - 3))),
        _ => out.extend(range.map(|n| x(n) - 4 * x(n - 1) + 6 * x(n - 2) - 4 * x(n - 3) + x(n - 4))),
    }
}

/// The fixed order with the smallest sum of absolute residuals (FLAC's
/// estimate), over all segments, and that sum. `width` bounds the samples:
/// every zigzagged sample is below 2^width.
#[inline(always)]
pub(crate) fn best_fixed_order(samples: &[i32], segments: &[Range<usize>], width: u32) -> (usize, u64) {
    let mut sums = [0u64; MAX_FIXED_ORDER + 1];
    for segment in segments {
        let s = &samples[segment.clone()];
        if s.len() <= MAX_FIXED_ORDER {
            continue;
        }
        if width <= NARROW_FIXED_WIDTH {
            fixed_sums_i32(s, width, &mut sums);
        } else {
            fixed_sums_i64(s, &mut sums);
        }
    }
    let order = (0..=MAX_FIXED_ORDER).min_by_key(|&o| sums[o]).unwrap_or(0);
    (order, sums[order])
}

/// Widest samples (zigzag width) for [`fixed_sums_i32`].
const NARROW_FIXED_WIDTH: u32 = 27;

/// Adds the sums of |difference| of orders 0–4 over `s`'s windows of five.
///
/// Each window gives the differences of order 0–4 at its last sample,
/// recomputed by subtraction alone: no loop-carried state and no multiplies
/// (SSE2 has no 64-bit multiply), so LLVM vectorises it.
#[inline(always)]
fn fixed_sums_i64(s: &[i32], sums: &mut [u64; MAX_FIXED_ORDER + 1]) {
    for w in s.windows(MAX_FIXED_ORDER + 1) {
        let x = [w[0], w[1], w[2], w[3], w[4]].map(i64::from);
        let d1 = [x[1] - x[0], x[2] - x[1], x[3] - x[2], x[4] - x[3]];
        let d2 = [d1[1] - d1[0], d1[2] - d1[1], d1[3] - d1[2]];
        let d3 = [d2[1] - d2[0], d2[2] - d2[1]];
        let d = [x[4], d1[3], d2[2], d3[1], d3[1] - d3[0]];
        for (sum, d) in sums.iter_mut().zip(d) {
            *sum += d.unsigned_abs();
        }
    }
}

/// [`fixed_sums_i64`] in i32 lanes (eight per AVX2 vector, `vpabsd`), for
/// samples whose zigzag is below 2^width, width ≤ 27: then |x| ≤ 2^26 and a
/// difference of order k is at most 2^(26+k) ≤ 2^30 in magnitude, exact in
/// i32. The |differences| are summed in u32 over runs of windows short
/// enough that no sum can reach 2^31 (each term is at most 2^(width+3)),
/// then added to the u64 sums: the same totals, exactly.
#[inline(always)]
fn fixed_sums_i32(s: &[i32], width: u32, sums: &mut [u64; MAX_FIXED_ORDER + 1]) {
    let run = 1usize << (28 - width.clamp(1, NARROW_FIXED_WIDTH)).min(12);
    let windows = s.len() - MAX_FIXED_ORDER;
    let mut start = 0;
    while start < windows {
        let end = (start + run).min(windows);
        let mut part = [0u32; MAX_FIXED_ORDER + 1];
        for w in s[start..end + MAX_FIXED_ORDER].windows(MAX_FIXED_ORDER + 1) {
            let x = [w[0], w[1], w[2], w[3], w[4]];
            let d1 = [x[1] - x[0], x[2] - x[1], x[3] - x[2], x[4] - x[3]];
            let d2 = [d1[1] - d1[0], d1[2] - d1[1], d1[3] - d1[2]];
            let d3 = [d2[1] - d2[0], d2[2] - d2[1]];
            let d = [x[4], d1[3], d2[2], d3[1], d3[1] - d3[0]];
            for (sum, d) in part.iter_mut().zip(d) {
                *sum += d.unsigned_abs();
            }
        }
        for (sum, part) in sums.iter_mut().zip(part) {
            *sum += u64::from(part);
        }
        start = end;
    }
}

/// Working buffers of the LPC analysis, kept between blocks.
#[derive(Default)]
pub(crate) struct LpcScratch {
    windowed: Vec<f64>,
    /// Tukey weights for the last few segment lengths seen (cos is costly,
    /// and a multi-rate block alternates lengths: 03700181's channels take
    /// 5,000 and 1,250 samples per 10 s).
    windows: Vec<Vec<f64>>,
}

/// How many window lengths [`LpcScratch`] keeps.
const CACHED_WINDOWS: usize = 4;

impl LpcScratch {
    /// The Tukey(0.5) window of length `n`, computed once per length while
    /// it stays among the last [`CACHED_WINDOWS`] lengths used.
    fn window(&mut self, n: usize) -> &[f64] {
        let found = self.windows.iter().position(|w| w.len() == n);
        let at = match found {
            Some(at) => at,
            None => {
                let mut window = if self.windows.len() < CACHED_WINDOWS {
                    Vec::new()
                } else {
                    self.windows.remove(0)
                };
                tukey_window(n, &mut window);
                self.windows.push(window);
                self.windows.len() - 1
            }
        };
        &self.windows[at]
    }
}

/// LPC analysis: Tukey(0.5)-windowed autocorrelation, Levinson–Durbin, an
/// order chosen by expected bits, coefficients quantised with error feedback.
/// `None` when the signal gives no usable predictor.
#[inline(always)]
pub(crate) fn analyse_lpc<const WIDE: bool>(
    samples: &[i32],
    segments: &[Range<usize>],
    max_order: usize,
    precision: u32,
    scratch: &mut LpcScratch,
) -> Option<Predictor> {
    let coded: usize = segments.iter().map(|s| s.len()).sum();
    let max_order = max_order.min(MAX_LPC_ORDER).min(coded / 4);
    if max_order == 0 {
        return None;
    }
    let mut autoc = [0f64; MAX_LPC_ORDER + 1];
    for segment in segments {
        let segment = &samples[segment.clone()];
        let mut windowed = std::mem::take(&mut scratch.windowed);
        windowed.clear();
        let weighted = segment
            .iter()
            .zip(scratch.window(segment.len()))
            .map(|(&v, w)| f64::from(v) * w);
        windowed.extend(weighted);
        accumulate_autocorrelation::<WIDE>(&windowed, max_order, &mut autoc);
        scratch.windowed = windowed;
    }
    if autoc[0] <= 0.0 {
        return None;
    }
    let (lpcs, errors, orders) = levinson_durbin(&autoc, max_order);
    let order = choose_order(&errors[..orders], coded, precision)?;
    quantise(&lpcs[order - 1][..order], precision)
}

/// Tukey(0.5) weights: cosine tapers over a quarter of the length at each end.
fn tukey_window(n: usize, out: &mut Vec<f64>) {
    out.clear();
    let taper = n / 4;
    out.extend((0..n).map(|i| {
        let edge = i.min(n - 1 - i);
        if edge < taper {
            0.5 - 0.5 * (std::f64::consts::PI * edge as f64 / taper as f64).cos()
        } else {
            1.0
        }
    }));
}

/// Adds the autocorrelation of `x` at lags 0..=max_order to `autoc`; each
/// lag's sum is [`dot`]`(&x[lag..], x)`, bit for bit. Lags go two per pass
/// over `x` ([`dots`]), four apart: {0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12},
/// … A pass then has eight independent vector sums, where one lag per pass
/// was bound by the latency of its four, and its second lag's loads are
/// mostly the first's shifted by one vector. (Measured: lags one apart
/// made LLVM share loads through shuffles and spill its sums, slower than
/// one lag per pass; three lags four apart spilled too, no faster than one.)
/// `WIDE` (the AVX-512 build, 32 vector registers) takes three lags per
/// pass, {0, 4, 8}, {1, 5, 9}, {2, 6, 10}, {3, 7, 11}, {12}: five passes
/// where two lags per pass take eight, and nothing spills (6–7 % of encode
/// time; four lags per pass measured no faster).
#[inline(always)]
fn accumulate_autocorrelation<const WIDE: bool>(
    x: &[f64],
    max_order: usize,
    autoc: &mut [f64; MAX_LPC_ORDER + 1],
) {
    // Lags at or past the length add nothing.
    let last = max_order.min(x.len().saturating_sub(1));
    if x.is_empty() {
        return;
    }
    let per_pass = if WIDE { 3 } else { 2 };
    for base in (0..=last).step_by(4 * per_pass) {
        for first in base..base + 4 {
            let lags = (0..per_pass).filter(|g| first + 4 * g <= last).count();
            match lags {
                3 => dots::<3>(x, first, autoc),
                2 => dots::<2>(x, first, autoc),
                1 => dots::<1>(x, first, autoc),
                _ => {}
            }
        }
    }
}

/// `autoc[lag] += dot(&x[lag..], x)` for the lags `first + 4g`, g in 0..G ≤ 3
/// (all below `x.len()`), each sum in exactly [`dot`]'s order: sixteen
/// partial sums over the whole chunks of 16, then the partial sums in
/// order, plus the tail. The chunks every lag of the group has are done in
/// one pass; the chunks only the shorter lags have, lag by lag.
#[inline(always)]
fn dots<const G: usize>(x: &[f64], first: usize, autoc: &mut [f64; MAX_LPC_ORDER + 1]) {
    const L: usize = 16;
    let lag = |g: usize| first + 4 * g.min(G - 1);
    let common = (x.len() - lag(G - 1)) / L;
    // Three named sum arrays (unused ones idle when G < 3), which LLVM keeps
    // in registers.
    let (mut s0, mut s1, mut s2) = ([0f64; L], [0f64; L], [0f64; L]);
    let lagged = |g: usize| x[lag(g)..].chunks_exact(L);
    let chunks = x[..common * L].chunks_exact(L);
    for ((b, a0), (a1, a2)) in chunks.zip(lagged(0)).zip(lagged(1).zip(lagged(2))) {
        mul_add(&mut s0, a0, b);
        if G > 1 {
            mul_add(&mut s1, a1, b);
        }
        if G > 2 {
            mul_add(&mut s2, a2, b);
        }
    }
    for (g, sums) in [s0, s1, s2].iter_mut().enumerate().take(G) {
        let a = &x[lag(g)..];
        let b = &x[..a.len()];
        let (a16, b16) = (a.chunks_exact(L), b.chunks_exact(L));
        let tail: f64 = a16
            .remainder()
            .iter()
            .zip(b16.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (a, b) in a16.zip(b16).skip(common) {
            mul_add(sums, a, b);
        }
        autoc[lag(g)] += sums.iter().sum::<f64>() + tail;
    }
}

/// `sums[i] += a[i] · b[i]` for i in 0..16.
#[inline(always)]
fn mul_add(sums: &mut [f64; 16], a: &[f64], b: &[f64]) {
    let (a, b) = (&a[..16], &b[..16]);
    for i in 0..16 {
        sums[i] += a[i] * b[i];
    }
}

/// Dot product with sixteen independent sums (four AVX vectors, eight SSE2
/// ones), so the loop is bound by loads, not by the latency of one add
/// chain. The order of the additions is fixed, so every CPU gets the same
/// bits and therefore the same coefficients. (The reference for [`dots`].)
#[cfg(test)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    const L: usize = 16;
    let b = &b[..a.len()];
    let mut sums = [0f64; L];
    let (a16, b16) = (a.chunks_exact(L), b.chunks_exact(L));
    let tail: f64 = a16
        .remainder()
        .iter()
        .zip(b16.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a16.zip(b16) {
        for i in 0..L {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f64>() + tail
}

type LpcTable = [[f64; MAX_LPC_ORDER]; MAX_LPC_ORDER];

/// Coefficients and prediction error for every order 1..=max_order; the
/// third value is how many orders are valid (a singular system stops early).
fn levinson_durbin(autoc: &[f64], max_order: usize) -> (LpcTable, [f64; MAX_LPC_ORDER], usize) {
    let mut table = [[0f64; MAX_LPC_ORDER]; MAX_LPC_ORDER];
    let mut errors = [0f64; MAX_LPC_ORDER];
    let mut lpc = [0f64; MAX_LPC_ORDER];
    let mut error = autoc[0];
    for i in 0..max_order {
        let mut acc = autoc[i + 1];
        for j in 0..i {
            acc -= lpc[j] * autoc[i - j];
        }
        let reflection = acc / error;
        if !reflection.is_finite() {
            return (table, errors, i);
        }
        let previous = lpc;
        lpc[i] = reflection;
        for j in 0..i {
            lpc[j] = previous[j] - reflection * previous[i - 1 - j];
        }
        error *= 1.0 - reflection * reflection;
        table[i][..=i].copy_from_slice(&lpc[..=i]);
        errors[i] = error;
        if error <= 0.0 {
            return (table, errors, i + 1);
        }
    }
    (table, errors, max_order)
}

/// The order (1-based) with the fewest expected bits: residual entropy
/// from the prediction error plus the coefficients' cost.
fn choose_order(errors: &[f64], coded: usize, precision: u32) -> Option<usize> {
    let scale = 0.5 / coded as f64;
    let expected = |(i, &error): (usize, &f64)| {
        let order = i + 1;
        let bits_per_sample = if error > 0.0 {
            (0.5 * (scale * error).log2()).max(0.0)
        } else {
            0.0
        };
        let bits = bits_per_sample * coded.saturating_sub(order) as f64 + (order as u32 * precision) as f64;
        (order, bits)
    };
    errors
        .iter()
        .enumerate()
        .map(expected)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(order, _)| order)
}

/// FLAC's quantisation: the largest shift that keeps every coefficient in
/// `precision` bits, rounding with error feedback.
fn quantise(lpc: &[f64], precision: u32) -> Option<Predictor> {
    let max_abs = lpc.iter().fold(0f64, |m, c| m.max(c.abs()));
    if !(max_abs > 0.0 && max_abs.is_finite()) {
        return None;
    }
    let exponent = max_abs.log2().floor() as i32 + 1; // max_abs = m·2^exponent, 0.5 ≤ m < 1
    let shift = (precision as i32 - 1 - exponent).clamp(0, MAX_SHIFT as i32);
    let limit = (1i64 << (precision - 1)) - 1;
    let mut coefs = [0i64; MAX_LPC_ORDER];
    let mut carried = 0f64;
    for (q, &c) in coefs.iter_mut().zip(lpc) {
        carried += c * f64::from(1u32 << shift);
        let rounded = (carried.round() as i64).clamp(-limit - 1, limit);
        carried -= rounded as f64;
        *q = rounded;
    }
    Some(Predictor {
        kind: PredictorKind::Lpc,
        order: lpc.len(),
        precision,
        shift: shift as u32,
        coefs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_residuals_match_the_generic_form() {
        let segment: Vec<i32> = (0..50).map(|i| (i * i * 7 - i * 300) % 1000).collect();
        for order in 0..=MAX_FIXED_ORDER {
            let p = Predictor::fixed(order);
            let mut fast = Vec::new();
            p.residuals(&segment, &mut fast);
            let generic: Vec<i64> = segment
                .windows(order + 1)
                .map(|w| i64::from(w[order]) - p.predict(&w[..order]))
                .collect();
            assert_eq!(fast, generic, "order {order}");
            let mut rebuilt = segment.clone();
            rebuilt[order..].fill(0);
            p.restore(&mut rebuilt, &fast).unwrap();
            assert_eq!(rebuilt, segment);
        }
    }

    #[test]
    fn zigzag_residuals_match_the_generic_form_at_every_order() {
        let segment: Vec<i32> = (0..300i64)
            .map(|i| ((i * i * 7919 + i * 104_729) % 4_294_967_291 - 2_147_483_645) as i32)
            .collect();
        let limit = (1i64 << (MAX_PRECISION - 1)) - 1;
        let mut predictors: Vec<Predictor> = (0..=MAX_FIXED_ORDER).map(Predictor::fixed).collect();
        for order in 1..=MAX_LPC_ORDER {
            let mut coefs = [0i64; MAX_LPC_ORDER];
            for (j, c) in coefs[..order].iter_mut().enumerate() {
                *c = if j % 2 == 0 { limit } else { -limit - 1 };
            }
            for shift in [0, 13, MAX_SHIFT] {
                predictors.push(Predictor {
                    kind: PredictorKind::Lpc,
                    order,
                    precision: MAX_PRECISION,
                    shift,
                    coefs,
                });
            }
        }
        for p in predictors {
            let mut generic = Vec::new();
            p.residuals(&segment, &mut generic);
            let mut fast = vec![0; segment.len().saturating_sub(p.order)];
            p.zigzag_residuals(&segment, 32, &mut fast);
            let expected: Vec<u64> = generic.iter().map(|&r| zigzag(r)).collect();
            assert_eq!(fast, expected, "{p:?}");
        }
    }

    /// Samples whose zigzag is below 2^width, with runs of alternating
    /// extremes (the largest differences and prediction sums there are).
    fn bounded_samples(len: usize, width: u32, mut state: u64) -> Vec<i32> {
        let low = -(1i64 << width.max(1) >> 1);
        let high = (1i64 << width.max(1) >> 1) - 1;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let v = match (i / 64) % 3 {
                    0 if i % 2 == 0 => low,
                    0 => high,
                    _ => low + (state % (high - low + 1) as u64) as i64,
                };
                if width == 0 {
                    0
                } else {
                    v as i32
                }
            })
            .collect()
    }

    #[test]
    fn narrow_fixed_sums_match_the_i64_ones() {
        for width in 0..=NARROW_FIXED_WIDTH {
            let s = bounded_samples(9000, width, 0x9E37_79B9 + u64::from(width));
            let mut narrow = [0u64; MAX_FIXED_ORDER + 1];
            fixed_sums_i32(&s, width, &mut narrow);
            let mut wide = [0u64; MAX_FIXED_ORDER + 1];
            fixed_sums_i64(&s, &mut wide);
            assert_eq!(narrow, wide, "width {width}");
        }
    }

    #[test]
    fn narrow_lpc_residuals_match_the_generic_form() {
        for width in [0, 1, 2, 8, 15, 16, 17, 20, 24, 27, 28, 30, 31, 32] {
            let segment = bounded_samples(700, width, 0x5151 + u64::from(width));
            for order in 1..=12 {
                // Coefficients whose |sum| sits just under and just over the
                // i32 loop's bound, and far over it.
                let room = (1u64 << 30) >> width.saturating_sub(1);
                for target in [room.saturating_sub(1), room, room * 4, 1 << 20] {
                    let each = (target / order as u64).clamp(1, (1 << (MAX_PRECISION - 1)) - 1) as i64;
                    let mut coefs = [0i64; MAX_LPC_ORDER];
                    for (j, c) in coefs[..order].iter_mut().enumerate() {
                        *c = if j % 3 == 1 { -each } else { each };
                    }
                    for shift in [0, 7, MAX_SHIFT] {
                        let p = Predictor {
                            kind: PredictorKind::Lpc,
                            order,
                            precision: MAX_PRECISION,
                            shift,
                            coefs,
                        };
                        let mut generic = Vec::new();
                        p.residuals(&segment, &mut generic);
                        let mut fast = vec![0; segment.len().saturating_sub(p.order)];
                        p.zigzag_residuals(&segment, width, &mut fast);
                        let expected: Vec<u64> = generic.iter().map(|&r| zigzag(r)).collect();
                        assert_eq!(fast, expected, "width {width}, {p:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn grouped_autocorrelation_matches_one_dot_per_lag() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let x: Vec<f64> = (0..300)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 40) as f64 - 4096.0
            })
            .collect();
        for len in (0..40).chain([47, 48, 49, 63, 64, 65, 100, 255, 256, 257, 300]) {
            let x = &x[..len];
            for max_order in 0..=MAX_LPC_ORDER {
                let mut grouped = [0.5f64; MAX_LPC_ORDER + 1];
                accumulate_autocorrelation::<false>(x, max_order, &mut grouped);
                let mut wide = [0.5f64; MAX_LPC_ORDER + 1];
                accumulate_autocorrelation::<true>(x, max_order, &mut wide);
                let mut reference = [0.5f64; MAX_LPC_ORDER + 1];
                for (lag, acc) in reference.iter_mut().enumerate().take(max_order + 1) {
                    if lag < x.len() {
                        *acc += dot(&x[lag..], x);
                    }
                }
                let bits = |a: &[f64]| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&grouped),
                    bits(&reference),
                    "len {len}, max order {max_order}"
                );
                assert_eq!(
                    bits(&wide),
                    bits(&reference),
                    "three lags per pass: len {len}, max order {max_order}"
                );
            }
        }
    }

    #[test]
    fn lpc_finds_a_sine_predictor() {
        let samples: Vec<i32> = (0..2000)
            .map(|i| (10000.0 * (i as f64 * 0.05).sin()).round() as i32)
            .collect();
        let whole = 0..samples.len();
        let p = analyse_lpc::<false>(
            &samples,
            std::slice::from_ref(&whole),
            32,
            15,
            &mut LpcScratch::default(),
        )
        .unwrap();
        let mut residuals = Vec::new();
        p.residuals(&samples, &mut residuals);
        let max = residuals.iter().map(|r| r.unsigned_abs()).max().unwrap();
        assert!(max < 8, "sine residual too large: {max} (order {})", p.order);
    }
}
