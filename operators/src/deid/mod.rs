//! De-identification: metadata scrubbed by a [`Policy`], stream and patient
//! ids replaced by keyed pseudonyms, every timestamp of a patient shifted by
//! a per-patient offset, annotations reduced to an allow-list of terms, and
//! one audit record (counts only, never values) when the run ends.
//!
//! Pure like every operator: the key arrives as bytes; no I/O, no clock.
//! What remains identifying after this operator is in `docs/privacy.md`.

pub mod generalise;
pub mod keyed;
pub mod policy;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub use keyed::{PseudonymKey, ShortKey, MIN_KEY_LEN};
pub use policy::{Action, Policy, ANNOTATION_KEY, HEADER_PATIENT_KEY};

use generalise::{year_of, Generaliser};

use crate::{Frame, Item, Metadata, Operator, Output, Record, Rejected};

const NS_PER_DAY: i64 = 86_400_000_000_000;
/// What replaces an annotation text outside the allow-list.
pub const REDACTED: &str = "[redacted]";
/// `kind` of the audit record emitted when the run ends.
pub const AUDIT_KIND: &str = "deid_audit";

/// How timestamps move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateShift {
    /// Largest shift either way, in days.
    pub max_days: u32,
    /// Shift by whole weeks (keeps the weekday as well as the time of day)
    /// rather than whole days (keeps only the time of day).
    pub whole_weeks: bool,
}

impl Default for DateShift {
    /// Up to 52 weeks either way, in whole weeks.
    fn default() -> Self {
        DateShift {
            max_days: 364,
            whole_weeks: true,
        }
    }
}

impl DateShift {
    /// A non-zero offset in whole days or weeks, uniform over the range,
    /// drawn from the keyed HMAC of `identity`. Zero is never drawn, so no
    /// patient keeps true dates.
    fn offset_ns(&self, key: &PseudonymKey, kind: &str, identity: &str) -> i64 {
        let step_days: u32 = if self.whole_weeks { 7 } else { 1 };
        let steps = i64::from(self.max_days / step_days);
        if steps == 0 {
            return 0;
        }
        let draw = key.draw(kind, identity, 2 * steps as u64) as i64; // 0..2*steps
        let signed = if draw < steps {
            draw - steps
        } else {
            draw - steps + 1
        };
        signed * i64::from(step_days) * NS_PER_DAY
    }
}

/// What to do with an annotation whose text is not on the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnlistedAnnotation {
    /// Keep the event and its onset, replace the text by `[redacted]`.
    #[default]
    Redact,
    /// Remove the annotation.
    Drop,
}

/// Everything the operator needs besides the key.
#[derive(Debug, Clone, PartialEq)]
pub struct DeidSettings {
    pub policy: Policy,
    pub date_shift: DateShift,
    pub unlisted_annotation: UnlistedAnnotation,
}

/// What one run did, by category; never values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditCounts {
    pub frames: u64,
    pub records: u64,
    pub fields_kept: u64,
    pub fields_dropped: u64,
    pub fields_generalised: u64,
    pub fields_pseudonymised: u64,
    pub annotations_kept: u64,
    pub annotations_redacted: u64,
    pub annotations_dropped: u64,
}

impl AuditCounts {
    fn add(&mut self, other: &AuditCounts) {
        self.frames += other.frames;
        self.records += other.records;
        self.fields_kept += other.fields_kept;
        self.fields_dropped += other.fields_dropped;
        self.fields_generalised += other.fields_generalised;
        self.fields_pseudonymised += other.fields_pseudonymised;
        self.annotations_kept += other.annotations_kept;
        self.annotations_redacted += other.annotations_redacted;
        self.annotations_dropped += other.annotations_dropped;
    }
}

/// The scrubbed form of one stream's current metadata, worked out once and
/// reused while the stream's metadata stays the same (sources share it).
struct StreamState {
    input: Metadata,
    output: Metadata,
    counts: AuditCounts,
    offset_ns: i64,
    pseudonym: Arc<str>,
}

/// The de-identification operator. See the module documentation.
pub struct Deidentify {
    key: PseudonymKey,
    settings: DeidSettings,
    fingerprint: String,
    streams: HashMap<Arc<str>, StreamState>,
    /// Pseudonyms of the patients seen, for the audit count.
    patients: HashSet<String>,
    totals: AuditCounts,
}

impl std::fmt::Debug for Deidentify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deidentify")
            .field("key", &self.key)
            .field("policy", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Deidentify {
    pub fn new(key: PseudonymKey, settings: DeidSettings) -> Deidentify {
        Deidentify {
            fingerprint: settings.policy.fingerprint(),
            key,
            settings,
            streams: HashMap::new(),
            patients: HashSet::new(),
            totals: AuditCounts::default(),
        }
    }

    /// The 16-hex-digit policy fingerprint reported in the audit record.
    pub fn policy_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn totals(&self) -> AuditCounts {
        self.totals
    }

    fn deidentify_frame(&mut self, mut frame: Frame) -> Frame {
        let stale = self
            .streams
            .get(&frame.stream_id)
            .is_none_or(|s| s.input != frame.metadata);
        if stale {
            let state = self.scrub(&frame);
            self.streams.insert(frame.stream_id.clone(), state);
        }
        let Some(state) = self.streams.get(&frame.stream_id) else {
            unreachable!("inserted above")
        };
        let mut counts = state.counts;
        counts.frames = 1;
        self.totals.add(&counts);
        frame.start_ns = frame.start_ns.saturating_add(state.offset_ns);
        frame.metadata = state.output.clone();
        frame.stream_id = state.pseudonym.clone();
        frame
    }

    fn deidentify_record(&mut self, mut record: Record) -> Record {
        let shift = &self.settings.date_shift;
        let (offset_ns, pseudonym) = match self.streams.get(&record.stream_id) {
            Some(state) => (state.offset_ns, state.pseudonym.clone()),
            None => (
                shift.offset_ns(&self.key, "stream", &record.stream_id),
                Arc::from(self.key.pseudonym("stream", &record.stream_id)),
            ),
        };
        record.start_ns = record.start_ns.saturating_add(offset_ns);
        record.end_ns = record.end_ns.saturating_add(offset_ns);
        record.stream_id = pseudonym;
        // Labels are metadata that travel on records: the same policy applies
        // (unknown keys dropped, generalised keys coarsened).
        if !record.labels.is_empty() {
            let context = Context {
                reference_year: year_of(record.start_ns),
                edf_plus: false,
            };
            let mut counts = AuditCounts::default();
            let labels = std::mem::take(&mut record.labels);
            for (key, value) in labels {
                if let Some(value) = self.scrub_entry(&key, &value, context, &mut counts) {
                    record.labels.push((key, Arc::from(value)));
                }
            }
            self.totals.add(&counts);
        }
        self.totals.records += 1;
        record
    }

    /// Applies the policy to one frame's metadata: the patient's identity
    /// (if any) gives the date offset; without one the stream's id does, so
    /// a stream's times still move consistently.
    fn scrub(&mut self, frame: &Frame) -> StreamState {
        let format = frame.metadata.get("format").unwrap_or_default();
        let context = Context {
            reference_year: year_of(frame.start_ns),
            edf_plus: format.eq_ignore_ascii_case("edf+") || format.eq_ignore_ascii_case("bdf+"),
        };
        let identity = self.patient_identity(&frame.metadata, context.edf_plus);
        let offset_ns = match &identity {
            Some(id) => self.settings.date_shift.offset_ns(&self.key, "patient", id),
            None => self
                .settings
                .date_shift
                .offset_ns(&self.key, "stream", &frame.stream_id),
        };
        if let Some(id) = &identity {
            self.patients.insert(self.key.pseudonym("patient", id));
        }
        let mut counts = AuditCounts::default();
        let mut output = Vec::with_capacity(frame.metadata.len());
        for (key, value) in &frame.metadata {
            if let Some(value) = self.scrub_entry(key, value, context, &mut counts) {
                output.push((key.clone(), value));
            }
        }
        StreamState {
            input: frame.metadata.clone(),
            output: output.into(),
            counts,
            offset_ns,
            pseudonym: Arc::from(self.key.pseudonym("stream", &frame.stream_id)),
        }
    }

    fn scrub_entry(
        &self,
        key: &str,
        value: &str,
        context: Context,
        counts: &mut AuditCounts,
    ) -> Option<String> {
        if key.eq_ignore_ascii_case(ANNOTATION_KEY) {
            return self.filter_annotation(key, value, counts);
        }
        match self.settings.policy.action(key) {
            Action::Keep => {
                counts.fields_kept += 1;
                Some(value.to_string())
            }
            Action::Drop => {
                counts.fields_dropped += 1;
                None
            }
            Action::Pseudonymise => {
                counts.fields_pseudonymised += 1;
                Some(self.key.pseudonym(
                    &self.pseudonym_kind(key),
                    &identity_of(key, value, context.edf_plus),
                ))
            }
            Action::Generalise => {
                let coarse = Generaliser::for_key(key).apply(value, context.reference_year);
                match coarse {
                    Some(_) => counts.fields_generalised += 1,
                    None => counts.fields_dropped += 1,
                }
                coarse
            }
        }
    }

    /// An annotation value is `onset<TAB>duration<TAB>text` (the file
    /// source's form) or bare text. Allowed texts pass; any other text is
    /// redacted or dropped. `keep` passes everything; `drop` removes all.
    fn filter_annotation(&self, key: &str, value: &str, counts: &mut AuditCounts) -> Option<String> {
        let (timing, text) = split_timing(value);
        let allowed = match self.settings.policy.action(key) {
            Action::Keep => true,
            Action::Drop => false,
            Action::Generalise | Action::Pseudonymise => self.settings.policy.allows_annotation(text),
        };
        if allowed {
            counts.annotations_kept += 1;
            return Some(value.to_string());
        }
        match self.settings.unlisted_annotation {
            UnlistedAnnotation::Drop => {
                counts.annotations_dropped += 1;
                None
            }
            UnlistedAnnotation::Redact => {
                counts.annotations_redacted += 1;
                Some(timing.map_or(REDACTED.to_string(), |t| format!("{t}\t{REDACTED}")))
            }
        }
    }

    /// Patient keys share one kind, so an MRN and the EDF header's patient
    /// code with the same text get the same pseudonym; other keys use their
    /// own name.
    fn pseudonym_kind(&self, key: &str) -> String {
        let policy = &self.settings.policy;
        if policy.patient_keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            "patient".to_string()
        } else {
            key.to_ascii_lowercase()
        }
    }

    /// The value of the first patient key present, as an identity.
    fn patient_identity(&self, metadata: &Metadata, edf_plus: bool) -> Option<String> {
        self.settings.policy.patient_keys.iter().find_map(|key| {
            let value = metadata.get(key)?;
            let identity = identity_of(key, value, edf_plus);
            (!identity.is_empty()).then_some(identity)
        })
    }

    fn audit_record(&self) -> Record {
        let t = &self.totals;
        let fingerprint_bits = u64::from_str_radix(&self.fingerprint[..12], 16).unwrap_or(0);
        let values: [(&str, f64); 15] = [
            ("policy_version", f64::from(self.settings.policy.version)),
            ("policy_fingerprint48", fingerprint_bits as f64),
            ("key_version", f64::from(self.key.version())),
            (
                "date_shift_max_days",
                f64::from(self.settings.date_shift.max_days),
            ),
            ("streams", self.streams.len() as f64),
            ("patients", self.patients.len() as f64),
            ("frames", t.frames as f64),
            ("records", t.records as f64),
            ("fields_kept", t.fields_kept as f64),
            ("fields_dropped", t.fields_dropped as f64),
            ("fields_generalised", t.fields_generalised as f64),
            ("fields_pseudonymised", t.fields_pseudonymised as f64),
            ("annotations_kept", t.annotations_kept as f64),
            ("annotations_redacted", t.annotations_redacted as f64),
            ("annotations_dropped", t.annotations_dropped as f64),
        ];
        Record {
            stream_id: Arc::from(format!("deid-audit-{}", self.fingerprint)),
            sequence: 0,
            kind: Arc::from(AUDIT_KIND),
            start_ns: 0,
            end_ns: 0,
            values: values.iter().map(|&(k, v)| (Arc::from(k), v)).collect(),
            labels: Vec::new(),
        }
    }
}

/// Splits `onset<TAB>duration<TAB>text` into the timing (kept even when
/// the text is redacted) and the text; anything else is all text, so no
/// free text can hide in a "timing" part.
fn split_timing(value: &str) -> (Option<&str>, &str) {
    let mut parts = value.splitn(3, '\t');
    let (Some(onset), Some(duration), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
        return (None, value);
    };
    let is_seconds = |t: &str| t.parse::<f64>().is_ok_and(f64::is_finite);
    let timed =
        onset.starts_with(['+', '-']) && is_seconds(onset) && (duration.is_empty() || is_seconds(duration));
    match timed {
        true => (Some(&value[..onset.len() + 1 + duration.len()]), text),
        false => (None, value),
    }
}

/// What scrubbing a value may depend on besides the value.
#[derive(Clone, Copy)]
struct Context {
    /// The (unshifted) year of the frame, for ages implied by birth years.
    reference_year: i64,
    /// The header fields follow EDF+ (`format` is edf+ or bdf+).
    edf_plus: bool,
}

/// The part of a value that identifies the patient: for an EDF+ header's
/// patient field (`code sex birthdate name`), the hospital code when it is
/// given (not `X`); otherwise the whole trimmed value (plain EDF free text,
/// WFDB header comments, which may start with the age).
fn identity_of(key: &str, value: &str, edf_plus: bool) -> String {
    let value = value.trim();
    if edf_plus && key.eq_ignore_ascii_case(HEADER_PATIENT_KEY) {
        if let Some(code) = value.split_whitespace().next().filter(|c| *c != "X") {
            return code.to_string();
        }
    }
    value.to_string()
}

impl Operator for Deidentify {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let item = match item {
            Item::Frame(frame) => Item::Frame(self.deidentify_frame(frame)),
            Item::Record(record) => Item::Record(self.deidentify_record(record)),
        };
        out.push(item);
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) {
        out.push(Item::Record(self.audit_record()));
    }
}

#[cfg(test)]
mod tests;
