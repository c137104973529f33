//! The encrypted archive sink: each stream's items (binary wire messages) go into **segments**
//! sealed with C2SP chunked AES-256-GCM under a key derived from that stream's patient key
//! (`crypto::archive`). The stream id names the patient key (after `deidentify` it is a keyed
//! pseudonym); it must be a safe file-name component, and is never a raw name.
//!
//! Durability and acknowledgements: a C2SP message cannot be made durable mid-chunk, so items
//! are held unacknowledged until their segment ends: it is finished (final chunk), flushed,
//! fsynced, renamed from `NAME.part` to `NAME`, and the folder fsynced; only then are the
//! segment's items settled `Delivered`. A segment ends when it reaches `max_segment_bytes`,
//! when its items span `max_segment_duration` of signal time, `flush_interval` after its first
//! item (wall clock, so a quiet stream is not held back), when `max_pending` items are held
//! in all open segments together, and when the input ends. A failed write or close settles
//! every held item `Failed` and stops the sink; its `.part` file is never a valid segment.
//!
//! With a `codec` (`archive_codec`), a stream's frames wait in its open segment's pending block
//! until the block holds `block_seconds` of samples (or the shape changes, a record arrives, or
//! the segment ends), then go into the segment as one coded block. Their acknowledgements are
//! held by the segment as before, so the rule above is unchanged.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigfab_operators::Item;
use tokio::sync::mpsc;

use super::archive_codec::{CodecMode, CodecSettings, PendingBlock, SegmentEncoder};
use super::SinkError;
use crate::ack::{AckStatus, AckToken};
use crate::config::{ArchiveCodec, ArchiveSinkSpec};
use crate::crypto::archive::{self, ArchiveError, Keystore, PatientKey};
use crate::crypto::chunked::ChunkedWriter;
use crate::crypto::keyfile;
use crate::crypto::xwing::EncapsulationKey;
use crate::runtime::{Envelope, NodeCounters};
use crate::wire::{self, Encoding};

/// Limits that end a segment.
#[derive(Debug, Clone, Copy)]
pub struct SegmentLimits {
    pub max_bytes: u64,
    pub max_span_ns: i64,
    pub flush_interval: Duration,
    pub max_pending: usize,
}

pub struct ArchiveSink {
    dir: PathBuf,
    keystore: Keystore,
    recipients: Vec<EncapsulationKey>,
    limits: SegmentLimits,
    /// Refuse stream ids that are not `deidentify` pseudonyms.
    pseudonyms_only: bool,
    streams: HashMap<Arc<str>, StreamArchive>,
    /// Items held in open segments, all streams.
    pending: usize,
    /// Reused encoding buffer.
    buffer: Vec<u8>,
    /// Sample coding; `None`: plain wire messages (`codec: none`).
    /// Boxed: its encoders' buffers make it large, and it is optional.
    codec: Option<Box<SegmentEncoder>>,
}

/// One stream's patient key (one per stream and sink run) and its open segment.
struct StreamArchive {
    key: PatientKey,
    next_sequence: u64,
    open: Option<OpenSegment>,
    /// The grids of this stream's last coded block, tried first for the next one.
    grids: Vec<sigfab_operators::codec::SampleGrid>,
}

struct OpenSegment {
    writer: ChunkedWriter<BufWriter<File>>,
    part: PathBuf,
    path: PathBuf,
    bytes: u64,
    first_start_ns: i64,
    opened: Instant,
    held: Vec<AckToken>,
    /// Frames not yet coded (codec only); written before the segment ends.
    block: PendingBlock,
}

fn item_start_ns(item: &Item) -> i64 {
    match item {
        Item::Frame(f) => f.start_ns,
        Item::Record(r) => r.start_ns,
    }
}

impl ArchiveSink {
    /// Reads the recipient files and creates the archive and keystore folders.
    pub fn open(
        dir: &Path,
        keystore: &Path,
        recipients: &[PathBuf],
        limits: SegmentLimits,
    ) -> Result<ArchiveSink, SinkError> {
        let recipients = recipients
            .iter()
            .map(|path| keyfile::load_recipient(path))
            .collect::<Result<Vec<_>, _>>()?;
        for folder in [dir, keystore] {
            std::fs::create_dir_all(folder).map_err(|source| SinkError::Io {
                path: folder.to_path_buf(),
                source,
            })?;
        }
        Ok(ArchiveSink {
            dir: dir.to_path_buf(),
            keystore: Keystore::new(keystore),
            recipients,
            limits,
            pseudonyms_only: true,
            streams: HashMap::new(),
            pending: 0,
            buffer: Vec::new(),
            codec: None,
        })
    }

    pub fn from_spec(
        spec: &ArchiveSinkSpec,
        resolve: impl Fn(&str) -> PathBuf,
    ) -> Result<ArchiveSink, SinkError> {
        let recipients: Vec<PathBuf> = spec.recipients.value.iter().map(|r| resolve(r)).collect();
        let limits = SegmentLimits {
            max_bytes: spec.max_segment_bytes.value,
            max_span_ns: i64::try_from(spec.max_segment_duration.value.0.as_nanos()).unwrap_or(i64::MAX),
            flush_interval: spec.flush_interval.value.0,
            max_pending: spec.max_pending.value,
        };
        let mode = match spec.codec.value {
            ArchiveCodec::None => None,
            ArchiveCodec::Lossless => Some(CodecMode::Lossless),
            ArchiveCodec::Lossy => Some(CodecMode::Lossy {
                max_prdn_percent: spec.max_prdn_percent.as_ref().map_or(0.0, |b| b.value),
            }),
        };
        let codec = mode.map(|mode| CodecSettings {
            mode,
            block_seconds: spec.block_seconds.value,
            resolution: spec
                .resolution
                .as_ref()
                .map(|r| r.value.clone())
                .unwrap_or_default(),
        });
        Ok(ArchiveSink::open(
            &resolve(&spec.path.value),
            &resolve(&spec.keystore.value),
            &recipients,
            limits,
        )?
        .pseudonyms_only(spec.pseudonyms_only)
        .codec(codec))
    }

    /// Codes samples in segments (`None`: plain wire messages, the default).
    pub fn codec(mut self, settings: Option<CodecSettings>) -> ArchiveSink {
        self.codec = settings.map(|s| Box::new(SegmentEncoder::new(s)));
        self
    }

    /// What the codec wrote so far (`None` without a codec).
    pub fn codec_stats(&self) -> Option<super::archive_codec::CodecStats> {
        self.codec.as_ref().map(|c| c.stats)
    }

    /// Whether stream ids must be `deidentify` pseudonyms (default true).
    pub fn pseudonyms_only(mut self, yes: bool) -> ArchiveSink {
        self.pseudonyms_only = yes;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs until the queue closes, then ends every open segment. Call on a blocking thread
    /// inside the tokio runtime (the flush interval needs its timer).
    pub fn run(mut self, mut rx: mpsc::Receiver<Envelope>, counters: &NodeCounters) -> Result<(), SinkError> {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Err(SinkError::Config(
                "the archive sink runs inside the engine's async runtime (its flush timer)".into(),
            ));
        };
        loop {
            let next = match self.next_deadline() {
                None => rx.blocking_recv(),
                Some(deadline) => {
                    match handle.block_on(tokio::time::timeout_at(deadline.into(), rx.recv())) {
                        Ok(next) => next,
                        Err(_elapsed) => {
                            self.end_due(Instant::now()).inspect_err(|_| self.fail_all())?;
                            continue;
                        }
                    }
                }
            };
            let Some(envelope) = next else { break };
            counters
                .items_in
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Envelope { item, ack, received } = envelope;
            let written = self.write(item, ack);
            counters.latency.record(received.elapsed());
            written.inspect_err(|_| self.fail_all())?;
            self.end_due(Instant::now()).inspect_err(|_| self.fail_all())?;
        }
        self.end_all().inspect_err(|_| self.fail_all())
    }

    /// The earliest time an open segment must end by the flush interval.
    fn next_deadline(&self) -> Option<Instant> {
        self.streams
            .values()
            .filter_map(|s| s.open.as_ref())
            .filter_map(|o| o.opened.checked_add(self.limits.flush_interval))
            .min()
    }

    /// Writes one item into its stream's open segment (starting the stream's patient key and a
    /// segment as needed) and holds its acknowledgement. On error the token is settled Failed.
    fn write(&mut self, item: Item, ack: AckToken) -> Result<(), SinkError> {
        let result = self.write_inner(item);
        match result {
            Ok(stream) => {
                if let Some(open) = self.streams.get_mut(&stream).and_then(|s| s.open.as_mut()) {
                    open.held.push(ack);
                    self.pending += 1;
                }
                Ok(())
            }
            Err(e) => {
                ack.settle(AckStatus::Failed);
                Err(e)
            }
        }
    }

    fn write_inner(&mut self, item: Item) -> Result<Arc<str>, SinkError> {
        let stream: Arc<str> = match &item {
            Item::Frame(f) => f.stream_id.clone(),
            Item::Record(r) => r.stream_id.clone(),
        };
        if !self.streams.contains_key(&stream) {
            archive::check_patient_id(&stream)?;
            if self.pseudonyms_only && !archive::looks_like_pseudonym(&stream) {
                return Err(ArchiveError::NotAPseudonym.into());
            }
            let key = self.keystore.create_patient_key(&stream, &self.recipients)?;
            tracing::debug!(patient = %stream, key_id = %key.id_hex(), "archive: new patient key");
            self.streams.insert(
                stream.clone(),
                StreamArchive {
                    key,
                    next_sequence: 0,
                    open: None,
                    grids: Vec::new(),
                },
            );
        }
        let start_ns = item_start_ns(&item);
        let too_long = self
            .streams
            .get(&stream)
            .and_then(|s| s.open.as_ref())
            .is_some_and(|o| start_ns.saturating_sub(o.first_start_ns) >= self.limits.max_span_ns);
        if too_long {
            self.end_segment(&stream)?;
        }
        self.buffer.clear();
        let dir = self.dir.clone();
        let Some(state) = self.streams.get_mut(&stream) else {
            unreachable!("inserted above")
        };
        if state.open.is_none() {
            let mut open = start_segment(&dir, state, start_ns)?;
            if self.codec.is_some() {
                SegmentEncoder::start(&mut self.buffer);
                write_plaintext(&mut open, &self.buffer)?;
                self.buffer.clear();
            }
            state.open = Some(open);
        }
        let Some(codec) = self.codec.as_mut() else {
            wire::encode(&item, Encoding::Binary, &mut self.buffer);
            let Some(open) = state.open.as_mut() else {
                unreachable!("opened above")
            };
            write_plaintext(open, &self.buffer)?;
            return Ok(stream);
        };
        let flush_first = match &item {
            Item::Frame(frame) => state
                .open
                .as_ref()
                .is_some_and(|o| o.block.must_flush_before(frame)),
            Item::Record(_) => true,
        };
        if flush_first {
            flush_block(codec, state, &mut self.buffer)?;
        }
        let Some(open) = state.open.as_mut() else {
            unreachable!("opened above")
        };
        match item {
            Item::Frame(frame) => {
                open.block.push(frame);
                if open.block.is_full(codec.block_seconds()) {
                    flush_block(codec, state, &mut self.buffer)?;
                }
            }
            record @ Item::Record(_) => {
                self.buffer.clear();
                codec.raw(&record, &mut self.buffer);
                write_plaintext(open, &self.buffer)?;
            }
        }
        Ok(stream)
    }

    /// Ends the segments that are full, or due by the flush interval, or all of them when too
    /// many items are held.
    fn end_due(&mut self, now: Instant) -> Result<(), SinkError> {
        let all = self.pending >= self.limits.max_pending;
        let due: Vec<Arc<str>> = self
            .streams
            .iter()
            .filter_map(|(id, s)| {
                let open = s.open.as_ref()?;
                let due = all
                    || open.bytes >= self.limits.max_bytes
                    || now.saturating_duration_since(open.opened) >= self.limits.flush_interval;
                due.then(|| id.clone())
            })
            .collect();
        for id in due {
            self.end_segment(&id)?;
        }
        Ok(())
    }

    fn end_all(&mut self) -> Result<(), SinkError> {
        let open: Vec<Arc<str>> = self
            .streams
            .iter()
            .filter(|(_, s)| s.open.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in open {
            self.end_segment(&id)?;
        }
        Ok(())
    }

    /// Finishes a stream's open segment durably, then acknowledges its items.
    fn end_segment(&mut self, stream: &Arc<str>) -> Result<(), SinkError> {
        // The pending block goes in first; a failure fails the segment's items (below).
        let flushed = match (self.codec.as_mut(), self.streams.get_mut(stream)) {
            (Some(codec), Some(state)) => flush_block(codec, state, &mut self.buffer),
            _ => Ok(()),
        };
        let Some(open) = self.streams.get_mut(stream).and_then(|s| s.open.take()) else {
            return flushed;
        };
        if let Err(e) = flushed {
            self.pending -= open.held.len();
            for ack in open.held {
                ack.settle(AckStatus::Failed);
            }
            return Err(e);
        }
        let OpenSegment {
            writer,
            part,
            path,
            held,
            ..
        } = open;
        // Until settled below, the held tokens fail with the segment.
        let io = |source: std::io::Error, path: &Path| SinkError::Io {
            path: path.to_path_buf(),
            source,
        };
        let finished = (|| {
            let buffered = writer.finish().map_err(ArchiveError::from)?;
            let file = buffered.into_inner().map_err(|e| io(e.into_error(), &part))?;
            file.sync_all().map_err(|e| io(e, &part))?;
            std::fs::rename(&part, &path).map_err(|e| io(e, &path))?;
            archive::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
            Ok::<(), SinkError>(())
        })();
        self.pending -= held.len();
        let status = if finished.is_ok() {
            AckStatus::Delivered
        } else {
            AckStatus::Failed
        };
        for ack in held {
            ack.settle(status);
        }
        finished
    }

    /// Settles every held item Failed (after an error; the sink stops).
    fn fail_all(&mut self) {
        for state in self.streams.values_mut() {
            if let Some(open) = state.open.take() {
                for ack in open.held {
                    ack.settle(AckStatus::Failed);
                }
            }
        }
        self.pending = 0;
    }
}

/// Appends plaintext to an open segment.
fn write_plaintext(open: &mut OpenSegment, bytes: &[u8]) -> Result<(), SinkError> {
    open.writer.write_all(bytes).map_err(|source| SinkError::Io {
        path: open.part.clone(),
        source,
    })?;
    open.bytes += bytes.len() as u64;
    Ok(())
}

/// Codes a stream's pending block into its open segment (nothing when there is none).
fn flush_block(
    codec: &mut SegmentEncoder,
    state: &mut StreamArchive,
    buffer: &mut Vec<u8>,
) -> Result<(), SinkError> {
    let Some(open) = state.open.as_mut() else {
        return Ok(());
    };
    if open.block.is_empty() {
        return Ok(());
    }
    buffer.clear();
    codec.block(open.block.take(), &mut state.grids, buffer);
    write_plaintext(open, buffer)
}

fn start_segment(dir: &Path, state: &mut StreamArchive, start_ns: i64) -> Result<OpenSegment, SinkError> {
    let sequence = state.next_sequence;
    state.next_sequence += 1;
    let folder = dir.join(state.key.patient());
    std::fs::create_dir_all(&folder).map_err(|source| SinkError::Io {
        path: folder.clone(),
        source,
    })?;
    let name = archive::segment_file_name(&state.key.id_hex(), sequence);
    let path = folder.join(name);
    let part = archive::part_path(&path);
    let file = File::create(&part).map_err(|source| SinkError::Io {
        path: part.clone(),
        source,
    })?;
    let (writer, header) =
        archive::start_segment(BufWriter::with_capacity(1 << 16, file), &state.key, sequence)?;
    debug_assert_eq!(
        path.file_name().map(|n| n.to_string_lossy().into_owned()),
        Some(header.file_name())
    );
    Ok(OpenSegment {
        writer,
        part,
        path,
        bytes: 0,
        first_start_ns: start_ns,
        opened: Instant::now(),
        held: Vec::new(),
        block: PendingBlock::default(),
    })
}
