//! Adaptive, length-limited Rice coding of zigzagged residuals.
//!
//! Each residual's Rice parameter comes from a running mean of the ones
//! before it (as LOCO-I/JPEG-LS and Monkey's Audio adapt theirs), so the
//! code follows the signal's changing loudness sample by sample — a QRS
//! complex, an artefact — instead of per partition, and the encoder has no
//! parameters to search or store. A quotient of [`ESCAPE_ZEROS`] or more is
//! written as that many zeros followed by the value in the channel's escape
//! width, so one outlier costs at most `ESCAPE_ZEROS + width` bits and
//! decoding loops are bounded.

use super::bits::{BitReader, BitWriter, BulkWriter, Window, WINDOW};
use super::CodecError;

pub(crate) const MAX_PARAMETER: u32 = 31;
pub(crate) const PARAMETER_BITS: u32 = 5;
pub(crate) const ESCAPE_ZEROS: u32 = 24;

#[inline]
pub(crate) fn zigzag(r: i64) -> u64 {
    ((r << 1) ^ (r >> 63)) as u64
}

#[inline]
pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bits needed to write `u` (0 for 0).
pub(crate) fn width(u: u64) -> u32 {
    64 - u.leading_zeros()
}

/// The running mean forgets with weight 2^-ADAPT_SHIFT per residual (about
/// the last 8 residuals count). Measured on the four records against 4 and
/// 5: 3 codes MIT-BIH 100 0.1–0.4 % smaller and the others within 0.1 %.
pub(crate) const ADAPT_SHIFT: u32 = 3;
/// k = width(mean · 17/16 / 2): for a geometric residual of mean μ the best
/// Rice parameter is near log2(μ·ln 2); this rounding of it measured best
/// (within 0.1 % of 16/16 and 18/16, 2–5 % better than 12/16 or 24/16).
const PARAMETER_SCALE: u64 = 17;
const PARAMETER_SHIFT: u32 = ADAPT_SHIFT + 1 + 4;
/// Residuals enter the running mean clipped to this, so the state stays below 2^(33 + ADAPT_SHIFT)
/// and its product with PARAMETER_SCALE below 2^41.
const UPDATE_CAP: u64 = 1 << 32;

/// The Rice parameter for running-mean state `mean`.
#[inline(always)]
pub(crate) fn adaptive_parameter(mean: u64) -> u32 {
    width((mean * PARAMETER_SCALE) >> PARAMETER_SHIFT).min(MAX_PARAMETER)
}

/// The state after coding `u`: an exponential moving average, scaled by 2^ADAPT_SHIFT.
#[inline(always)]
pub(crate) fn adapt(mean: u64, u: u64) -> u64 {
    mean - (mean >> ADAPT_SHIFT) + u.min(UPDATE_CAP)
}

/// The smallest state whose parameter is `k`, the coder's start.
pub(crate) fn initial_mean(k: u32) -> u64 {
    if k == 0 {
        0
    } else {
        // ⌈2^(k−1+PARAMETER_SHIFT) / 17⌉: its product with 17 lies in
        // [2^(k−1+S), 2^(k−1+S) + 17), inside the band of parameter k.
        (1u64 << (k - 1 + PARAMETER_SHIFT)).div_ceil(PARAMETER_SCALE)
    }
}

/// The starting parameter: that of the mean of the first 16 residuals.
pub(crate) fn initial_parameter(zigzagged: &[u64]) -> u32 {
    let head = &zigzagged[..zigzagged.len().min(16)];
    let sum = head
        .iter()
        .fold(0u64, |a, &u| a.saturating_add(u.min(UPDATE_CAP)));
    let mean = sum / head.len().max(1) as u64;
    adaptive_parameter(mean << ADAPT_SHIFT)
}

/// Writes the start parameter (5 bits) then every residual with the adaptive
/// parameter; `room` is scratch space kept by the caller (see `begin_bulk`).
#[inline(always)]
pub(crate) fn write_adaptive(
    writer: &mut BitWriter,
    room: &mut Vec<u8>,
    zigzagged: &[u64],
    escape_width: u32,
) {
    let k0 = initial_parameter(zigzagged);
    writer.write(u64::from(k0), PARAMETER_BITS);
    // A value takes at most 24 + 1 + 31 bits, or 24 + escape_width as an escape.
    let max_bits = zigzagged.len() * (ESCAPE_ZEROS + escape_width.max(32)) as usize;
    let mut w = writer.begin_bulk(room, max_bits);
    if escape_width <= NARROW_WIDTH {
        write_narrow(&mut w, zigzagged, initial_mean(k0), escape_width);
    } else {
        write_values::<false>(&mut w, zigzagged, initial_mean(k0), escape_width);
    }
    let end = w.end();
    writer.end_bulk(room, end);
}

/// [`write_values`]`::<true>` (values below 2^28), a chunk of [`CHUNK`]
/// values at a time, software-pipelined.
///
/// Only the running mean is a serial chain (two dependent steps per value),
/// so it runs apart from the codes: [`narrow_means`] records the state
/// before each value; the codes then depend on nothing but their value and
/// that state and are built for a whole chunk at once in vector lanes
/// ([`narrow_codes`]); packing them into bits is the last step. The chain of
/// the next chunk runs inside the packing loop of this one
/// ([`pack_and_chain`]), so its latency hides under the packing's work. Each
/// chunk goes into a [`Window`] (no bounds checks): a code is at most 52
/// bits (23 + 1 + 28, or 24 + 28 for an escape), so a chunk takes at most
/// 416 bytes of the window's 504.
#[inline(always)]
fn write_narrow(w: &mut BulkWriter, zigzagged: &[u64], mean: u64, escape_width: u32) {
    const _: () = assert!(CHUNK * 52 / 8 + 8 <= WINDOW);
    let escape_bits = ESCAPE_ZEROS + escape_width;
    // The state before each value of the chunk, and the value, in u32
    // lanes (both below 2^31); past a short chunk's end, stale entries.
    let (mut means, mut values) = ([0u32; CHUNK], [0u32; CHUNK]);
    let mut codes = [0u32; CHUNK];
    let mut lens = [0u32; CHUNK];
    let mut quads = Quads::default();
    let head = &zigzagged[..zigzagged.len().min(CHUNK)];
    // From here on, `mean` is the state after the chunk `means` describes.
    let mut mean = narrow_means(head, mean, &mut means, &mut values);
    let mut done = 0;
    while done < zigzagged.len() {
        let Some(mut window) = w.window() else { break };
        let chunk = &zigzagged[done..zigzagged.len().min(done + CHUNK)];
        let next = &zigzagged[done + chunk.len()..zigzagged.len().min(done + chunk.len() + CHUNK)];
        // Whole arrays (a short chunk's stale tail is coded and ignored),
        // so the loops have a fixed trip count and full vectors.
        narrow_codes(&values, &means, escape_bits, &mut codes, &mut lens);
        quads.join(&codes, &lens);
        match next.first_chunk::<CHUNK>() {
            Some(next) if chunk.len() == CHUNK => {
                let state = (&mut means, &mut values);
                mean = pack_and_chain(&mut window, &quads, &codes, &lens, next, mean, state);
            }
            _ => {
                pack(&mut window, &quads, &codes[..chunk.len()], &lens[..chunk.len()]);
                mean = narrow_means(next, mean, &mut means, &mut values);
            }
        }
        let end = window.end();
        w.advance(end);
        done += chunk.len();
    }
    // Only if the room ran short, which `begin_bulk`'s reservation rules
    // out; `means[0]` is then the state before `zigzagged[done]`.
    if done < zigzagged.len() {
        write_values::<true>(w, &zigzagged[done..], means[0].into(), escape_width);
    }
}

/// Values per chunk of [`write_narrow`].
const CHUNK: usize = 64;

/// Each four consecutive codes of a chunk joined into one (at 2–8 bits per
/// value they nearly always fit in 56 bits, so most writes carry four
/// codes), in a pass of its own: no code depends on another, so LLVM joins
/// several quads at once in vector lanes, and the packing loop keeps its
/// state in registers (joining there spilled the mean and the bit buffer).
#[derive(Default)]
struct Quads {
    /// The four codes one after the other, left-aligned (when they fit).
    joined: [u64; CHUNK / 4],
    /// Their total length in bits.
    totals: [u64; CHUNK / 4],
}

impl Quads {
    /// Joins the quads of `codes` and `lens` (from [`narrow_codes`]).
    #[inline(always)]
    fn join(&mut self, codes: &[u32; CHUNK], lens: &[u32; CHUNK]) {
        let quads = codes.chunks_exact(4).zip(lens.chunks_exact(4));
        let out = self.joined.iter_mut().zip(self.totals.iter_mut());
        for ((joined, total), (c, b)) in out.zip(quads) {
            let b = [b[0], b[1], b[2], b[3]].map(u64::from);
            *total = b[0] + b[1] + b[2] + b[3];
            // Each code goes below the ones before it. Shifts wrap instead of
            // panicking: they only reach 64 when the total is over 56, and the
            // join is then unused.
            let right = (1..4).fold(u64::from(c[0]), |acc, i| {
                acc.wrapping_shl(b[i] as u32) | u64::from(c[i])
            });
            *joined = right.wrapping_shl(64u64.wrapping_sub(*total) as u32);
        }
    }

    /// Writes quad `q` of `codes` and `lens` (joined by [`Self::join`]): in
    /// one write when it fits in 56 bits, else two by two.
    #[inline(always)]
    fn put(&self, window: &mut Window, q: usize, codes: &[u32], lens: &[u32]) {
        if self.totals[q] <= 56 {
            window.put_left(self.joined[q], self.totals[q] as u32);
        } else {
            let (c, b) = (&codes[4 * q..4 * q + 4], &lens[4 * q..4 * q + 4]);
            put_pair(window, [c[0], c[1]], [b[0], b[1]]);
            put_pair(window, [c[2], c[3]], [b[2], b[3]]);
        }
    }
}

/// Packs a chunk's codes and lengths (from [`narrow_codes`]), whose whole
/// quads `quads` has joined.
#[inline(always)]
fn pack(window: &mut Window, quads: &Quads, codes: &[u32], lens: &[u32]) {
    for q in 0..codes.len() / 4 {
        quads.put(window, q, codes, lens);
    }
    let done = codes.len() / 4 * 4;
    for (&c, &b) in codes[done..].iter().zip(&lens[done..]) {
        window.put_left(left_aligned(c, b), b);
    }
}

/// A code of `bits` (1–52) bits moved to the top of a u64.
#[inline(always)]
fn left_aligned(code: u32, bits: u32) -> u64 {
    u64::from(code) << (64 - bits)
}

/// Two codes, joined into one write when they fit.
#[inline(always)]
fn put_pair(window: &mut Window, c: [u32; 2], b: [u32; 2]) {
    let (first, second) = (left_aligned(c[0], b[0]), left_aligned(c[1], b[1]));
    if b[0] + b[1] <= 56 {
        window.put_left(first | (second >> b[0]), b[0] + b[1]);
    } else {
        window.put_left(first, b[0]);
        window.put_left(second, b[1]);
    }
}

/// [`pack`] of a full chunk, with [`narrow_means`] of the next chunk
/// interleaved, four values per quad packed: the two are independent, so
/// the mean chain's latency overlaps the packing's work. Returns the state
/// after `next`, whose states before each value go to `means`.
#[inline(always)]
fn pack_and_chain(
    window: &mut Window,
    quads: &Quads,
    codes: &[u32; CHUNK],
    lens: &[u32; CHUNK],
    next: &[u64; CHUNK],
    mut mean: u64,
    (means, values): (&mut [u32; CHUNK], &mut [u32; CHUNK]),
) -> u64 {
    for q in 0..CHUNK / 4 {
        for j in 4 * q..4 * q + 4 {
            (means[j], values[j]) = (mean as u32, next[j] as u32); // below 2^31, 2^28
            mean = narrow_adapt(mean, next[j]);
        }
        quads.put(window, q, codes, lens);
    }
    mean
}

/// The serial pass: into `means`, the state before each value (below 2^31,
/// so in a u32), the value into `values` (below 2^28), and the state after
/// the last one ([`narrow_adapt`]: two dependent steps per value).
#[inline(always)]
fn narrow_means(chunk: &[u64], mut mean: u64, means: &mut [u32; CHUNK], values: &mut [u32; CHUNK]) -> u64 {
    for ((m, v), &u) in means.iter_mut().zip(values.iter_mut()).zip(chunk) {
        (*m, *v) = (mean as u32, u as u32);
        mean = narrow_adapt(mean, u);
    }
    mean
}

/// [`adapt`] of a state below 2^31 by a value below 2^28 (so no clamp
/// acts; see [`write_values`]), as two dependent steps: `mean + u` is taken
/// beside `mean >> 3`, then the one subtracted from the other. Written
/// plainly, LLVM reassociates it into `(mean − (mean >> 3)) + u`, three
/// dependent steps; the sum in u32 (exact: below 2^31 + 2^28) keeps it
/// apart. The serial chain of the Rice writer, so its latency counts.
#[inline(always)]
fn narrow_adapt(mean: u64, u: u64) -> u64 {
    let sum = (mean as u32).wrapping_add(u as u32);
    u64::from(sum) - (mean >> ADAPT_SHIFT)
}

/// [`adaptive_parameter`] of a state below 2^31 in u32 arithmetic and
/// without a bit scan, so it vectorises eight lanes at a time. With m =
/// 256a + b (b < 256), (17·m) >> 8 = 17a + ((17b) >> 8) exactly, and below
/// 2^28 (17·m itself would overflow a u32). Its width is that of x = 2t + 1
/// less one (width(1) = 1 covers t = 0), i.e. ⌊log2 x⌋: x < 2^29 converts to
/// an f32 whose exponent is ⌊log2 x⌋, or one more where rounding carried
/// into the next power of two (x ≥ 2^24), which `x >> e == 0` detects.
#[inline(always)]
fn narrow_parameter(mean: u32) -> u32 {
    let scale = PARAMETER_SCALE as u32;
    let low = (1 << PARAMETER_SHIFT) - 1;
    let t = scale * (mean >> PARAMETER_SHIFT) + ((scale * (mean & low)) >> PARAMETER_SHIFT);
    let x = 2 * t + 1;
    let e = ((x as i32 as f32).to_bits() >> 23) - 127;
    e - u32::from(x >> e == 0)
}

/// Each value's code (right-aligned) into `codes` and its length in bits
/// into `lens`, from the state before it in `means`: q = u >> k zeros, a one
/// and the k low bits, or for q ≥ 24 the value in 24 + escape width bits
/// (its 24 zeros are the value's own leading bits). No value depends on
/// another, and values below 2^28 and codes below 2^29 fit in u32 lanes, so
/// LLVM builds them eight at a time (AVX2 variable shifts).
#[inline(always)]
fn narrow_codes(
    values: &[u32; CHUNK],
    means: &[u32; CHUNK],
    escape_bits: u32,
    codes: &mut [u32; CHUNK],
    lens: &mut [u32; CHUNK],
) {
    for i in 0..CHUNK {
        let (u, mean) = (values[i], means[i]);
        let k = narrow_parameter(mean);
        let quotient = u >> k;
        let one = 1u32 << k;
        let fits = quotient < ESCAPE_ZEROS;
        lens[i] = if fits { quotient + 1 + k } else { escape_bits };
        codes[i] = if fits { one | (u & (one - 1)) } else { u };
    }
}

/// Widest values (`escape_width`) of the narrow loop of [`write_values`].
const NARROW_WIDTH: u32 = 28;

/// The Rice codes of `zigzagged` from running-mean state `mean`.
///
/// `NARROW` (every value below 2^28, as with 16- and 24-bit samples) drops
/// two clamps that cannot act: the first parameter is then at most 28
/// (that of a mean below 2^28), so the state starts below 2^31 and stays
/// there (7/8 of a state below 2^31, plus a value below 2^28, is below
/// 2^31); `(17·state) >> 8` is below 2^28, its width at most 28, so the
/// parameter's `min(31)` and the update's `min(2^32)` are no-ops. An escape
/// is then one write of 24 + `escape_width` ≤ 52 bits: the zeros are the
/// value's own leading bits.
#[inline(always)]
fn write_values<const NARROW: bool>(w: &mut BulkWriter, zigzagged: &[u64], mut mean: u64, escape_width: u32) {
    for &u in zigzagged {
        let k = if NARROW {
            width((mean * PARAMETER_SCALE) >> PARAMETER_SHIFT)
        } else {
            adaptive_parameter(mean)
        };
        let quotient = u >> k;
        if quotient < u64::from(ESCAPE_ZEROS) {
            // quotient zeros, a one, then k low bits: 1 to 24 + 1 + 31 bits.
            let low = u & ((1u64 << k) - 1);
            w.put((1u64 << k) | low, quotient as u32 + 1 + k);
        } else if NARROW {
            w.put(u, ESCAPE_ZEROS + escape_width);
        } else {
            w.put(0, ESCAPE_ZEROS);
            w.put_wide(u, escape_width);
        }
        mean = if NARROW {
            mean - (mean >> ADAPT_SHIFT) + u
        } else {
            adapt(mean, u)
        };
    }
}

/// Reads `count` residuals written by [`write_adaptive`] into `out`.
#[inline(always)]
pub(crate) fn read_adaptive(
    reader: &mut BitReader,
    count: usize,
    escape_width: u32,
    out: &mut Vec<i64>,
) -> Result<(), CodecError> {
    let k0 = reader.read(PARAMETER_BITS)? as u32;
    let mut mean = initial_mean(k0);
    out.clear();
    for _ in 0..count {
        let u = reader.read_rice(adaptive_parameter(mean), ESCAPE_ZEROS, escape_width)?;
        mean = adapt(mean, u);
        out.push(unzigzag(u));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_is_a_bijection_at_the_extremes() {
        for r in [0, 1, -1, 2, -2, i64::MAX, i64::MIN, i64::from(i32::MIN)] {
            assert_eq!(unzigzag(zigzag(r)), r);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn the_initial_mean_gives_its_parameter() {
        for k in 0..=MAX_PARAMETER {
            assert_eq!(adaptive_parameter(initial_mean(k)), k);
        }
    }

    #[test]
    fn the_vectorisable_parameter_matches_the_bit_scan_below_2_pow_31() {
        // Every state where (17·m) >> 8 reaches a power of two, its
        // neighbours, and the ends of the range.
        let mut states = vec![0, 1, 2, (1 << 31) - 2, (1 << 31) - 1];
        for j in 0..28 {
            let m = (1u64 << (j + PARAMETER_SHIFT)).div_ceil(PARAMETER_SCALE);
            states.extend([m - 1, m, m + 1]);
        }
        // And a sweep with an odd stride.
        states.extend((0..1u64 << 31).step_by(1_234_567));
        for m in states {
            assert_eq!(narrow_parameter(m as u32), adaptive_parameter(m), "state {m}");
        }
    }

    /// The adaptive code written one value at a time with the plain writer.
    fn reference(zigzagged: &[u64], escape_width: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = BitWriter::new(&mut bytes);
        let k0 = initial_parameter(zigzagged);
        writer.write(u64::from(k0), PARAMETER_BITS);
        let mut mean = initial_mean(k0);
        for &u in zigzagged {
            let k = adaptive_parameter(mean);
            if u >> k < u64::from(ESCAPE_ZEROS) {
                writer.write(0, (u >> k) as u32);
                writer.write(1, 1);
                writer.write(u & ((1u64 << k) - 1), k);
            } else {
                writer.write(0, ESCAPE_ZEROS);
                writer.write(u, escape_width);
            }
            mean = adapt(mean, u);
        }
        writer.finish();
        bytes
    }

    #[test]
    fn narrow_and_wide_loops_write_the_reference_bits() {
        let mut state = 0x853C_49E6_748F_EA9Bu64;
        for escape_width in [1, 5, 12, 17, 27, 28, 29, 40, 64] {
            for len in [0, 1, 2, 3, 63, 64, 65, 127, 128, 129, 1000, 3001] {
                let values: Vec<u64> = (0..len)
                    .map(|i| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        // Mostly small, with bursts and lone outliers (escapes).
                        let bits = match i % 200 {
                            0..=9 => escape_width,
                            10..=59 => escape_width.min(9),
                            _ => escape_width.min(3),
                        };
                        if bits == 64 {
                            state
                        } else {
                            state & ((1u64 << bits) - 1)
                        }
                    })
                    .collect();
                let width = width(values.iter().fold(0, |a, &u| a | u));
                let mut bytes = Vec::new();
                let mut writer = BitWriter::new(&mut bytes);
                writer.write(0b101, 3); // an unaligned start
                write_adaptive(&mut writer, &mut Vec::new(), &values, width);
                writer.finish();
                let mut expected = reference(&values, width);
                // Shift the reference by the three leading bits.
                let mut shifted = Vec::new();
                let mut w = BitWriter::new(&mut shifted);
                w.write(0b101, 3);
                let total_bits = expected.len() * 8;
                for byte in &expected {
                    w.write(u64::from(*byte), 8);
                }
                w.finish();
                // Drop the padding the shift may have added.
                shifted.truncate((total_bits + 3).div_ceil(8));
                expected = shifted;
                let expected_len = bytes.len();
                assert_eq!(
                    bytes,
                    expected[..expected_len],
                    "escape width {escape_width}, len {len}"
                );
            }
        }
    }

    #[test]
    fn residuals_round_trip_with_escapes() {
        let residuals: Vec<i64> = (0..1000)
            .map(|i| match i % 97 {
                0 => i64::MIN + i,
                1..=20 => (i % 13) * 100_000 - 600_000,
                _ => (i % 13) - 6,
            })
            .collect();
        let zz: Vec<u64> = residuals.iter().map(|&r| zigzag(r)).collect();
        let escape = zz.iter().map(|&u| width(u)).max().unwrap();
        let mut bytes = Vec::new();
        let mut writer = BitWriter::new(&mut bytes);
        write_adaptive(&mut writer, &mut Vec::new(), &zz, escape);
        writer.finish();
        let mut decoded = Vec::new();
        read_adaptive(&mut BitReader::new(&bytes), residuals.len(), escape, &mut decoded).unwrap();
        assert_eq!(decoded, residuals);
    }
}
