//! Errors of the readers. Messages name the file and the field, never the
//! field's contents: header text may hold patient data.

use std::path::PathBuf;

/// Why a recording could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: not a recognised recording (no EDF/BDF header bytes, no .hea extension, no <record>.hea beside it)",
        .path.display()
    )]
    UnknownFormat { path: PathBuf },
    #[error("{}: header field '{field}' {problem}", .path.display())]
    Header {
        path: PathBuf,
        field: String,
        problem: String,
    },
    #[error("{}: unsupported {what}", .path.display())]
    Unsupported { path: PathBuf, what: String },
    #[error("{}: truncated {what}: needs {expected} bytes, has {actual}", .path.display())]
    Truncated {
        path: PathBuf,
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{}: signal file holds {actual} frames, the header says {expected}", .path.display())]
    ShortSignalFile {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{}: malformed annotation at byte {offset}: {problem}", .path.display())]
    Annotation {
        path: PathBuf,
        offset: u64,
        problem: String,
    },
    #[error("read_blocks got {got} output buffers for a recording of {expected} signals")]
    OutputMismatch { expected: usize, got: usize },
}

impl ReadError {
    pub(crate) fn header(
        path: &std::path::Path,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        ReadError::Header {
            path: path.to_path_buf(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ReadError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
