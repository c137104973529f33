//! The Kafka sink: each item becomes one record, keyed by stream id so that
//! a stream (a patient's device) keeps its order within one partition.
//! Acknowledgements are settled by delivery reports, so a Kafka source
//! upstream commits only what the broker has durably taken (acks=all,
//! implied by idempotence).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::sealing::{read_master, Sealing};
use super::{client_config, millis, AckingProducer, KafkaError, Outgoing};
use crate::ack::AckStatus;
use crate::config::{KafkaSinkSpec, LoadedPipeline, WireEncoding};
use crate::health::ReadyFlag;
use crate::runtime::{Envelope, NodeCounters};
use crate::wire::{self, Encoding};

/// How long closing the sink waits for outstanding delivery reports.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct KafkaSink {
    producer: AckingProducer,
    topic: String,
    encoding: Encoding,
    /// Record sealing (`encrypt`), docs/security.md.
    sealing: Option<Sealing>,
}

impl KafkaSink {
    pub fn open(
        pipeline: &LoadedPipeline,
        spec: &KafkaSinkSpec,
        ready: Arc<ReadyFlag>,
    ) -> Result<KafkaSink, KafkaError> {
        let sealing = match &spec.encrypt {
            Some(key) => Some(Sealing::new(read_master(pipeline, key)?, key.key_version.value)),
            None => None,
        };
        let defaults = [
            ("enable.idempotence", "true".to_string()),
            ("linger.ms", millis(spec.linger.value.0)),
            // Bounds on the local queue: when full, the sink waits.
            ("queue.buffering.max.messages", "100000".to_string()),
            // Never give up on a record because of time: while the broker is
            // away the queue fills and backpressure pauses the source; only
            // permanent errors fail a record (docs/delivery.md).
            ("message.timeout.ms", "0".to_string()),
        ];
        let config = client_config(&spec.brokers.value, &defaults, &spec.properties.value);
        Ok(KafkaSink {
            producer: AckingProducer::new(&config, ready)?,
            topic: spec.topic.value.clone(),
            encoding: encoding(spec.encoding),
            sealing,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Runs until the queue closes, then waits for the delivery reports.
    /// Call on a blocking thread.
    pub fn run(
        mut self,
        mut rx: mpsc::Receiver<Envelope>,
        counters: &NodeCounters,
    ) -> Result<(), KafkaError> {
        let mut buffer = Vec::new();
        let mut backoff = || std::thread::sleep(Duration::from_millis(1));
        while let Some(Envelope { item, ack, received }) = rx.blocking_recv() {
            counters
                .items_in
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            buffer.clear();
            wire::encode(&item, self.encoding, &mut buffer);
            let sealed = match self.sealing.as_mut() {
                None => None,
                Some(sealing) => match sealing.seal(item.stream_id(), &buffer) {
                    Ok(record) => Some(record),
                    Err(error) => {
                        // Only a failing random source or an absurd stream id: the item fails.
                        tracing::error!(%error, "kafka sink: cannot seal a record; it counts as failed");
                        ack.settle(AckStatus::Failed);
                        continue;
                    }
                },
            };
            let outgoing = Outgoing {
                topic: &self.topic,
                key: item.stream_id().as_bytes(),
                payload: sealed.as_deref().unwrap_or(&buffer),
                headers: &[],
            };
            // A record the producer refuses (too large, unknown topic) is
            // settled failed and holds its partition's commit; the sink goes
            // on. A fatal producer error (idempotence broken) stops it.
            match self
                .producer
                .send(&outgoing, ack, AckStatus::Delivered, &mut backoff)
            {
                Ok(()) => counters.latency.record(received.elapsed()),
                Err(error) if self.producer.is_fatal() => return Err(error),
                Err(error) => tracing::error!(%error, "kafka sink: record refused; it counts as failed"),
            }
        }
        self.producer.flush(CLOSE_TIMEOUT)
    }
}

pub fn encoding(encoding: WireEncoding) -> Encoding {
    match encoding {
        WireEncoding::Binary => Encoding::Binary,
        WireEncoding::Json => Encoding::Json,
    }
}
