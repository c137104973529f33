//! The dead-letter sink: one JSON line per rejected item,
//! `{"reason":…,"node":…,"stream_id":…,"sequence":…,"item":<wire JSON>}`.
//! Reasons name the failed check and never contain PHI; the item itself is
//! kept whole so it can be inspected and replayed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::{create_parent, SinkError, MAX_BATCH};
use crate::ack::{AckStatus, AckToken};
use crate::config::{DeadLetterSpec, LoadedPipeline};
use crate::runtime::{DeadLetter, NodeCounters};
use crate::wire::{self, Encoding};

pub struct DeadLetterWriter {
    path: PathBuf,
    out: BufWriter<File>,
    fsync: bool,
    buffer: Vec<u8>,
}

impl DeadLetterWriter {
    pub fn open(pipeline: &LoadedPipeline, spec: &DeadLetterSpec) -> Result<Self, SinkError> {
        let path = pipeline.resolve(&spec.path.value);
        create_parent(&path)?;
        let file = File::create(&path).map_err(|source| SinkError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            out: BufWriter::new(file),
            fsync: spec.fsync,
            buffer: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn write(&mut self, letter: &DeadLetter) -> Result<(), SinkError> {
        self.buffer.clear();
        let head = serde_json::json!({
            "reason": letter.reason,
            "node": &*letter.node,
            "stream_id": letter.item.stream_id(),
            "sequence": letter.item.sequence(),
        });
        let head = head.to_string();
        // `{"node":…,"reason":…}` + `,"item":` + wire JSON + `}`
        self.buffer.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        self.buffer.extend_from_slice(b",\"item\":");
        wire::encode(&letter.item, Encoding::Json, &mut self.buffer);
        self.buffer.extend_from_slice(b"}\n");
        self.out.write_all(&self.buffer).map_err(|e| self.io_error(e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.io_error(e))?;
        if self.fsync {
            self.out.get_ref().sync_data().map_err(|e| self.io_error(e))?;
        }
        Ok(())
    }
}

/// Runs the dead-letter sink until every operator has finished.
pub fn run_dead_letter(
    mut writer: DeadLetterWriter,
    mut rx: mpsc::Receiver<DeadLetter>,
    counters: &NodeCounters,
) -> Result<(), SinkError> {
    let mut batch: Vec<AckToken> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(letter) = next.take() {
            counters
                .items_in
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let written = writer.write(&letter);
            batch.push(letter.ack);
            if let Err(e) = written {
                batch.drain(..).for_each(|a| a.settle(AckStatus::Failed));
                return Err(e);
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let status = match writer.flush() {
            Ok(()) => AckStatus::DeadLettered,
            Err(e) => {
                batch.drain(..).for_each(|a| a.settle(AckStatus::Failed));
                return Err(e);
            }
        };
        batch.drain(..).for_each(|a| a.settle(status));
    }
    Ok(())
}
