//! Kafka: a consumer-group source that commits only handled offsets, and an
//! idempotent producer sink whose delivery reports settle acknowledgements.
//! See `docs/delivery.md` for the guarantee in plain words.

pub mod offsets;
mod producer;
pub mod sealing;
pub mod sink;
pub mod source;

use std::collections::BTreeMap;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::health::{NodeState, ReadyFlag};

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
    #[error(transparent)]
    RecordKey(#[from] sealing::RecordKeyError),
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
    for (key, value) in common_settings().iter().chain(defaults) {
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
        // A failed connection attempt: librdkafka retries with backoff.
        RDKafkaLogLevel::Error if facility == "FAIL" => tracing::warn!(facility, "kafka: {message}"),
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

/// How often librdkafka reports its statistics, from which readiness is
/// read: a broker that goes away shows within this long.
const STATISTICS_INTERVAL_MS: &str = "1000";

/// Settings every client gets: statistics for readiness, and the reconnect
/// backoff written out (librdkafka's defaults, doubling from 100 ms to 10 s).
fn common_settings() -> [(&'static str, String); 3] {
    [
        ("statistics.interval.ms", STATISTICS_INTERVAL_MS.to_string()),
        ("reconnect.backoff.ms", "100".to_string()),
        ("reconnect.backoff.max.ms", "10000".to_string()),
    ]
}

/// Readiness from a client's statistics, every second (the only input:
/// error events can arrive long after the fact, so they never set it).
/// Ready when a broker connection is up and, for a consumer, its group
/// coordinator is known; unreachable when no broker connection is up (the
/// first statistics come a second after start, far longer than connecting
/// takes).
fn note_statistics(flag: &ReadyFlag, statistics: &Statistics, needs_group: bool) {
    let broker_up = statistics
        .brokers
        .values()
        .any(|b| b.source != "internal" && b.state == "UP");
    let group_up = !needs_group || statistics.cgrp.as_ref().is_some_and(|g| g.state == "up");
    flag.set(match (broker_up, group_up) {
        (true, true) => NodeState::Ready,
        (true, false) => NodeState::Joining,
        (false, _) => NodeState::Unreachable,
    });
}

/// Errors that only say a broker connection failed: librdkafka logs each
/// attempt itself and readiness reports the state, so they are not logged
/// again.
fn is_connection_error(error: &rdkafka::error::KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
    )
}

/// librdkafka's errors, into the log.
fn note_client_error(error: &rdkafka::error::KafkaError, reason: &str) {
    if is_connection_error(error) {
        tracing::debug!(%error, "kafka: {reason}");
    } else {
        log_client_error(error, reason);
    }
}

fn millis(duration: std::time::Duration) -> String {
    duration.as_millis().to_string()
}
