//! Privacy gates on records: quasi-identifier labels from de-identified
//! frame metadata ([`AttachLabels`]), the k-anonymity gate
//! ([`KAnonymity`]), and the counters both export. Differential privacy for
//! aggregates lives in [`crate::dp`]. docs/privacy.md describes them.

mod attach;
mod kanon;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

pub use attach::AttachLabels;
pub use kanon::{generalise_once, KAction, KAnonymity, KAnonymityConfig};

/// Counts a privacy operator keeps for the metrics (read at scrape time).
/// Never values: only how many records met which fate.
#[derive(Debug, Default)]
pub struct PrivacyCounters {
    /// k-anonymity: records withheld because their class stayed below k.
    pub suppressed: AtomicU64,
    /// k-anonymity: records released with at least one generalised label.
    pub generalised: AtomicU64,
    /// dp_aggregate: noisy records released.
    pub releases: AtomicU64,
    /// dp_aggregate: window releases refused by the budget ledger (or
    /// because the ledger or the random generator failed).
    pub refused: AtomicU64,
    /// Records that could not be used: late for their window, missing a
    /// label or value, a group not in the list, over a stream's
    /// contribution bound.
    pub dropped: AtomicU64,
}

impl PrivacyCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The index of the tumbling window holding `t_ns` (floor division, so
/// negative times fall in the right window).
pub fn window_index(t_ns: i64, window_ns: i64) -> i64 {
    t_ns.div_euclid(window_ns.max(1))
}
