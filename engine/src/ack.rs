//! Acknowledgements: how a source learns what became of each item it sent.
//!
//! Every item a source emits carries an [`AckToken`]. When an item is copied
//! (fan-out) or an operator turns it into several outputs, the token is
//! cloned; each clone must end with a status. When the last clone ends, the
//! source's [`AckReceiver`] gets the **worst** status of all of them (as in
//! Vector's finalizers), so a frame that became three outputs counts as
//! delivered only when all three were.
//!
//! A clone dropped without a status counts as [`AckStatus::Abandoned`]: an
//! item lost on shutdown or by a bug can never be mistaken for delivered.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// What became of an item, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum AckStatus {
    /// A sink durably took it.
    Delivered = 0,
    /// An operator consumed it on purpose and produced nothing from it.
    Dropped = 1,
    /// It was rejected and the dead-letter sink durably took it.
    DeadLettered = 2,
    /// It was rejected and there is no dead-letter sink to keep it.
    Rejected = 3,
    /// A sink failed to write it.
    Failed = 4,
    /// It was dropped without a status (shutdown, bug).
    Abandoned = 5,
}

impl AckStatus {
    pub const ALL: [AckStatus; 6] = [
        AckStatus::Delivered,
        AckStatus::Dropped,
        AckStatus::DeadLettered,
        AckStatus::Rejected,
        AckStatus::Failed,
        AckStatus::Abandoned,
    ];

    /// Whether the item is dealt with for good, so a source may commit past
    /// it (Kafka offsets).
    pub fn is_handled(self) -> bool {
        self <= AckStatus::DeadLettered
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AckStatus::Delivered => "delivered",
            AckStatus::Dropped => "dropped",
            AckStatus::DeadLettered => "dead_lettered",
            AckStatus::Rejected => "rejected",
            AckStatus::Failed => "failed",
            AckStatus::Abandoned => "abandoned",
        }
    }

    fn from_u8(value: u8) -> AckStatus {
        AckStatus::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or(AckStatus::Abandoned)
    }
}

/// Receives the final status of each item a source emitted. Called from
/// whichever task drops the last clone, so it must be quick and not block.
pub trait AckReceiver: Send + Sync {
    fn complete(&self, id: u64, status: AckStatus);
}

struct Shared {
    id: u64,
    worst: AtomicU8,
    receiver: Arc<dyn AckReceiver>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let status = AckStatus::from_u8(self.worst.load(Ordering::Acquire));
        self.receiver.complete(self.id, status);
    }
}

/// One holder's share of an item's acknowledgement. See the module docs.
pub struct AckToken {
    shared: Arc<Shared>,
    settled: bool,
}

impl AckToken {
    /// A token for item `id`; the receiver hears of it once every clone has
    /// ended.
    pub fn new(id: u64, receiver: Arc<dyn AckReceiver>) -> AckToken {
        AckToken {
            shared: Arc::new(Shared {
                id,
                worst: AtomicU8::new(AckStatus::Delivered as u8),
                receiver,
            }),
            settled: false,
        }
    }

    /// Ends this share with `status`.
    pub fn settle(mut self, status: AckStatus) {
        self.shared.worst.fetch_max(status as u8, Ordering::AcqRel);
        self.settled = true;
    }

    /// Ends this share without a status of its own, because clones made
    /// from it carry the item on (fan-out, operator outputs).
    pub fn hand_over(mut self) {
        self.settled = true;
    }
}

impl Clone for AckToken {
    fn clone(&self) -> Self {
        AckToken {
            shared: self.shared.clone(),
            settled: false,
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if !self.settled {
            self.shared
                .worst
                .fetch_max(AckStatus::Abandoned as u8, Ordering::AcqRel);
        }
    }
}

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckToken").field("id", &self.shared.id).finish()
    }
}

/// Counts final statuses, and the most items ever in flight (issued but not
/// yet completed): the figure that shows every queue is bounded, and that
/// bounds the duplicates a crash can cause.
#[derive(Default)]
pub struct AckCounter {
    counts: [std::sync::atomic::AtomicU64; 6],
    issued: std::sync::atomic::AtomicU64,
    completed: std::sync::atomic::AtomicU64,
    max_in_flight: std::sync::atomic::AtomicU64,
}

impl AckCounter {
    /// A token for the next item, with a fresh id.
    pub fn issue(self: &Arc<Self>) -> AckToken {
        AckToken::new(self.note_issued(), self.clone())
    }

    /// Counts an item whose token another receiver made (that receiver
    /// forwards completions here); returns this counter's id for it.
    pub fn note_issued(&self) -> u64 {
        let id = self.issued.fetch_add(1, Ordering::AcqRel);
        let in_flight = id + 1 - self.completed.load(Ordering::Acquire);
        self.max_in_flight.fetch_max(in_flight, Ordering::AcqRel);
        id
    }

    /// Items issued and not yet completed.
    pub fn in_flight(&self) -> u64 {
        let completed = self.completed.load(Ordering::Acquire);
        self.issued.load(Ordering::Acquire).saturating_sub(completed)
    }

    /// Most items in flight at once so far.
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::Acquire)
    }

    pub fn count(&self, status: AckStatus) -> u64 {
        self.counts[status as usize].load(Ordering::Acquire)
    }

    pub fn total(&self) -> u64 {
        AckStatus::ALL.iter().map(|&s| self.count(s)).sum()
    }

    /// (status, count) for every status with a non-zero count.
    pub fn nonzero(&self) -> Vec<(AckStatus, u64)> {
        AckStatus::ALL
            .iter()
            .map(|&s| (s, self.count(s)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl AckReceiver for AckCounter {
    fn complete(&self, _id: u64, status: AckStatus) {
        self.counts[status as usize].fetch_add(1, Ordering::AcqRel);
        self.completed.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<(u64, AckStatus)>>);

    impl AckReceiver for Log {
        fn complete(&self, id: u64, status: AckStatus) {
            self.0.lock().unwrap().push((id, status));
        }
    }

    #[test]
    fn completes_once_when_the_last_clone_ends_with_the_worst_status() {
        let log = Arc::new(Log::default());
        let token = AckToken::new(7, log.clone());
        let a = token.clone();
        let b = token.clone();
        token.hand_over();
        a.settle(AckStatus::Delivered);
        assert!(log.0.lock().unwrap().is_empty(), "one clone is still out");
        b.settle(AckStatus::DeadLettered);
        assert_eq!(*log.0.lock().unwrap(), vec![(7, AckStatus::DeadLettered)]);
    }

    #[test]
    fn dropping_without_a_status_is_abandoned() {
        let log = Arc::new(Log::default());
        let token = AckToken::new(1, log.clone());
        let clone = token.clone();
        token.settle(AckStatus::Delivered);
        drop(clone);
        assert_eq!(*log.0.lock().unwrap(), vec![(1, AckStatus::Abandoned)]);
        assert!(!AckStatus::Abandoned.is_handled());
        assert!(AckStatus::DeadLettered.is_handled());
    }

    #[test]
    fn counter_tallies_statuses() {
        let counter = Arc::new(AckCounter::default());
        let first = counter.issue();
        let second = counter.issue();
        first.settle(AckStatus::Delivered);
        second.settle(AckStatus::Dropped);
        drop(counter.issue());
        assert_eq!(counter.total(), 3);
        assert_eq!(counter.max_in_flight(), 2);
        assert_eq!(counter.count(AckStatus::Abandoned), 1);
    }
}
