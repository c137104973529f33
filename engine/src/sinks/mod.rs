//! Sinks: where items end up. A sink writes a batch, makes it durable, and
//! only then settles the batch's acknowledgement tokens; a failed write
//! settles them as failed and stops the sink.
//!
//! Batching: a sink writes the item it waited for plus whatever is already
//! queued (up to [`MAX_BATCH`]), then flushes. Under light load every item is
//! flushed at once (lowest latency); under heavy load one flush and fsync
//! cover many items. No timer adds latency.

mod archive;
pub mod archive_codec;
mod dead_letter;
mod file;
mod stdout;

use std::path::PathBuf;
use std::time::Instant;

use sigfab_operators::Item;
use tokio::sync::mpsc;

use crate::ack::{AckStatus, AckToken};
use crate::config::{LoadedPipeline, NodeSpec, SinkKind};
use crate::health::Readiness;
use crate::runtime::{Envelope, NodeCounters};

pub use archive::{ArchiveSink, SegmentLimits};
pub use dead_letter::{run_dead_letter, DeadLetterWriter};

/// Most items written between two flushes.
pub const MAX_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the sink is misconfigured: {0}")]
    Config(String),
    #[error(transparent)]
    Kafka(Box<crate::kafka::KafkaError>),
    #[error(transparent)]
    Archive(#[from] crate::crypto::archive::ArchiveError),
    #[error(transparent)]
    KeyFile(#[from] crate::crypto::keyfile::KeyFileError),
}

/// A sink ready to run: a writer driven by the batch loop, or the Kafka
/// producer, whose delivery reports settle acknowledgements.
pub enum SinkDriver {
    Writer(Box<dyn SinkWriter>),
    Kafka(crate::kafka::sink::KafkaSink),
    Archive(ArchiveSink),
}

impl SinkDriver {
    /// Where the sink writes, for the end-of-run report.
    pub fn target(&self) -> String {
        match self {
            SinkDriver::Writer(writer) => writer
                .path()
                .map_or_else(|| "stdout".to_string(), |p| p.display().to_string()),
            SinkDriver::Kafka(kafka) => format!("kafka topic {}", kafka.topic()),
            SinkDriver::Archive(archive) => format!("encrypted archive {}", archive.dir().display()),
        }
    }
}

/// A sink's synchronous writing half.
pub trait SinkWriter: Send {
    fn write(&mut self, item: &Item) -> Result<(), SinkError>;
    /// Makes everything written so far durable.
    fn flush(&mut self) -> Result<(), SinkError>;
    /// The file written, if any, for telling the user where to look.
    fn path(&self) -> Option<PathBuf>;
}

/// Opens the sink a pipeline node describes (creating output folders).
/// Opens a sink; one that depends on an outside service registers its
/// readiness under `name`.
pub fn open(
    pipeline: &LoadedPipeline,
    node: &NodeSpec<SinkKind>,
    name: &str,
    readiness: &Readiness,
) -> Result<SinkDriver, SinkError> {
    let kind = node
        .kind
        .as_ref()
        .map_err(|d| SinkError::Config(d.message.clone()))?;
    match &kind.value {
        SinkKind::File(spec) => Ok(SinkDriver::Writer(Box::new(file::FileSink::create(
            &pipeline.resolve(&spec.path.value),
            spec.format,
            spec.fsync,
        )?))),
        SinkKind::Stdout(spec) => Ok(SinkDriver::Writer(Box::new(stdout::StdoutSink::new(spec.format)))),
        SinkKind::Kafka(spec) => Ok(SinkDriver::Kafka(crate::kafka::sink::KafkaSink::open(
            pipeline,
            spec,
            readiness.register(name),
        )?)),
        SinkKind::Archive(spec) => Ok(SinkDriver::Archive(ArchiveSink::from_spec(spec, |p| {
            pipeline.resolve(p)
        })?)),
    }
}

/// Runs a sink until its queue closes. Call on a blocking thread.
pub fn run_sink(
    mut writer: Box<dyn SinkWriter>,
    mut rx: mpsc::Receiver<Envelope>,
    counters: &NodeCounters,
) -> Result<(), SinkError> {
    run_batches(&mut writer, &mut rx, counters, AckStatus::Delivered)
}

/// A writer of `T`s that the batch loop drives.
pub(crate) trait BatchWriter<T: Acknowledged> {
    fn write(&mut self, item: &T) -> Result<(), SinkError>;
    /// Makes everything written so far durable.
    fn flush(&mut self) -> Result<(), SinkError>;
}

/// Something that carries a share of an item's acknowledgement.
pub(crate) trait Acknowledged {
    fn into_ack(self) -> AckToken;
    /// When the source received the item, for latency figures.
    fn received(&self) -> Instant;
}

impl Acknowledged for Envelope {
    fn into_ack(self) -> AckToken {
        self.ack
    }

    fn received(&self) -> Instant {
        self.received
    }
}

impl BatchWriter<Envelope> for Box<dyn SinkWriter> {
    fn write(&mut self, envelope: &Envelope) -> Result<(), SinkError> {
        SinkWriter::write(self.as_mut(), &envelope.item)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        SinkWriter::flush(self.as_mut())
    }
}

/// The sink loop: write the item waited for plus whatever is already queued
/// (at most [`MAX_BATCH`]), flush, then settle the batch with `done`. A
/// failed write or flush settles the batch as failed and stops the sink.
pub(crate) fn run_batches<T: Acknowledged, W: BatchWriter<T>>(
    writer: &mut W,
    rx: &mut mpsc::Receiver<T>,
    counters: &NodeCounters,
    done: AckStatus,
) -> Result<(), SinkError> {
    let mut batch: Vec<AckToken> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            counters
                .items_in
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let written = writer.write(&item);
            counters.latency.record(item.received().elapsed());
            batch.push(item.into_ack());
            if let Err(e) = written {
                settle_all(&mut batch, AckStatus::Failed);
                return Err(e);
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = writer.flush() {
            settle_all(&mut batch, AckStatus::Failed);
            return Err(e);
        }
        settle_all(&mut batch, done);
    }
    Ok(())
}

fn settle_all(batch: &mut Vec<AckToken>, status: AckStatus) {
    for ack in batch.drain(..) {
        ack.settle(status);
    }
}

/// A buffered output file that can be made durable: flush, then fsync when
/// asked to.
pub(crate) struct DurableFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    fsync: bool,
}

impl DurableFile {
    /// Creates (or truncates) the file, and its folders.
    pub(crate) fn create(path: &std::path::Path, fsync: bool) -> Result<DurableFile, SinkError> {
        create_parent(path)?;
        let file = std::fs::File::create(path).map_err(|source| SinkError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(DurableFile {
            path: path.to_path_buf(),
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            fsync,
        })
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        use std::io::Write;
        self.out.write_all(bytes).map_err(|e| self.io_error(e))
    }

    pub(crate) fn flush(&mut self) -> Result<(), SinkError> {
        use std::io::Write;
        self.out.flush().map_err(|e| self.io_error(e))?;
        if self.fsync {
            self.out.get_ref().sync_data().map_err(|e| self.io_error(e))?;
        }
        Ok(())
    }

    fn io_error(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// Creates the parent folders of an output file.
fn create_parent(path: &std::path::Path) -> Result<(), SinkError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|source| SinkError::Io {
                path: parent.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Kafka errors are boxed: they are large and rare.
impl From<crate::kafka::KafkaError> for SinkError {
    fn from(error: crate::kafka::KafkaError) -> Self {
        SinkError::Kafka(Box::new(error))
    }
}
