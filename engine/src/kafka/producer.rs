//! A producer whose delivery reports settle acknowledgement tokens.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message};

use super::KafkaError;
use crate::ack::{AckStatus, AckToken};
use crate::health::ReadyFlag;

/// What a delivery report settles: the token, with the status a successful
/// delivery means (Delivered for a sink, DeadLettered for a dead letter).
pub struct PendingDelivery {
    ack: AckToken,
    on_success: AckStatus,
}

/// Settles delivery reports; statistics and errors set the readiness of
/// the node the producer serves.
pub struct AckContext {
    ready: Arc<ReadyFlag>,
}

impl ClientContext for AckContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::log_client_event(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::note_client_error(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        super::note_statistics(&self.ready, &statistics, false);
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<PendingDelivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Self::DeliveryOpaque) {
        match result {
            Ok(_) => pending.ack.settle(pending.on_success),
            Err((error, message)) => {
                tracing::error!(%error, topic = message.topic(), "kafka delivery failed");
                pending.ack.settle(AckStatus::Failed);
            }
        }
    }
}

/// An idempotent producer; every record carries its acknowledgement token
/// to the delivery report.
pub struct AckingProducer {
    producer: ThreadedProducer<AckContext>,
}

/// One record to produce.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: &'a [u8],
    pub payload: &'a [u8],
    /// (name, value) pairs.
    pub headers: &'a [(&'a str, &'a str)],
}

impl AckingProducer {
    pub fn new(config: &rdkafka::ClientConfig, ready: Arc<ReadyFlag>) -> Result<AckingProducer, KafkaError> {
        let producer = config
            .create_with_context(AckContext { ready })
            .map_err(KafkaError::Client)?;
        Ok(AckingProducer { producer })
    }

    /// Queues a record; its delivery report settles `ack` with `on_success`
    /// or Failed. Waits (sleeping `backoff` between tries) while the local
    /// queue is full: backpressure from the broker reaches the pipeline.
    pub fn send(
        &self,
        outgoing: &Outgoing<'_>,
        ack: AckToken,
        on_success: AckStatus,
        backoff: &mut dyn FnMut(),
    ) -> Result<(), KafkaError> {
        let topic = outgoing.topic;
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(PendingDelivery { ack, on_success }))
            .key(outgoing.key)
            .payload(outgoing.payload);
        if !outgoing.headers.is_empty() {
            let owned = outgoing
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |h, (key, value)| {
                    h.insert(Header {
                        key,
                        value: Some(value.as_bytes()),
                    })
                });
            record = record.headers(owned);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    backoff();
                }
                Err((source, back)) => {
                    back.delivery_opaque.ack.settle(AckStatus::Failed);
                    return Err(KafkaError::Produce {
                        topic: topic.to_string(),
                        source,
                    });
                }
            }
        }
    }

    /// Whether the producer hit a fatal error and can deliver nothing more.
    pub fn is_fatal(&self) -> bool {
        self.producer.client().fatal_error().is_some()
    }

    /// Waits until every queued record has a delivery report.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer
            .flush(timeout)
            .map_err(|_| KafkaError::Undelivered(self.producer.in_flight_count()))
    }
}
