//! Differential privacy for aggregate outputs: exact discrete noise
//! ([`sample`]), mechanisms with conservative rational parameters
//! ([`mechanism`]) and the `dp_aggregate` operator ([`aggregate`]). The
//! budget ledger that makes releases refusable is a trait here and a file in
//! the engine (`engine/src/dp_ledger.rs`): operators do no I/O.
//!
//! Per-sample noise on raw waveforms is deliberately not offered: a
//! waveform has no meaningful sensitivity bound and noise small enough to
//! keep it useful protects nothing.

pub mod aggregate;
pub mod mechanism;
pub mod sample;
#[cfg(test)]
mod tests;

pub use aggregate::{DpAggregate, DpAggregateConfig, Statistic};
pub use mechanism::{MechanismError, MechanismKind, Noise};
pub use sample::{OsRandom, RandomError, RandomSource};

/// ε and δ in fixed point, so that sums are exact and comparisons never
/// depend on float rounding: ε in units of 10^-9, δ in units of 10^-18.
/// Costs are rounded up, totals down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Budget {
    pub nano_epsilon: u64,
    pub atto_delta: u64,
}

pub const EPSILON_UNIT: f64 = 1e9;
pub const DELTA_UNIT: f64 = 1e18;

impl Budget {
    /// A cost: rounded up.
    pub fn cost(epsilon: f64, delta: f64) -> Budget {
        Budget {
            nano_epsilon: (epsilon * EPSILON_UNIT).ceil() as u64,
            atto_delta: (delta * DELTA_UNIT).ceil() as u64,
        }
    }

    /// A total: rounded down.
    pub fn total(epsilon: f64, delta: f64) -> Budget {
        Budget {
            nano_epsilon: (epsilon * EPSILON_UNIT).floor() as u64,
            atto_delta: (delta * DELTA_UNIT).floor() as u64,
        }
    }

    pub fn plus(self, other: Budget) -> Option<Budget> {
        Some(Budget {
            nano_epsilon: self.nano_epsilon.checked_add(other.nano_epsilon)?,
            atto_delta: self.atto_delta.checked_add(other.atto_delta)?,
        })
    }

    /// Both parts within `total`.
    pub fn within(self, total: Budget) -> bool {
        self.nano_epsilon <= total.nano_epsilon && self.atto_delta <= total.atto_delta
    }

    pub fn epsilon(self) -> f64 {
        self.nano_epsilon as f64 / EPSILON_UNIT
    }

    pub fn delta(self) -> f64 {
        self.atto_delta as f64 / DELTA_UNIT
    }
}

/// Why a release was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the release would exceed the privacy budget")]
    OverBudget,
    /// The ledger could not record the charge durably: fail closed.
    #[error("the budget ledger is unavailable: {0}")]
    Unavailable(String),
}

/// Where releases are charged. `charge` returns only once the charge is
/// durable; a refused charge spends nothing. Basic composition: the spent
/// ε and δ are the sums over all charges to the budget.
pub trait Ledger: Send {
    fn charge(&mut self, budget: &str, cost: Budget) -> Result<(), Refusal>;
}

/// A ledger in memory, for tests and for `sigfab validate`-style dry runs.
#[derive(Debug, Clone)]
pub struct MemoryLedger {
    pub total: Budget,
    pub spent: Budget,
}

impl MemoryLedger {
    pub fn new(total: Budget) -> MemoryLedger {
        MemoryLedger {
            total,
            spent: Budget::default(),
        }
    }
}

impl Ledger for MemoryLedger {
    fn charge(&mut self, _budget: &str, cost: Budget) -> Result<(), Refusal> {
        let after = self.spent.plus(cost).ok_or(Refusal::OverBudget)?;
        if !after.within(self.total) {
            return Err(Refusal::OverBudget);
        }
        self.spent = after;
        Ok(())
    }
}

impl<L: Ledger + ?Sized> Ledger for Box<L> {
    fn charge(&mut self, budget: &str, cost: Budget) -> Result<(), Refusal> {
        (**self).charge(budget, cost)
    }
}
