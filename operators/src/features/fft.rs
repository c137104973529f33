//! Power spectra |FFT(x)|² of real segments of n = 128 or 256 samples
//! (1 s of EEG at 128 or 256 Hz), for [`super::welch::Welch`]'s
//! periodograms; other lengths stay with realfft.
//!
//! Algorithm. The n real samples are packed as N = n/2 complex ones,
//! z[m] = x[2m] + i·x[2m+1], and Z = DFT_N(z) is split into the real
//! transform's bins afterwards:
//! X[k] = ½(Z[k] + conj Z[N−k]) − ½i·W_n^k·(Z[k] − conj Z[N−k]).
//! A 64-point Z is a four-step transform in registers: z as an 8×8
//! matrix (row r holds z[8r..8r+8]) of split re/im vectors of 8 lanes,
//! one AVX-512 register each;
//! 1. 8-point DFTs down the columns, every operation acting on 8 columns
//!    at once;
//! 2. a twiddle W_64^{c·k1} per element (row k1, column c);
//! 3. 8×8 transposes, then 8-point DFTs lane-wise again: vector v of the
//!    result holds bins 8v..8v+8 of Z;
//! 4. the split above and |X[k]|², 8 bins at a time, the Z[N−k] partners
//!    gathered by a lane reversal.
//!
//! For n = 256 a radix-2 step first splits the 128-point Z into two
//! 64-point ones (even and odd bins; see [`spectrum_256`]).
//! The mean is summed in 32 lanes (4 vectors, then the lanes in a fixed
//! order), and the detrend and the window are applied as the samples are
//! loaded, (x − mean)·w.
//! Lengths of 512 and more were measured no faster than realfft with
//! this layout (their rows no longer fit in registers), so they are
//! left to it.
//!
//! Bit identity. The algorithm is written once, generic over [`Lanes`],
//! and instantiated for AVX-512 (one `__m512d`), AVX2 (two `__m256d`) and
//! plain f64 (`[f64; 8]`). Every element sees the same operations in the
//! same order on every path (no FMA; shuffles and transposes only move
//! data), so all three give the same bits and the CPU a stream runs on
//! never changes its results.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Eight f64 lanes in memory: one vector of the algorithm.
type Block = [f64; 8];

/// 8 complex lanes in memory, (re, im), on a cache line of their own:
/// a 64-byte vector load or store that straddles two lines costs double.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Pair([Block; 2]);

/// The power spectrum of one segment length: shared tables and this
/// estimator's scratch.
pub(super) struct PowerSpectrum {
    tables: Arc<Tables>,
    /// n = 256: the odd half's rows, then the even bins' powers.
    scratch: Vec<Pair>,
}

impl PowerSpectrum {
    /// `None` unless `n` is 128 or 256.
    pub(super) fn new(n: usize) -> Option<Self> {
        let tables = shared_tables(n)?;
        let scratch = vec![Pair([[0.0; 8]; 2]); 16];
        Some(Self { tables, scratch })
    }

    /// |FFT((segment − its mean)·window)|² for bins 0..=n/2 into `power`.
    pub(super) fn compute(&mut self, segment: &[f64], window: &[f64], power: &mut [f64]) {
        let (t, scratch) = (&*self.tables, &mut self.scratch[..]);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above, the only
            // feature `spectrum_avx512` is compiled for.
            unsafe { spectrum_avx512(t, segment, window, scratch, power) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above, the only
            // feature `spectrum_avx2` is compiled for.
            unsafe { spectrum_avx2(t, segment, window, scratch, power) };
            return;
        }
        spectrum::<Portable>(t, segment, window, scratch, power);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn spectrum_avx512(t: &Tables, x: &[f64], w: &[f64], scratch: &mut [Pair], power: &mut [f64]) {
    spectrum::<x86::Avx512>(t, x, w, scratch, power);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn spectrum_avx2(t: &Tables, x: &[f64], w: &[f64], scratch: &mut [Pair], power: &mut [f64]) {
    spectrum::<x86::Avx2>(t, x, w, scratch, power);
}

/// Precomputed twiddles for one length, 8 lanes (re, im) per entry.
struct Tables {
    n: usize,
    /// Row k1, lane c: W_64^{c·k1}, step 2 of a 64-point DFT.
    row_twiddles: Vec<Pair>,
    /// Vector v, lane l: W_n^k for its bin k, 8v+l (n = 128) or the even
    /// bin 2(8v+l) (n = 256).
    split_twiddles: Vec<Pair>,
    /// n = 256 only: W_128^{8r+c} for row r (the radix-2 split), and the
    /// odd bins' W_n^{2(8v+l)+1}.
    half_twiddles: Vec<Pair>,
    odd_split_twiddles: Vec<Pair>,
}

/// Values made once per length for the whole process and shared by every
/// channel's estimator (these FFT tables, Welch's windows), as realfft's
/// plans are: 64 channels need one copy, not 64.
pub(super) struct PerLength<T: ?Sized>(OnceLock<Mutex<HashMap<usize, Arc<T>>>>);

impl<T: ?Sized> PerLength<T> {
    pub(super) const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The value for length `n`, made by `make` the first time.
    pub(super) fn get(&self, n: usize, make: impl FnOnce() -> Arc<T>) -> Arc<T> {
        let values = self.0.get_or_init(Default::default);
        // The map only ever receives finished values: a panic in `make`
        // while it was locked inserts nothing and leaves it consistent.
        let mut values = values.lock().unwrap_or_else(PoisonError::into_inner);
        values.entry(n).or_insert_with(make).clone()
    }
}

/// The tables for `n`-sample segments, if this transform handles them.
fn shared_tables(n: usize) -> Option<Arc<Tables>> {
    static TABLES: PerLength<Tables> = PerLength::new();
    (n == 128 || n == 256).then(|| TABLES.get(n, || Arc::new(Tables::new(n))))
}

/// W_len^k = exp(−2πi·k/len) as (re, im).
fn twiddle(k: usize, len: usize) -> (f64, f64) {
    let angle = -2.0 * std::f64::consts::PI * (k % len) as f64 / len as f64;
    (angle.cos(), angle.sin())
}

/// 8 lanes of twiddles W_len^{k(l)}, split into (re, im).
fn twiddle_lanes(len: usize, k: impl Fn(usize) -> usize) -> Pair {
    let lanes: [(f64, f64); 8] = std::array::from_fn(|l| twiddle(k(l), len));
    Pair([lanes.map(|w| w.0), lanes.map(|w| w.1)])
}

impl Tables {
    fn new(n: usize) -> Self {
        let lanes = |len: usize, k: &dyn Fn(usize, usize) -> usize| -> Vec<Pair> {
            (0..8).map(|v| twiddle_lanes(len, |l| k(v, l))).collect()
        };
        let halves = n == 256;
        Self {
            n,
            row_twiddles: lanes(64, &|k1, c| c * k1),
            split_twiddles: lanes(n, &|v, l| if halves { 2 * (8 * v + l) } else { 8 * v + l }),
            half_twiddles: if halves {
                lanes(128, &|r, c| 8 * r + c)
            } else {
                Vec::new()
            },
            odd_split_twiddles: if halves {
                lanes(n, &|v, l| 2 * (8 * v + l) + 1)
            } else {
                Vec::new()
            },
        }
    }
}

/// The operations the algorithm needs on 8 f64 lanes. Implementations
/// must round exactly as scalar f64 (`add`, `sub`, `mul` are IEEE ops per
/// lane) and only move data in the rest.
trait Lanes: Copy {
    fn splat(x: f64) -> Self;
    fn load(x: &Block) -> Self;
    fn store(self, out: &mut Block);
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    /// The even- and odd-indexed values of the 16 in `low` then `high`.
    fn deinterleave(low: Self, high: Self) -> (Self, Self);
    /// Row i, lane j of the result is row j, lane i of `rows`.
    fn transpose(rows: [Self; 8]) -> [Self; 8];
    /// Lane 0 is `b`'s lane 0, lane l > 0 is `a`'s lane 8 − l.
    fn mirror(a: Self, b: Self) -> Self;
    /// Lane l is lane 7 − l.
    fn reverse(self) -> Self;
    /// `a` and `b` interleaved: a0 b0 a1 b1 … a7 b7 as two vectors.
    fn interleave(a: Self, b: Self) -> (Self, Self);
}

/// Plain f64 lanes, for CPUs without AVX2 and other architectures.
#[derive(Clone, Copy)]
struct Portable(Block);

impl Portable {
    #[inline(always)]
    fn zip(mut self, other: Self, op: impl Fn(f64, f64) -> f64) -> Self {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = op(*a, b);
        }
        self
    }
}

impl Lanes for Portable {
    #[inline(always)]
    fn splat(x: f64) -> Self {
        Self([x; 8])
    }
    #[inline(always)]
    fn load(x: &Block) -> Self {
        Self(*x)
    }
    #[inline(always)]
    fn store(self, out: &mut Block) {
        *out = self.0;
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self.zip(other, |a, b| a + b)
    }
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        self.zip(other, |a, b| a - b)
    }
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        self.zip(other, |a, b| a * b)
    }
    #[inline(always)]
    fn deinterleave(low: Self, high: Self) -> (Self, Self) {
        let (mut even, mut odd) = ([0.0; 8], [0.0; 8]);
        for l in 0..4 {
            (even[l], odd[l]) = (low.0[2 * l], low.0[2 * l + 1]);
            (even[l + 4], odd[l + 4]) = (high.0[2 * l], high.0[2 * l + 1]);
        }
        (Self(even), Self(odd))
    }
    #[inline(always)]
    fn transpose(rows: [Self; 8]) -> [Self; 8] {
        let mut columns = rows;
        for (i, column) in columns.iter_mut().enumerate() {
            for (j, row) in rows.iter().enumerate() {
                column.0[j] = row.0[i];
            }
        }
        columns
    }
    #[inline(always)]
    fn mirror(a: Self, b: Self) -> Self {
        let mut out = b;
        for l in 1..8 {
            out.0[l] = a.0[8 - l];
        }
        out
    }
    #[inline(always)]
    fn reverse(mut self) -> Self {
        self.0.reverse();
        self
    }
    #[inline(always)]
    fn interleave(a: Self, b: Self) -> (Self, Self) {
        let (mut low, mut high) = (a, b);
        for l in 0..4 {
            (low.0[2 * l], low.0[2 * l + 1]) = (a.0[l], b.0[l]);
            (high.0[2 * l], high.0[2 * l + 1]) = (a.0[l + 4], b.0[l + 4]);
        }
        (low, high)
    }
}

/// The x86-64 lane types. Their values are created only inside
/// `spectrum_avx512` / `spectrum_avx2` (and the tests, after the same
/// feature checks), so their methods only ever run on CPUs with the
/// features their intrinsics need. No closures around intrinsics: a
/// closure LLVM does not inline is compiled without the caller's target
/// features, and each intrinsic becomes a call.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Block, Lanes};
    use std::arch::x86_64::*;

    /// 8 lanes in one AVX-512 register.
    #[derive(Clone, Copy)]
    pub(super) struct Avx512(__m512d);

    impl Lanes for Avx512 {
        #[inline(always)]
        fn splat(x: f64) -> Self {
            // SAFETY (all methods of Avx512): values of this type exist only
            // on CPUs with AVX-512F (see the module doc).
            Self(unsafe { _mm512_set1_pd(x) })
        }
        #[inline(always)]
        fn load(x: &Block) -> Self {
            // SAFETY: AVX-512F as above; the pointer reaches the 8 values of `x`.
            Self(unsafe { _mm512_loadu_pd(x.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, out: &mut Block) {
            // SAFETY: AVX-512F as above; the pointer reaches the 8 values of `out`.
            unsafe { _mm512_storeu_pd(out.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            // SAFETY: AVX-512F as above.
            Self(unsafe { _mm512_add_pd(self.0, other.0) })
        }
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            // SAFETY: AVX-512F as above.
            Self(unsafe { _mm512_sub_pd(self.0, other.0) })
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            // SAFETY: AVX-512F as above.
            Self(unsafe { _mm512_mul_pd(self.0, other.0) })
        }
        #[inline(always)]
        fn deinterleave(low: Self, high: Self) -> (Self, Self) {
            // Even lanes of low:high, then odd ones.
            two_permutes(
                low,
                high,
                [0, 2, 4, 6, 8, 10, 12, 14],
                [1, 3, 5, 7, 9, 11, 13, 15],
            )
        }
        #[inline(always)]
        fn transpose(rows: [Self; 8]) -> [Self; 8] {
            // SAFETY: AVX-512F as above.
            unsafe { transpose_avx512(rows) }
        }
        #[inline(always)]
        fn mirror(a: Self, b: Self) -> Self {
            // SAFETY: AVX-512F as above.
            unsafe {
                let reversed = _mm512_setr_epi64(8, 7, 6, 5, 4, 3, 2, 1);
                Self(_mm512_permutex2var_pd(a.0, reversed, b.0))
            }
        }
        #[inline(always)]
        fn reverse(self) -> Self {
            // SAFETY: AVX-512F as above.
            unsafe {
                Self(_mm512_permutexvar_pd(
                    _mm512_setr_epi64(7, 6, 5, 4, 3, 2, 1, 0),
                    self.0,
                ))
            }
        }
        #[inline(always)]
        fn interleave(a: Self, b: Self) -> (Self, Self) {
            // a0 b0 a1 b1 ... for the low halves, then the high ones.
            two_permutes(a, b, [0, 8, 1, 9, 2, 10, 3, 11], [4, 12, 5, 13, 6, 14, 7, 15])
        }
    }

    /// Lanes `first`, then `second`, of the 16 lanes of a:b (0-7 from a,
    /// 8-15 from b).
    #[inline(always)]
    fn two_permutes(a: Avx512, b: Avx512, first: [i64; 8], second: [i64; 8]) -> (Avx512, Avx512) {
        // SAFETY: `Avx512` values exist only on CPUs with AVX-512F (see
        // `splat`); each load reads the 8 i64 of its array. No closure
        // here: see the `x86` module.
        unsafe {
            let first = _mm512_loadu_si512(first.as_ptr().cast());
            let second = _mm512_loadu_si512(second.as_ptr().cast());
            (
                Avx512(_mm512_permutex2var_pd(a.0, first, b.0)),
                Avx512(_mm512_permutex2var_pd(a.0, second, b.0)),
            )
        }
    }

    /// Pairs of rows interleaved, then 128- and 256-bit halves exchanged:
    /// 24 shuffles.
    #[inline(always)]
    unsafe fn transpose_avx512(rows: [Avx512; 8]) -> [Avx512; 8] {
        // SAFETY: the caller runs on a CPU with AVX-512F.
        unsafe {
            let t = [
                _mm512_unpacklo_pd(rows[0].0, rows[1].0),
                _mm512_unpackhi_pd(rows[0].0, rows[1].0),
                _mm512_unpacklo_pd(rows[2].0, rows[3].0),
                _mm512_unpackhi_pd(rows[2].0, rows[3].0),
                _mm512_unpacklo_pd(rows[4].0, rows[5].0),
                _mm512_unpackhi_pd(rows[4].0, rows[5].0),
                _mm512_unpacklo_pd(rows[6].0, rows[7].0),
                _mm512_unpackhi_pd(rows[6].0, rows[7].0),
            ];
            // 0x88: 128-bit lanes 0, 2 of each; 0xDD: lanes 1, 3.
            let u = [
                _mm512_shuffle_f64x2::<0x88>(t[0], t[2]),
                _mm512_shuffle_f64x2::<0xDD>(t[0], t[2]),
                _mm512_shuffle_f64x2::<0x88>(t[1], t[3]),
                _mm512_shuffle_f64x2::<0xDD>(t[1], t[3]),
                _mm512_shuffle_f64x2::<0x88>(t[4], t[6]),
                _mm512_shuffle_f64x2::<0xDD>(t[4], t[6]),
                _mm512_shuffle_f64x2::<0x88>(t[5], t[7]),
                _mm512_shuffle_f64x2::<0xDD>(t[5], t[7]),
            ];
            [
                Avx512(_mm512_shuffle_f64x2::<0x88>(u[0], u[4])),
                Avx512(_mm512_shuffle_f64x2::<0x88>(u[2], u[6])),
                Avx512(_mm512_shuffle_f64x2::<0x88>(u[1], u[5])),
                Avx512(_mm512_shuffle_f64x2::<0x88>(u[3], u[7])),
                Avx512(_mm512_shuffle_f64x2::<0xDD>(u[0], u[4])),
                Avx512(_mm512_shuffle_f64x2::<0xDD>(u[2], u[6])),
                Avx512(_mm512_shuffle_f64x2::<0xDD>(u[1], u[5])),
                Avx512(_mm512_shuffle_f64x2::<0xDD>(u[3], u[7])),
            ]
        }
    }

    /// 8 lanes as two AVX2 registers: lanes 0-3, lanes 4-7.
    #[derive(Clone, Copy)]
    pub(super) struct Avx2([__m256d; 2]);

    impl Lanes for Avx2 {
        #[inline(always)]
        fn splat(x: f64) -> Self {
            // SAFETY (all methods of Avx2): values of this type exist only
            // on CPUs with AVX2 (see the module doc).
            let v = unsafe { _mm256_set1_pd(x) };
            Self([v, v])
        }
        #[inline(always)]
        fn load(x: &Block) -> Self {
            // SAFETY: AVX2 as above; the pointers reach the 8 values of `x`.
            unsafe { Self([_mm256_loadu_pd(x.as_ptr()), _mm256_loadu_pd(x[4..].as_ptr())]) }
        }
        #[inline(always)]
        fn store(self, out: &mut Block) {
            // SAFETY: AVX2 as above; the pointers reach the 8 values of `out`.
            unsafe {
                _mm256_storeu_pd(out.as_mut_ptr(), self.0[0]);
                _mm256_storeu_pd(out[4..].as_mut_ptr(), self.0[1]);
            }
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            // SAFETY: AVX2 as above.
            let ([a, b], [c, d]) = (self.0, other.0);
            unsafe { Self([_mm256_add_pd(a, c), _mm256_add_pd(b, d)]) }
        }
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            // SAFETY: AVX2 as above.
            let ([a, b], [c, d]) = (self.0, other.0);
            unsafe { Self([_mm256_sub_pd(a, c), _mm256_sub_pd(b, d)]) }
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            // SAFETY: AVX2 as above.
            let ([a, b], [c, d]) = (self.0, other.0);
            unsafe { Self([_mm256_mul_pd(a, c), _mm256_mul_pd(b, d)]) }
        }
        #[inline(always)]
        fn deinterleave(low: Self, high: Self) -> (Self, Self) {
            // SAFETY: AVX2 as above.
            unsafe {
                // unpack gives [x0, x4, x2, x6]; 0xD8 orders it [x0, x2, x4, x6].
                let ([a, b], [c, d]) = (low.0, high.0);
                let (even_low, even_high) = (_mm256_unpacklo_pd(a, b), _mm256_unpacklo_pd(c, d));
                let (odd_low, odd_high) = (_mm256_unpackhi_pd(a, b), _mm256_unpackhi_pd(c, d));
                (
                    Self([
                        _mm256_permute4x64_pd::<0xD8>(even_low),
                        _mm256_permute4x64_pd::<0xD8>(even_high),
                    ]),
                    Self([
                        _mm256_permute4x64_pd::<0xD8>(odd_low),
                        _mm256_permute4x64_pd::<0xD8>(odd_high),
                    ]),
                )
            }
        }
        #[inline(always)]
        fn transpose(rows: [Self; 8]) -> [Self; 8] {
            // SAFETY: AVX2 as above.
            let (top_left, top_right, bottom_left, bottom_right) = unsafe {
                (
                    transpose4_avx2([rows[0].0[0], rows[1].0[0], rows[2].0[0], rows[3].0[0]]),
                    transpose4_avx2([rows[0].0[1], rows[1].0[1], rows[2].0[1], rows[3].0[1]]),
                    transpose4_avx2([rows[4].0[0], rows[5].0[0], rows[6].0[0], rows[7].0[0]]),
                    transpose4_avx2([rows[4].0[1], rows[5].0[1], rows[6].0[1], rows[7].0[1]]),
                )
            };
            let mut columns = rows;
            for i in 0..4 {
                columns[i] = Self([top_left[i], bottom_left[i]]);
                columns[i + 4] = Self([top_right[i], bottom_right[i]]);
            }
            columns
        }
        #[inline(always)]
        fn mirror(a: Self, b: Self) -> Self {
            // SAFETY: AVX2 as above.
            unsafe {
                // Blend lane 0 in, then reverse lanes 1-3: [0, 3, 2, 1] is 0x6C.
                let low = _mm256_blend_pd::<1>(a.0[1], b.0[0]);
                let high = _mm256_blend_pd::<1>(a.0[0], a.0[1]);
                Self([
                    _mm256_permute4x64_pd::<0x6C>(low),
                    _mm256_permute4x64_pd::<0x6C>(high),
                ])
            }
        }
        #[inline(always)]
        fn reverse(self) -> Self {
            // SAFETY: AVX2 as above.
            unsafe {
                // 0x1B: lanes [3, 2, 1, 0] of each half, then the halves swapped.
                let [low, high] = self.0;
                Self([
                    _mm256_permute4x64_pd::<0x1B>(high),
                    _mm256_permute4x64_pd::<0x1B>(low),
                ])
            }
        }
        #[inline(always)]
        fn interleave(a: Self, b: Self) -> (Self, Self) {
            // SAFETY: AVX2 as above.
            unsafe {
                // unpack gives [a0, b0, a2, b2] and [a1, b1, a3, b3]; the
                // 128-bit halves are then put in order.
                let ([a_low, a_high], [b_low, b_high]) = (a.0, b.0);
                let (even_low, odd_low) =
                    (_mm256_unpacklo_pd(a_low, b_low), _mm256_unpackhi_pd(a_low, b_low));
                let (even_high, odd_high) = (
                    _mm256_unpacklo_pd(a_high, b_high),
                    _mm256_unpackhi_pd(a_high, b_high),
                );
                (
                    Self([
                        _mm256_permute2f128_pd::<0x20>(even_low, odd_low),
                        _mm256_permute2f128_pd::<0x31>(even_low, odd_low),
                    ]),
                    Self([
                        _mm256_permute2f128_pd::<0x20>(even_high, odd_high),
                        _mm256_permute2f128_pd::<0x31>(even_high, odd_high),
                    ]),
                )
            }
        }
    }

    #[inline(always)]
    unsafe fn transpose4_avx2(r: [__m256d; 4]) -> [__m256d; 4] {
        // SAFETY: the caller runs on a CPU with AVX2.
        unsafe {
            let (t0, t1) = (_mm256_unpacklo_pd(r[0], r[1]), _mm256_unpackhi_pd(r[0], r[1]));
            let (t2, t3) = (_mm256_unpacklo_pd(r[2], r[3]), _mm256_unpackhi_pd(r[2], r[3]));
            [
                _mm256_permute2f128_pd::<0x20>(t0, t2),
                _mm256_permute2f128_pd::<0x20>(t1, t3),
                _mm256_permute2f128_pd::<0x31>(t0, t2),
                _mm256_permute2f128_pd::<0x31>(t1, t3),
            ]
        }
    }
}

/// 8 complex lanes, split into real and imaginary vectors.
#[derive(Clone, Copy)]
struct Complex<V> {
    re: V,
    im: V,
}

impl<V: Lanes> Complex<V> {
    #[inline(always)]
    fn load(pair: &Pair) -> Self {
        Self {
            re: V::load(&pair.0[0]),
            im: V::load(&pair.0[1]),
        }
    }
    #[inline(always)]
    fn store(self, pair: &mut Pair) {
        self.re.store(&mut pair.0[0]);
        self.im.store(&mut pair.0[1]);
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self {
            re: self.re.add(o.re),
            im: self.im.add(o.im),
        }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Self {
            re: self.re.sub(o.re),
            im: self.im.sub(o.im),
        }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Self {
            re: self.re.mul(o.re).sub(self.im.mul(o.im)),
            im: self.re.mul(o.im).add(self.im.mul(o.re)),
        }
    }
    /// self − i·o, without a negation.
    #[inline(always)]
    fn sub_i(self, o: Self) -> Self {
        Self {
            re: self.re.add(o.im),
            im: self.im.sub(o.re),
        }
    }
    /// self + i·o.
    #[inline(always)]
    fn add_i(self, o: Self) -> Self {
        Self {
            re: self.re.sub(o.im),
            im: self.im.add(o.re),
        }
    }
}

#[inline(always)]
fn dft4<V: Lanes>(b: [Complex<V>; 4]) -> [Complex<V>; 4] {
    let (t0, t1) = (b[0].add(b[2]), b[0].sub(b[2]));
    let (t2, t3) = (b[1].add(b[3]), b[1].sub(b[3]));
    [t0.add(t2), t1.sub_i(t3), t0.sub(t2), t1.add_i(t3)]
}

/// 8-point forward DFT of 8 vectors, lane by lane (radix 2 over two
/// 4-point DFTs; W_8 and W_8^3 multiply by 1/√2 once).
#[inline(always)]
fn dft8<V: Lanes>(a: [Complex<V>; 8]) -> [Complex<V>; 8] {
    let e = dft4([a[0], a[2], a[4], a[6]]);
    let o = dft4([a[1], a[3], a[5], a[7]]);
    let s = V::splat(std::f64::consts::FRAC_1_SQRT_2);
    // W_8·o1 = ((x + y) + i(y − x))/√2.
    let w1 = Complex {
        re: s.mul(o[1].re.add(o[1].im)),
        im: s.mul(o[1].im.sub(o[1].re)),
    };
    // W_8^3·o3 = ((y − x) − i(x + y))/√2, kept as q = (y − x, x + y)/√2.
    let q = Complex {
        re: s.mul(o[3].im.sub(o[3].re)),
        im: s.mul(o[3].re.add(o[3].im)),
    };
    [
        e[0].add(o[0]),
        e[1].add(w1),
        e[2].sub_i(o[2]),
        Complex {
            re: e[3].re.add(q.re),
            im: e[3].im.sub(q.im),
        },
        e[0].sub(o[0]),
        e[1].sub(w1),
        e[2].add_i(o[2]),
        Complex {
            re: e[3].re.sub(q.re),
            im: e[3].im.add(q.im),
        },
    ]
}

/// Steps 1 and 2: 8-point DFTs down the columns, then the twiddles (none
/// for row 0, where k1 = 0).
#[inline(always)]
fn rows_dft8<V: Lanes>(t: &Tables, rows: [Complex<V>; 8]) -> [Complex<V>; 8] {
    let mut out = dft8(rows);
    for (row, twiddle) in out.iter_mut().zip(&t.row_twiddles).skip(1) {
        *row = row.mul(Complex::load(twiddle));
    }
    out
}

/// Step 3: transposes, then the column DFTs. Output
/// vector k2 holds 8 consecutive bins of Z.
#[inline(always)]
fn columns_dft8<V: Lanes>(rows: [Complex<V>; 8]) -> [Complex<V>; 8] {
    let (mut re, mut im) = ([rows[0].re; 8], [rows[0].im; 8]);
    for i in 0..8 {
        (re[i], im[i]) = (rows[i].re, rows[i].im);
    }
    let (re, im) = (V::transpose(re), V::transpose(im));
    let mut columns = rows;
    for i in 0..8 {
        columns[i] = Complex { re: re[i], im: im[i] };
    }
    dft8(columns)
}

/// Σx / n in 4 chains of 8 lanes (a single chain of adds would take a
/// latency per sample), summed in a fixed order: the same bits on every
/// path.
#[inline(always)]
fn mean<V: Lanes>(x: &[Block], n: usize) -> f64 {
    let blocks = x.as_chunks::<4>().0;
    let mut sums = [
        V::load(&blocks[0][0]),
        V::load(&blocks[0][1]),
        V::load(&blocks[0][2]),
        V::load(&blocks[0][3]),
    ];
    for four in &blocks[1..] {
        for (sum, block) in sums.iter_mut().zip(four) {
            *sum = sum.add(V::load(block));
        }
    }
    let mut lanes = [0.0; 8];
    sums[0].add(sums[1]).add(sums[2].add(sums[3])).store(&mut lanes);
    let [a, b, c, d, e, f, g, h] = lanes;
    // n is a power of two: the product by 1/n is exact, the same bits as
    // the division, without its latency ahead of every row.
    debug_assert!(n.is_power_of_two());
    (((a + b) + (c + d)) + ((e + f) + (g + h))) * (1.0 / n as f64)
}

/// Half of a row's samples, detrended and windowed.
#[inline(always)]
fn load_samples<V: Lanes>(x: &Block, w: &Block, mean: V) -> V {
    V::load(x).sub(mean).mul(V::load(w))
}

/// Row r: z[8r..8r+8] from samples 16r..16r+16, detrended and windowed.
#[inline(always)]
fn load_row<V: Lanes>(x: &[Block], w: &[Block], mean: V, r: usize) -> Complex<V> {
    let low = load_samples(&x[2 * r], &w[2 * r], mean);
    let high = load_samples(&x[2 * r + 1], &w[2 * r + 1], mean);
    let (re, im) = V::deinterleave(low, high);
    Complex { re, im }
}

/// |FFT((x − mean)·w)|² of the first n samples into `power[..=n/2]`.
/// No closures here: see the `x86` module.
#[inline(always)]
fn spectrum<V: Lanes>(t: &Tables, x: &[f64], w: &[f64], scratch: &mut [Pair], power: &mut [f64]) {
    let n = t.n;
    let (x, w) = (x[..n].as_chunks::<8>().0, w[..n].as_chunks::<8>().0);
    let power = &mut power[..=n / 2];
    let mean = V::splat(mean::<V>(x, n));
    if n == 256 {
        spectrum_256(t, x, w, mean, scratch, power);
        return;
    }
    let mut rows = [load_row(x, w, mean, 0); 8];
    for (r, row) in rows.iter_mut().enumerate().skip(1) {
        *row = load_row(x, w, mean, r);
    }
    let z = dft64(t, rows);
    for (v, out) in power.as_chunks_mut::<8>().0.iter_mut().enumerate() {
        let partner = mirror(z[7 - v], z[(8 - v) & 7]);
        split_bins(z[v], partner, &t.split_twiddles[v]).store(out);
    }
    power[n / 2] = nyquist(z[0]);
}

/// A 64-point DFT of 8 rows of 8 lanes in registers: steps 1-3 with
/// M = 8. Vector v of the result holds bins 8v..8v+8.
#[inline(always)]
fn dft64<V: Lanes>(t: &Tables, rows: [Complex<V>; 8]) -> [Complex<V>; 8] {
    columns_dft8(rows_dft8(t, rows))
}

/// n = 256 as a radix-2 split of z (128 points) into two 64-point DFTs
/// in registers: the even bins of Z from top + bottom rows, the odd ones
/// from (top − bottom)·W_128^m. The even bins pair with even partners
/// (Z[N−2k] = Z_even[64−k]), the odd ones with odd (Z_odd[63−k], a lane
/// reversal); the two spectra are interleaved on the way out.
#[inline(always)]
fn spectrum_256<V: Lanes>(
    t: &Tables,
    x: &[Block],
    w: &[Block],
    mean: V,
    scratch: &mut [Pair],
    power: &mut [f64],
) {
    let (bottom_rows, even_powers) = scratch[..16].split_at_mut(8);
    let mut top = [load_row(x, w, mean, 0); 8];
    for (r, (row, stored)) in top.iter_mut().zip(bottom_rows.iter_mut()).enumerate() {
        let (a, b) = (load_row(x, w, mean, r), load_row(x, w, mean, r + 8));
        *row = a.add(b);
        a.sub(b).mul(Complex::load(&t.half_twiddles[r])).store(stored);
    }
    let even = dft64(t, top);
    for (v, stored) in even_powers.iter_mut().enumerate() {
        let partner = mirror(even[7 - v], even[(8 - v) & 7]);
        split_bins(even[v], partner, &t.split_twiddles[v]).store(&mut stored.0[0]);
    }
    let mut bottom = top;
    for (row, stored) in bottom.iter_mut().zip(bottom_rows.iter()) {
        *row = Complex::load(stored);
    }
    let odd = dft64(t, bottom);
    for (v, out) in power.as_chunks_mut::<16>().0.iter_mut().enumerate() {
        let partner = Complex {
            re: odd[7 - v].re.reverse(),
            im: odd[7 - v].im.reverse(),
        };
        let odd_powers = split_bins(odd[v], partner, &t.odd_split_twiddles[v]);
        let (low, high) = V::interleave(V::load(&even_powers[v].0[0]), odd_powers);
        let [out_low, out_high] = out.as_chunks_mut::<8>().0 else {
            continue;
        };
        low.store(out_low);
        high.store(out_high);
    }
    power[128] = nyquist(even[0]);
}

/// Lane l of the result is Z[N − 8v − l] for vector v of Z (8 vectors):
/// lane 8 − l of `before` (vector 7−v) or, for l = 0, lane 0 of `after`
/// (vector 8−v, or Z[0] itself for v = 0).
#[inline(always)]
fn mirror<V: Lanes>(before: Complex<V>, after: Complex<V>) -> Complex<V> {
    Complex {
        re: V::mirror(before.re, after.re),
        im: V::mirror(before.im, after.im),
    }
}

/// Step 4 for 8 bins k: X[k] = ½(S − i·W_n^k·D), S = Z[k] + conj Z[N−k],
/// D = Z[k] − conj Z[N−k], so |X[k]|² = ¼|S − i·W·D|².
#[inline(always)]
fn split_bins<V: Lanes>(zk: Complex<V>, partner: Complex<V>, twiddle: &Pair) -> V {
    let s = Complex {
        re: zk.re.add(partner.re),
        im: zk.im.sub(partner.im),
    };
    let d = Complex {
        re: zk.re.sub(partner.re),
        im: zk.im.add(partner.im),
    };
    let u = Complex::load(twiddle).mul(d);
    let (re, im) = (s.re.add(u.im), s.im.sub(u.re));
    re.mul(re).add(im.mul(im)).mul(V::splat(0.25))
}

/// |X[N]|², X[N] = Re Z[0] − Im Z[0].
#[inline(always)]
fn nyquist<V: Lanes>(z0: Complex<V>) -> f64 {
    let mut lanes = Pair([[0.0; 8]; 2]);
    z0.store(&mut lanes);
    let x = lanes.0[0][0] - lanes.0[1][0];
    x * x
}

#[cfg(test)]
mod tests {
    use super::*;
    use realfft::RealFftPlanner;

    fn supported() -> impl Iterator<Item = usize> {
        [128, 256].into_iter()
    }

    fn hann(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
            .collect()
    }

    /// Uniform in [−1, 1) plus `offset`.
    fn noise(n: usize, seed: u64, offset: f64) -> Vec<f64> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                offset + (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect()
    }

    /// Slow reference: realfft of the same detrended, windowed input.
    fn reference(x: &[f64], mean: f64, w: &[f64]) -> Vec<f64> {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(x.len());
        let mut input: Vec<f64> = x.iter().zip(w).map(|(x, w)| (x - mean) * w).collect();
        let mut spectrum = fft.make_output_vec();
        fft.process(&mut input, &mut spectrum).unwrap();
        spectrum.iter().map(|c| c.norm_sqr()).collect()
    }

    fn ours<V: Lanes>(x: &[f64], w: &[f64]) -> Vec<f64> {
        let mut plan = PowerSpectrum::new(x.len()).unwrap();
        let mut power = vec![f64::NAN; x.len() / 2 + 1];
        spectrum::<V>(&plan.tables, x, w, &mut plan.scratch, &mut power);
        power
    }

    fn mean(x: &[f64]) -> f64 {
        x.iter().sum::<f64>() / x.len() as f64
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|p| p.to_bits()).collect()
    }

    #[test]
    fn every_simd_path_gives_the_portable_bits() {
        for n in supported() {
            for seed in 0..3 {
                let x = noise(n, seed, 1e4);
                let w = hann(n);
                let portable = ours::<Portable>(&x, &w);
                assert!(portable.iter().all(|p| p.is_finite()));
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    let avx2 = ours::<x86::Avx2>(&x, &w);
                    assert_eq!(bits(&avx2), bits(&portable), "AVX2, n {n}");
                }
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f") {
                    let avx512 = ours::<x86::Avx512>(&x, &w);
                    assert_eq!(bits(&avx512), bits(&portable), "AVX-512, n {n}");
                }
                let mut dispatched = vec![0.0; n / 2 + 1];
                PowerSpectrum::new(n).unwrap().compute(&x, &w, &mut dispatched);
                assert_eq!(bits(&dispatched), bits(&portable), "dispatched, n {n}");
            }
        }
    }

    /// Worst |ours − realfft| over the largest bin.
    fn worst_error(x: &[f64], w: &[f64]) -> f64 {
        let m = mean(x);
        let (ours, reference) = (ours::<Portable>(x, w), reference(x, m, w));
        let largest = reference.iter().fold(0.0_f64, |a, &b| a.max(b));
        ours.iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
            / largest
    }

    #[test]
    fn agrees_with_realfft() {
        for n in supported() {
            let w = hann(n);
            for seed in 0..3 {
                let error = worst_error(&noise(n, seed, 50.0), &w);
                assert!(error < 1e-12, "noise, n {n}: {error:e}");
            }
            // EEG-like: drift, alpha line, 50 Hz hum and noise at 128 Hz.
            let eeg: Vec<f64> = noise(n, 9, 0.0)
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    let t = i as f64 / 128.0;
                    -30.0
                        + 4.0 * t
                        + 20.0 * (2.0 * std::f64::consts::PI * 10.3 * t).sin()
                        + 5.0 * (2.0 * std::f64::consts::PI * 50.0 * t).cos()
                        + 3.0 * u
                })
                .collect();
            let error = worst_error(&eeg, &w);
            assert!(error < 1e-12, "eeg-like, n {n}: {error:e}");
        }
    }

    #[test]
    fn a_sine_lands_in_its_bin() {
        for n in supported() {
            for k in [1, 5, n / 4 + 3, n / 2 - 1] {
                let x: Vec<f64> = (0..n)
                    .map(|i| (2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64).cos())
                    .collect();
                let power = ours::<Portable>(&x, &vec![1.0; n]);
                // A unit cosine at bin k: |X[k]| = n/2, every other bin 0.
                for (bin, p) in power.iter().enumerate() {
                    let expected = if bin == k { (n * n / 4) as f64 } else { 0.0 };
                    assert!(
                        (p - expected).abs() < 1e-9 * (n * n) as f64,
                        "n {n}, k {k}, bin {bin}: {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn only_supported_lengths_get_a_plan() {
        for n in [0, 2, 64, 100, 129, 192, 512, 1024] {
            assert!(PowerSpectrum::new(n).is_none(), "{n}");
        }
        assert!(supported().all(|n| PowerSpectrum::new(n).is_some()));
    }
}
