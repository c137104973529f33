//! Signal Fabric's engine: pipeline language, runtime, sources, sinks.

pub mod readers;
pub mod shared_data;
pub mod wire;
