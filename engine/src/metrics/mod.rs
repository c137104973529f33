//! Prometheus metrics: one enum of every metric the engine exports, with its
//! spec, and a collector that reads the run's counters when scraped.
//!
//! The hot path only bumps the atomics it already keeps ([`NodeCounters`],
//! [`AckCounter`], the latency histogram); turning them into Prometheus
//! families happens at scrape time, off the data path. Labels are node names
//! and fixed words (role, status) — never stream ids or anything a frame
//! carries, so no PHI and no unbounded cardinality. `docs/metrics.md` lists
//! the same table (a test keeps them in step).

pub mod server;

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use crate::ack::{AckCounter, AckStatus};
use crate::health::{NodeState, Readiness};
use crate::latency::LatencyHistogram;
use crate::runtime::NodeCounters;
use sigfab_operators::privacy::PrivacyCounters;

/// Every metric the engine exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    ItemsIn,
    ItemsOut,
    SamplesIn,
    Rejected,
    SinkLatency,
    DeadLetters,
    Acknowledgements,
    InFlight,
    MaxInFlight,
    NodeReady,
    Ready,
    BuildInfo,
    KAnonSuppressed,
    KAnonGeneralised,
    DpReleases,
    DpRefused,
    PrivacyDropped,
}

/// What a metric is: name, type, help text and label names.
#[derive(Clone, Copy, Debug)]
pub struct MetricSpec {
    pub name: &'static str,
    pub kind: MetricType,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

impl Metric {
    pub const ALL: [Metric; 17] = [
        Metric::ItemsIn,
        Metric::ItemsOut,
        Metric::SamplesIn,
        Metric::Rejected,
        Metric::SinkLatency,
        Metric::DeadLetters,
        Metric::Acknowledgements,
        Metric::InFlight,
        Metric::MaxInFlight,
        Metric::NodeReady,
        Metric::Ready,
        Metric::BuildInfo,
        Metric::KAnonSuppressed,
        Metric::KAnonGeneralised,
        Metric::DpReleases,
        Metric::DpRefused,
        Metric::PrivacyDropped,
    ];

    pub fn spec(self) -> MetricSpec {
        use MetricType::{COUNTER, GAUGE, HISTOGRAM};
        let (name, kind, help, labels): (_, _, _, &'static [&'static str]) = match self {
            Metric::ItemsIn => (
                "sigfab_node_items_in_total",
                COUNTER,
                "Items (frames or records) a node received.",
                &["node", "role"],
            ),
            Metric::ItemsOut => (
                "sigfab_node_items_out_total",
                COUNTER,
                "Items a node emitted (sources: frames read; operators: items produced).",
                &["node", "role"],
            ),
            Metric::SamplesIn => (
                "sigfab_node_samples_in_total",
                COUNTER,
                "Samples, over all channels, in the frames a node received (sources: read).",
                &["node", "role"],
            ),
            Metric::Rejected => (
                "sigfab_node_rejected_total",
                COUNTER,
                "Items a node rejected (sent to the dead letters).",
                &["node", "role"],
            ),
            Metric::SinkLatency => (
                "sigfab_sink_latency_seconds",
                HISTOGRAM,
                "Engine-internal latency: source receipt to the sink handing the item to its output.",
                &["node"],
            ),
            Metric::DeadLetters => (
                "sigfab_dead_letters_total",
                COUNTER,
                "Items the dead-letter sink durably took.",
                &[],
            ),
            Metric::Acknowledgements => (
                "sigfab_acknowledgements_total",
                COUNTER,
                "Source items settled, by final status (worst status over all sinks wins).",
                &["status"],
            ),
            Metric::InFlight => (
                "sigfab_in_flight",
                GAUGE,
                "Source items emitted and not yet settled.",
                &[],
            ),
            Metric::MaxInFlight => (
                "sigfab_in_flight_max",
                GAUGE,
                "Most source items in flight at once since the start.",
                &[],
            ),
            Metric::NodeReady => (
                "sigfab_node_ready",
                GAUGE,
                "1 when a node that depends on an outside service (Kafka) can reach it, else 0.",
                &["node"],
            ),
            Metric::Ready => (
                "sigfab_ready",
                GAUGE,
                "1 when every node is ready and the engine is not draining, else 0 (as /ready).",
                &[],
            ),
            Metric::BuildInfo => (
                "sigfab_build_info",
                GAUGE,
                "Always 1; the version label says which sigfab is running.",
                &["version"],
            ),
            Metric::KAnonSuppressed => (
                "sigfab_kanon_suppressed_total",
                COUNTER,
                "Records a k_anonymity node withheld (class below k after any generalisation, or late for its window).",
                &["node"],
            ),
            Metric::KAnonGeneralised => (
                "sigfab_kanon_generalised_total",
                COUNTER,
                "Records a k_anonymity node released with at least one quasi-identifier generalised.",
                &["node"],
            ),
            Metric::DpReleases => (
                "sigfab_dp_releases_total",
                COUNTER,
                "Noisy records a dp_aggregate node released (one per group per window).",
                &["node"],
            ),
            Metric::DpRefused => (
                "sigfab_dp_refused_total",
                COUNTER,
                "Window releases a dp_aggregate node withheld: over budget, or the ledger or random generator failed.",
                &["node"],
            ),
            Metric::PrivacyDropped => (
                "sigfab_dp_records_dropped_total",
                COUNTER,
                "Records a dp_aggregate node could not use: late, unlisted group, missing label or value, over the contribution bound.",
                &["node"],
            ),
        };
        MetricSpec {
            name,
            kind,
            help,
            labels,
        }
    }
}

/// Upper bounds of the latency histogram's buckets: powers of two in
/// nanoseconds, 131 µs to 1.07 s. The engine's own histogram has bucket
/// edges at every power of two, so these counts are exact, not
/// interpolated.
const LATENCY_BOUNDS_LOG2_NS: std::ops::RangeInclusive<u32> = 17..=30;

/// A node whose counters are exported.
#[derive(Clone, Debug)]
pub struct NodeSource {
    pub name: String,
    pub role: &'static str,
    pub counters: Arc<NodeCounters>,
    /// The counters of a privacy operator (`k_anonymity`, `dp_aggregate`).
    pub privacy: Option<PrivacySource>,
}

/// A privacy operator's counters and its type name.
#[derive(Clone, Debug)]
pub struct PrivacySource {
    pub kind: &'static str,
    pub counters: Arc<PrivacyCounters>,
}

/// Reads one run's counters at scrape time.
pub struct EngineCollector {
    descs: Vec<Desc>,
    nodes: Vec<NodeSource>,
    dead_letter: Option<Arc<NodeCounters>>,
    acks: Arc<AckCounter>,
    readiness: Arc<Readiness>,
}

impl EngineCollector {
    pub fn new(
        nodes: Vec<NodeSource>,
        dead_letter: Option<Arc<NodeCounters>>,
        acks: Arc<AckCounter>,
        readiness: Arc<Readiness>,
    ) -> EngineCollector {
        let descs = Metric::ALL
            .iter()
            .filter_map(|m| {
                let spec = m.spec();
                let labels = spec.labels.iter().map(|l| l.to_string()).collect();
                // The specs are constants checked by a test; a bad one is dropped, not fatal.
                Desc::new(spec.name.into(), spec.help.into(), labels, HashMap::new()).ok()
            })
            .collect();
        EngineCollector {
            descs,
            nodes,
            dead_letter,
            acks,
            readiness,
        }
    }

    fn family(&self, metric: Metric) -> MetricFamily {
        let spec = metric.spec();
        let samples = match metric {
            Metric::ItemsIn => self.per_node(|c| NodeCounters::get(&c.items_in)),
            Metric::ItemsOut => self.per_node(|c| NodeCounters::get(&c.items_out)),
            Metric::SamplesIn => self.per_node(|c| NodeCounters::get(&c.samples_in)),
            Metric::Rejected => self.per_node(|c| NodeCounters::get(&c.rejected)),
            Metric::SinkLatency => self
                .nodes
                .iter()
                .filter(|n| n.role == "sink")
                .map(|n| with_histogram(labels(&[("node", &n.name)]), &n.counters.latency))
                .collect(),
            Metric::DeadLetters => {
                let taken = self
                    .dead_letter
                    .as_ref()
                    .map_or(0, |c| NodeCounters::get(&c.items_in));
                vec![with_value(Vec::new(), spec.kind, taken as f64)]
            }
            Metric::Acknowledgements => AckStatus::ALL
                .iter()
                .map(|&s| {
                    let count = self.acks.count(s) as f64;
                    with_value(labels(&[("status", s.as_str())]), spec.kind, count)
                })
                .collect(),
            Metric::InFlight => vec![with_value(Vec::new(), spec.kind, self.acks.in_flight() as f64)],
            Metric::MaxInFlight => vec![with_value(
                Vec::new(),
                spec.kind,
                self.acks.max_in_flight() as f64,
            )],
            Metric::NodeReady => self
                .readiness
                .states()
                .into_iter()
                .map(|(node, state)| {
                    let up = if state == NodeState::Ready { 1.0 } else { 0.0 };
                    with_value(labels(&[("node", &node)]), spec.kind, up)
                })
                .collect(),
            Metric::Ready => {
                let up = if self.readiness.check().is_ok() { 1.0 } else { 0.0 };
                vec![with_value(Vec::new(), spec.kind, up)]
            }
            Metric::BuildInfo => vec![with_value(
                labels(&[("version", env!("CARGO_PKG_VERSION"))]),
                spec.kind,
                1.0,
            )],
            Metric::KAnonSuppressed => self.per_privacy_node(&["k_anonymity"], |c| &c.suppressed),
            Metric::KAnonGeneralised => self.per_privacy_node(&["k_anonymity"], |c| &c.generalised),
            Metric::DpReleases => self.per_privacy_node(&["dp_aggregate"], |c| &c.releases),
            Metric::DpRefused => self.per_privacy_node(&["dp_aggregate"], |c| &c.refused),
            Metric::PrivacyDropped => self.per_privacy_node(&["dp_aggregate"], |c| &c.dropped),
        };
        let mut family = MetricFamily::default();
        family.set_name(spec.name.to_string());
        family.set_help(spec.help.to_string());
        family.set_field_type(spec.kind);
        family.set_metric(samples);
        family
    }

    fn per_node(&self, value: impl Fn(&NodeCounters) -> u64) -> Vec<proto::Metric> {
        self.nodes
            .iter()
            .map(|n| {
                let labels = labels(&[("node", &n.name), ("role", n.role)]);
                with_value(labels, MetricType::COUNTER, value(&n.counters) as f64)
            })
            .collect()
    }

    /// One sample per privacy node of the given kinds (node label only:
    /// never a label value or group).
    fn per_privacy_node(
        &self,
        kinds: &[&str],
        counter: impl Fn(&PrivacyCounters) -> &std::sync::atomic::AtomicU64,
    ) -> Vec<proto::Metric> {
        self.nodes
            .iter()
            .filter_map(|n| n.privacy.as_ref().map(|p| (n, p)))
            .filter(|(_, p)| kinds.contains(&p.kind))
            .map(|(n, p)| {
                let value = PrivacyCounters::get(counter(&p.counters)) as f64;
                with_value(labels(&[("node", &n.name)]), MetricType::COUNTER, value)
            })
            .collect()
    }

    /// A registry holding this collector; the registry checks at every
    /// gather that what is collected matches the declared specs.
    pub fn into_registry(self) -> prometheus::Result<prometheus::Registry> {
        let registry = prometheus::Registry::new();
        registry.register(Box::new(self))?;
        Ok(registry)
    }
}

/// Everything in `registry`, in the Prometheus text format.
pub fn render(registry: &prometheus::Registry) -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap_or_else(|error| format!("# sigfab: cannot encode the metrics: {error}\n"))
}

impl Collector for EngineCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        Metric::ALL.iter().map(|&m| self.family(m)).collect()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.to_string());
            pair
        })
        .collect()
}

fn with_value(labels: Vec<LabelPair>, kind: MetricType, value: f64) -> proto::Metric {
    let mut metric = proto::Metric::default();
    metric.set_label(labels);
    if kind == MetricType::COUNTER {
        let mut counter = proto::Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
    } else {
        let mut gauge = proto::Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
    }
    metric
}

fn with_histogram(labels: Vec<LabelPair>, latency: &LatencyHistogram) -> proto::Metric {
    let buckets = LATENCY_BOUNDS_LOG2_NS
        .map(|log2| {
            let bound_ns = 1u64 << log2;
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(bound_ns as f64 / 1e9);
            bucket.set_cumulative_count(latency.count_below(bound_ns));
            bucket
        })
        .collect();
    let mut histogram = proto::Histogram::default();
    histogram.set_sample_count(latency.count());
    histogram.set_sample_sum(latency.sum().as_secs_f64());
    histogram.set_bucket(buckets);
    let mut metric = proto::Metric::default();
    metric.set_label(labels);
    metric.set_histogram(histogram);
    metric
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn collector() -> (EngineCollector, Arc<NodeCounters>, Arc<Readiness>) {
        // One sink node, no dead-letter sink.
        let sink = Arc::new(NodeCounters::default());
        let readiness = Arc::new(Readiness::default());
        let nodes = vec![NodeSource {
            name: "archive".into(),
            role: "sink",
            counters: sink.clone(),
            privacy: None,
        }];
        let collector = EngineCollector::new(nodes, None, Arc::new(AckCounter::default()), readiness.clone());
        (collector, sink, readiness)
    }

    #[test]
    fn every_metric_has_a_valid_unique_spec() {
        let (collector, _, _) = collector();
        assert_eq!(
            collector.descs.len(),
            Metric::ALL.len(),
            "a spec was refused by prometheus"
        );
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.spec().name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        for m in Metric::ALL {
            let spec = m.spec();
            assert!(spec.name.starts_with("sigfab_"), "{}", spec.name);
            assert_eq!(
                spec.name.ends_with("_total"),
                spec.kind == MetricType::COUNTER,
                "{}",
                spec.name
            );
        }
    }

    #[test]
    fn renders_counters_histogram_and_readiness() {
        let (collector, sink, readiness) = collector();
        let registry = collector.into_registry().expect("specs and samples agree");
        sink.items_in.fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        sink.latency.record(Duration::from_micros(200));
        sink.latency.record(Duration::from_millis(3));
        let flag = readiness.register("in");
        let text = render(&registry);
        assert!(
            text.contains("sigfab_node_items_in_total{node=\"archive\",role=\"sink\"} 3"),
            "{text}"
        );
        assert!(text.contains("sigfab_sink_latency_seconds_bucket{node=\"archive\",le=\"0.000131072\"} 0"));
        assert!(text.contains("sigfab_sink_latency_seconds_bucket{node=\"archive\",le=\"0.000262144\"} 1"));
        assert!(text.contains("sigfab_sink_latency_seconds_bucket{node=\"archive\",le=\"0.004194304\"} 2"));
        assert!(text.contains("sigfab_sink_latency_seconds_count{node=\"archive\"} 2"));
        assert!(text.contains("sigfab_node_ready{node=\"in\"} 0"));
        assert!(text.contains("sigfab_ready 0"));
        flag.set(NodeState::Ready);
        assert!(render(&registry).contains("sigfab_ready 1"));
    }

    #[test]
    fn privacy_counters_are_exported_per_node_with_the_node_label_only() {
        let counters = Arc::new(PrivacyCounters::default());
        let nodes = vec![
            NodeSource {
                name: "gate".into(),
                role: "operator",
                counters: Arc::default(),
                privacy: Some(PrivacySource {
                    kind: "k_anonymity",
                    counters: counters.clone(),
                }),
            },
            NodeSource {
                name: "hourly".into(),
                role: "operator",
                counters: Arc::default(),
                privacy: Some(PrivacySource {
                    kind: "dp_aggregate",
                    counters: counters.clone(),
                }),
            },
        ];
        let registry = EngineCollector::new(nodes, None, Arc::default(), Arc::default())
            .into_registry()
            .expect("specs and samples agree");
        PrivacyCounters::add(&counters.suppressed, 7);
        PrivacyCounters::add(&counters.refused, 2);
        let text = render(&registry);
        assert!(
            text.contains("sigfab_kanon_suppressed_total{node=\"gate\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("sigfab_dp_refused_total{node=\"hourly\"} 2"),
            "{text}"
        );
        // Each family only for its own node type.
        assert!(!text.contains("sigfab_kanon_suppressed_total{node=\"hourly\"}"));
        assert!(!text.contains("sigfab_dp_refused_total{node=\"gate\"}"));
    }

    #[test]
    fn docs_list_every_metric() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
            .expect("docs/metrics.md");
        for m in Metric::ALL {
            let spec = m.spec();
            let row = format!("| `{}` | {} | {} |", spec.name, kind_name(spec.kind), spec.help);
            assert!(doc.contains(&row), "docs/metrics.md lacks the row:\n{row}");
        }
    }

    fn kind_name(kind: MetricType) -> &'static str {
        match kind {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            _ => "other",
        }
    }
}
