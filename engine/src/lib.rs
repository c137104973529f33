//! Signal Fabric's engine: pipeline language, runtime, sources, sinks.
//!
//! Start with `docs/ARCHITECTURE.md` for the map.

pub mod ack;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod deid;
pub mod health;
pub mod kafka;
pub mod latency;
pub mod metrics;
pub mod privacy;
pub mod readers;
pub mod runtime;
pub mod shared_data;
pub mod shared_vectors;
pub mod sinks;
pub mod sources;
pub mod wire;
