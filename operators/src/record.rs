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
    /// String labels, e.g. ("age_band", "60-69"): quasi-identifiers that
    /// travel with the values (attached by `attach_labels` from de-identified
    /// frame metadata, read by `k_anonymity` and `dp_aggregate`). Empty for
    /// most records. May be identifying in combination: see docs/privacy.md.
    pub labels: Vec<(Arc<str>, Arc<str>)>,
}

impl Record {
    /// The value of the first label called `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| &**k == name).map(|(_, v)| &**v)
    }

    /// The first value called `name`.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| &**k == name).map(|(_, v)| *v)
    }
}
