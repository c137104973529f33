//! The k-anonymity gate: per tumbling window of record time, records whose
//! quasi-identifier combination (equivalence class) is shared by fewer than
//! k records are generalised (optionally) and then suppressed.

use std::collections::HashMap;
use std::sync::Arc;

use super::{window_index, PrivacyCounters};
use crate::{Item, Operator, Output, Record, Rejected};

/// The fully generalised value of any quasi-identifier.
pub const ANY: &str = "*";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KAction {
    /// Withhold every record of a class smaller than k.
    Suppress,
    /// Coarsen quasi-identifiers (Datafly-style, one column at a time)
    /// until at most k records remain in small classes, then suppress those.
    Generalise,
}

#[derive(Clone, Debug)]
pub struct KAnonymityConfig {
    pub k: usize,
    pub quasi_identifiers: Vec<String>,
    pub window_ns: i64,
    pub action: KAction,
    /// Most records held for one window; reaching it closes the window
    /// early (the next records start a new batch of the same window).
    pub max_records: usize,
}

pub struct KAnonymity {
    config: KAnonymityConfig,
    qis: Vec<Arc<str>>,
    any: Arc<str>,
    counters: Arc<PrivacyCounters>,
    /// The open window's index and its records.
    open: Option<i64>,
    held: Vec<Record>,
}

impl KAnonymity {
    pub fn new(config: KAnonymityConfig, counters: Arc<PrivacyCounters>) -> KAnonymity {
        let qis = config
            .quasi_identifiers
            .iter()
            .map(|q| Arc::from(q.as_str()))
            .collect();
        let held = Vec::with_capacity(config.max_records.min(4096));
        KAnonymity {
            config,
            qis,
            any: Arc::from(ANY),
            counters,
            open: None,
            held,
        }
    }

    /// Decides the held window and pushes what may leave.
    fn close(&mut self, out: &mut Output) {
        let mut records = std::mem::take(&mut self.held);
        if records.is_empty() {
            return;
        }
        // Each record's quasi-identifier values, missing ones as "*".
        let mut rows: Vec<Vec<Arc<str>>> = records
            .iter()
            .map(|r| {
                self.qis
                    .iter()
                    .map(|q| r.label(q).map_or_else(|| self.any.clone(), Arc::from))
                    .collect()
            })
            .collect();
        let original = rows.clone();
        let k = self.config.k;
        if self.config.action == KAction::Generalise {
            loop {
                let sizes = class_sizes(&rows);
                let small: Vec<usize> = (0..rows.len()).filter(|&i| sizes[&rows[i]] < k).collect();
                if small.len() <= k {
                    break;
                }
                // The column with the most distinct values among all rows
                // (Datafly) that can still be coarsened.
                let Some(column) = (0..self.qis.len())
                    .filter(|&c| rows.iter().any(|r| &*r[c] != ANY))
                    .max_by_key(|&c| {
                        let mut values: Vec<&str> = rows.iter().map(|r| &*r[c]).collect();
                        values.sort_unstable();
                        values.dedup();
                        (values.len(), std::cmp::Reverse(c))
                    })
                else {
                    break;
                };
                for row in &mut rows {
                    row[column] = Arc::from(generalise_once(&self.qis[column], &row[column]));
                }
            }
        }
        let sizes = class_sizes(&rows);
        let keep: Vec<bool> = rows.iter().map(|r| sizes[r] >= k).collect();
        for ((mut record, row), (keep, before)) in
            records.drain(..).zip(rows).zip(keep.into_iter().zip(original))
        {
            if !keep {
                PrivacyCounters::add(&self.counters.suppressed, 1);
                continue;
            }
            if row != before {
                PrivacyCounters::add(&self.counters.generalised, 1);
            }
            for (qi, value) in self.qis.iter().zip(row) {
                match record.labels.iter_mut().find(|(k, _)| k == qi) {
                    Some(label) => label.1 = value,
                    None => record.labels.push((qi.clone(), value)),
                }
                // Duplicate keys of a quasi-identifier would escape the
                // class: only the first (now generalised) one stays.
                let mut seen = false;
                record.labels.retain(|(k, _)| {
                    if k != qi {
                        return true;
                    }
                    let first = !seen;
                    seen = true;
                    first
                });
            }
            out.push(Item::Record(record));
        }
        self.held = records;
    }
}

fn class_sizes(rows: &[Vec<Arc<str>>]) -> HashMap<&Vec<Arc<str>>, usize> {
    let mut sizes = HashMap::new();
    for row in rows {
        *sizes.entry(row).or_insert(0) += 1;
    }
    sizes
}

/// One step up the generalisation hierarchy of a quasi-identifier:
/// - an age band `a-b` (e.g. `60-64`, `60-69`) widens to the 20-year band
///   holding `a` (`60-79`); a 20-year band or wider, `90+`, or anything
///   else becomes `*`;
/// - every other value (sex, unit, ...) becomes `*`.
pub fn generalise_once(_qi: &str, value: &str) -> String {
    if let Some((low, high)) = value.split_once('-') {
        if let (Ok(low), Ok(high)) = (low.trim().parse::<u32>(), high.trim().parse::<u32>()) {
            if low <= high && high - low < 19 {
                let start = low / 20 * 20;
                return format!("{}-{}", start, start + 19);
            }
        }
    }
    ANY.to_string()
}

impl Operator for KAnonymity {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Record(record) = item else {
            // Frames are not gated (graph.rs allows only records in).
            return Err(Rejected::boxed(item, "k_anonymity takes records only"));
        };
        let window = window_index(record.start_ns, self.config.window_ns);
        match self.open {
            Some(open) if window < open => {
                // Late: its window was already released. Fail closed.
                PrivacyCounters::add(&self.counters.suppressed, 1);
                return Ok(());
            }
            Some(open) if window > open => {
                self.close(out);
                self.open = Some(window);
            }
            Some(_) => {}
            None => self.open = Some(window),
        }
        self.held.push(record);
        if self.held.len() >= self.config.max_records {
            self.close(out);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) {
        self.close(out);
    }
}
