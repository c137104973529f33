//! The file sink: JSON Lines or concatenated binary wire-format messages.

use std::path::{Path, PathBuf};

use sigfab_operators::Item;

use super::{DurableFile, SinkError, SinkWriter};
use crate::config::FileFormat;
use crate::wire::{self, Encoding};

pub struct FileSink {
    file: DurableFile,
    format: FileFormat,
    /// Reused encoding buffer: no allocation per item in steady state.
    buffer: Vec<u8>,
}

impl FileSink {
    pub fn create(path: &Path, format: FileFormat, fsync: bool) -> Result<FileSink, SinkError> {
        Ok(FileSink {
            file: DurableFile::create(path, fsync)?,
            format,
            buffer: Vec::new(),
        })
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
        self.file.write_all(&self.buffer)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.file.flush()
    }

    fn path(&self) -> Option<PathBuf> {
        Some(self.file.path().to_path_buf())
    }
}
