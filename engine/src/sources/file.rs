//! Replays a recording (EDF, EDF+, BDF, WFDB) as frames.
//!
//! The reader delivers blocks (EDF data records, WFDB frames); this source
//! buffers them per channel and cuts frames on the sample clock (see
//! [`super::framing`]), so a multi-rate record (e.g. 500 Hz ECG with 125 Hz
//! ABP) yields frames whose channels hold different sample counts. Memory
//! stays bounded by a few blocks plus one frame, whatever the file size.
//!
//! The header's patient and recording identification travel as frame
//! metadata (`patient`, `recording`) so that a de-identification operator
//! can scrub them; they are PHI and never logged. Each annotation with text
//! (EDF+ TALs, WFDB aux strings) travels once, as an `annotation` entry
//! `onset<TAB>duration<TAB>text` (seconds from the recording start) on the
//! frame whose span reaches its onset, or on the next frame emitted when
//! the reader found it late. Annotation text is free text: PHI too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sigfab_operators::{ChannelLayout, Frame, Metadata, Modality};

use super::framing::sample_boundary;
use super::{FrameSource, SourceError};
use crate::config::{FileSourceSpec, Pace};
use crate::readers::{self, Annotation, RecordingFormat, RecordingReader};

/// Blocks read from the file at a time.
const BLOCKS_PER_READ: usize = 1;

pub struct FileSource {
    path: PathBuf,
    reader: Box<dyn RecordingReader>,
    stream_id: Arc<str>,
    modality: Modality,
    layout: Arc<ChannelLayout>,
    metadata: Metadata,
    frame_ns: u64,
    /// Distinct channel rates with the end of the current frame in samples,
    /// and each channel's index into it: boundaries are computed once per
    /// rate, not once per channel.
    rate_ends: Vec<(f64, u64)>,
    rate_group: Vec<usize>,
    start_ns: i64,
    pace: Pace,
    /// Per channel: samples read but not yet framed, and how many samples
    /// of the channel were framed before `pending[c][0]`.
    pending: Vec<Vec<f32>>,
    consumed: Vec<u64>,
    reader_done: bool,
    frame_index: u64,
    /// Annotations read but not yet attached, by onset.
    annotations: std::collections::VecDeque<Annotation>,
}

impl FileSource {
    pub fn open(path: &Path, spec: &FileSourceSpec) -> Result<FileSource, SourceError> {
        let recording_error = |error| SourceError::Recording {
            path: path.to_path_buf(),
            error,
        };
        let reader = readers::open(path).map_err(recording_error)?;
        let header = reader.header();
        if header.signals.is_empty() {
            return Err(SourceError::NoSignals {
                path: path.to_path_buf(),
            });
        }
        let layout = ChannelLayout::new(header.signals.iter().map(|s| s.channel_spec()).collect());
        let modality = spec.modality.map(|m| m.0).unwrap_or(match header.format {
            RecordingFormat::Wfdb => Modality::Ecg,
            _ => Modality::Eeg,
        });
        let stream_id = spec.stream_id.clone().unwrap_or_else(|| default_stream_id(path));
        let mut metadata = vec![("format".to_string(), format_name(header.format).to_string())];
        for (key, value) in [("patient", &header.patient), ("recording", &header.recording)] {
            if !value.trim().is_empty() {
                metadata.push((key.to_string(), value.clone()));
            }
        }
        metadata.extend(spec.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        let channels = header.signals.len();
        let (rate_ends, rate_group) = group_rates(&layout);
        Ok(FileSource {
            path: path.to_path_buf(),
            stream_id: Arc::from(stream_id),
            modality,
            layout: Arc::new(layout),
            metadata: metadata.into(),
            frame_ns: u64::try_from(spec.frame.value.0.as_nanos()).unwrap_or(u64::MAX),
            rate_ends,
            rate_group,
            start_ns: header.start_ns.unwrap_or(0),
            pace: spec.pace,
            pending: vec![Vec::new(); channels],
            consumed: vec![0; channels],
            reader,
            reader_done: false,
            frame_index: 0,
            annotations: Default::default(),
        })
    }

    /// Reads blocks until every channel holds the samples of frame `k`, or
    /// the recording ends.
    fn fill_until(&mut self, boundaries: &[u64]) -> Result<(), SourceError> {
        while !self.reader_done && self.missing_samples(boundaries) {
            let read = self
                .reader
                .read_blocks(BLOCKS_PER_READ, &mut self.pending)
                .map_err(|error| SourceError::Recording {
                    path: self.path.clone(),
                    error,
                })?;
            self.reader_done = read == 0;
        }
        Ok(())
    }

    /// Adds the annotations whose onset (ns from the recording start) is
    /// before `end_ns` to the frame's metadata, copying it only then.
    fn attach_annotations(&mut self, frame: &mut Frame, end_ns: u64) {
        let found = self.reader.take_annotations();
        self.annotations
            .extend(found.into_iter().filter(|a| !a.text.trim().is_empty()));
        self.annotations.make_contiguous().sort_by_key(|a| a.onset_ns);
        let end_ns = i64::try_from(end_ns).unwrap_or(i64::MAX);
        while self
            .annotations
            .front()
            .is_some_and(|a| a.onset_ns < end_ns || self.reader_done)
        {
            let Some(annotation) = self.annotations.pop_front() else {
                break;
            };
            frame.metadata.push("annotation", annotation_entry(&annotation));
        }
    }

    fn missing_samples(&self, boundaries: &[u64]) -> bool {
        boundaries
            .iter()
            .zip(self.consumed.iter().zip(&self.pending))
            .any(|(&end, (&consumed, pending))| consumed + (pending.len() as u64) < end)
    }
}

fn group_rates(layout: &ChannelLayout) -> (Vec<(f64, u64)>, Vec<usize>) {
    let mut rates: Vec<(f64, u64)> = Vec::new();
    let groups = layout
        .channels
        .iter()
        .map(|c| {
            let rate = c.sample_rate;
            rates.iter().position(|&(r, _)| r == rate).unwrap_or_else(|| {
                rates.push((rate, 0));
                rates.len() - 1
            })
        })
        .collect();
    (rates, groups)
}

/// `onset<TAB>duration<TAB>text`, times in seconds with a sign on the onset
/// (as in EDF+), the duration empty when unknown.
fn annotation_entry(annotation: &Annotation) -> String {
    let seconds = |ns: i64| {
        let text = format!("{:.9}", ns as f64 / 1e9);
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    let onset = seconds(annotation.onset_ns);
    let sign = if annotation.onset_ns < 0 { "" } else { "+" };
    let duration = annotation.duration_ns.map(seconds).unwrap_or_default();
    format!("{sign}{onset}\t{duration}\t{}", annotation.text)
}

fn default_stream_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recording".to_string())
}

fn format_name(format: RecordingFormat) -> &'static str {
    match format {
        RecordingFormat::Edf => "edf",
        RecordingFormat::EdfPlus => "edf+",
        RecordingFormat::Bdf => "bdf",
        RecordingFormat::BdfPlus => "bdf+",
        RecordingFormat::Wfdb => "wfdb",
    }
}

impl FrameSource for FileSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let k = self.frame_index;
        self.rate_ends
            .iter_mut()
            .for_each(|(rate, end)| *end = sample_boundary(k + 1, self.frame_ns, *rate));
        let ends: Vec<u64> = self.rate_group.iter().map(|&g| self.rate_ends[g].1).collect();
        self.fill_until(&ends)?;
        let counts: Vec<u32> = ends
            .iter()
            .zip(self.consumed.iter().zip(&self.pending))
            .map(|(&end, (&consumed, pending))| {
                let available = pending.len() as u64;
                u32::try_from(end.saturating_sub(consumed).min(available)).unwrap_or(u32::MAX)
            })
            .collect();
        // A frame shorter than the sample period may hold no sample; that is
        // a frame all the same. The stream ends when the reader is done and
        // nothing is left to frame.
        if self.reader_done && counts.iter().all(|&c| c == 0) && self.pending.iter().all(Vec::is_empty) {
            return Ok(None);
        }
        let mut samples = Vec::with_capacity(counts.iter().map(|&c| c as usize).sum());
        for ((pending, consumed), &count) in self.pending.iter_mut().zip(&mut self.consumed).zip(&counts) {
            samples.extend(pending.drain(..count as usize));
            *consumed += u64::from(count);
        }
        let start_ns = self.start_ns + (k * self.frame_ns) as i64;
        let mut frame = Frame::new(
            self.stream_id.clone(),
            self.modality,
            self.layout.clone(),
            start_ns,
            k,
            counts,
            samples,
        )?;
        frame.metadata = self.metadata.clone();
        self.attach_annotations(&mut frame, (k + 1) * self.frame_ns);
        self.frame_index += 1;
        Ok(Some(frame))
    }

    fn expected_frames(&self) -> Option<u64> {
        let header = self.reader.header();
        let seconds = header.block_duration_s * header.total_blocks as f64;
        Some((seconds * 1e9 / self.frame_ns as f64).ceil() as u64)
    }

    fn pace(&self) -> Pace {
        self.pace
    }
}
