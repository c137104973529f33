//! The file sink: JSON Lines or concatenated binary wire-format messages.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sigfab_operators::Item;

use super::{create_parent, SinkError, SinkWriter};
use crate::config::FileFormat;
use crate::wire::{self, Encoding};

pub struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    format: FileFormat,
    fsync: bool,
    /// Reused encoding buffer: no allocation per item in steady state.
    buffer: Vec<u8>,
}

impl FileSink {
    pub fn create(path: &Path, format: FileFormat, fsync: bool) -> Result<FileSink, SinkError> {
        create_parent(path)?;
        let file = File::create(path).map_err(|source| SinkError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FileSink {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            format,
            fsync,
            buffer: Vec::new(),
        })
    }

    fn io_error(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl SinkWriter for FileSink {
    fn write(&mut self, item: &Item) -> Result<(), SinkError> {
        self.buffer.clear();
        match self.format {
            FileFormat::Jsonl => {
                wire::encode(item, Encoding::Json, &mut self.buffer);
                self.buffer.push(b'\n');
            }
            FileFormat::Binary => wire::encode(item, Encoding::Binary, &mut self.buffer),
        }
        self.out.write_all(&self.buffer).map_err(|e| self.io_error(e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.io_error(e))?;
        if self.fsync {
            self.out.get_ref().sync_data().map_err(|e| self.io_error(e))?;
        }
        Ok(())
    }

    fn path(&self) -> Option<PathBuf> {
        Some(self.path.clone())
    }
}
