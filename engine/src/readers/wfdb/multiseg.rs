//! Multi-segment WFDB records: a master header lists segments; a first
//! segment of length 0 is the layout (the record's signals); `~` segments are
//! gaps. Segment signals are matched to layout signals by name; a signal
//! absent from a segment, and every signal in a gap, reads as NaN.
//!
//! Each segment's samples are converted with its own gain and baseline (as
//! wfdb-python's `m2s` does); `resolution` reports the layout's gain.
//! All segment headers are parsed at open, so a bad one fails early; signal
//! files are opened one segment at a time.

use std::path::{Path, PathBuf};

use super::header::{Header, Segment};
use super::read_header;
use super::single::{recording_header, SingleReader};
use crate::readers::{
    check_outputs, push_nan_blocks, Annotation, ReadError, RecordingHeader, RecordingReader,
};

const GAP: &str = "~";

/// A data segment and, per layout signal, its index in the segment.
struct Part {
    name: String,
    frames: u64,
    map: Vec<Option<usize>>,
}

enum Current {
    Idle,
    Gap(u64),
    Reading(Box<SingleReader>, usize),
}

pub(crate) struct MultiSegReader {
    header: RecordingHeader,
    dir: PathBuf,
    parts: Vec<Part>,
    next: usize,
    current: Current,
    scratch: Vec<Vec<f32>>,
    annotations: Vec<Annotation>,
}

impl MultiSegReader {
    pub(crate) fn open(
        path: &Path,
        master: &Header,
        annotations: Vec<Annotation>,
    ) -> Result<Self, ReadError> {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let segments = master.segments.as_deref().unwrap_or_default();
        let (layout, data_segments) = layout(&dir, master, segments)?;
        let mut parts = Vec::with_capacity(data_segments.len());
        for seg in data_segments {
            parts.push(part(&dir, &layout, seg)?);
        }
        let total = master
            .nsamp
            .unwrap_or_else(|| parts.iter().map(|p| p.frames).sum());
        let mut header = recording_header(&layout, total);
        for signal in &mut header.signals {
            signal.grid = None; // each segment converts with its own gain and baseline
        }
        header.start_ns = master.start_ns;
        header.patient = master.comments.join("\n");
        Ok(MultiSegReader {
            header,
            dir,
            parts,
            next: 0,
            current: Current::Idle,
            scratch: Vec::new(),
            annotations,
        })
    }

    /// Moves to the next segment; false at the end of the record.
    fn start_next(&mut self) -> Result<bool, ReadError> {
        let Some(part) = self.parts.get(self.next) else {
            return Ok(false);
        };
        self.current = if part.name == GAP {
            Current::Gap(part.frames)
        } else {
            let path = self.dir.join(format!("{}.hea", part.name));
            let parsed = read_header(&path)?;
            let reader = SingleReader::open(&path, &parsed, Vec::new())?;
            self.scratch.resize_with(parsed.signals.len(), Vec::new);
            self.scratch.truncate(parsed.signals.len());
            Current::Reading(Box::new(reader), self.next)
        };
        self.next += 1;
        Ok(true)
    }
}

impl RecordingReader for MultiSegReader {
    fn header(&self) -> &RecordingHeader {
        &self.header
    }

    fn read_blocks(&mut self, max_blocks: usize, out: &mut [Vec<f32>]) -> Result<usize, ReadError> {
        check_outputs(&self.header, out)?;
        let mut done = 0;
        while done < max_blocks {
            let n = match &mut self.current {
                Current::Idle => 0,
                Current::Gap(left) => {
                    let n = (*left).min((max_blocks - done) as u64);
                    *left -= n;
                    push_nan_blocks(&self.header.samples_per_block, n as usize, out);
                    n as usize
                }
                Current::Reading(reader, index) => {
                    let n = reader.read_blocks(max_blocks - done, &mut self.scratch)?;
                    copy_mapped(
                        &self.parts[*index].map,
                        &self.header.samples_per_block,
                        n,
                        &mut self.scratch,
                        out,
                    );
                    n
                }
            };
            done += n;
            if n == 0 && !self.start_next()? {
                break;
            }
        }
        Ok(done)
    }

    fn take_annotations(&mut self) -> Vec<Annotation> {
        std::mem::take(&mut self.annotations)
    }
}

/// Moves a segment's samples to the layout's outputs; NaN for absent signals.
fn copy_mapped(
    map: &[Option<usize>],
    spb: &[u32],
    blocks: usize,
    scratch: &mut [Vec<f32>],
    out: &mut [Vec<f32>],
) {
    for ((v, m), &spb) in out.iter_mut().zip(map).zip(spb) {
        match m {
            Some(k) => v.append(&mut scratch[*k]),
            None => v.resize(v.len() + blocks * spb as usize, f32::NAN),
        }
    }
    scratch.iter_mut().for_each(Vec::clear);
}

/// The layout header (segment 0 when its length is 0, else the first
/// segment's own header) and the data segments.
fn layout<'a>(
    dir: &Path,
    master: &Header,
    segments: &'a [Segment],
) -> Result<(Header, &'a [Segment]), ReadError> {
    let first = segments.iter().find(|s| s.name != GAP);
    let Some(first) = first else {
        // Only gaps: no signals to describe.
        let empty = Header {
            signals: Vec::new(),
            segments: None,
            ..master.clone()
        };
        return Ok((empty, segments));
    };
    let mut layout = read_header(&dir.join(format!("{}.hea", first.name)))?;
    layout.fs = master.fs;
    let is_layout = first.nsamp == 0 && std::ptr::eq(first, &segments[0]);
    Ok((layout, if is_layout { &segments[1..] } else { segments }))
}

fn part(dir: &Path, layout: &Header, seg: &Segment) -> Result<Part, ReadError> {
    if seg.name == GAP {
        return Ok(Part {
            name: seg.name.clone(),
            frames: seg.nsamp,
            map: Vec::new(),
        });
    }
    let path = dir.join(format!("{}.hea", seg.name));
    let parsed: Header = read_header(&path)?;
    if parsed.segments.is_some() {
        return Err(ReadError::Unsupported {
            path,
            what: "nested multi-segment record".into(),
        });
    }
    let mut map = Vec::with_capacity(layout.signals.len());
    for sig in &layout.signals {
        let found = parsed
            .signals
            .iter()
            .position(|s| s.description == sig.description);
        if let Some(k) = found {
            if parsed.signals[k].spf != sig.spf {
                let what = format!(
                    "segment signal {} with samples per frame unlike the layout",
                    k + 1
                );
                return Err(ReadError::Unsupported { path, what });
            }
        }
        map.push(found);
    }
    Ok(Part {
        name: seg.name.clone(),
        frames: parsed.nsamp.unwrap_or(seg.nsamp),
        map,
    })
}
