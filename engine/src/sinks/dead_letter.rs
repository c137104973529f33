//! The dead-letter sink: one JSON line per rejected item,
//! `{"reason":…,"node":…,"stream_id":…,"sequence":…,"item":<wire JSON>}`.
//! Reasons name the failed check and never contain PHI; the item itself is
//! kept whole so it can be inspected and replayed.

use std::path::Path;

use tokio::sync::mpsc;

use super::{run_batches, Acknowledged, BatchWriter, DurableFile, SinkError};
use crate::ack::{AckStatus, AckToken};
use crate::config::{DeadLetterSpec, LoadedPipeline};
use crate::runtime::{DeadLetter, NodeCounters};
use crate::wire::{self, Encoding};

pub struct DeadLetterWriter {
    file: DurableFile,
    buffer: Vec<u8>,
}

impl DeadLetterWriter {
    pub fn open(pipeline: &LoadedPipeline, spec: &DeadLetterSpec) -> Result<Self, SinkError> {
        Ok(Self {
            file: DurableFile::create(&pipeline.resolve(&spec.path.value), spec.fsync)?,
            buffer: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl Acknowledged for DeadLetter {
    fn into_ack(self) -> AckToken {
        self.ack
    }

    fn received(&self) -> std::time::Instant {
        self.received
    }
}

impl BatchWriter<DeadLetter> for DeadLetterWriter {
    fn write(&mut self, letter: &DeadLetter) -> Result<(), SinkError> {
        self.buffer.clear();
        let head = serde_json::json!({
            "reason": letter.reason,
            "node": &*letter.node,
            "stream_id": letter.item.stream_id(),
            "sequence": letter.item.sequence(),
        })
        .to_string();
        // The head object without its closing brace, then `,"item":` + wire JSON + `}`.
        self.buffer.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        self.buffer.extend_from_slice(b",\"item\":");
        wire::encode(&letter.item, Encoding::Json, &mut self.buffer);
        self.buffer.extend_from_slice(b"}\n");
        self.file.write_all(&self.buffer)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.file.flush()
    }
}

/// Runs the dead-letter sink until every operator has finished.
pub fn run_dead_letter(
    mut writer: DeadLetterWriter,
    mut rx: mpsc::Receiver<DeadLetter>,
    counters: &NodeCounters,
) -> Result<(), SinkError> {
    run_batches(&mut writer, &mut rx, counters, AckStatus::DeadLettered)
}
