//! Partitioned, length-limited Rice coding of zigzagged residuals.
//!
//! The residuals of a channel are cut into 2^order equal partitions, each
//! with its own Rice parameter (as FLAC does). A quotient of
//! [`ESCAPE_ZEROS`] or more is written as that many zeros followed by the
//! value in the channel's escape width, so one outlier costs at most
//! `ESCAPE_ZEROS + width` bits and decoding loops are bounded.

use super::bits::{BitReader, BitWriter};
use super::CodecError;

pub(crate) const MAX_PARTITION_ORDER: u32 = 8;
pub(crate) const MAX_PARAMETER: u32 = 31;
pub(crate) const PARAMETER_BITS: u32 = 5;
pub(crate) const ESCAPE_ZEROS: u32 = 24;
/// Partitions are kept at least this long, so parameters pay for themselves.
const MIN_PARTITION_LEN: usize = 16;

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

/// Partition `i` of `2^order` over `len` residuals.
pub(crate) fn partition(len: usize, order: u32, i: usize) -> std::ops::Range<usize> {
    let bound = |k: usize| ((k as u128 * len as u128) >> order) as usize;
    bound(i)..bound(i + 1)
}

/// The chosen partition order and one parameter per partition.
#[derive(Clone, Debug)]
pub(crate) struct RicePlan {
    pub order: u32,
    pub parameters: Vec<u8>,
    /// estimated bits of the residuals and parameters
    pub bits: u64,
}

impl Default for RicePlan {
    fn default() -> Self {
        RicePlan {
            order: 0,
            parameters: Vec::with_capacity(1 << MAX_PARTITION_ORDER),
            bits: 0,
        }
    }
}

/// Best parameter for `count` values summing to `sum`, with its estimated bits.
fn best_parameter(sum: u64, count: u64) -> (u8, u64) {
    // Σ(u >> k) ≈ sum >> k; one stop bit and k low bits per value. The
    // optimum sits next to log2 of the mean, so only its neighbours are tried.
    let mean = sum / count.max(1);
    let centre = width(mean).min(MAX_PARAMETER);
    (centre.saturating_sub(2)..=centre)
        .map(|k| (k as u8, (sum >> k).saturating_add(count * (u64::from(k) + 1))))
        .min_by_key(|&(_, bits)| bits)
        .unwrap_or((0, 0))
}

/// Σ values, saturating: huge residuals (near 2^64) can overflow, and such
/// plans just lose. When the widest value times the count fits in 64 bits
/// no sum can overflow, so a plain (vectorised) sum gives the same result.
fn partition_sum(values: &[u64]) -> u64 {
    let widest = width(values.iter().fold(0, |acc, &u| acc | u));
    if widest + width(values.len() as u64) <= 64 {
        values.iter().sum()
    } else {
        values.iter().fold(0u64, |a, &u| a.saturating_add(u))
    }
}

/// Chooses the partition order and parameters that minimise estimated
/// bits, from sums over the finest partitions merged pairwise.
pub(crate) fn plan(zigzagged: &[u64], max_order: u32, sums: &mut Vec<u64>, plan: &mut RicePlan) {
    let len = zigzagged.len();
    let mut finest = 0;
    while finest < max_order.min(MAX_PARTITION_ORDER) && (len >> (finest + 1)) >= MIN_PARTITION_LEN {
        finest += 1;
    }
    sums.clear();
    sums.extend((0..1usize << finest).map(|i| partition_sum(&zigzagged[partition(len, finest, i)])));
    plan.bits = u64::MAX;
    let mut order = finest;
    loop {
        let total: u64 = (0..sums.len())
            .map(|i| {
                let count = partition(len, order, i).len() as u64;
                best_parameter(sums[i], count).1 + u64::from(PARAMETER_BITS)
            })
            .fold(0u64, u64::saturating_add);
        if total <= plan.bits {
            plan.bits = total;
            plan.order = order;
            plan.parameters.clear();
            plan.parameters.extend(
                (0..sums.len()).map(|i| best_parameter(sums[i], partition(len, order, i).len() as u64).0),
            );
        }
        if order == 0 {
            break;
        }
        order -= 1;
        for i in 0..sums.len() / 2 {
            sums[i] = sums[2 * i].saturating_add(sums[2 * i + 1]);
        }
        sums.truncate(sums.len() / 2);
    }
}

/// Writes the partition order, the parameters, then every residual.
pub(crate) fn write(writer: &mut BitWriter, zigzagged: &[u64], plan: &RicePlan, escape_width: u32) {
    writer.write(u64::from(plan.order), 4);
    for &k in &plan.parameters {
        writer.write(u64::from(k), PARAMETER_BITS);
    }
    for (i, &k) in plan.parameters.iter().enumerate() {
        let k = u32::from(k);
        for &u in &zigzagged[partition(zigzagged.len(), plan.order, i)] {
            let quotient = u >> k;
            if quotient < u64::from(ESCAPE_ZEROS) {
                // quotient zeros, a one, then k low bits: at most 24 + 1 + 31 bits.
                let low = u & ((1u64 << k) - 1);
                writer.write((1u64 << k) | low, quotient as u32 + 1 + k);
            } else {
                writer.write(0, ESCAPE_ZEROS);
                writer.write(u, escape_width);
            }
        }
    }
}

/// Reads `count` residuals written by [`write`] into `out`.
pub(crate) fn read(
    reader: &mut BitReader,
    count: usize,
    escape_width: u32,
    out: &mut Vec<i64>,
) -> Result<(), CodecError> {
    let order = reader.read(4)? as u32;
    if order > MAX_PARTITION_ORDER {
        return Err(CodecError::Corrupt("partition order above 8"));
    }
    let partitions = 1usize << order;
    let mut parameters = [0u8; 1 << MAX_PARTITION_ORDER];
    for k in &mut parameters[..partitions] {
        *k = reader.read(PARAMETER_BITS)? as u8;
    }
    out.clear();
    for (i, &k) in parameters[..partitions].iter().enumerate() {
        let k = u32::from(k);
        for _ in partition(count, order, i) {
            let quotient = reader.read_unary(ESCAPE_ZEROS)?;
            let u = if quotient == ESCAPE_ZEROS {
                reader.read(escape_width)?
            } else {
                (u64::from(quotient) << k) | reader.read(k)?
            };
            out.push(unzigzag(u));
        }
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
    fn partitions_tile_the_residuals() {
        for len in [0, 1, 15, 16, 100, 1279] {
            for order in 0..=MAX_PARTITION_ORDER {
                let mut next = 0;
                for i in 0..1 << order {
                    let p = partition(len, order, i);
                    assert_eq!(p.start, next);
                    next = p.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn residuals_round_trip_with_escapes() {
        let residuals: Vec<i64> = (0..1000)
            .map(|i| if i % 97 == 0 { i64::MIN + i } else { (i % 13) - 6 })
            .collect();
        let zz: Vec<u64> = residuals.iter().map(|&r| zigzag(r)).collect();
        let escape = zz.iter().map(|&u| width(u)).max().unwrap();
        let mut plan_out = RicePlan::default();
        plan(&zz, MAX_PARTITION_ORDER, &mut Vec::new(), &mut plan_out);
        let mut bytes = Vec::new();
        let mut writer = BitWriter::new(&mut bytes);
        write(&mut writer, &zz, &plan_out, escape);
        writer.finish();
        let mut decoded = Vec::new();
        read(&mut BitReader::new(&bytes), residuals.len(), escape, &mut decoded).unwrap();
        assert_eq!(decoded, residuals);
    }
}
