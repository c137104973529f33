//! Records: named values computed from frames (statistics, features).

use std::sync::Arc;

/// A timestamped set of named values derived from one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub stream_id: Arc<str>,
    /// Sequence of the frame that completed this record.
    pub sequence: u64,
    /// What produced the record, e.g. "frame_stats".
    pub kind: Arc<str>,
    /// Time span the values describe, ns since the Unix epoch (UTC).
    pub start_ns: i64,
    pub end_ns: i64,
    /// Names and values, e.g. ("Fp1.rms", 12.5).
    pub values: Vec<(Arc<str>, f64)>,
}
