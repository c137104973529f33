//! A lock-free latency histogram: log-linear buckets (16 per power of two,
//! so a reported quantile is within 1/16 ≈ 6 % above the true value), from
//! 1 ns to hours, recorded with one atomic add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two.
const SUB_BITS: u32 = 4;
const SUBS: usize = 1 << SUB_BITS;
/// Enough octaves for durations up to 2^48 ns (≈ 78 hours).
const OCTAVES: usize = 48;

pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..OCTAVES * SUBS).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .finish()
    }
}

/// Bucket of a value: values below 16 get one bucket each; above, the
/// octave and the next four bits pick the bucket.
fn bucket_of(ns: u64) -> usize {
    if ns < SUBS as u64 {
        return ns as usize;
    }
    let octave = 63 - ns.leading_zeros(); // >= SUB_BITS
    let sub = (ns >> (octave - SUB_BITS)) as usize & (SUBS - 1);
    let index = (octave - SUB_BITS + 1) as usize * SUBS + sub;
    index.min(OCTAVES * SUBS - 1)
}

/// Largest value that falls in bucket `index`.
fn upper_bound(index: usize) -> u64 {
    if index < SUBS {
        return index as u64;
    }
    let octave = (index / SUBS) as u32 + SUB_BITS - 1;
    let sub = (index % SUBS) as u64;
    let base = 1u64 << octave;
    base + (sub + 1) * (base >> SUB_BITS) - 1
}

impl LatencyHistogram {
    pub fn record(&self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Sum of everything recorded (for a Prometheus histogram's `_sum`).
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed))
    }

    /// How many recorded values were below `bound_ns`: exact when the bound
    /// is a bucket edge, as every power of two is; otherwise the values in
    /// the bucket holding the bound are left out.
    pub fn count_below(&self, bound_ns: u64) -> u64 {
        // Buckets before the bound's own hold only values below the bound.
        self.buckets[..bucket_of(bound_ns)]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q` quantile (0..=1), as the upper bound of its bucket; `None`
    /// when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_nanos(upper_bound(index)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_values_within_one_sixteenth() {
        for ns in [0u64, 1, 15, 16, 17, 31, 32, 1000, 123_456, 5_000_000, 1 << 40] {
            let index = bucket_of(ns);
            let upper = upper_bound(index);
            assert!(upper >= ns, "{ns} above its bucket's bound {upper}");
            assert!(
                (upper - ns) as f64 <= ns as f64 / 16.0 + 1.0,
                "{ns}: bound {upper} too loose"
            );
            if index > 0 {
                assert!(upper_bound(index - 1) < ns, "{ns} belongs to an earlier bucket");
            }
        }
    }

    #[test]
    fn counts_below_powers_of_two_are_exact() {
        let h = LatencyHistogram::default();
        for ns in [1u64 << 20, (1 << 20) - 1, (1 << 20) + 1, 5, 1 << 30] {
            h.record(Duration::from_nanos(ns));
        }
        assert_eq!(h.count_below(1 << 20), 2);
        assert_eq!(
            h.count_below((1 << 20) + 1),
            2,
            "inside a bucket: that bucket is left out"
        );
        assert_eq!(h.count_below(1 << 21), 4);
        assert_eq!(h.count_below(1 << 31), 5);
        assert_eq!(h.sum(), Duration::from_nanos((1 << 20) * 3 + 5 + (1 << 30)));
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).unwrap().as_micros() as f64;
        let p99 = h.quantile(0.99).unwrap().as_micros() as f64;
        assert!((500.0..=500.0 * 1.07).contains(&p50), "p50 {p50}");
        assert!((990.0..=990.0 * 1.07).contains(&p99), "p99 {p99}");
        assert_eq!(h.count(), 1000);
    }
}
