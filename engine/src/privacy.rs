//! The engine side of the privacy operators: the persistent differential
//! privacy budget ledger (a file: operators do no I/O), and the building of
//! `attach_labels`, `k_anonymity` and `dp_aggregate` from their specs.
//!
//! Ledger file: JSON Lines, one line per charged release, appended and
//! fsynced **before** the release leaves the operator, so a crash after the
//! write never loses spent budget (it can only lose a release, which is the
//! safe direction). `docs/privacy.md` gives the format. Log lines and errors
//! name budgets, nodes and paths (configuration), never record values or
//! labels.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sigfab_operators::dp::{
    Budget, DpAggregate, DpAggregateConfig, Ledger, MechanismKind, Noise, OsRandom, Refusal, Statistic,
};
use sigfab_operators::privacy::{AttachLabels, KAction, KAnonymity, KAnonymityConfig, PrivacyCounters};
use sigfab_operators::Operator;

use crate::config::spec::{
    AttachLabelsSpec, DpAggregateSpec, DpMechanism, DpStatistic, KAnonymityAction, KAnonymitySpec,
};
use crate::config::LoadedPipeline;
use crate::config::Pos;

/// The ledger's format version, in every line.
pub const LEDGER_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot use the privacy ledger {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "the privacy ledger {path} is in use by another process (lock file {lock} exists); \
         if no sigfab is running with it, remove the lock file"
    )]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("the privacy ledger {path} has an unreadable entry at line {line}; refusing to guess the spent budget")]
    Corrupt { path: PathBuf, line: usize },
    #[error("dp_aggregate: {0}")]
    Mechanism(#[from] sigfab_operators::dp::MechanismError),
}

/// One line of the ledger.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    v: u32,
    budget: String,
    node: String,
    /// ε in units of 1e-9 and δ in units of 1e-18 (exact sums).
    nano_epsilon: u64,
    atto_delta: u64,
    /// The same as floats, for people reading the file.
    epsilon: f64,
    delta: f64,
    /// Wall-clock time of the charge, ms since the Unix epoch.
    unix_ms: u64,
}

/// An open, locked ledger file and what it says was spent, per budget.
#[derive(Debug)]
pub struct LedgerFile {
    path: PathBuf,
    lock: PathBuf,
    file: File,
    spent: HashMap<String, Budget>,
    /// Set when a write failed: the file may end in a partial line, so no
    /// further charge is accepted (fail closed).
    poisoned: bool,
}

impl LedgerFile {
    /// Opens (creating) the ledger, takes its lock file, and reads the
    /// spent budgets. A final line without its newline is a write that was
    /// cut (the release it was for never left): it is truncated away.
    pub fn open(path: &Path) -> Result<LedgerFile, LedgerError> {
        let io = |source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let lock = lock_path(path);
        match OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(mut l) => {
                let _ = writeln!(l, "{}", std::process::id());
                let _ = l.sync_all();
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(LedgerError::Locked {
                    path: path.to_path_buf(),
                    lock,
                })
            }
            Err(e) => return Err(io(e)),
        }
        let unlock = |error: LedgerError| {
            let _ = std::fs::remove_file(&lock);
            error
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)
            .map_err(unlock)?;
        let spent = read_spent(path, &mut file).map_err(unlock)?;
        Ok(LedgerFile {
            path: path.to_path_buf(),
            lock: lock_path(path),
            file,
            spent,
            poisoned: false,
        })
    }

    /// What the ledger records as spent from `budget`.
    pub fn spent(&self, budget: &str) -> Budget {
        self.spent.get(budget).copied().unwrap_or_default()
    }

    /// Charges `cost` to `budget` if the total allows it: appends the line
    /// and fsyncs before returning Ok.
    pub fn charge(&mut self, node: &str, budget: &str, cost: Budget, total: Budget) -> Result<(), Refusal> {
        if self.poisoned {
            return Err(Refusal::Unavailable("an earlier write failed".into()));
        }
        let spent = self.spent(budget);
        let after = match spent.plus(cost) {
            Some(after) if after.within(total) => after,
            _ => {
                tracing::warn!(
                    node,
                    budget,
                    spent_epsilon = spent.epsilon(),
                    total_epsilon = total.epsilon(),
                    spent_delta = spent.delta(),
                    total_delta = total.delta(),
                    "differential privacy release refused: it would exceed the budget"
                );
                return Err(Refusal::OverBudget);
            }
        };
        let entry = Entry {
            v: LEDGER_VERSION,
            budget: budget.to_string(),
            node: node.to_string(),
            nano_epsilon: cost.nano_epsilon,
            atto_delta: cost.atto_delta,
            epsilon: cost.epsilon(),
            delta: cost.delta(),
            unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| Refusal::Unavailable(e.to_string()))?;
        line.push(b'\n');
        // One write of the whole line to a file opened for appending, then
        // fsync: the charge is durable before the release exists.
        let written = self.file.write_all(&line).and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            self.poisoned = true;
            tracing::error!(node, budget, path = %self.path.display(), %error, "privacy ledger write failed; refusing releases");
            return Err(Refusal::Unavailable(error.to_string()));
        }
        self.spent.insert(budget.to_string(), after);
        tracing::info!(
            node,
            budget,
            epsilon = cost.epsilon(),
            delta = cost.delta(),
            spent_epsilon = after.epsilon(),
            total_epsilon = total.epsilon(),
            "differential privacy release charged"
        );
        Ok(())
    }
}

impl Drop for LedgerFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

fn read_spent(path: &Path, file: &mut File) -> Result<HashMap<String, Budget>, LedgerError> {
    let io = |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.read_to_end(&mut bytes).map_err(io)?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        // A cut final write: its release never left. Remove it so that the
        // next line starts clean.
        tracing::warn!(path = %path.display(), "privacy ledger ends in a partial line (an interrupted write); removing it");
        file.set_len(complete as u64).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    let mut spent: HashMap<String, Budget> = HashMap::new();
    for (index, line) in BufReader::new(&bytes[..complete]).lines().enumerate() {
        let corrupt = || LedgerError::Corrupt {
            path: path.to_path_buf(),
            line: index + 1,
        };
        let line = line.map_err(|_| corrupt())?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_str(&line).map_err(|_| corrupt())?;
        if entry.v != LEDGER_VERSION {
            return Err(corrupt());
        }
        let cost = Budget {
            nano_epsilon: entry.nano_epsilon,
            atto_delta: entry.atto_delta,
        };
        let total = spent.entry(entry.budget).or_default();
        *total = total.plus(cost).ok_or_else(corrupt)?;
    }
    Ok(spent)
}

/// One node's view of a shared ledger file: its budget name and total.
pub struct LedgerHandle {
    file: Arc<Mutex<LedgerFile>>,
    node: String,
    budget: String,
    total: Budget,
}

impl Ledger for LedgerHandle {
    fn charge(&mut self, budget: &str, cost: Budget) -> Result<(), Refusal> {
        debug_assert_eq!(budget, self.budget);
        let mut file = self
            .file
            .lock()
            .map_err(|_| Refusal::Unavailable("the ledger lock is poisoned".into()))?;
        file.charge(&self.node, &self.budget, cost, self.total)
    }
}

/// The ledger files of one run, opened once per path (nodes that share a
/// file share one lock).
#[derive(Default)]
pub struct Ledgers {
    open: HashMap<PathBuf, Arc<Mutex<LedgerFile>>>,
}

impl Ledgers {
    pub fn handle(
        &mut self,
        path: &Path,
        node: &str,
        budget: &str,
        total: Budget,
    ) -> Result<LedgerHandle, LedgerError> {
        let file = match self.open.get(path) {
            Some(file) => file.clone(),
            None => {
                let file = Arc::new(Mutex::new(LedgerFile::open(path)?));
                self.open.insert(path.to_path_buf(), file.clone());
                file
            }
        };
        if let Ok(f) = file.lock() {
            let spent = f.spent(budget);
            tracing::info!(
                node,
                budget,
                spent_epsilon = spent.epsilon(),
                total_epsilon = total.epsilon(),
                "privacy ledger opened"
            );
        }
        Ok(LedgerHandle {
            file,
            node: node.to_string(),
            budget: budget.to_string(),
            total,
        })
    }
}

// ---------------------------------------------------------------- building

/// Default grid step: the largest power of two at most (upper - lower) /
/// 4096, so the clamped range spans 4096 to 8191 steps.
pub fn default_granularity(lower: f64, upper: f64) -> f64 {
    let span = (upper - lower) / 4096.0;
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    2f64.powi(span.log2().floor() as i32)
}

/// The operator's configuration from a checked spec.
pub fn dp_config(spec: &DpAggregateSpec, stream_id: &str) -> DpAggregateConfig {
    let (lower, upper) = match spec.bounds.as_ref().map(|b| &b.value[..]) {
        Some(&[lower, upper]) => (lower, upper),
        // count needs no bounds; its sum grid is never used.
        _ => (0.0, 1.0),
    };
    let mechanism = match spec.mechanism {
        DpMechanism::Laplace => MechanismKind::Laplace,
        DpMechanism::Gaussian => MechanismKind::Gaussian,
    };
    DpAggregateConfig {
        budget: spec.ledger.budget.value.clone(),
        statistic: match spec.statistic.value {
            DpStatistic::Count => Statistic::Count,
            DpStatistic::Sum => Statistic::Sum,
            DpStatistic::Mean => Statistic::Mean,
        },
        value: spec.value.as_ref().map(|v| v.value.clone()),
        lower,
        upper,
        granularity: spec
            .granularity
            .as_ref()
            .map_or_else(|| default_granularity(lower, upper), |g| g.value),
        mechanism,
        epsilon: spec.epsilon.value,
        delta: spec.delta.as_ref().map_or(0.0, |d| d.value),
        group_by: spec.group_by.value.clone(),
        groups: spec.groups.value.clone(),
        window_ns: i64::try_from(spec.window.value.0.as_nanos()).unwrap_or(i64::MAX),
        max_contributions: spec.max_contributions.value,
        stream_id: stream_id.to_string(),
    }
}

fn total_budget(spec: &DpAggregateSpec) -> Budget {
    Budget::total(
        spec.ledger.total_epsilon.value,
        spec.ledger.total_delta.as_ref().map_or(0.0, |d| d.value),
    )
}

/// Value checks for `dp_aggregate` (graph.rs reports them with positions).
pub fn check_dp_spec(spec: &DpAggregateSpec) -> Vec<(Pos, String)> {
    let mut errors = Vec::new();
    let mut fail = |pos: Pos, message: &str| errors.push((pos, format!("dp_aggregate.{message}")));
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(spec.epsilon.value) {
        fail(spec.epsilon.pos, "epsilon must be a positive number");
    }
    match (spec.mechanism, &spec.delta) {
        (DpMechanism::Gaussian, None) => fail(spec.epsilon.pos, "delta is needed by the gaussian mechanism"),
        (DpMechanism::Gaussian, Some(d)) if !(d.value > 0.0 && d.value < 1.0) => {
            fail(d.pos, "delta must be between 0 and 1 (exclusive)")
        }
        (DpMechanism::Laplace, Some(d)) => fail(d.pos, "delta is only for the gaussian mechanism"),
        _ => {}
    }
    let needs_value = spec.statistic.value != DpStatistic::Count;
    match (&spec.value, needs_value) {
        (None, true) => fail(spec.statistic.pos, "value is needed for sum and mean"),
        (Some(v), false) => fail(v.pos, "value is not used by count"),
        _ => {}
    }
    match (&spec.bounds, needs_value) {
        (None, true) => fail(
            spec.statistic.pos,
            "bounds [lower, upper] are needed for sum and mean",
        ),
        (Some(b), false) => fail(b.pos, "bounds are not used by count"),
        (Some(b), true) => match b.value[..] {
            [lower, upper] if lower.is_finite() && upper.is_finite() && lower < upper => {}
            _ => fail(b.pos, "bounds must be [lower, upper] with lower < upper"),
        },
        (None, false) => {}
    }
    if let Some(g) = &spec.granularity {
        if !positive(g.value) {
            fail(g.pos, "granularity must be a positive number");
        }
    }
    if spec.group_by.value.trim().is_empty() {
        fail(spec.group_by.pos, "group_by must name a label");
    }
    if spec.groups.value.is_empty() || spec.groups.value.iter().any(|g| g.is_empty()) {
        fail(spec.groups.pos, "groups must list every group, none empty");
    }
    if spec.window.value.0.is_zero() {
        fail(spec.window.pos, "window must be longer than 0");
    }
    if spec.max_contributions.value == 0 {
        fail(spec.max_contributions.pos, "max_contributions must be at least 1");
    }
    if spec.ledger.path.value.trim().is_empty() {
        fail(spec.ledger.path.pos, "ledger.path is empty");
    }
    if spec.ledger.budget.value.trim().is_empty() {
        fail(spec.ledger.budget.pos, "ledger.budget must name the budget");
    }
    if !positive(spec.ledger.total_epsilon.value) {
        fail(
            spec.ledger.total_epsilon.pos,
            "ledger.total_epsilon must be a positive number",
        );
    }
    if let Some(d) = &spec.ledger.total_delta {
        if !(d.value >= 0.0 && d.value < 1.0) {
            fail(d.pos, "ledger.total_delta must be at least 0 and below 1");
        }
    }
    if errors.is_empty() {
        // The mechanism as the run builds it: a scale beyond exact
        // sampling is a configuration error, not a runtime one.
        let config = dp_config(spec, "check");
        let counters = Arc::new(PrivacyCounters::default());
        let ledger = sigfab_operators::dp::MemoryLedger::new(Budget::default());
        if let Err(e) = DpAggregate::new(config, OsRandom::default(), ledger, counters) {
            errors.push((spec.epsilon.pos, format!("dp_aggregate: {e}")));
        }
        let cost = Budget::cost(spec.epsilon.value, spec.delta.as_ref().map_or(0.0, |d| d.value));
        if !cost.within(total_budget(spec)) {
            errors.push((
                spec.ledger.total_epsilon.pos,
                "dp_aggregate.ledger: the total budget is smaller than one release".into(),
            ));
        }
    }
    errors
}

/// Builds `dp_aggregate`: opens (or shares) its ledger file.
pub fn build_dp(
    pipeline: &LoadedPipeline,
    spec: &DpAggregateSpec,
    node: &str,
    ledgers: &mut Ledgers,
    counters: Arc<PrivacyCounters>,
) -> Result<Box<dyn Operator>, LedgerError> {
    let path = pipeline.resolve(&spec.ledger.path.value);
    let handle = ledgers.handle(&path, node, &spec.ledger.budget.value, total_budget(spec))?;
    let config = dp_config(spec, &format!("dp-{node}"));
    let operator = DpAggregate::new(config, OsRandom::default(), handle, counters)?;
    Ok(Box::new(operator))
}

pub fn build_k_anonymity(spec: &KAnonymitySpec, counters: Arc<PrivacyCounters>) -> Box<dyn Operator> {
    let config = KAnonymityConfig {
        k: spec.k.value,
        quasi_identifiers: spec.quasi_identifiers.value.clone(),
        window_ns: i64::try_from(spec.window.value.0.as_nanos()).unwrap_or(i64::MAX),
        action: match spec.action {
            KAnonymityAction::Suppress => KAction::Suppress,
            KAnonymityAction::Generalise => KAction::Generalise,
        },
        max_records: spec.max_records.value,
    };
    Box::new(KAnonymity::new(config, counters))
}

pub fn build_attach_labels(spec: &AttachLabelsSpec) -> Box<dyn Operator> {
    Box::new(AttachLabels::new(spec.keys.value.clone(), spec.max_held.value))
}

/// Used by tests: the noise a spec gives.
pub fn noise_of(spec: &DpAggregateSpec) -> Result<(Option<Noise>, Option<Noise>), LedgerError> {
    let op = DpAggregate::new(
        dp_config(spec, "check"),
        OsRandom::default(),
        sigfab_operators::dp::MemoryLedger::new(Budget::default()),
        Arc::new(PrivacyCounters::default()),
    )?;
    Ok(op.noise())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sigfab-ledger-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("ledger.jsonl")
    }

    #[test]
    fn refuses_over_budget_and_survives_a_restart() {
        let path = temp("restart");
        let total = Budget::total(1.0, 0.0);
        let cost = Budget::cost(0.3, 0.0);
        {
            let mut ledger = LedgerFile::open(&path).expect("open");
            for _ in 0..3 {
                ledger.charge("n", "hourly", cost, total).expect("within budget");
            }
            assert_eq!(
                ledger.charge("n", "hourly", cost, total),
                Err(Refusal::OverBudget)
            );
            // Another budget in the same file is separate.
            ledger.charge("n", "daily", cost, total).expect("other budget");
            assert_eq!(ledger.spent("hourly").nano_epsilon, 900_000_000);
        }
        // Reopened (a restart): the spent budget is read back.
        let mut ledger = LedgerFile::open(&path).expect("reopen");
        assert_eq!(ledger.spent("hourly").nano_epsilon, 900_000_000);
        assert_eq!(ledger.spent("daily").nano_epsilon, 300_000_000);
        assert_eq!(
            ledger.charge("n", "hourly", cost, total),
            Err(Refusal::OverBudget)
        );
        ledger
            .charge("n", "hourly", Budget::cost(0.1, 0.0), total)
            .expect("exactly the rest");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 5);
        assert!(text.lines().all(|l| l.starts_with("{\"v\":1,\"budget\":")));
    }

    #[test]
    fn a_second_process_is_locked_out_until_the_first_closes() {
        let path = temp("lock");
        let first = LedgerFile::open(&path).expect("open");
        assert!(matches!(LedgerFile::open(&path), Err(LedgerError::Locked { .. })));
        drop(first);
        LedgerFile::open(&path).expect("free again");
    }

    /// A crash after the fsync and before the release leaves the charge in
    /// the file: the restart counts it. A crash in the middle of the write
    /// leaves a partial line, whose release never left: it is removed.
    #[test]
    fn crashes_never_lose_spent_budget() {
        let path = temp("crash");
        let total = Budget::total(1.0, 0.0);
        {
            let mut ledger = LedgerFile::open(&path).expect("open");
            ledger
                .charge("n", "b", Budget::cost(0.5, 0.0), total)
                .expect("charged");
            // Simulated crash: the process dies without releasing and
            // without running Drop (the lock file stays).
            std::mem::forget(ledger);
        }
        assert!(matches!(LedgerFile::open(&path), Err(LedgerError::Locked { .. })));
        std::fs::remove_file(lock_path(&path)).expect("operator removes the stale lock");
        // And a torn second write.
        let mut f = OpenOptions::new().append(true).open(&path).expect("append");
        f.write_all(b"{\"v\":1,\"budget\":\"b\",\"node\":\"n\",\"nano_eps")
            .expect("torn");
        drop(f);
        let mut ledger = LedgerFile::open(&path).expect("reopen");
        assert_eq!(ledger.spent("b").nano_epsilon, 500_000_000);
        ledger
            .charge("n", "b", Budget::cost(0.5, 0.0), total)
            .expect("the rest");
        assert_eq!(
            ledger.charge("n", "b", Budget::cost(0.01, 0.0), total),
            Err(Refusal::OverBudget)
        );
        drop(ledger);
        let ledger = LedgerFile::open(&path).expect("clean file");
        assert_eq!(ledger.spent("b").nano_epsilon, 1_000_000_000);
    }

    #[test]
    fn a_corrupt_complete_line_fails_closed() {
        let path = temp("corrupt");
        std::fs::write(&path, "{\"v\":1,\"budget\":\"b\"}\n").expect("write");
        assert!(matches!(
            LedgerFile::open(&path),
            Err(LedgerError::Corrupt { line: 1, .. })
        ));
        // The failed open released its lock.
        assert!(!lock_path(&path).exists());
    }

    #[test]
    fn delta_is_charged_and_limited_too() {
        let path = temp("delta");
        let mut ledger = LedgerFile::open(&path).expect("open");
        let total = Budget::total(100.0, 1e-5);
        let cost = Budget::cost(0.1, 4e-6);
        ledger.charge("n", "g", cost, total).expect("1");
        ledger.charge("n", "g", cost, total).expect("2");
        assert_eq!(ledger.charge("n", "g", cost, total), Err(Refusal::OverBudget));
    }

    #[test]
    fn default_granularity_is_a_power_of_two_with_4096_to_8191_steps() {
        let g = default_granularity(0.0, 200.0);
        assert_eq!(g, 2f64.powi(-5));
        let steps = 200.0 / g;
        assert!((4096.0..8192.0).contains(&steps));
    }
}
