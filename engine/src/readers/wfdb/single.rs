//! Single-segment WFDB records: one or more signal files, each holding the
//! frames of its signals interleaved (`spf` samples per signal per frame).
//!
//! Skew: sample t of a signal with skew s is stored in frame t + s, so the
//! reader decodes up to `max skew` frames ahead; samples the file does not
//! hold (the last s of a skewed signal) are NaN, as wfdb-python gives.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::decode::{Decoder, Format};
use super::header::{Header, SignalSpec};
use crate::readers::{
    check_outputs, Annotation, ReadError, RecordingFormat, RecordingHeader, RecordingReader,
};
use crate::readers::{SampleGrid, SignalInfo};

/// Samples (all signals) emitted per call at most, so a huge `max_blocks`
/// cannot make the skew queues hold a whole file.
const MAX_SAMPLES_PER_CALL: u64 = 1 << 20;
/// Skews beyond this many samples of look-ahead are refused at open.
const MAX_SKEW_SAMPLES: u64 = 1 << 24;

/// One signal file and the consecutive signals stored in it.
struct SignalFile {
    src: BufReader<File>,
    decoder: Decoder,
    first: usize,
    count: usize,
    frame_samples: usize,
    name: String,
}

/// Per-signal conversion and skew state.
struct Channel {
    spf: usize,
    gain: f64,
    baseline: i64,
    invalid: i32,
    /// Leading samples still to drop (they belong before time 0).
    discard: usize,
    ready: VecDeque<i32>,
}

pub(crate) struct SingleReader {
    header: RecordingHeader,
    path: PathBuf,
    files: Vec<SignalFile>,
    channels: Vec<Channel>,
    scratch: Vec<i32>,
    frames_decoded: u64,
    frames_per_call: u64,
    file_frames: u64,
    max_skew: u64,
    emitted: u64,
    annotations: Vec<Annotation>,
}

impl SingleReader {
    /// Opens the signal files of a parsed header (`path`: the .hea file).
    pub(crate) fn open(
        path: &Path,
        parsed: &Header,
        annotations: Vec<Annotation>,
    ) -> Result<Self, ReadError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut files = Vec::new();
        let (mut available, mut shortest) = (u64::MAX, String::new());
        let mut first = 0;
        while first < parsed.signals.len() {
            let (file, frames) = open_group(path, dir, &parsed.signals, first)?;
            if frames < available {
                (available, shortest) = (frames, file.name.clone());
            }
            first += file.count;
            files.push(file);
        }
        let nsamp = parsed
            .nsamp
            .unwrap_or(if files.is_empty() { 0 } else { available });
        if available < nsamp && !files.is_empty() {
            let path = dir.join(shortest);
            return Err(ReadError::ShortSignalFile {
                path,
                expected: nsamp,
                actual: available,
            });
        }
        let max_skew = parsed
            .signals
            .iter()
            .map(|s| u64::from(s.skew))
            .max()
            .unwrap_or(0);
        let frame_samples: u64 = parsed.signals.iter().map(|s| u64::from(s.spf)).sum();
        if max_skew.saturating_mul(frame_samples) > MAX_SKEW_SAMPLES {
            return Err(ReadError::Unsupported {
                path: path.to_path_buf(),
                what: "skew of this size".into(),
            });
        }
        let channels = parsed
            .signals
            .iter()
            .map(channel)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|code| ReadError::Unsupported {
                path: path.to_path_buf(),
                what: format!("WFDB signal format {code}"),
            })?;
        Ok(SingleReader {
            header: recording_header(parsed, nsamp),
            path: path.to_path_buf(),
            files,
            channels,
            scratch: Vec::new(),
            frames_decoded: 0,
            frames_per_call: (MAX_SAMPLES_PER_CALL / frame_samples.max(1)).max(1),
            file_frames: available.min(nsamp.saturating_add(max_skew)),
            max_skew,
            emitted: 0,
            annotations,
        })
    }

    /// Decodes `frames` more frames of every file into the channel queues.
    fn decode_frames(&mut self, frames: u64) -> Result<(), ReadError> {
        for file in &mut self.files {
            let want = frames as usize * file.frame_samples;
            self.scratch.clear();
            let got = file
                .decoder
                .decode(&mut file.src, want, &mut self.scratch)
                .map_err(|e| ReadError::io(&self.path, e))?;
            if got < want {
                return Err(ReadError::Truncated {
                    path: self.path.with_file_name(&file.name),
                    what: format!("signal data after frame {}", self.frames_decoded),
                    expected: want as u64,
                    actual: got as u64,
                });
            }
            let channels = &mut self.channels[file.first..file.first + file.count];
            for frame in self.scratch.chunks_exact(file.frame_samples) {
                let mut pos = 0;
                for ch in channels.iter_mut() {
                    let samples = &frame[pos..pos + ch.spf];
                    pos += ch.spf;
                    let skip = ch.discard.min(samples.len());
                    ch.discard -= skip;
                    ch.ready.extend(&samples[skip..]);
                }
            }
        }
        self.frames_decoded += frames;
        Ok(())
    }
}

impl RecordingReader for SingleReader {
    fn header(&self) -> &RecordingHeader {
        &self.header
    }

    fn read_blocks(&mut self, max_blocks: usize, out: &mut [Vec<f32>]) -> Result<usize, ReadError> {
        check_outputs(&self.header, out)?;
        let want = (max_blocks as u64)
            .min(self.header.total_blocks - self.emitted)
            .min(self.frames_per_call);
        if want == 0 {
            return Ok(0);
        }
        let target = (self.emitted + want + self.max_skew).min(self.file_frames);
        if target > self.frames_decoded {
            self.decode_frames(target - self.frames_decoded)?;
        }
        for (ch, v) in self.channels.iter_mut().zip(out.iter_mut()) {
            let n = want as usize * ch.spf;
            let k = n.min(ch.ready.len());
            let (gain, baseline, invalid) = (ch.gain, ch.baseline, ch.invalid);
            v.extend(ch.ready.drain(..k).map(|d| physical(d, gain, baseline, invalid)));
            v.resize(v.len() + (n - k), f32::NAN);
        }
        self.emitted += want;
        Ok(want as usize)
    }

    fn take_annotations(&mut self) -> Vec<Annotation> {
        std::mem::take(&mut self.annotations)
    }
}

fn physical(d: i32, gain: f64, baseline: i64, invalid: i32) -> f32 {
    if d == invalid {
        f32::NAN
    } else {
        SampleGrid::Wfdb { gain, baseline }.to_physical(d)
    }
}

/// Opens the file of signal `first` and the signals that follow it in the
/// same file; returns it with the number of whole frames it holds.
fn open_group(
    path: &Path,
    dir: &Path,
    specs: &[SignalSpec],
    first: usize,
) -> Result<(SignalFile, u64), ReadError> {
    let spec = &specs[first];
    let count = specs[first..].iter().take_while(|s| s.file == spec.file).count();
    if specs[first + count..].iter().any(|s| s.file == spec.file) {
        let what = "signal file whose signals are not on consecutive lines".to_string();
        return Err(ReadError::Unsupported {
            path: path.to_path_buf(),
            what,
        });
    }
    if spec.file == "~" || spec.file.contains(['/', '\\']) {
        return Err(ReadError::Unsupported {
            path: path.to_path_buf(),
            what: "signal file name".into(),
        });
    }
    let group = &specs[first..first + count];
    let format = Format::new(spec.format).filter(|_| group.iter().all(|s| s.format == spec.format));
    let format = format.ok_or_else(|| ReadError::Unsupported {
        path: path.to_path_buf(),
        what: format!(
            "WFDB signal format {} (or mixed formats in one file)",
            spec.format
        ),
    })?;
    let file_path = dir.join(&spec.file);
    let io = |e| ReadError::io(&file_path, e);
    let mut file = File::open(&file_path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    file.seek(SeekFrom::Start(spec.offset)).map_err(io)?;
    let frame_samples: usize = group.iter().map(|s| s.spf as usize).sum();
    let samples = format.samples_in(len.saturating_sub(spec.offset));
    let signal_file = SignalFile {
        src: BufReader::with_capacity(1 << 16, file),
        decoder: Decoder::new(format),
        first,
        count,
        frame_samples,
        name: spec.file.clone(),
    };
    Ok((signal_file, samples / frame_samples as u64))
}

fn channel(spec: &SignalSpec) -> Result<Channel, u16> {
    let format = Format::new(spec.format).ok_or(spec.format)?;
    Ok(Channel {
        spf: spec.spf as usize,
        gain: spec.gain,
        baseline: spec.baseline,
        invalid: format.invalid(),
        discard: spec.skew as usize * spec.spf as usize,
        ready: VecDeque::new(),
    })
}

/// The public header of a WFDB record described by `parsed`.
pub(crate) fn recording_header(parsed: &Header, total_blocks: u64) -> RecordingHeader {
    RecordingHeader {
        format: RecordingFormat::Wfdb,
        start_ns: parsed.start_ns,
        patient: parsed.comments.join("\n"),
        recording: String::new(),
        signals: parsed.signals.iter().map(|s| signal_info(s, parsed.fs)).collect(),
        block_duration_s: 1.0 / parsed.fs,
        samples_per_block: parsed.signals.iter().map(|s| s.spf).collect(),
        total_blocks,
    }
}

pub(crate) fn signal_info(spec: &SignalSpec, fs: f64) -> SignalInfo {
    SignalInfo {
        name: spec.description.clone(),
        unit: spec.units.clone(),
        sample_rate: fs * f64::from(spec.spf),
        resolution: 1.0 / spec.gain.abs(),
        physical_min: None,
        physical_max: None,
        grid: Some(SampleGrid::Wfdb {
            gain: spec.gain,
            baseline: spec.baseline,
        }),
    }
}
