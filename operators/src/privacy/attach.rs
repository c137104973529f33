//! `attach_labels`: copies chosen keys of de-identified frame metadata onto
//! the records of the same stream, as labels.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{Item, Operator, Output, Rejected};

type Labels = Vec<(Arc<str>, Arc<str>)>;

/// Reads frames and records. A frame sets its stream's labels from the
/// listed metadata keys (a key the frame lacks is left off) and is consumed;
/// a record gets its stream's current labels appended. Records of a stream
/// whose first frame has not arrived yet are held (at most `max_held` per
/// stream; beyond that, or at the end, they leave without labels), so the
/// result does not depend on which input edge delivers first.
pub struct AttachLabels {
    keys: Vec<Arc<str>>,
    max_held: usize,
    labels: HashMap<Arc<str>, Labels>,
    held: HashMap<Arc<str>, Vec<crate::Record>>,
}

impl AttachLabels {
    pub fn new(keys: Vec<String>, max_held: usize) -> AttachLabels {
        AttachLabels {
            keys: keys.into_iter().map(Arc::from).collect(),
            max_held,
            labels: HashMap::new(),
            held: HashMap::new(),
        }
    }

    fn label(&self, record: &mut crate::Record) {
        if let Some(labels) = self.labels.get(&record.stream_id) {
            record.labels.extend(labels.iter().cloned());
        }
    }
}

impl Operator for AttachLabels {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        match item {
            Item::Frame(frame) => {
                let labels: Labels = self
                    .keys
                    .iter()
                    .filter_map(|k| frame.metadata.get(k).map(|v| (k.clone(), Arc::from(v))))
                    .collect();
                let changed = self.labels.get(&frame.stream_id) != Some(&labels);
                if changed {
                    self.labels.insert(frame.stream_id.clone(), labels);
                }
                if let Some(held) = self.held.remove(&frame.stream_id) {
                    for mut record in held {
                        self.label(&mut record);
                        out.push(Item::Record(record));
                    }
                }
            }
            Item::Record(mut record) => {
                if self.labels.contains_key(&record.stream_id) {
                    self.label(&mut record);
                    out.push(Item::Record(record));
                } else {
                    let held = self.held.entry(record.stream_id.clone()).or_default();
                    if held.len() < self.max_held {
                        held.push(record);
                    } else {
                        out.push(Item::Record(record));
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) {
        let mut streams: Vec<_> = self.held.drain().collect();
        streams.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, records) in streams {
            for record in records {
                out.push(Item::Record(record));
            }
        }
    }
}
