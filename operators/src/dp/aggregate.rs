//! `dp_aggregate`: per tumbling window of record time and per group (a
//! label, e.g. the unit), a noisy count, sum or mean of one record value,
//! charged to a budget ledger before it leaves.

use std::collections::HashMap;
use std::sync::Arc;

use super::mechanism::{MechanismError, MechanismKind, Noise};
use super::sample::RandomSource;
use super::{Budget, Ledger};
use crate::privacy::{window_index, PrivacyCounters};
use crate::{Item, Operator, Output, Record, Rejected};

/// The record kind of a release.
pub const KIND: &str = "dp_aggregate";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    Count,
    Sum,
    Mean,
}

#[derive(Clone, Debug)]
pub struct DpAggregateConfig {
    /// Name of the budget in the ledger.
    pub budget: String,
    pub statistic: Statistic,
    /// The record value summed or averaged (not used by count).
    pub value: Option<String>,
    /// Clamping bounds `[lower, upper]` of the value.
    pub lower: f64,
    pub upper: f64,
    /// Grid step the clamped value is snapped to before summing.
    pub granularity: f64,
    pub mechanism: MechanismKind,
    /// Per window release (all groups together).
    pub epsilon: f64,
    pub delta: f64,
    /// Label naming the group.
    pub group_by: String,
    /// The public list of groups; every one is released in every window.
    pub groups: Vec<String>,
    pub window_ns: i64,
    /// Records one stream may contribute per window (the rest are dropped).
    pub max_contributions: u32,
    /// Stream id of the released records.
    pub stream_id: String,
}

/// The window's true tallies per group, in grid units.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    count: i128,
    sum: i128,
}

pub struct DpAggregate<R, L> {
    config: DpAggregateConfig,
    /// Noise for the count and for the sum (each with its share of ε, δ).
    count_noise: Option<Noise>,
    sum_noise: Option<Noise>,
    /// The value's grid range: ceil(lower/g) ..= floor(upper/g).
    grid: (i64, i64),
    cost: Budget,
    rng: R,
    ledger: L,
    counters: Arc<PrivacyCounters>,
    open: Option<i64>,
    tallies: Vec<Tally>,
    /// Records each stream contributed to the open window.
    contributions: HashMap<Arc<str>, u32>,
    /// Its group, fixed by the stream's first record in the window: a
    /// stream contributes to one group per window (disjoint groups, so one
    /// window's release costs ε once, by parallel composition).
    stream_group: HashMap<Arc<str>, usize>,
    releases: u64,
    stream: Arc<str>,
    kind: Arc<str>,
    label: Arc<str>,
}

impl<R: RandomSource + Send, L: Ledger> DpAggregate<R, L> {
    pub fn new(
        config: DpAggregateConfig,
        rng: R,
        ledger: L,
        counters: Arc<PrivacyCounters>,
    ) -> Result<Self, MechanismError> {
        let m = u64::from(config.max_contributions.max(1));
        let g = config.granularity;
        if !(g.is_finite() && g > 0.0 && config.lower.is_finite() && config.upper.is_finite()) {
            return Err(MechanismError::BadSensitivity);
        }
        let low = (config.lower / g).ceil();
        let high = (config.upper / g).floor();
        if !(low <= high && low.abs() < 2f64.powi(52) && high.abs() < 2f64.powi(52)) {
            return Err(MechanismError::BadSensitivity);
        }
        let grid = (low as i64, high as i64);
        let per_record = grid.0.unsigned_abs().max(grid.1.unsigned_abs()).max(1);
        let noise = |share: f64, sensitivity: u64| match config.mechanism {
            MechanismKind::Laplace => Noise::laplace(config.epsilon * share, sensitivity),
            MechanismKind::Gaussian => {
                Noise::gaussian(config.epsilon * share, config.delta * share, sensitivity)
            }
        };
        let (count_noise, sum_noise) = match config.statistic {
            Statistic::Count => (Some(noise(1.0, m)?), None),
            Statistic::Sum => (None, Some(noise(1.0, m.saturating_mul(per_record))?)),
            Statistic::Mean => (
                Some(noise(0.5, m)?),
                Some(noise(0.5, m.saturating_mul(per_record))?),
            ),
        };
        let delta = match config.mechanism {
            MechanismKind::Laplace => 0.0,
            MechanismKind::Gaussian => config.delta,
        };
        Ok(DpAggregate {
            cost: Budget::cost(config.epsilon, delta),
            count_noise,
            sum_noise,
            grid,
            rng,
            ledger,
            counters,
            open: None,
            tallies: vec![Tally::default(); config.groups.len()],
            contributions: HashMap::new(),
            stream_group: HashMap::new(),
            releases: 0,
            stream: Arc::from(config.stream_id.as_str()),
            kind: Arc::from(KIND),
            label: Arc::from(config.group_by.as_str()),
            config,
        })
    }

    /// The noise parameters (count, sum), for documentation and tests.
    pub fn noise(&self) -> (Option<Noise>, Option<Noise>) {
        (self.count_noise, self.sum_noise)
    }

    /// The ledger charged for releases.
    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    fn dropped(&self) {
        PrivacyCounters::add(&self.counters.dropped, 1);
    }

    /// The record's group and grid value, or None when it cannot be used
    /// (no listed group, no value, NaN).
    fn contribution(&self, record: &Record) -> Option<(usize, i64)> {
        let group = record
            .label(&self.config.group_by)
            .and_then(|g| self.config.groups.iter().position(|x| x == g))?;
        let value = match self.config.statistic {
            Statistic::Count => 0,
            Statistic::Sum | Statistic::Mean => {
                let v = self.config.value.as_deref().and_then(|n| record.value(n))?;
                if v.is_nan() {
                    return None;
                }
                // Clamp, then snap to the grid (round half away from zero),
                // then clamp again so the grid value stays in bounds.
                let v = v.clamp(self.config.lower, self.config.upper);
                ((v / self.config.granularity).round() as i64).clamp(self.grid.0, self.grid.1)
            }
        };
        Some((group, value))
    }

    /// Adds one usable record to the open window's tallies, or drops it.
    fn take(&mut self, record: &Record, group: usize, value: i64) {
        let used = self.contributions.entry(record.stream_id.clone()).or_insert(0);
        if *used >= self.config.max_contributions {
            return self.dropped();
        }
        let fixed = *self.stream_group.entry(record.stream_id.clone()).or_insert(group);
        if fixed != group {
            return self.dropped();
        }
        *used += 1;
        let tally = &mut self.tallies[group];
        tally.count += 1;
        tally.sum += i128::from(value);
    }

    /// Charges the ledger, then draws and emits one record per group.
    fn close(&mut self, window: i64, out: &mut Output) {
        let tallies = std::mem::replace(
            &mut self.tallies,
            vec![Tally::default(); self.config.groups.len()],
        );
        self.contributions.clear();
        self.stream_group.clear();
        if self.ledger.charge(&self.config.budget, self.cost).is_err() {
            PrivacyCounters::add(&self.counters.refused, 1);
            return;
        }
        let mut released = Vec::with_capacity(tallies.len());
        for tally in &tallies {
            let count = match self.count_noise {
                Some(n) => n.draw(&mut self.rng).map(|z| tally.count + z),
                None => Ok(0),
            };
            let sum = match self.sum_noise {
                Some(n) => n.draw(&mut self.rng).map(|z| tally.sum + z),
                None => Ok(0),
            };
            match (count, sum) {
                (Ok(c), Ok(s)) => released.push((c, s)),
                // The budget is spent and nothing leaves: fail closed.
                _ => {
                    PrivacyCounters::add(&self.counters.refused, 1);
                    return;
                }
            }
        }
        let g = self.config.granularity;
        let start_ns = window.saturating_mul(self.config.window_ns);
        for (group, (count, sum)) in self.config.groups.iter().zip(released) {
            let value = match self.config.statistic {
                Statistic::Count => ("count", count as f64),
                Statistic::Sum => ("sum", sum as f64 * g),
                Statistic::Mean => {
                    let mean = sum as f64 * g / count.max(1) as f64;
                    ("mean", mean.clamp(self.config.lower, self.config.upper))
                }
            };
            let mut values = vec![(Arc::from(value.0), value.1)];
            if self.config.statistic == Statistic::Mean {
                values.push((Arc::from("noisy_count"), count as f64));
                values.push((Arc::from("noisy_sum"), sum as f64 * g));
            }
            values.push((Arc::from("epsilon"), self.cost.epsilon()));
            values.push((Arc::from("delta"), self.cost.delta()));
            out.push(Item::Record(Record {
                stream_id: self.stream.clone(),
                sequence: self.releases,
                kind: self.kind.clone(),
                start_ns,
                end_ns: start_ns.saturating_add(self.config.window_ns),
                values: values.into(),
                labels: vec![(self.label.clone(), Arc::from(group.as_str()))],
            }));
            PrivacyCounters::add(&self.counters.releases, 1);
        }
        self.releases += 1;
    }
}

impl<R: RandomSource + Send, L: Ledger> Operator for DpAggregate<R, L> {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Record(record) = item else {
            return Err(Rejected::boxed(item, "dp_aggregate takes records only"));
        };
        // Only usable records move the windows: an unrelated record (an
        // audit record, another unit) must not close a window early or
        // open one that costs budget.
        let Some((group, value)) = self.contribution(&record) else {
            self.dropped();
            return Ok(());
        };
        let window = window_index(record.start_ns, self.config.window_ns);
        match self.open {
            Some(open) if window < open => {
                // Late for a released window.
                self.dropped();
                return Ok(());
            }
            Some(open) if window > open => {
                self.close(open, out);
                self.open = Some(window);
            }
            Some(_) => {}
            None => self.open = Some(window),
        }
        self.take(&record, group, value);
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) {
        if let Some(open) = self.open.take() {
            self.close(open, out);
        }
    }
}
