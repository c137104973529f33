//! WFDB records (PhysioNet header-5, signal-5, annot-5).
//!
//! Header comment lines become `RecordingHeader::patient` (they usually hold
//! age, sex and medication); WFDB has no recording-identification field.
//! `start_ns` is set only when the header gives both base time and date.

mod annot;
mod decode;
mod header;
mod multiseg;
mod single;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{Annotation, ReadError, RecordingReader};

/// Opens a WFDB record given its `.hea` path or its record path (no
/// extension). `annotator` names the annotation file `<record>.<annotator>`,
/// which must then exist; without it `<record>.atr` is loaded when present.
pub fn open_wfdb(path: &Path, annotator: Option<&str>) -> Result<Box<dyn RecordingReader>, ReadError> {
    let record = record_path(path);
    let hea = header_path(&record);
    let parsed = read_header(&hea)?;
    let annotations = load_annotations(&record, annotator, parsed.fs)?;
    if parsed.segments.is_some() {
        Ok(Box::new(multiseg::MultiSegReader::open(
            &hea,
            &parsed,
            annotations,
        )?))
    } else {
        Ok(Box::new(single::SingleReader::open(&hea, &parsed, annotations)?))
    }
}

/// The record path without a `.hea` extension.
fn record_path(path: &Path) -> PathBuf {
    if path.extension().is_some_and(|e| e == "hea") {
        path.with_extension("")
    } else {
        path.to_path_buf()
    }
}

/// `<record>.hea`, appended rather than substituted: record names may hold dots.
pub(super) fn header_path(record: &Path) -> PathBuf {
    let mut name = OsString::from(record.as_os_str());
    name.push(".hea");
    PathBuf::from(name)
}

fn read_header(path: &Path) -> Result<header::Header, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError::io(path, e))?;
    header::parse(path, &String::from_utf8_lossy(&bytes))
}

fn load_annotations(record: &Path, annotator: Option<&str>, fs: f64) -> Result<Vec<Annotation>, ReadError> {
    let mut name = OsString::from(record.as_os_str());
    name.push(".");
    name.push(annotator.unwrap_or("atr"));
    let path = PathBuf::from(name);
    if annotator.is_none() && !path.is_file() {
        return Ok(Vec::new());
    }
    let bytes = std::fs::read(&path).map_err(|e| ReadError::io(&path, e))?;
    annot::parse(&path, &bytes, fs)
}

#[cfg(test)]
mod tests;
