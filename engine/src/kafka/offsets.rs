//! Which Kafka offsets may be committed: per partition, the contiguous
//! low-watermark of handled records (as Redpanda Connect's ordered reader).
//!
//! A record is *handled* once every sink durably took what came of it, or it
//! was dropped on purpose, or dead-lettered. The committed offset of a
//! partition is the offset of its first record that is not handled yet (or
//! one past the last record received when all are): Kafka's convention is to
//! commit the *next* offset to read. A failed record is never handled, so it
//! holds the watermark until the partition is consumed again after a restart.
//!
//! Partitions change hands on rebalances. Every assignment gets a fresh
//! generation; acknowledgements carry the generation of the assignment their
//! record came from, and those of a revoked assignment are ignored, so a late
//! acknowledgement can never commit for a partition this instance no longer
//! owns.
//!
//! Invariant (guarded by the one mutex around [`OffsetBook`]): for every
//! tracked partition, `window` holds the received offsets not yet released,
//! strictly increasing, and its first entry is pending or failed.

use std::collections::{HashMap, VecDeque};

use crate::ack::AckStatus;

/// A topic and partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Pending,
    Handled,
    Failed,
}

/// One partition's received-but-unreleased offsets.
#[derive(Debug, Default)]
pub struct PartitionOffsets {
    window: VecDeque<(i64, Slot)>,
    /// One past the highest offset received.
    next_to_receive: Option<i64>,
    /// The last offset committed (or known committed at assignment).
    committed: Option<i64>,
}

impl PartitionOffsets {
    /// Notes a record received from the broker. Offsets of a partition
    /// arrive in increasing order; a repeat or step back (a seek) is
    /// ignored, and its acknowledgement will find nothing to mark.
    pub fn received(&mut self, offset: i64) -> bool {
        if self.next_to_receive.is_some_and(|next| offset < next) {
            return false;
        }
        if let Some(next) = self.next_to_receive.filter(|&next| offset > next) {
            // Normal on compacted topics; on others it means the broker
            // skipped records (tansu 0.6 does, when a fetch starts inside a
            // record batch: docs/delivery.md).
            tracing::debug!(from = next, to = offset, "offsets jump");
        }
        self.window.push_back((offset, Slot::Pending));
        self.next_to_receive = Some(offset + 1);
        true
    }

    /// Records the final status of a received offset and releases the
    /// handled prefix.
    pub fn completed(&mut self, offset: i64, status: AckStatus) {
        let Ok(index) = self.window.binary_search_by_key(&offset, |(o, _)| *o) else {
            return;
        };
        self.window[index].1 = if status.is_handled() {
            Slot::Handled
        } else {
            Slot::Failed
        };
        while self.window.front().is_some_and(|(_, s)| *s == Slot::Handled) {
            self.window.pop_front();
        }
    }

    /// The offset to commit: the first one not handled yet, or one past the
    /// last received when all are handled. `None` before anything arrived.
    pub fn watermark(&self) -> Option<i64> {
        match self.window.front() {
            Some((offset, _)) => Some(*offset),
            None => self.next_to_receive,
        }
    }

    /// The watermark, if it moved past the last commit; marks it committed.
    pub fn take_commit(&mut self) -> Option<i64> {
        let watermark = self.watermark()?;
        if self.committed.is_some_and(|c| c >= watermark) {
            return None;
        }
        self.committed = Some(watermark);
        Some(watermark)
    }

    /// Records received and not yet released (handled or not).
    pub fn unreleased(&self) -> usize {
        self.window.len()
    }

    /// Whether a failed record holds the watermark.
    pub fn blocked(&self) -> bool {
        self.window.front().is_some_and(|(_, s)| *s == Slot::Failed)
    }
}

struct Assignment {
    generation: u64,
    offsets: PartitionOffsets,
    paused: bool,
}

/// Where an in-flight acknowledgement belongs.
#[derive(Clone, Debug)]
struct Origin {
    partition: TopicPartition,
    generation: u64,
    offset: i64,
}

/// Every assigned partition's offsets, and which record each in-flight
/// acknowledgement id stands for.
#[derive(Default)]
pub struct OffsetBook {
    assignments: HashMap<TopicPartition, Assignment>,
    in_flight: HashMap<u64, Origin>,
    next_id: u64,
    next_generation: u64,
}

/// What the consumer should do after a change: pause or resume fetching.
#[derive(Debug, Default, PartialEq)]
pub struct FlowChanges {
    pub pause: Vec<TopicPartition>,
    pub resume: Vec<TopicPartition>,
}

impl OffsetBook {
    /// Starts tracking a newly assigned partition.
    pub fn assign(&mut self, partition: TopicPartition) {
        self.next_generation += 1;
        let assignment = Assignment {
            generation: self.next_generation,
            offsets: PartitionOffsets::default(),
            paused: false,
        };
        self.assignments.insert(partition, assignment);
    }

    /// Stops tracking a revoked partition; returns the offset to commit for
    /// it first, if the watermark moved. Acknowledgements still in flight
    /// for it will be ignored.
    pub fn revoke(&mut self, partition: &TopicPartition) -> Option<i64> {
        let mut assignment = self.assignments.remove(partition)?;
        assignment.offsets.take_commit()
    }

    /// Notes a received record; returns the acknowledgement id for it, or
    /// `None` if the partition is not assigned or the offset is stale.
    pub fn track(&mut self, partition: &TopicPartition, offset: i64) -> Option<u64> {
        let assignment = self.assignments.get_mut(partition)?;
        if !assignment.offsets.received(offset) {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let origin = Origin {
            partition: partition.clone(),
            generation: assignment.generation,
            offset,
        };
        self.in_flight.insert(id, origin);
        Some(id)
    }

    /// Records the final status of acknowledgement `id`.
    pub fn complete(&mut self, id: u64, status: AckStatus) {
        let Some(origin) = self.in_flight.remove(&id) else {
            return;
        };
        match self.assignments.get_mut(&origin.partition) {
            Some(a) if a.generation == origin.generation => a.offsets.completed(origin.offset, status),
            _ => {} // revoked since: this acknowledgement must not commit
        }
    }

    /// Offsets to commit now, one per partition whose watermark moved.
    pub fn take_commits(&mut self) -> Vec<(TopicPartition, i64)> {
        let mut commits: Vec<(TopicPartition, i64)> = self
            .assignments
            .iter_mut()
            .filter_map(|(p, a)| a.offsets.take_commit().map(|o| (p.clone(), o)))
            .collect();
        commits.sort();
        commits
    }

    /// Pauses partitions whose unreleased backlog reached `max_unacked`, and
    /// resumes paused ones once it fell to half of that (hysteresis, so a
    /// partition does not flap).
    pub fn flow_changes(&mut self, max_unacked: usize) -> FlowChanges {
        let mut changes = FlowChanges::default();
        for (partition, a) in &mut self.assignments {
            let backlog = a.offsets.unreleased();
            if !a.paused && backlog >= max_unacked {
                a.paused = true;
                changes.pause.push(partition.clone());
            } else if a.paused && backlog <= max_unacked / 2 {
                a.paused = false;
                changes.resume.push(partition.clone());
            }
        }
        changes.pause.sort();
        changes.resume.sort();
        changes
    }

    /// Acknowledgements not yet completed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether a failed record holds any partition's watermark (checked at
    /// every commit tick, so it allocates nothing).
    pub fn any_blocked(&self) -> bool {
        self.assignments.values().any(|a| a.offsets.blocked())
    }

    /// Partitions whose watermark is held by a failed record.
    pub fn blocked(&self) -> Vec<TopicPartition> {
        let mut blocked: Vec<TopicPartition> = self
            .assignments
            .iter()
            .filter(|(_, a)| a.offsets.blocked())
            .map(|(p, _)| p.clone())
            .collect();
        blocked.sort();
        blocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition {
            topic: "waveforms".into(),
            partition,
        }
    }

    #[test]
    fn commits_the_next_offset_after_a_contiguous_handled_run() {
        let mut p = PartitionOffsets::default();
        assert_eq!(p.watermark(), None);
        for offset in 10..15 {
            p.received(offset);
        }
        p.completed(11, AckStatus::Delivered);
        p.completed(12, AckStatus::Delivered);
        assert_eq!(p.watermark(), Some(10), "10 is not handled yet");
        p.completed(10, AckStatus::Dropped);
        assert_eq!(p.take_commit(), Some(13));
        assert_eq!(p.take_commit(), None, "nothing new");
        p.completed(13, AckStatus::DeadLettered);
        p.completed(14, AckStatus::Delivered);
        assert_eq!(p.take_commit(), Some(15), "Kafka's +1: the next offset to read");
    }

    #[test]
    fn a_failed_record_holds_the_watermark() {
        let mut p = PartitionOffsets::default();
        for offset in 0..4 {
            p.received(offset);
        }
        p.completed(0, AckStatus::Delivered);
        p.completed(1, AckStatus::Failed);
        p.completed(2, AckStatus::Delivered);
        p.completed(3, AckStatus::Delivered);
        assert_eq!(p.watermark(), Some(1));
        assert!(p.blocked());
    }

    #[test]
    fn gaps_in_offsets_are_fine_and_stale_offsets_are_ignored() {
        let mut p = PartitionOffsets::default();
        assert!(p.received(5));
        assert!(p.received(9)); // compaction or transaction markers skip offsets
        assert!(!p.received(7));
        p.completed(5, AckStatus::Delivered);
        p.completed(9, AckStatus::Delivered);
        assert_eq!(p.watermark(), Some(10));
    }

    #[test]
    fn late_acknowledgements_of_a_revoked_assignment_never_commit() {
        let mut book = OffsetBook::default();
        book.assign(tp(0));
        let first = book.track(&tp(0), 0).unwrap();
        let second = book.track(&tp(0), 1).unwrap();
        book.complete(first, AckStatus::Delivered);
        assert_eq!(book.revoke(&tp(0)), Some(1), "commit what was handled on revoke");
        // The partition comes back (a new generation) and the old ack lands.
        book.assign(tp(0));
        book.complete(second, AckStatus::Delivered);
        assert!(book.take_commits().is_empty(), "the stale ack committed nothing");
        assert_eq!(
            book.track(&tp(1), 0),
            None,
            "unassigned partitions are not tracked"
        );
    }

    #[test]
    fn backlog_pauses_and_resumes_with_hysteresis() {
        let mut book = OffsetBook::default();
        book.assign(tp(0));
        let ids: Vec<u64> = (0..4).map(|o| book.track(&tp(0), o).unwrap()).collect();
        assert_eq!(book.flow_changes(4).pause, vec![tp(0)]);
        assert_eq!(book.flow_changes(4), FlowChanges::default());
        book.complete(ids[0], AckStatus::Delivered);
        assert_eq!(
            book.flow_changes(4),
            FlowChanges::default(),
            "3 > 4/2 still paused"
        );
        book.complete(ids[1], AckStatus::Delivered);
        assert_eq!(book.flow_changes(4).resume, vec![tp(0)]);
        assert_eq!(book.in_flight(), 2);
    }

    proptest! {
        /// Whatever order acknowledgements arrive in, the watermark is the
        /// lowest offset not handled (or one past the end), never more.
        #[test]
        fn watermark_is_the_first_unhandled_offset(
            count in 1usize..60,
            order in proptest::collection::vec(any::<proptest::sample::Index>(), 0..60),
            failed in proptest::collection::vec(any::<bool>(), 60),
        ) {
            let mut p = PartitionOffsets::default();
            for offset in 0..count as i64 {
                p.received(100 + offset);
            }
            let mut done = vec![false; count];
            let mut handled = vec![false; count];
            for index in order {
                let i = index.index(count);
                if done[i] { continue; }
                done[i] = true;
                let status = if failed[i] { AckStatus::Failed } else { AckStatus::Delivered };
                handled[i] = status.is_handled();
                p.completed(100 + i as i64, status);
                let first_unhandled = handled.iter().position(|h| !h).unwrap_or(count);
                prop_assert_eq!(p.watermark(), Some(100 + first_unhandled as i64));
            }
        }
    }
}
