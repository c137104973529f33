//! The spectral features of eight PSDs at once, one channel per AVX-512
//! lane: the band sums, the SEF walk, the peak and the entropy are chains
//! of dependent operations (a sum, a running maximum, a cumulative sum),
//! so one channel at a time waits on their latency; eight channels side by
//! side pay it once for all eight.
//!
//! Each lane runs the operations of [`FeaturePlan::compute`] on its own
//! PSD, in the same order (the same four partial sums, the same walk, the
//! same log2), so every value is the same bits as the one-channel path,
//! whichever channels share a batch. The tests check this bit for bit.
//!
//! The callers hand over eight PSDs one after another (each a plain copy);
//! they are first transposed, 8 × 8 bins at a time in registers, to
//! bin-major order, 8 lanes interleaved: bin `k` of lane `l` at
//! `8 * k + l`, so bin `k` of all eight is one vector load. (Writing them
//! interleaved to begin with cost one store per bin, each to another cache
//! line: more than the transpose.)

use super::welch::FeaturePlan;

/// Channels per batch: the f64 lanes of an AVX-512 register.
pub(super) const LANES: usize = 8;

/// Whether this CPU runs [`features_of_lanes`].
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The values of [`FeaturePlan::compute`] for the eight PSDs of `bins`
/// bins in `rows` (lane 0's, then lane 1's, ...), value-major into
/// `values`: value `v` of lane `l` is `values[8 * v + l]`. `scratch` takes
/// the transposed PSDs. False, writing nothing, where the CPU lacks
/// AVX-512, the plan's edges need separate walks, or a buffer is too short
/// (the callers compute one channel at a time then).
pub(super) fn features_of_lanes(
    plan: &FeaturePlan,
    rows: &[f64],
    bins: usize,
    scratch: &mut [f64],
    values: &mut [f64],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if plan.one_walk && available() {
        let in_range = [&plan.total, &plan.edge]
            .into_iter()
            .chain(&plan.bands)
            .all(|r| r.end <= bins);
        let sized = rows.len() >= LANES * bins
            && scratch.len() >= LANES * bins
            && values.len() >= LANES * plan.values();
        if in_range && sized {
            // SAFETY: the CPU has AVX-512F (checked just above), and with
            // it AVX2, the features the functions are compiled for; the
            // buffers hold 8 PSDs of `bins` bins and every value, and every
            // bin range ends within `bins` (all checked just above).
            unsafe {
                avx512::transpose(rows, bins, scratch);
                avx512::features(plan, &scratch[..LANES * bins], values);
            }
            return true;
        }
    }
    false
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::super::welch::{entropy_terms_avx512, FeaturePlan};
    use super::LANES;

    /// Bin-major `to` (bin `k` of lane `l` at `8 * k + l`) from the eight
    /// rows of `bins` bins in `rows`, 8 × 8 at a time: unpack pairs of rows,
    /// then combine pairs of those, then halves (24 permutes per block).
    ///
    /// # Safety
    /// AVX-512F; `rows` and `to` hold at least `8 * bins`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose(rows: &[f64], bins: usize, to: &mut [f64]) {
        debug_assert!(rows.len() >= LANES * bins && to.len() >= LANES * bins);
        let pick = |i: [i64; 8]| _mm512_set_epi64(i[7], i[6], i[5], i[4], i[3], i[2], i[1], i[0]);
        let (even, odd) = (
            pick([0, 1, 8, 9, 4, 5, 12, 13]),
            pick([2, 3, 10, 11, 6, 7, 14, 15]),
        );
        let (low, high) = (
            pick([0, 1, 2, 3, 8, 9, 10, 11]),
            pick([4, 5, 6, 7, 12, 13, 14, 15]),
        );
        for first in (0..bins).step_by(LANES) {
            let count = (bins - first).min(LANES);
            let mask: __mmask8 = if count == LANES { 0xff } else { (1u8 << count) - 1 };
            // SAFETY: lane l's bins first..first + count lie in its row.
            let r: [__m512d; 8] = std::array::from_fn(|l| unsafe {
                _mm512_maskz_loadu_pd(mask, rows.as_ptr().add(l * bins + first))
            });
            // t: [r_a[0], r_b[0], r_a[2], r_b[2], ...] and the odd bins.
            let t: [__m512d; 8] = std::array::from_fn(|i| {
                let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
                if i % 2 == 0 {
                    _mm512_unpacklo_pd(a, b)
                } else {
                    _mm512_unpackhi_pd(a, b)
                }
            });
            // u: four lanes of bins {0, 4}, {2, 6}, {1, 5}, {3, 7}, for
            // lanes 0-3 (u0-u3) and 4-7 (u4-u7).
            let u: [__m512d; 8] = std::array::from_fn(|i| {
                let base = i / 4 * 4 + (i % 4) / 2;
                let (a, b) = (t[base], t[base + 2]);
                _mm512_permutex2var_pd(a, if i % 2 == 0 { even } else { odd }, b)
            });
            // Bin j of all eight lanes: the halves of u for lanes 0-3 and
            // 4-7 that hold it.
            let source = [
                (0, low),
                (2, low),
                (1, low),
                (3, low),
                (0, high),
                (2, high),
                (1, high),
                (3, high),
            ];
            for (j, &(i, half)) in source.iter().enumerate().take(count) {
                let column = _mm512_permutex2var_pd(u[i], half, u[i + 4]);
                // SAFETY: bin first + j < bins, its 8 lanes inside `to`.
                unsafe { _mm512_storeu_pd(to.as_mut_ptr().add(LANES * (first + j)), column) };
            }
        }
    }

    /// Bin `k` of the eight PSDs.
    ///
    /// # Safety
    /// AVX-512F; `8 * k + 8 <= psds.len()`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn bin(psds: &[f64], k: usize) -> __m512d {
        // SAFETY: the caller keeps the 8 values inside `psds`.
        unsafe { _mm512_loadu_pd(psds.as_ptr().add(LANES * k)) }
    }

    /// The lanes' `sum(&psd[range])`.
    ///
    /// # Safety
    /// AVX-512F; `range` within the PSDs.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn sum(psds: &[f64], range: &Range<usize>) -> __m512d {
        // SAFETY: k < range.end, within the PSDs.
        sum_in_order(range, |k| unsafe { bin(psds, k) })
    }

    /// Σ term(k) over `range` in the order of the one-channel sums
    /// (`sum`, `h_sum`): four partial sums over blocks of 4 bins, combined
    /// pairwise, then the remaining bins in order.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn sum_in_order(range: &Range<usize>, mut term: impl FnMut(usize) -> __m512d) -> __m512d {
        let mut partial = [_mm512_setzero_pd(); 4];
        let whole = range.len() / 4 * 4;
        for k in (range.start..range.start + whole).step_by(4) {
            for (j, p) in partial.iter_mut().enumerate() {
                *p = _mm512_add_pd(*p, term(k + j));
            }
        }
        let mut s = _mm512_add_pd(
            _mm512_add_pd(partial[0], partial[1]),
            _mm512_add_pd(partial[2], partial[3]),
        );
        for k in range.start + whole..range.end {
            s = _mm512_add_pd(s, term(k));
        }
        s
    }

    /// Writes value `v` of every lane.
    ///
    /// # Safety
    /// AVX-512F; `8 * v + 8 <= values.len()`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn put(values: &mut [f64], v: usize, x: __m512d) {
        debug_assert!(LANES * v + LANES <= values.len());
        // SAFETY: the caller keeps the 8 values inside `values`.
        unsafe { _mm512_storeu_pd(values.as_mut_ptr().add(LANES * v), x) };
    }

    /// See [`super::features_of_lanes`]: the values in the order
    /// `FeaturePlan::compute` pushes them.
    ///
    /// # Safety
    /// AVX-512F and AVX2; every range of `plan` ends within the PSDs;
    /// `values` holds `8 * plan.values()`.
    #[target_feature(enable = "avx512f,avx2")]
    pub(super) unsafe fn features(plan: &FeaturePlan, psds: &[f64], values: &mut [f64]) {
        // SAFETY (every call below): the CPU has the features, the ranges
        // end within the PSDs and `values` holds every value's slot, as
        // this function's caller guarantees.
        unsafe {
            let df = _mm512_set1_pd(plan.df);
            let bands = plan.bands.len();
            let total_sum = sum(psds, &plan.total);
            let total = _mm512_mul_pd(total_sum, df);
            for (b, range) in plan.bands.iter().enumerate() {
                let power = _mm512_mul_pd(sum(psds, range), df);
                put(values, b, power);
                put(values, bands + b, _mm512_div_pd(power, total));
            }
            put(values, 2 * bands, total);
            let range = &plan.edge;
            let power = if *range == plan.total {
                total_sum
            } else {
                sum(psds, range)
            };
            let at = 2 * bands + 1;
            edges(psds, range, plan, power, values, at);
            let at = at + plan.edges.len();
            put(values, at, peak(psds, range, plan.df));
            put(values, at + 1, entropy(psds, range, power));
        }
    }

    /// The SEF edges: per lane, the first bin of `range` at which the
    /// cumulative sum (in bin order, from 0) reaches edge × power; NaN
    /// where none does or the target is not positive. Edges ascend (the
    /// plan's one-walk case), so finding each one in its own mask gives
    /// the one walk's bins.
    ///
    /// # Safety
    /// AVX-512F; `range` within the PSDs; `values` holds the edges' slots.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn edges(
        psds: &[f64],
        range: &Range<usize>,
        plan: &FeaturePlan,
        power: __m512d,
        values: &mut [f64],
        at: usize,
    ) {
        const MAX_EDGES: usize = 8;
        let mut targets = [_mm512_setzero_pd(); MAX_EDGES];
        let mut found = [_mm512_set1_pd(f64::NAN); MAX_EDGES];
        // Lanes still looking, per edge (a target that is not positive,
        // or NaN, is never reached).
        let mut open = [0 as __mmask8; MAX_EDGES];
        let edges = plan.edges.len();
        for e in 0..edges.min(MAX_EDGES) {
            targets[e] = _mm512_mul_pd(_mm512_set1_pd(plan.edges[e]), power);
            open[e] = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(targets[e], _mm512_setzero_pd());
        }
        let mut cumulative = _mm512_setzero_pd();
        for k in range.clone() {
            if open[..edges.min(MAX_EDGES)].iter().all(|&o| o == 0) {
                break;
            }
            // SAFETY: k < range.end, within the PSDs.
            cumulative = _mm512_add_pd(cumulative, unsafe { bin(psds, k) });
            let frequency = _mm512_set1_pd(k as f64 * plan.df);
            for e in 0..edges.min(MAX_EDGES) {
                let reached = _mm512_mask_cmp_pd_mask::<_CMP_GE_OQ>(open[e], cumulative, targets[e]);
                found[e] = _mm512_mask_mov_pd(found[e], reached, frequency);
                open[e] &= !reached;
            }
        }
        for (e, f) in found.iter().enumerate().take(edges.min(MAX_EDGES)) {
            // SAFETY: `values` holds the edges' slots.
            unsafe { put(values, at + e, *f) };
        }
        // More edges than a register set holds: the rare case, each its
        // own walk over the same cumulative sums.
        for e in MAX_EDGES..edges {
            let target = _mm512_mul_pd(_mm512_set1_pd(plan.edges[e]), power);
            let mut open = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(target, _mm512_setzero_pd());
            let mut found = _mm512_set1_pd(f64::NAN);
            let mut cumulative = _mm512_setzero_pd();
            for k in range.clone() {
                // SAFETY: k < range.end, within the PSDs.
                cumulative = _mm512_add_pd(cumulative, unsafe { bin(psds, k) });
                let reached = _mm512_mask_cmp_pd_mask::<_CMP_GE_OQ>(open, cumulative, target);
                found = _mm512_mask_mov_pd(found, reached, _mm512_set1_pd(k as f64 * plan.df));
                open &= !reached;
            }
            // SAFETY: `values` holds the edges' slots.
            unsafe { put(values, at + e, found) };
        }
    }

    /// The peak frequency: per lane, the first bin of `range` holding its
    /// largest value (a bin is taken only when strictly greater, and no
    /// bin is greater than a NaN first bin); NaN for an empty range.
    ///
    /// # Safety
    /// AVX-512F; `range` within the PSDs.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn peak(psds: &[f64], range: &Range<usize>, df: f64) -> __m512d {
        if range.is_empty() {
            return _mm512_set1_pd(f64::NAN);
        }
        // SAFETY: range.start < range.end, within the PSDs.
        let mut best = unsafe { bin(psds, range.start) };
        let mut at = _mm512_set1_pd(range.start as f64 * df);
        for k in range.start + 1..range.end {
            // SAFETY: k < range.end, within the PSDs.
            let x = unsafe { bin(psds, k) };
            let greater = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(x, best);
            best = _mm512_mask_mov_pd(best, greater, x);
            at = _mm512_mask_mov_pd(at, greater, _mm512_set1_pd(k as f64 * df));
        }
        at
    }

    /// The normalised spectral entropy of `range` whose power is `power`,
    /// per lane: the terms of `entropy_terms_avx512` summed in the order
    /// of [`sum_in_order`], over log2 of the bin count; NaN where the range has
    /// fewer than 2 bins or the power is not positive.
    ///
    /// # Safety
    /// AVX-512F and AVX2; `range` within the PSDs.
    #[target_feature(enable = "avx512f,avx2")]
    #[inline]
    unsafe fn entropy(psds: &[f64], range: &Range<usize>, power: __m512d) -> __m512d {
        let valid = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(power, _mm512_setzero_pd());
        if range.len() < 2 || valid == 0 {
            return _mm512_set1_pd(f64::NAN);
        }
        let inverse = _mm512_div_pd(_mm512_set1_pd(1.0), power);
        // SAFETY: k < range.end, within the PSDs.
        let h = sum_in_order(range, |k| entropy_terms_avx512(unsafe { bin(psds, k) }, inverse));
        let normalised = _mm512_div_pd(h, _mm512_set1_pd((range.len() as f64).log2()));
        _mm512_mask_mov_pd(_mm512_set1_pd(f64::NAN), valid, normalised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::welch::{Band, SpectralFeatures};

    /// A PSD-like spectrum per lane: 1/f with lines, and lanes that test
    /// the edge cases (a NaN bin, a NaN first bin, all zeros, a power so
    /// small that the SEF targets underflow, one line only).
    fn spectra(bins: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut state = seed;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..LANES)
            .map(|lane| {
                let mut p: Vec<f64> = (0..bins)
                    .map(|k| (1.0 + 40.0 * uniform()) / (1.0 + k as f64) * 10f64.powi(lane as i32 - 3))
                    .collect();
                p[3 + lane] *= 50.0;
                match lane {
                    1 => p[7] = f64::NAN,
                    2 => p[1] = f64::NAN,
                    3 => p.fill(0.0),
                    4 => p
                        .iter_mut()
                        .for_each(|v| *v = if *v > 0.0 { 5e-324 } else { 0.0 }),
                    5 => {
                        p.fill(0.0);
                        p[10] = 3.0;
                    }
                    _ => {}
                }
                p
            })
            .collect()
    }

    fn rows(psds: &[Vec<f64>]) -> Vec<f64> {
        psds.concat()
    }

    #[test]
    fn every_lane_is_the_one_channel_path_bit_for_bit() {
        if !available() {
            eprintln!("no AVX-512 here: the lane path is not used");
            return;
        }
        let bands = Band::eeg_defaults();
        let custom = vec![Band::new("low", 0.5, 3.0), Band::new("high", 3.0, 61.0)];
        let cases = [
            (65, 1.0, SpectralFeatures::new(bands.clone(), None).unwrap()),
            (129, 1.0, SpectralFeatures::new(bands.clone(), None).unwrap()),
            (129, 0.5, SpectralFeatures::new(bands, Some((2.0, 40.0))).unwrap()),
            (65, 1.0, SpectralFeatures::new(custom, Some((0.0, 64.0))).unwrap()),
        ];
        for (case, (bins, df, features)) in cases.into_iter().enumerate() {
            let plan = features.plan(bins, df);
            for seed in 0..20 {
                let psds = spectra(bins, seed + 100 * case as u64);
                let mut values = vec![0.0; LANES * plan.values()];
                let mut scratch = vec![0.0; LANES * bins];
                assert!(features_of_lanes(
                    &plan,
                    &rows(&psds),
                    bins,
                    &mut scratch,
                    &mut values
                ));
                for (k, bin) in scratch.chunks(LANES).enumerate() {
                    assert!(
                        bin.iter().zip(&psds).all(|(x, p)| x.to_bits() == p[k].to_bits()),
                        "bin {k} transposed"
                    );
                }
                for (lane, psd) in psds.iter().enumerate() {
                    let mut expected = Vec::new();
                    plan.compute(psd, &mut expected);
                    let ours: Vec<f64> = (0..plan.values()).map(|v| values[LANES * v + lane]).collect();
                    let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&ours),
                        bits(&expected),
                        "case {case} seed {seed} lane {lane}: {ours:?} vs {expected:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn plans_the_lanes_cannot_run_are_refused() {
        let mut features = SpectralFeatures::new(Band::eeg_defaults(), None).unwrap();
        features.edges = vec![0.9, 0.5];
        let plan = features.plan(65, 1.0);
        let mut values = vec![0.0; LANES * plan.values()];
        let mut scratch = vec![0.0; LANES * 65];
        let rows = vec![1.0; 65 * LANES];
        assert!(!features_of_lanes(&plan, &rows, 65, &mut scratch, &mut values));
        // Too few bins for the plan's ranges, or too short a buffer.
        let plan = SpectralFeatures::new(Band::eeg_defaults(), None)
            .unwrap()
            .plan(65, 1.0);
        let mut values = vec![0.0; LANES * plan.values()];
        assert!(!features_of_lanes(
            &plan,
            &rows[..20 * LANES],
            20,
            &mut scratch,
            &mut values
        ));
        assert!(!features_of_lanes(
            &plan,
            &rows[..64 * LANES],
            65,
            &mut scratch,
            &mut values
        ));
        assert!(features_of_lanes(&plan, &rows, 65, &mut scratch, &mut values) == available());
    }
}
