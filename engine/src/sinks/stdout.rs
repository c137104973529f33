//! The stdout sink: a short line per item, or wire-format JSON Lines.

use std::io::Write;
use std::path::PathBuf;

use sigfab_operators::Item;

use super::{SinkError, SinkWriter};
use crate::config::StdoutFormat;
use crate::wire::{self, Encoding};

pub struct StdoutSink {
    format: StdoutFormat,
    buffer: Vec<u8>,
}

impl StdoutSink {
    pub fn new(format: StdoutFormat) -> Self {
        Self {
            format,
            buffer: Vec::new(),
        }
    }
}

fn io_error(source: std::io::Error) -> SinkError {
    SinkError::Io {
        path: PathBuf::from("<stdout>"),
        source,
    }
}

/// One line describing an item; samples and metadata values are left out.
pub fn summary_line(item: &Item, out: &mut Vec<u8>) {
    use std::fmt::Write as _;
    let mut line = String::new();
    let _ = match item {
        Item::Frame(f) => write!(
            line,
            "frame  stream={} seq={} start_ns={} modality={} channels={} samples={}{}",
            f.stream_id,
            f.sequence,
            f.start_ns,
            f.modality,
            f.channel_count(),
            f.sample_count(),
            if f.discontinuity { " discontinuity" } else { "" }
        ),
        Item::Record(r) => write!(
            line,
            "record stream={} seq={} kind={} start_ns={} values={}",
            r.stream_id,
            r.sequence,
            r.kind,
            r.start_ns,
            r.values.len()
        ),
    };
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
}

impl SinkWriter for StdoutSink {
    fn write(&mut self, item: &Item) -> Result<(), SinkError> {
        self.buffer.clear();
        match self.format {
            StdoutFormat::Summary => summary_line(item, &mut self.buffer),
            StdoutFormat::Jsonl => {
                wire::encode(item, Encoding::Json, &mut self.buffer);
                self.buffer.push(b'\n');
            }
        }
        std::io::stdout().lock().write_all(&self.buffer).map_err(io_error)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        std::io::stdout().lock().flush().map_err(io_error)
    }

    fn path(&self) -> Option<PathBuf> {
        None
    }
}
