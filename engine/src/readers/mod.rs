//! Streaming readers for clinical recording formats: EDF, EDF+, BDF, BDF+
//! and WFDB (single- and multi-segment records, MIT annotation files).
//!
//! Every reader reads block by block through a buffered reader: an EDF data
//! record or a WFDB frame is one block, and a file is never loaded whole
//! (WFDB annotation files excepted; they are small and loaded at open).
//!
//! Conventions shared by all readers:
//! - samples are physical values in the file's own units, as `f32`;
//!   invalid samples, signals absent from a segment and gaps are `NaN`;
//! - times in headers are local wall-clock times without a zone; they are
//!   reported as if they were UTC;
//! - error messages name the file and the header field but never quote
//!   field contents, which may hold patient data.

mod edf;
mod error;
mod tal;
mod time;
mod wfdb;

use std::fs::File;
use std::io::Read;
use std::path::Path;

pub use error::ReadError;
pub use sigfab_operators::codec::SampleGrid;
pub use wfdb::open_wfdb;

/// The container format of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingFormat {
    Edf,
    EdfPlus,
    Bdf,
    BdfPlus,
    Wfdb,
}

/// One exposed signal (annotation channels are never exposed as signals).
#[derive(Debug, Clone, PartialEq)]
pub struct SignalInfo {
    pub name: String,
    pub unit: String,
    pub sample_rate: f64,
    /// physical units per digital step (one quantisation step)
    pub resolution: f64,
    pub physical_min: Option<f64>,
    pub physical_max: Option<f64>,
    /// The exact digital→physical formula, so samples can be mapped back to
    /// the file's integers (lossless codec); `None` when it varies along
    /// the recording (WFDB multi-segment records).
    pub grid: Option<SampleGrid>,
}

impl SignalInfo {
    /// The frame model's description of this signal.
    pub fn channel_spec(&self) -> sigfab_operators::ChannelSpec {
        sigfab_operators::ChannelSpec {
            name: self.name.clone(),
            unit: self.unit.clone(),
            sample_rate: self.sample_rate,
        }
    }
}

/// An event from the recording's annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Nanoseconds relative to the recording start.
    pub onset_ns: i64,
    pub duration_ns: Option<i64>,
    /// Free text (EDF+ TAL text, WFDB aux string). May hold patient data.
    pub text: String,
    /// WFDB mnemonic, e.g. "N", "V", "+".
    pub code: Option<String>,
    pub channel: Option<usize>,
}

/// What a reader knows at open.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingHeader {
    pub format: RecordingFormat,
    /// UTC nanoseconds since the epoch when the file gives a date and time.
    pub start_ns: Option<i64>,
    /// Patient identification (PHI).
    pub patient: String,
    /// Recording identification (PHI).
    pub recording: String,
    pub signals: Vec<SignalInfo>,
    /// base block: EDF data record or WFDB frame
    pub block_duration_s: f64,
    pub samples_per_block: Vec<u32>,
    /// Blocks in the recording. For EDF+D this counts stored data records;
    /// gaps between records add NaN blocks on top of it.
    pub total_blocks: u64,
}

/// A streaming reader of one recording.
pub trait RecordingReader: Send {
    fn header(&self) -> &RecordingHeader;
    /// Appends physical samples (f32; NaN for invalid/missing samples and gaps) of up to `max_blocks` blocks to `out[i]` for each signal i. Returns blocks read; 0 = end.
    fn read_blocks(&mut self, max_blocks: usize, out: &mut [Vec<f32>]) -> Result<usize, ReadError>;
    /// Annotations found so far (EDF+: as data records are read; WFDB: the .atr/annotation file, loaded at open). Drains them.
    fn take_annotations(&mut self) -> Vec<Annotation>;
}

/// Every remaining sample of every signal, in memory: for tests,
/// benchmarks and tools, never for a live path (a recording can be large).
pub fn read_to_end(reader: &mut dyn RecordingReader) -> Result<Vec<Vec<f32>>, ReadError> {
    let mut channels = vec![Vec::new(); reader.header().signals.len()];
    while reader.read_blocks(1024, &mut channels)? > 0 {}
    Ok(channels)
}

/// Opens a recording, sniffing its format: EDF and BDF by their first header
/// bytes, WFDB by a `.hea` path or a record path without extension (its
/// `<record>.atr` annotations are loaded when present).
pub fn open(path: &Path) -> Result<Box<dyn RecordingReader>, ReadError> {
    if path.extension().is_some_and(|e| e == "hea") {
        return open_wfdb(path, None);
    }
    if path.is_file() {
        let mut magic = [0u8; 8];
        let n = read_prefix(path, &mut magic)?;
        if edf::is_edf_magic(&magic[..n]) {
            return edf::open(path);
        }
    }
    if wfdb::header_path(path).is_file() {
        return open_wfdb(path, None);
    }
    Err(ReadError::UnknownFormat {
        path: path.to_path_buf(),
    })
}

fn read_prefix(path: &Path, buf: &mut [u8]) -> Result<usize, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).map_err(io)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Checks that the caller passed one output buffer per signal.
fn check_outputs(header: &RecordingHeader, out: &[Vec<f32>]) -> Result<(), ReadError> {
    if out.len() == header.signals.len() {
        Ok(())
    } else {
        Err(ReadError::OutputMismatch {
            expected: header.signals.len(),
            got: out.len(),
        })
    }
}

/// Appends `blocks` blocks of NaN to every output.
fn push_nan_blocks(samples_per_block: &[u32], blocks: usize, out: &mut [Vec<f32>]) {
    for (v, &spb) in out.iter_mut().zip(samples_per_block) {
        v.resize(v.len() + spb as usize * blocks, f32::NAN);
    }
}

/// Like `read_exact`, but returns how much was read before the end of the
/// file instead of failing, so a reader can name a truncated file precisely.
pub(crate) fn read_full(src: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
