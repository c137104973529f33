//! The Kafka source: a consumer-group member that decodes wire-format
//! frames, dead-letters what it cannot decode, and commits per partition only
//! the contiguous low-watermark of handled records ([`super::offsets`]).
//!
//! Locking: one mutex guards the [`OffsetBook`]; it is taken by the consume
//! loop (track, commit, flow control), by acknowledgements from any task
//! (complete), and by rebalance callbacks on the consumer's thread (assign,
//! revoke). No lock is held across an await or a broker call except the
//! synchronous commit inside the revoke callback, which must finish before
//! the partitions are handed over.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use sigfab_operators::Item;
use tokio::sync::watch;

use super::offsets::{OffsetBook, TopicPartition};
use super::sealing::{read_master, Opening};
use super::sink::encoding;
use super::{client_config, AckingProducer, KafkaError, Outgoing};
use crate::ack::{AckCounter, AckReceiver, AckStatus, AckToken};
use crate::config::{KafkaSourceSpec, LoadedPipeline, StartFrom};
use crate::health::{NodeState, Readiness, ReadyFlag};
use crate::runtime::{Envelope, Fanout, NodeCounters};
use crate::wire::{self, Encoding};

/// How long a stop waits for in-flight frames to be acknowledged before the
/// final commit.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

type Book = Arc<Mutex<OffsetBook>>;

/// A poisoned lock means a panic elsewhere; the book itself is still
/// consistent (every method leaves it so), so carry on with it.
fn lock(book: &Book) -> MutexGuard<'_, OffsetBook> {
    book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Rebalance callbacks keep the book in step with the assignment.
/// Their statistics and errors set the node's readiness.
pub struct SourceContext {
    book: Book,
    ready: Arc<ReadyFlag>,
}

impl ClientContext for SourceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::log_client_event(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::note_client_error(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        super::note_statistics(&self.ready, &statistics, true);
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let mut commits = TopicPartitionList::new();
        {
            let mut book = lock(&self.book);
            for element in revoked.elements() {
                let partition = TopicPartition {
                    topic: element.topic().to_string(),
                    partition: element.partition(),
                };
                if let Some(offset) = book.revoke(&partition) {
                    let _ = commits.add_partition_offset(
                        element.topic(),
                        element.partition(),
                        Offset::Offset(offset),
                    );
                }
            }
        }
        tracing::info!(
            partitions = revoked.count(),
            "kafka partitions revoked; committing what was handled"
        );
        if commits.count() > 0 {
            if let Err(error) = consumer.commit(&commits, CommitMode::Sync) {
                tracing::warn!(%error, "commit on revoke failed; the next owner re-reads from the last commit");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let mut book = lock(&self.book);
            for element in assigned.elements() {
                book.assign(TopicPartition {
                    topic: element.topic().to_string(),
                    partition: element.partition(),
                });
            }
            tracing::info!(partitions = assigned.count(), "kafka partitions assigned");
        }
    }
}

/// Acknowledgements of this source's records: into the offset book, and into
/// the run's counter.
struct KafkaAcks {
    book: Book,
    counter: Arc<AckCounter>,
}

impl AckReceiver for KafkaAcks {
    fn complete(&self, id: u64, status: AckStatus) {
        lock(&self.book).complete(id, status);
        self.counter.complete(id, status);
    }
}

pub struct KafkaSource {
    consumer: StreamConsumer<SourceContext>,
    /// Not ready while a failed record holds a partition's commit.
    commits: Arc<ReadyFlag>,
    dead_letters: AckingProducer,
    book: Book,
    dead_letter_topic: String,
    topics: Vec<String>,
    encoding: Encoding,
    max_unacked: usize,
    commit_interval: Duration,
    /// Record opening (`encrypt`), docs/security.md; locked only between awaits.
    opening: Option<Box<Mutex<Opening>>>,
}

impl KafkaSource {
    /// Creates the clients (no broker is contacted yet: a broker that is
    /// down shows as not-ready, and librdkafka keeps retrying).
    pub fn open(
        pipeline: &LoadedPipeline,
        spec: &KafkaSourceSpec,
        name: &str,
        readiness: &Readiness,
    ) -> Result<KafkaSource, KafkaError> {
        let start = match spec.start {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        };
        let defaults = [
            ("group.id", spec.group.value.clone()),
            // The engine commits, and only past handled records.
            ("enable.auto.commit", "false".to_string()),
            ("enable.auto.offset.store", "false".to_string()),
            ("auto.offset.reset", start.to_string()),
            // Explicit timers: a fetch returns within 100 ms when idle.
            ("fetch.wait.max.ms", "100".to_string()),
            ("session.timeout.ms", "10000".to_string()),
            ("heartbeat.interval.ms", "1000".to_string()),
        ];
        let opening = match &spec.encrypt {
            Some(key) => Some(Box::new(Mutex::new(Opening::new(
                read_master(pipeline, key)?,
                key.key_version.value,
            )))),
            None => None,
        };
        let config = client_config(&spec.brokers.value, &defaults, &spec.properties.value);
        let book = Book::default();
        let consumer: StreamConsumer<SourceContext> = config
            .create_with_context(SourceContext {
                book: book.clone(),
                ready: readiness.register(name),
            })
            .map_err(KafkaError::Client)?;
        let producer_defaults = [
            ("enable.idempotence", "true".to_string()),
            ("linger.ms", "5".to_string()),
        ];
        let producer_config = client_config(&spec.brokers.value, &producer_defaults, &spec.properties.value);
        let commits = readiness.register_ready(&format!("{name}.commits"));
        Ok(KafkaSource {
            consumer,
            commits,
            dead_letters: AckingProducer::new(
                &producer_config,
                readiness.register(&format!("{name}.dead_letters")),
            )?,
            book,
            dead_letter_topic: spec.dead_letter_topic.value.clone(),
            topics: spec.topics.value.clone(),
            encoding: encoding(spec.encoding),
            max_unacked: spec.max_unacked.value,
            commit_interval: spec.commit_interval.value.0,
            opening,
        })
    }

    /// Consumes until a stop is asked for or every consumer of the node has
    /// gone; then lets the pipeline drain and commits what was handled.
    pub async fn run(
        self,
        out: Fanout,
        counter: Arc<AckCounter>,
        mut stop: watch::Receiver<bool>,
        counters: Arc<NodeCounters>,
    ) -> Result<(), KafkaError> {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        tracing::info!(topics = %topics.join(","), "kafka source: joining its consumer group");
        self.consumer
            .subscribe(&topics)
            .map_err(|source| KafkaError::Subscribe {
                topics: topics.join(","),
                source,
            })?;
        let acks = Arc::new(KafkaAcks {
            book: self.book.clone(),
            counter: counter.clone(),
        });
        let mut tick = tokio::time::interval(self.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = 0u32;
        while !*stop.borrow() {
            tokio::select! {
                // An error means the stop flag's owner is gone: stop too.
                changed = stop.changed() => if changed.is_err() { break },
                _ = tick.tick() => self.commit_and_flow(CommitMode::Async),
                message = self.consumer.recv() => match message {
                    Ok(message) => {
                        failures = 0;
                        if !self.handle(&message, &out, &acks, &counter, &counters).await {
                            tracing::warn!("every consumer of the kafka source has stopped; ending it");
                            break;
                        }
                    }
                    // A connection error is an event about librdkafka's own
                    // reconnecting (readiness and its log lines report it):
                    // take the next one without waiting, or stale events pile
                    // up. Other errors back off, up to 5 s.
                    Err(error) if super::is_connection_error(&error) => {
                        tracing::debug!(%error, "kafka consume: connection event");
                    }
                    Err(error) => {
                        failures += 1;
                        let pause = Duration::from_millis(100 * u64::from(failures.min(50)));
                        tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "kafka consume error; retrying");
                        tokio::time::sleep(pause).await;
                    }
                },
            }
        }
        drop(out);
        self.drain_and_commit().await;
        Ok(())
    }

    /// Tracks, decodes and forwards one record; false when the pipeline has
    /// no consumer left.
    async fn handle(
        &self,
        message: &BorrowedMessage<'_>,
        out: &Fanout,
        acks: &Arc<KafkaAcks>,
        counter: &Arc<AckCounter>,
        counters: &NodeCounters,
    ) -> bool {
        let received = std::time::Instant::now();
        let partition = TopicPartition {
            topic: message.topic().to_string(),
            partition: message.partition(),
        };
        let id = {
            let mut book = lock(&self.book);
            match book.track(&partition, message.offset()) {
                Some(id) => id,
                None => {
                    let offset = message.offset();
                    tracing::debug!(
                        partition = partition.partition,
                        offset,
                        "record already tracked or partition not assigned; skipped"
                    );
                    return true;
                }
            }
        };
        counter.note_issued();
        let ack = AckToken::new(id, acks.clone());
        let payload = message.payload().unwrap_or_default();
        let opened = match &self.opening {
            None => None,
            Some(opening) => {
                let opened = opening
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .open(
                        message.key(),
                        message.topic(),
                        message.partition(),
                        message.offset(),
                        payload,
                    );
                match opened {
                    Ok(plaintext) => Some(plaintext),
                    Err(error) => {
                        self.dead_letter(message, &error.to_string(), ack, counters);
                        return true;
                    }
                }
            }
        };
        let payload = opened.as_deref().map_or(payload, Vec::as_slice);
        match wire::decode(payload, self.encoding) {
            // Sealed under its Kafka key, so a frame naming another stream is a producer's bug.
            Ok(Item::Frame(frame))
                if opened.is_some() && message.key() != Some(frame.stream_id.as_bytes()) =>
            {
                self.dead_letter(
                    message,
                    "the decrypted frame's stream id is not its record key",
                    ack,
                    counters,
                )
            }
            Ok(Item::Frame(frame)) => {
                counters
                    .items_out
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                counters
                    .samples_in
                    .fetch_add(frame.sample_count() as u64, std::sync::atomic::Ordering::Relaxed);
                let envelope = Envelope {
                    item: Item::Frame(frame),
                    ack,
                    received,
                };
                if out.send(envelope).await.is_err() {
                    return false;
                }
            }
            Ok(Item::Record(_)) => {
                self.dead_letter(message, "a record where a frame was expected", ack, counters)
            }
            Err(error) => self.dead_letter(message, &error.to_string(), ack, counters),
        }
        true
    }

    /// Sends an undecodable record to the dead-letter topic, with the reason
    /// and where it came from; it counts as handled once delivered. The
    /// reason is the decoder's message, which never quotes record contents.
    fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        reason: &str,
        ack: AckToken,
        counters: &NodeCounters,
    ) {
        counters
            .rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = [
            ("sigfab.reason", reason),
            ("sigfab.source.topic", message.topic()),
            ("sigfab.source.partition", partition.as_str()),
            ("sigfab.source.offset", offset.as_str()),
        ];
        tracing::warn!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            reason,
            "undecodable record sent to the dead-letter topic"
        );
        let outgoing = Outgoing {
            topic: &self.dead_letter_topic,
            key: message.key().unwrap_or_default(),
            payload: message.payload().unwrap_or_default(),
            headers: &headers,
        };
        // The local queue is rarely full; a short nap is fine here.
        let mut backoff = || std::thread::sleep(Duration::from_millis(1));
        let sent = self
            .dead_letters
            .send(&outgoing, ack, AckStatus::DeadLettered, &mut backoff);
        if let Err(error) = sent {
            tracing::error!(%error, "cannot dead-letter a record; its partition will not commit past it");
        }
    }

    /// Commits every partition whose watermark moved, and pauses or resumes
    /// fetching by backlog.
    fn commit_and_flow(&self, mode: CommitMode) {
        let (commits, flow, blocked) = {
            let mut book = lock(&self.book);
            let blocked = book.any_blocked();
            (book.take_commits(), book.flow_changes(self.max_unacked), blocked)
        };
        self.commits.set(if blocked {
            NodeState::Blocked
        } else {
            NodeState::Ready
        });
        if !commits.is_empty() {
            let mut list = TopicPartitionList::new();
            for (partition, offset) in &commits {
                let _ =
                    list.add_partition_offset(&partition.topic, partition.partition, Offset::Offset(*offset));
            }
            if let Err(error) = self.consumer.commit(&list, mode) {
                tracing::warn!(%error, "offset commit failed; it is retried when the watermark moves");
            }
        }
        for (partitions, pause) in [(&flow.pause, true), (&flow.resume, false)] {
            if partitions.is_empty() {
                continue;
            }
            let mut list = TopicPartitionList::new();
            for p in partitions {
                list.add_partition(&p.topic, p.partition);
            }
            let result = if pause {
                self.consumer.pause(&list)
            } else {
                self.consumer.resume(&list)
            };
            match result {
                Ok(()) if pause => {
                    tracing::info!(partitions = partitions.len(), "backlog full: fetching paused")
                }
                Ok(()) => tracing::info!(partitions = partitions.len(), "backlog drained: fetching resumed"),
                Err(error) => tracing::warn!(%error, "cannot pause or resume fetching"),
            }
        }
    }

    /// Waits for the pipeline to acknowledge what is in flight (bounded),
    /// then commits synchronously.
    async fn drain_and_commit(&self) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while lock(&self.book).in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = lock(&self.book).in_flight();
        if left > 0 {
            tracing::warn!(
                left,
                "stopping with unacknowledged records; they will be read again"
            );
        }
        self.commit_and_flow(CommitMode::Sync);
        let blocked = lock(&self.book).blocked();
        if !blocked.is_empty() {
            tracing::warn!(
                partitions = blocked.len(),
                "failed records hold the committed offset of some partitions"
            );
        }
        self.consumer.unsubscribe();
    }
}
