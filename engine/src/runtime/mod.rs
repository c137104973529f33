//! The runtime: one task per node, bounded queues between them, and
//! acknowledgements flowing back to the sources.
//!
//! Data path: a source thread reads or generates frames and sends each, with
//! an [`AckToken`], to the queues of its consumers ([`Fanout`]). Operator
//! tasks run their synchronous [`Operator`] on each item and forward the
//! outputs; rejected items go to the dead-letter queue. Sink threads write
//! batches, make them durable, then settle the tokens.
//!
//! Invariants:
//! * every queue is a bounded `mpsc` channel of `settings.queue_capacity`
//!   items: a slow sink slows its producers, memory stays bounded;
//! * one task per node and FIFO queues keep each stream's order;
//! * a token is settled only after the item's effect is durable (sinks) or
//!   deliberate (operators that drop);
//! * shutdown (SIGINT/SIGTERM or `--for`) stops the sources only; everything
//!   already sent drains through operators and sinks before `run` returns.

mod nodes;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigfab_operators::Item;
use tokio::sync::{mpsc, watch};

use crate::ack::{AckCounter, AckStatus, AckToken};
use crate::config::graph::{Graph, Role};
use crate::config::LoadedPipeline;
use crate::health::Readiness;
use crate::metrics::{server, EngineCollector};

pub use crate::sinks::SinkError;
pub use crate::sources::SourceError;

/// An item on its way, with its share of the acknowledgement.
#[derive(Debug)]
pub struct Envelope {
    pub item: Item,
    pub ack: AckToken,
    /// When the source received or made the item; what an item derived
    /// from it inherits. Sinks measure the engine-internal latency from it.
    pub received: Instant,
}

impl Envelope {
    /// A copy for another consumer, with its own share of the acknowledgement.
    fn copy(&self) -> Envelope {
        Envelope {
            item: self.item.clone(),
            ack: self.ack.clone(),
            received: self.received,
        }
    }
}

/// A rejected item on its way to the dead-letter sink.
#[derive(Debug)]
pub struct DeadLetter {
    pub item: Item,
    pub ack: AckToken,
    pub received: Instant,
    pub reason: Cow<'static, str>,
    /// Name of the node that rejected it.
    pub node: Arc<str>,
}

/// The queues of a node's consumers. Sending clones the item for all but the
/// last consumer, each clone with its own share of the acknowledgement.
#[derive(Clone, Debug, Default)]
pub struct Fanout {
    senders: Vec<mpsc::Sender<Envelope>>,
}

/// All consumers have gone away.
#[derive(Debug, thiserror::Error)]
#[error("every consumer of this node has stopped")]
pub struct Closed;

impl Fanout {
    pub fn new(senders: Vec<mpsc::Sender<Envelope>>) -> Self {
        Self { senders }
    }

    pub async fn send(&self, envelope: Envelope) -> Result<(), Closed> {
        let Some((last, others)) = self.senders.split_last() else {
            return Err(Closed);
        };
        for sender in others {
            sender.send(envelope.copy()).await.map_err(|_| Closed)?;
        }
        last.send(envelope).await.map_err(|_| Closed)
    }

    /// As [`Fanout::send`], from a thread outside the async runtime.
    pub fn send_blocking(&self, envelope: Envelope) -> Result<(), Closed> {
        let Some((last, others)) = self.senders.split_last() else {
            return Err(Closed);
        };
        for sender in others {
            sender.blocking_send(envelope.copy()).map_err(|_| Closed)?;
        }
        last.blocking_send(envelope).map_err(|_| Closed)
    }
}

/// Counters of one node, shared between its task and the report.
#[derive(Debug, Default)]
pub struct NodeCounters {
    pub items_in: AtomicU64,
    pub items_out: AtomicU64,
    pub samples_in: AtomicU64,
    pub rejected: AtomicU64,
    /// Sinks: source receipt → handed to the output (file buffer, producer
    /// queue).
    pub latency: crate::latency::LatencyHistogram,
}

impl NodeCounters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What to run and for how long.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop the sources after this long (then drain).
    pub run_for: Option<Duration>,
    /// Draw a progress bar for file replays when stderr is a terminal.
    pub progress: bool,
    /// Serve /metrics, /ready and /live here (host:port; port 0 picks one);
    /// overrides `settings.metrics_listen`.
    pub metrics_listen: Option<String>,
}

/// One node's figures at the end of a run.
#[derive(Clone, Debug)]
pub struct NodeReport {
    pub name: String,
    pub role: Role,
    pub items_in: u64,
    pub items_out: u64,
    pub samples_in: u64,
    pub rejected: u64,
    /// Sinks: engine-internal latency p50, p99, p99.9.
    pub latency: Option<[Duration; 3]>,
    /// Where a sink wrote (a file, stdout, a topic), for telling the user
    /// where to look.
    pub target: Option<String>,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub elapsed: Duration,
    pub nodes: Vec<NodeReport>,
    /// Final acknowledgement status of every item the sources emitted.
    pub acks: Vec<(AckStatus, u64)>,
    pub dead_letters: u64,
    /// Most source frames in flight at once (bounded by the queues).
    pub max_in_flight: u64,
    pub dead_letter_path: Option<std::path::PathBuf>,
    /// Whether the run was cut short by a signal or `--for`.
    pub interrupted: bool,
}

impl RunReport {
    /// The report as JSON (`sigfab run --report FILE`), for scripts and
    /// benchmarks: durations in seconds.
    pub fn to_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "name": n.name,
                    "role": format!("{:?}", n.role).to_lowercase(),
                    "items_in": n.items_in,
                    "items_out": n.items_out,
                    "samples_in": n.samples_in,
                    "rejected": n.rejected,
                    "target": n.target,
                    "latency_s": n.latency.map(|l| serde_json::json!({
                        "p50": l[0].as_secs_f64(), "p99": l[1].as_secs_f64(), "p999": l[2].as_secs_f64(),
                    })),
                })
            })
            .collect();
        let acks: serde_json::Map<String, serde_json::Value> = self
            .acks
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), (*n).into()))
            .collect();
        serde_json::json!({
            "elapsed_s": self.elapsed.as_secs_f64(),
            "interrupted": self.interrupted,
            "nodes": nodes,
            "acks": acks,
            "dead_letters": self.dead_letters,
            "max_in_flight": self.max_in_flight,
        })
    }

    pub fn count(&self, status: AckStatus) -> u64 {
        self.acks
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    /// Items that did not end up handled (failed or abandoned).
    pub fn unhandled(&self) -> u64 {
        self.acks
            .iter()
            .filter(|(s, _)| !s.is_handled())
            .map(|(_, n)| n)
            .sum()
    }
}

/// Why an operator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Key(#[from] crate::deid::KeyError),
    #[error(transparent)]
    Ledger(#[from] crate::privacy::LedgerError),
}

/// Errors that stop a pipeline from starting or finishing.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("source '{node}': {error}")]
    Source { node: String, error: SourceError },
    #[error("sink '{node}': {error}")]
    Sink { node: String, error: SinkError },
    #[error("operator '{node}': {error}")]
    Operator { node: String, error: OperatorError },
    #[error("node '{node}' stopped unexpectedly: {detail}")]
    Task { node: String, detail: String },
    #[error("cannot serve metrics on {address}: {detail}")]
    Metrics { address: String, detail: String },
}

/// Runs a checked pipeline until its sources end (or a stop is asked for)
/// and everything in flight has drained.
pub async fn run(
    pipeline: &LoadedPipeline,
    graph: &Graph,
    options: &RunOptions,
) -> Result<RunReport, RuntimeError> {
    let started = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let acks = Arc::new(AckCounter::default());
    let readiness = Arc::new(Readiness::default());
    let mut plan = nodes::Plan::build(pipeline, graph, acks.clone(), stop_rx, options, &readiness)?;
    let metrics = serve_metrics(pipeline, options, &plan, &acks, &readiness).await?;
    let watcher = tokio::spawn(watch_for_stop(stop_tx, options.run_for, readiness.clone()));
    let outcome = plan.join().await;
    watcher.abort();
    if let Some(server) = metrics {
        server.abort();
    }
    let interrupted = watcher.await.ok().unwrap_or(false) || plan.stopped_early();
    outcome?;
    Ok(RunReport {
        elapsed: started.elapsed(),
        nodes: plan.reports(),
        acks: acks.nonzero(),
        dead_letters: plan.dead_letters(),
        max_in_flight: acks.max_in_flight(),
        dead_letter_path: plan.dead_letter_path(),
        interrupted,
    })
}

/// Starts the metrics listener when one is configured; the task serves
/// until the run ends.
async fn serve_metrics(
    pipeline: &LoadedPipeline,
    options: &RunOptions,
    plan: &nodes::Plan,
    acks: &Arc<AckCounter>,
    readiness: &Arc<Readiness>,
) -> Result<Option<tokio::task::JoinHandle<()>>, RuntimeError> {
    let configured = pipeline.spec.settings.metrics_listen.as_ref().map(|l| &l.value);
    let Some(address) = options.metrics_listen.as_ref().or(configured) else {
        return Ok(None);
    };
    let failed = |detail: String| RuntimeError::Metrics {
        address: address.clone(),
        detail,
    };
    let (nodes, dead_letter) = plan.metric_sources();
    let collector = EngineCollector::new(nodes, dead_letter, acks.clone(), readiness.clone());
    let registry = collector.into_registry().map_err(|e| failed(e.to_string()))?;
    let (listener, _) = server::bind(address).await.map_err(|e| failed(e.to_string()))?;
    let endpoints = server::Endpoints {
        registry: Arc::new(registry),
        readiness: readiness.clone(),
    };
    Ok(Some(tokio::spawn(server::serve(listener, endpoints))))
}

/// Sets the stop flag on SIGINT, SIGTERM or when `run_for` has passed, and
/// marks the run not ready while it drains. A second SIGINT exits at once,
/// for a user who does not want to wait for the drain.
async fn watch_for_stop(
    stop: watch::Sender<bool>,
    run_for: Option<Duration>,
    readiness: Arc<Readiness>,
) -> bool {
    let timer = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = timer => tracing::info!("run time is up; draining"),
        _ = stop_signal() => {
            tracing::info!("stop requested; draining in-flight frames (press Ctrl-C again to quit at once)");
            tokio::spawn(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            });
        }
    }
    readiness.set_draining();
    let _ = stop.send(true);
    true
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
