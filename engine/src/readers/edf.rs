//! EDF, EDF+, BDF and BDF+ (edfplus.info; BDF is BioSemi's 24-bit variant).
//!
//! Choices worth knowing:
//! - "EDF Annotations" / "BDF Annotations" signals are parsed into
//!   annotations, not exposed. The first TAL of each record (the record's
//!   timestamp) stays internal.
//! - EDF+D: each record is placed by its timestamp, rounded to a whole number
//!   of records; the gap before it is filled with NaN blocks. Records that
//!   overlap or go back in time are emitted in file order.
//! - Digital values outside [digital min, digital max] are converted with the
//!   same linear formula (as MNE does), not turned into NaN.
//! - The header must agree with the file size: missing data records are an
//!   error at open rather than a surprise at the end of a 24 h stream.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::time::{civil_to_ns, parse_seconds_ns};
use super::{check_outputs, push_nan_blocks, tal, Annotation, ReadError, RecordingFormat, RecordingHeader};
use super::{RecordingReader, SampleGrid, SignalInfo};

const FIXED_LEN: usize = 256;
const PER_SIGNAL_LEN: usize = 256;
/// A bigger data record is surely a corrupt header; refuse before allocating.
const MAX_RECORD_BYTES: u64 = 256 << 20;
/// Per-signal fields: name (as the spec calls it) and width in bytes.
const SIGNAL_FIELDS: [(&str, usize); 10] = [
    ("label", 16),
    ("transducer type", 80),
    ("physical dimension", 8),
    ("physical minimum", 8),
    ("physical maximum", 8),
    ("digital minimum", 8),
    ("digital maximum", 8),
    ("prefiltering", 80),
    ("number of samples in each data record", 8),
    ("reserved", 32),
];

pub(super) fn is_edf_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(b"0       ") || bytes.starts_with(b"\xffBIOSEMI")
}

pub(super) fn open(path: &Path) -> Result<Box<dyn RecordingReader>, ReadError> {
    let file = File::open(path).map_err(|e| ReadError::io(path, e))?;
    let len = file.metadata().map_err(|e| ReadError::io(path, e))?.len();
    let reader = EdfReader::new(path.to_path_buf(), BufReader::with_capacity(1 << 16, file), len)?;
    Ok(Box::new(reader))
}

/// Where one stored signal sits in a data record and what it is.
#[derive(Debug)]
struct Slot {
    start: usize,
    len: usize,
    kind: SlotKind,
}

#[derive(Debug)]
enum SlotKind {
    /// physical = digital * scale + offset, appended to output `out`.
    Data {
        out: usize,
        scale: f64,
        offset: f64,
    },
    Annotations,
}

/// The parsed header plus what the reader needs to cut records.
struct Layout {
    header: RecordingHeader,
    slots: Vec<Slot>,
    header_bytes: u64,
    record_bytes: usize,
    record_ns: i64,
    discontinuous: bool,
}

/// Streaming EDF/BDF reader over any byte source (a buffered file in
/// practice; an in-memory cursor in tests).
pub(crate) struct EdfReader<R> {
    path: PathBuf,
    src: R,
    layout: Layout,
    bytes_per_sample: usize,
    record: Vec<u8>,
    records_read: u64,
    blocks_emitted: u64,
    gap_blocks: u64,
    record_pending: bool,
    annotations: Vec<Annotation>,
}

impl<R: Read> EdfReader<R> {
    /// Reads and validates the header; `file_len` is the source's total size.
    pub(crate) fn new(path: PathBuf, mut src: R, file_len: u64) -> Result<Self, ReadError> {
        let layout = read_layout(&path, &mut src, file_len)?;
        let bytes_per_sample = if is_bdf(&layout.header) { 3 } else { 2 };
        Ok(EdfReader {
            path,
            src,
            record: Vec::new(),
            layout,
            bytes_per_sample,
            records_read: 0,
            blocks_emitted: 0,
            gap_blocks: 0,
            record_pending: false,
            annotations: Vec::new(),
        })
    }

    /// Reads the next data record into `self.record` and parses its TALs.
    fn load_record(&mut self) -> Result<(), ReadError> {
        let index = self.records_read;
        // Sized on first use: a header claiming zero records allocates nothing.
        self.record.resize(self.layout.record_bytes, 0);
        let got =
            super::read_full(&mut self.src, &mut self.record).map_err(|e| ReadError::io(&self.path, e))?;
        if got < self.record.len() {
            return Err(ReadError::Truncated {
                path: self.path.clone(),
                what: format!("data record {index}"),
                expected: self.record.len() as u64,
                actual: got as u64,
            });
        }
        self.records_read += 1;
        let record_time = self.parse_annotations(index)?;
        if let (true, Some(t)) = (self.layout.discontinuous, record_time) {
            let expected_block = div_round(t, self.layout.record_ns);
            self.gap_blocks = expected_block.saturating_sub(self.blocks_emitted as i64).max(0) as u64;
        }
        self.record_pending = true;
        Ok(())
    }

    /// Parses every annotation signal of the loaded record; returns the
    /// record's timestamp (first TAL of the first annotation signal).
    fn parse_annotations(&mut self, index: u64) -> Result<Option<i64>, ReadError> {
        let mut record_time = None;
        let mut first = true;
        for slot in self
            .layout
            .slots
            .iter()
            .filter(|s| matches!(s.kind, SlotKind::Annotations))
        {
            let bytes = &self.record[slot.start..slot.start + slot.len];
            let time = tal::parse_record(bytes, first, &mut self.annotations).map_err(|e| {
                let record_start = self.layout.header_bytes + index * self.layout.record_bytes as u64;
                ReadError::Annotation {
                    path: self.path.clone(),
                    offset: record_start + (slot.start + e.offset) as u64,
                    problem: e.problem.to_string(),
                }
            })?;
            if first {
                record_time = time;
                first = false;
            }
        }
        Ok(record_time)
    }

    /// Converts the loaded record's data signals to physical values.
    fn emit_record(&mut self, out: &mut [Vec<f32>]) {
        let bps = self.bytes_per_sample;
        for slot in &self.layout.slots {
            let SlotKind::Data {
                out: o,
                scale,
                offset,
            } = slot.kind
            else {
                continue;
            };
            let bytes = &self.record[slot.start..slot.start + slot.len];
            // The grid's own formula, so the codec maps these values back exactly.
            let grid = SampleGrid::Affine { scale, offset };
            let convert = |d: i32| grid.to_physical(d);
            if bps == 3 {
                let samples = bytes
                    .chunks_exact(3)
                    .map(|c| i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8);
                out[o].extend(samples.map(convert));
            } else {
                let samples = bytes
                    .chunks_exact(2)
                    .map(|c| i32::from(i16::from_le_bytes([c[0], c[1]])));
                out[o].extend(samples.map(convert));
            }
        }
        self.record_pending = false;
        self.blocks_emitted += 1;
    }
}

impl<R: Read + Send> RecordingReader for EdfReader<R> {
    fn header(&self) -> &RecordingHeader {
        &self.layout.header
    }

    fn read_blocks(&mut self, max_blocks: usize, out: &mut [Vec<f32>]) -> Result<usize, ReadError> {
        check_outputs(&self.layout.header, out)?;
        let mut done = 0;
        while done < max_blocks {
            if self.gap_blocks > 0 {
                let n = self.gap_blocks.min((max_blocks - done) as u64);
                push_nan_blocks(&self.layout.header.samples_per_block, n as usize, out);
                self.gap_blocks -= n;
                self.blocks_emitted += n;
                done += n as usize;
            } else if self.record_pending {
                self.emit_record(out);
                done += 1;
            } else if self.records_read < self.layout.header.total_blocks {
                self.load_record()?;
            } else {
                break;
            }
        }
        Ok(done)
    }

    fn take_annotations(&mut self) -> Vec<Annotation> {
        std::mem::take(&mut self.annotations)
    }
}

fn is_bdf(header: &RecordingHeader) -> bool {
    matches!(header.format, RecordingFormat::Bdf | RecordingFormat::BdfPlus)
}

/// `a / b` rounded to the nearest integer (b > 0); 0 when b is 0.
fn div_round(a: i64, b: i64) -> i64 {
    if b == 0 {
        0
    } else {
        a.saturating_add(b / 2).div_euclid(b)
    }
}

fn read_section(path: &Path, src: &mut impl Read, len: usize, what: &str) -> Result<Vec<u8>, ReadError> {
    let mut buf = vec![0; len];
    let got = super::read_full(src, &mut buf).map_err(|e| ReadError::io(path, e))?;
    if got < len {
        let what = what.to_string();
        return Err(ReadError::Truncated {
            path: path.to_path_buf(),
            what,
            expected: len as u64,
            actual: got as u64,
        });
    }
    Ok(buf)
}

/// An ASCII header field, trimmed (non-ASCII bytes become U+FFFD).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

fn number<T: std::str::FromStr>(path: &Path, bytes: &[u8], field: &str) -> Result<T, ReadError> {
    text(bytes)
        .parse()
        .map_err(|_| ReadError::header(path, field, "is not a number"))
}

fn finite(path: &Path, bytes: &[u8], field: &str) -> Result<f64, ReadError> {
    let value: f64 = number(path, bytes, field)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ReadError::header(path, field, "is not a finite number"))
    }
}

fn read_layout(path: &Path, src: &mut impl Read, file_len: u64) -> Result<Layout, ReadError> {
    let fixed = read_section(path, src, FIXED_LEN, "header")?;
    if !is_edf_magic(&fixed) {
        return Err(ReadError::header(
            path,
            "version",
            "is neither EDF ('0') nor BDF (0xFF 'BIOSEMI')",
        ));
    }
    let ns: usize = number(path, &fixed[252..256], "number of signals")?;
    if ns == 0 {
        return Err(ReadError::header(path, "number of signals", "is zero"));
    }
    let header_bytes: u64 = number(path, &fixed[184..192], "number of bytes in header record")?;
    if header_bytes != ((ns + 1) * PER_SIGNAL_LEN) as u64 {
        return Err(ReadError::header(
            path,
            "number of bytes in header record",
            "is not 256 * (signals + 1)",
        ));
    }
    if file_len < header_bytes {
        let what = "header".to_string();
        return Err(ReadError::Truncated {
            path: path.into(),
            what,
            expected: header_bytes,
            actual: file_len,
        });
    }
    let per_signal = read_section(path, src, ns * PER_SIGNAL_LEN, "signal headers")?;
    let fields = SignalFields {
        bytes: &per_signal,
        ns,
    };
    let plus = matches!(&fixed[192..196], b"EDF+" | b"BDF+");
    let format = match (fixed[0] == 0xFF, plus) {
        (false, false) => RecordingFormat::Edf,
        (false, true) => RecordingFormat::EdfPlus,
        (true, false) => RecordingFormat::Bdf,
        (true, true) => RecordingFormat::BdfPlus,
    };
    let record_ns = parse_seconds_ns(&text(&fixed[244..252]), false)
        .ok_or_else(|| ReadError::header(path, "duration of a data record", "is not a decimal number"))?;
    let bps = if fixed[0] == 0xFF { 3 } else { 2 };
    let (slots, signals, samples_per_block, record_bytes) = read_signals(path, &fields, bps, record_ns)?;
    let total_blocks = count_records(path, &fixed, header_bytes, record_bytes, file_len)?;
    let recording = text(&fixed[88..168]);
    let header = RecordingHeader {
        format,
        start_ns: start_ns(&fixed, &recording, plus),
        patient: text(&fixed[8..88]),
        recording,
        signals,
        block_duration_s: record_ns as f64 / 1e9,
        samples_per_block,
        total_blocks,
    };
    let discontinuous = plus && fixed[196] == b'D';
    Ok(Layout {
        header,
        slots,
        header_bytes,
        record_bytes,
        record_ns,
        discontinuous,
    })
}

/// The per-signal header area: field `k` of signal `i`.
struct SignalFields<'a> {
    bytes: &'a [u8],
    ns: usize,
}

impl SignalFields<'_> {
    fn get(&self, field: usize, signal: usize) -> &[u8] {
        let before: usize = SIGNAL_FIELDS[..field].iter().map(|f| f.1).sum();
        let width = SIGNAL_FIELDS[field].1;
        let start = before * self.ns + signal * width;
        &self.bytes[start..start + width]
    }

    fn name(field: usize, signal: usize) -> String {
        format!("signal {} {}", signal + 1, SIGNAL_FIELDS[field].0)
    }
}

type Signals = (Vec<Slot>, Vec<SignalInfo>, Vec<u32>, usize);

fn read_signals(
    path: &Path,
    fields: &SignalFields,
    bps: usize,
    record_ns: i64,
) -> Result<Signals, ReadError> {
    let (mut slots, mut signals, mut spb) = (Vec::new(), Vec::new(), Vec::new());
    let mut record_bytes: u64 = 0;
    for i in 0..fields.ns {
        let samples: u32 = number(path, fields.get(8, i), &SignalFields::name(8, i))?;
        let len = samples as usize * bps;
        let label = text(fields.get(0, i));
        let kind = if label == "EDF Annotations" || label == "BDF Annotations" {
            SlotKind::Annotations
        } else {
            if record_ns <= 0 && samples > 0 {
                return Err(ReadError::header(
                    path,
                    "duration of a data record",
                    "is zero but signals have samples",
                ));
            }
            let (info, scale, offset) = signal_info(path, fields, i, label, samples, record_ns)?;
            signals.push(info);
            spb.push(samples);
            SlotKind::Data {
                out: signals.len() - 1,
                scale,
                offset,
            }
        };
        slots.push(Slot {
            start: record_bytes as usize,
            len,
            kind,
        });
        record_bytes += len as u64;
        if record_bytes > MAX_RECORD_BYTES {
            return Err(ReadError::Unsupported {
                path: path.into(),
                what: "data record larger than 256 MiB".into(),
            });
        }
    }
    if record_bytes == 0 {
        return Err(ReadError::header(
            path,
            SignalFields::name(8, 0),
            "is zero for every signal",
        ));
    }
    Ok((slots, signals, spb, record_bytes as usize))
}

fn signal_info(
    path: &Path,
    fields: &SignalFields,
    i: usize,
    name: String,
    samples: u32,
    record_ns: i64,
) -> Result<(SignalInfo, f64, f64), ReadError> {
    let pmin = finite(path, fields.get(3, i), &SignalFields::name(3, i))?;
    let pmax = finite(path, fields.get(4, i), &SignalFields::name(4, i))?;
    let dmin: i32 = number(path, fields.get(5, i), &SignalFields::name(5, i))?;
    let dmax: i32 = number(path, fields.get(6, i), &SignalFields::name(6, i))?;
    if dmax <= dmin {
        return Err(ReadError::header(
            path,
            SignalFields::name(6, i),
            "is not above the digital minimum",
        ));
    }
    if pmax == pmin {
        return Err(ReadError::header(
            path,
            SignalFields::name(4, i),
            "equals the physical minimum",
        ));
    }
    let scale = (pmax - pmin) / (f64::from(dmax) - f64::from(dmin));
    let offset = pmin - f64::from(dmin) * scale;
    let info = SignalInfo {
        name,
        unit: text(fields.get(2, i)),
        sample_rate: f64::from(samples) * 1e9 / record_ns as f64,
        resolution: scale.abs(),
        physical_min: Some(pmin),
        physical_max: Some(pmax),
        grid: Some(SampleGrid::Affine { scale, offset }),
    };
    Ok((info, scale, offset))
}

/// Data records in the file: the header's count (checked against the file
/// size), or what the file holds when the header says -1 (still recording).
fn count_records(
    path: &Path,
    fixed: &[u8],
    header_bytes: u64,
    record_bytes: usize,
    len: u64,
) -> Result<u64, ReadError> {
    let field = "number of data records";
    let declared: i64 = number(path, &fixed[236..244], field)?;
    let available = (len - header_bytes) / record_bytes as u64;
    match declared {
        -1 => Ok(available),
        n if n < 0 => Err(ReadError::header(path, field, "is negative")),
        n if n as u64 > available => Err(ReadError::Truncated {
            path: path.into(),
            what: "data records".into(),
            expected: header_bytes + n as u64 * record_bytes as u64,
            actual: len,
        }),
        n => Ok(n as u64),
    }
}

/// Start date and time (dd.mm.yy, hh.mm.ss; years 85–99 are 19xx, others
/// 20xx). EDF+ puts the four-digit year in "Startdate dd-MMM-yyyy" of the
/// recording field; it wins when present.
fn start_ns(fixed: &[u8], recording: &str, plus: bool) -> Option<i64> {
    let date = three_numbers(&fixed[168..176])?;
    let time = three_numbers(&fixed[176..184])?;
    let short_year = i64::from(date.2);
    let mut year = if short_year >= 85 {
        1900 + short_year
    } else {
        2000 + short_year
    };
    if plus {
        if let Some(y) = edf_plus_year(recording) {
            year = y;
        }
    }
    civil_to_ns(year, date.1, date.0, time, 0)
}

fn three_numbers(bytes: &[u8]) -> Option<(u32, u32, u32)> {
    let s = std::str::from_utf8(bytes).ok()?;
    let mut parts = s.trim().split('.').map(|p| p.parse::<u32>().ok());
    let triple = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(triple)
}

fn edf_plus_year(recording: &str) -> Option<i64> {
    let mut words = recording.split_whitespace();
    if words.next()? != "Startdate" {
        return None;
    }
    let date = words.next()?;
    let year = date.rsplit('-').next()?;
    (year.len() == 4).then(|| year.parse().ok()).flatten()
}

#[cfg(test)]
mod tests;
