//! Kafka: a consumer-group source that commits only handled offsets, and an
//! idempotent producer sink whose delivery reports settle acknowledgements.
//! See `docs/delivery.md` for the guarantee in plain words.

pub mod offsets;
mod producer;
pub mod sink;
pub mod source;

use std::collections::BTreeMap;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::ClientConfig;

pub use producer::{AckingProducer, Outgoing};

/// Why a Kafka node could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot create the Kafka client: {0}")]
    Client(#[source] rdkafka::error::KafkaError),
    #[error("cannot subscribe to {topics}: {source}")]
    Subscribe {
        topics: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("producing to '{topic}' failed: {source}")]
    Produce {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("{0} records were still undelivered when the producer was closed")]
    Undelivered(i32),
}

/// A client configuration: the engine's explicit settings, then the
/// user's pass-through properties (the managed keys are refused when the
/// pipeline is checked).
fn client_config(
    brokers: &str,
    defaults: &[(&str, String)],
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config.set_log_level(RDKafkaLogLevel::Warning);
    for (key, value) in defaults {
        config.set(*key, value);
    }
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// librdkafka's log lines and errors, into `tracing` (they name brokers and
/// topics, never record contents).
fn log_client_event(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(facility, "kafka: {message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(facility, "kafka: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(facility, "kafka: {message}"),
        RDKafkaLogLevel::Debug => tracing::debug!(facility, "kafka: {message}"),
    }
}

fn log_client_error(error: &rdkafka::error::KafkaError, reason: &str) {
    tracing::warn!(%error, "kafka client error: {reason}; librdkafka retries with backoff");
}

fn millis(duration: std::time::Duration) -> String {
    duration.as_millis().to_string()
}
