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
    /// Appends the zigzagged residuals of one gap-free segment past its
    /// warm-up: the encoder's hot loop, equal to zigzagging [`Self::residuals`].
    ///
    /// Why this is exact without wrapping: samples are i32 and coefficients
    /// fit in `MAX_PRECISION` (16) bits, so each product is below 2^46 in
    /// magnitude and a sum of at most 32 of them below 2^51; the shifted
    /// prediction and `target − prediction` are then far inside i64, where
    /// wrapping and plain arithmetic agree. The loops are specialised per
    /// order so the coefficients sit in registers and LLVM can unroll them.
    #[inline(always)]
    pub(crate) fn zigzag_residuals(&self, segment: &[i32], out: &mut Vec<u64>) {
        if segment.len() <= self.order {
            return;
        }
        match self.kind {
            PredictorKind::Fixed => fixed_zigzag_residuals(self.order, segment, out),
            PredictorKind::Lpc => match self.order {
                1 => self.lpc_zigzag::<1>(segment, out),
                2 => self.lpc_zigzag::<2>(segment, out),
                3 => self.lpc_zigzag::<3>(segment, out),
                4 => self.lpc_zigzag::<4>(segment, out),
                5 => self.lpc_zigzag::<5>(segment, out),
                6 => self.lpc_zigzag::<6>(segment, out),
                7 => self.lpc_zigzag::<7>(segment, out),
                8 => self.lpc_zigzag::<8>(segment, out),
                9 => self.lpc_zigzag::<9>(segment, out),
                10 => self.lpc_zigzag::<10>(segment, out),
                11 => self.lpc_zigzag::<11>(segment, out),
                12 => self.lpc_zigzag::<12>(segment, out),
                _ => self.lpc_zigzag_any(segment, out),
            },
        }
    }

    /// LPC of exactly order `N`.
    #[inline(always)]
    fn lpc_zigzag<const N: usize>(&self, segment: &[i32], out: &mut Vec<u64>) {
        // Coefficients fit in 16 bits: as i32 the products are 32×32→64 bits.
        let coefs: [i32; N] = std::array::from_fn(|j| self.coefs[j] as i32);
        lpc_zigzag_windows(&coefs, self.shift, segment, out);
    }

    /// Orders above 12 (not the default): one loop over the runtime order.
    fn lpc_zigzag_any(&self, segment: &[i32], out: &mut Vec<u64>) {
        let coefs = &self.coefs[..self.order];
        out.extend(segment.windows(self.order + 1).map(|w| {
            let lags = w[..self.order].iter().rev();
            let sum: i64 = coefs.iter().zip(lags).map(|(&c, &x)| c * i64::from(x)).sum();
            zigzag(i64::from(w[self.order]) - (sum >> self.shift))
        }));
    }
}

/// Zigzagged residuals of an order-`N` LPC over `segment` (longer than `N`).
///
/// Eight targets at a time, lag by lag: the inner loop is then over
/// independent outputs, which LLVM turns into 64-bit vector multiplies of
/// sign-extended i32s (`vpmuldq` when compiled for AVX2).
#[inline(always)]
fn lpc_zigzag_windows<const N: usize>(coefs: &[i32; N], shift: u32, segment: &[i32], out: &mut Vec<u64>) {
    const B: usize = 8;
    let targets = segment.len() - N;
    let start = out.len();
    out.resize(start + targets, 0);
    let out = &mut out[start..];
    let mut n = 0;
    while n + B <= targets {
        // out[n + i] is the residual of segment[N + n + i], whose lag j+1 is
        // segment[N + n + i − 1 − j].
        let mut acc = [0i64; B];
        for j in 0..N {
            let c = i64::from(coefs[j]);
            let lagged = &segment[N + n - 1 - j..][..B];
            for i in 0..B {
                acc[i] += c * i64::from(lagged[i]);
            }
        }
        let target = &segment[N + n..][..B];
        let residuals = &mut out[n..n + B];
        for i in 0..B {
            residuals[i] = zigzag(i64::from(target[i]) - (acc[i] >> shift));
        }
        n += B;
    }
    for (r, w) in out[n..].iter_mut().zip(segment[n..].windows(N + 1)) {
        // w[N − 1 − j] is lag j+1 of the target w[N].
        let mut sum = 0i64;
        for j in 0..N {
            sum += i64::from(coefs[j]) * i64::from(w[N - 1 - j]);
        }
        *r = zigzag(i64::from(w[N]) - (sum >> shift));
    }
}

/// Fixed-order residuals, zigzagged (see [`fixed_residuals`]).
#[inline(always)]
fn fixed_zigzag_residuals(order: usize, segment: &[i32], out: &mut Vec<u64>) {
    let x = |w: &[i32], i: usize| i64::from(w[i]);
    match order {
        0 => out.extend(segment.iter().map(|&v| zigzag(v.into()))),
        1 => out.extend(segment.windows(2).map(|w| zigzag(x(w, 1) - x(w, 0)))),
        2 => out.extend(
            segment
                .windows(3)
                .map(|w| zigzag(x(w, 2) - 2 * x(w, 1) + x(w, 0))),
        ),
        3 => out.extend(
            segment
                .windows(4)
                .map(|w| zigzag(x(w, 3) - 3 * x(w, 2) + 3 * x(w, 1) - x(w, 0))),
        ),
        _ => out.extend(
            segment
                .windows(5)
                .map(|w| zigzag(x(w, 4) - 4 * x(w, 3) + 6 * x(w, 2) - 4 * x(w, 1) + x(w, 0))),
        ),
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
/// estimate), over all segments, and that sum.
#[inline(always)]
pub(crate) fn best_fixed_order(samples: &[i32], segments: &[Range<usize>]) -> (usize, u64) {
    let mut sums = [0u64; MAX_FIXED_ORDER + 1];
    for segment in segments {
        let s = &samples[segment.clone()];
        if s.len() <= MAX_FIXED_ORDER {
            continue;
        }
        // Each window gives the differences of order 0–4 at its last sample,
        // recomputed by subtraction alone: no loop-carried state and no
        // multiplies (SSE2 has no 64-bit multiply), so LLVM vectorises it.
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
    let order = (0..=MAX_FIXED_ORDER).min_by_key(|&o| sums[o]).unwrap_or(0);
    (order, sums[order])
}

/// Working buffers of the LPC analysis, kept between blocks.
#[derive(Default)]
pub(crate) struct LpcScratch {
    windowed: Vec<f64>,
    /// Tukey weights for the last segment length seen (cos is costly).
    window: Vec<f64>,
}

/// LPC analysis: Tukey(0.5)-windowed autocorrelation, Levinson–Durbin, an
/// order chosen by expected bits, coefficients quantised with error feedback.
/// `None` when the signal gives no usable predictor.
#[inline(always)]
pub(crate) fn analyse_lpc(
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
        if scratch.window.len() != segment.len() {
            tukey_window(segment.len(), &mut scratch.window);
        }
        scratch.windowed.clear();
        let weighted = segment
            .iter()
            .zip(&scratch.window)
            .map(|(&v, w)| f64::from(v) * w);
        scratch.windowed.extend(weighted);
        accumulate_autocorrelation(&scratch.windowed, max_order, &mut autoc);
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

#[inline(always)]
fn accumulate_autocorrelation(x: &[f64], max_order: usize, autoc: &mut [f64; MAX_LPC_ORDER + 1]) {
    for (lag, acc) in autoc.iter_mut().enumerate().take(max_order + 1) {
        if lag < x.len() {
            *acc += dot(&x[lag..], x);
        }
    }
}

/// Dot product with sixteen independent sums (four AVX vectors, eight SSE2
/// ones), so the loop is bound by loads, not by the latency of one add
/// chain. The order of the additions is fixed, so every CPU gets the same
/// bits and therefore the same coefficients.
#[inline(always)]
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
            let mut fast = Vec::new();
            p.zigzag_residuals(&segment, &mut fast);
            let expected: Vec<u64> = generic.iter().map(|&r| zigzag(r)).collect();
            assert_eq!(fast, expected, "{p:?}");
        }
    }

    #[test]
    fn lpc_finds_a_sine_predictor() {
        let samples: Vec<i32> = (0..2000)
            .map(|i| (10000.0 * (i as f64 * 0.05).sin()).round() as i32)
            .collect();
        let whole = 0..samples.len();
        let p = analyse_lpc(
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
