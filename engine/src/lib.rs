//! Signal Fabric's engine: pipeline language, runtime, sources, sinks.

pub mod readers;
pub mod wire;
