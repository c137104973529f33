//! Turns the checked graph into running tasks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use sigfab_operators::basic::{FrameStats, Passthrough, SelectChannels, Validate, ValidateLimits};
use sigfab_operators::filters::design::Band;
use sigfab_operators::filters::fir::{FirDesign, FirLength, FirWindow};
use sigfab_operators::filters::sos::Kernel;
use sigfab_operators::filters::{
    ChannelSelection, FirFilter, FirMethod, IirDesign, IirFilter, Resample, ResampleFactors,
};
use sigfab_operators::montage::{Montage, MontageConfig, MontageKind};
use sigfab_operators::{Item, Operator, Output, Rejected};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{
    DeadLetter, Envelope, Fanout, NodeCounters, NodeReport, OperatorError, RunOptions, RuntimeError,
};
use crate::ack::{AckCounter, AckStatus};
use crate::config::graph::{Graph, Role};
use crate::config::spec::{
    AudioFeaturesSpec, BandPowersSpec, Cutoff, FilterKind, FirMethodName, FirSpec, FirWindowName,
    IirStageSpec, MontageKindName, MontageSpec, QualitySpec, ResampleSpec, TimeFeaturesSpec,
};
use crate::config::{LoadedPipeline, Located, OperatorKind};
use crate::health::Readiness;
use crate::metrics::NodeSource;
use crate::sinks::{self, DeadLetterWriter, SinkDriver, SinkError};
use crate::sources::{self, SourceDriver, SourceError};
use sigfab_operators::cardio::{EcgBeats, EcgBeatsConfig, Pulses, Spo2, Spo2Config};
use sigfab_operators::features::{
    AudioConfig, AudioFeatures, Band as FeatureBand, BandPowers, BandPowersConfig, QualityConfig,
    SignalQuality, TimeFeatures, TimeFeaturesConfig, WindowConfig,
};
use sigfab_operators::privacy::PrivacyCounters;

struct DeadLetterNode {
    counters: Arc<NodeCounters>,
    path: std::path::PathBuf,
    handle: Option<JoinHandle<Result<(), RuntimeError>>>,
}

struct Running {
    name: String,
    role: Role,
    counters: Arc<NodeCounters>,
    target: Option<String>,
    /// Privacy operators' counts (suppressed, released, refused, ...).
    privacy: Option<crate::metrics::PrivacySource>,
    handle: Option<JoinHandle<Result<(), RuntimeError>>>,
}

/// The spawned tasks of one pipeline run.
pub(super) struct Plan {
    nodes: Vec<Running>,
    dead_letter: Option<DeadLetterNode>,
    stop: watch::Receiver<bool>,
}

impl Plan {
    /// Opens every source and sink (so configuration problems surface before
    /// anything runs), then spawns sinks, operators and sources.
    pub(super) fn build(
        pipeline: &LoadedPipeline,
        graph: &Graph,
        acks: Arc<AckCounter>,
        stop: watch::Receiver<bool>,
        options: &RunOptions,
        readiness: &Readiness,
    ) -> Result<Plan, RuntimeError> {
        let capacity = pipeline.spec.settings.queue_capacity.value;
        let mut senders: Vec<Option<mpsc::Sender<Envelope>>> = vec![None; graph.nodes.len()];
        let mut receivers: Vec<Option<mpsc::Receiver<Envelope>>> = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            if node.role == Role::Source {
                receivers.push(None);
            } else {
                let (tx, rx) = mpsc::channel(capacity);
                senders[receivers.len()] = Some(tx);
                receivers.push(Some(rx));
            }
        }
        let fanout_of = |id: usize| {
            Fanout::new(
                graph.nodes[id]
                    .consumers
                    .iter()
                    .filter_map(|&c| senders[c].clone())
                    .collect(),
            )
        };

        let (dead_letter_tx, dead_letter) = spawn_dead_letter(pipeline, capacity)?;
        let mut running: Vec<Running> = graph
            .nodes
            .iter()
            .map(|n| Running {
                name: n.name.clone(),
                role: n.role,
                counters: Arc::default(),
                target: None,
                privacy: None,
                handle: None,
            })
            .collect();
        let mut ledgers = crate::privacy::Ledgers::default();

        let mut sources_to_start = Vec::new();
        for (id, node) in graph.nodes.iter().enumerate() {
            let counters = running[id].counters.clone();
            match node.role {
                Role::Sink => {
                    let rx = receivers[id].take();
                    let spec = &pipeline.spec.sinks.0[node.spec_index];
                    let writer = sinks::open(pipeline, spec, &node.name, readiness).map_err(|error| {
                        RuntimeError::Sink {
                            node: node.name.clone(),
                            error,
                        }
                    })?;
                    running[id].target = Some(writer.target());
                    let name = node.name.clone();
                    running[id].handle = rx.map(|rx| spawn_sink(name, writer, rx, counters));
                }
                Role::Operator => {
                    let rx = receivers[id].take();
                    let Ok(kind) = &pipeline.spec.operators.0[node.spec_index].kind else {
                        continue;
                    };
                    let privacy = Arc::new(PrivacyCounters::default());
                    let operator = build_operator(pipeline, &kind.value, &node.name, &mut ledgers, &privacy)
                        .map_err(|error| RuntimeError::Operator {
                            node: node.name.clone(),
                            error,
                        })?;
                    let privacy_kind = match kind.value {
                        OperatorKind::KAnonymity(_) => Some("k_anonymity"),
                        OperatorKind::DpAggregate(_) => Some("dp_aggregate"),
                        _ => None,
                    };
                    running[id].privacy = privacy_kind.map(|kind| crate::metrics::PrivacySource {
                        kind,
                        counters: privacy,
                    });
                    let task = OperatorTask {
                        operator,
                        acks: acks.clone(),
                        outlet: Outlet {
                            name: Arc::from(node.name.as_str()),
                            out: fanout_of(id),
                            dead_letter: dead_letter_tx.clone(),
                            counters,
                        },
                    };
                    running[id].handle = rx.map(|rx| tokio::spawn(task.run(rx)));
                }
                Role::Source => {
                    let spec = &pipeline.spec.sources.0[node.spec_index];
                    let driver = sources::open(pipeline, spec, &node.name, readiness).map_err(|error| {
                        RuntimeError::Source {
                            node: node.name.clone(),
                            error,
                        }
                    })?;
                    sources_to_start.push((id, driver, fanout_of(id), counters));
                }
            }
        }
        for node in &graph.nodes {
            readiness.cover(&node.name);
        }
        drop(senders);
        drop(dead_letter_tx);
        for (id, driver, out, counters) in sources_to_start {
            let context = sources::DriveContext {
                out,
                acks: acks.clone(),
                stop: stop.clone(),
                counters,
                progress: options.progress,
            };
            let name = running[id].name.clone();
            running[id].handle = Some(spawn_source(name, driver, context));
        }
        Ok(Plan {
            nodes: running,
            dead_letter,
            stop,
        })
    }

    /// Waits for every task; the first error wins, but all tasks are awaited
    /// so that nothing is left running.
    pub(super) async fn join(&mut self) -> Result<(), RuntimeError> {
        let mut first_error = None;
        let handles = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.handle.take().map(|h| (n.name.clone(), h)))
            .chain(
                self.dead_letter
                    .as_mut()
                    .and_then(|d| d.handle.take().map(|h| ("dead_letter".to_string(), h))),
            );
        for (name, handle) in handles.collect::<Vec<_>>() {
            let result = match handle.await {
                Ok(result) => result,
                Err(e) => Err(RuntimeError::Task {
                    node: name,
                    detail: e.to_string(),
                }),
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "pipeline node failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub(super) fn stopped_early(&self) -> bool {
        *self.stop.borrow()
    }

    pub(super) fn reports(&self) -> Vec<NodeReport> {
        self.nodes
            .iter()
            .map(|n| NodeReport {
                name: n.name.clone(),
                role: n.role,
                items_in: NodeCounters::get(&n.counters.items_in),
                items_out: NodeCounters::get(&n.counters.items_out),
                samples_in: NodeCounters::get(&n.counters.samples_in),
                rejected: NodeCounters::get(&n.counters.rejected),
                latency: latency_summary(&n.counters.latency),
                target: n.target.clone(),
            })
            .collect()
    }

    /// The counters the metrics collector reads: every node's, and the
    /// dead-letter sink's.
    pub(super) fn metric_sources(&self) -> (Vec<NodeSource>, Option<Arc<NodeCounters>>) {
        let nodes = self
            .nodes
            .iter()
            .map(|n| NodeSource {
                name: n.name.clone(),
                role: n.role.as_str(),
                counters: n.counters.clone(),
                privacy: n.privacy.clone(),
            })
            .collect();
        (nodes, self.dead_letter.as_ref().map(|d| d.counters.clone()))
    }

    pub(super) fn dead_letters(&self) -> u64 {
        self.dead_letter
            .as_ref()
            .map_or(0, |d| d.counters.items_in.load(Ordering::Relaxed))
    }

    pub(super) fn dead_letter_path(&self) -> Option<std::path::PathBuf> {
        self.dead_letter.as_ref().map(|d| d.path.clone())
    }
}

type DeadLetterParts = (Option<mpsc::Sender<DeadLetter>>, Option<DeadLetterNode>);

fn spawn_dead_letter(pipeline: &LoadedPipeline, capacity: usize) -> Result<DeadLetterParts, RuntimeError> {
    let Some(spec) = &pipeline.spec.dead_letter else {
        return Ok((None, None));
    };
    let writer = DeadLetterWriter::open(pipeline, &spec.value).map_err(|error| RuntimeError::Sink {
        node: "dead_letter".into(),
        error,
    })?;
    let path = writer.path().to_path_buf();
    let counters = Arc::new(NodeCounters::default());
    let (tx, rx) = mpsc::channel(capacity);
    let task_counters = counters.clone();
    let handle = tokio::task::spawn_blocking(move || {
        sinks::run_dead_letter(writer, rx, &task_counters).map_err(|error| RuntimeError::Sink {
            node: "dead_letter".into(),
            error,
        })
    });
    Ok((
        Some(tx),
        Some(DeadLetterNode {
            counters,
            path,
            handle: Some(handle),
        }),
    ))
}

fn spawn_sink(
    name: String,
    sink: SinkDriver,
    rx: mpsc::Receiver<Envelope>,
    counters: Arc<NodeCounters>,
) -> JoinHandle<Result<(), RuntimeError>> {
    tokio::task::spawn_blocking(move || {
        let result = match sink {
            SinkDriver::Writer(writer) => sinks::run_sink(writer, rx, &counters),
            SinkDriver::Kafka(kafka) => kafka.run(rx, &counters).map_err(SinkError::from),
            SinkDriver::Archive(archive) => archive.run(rx, &counters),
        };
        result.map_err(|error| RuntimeError::Sink { node: name, error })
    })
}

fn spawn_source(
    name: String,
    driver: SourceDriver,
    context: sources::DriveContext,
) -> JoinHandle<Result<(), RuntimeError>> {
    let fail = |node: String| move |error: SourceError| RuntimeError::Source { node, error };
    match driver {
        SourceDriver::Frames(source) => {
            tokio::task::spawn_blocking(move || sources::drive(source, context).map_err(fail(name)))
        }
        SourceDriver::Kafka(source) => tokio::spawn(async move {
            let sources::DriveContext {
                out,
                acks,
                stop,
                counters,
                ..
            } = context;
            source
                .run(out, acks, stop, counters)
                .await
                .map_err(|e| fail(name)(SourceError::from(e)))
        }),
    }
}

fn build_operator(
    pipeline: &LoadedPipeline,
    kind: &OperatorKind,
    name: &str,
    ledgers: &mut crate::privacy::Ledgers,
    privacy: &Arc<PrivacyCounters>,
) -> Result<Box<dyn Operator>, OperatorError> {
    Ok(match kind {
        OperatorKind::Passthrough(_) => Box::new(Passthrough),
        OperatorKind::SelectChannels(s) => Box::new(SelectChannels::new(s.channels.value.clone())),
        OperatorKind::FrameStats(_) => Box::new(FrameStats::default()),
        OperatorKind::Validate(v) => Box::new(Validate::new(ValidateLimits {
            max_abs: v.max_abs.as_ref().map(|m| m.value),
            max_nan_fraction: v.max_nan_fraction.as_ref().map(|m| m.value),
            channels: v.channels,
        })),
        OperatorKind::Butterworth(b) => Box::new(IirFilter::new(
            butterworth_design(b.kind, &b.order, &b.cutoff_hz),
            selection(&b.channels),
            b.warm_start,
        )),
        OperatorKind::Notch(n) => Box::new(IirFilter::new(
            notch_design(&n.frequency_hz, &n.q, &n.harmonics),
            selection(&n.channels),
            n.warm_start,
        )),
        OperatorKind::Iir(i) => Box::new(IirFilter::cascade(
            i.stages.value.iter().map(iir_stage_design).collect(),
            selection(&i.channels),
            i.warm_start,
            Kernel::detect(),
        )),
        OperatorKind::Deidentify(d) => Box::new(crate::deid::build(pipeline, d)?),
        OperatorKind::BandPowers(b) => Box::new(BandPowers::with_windows(
            band_powers_config(b),
            b.across_channels,
            b.quality_gate.as_ref().map(quality_config),
        )),
        OperatorKind::EegTimeFeatures(t) => Box::new(TimeFeatures::new(
            WindowConfig {
                channels: t.channels.as_ref().map(|c| c.value.clone()),
                across_channels: t.across_channels,
                quality_gate: t.quality_gate.as_ref().map(quality_config),
                ..WindowConfig::new(t.window.value.0.as_secs_f64(), t.hop.value.0.as_secs_f64())
            },
            time_features_config(t),
        )),
        OperatorKind::SignalQuality(q) => Box::new(SignalQuality::new(
            WindowConfig {
                channels: q.channels.as_ref().map(|c| c.value.clone()),
                across_channels: q.across_channels,
                ..WindowConfig::new(q.window.value.0.as_secs_f64(), q.hop.value.0.as_secs_f64())
            },
            quality_config(&q.checks),
        )),
        OperatorKind::AudioFeatures(a) => Box::new(AudioFeatures::new(
            WindowConfig {
                channels: a.channels.as_ref().map(|c| c.value.clone()),
                across_channels: a.across_channels,
                ..WindowConfig::new(a.window.value.0.as_secs_f64(), a.hop.value.0.as_secs_f64())
            },
            audio_config(a),
        )),
        OperatorKind::EcgBeats(e) => Box::new(EcgBeats::new(EcgBeatsConfig {
            channel: e.channel.value.clone(),
            beats: e.beats,
            hrv: e.hrv.then_some((
                e.hrv_window.value.0.as_secs_f64(),
                e.hrv_hop.value.0.as_secs_f64(),
            )),
        })),
        OperatorKind::Pulses(p) => Box::new(Pulses::new(&p.channel.value)),
        OperatorKind::Spo2(s) => Box::new(Spo2::new(Spo2Config {
            red: s.red.value.clone(),
            ir: s.ir.value.clone(),
            window_s: s.window.value.0.as_secs_f64(),
            hop_s: s.hop.value.0.as_secs_f64(),
            a: s.a.value,
            b: s.b.value,
        })),
        OperatorKind::AttachLabels(a) => crate::privacy::build_attach_labels(a),
        OperatorKind::KAnonymity(k) => crate::privacy::build_k_anonymity(k, privacy.clone()),
        OperatorKind::DpAggregate(d) => {
            crate::privacy::build_dp(pipeline, d, name, ledgers, privacy.clone())?
        }
        OperatorKind::Fir(f) => Box::new(FirFilter::new(
            fir_design(f),
            selection(&f.channels),
            match f.method {
                FirMethodName::Auto => FirMethod::Auto,
                FirMethodName::Direct => FirMethod::Direct,
                FirMethodName::Fft => FirMethod::Fft,
            },
        )),
        OperatorKind::Resample(r) => Box::new(Resample::new(resample_factors(r))),
        OperatorKind::Montage(m) => Box::new(Montage::new(montage_config(m))),
    })
}

/// `[low, high]` of a checked range (graph.rs made sure it has two values).
fn pair(range: &Option<crate::config::Located<Vec<f64>>>) -> Option<(f64, f64)> {
    range.as_ref().and_then(|r| match r.value[..] {
        [low, high] => Some((low, high)),
        _ => None,
    })
}

/// The checked quality spec over the documented defaults.
fn quality_config(spec: &QualitySpec) -> QualityConfig {
    let d = QualityConfig::default();
    let or = |v: &Option<crate::config::Located<f64>>, default: f64| v.as_ref().map_or(default, |v| v.value);
    QualityConfig {
        flat_min_s: spec
            .flat_min
            .as_ref()
            .map_or(d.flat_min_s, |f| f.value.0.as_secs_f64()),
        flat_tolerance: or(&spec.flat_tolerance, d.flat_tolerance),
        clip_range: pair(&spec.clip_range),
        clip_tolerance: or(&spec.clip_tolerance, d.clip_tolerance),
        range: pair(&spec.range),
        mains_hz: or(&spec.mains_hz, d.mains_hz),
        segment_s: d.segment_s,
        max_flat_fraction: or(&spec.max_flat_fraction, d.max_flat_fraction),
        max_clip_fraction: or(&spec.max_clip_fraction, d.max_clip_fraction),
        max_nan_fraction: or(&spec.max_nan_fraction, d.max_nan_fraction),
        max_line_noise_ratio: or(&spec.max_line_noise_ratio, d.max_line_noise_ratio),
        max_out_of_range_fraction: or(&spec.max_out_of_range_fraction, d.max_out_of_range_fraction),
    }
}

fn time_features_config(spec: &TimeFeaturesSpec) -> TimeFeaturesConfig {
    let d = TimeFeaturesConfig::default();
    TimeFeaturesConfig {
        suppression_threshold: spec
            .suppression_threshold
            .as_ref()
            .map_or(d.suppression_threshold, |t| t.value),
        suppression_min_s: spec
            .suppression_min
            .as_ref()
            .map_or(d.suppression_min_s, |m| m.value.0.as_secs_f64()),
    }
}

fn audio_config(spec: &AudioFeaturesSpec) -> AudioConfig {
    let d = AudioConfig::default();
    let range = pair(&spec.mel_range_hz);
    AudioConfig {
        mel_bands: spec.mel_bands.as_ref().map_or(d.mel_bands, |b| b.value as usize),
        fmin_hz: range.map_or(d.fmin_hz, |r| r.0),
        fmax_hz: range.map(|r| r.1),
        n_fft: spec.n_fft.as_ref().map(|n| n.value as usize),
    }
}

/// The kind's band from checked edges (graph.rs made sure they fit).
fn band_of(kind: FilterKind, cutoff: &Cutoff) -> Band {
    let edges = cutoff.frequencies();
    let low = edges.first().copied().unwrap_or(f64::NAN);
    let high = edges.get(1).copied().unwrap_or(f64::NAN);
    match kind {
        FilterKind::Lowpass => Band::Lowpass(low),
        FilterKind::Highpass => Band::Highpass(low),
        FilterKind::Bandpass => Band::Bandpass(low, high),
        FilterKind::Bandstop => Band::Bandstop(low, high),
    }
}

/// The checked spec as a design: `taps` with its window, or a Kaiser design.
fn fir_design(spec: &FirSpec) -> FirDesign {
    let length = match (&spec.taps, &spec.attenuation_db, &spec.transition_hz) {
        (Some(taps), _, _) => {
            let window = match spec.window.as_ref().map_or(FirWindowName::Hamming, |w| w.value) {
                FirWindowName::Hamming => FirWindow::Hamming,
                FirWindowName::Hann => FirWindow::Hann,
                FirWindowName::Blackman => FirWindow::Blackman,
                FirWindowName::Kaiser => {
                    FirWindow::Kaiser(spec.kaiser_beta.as_ref().map_or(0.0, |b| b.value))
                }
            };
            FirLength::Taps(taps.value as usize, window)
        }
        (None, attenuation, transition) => FirLength::Kaiser {
            attenuation_db: attenuation.as_ref().map_or(f64::NAN, |a| a.value),
            transition_hz: transition.as_ref().map_or(f64::NAN, |t| t.value),
        },
    };
    FirDesign {
        band: band_of(spec.kind, &spec.cutoff_hz.value),
        length,
        minimum_phase: spec.minimum_phase,
    }
}

fn resample_factors(spec: &ResampleSpec) -> ResampleFactors {
    match (&spec.to_hz, &spec.up, &spec.down) {
        (Some(to), _, _) => ResampleFactors::ToHz(to.value),
        (None, up, down) => ResampleFactors::Ratio {
            up: up.as_ref().map_or(1, |u| u.value),
            down: down.as_ref().map_or(1, |d| d.value),
        },
    }
}

fn montage_config(spec: &MontageSpec) -> MontageConfig {
    let names = |list: &Option<crate::config::Located<Vec<String>>>| list.as_ref().map(|l| l.value.clone());
    let kind = match spec.kind.value {
        MontageKindName::CommonAverage => MontageKind::CommonAverage(names(&spec.channels)),
        MontageKindName::Linked => MontageKind::Linked(names(&spec.reference).unwrap_or_default()),
        MontageKindName::Bipolar => MontageKind::Bipolar(
            spec.pairs
                .as_ref()
                .map(|p| p.value.iter().map(|[a, b]| (a.clone(), b.clone())).collect())
                .unwrap_or_default(),
        ),
        MontageKindName::DoubleBanana => MontageKind::DoubleBanana,
        MontageKindName::Matrix => MontageKind::Matrix(
            spec.rows
                .as_ref()
                .map(|rows| {
                    rows.value
                        .iter()
                        .map(|r| {
                            (
                                r.name.clone(),
                                r.weights.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
    };
    let table = |t: &Option<crate::config::Located<std::collections::BTreeMap<String, f64>>>| {
        t.as_ref()
            .map(|t| t.value.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    };
    MontageConfig {
        kind,
        gain: table(&spec.gain),
        offset: table(&spec.offset),
        dc_time_constant_s: spec.dc_removal.as_ref().map(|d| d.value.0.as_secs_f64()),
    }
}

/// The checked spec as the operator's configuration.
fn band_powers_config(spec: &BandPowersSpec) -> BandPowersConfig {
    let mut config = BandPowersConfig::eeg_default();
    config.window_s = spec.window.value.0.as_secs_f64();
    config.hop_s = spec.hop.value.0.as_secs_f64();
    config.segment_s = spec.segment.value.0.as_secs_f64();
    if let Some(bands) = &spec.bands {
        config.bands = bands
            .value
            .iter()
            .map(|b| FeatureBand::new(&b.name, b.hz[0], b.hz[1]))
            .collect();
    }
    config.edge_range_hz = spec.edge_range_hz.as_ref().and_then(|r| match r.value[..] {
        [low, high] => Some((low, high)),
        _ => None,
    });
    config.channels = spec.channels.as_ref().map(|c| c.value.clone());
    config
}

/// The checked fields as a design (graph.rs made sure the edges fit the kind).
fn butterworth_design(kind: FilterKind, order: &Located<u32>, cutoff: &Located<Cutoff>) -> IirDesign {
    let edges = cutoff.value.frequencies();
    let low = edges.first().copied().unwrap_or(f64::NAN);
    let high = edges.get(1).copied().unwrap_or(f64::NAN);
    let band = match kind {
        FilterKind::Lowpass => Band::Lowpass(low),
        FilterKind::Highpass => Band::Highpass(low),
        FilterKind::Bandpass => Band::Bandpass(low, high),
        FilterKind::Bandstop => Band::Bandstop(low, high),
    };
    IirDesign::Butterworth {
        order: order.value as usize,
        band,
    }
}

fn notch_design(frequency: &Located<f64>, q: &Located<f64>, harmonics: &Located<u32>) -> IirDesign {
    IirDesign::Notch {
        frequency: frequency.value,
        q: q.value,
        harmonics: harmonics.value,
    }
}

fn iir_stage_design(stage: &IirStageSpec) -> IirDesign {
    match stage {
        IirStageSpec::Butterworth(b) => butterworth_design(b.kind, &b.order, &b.cutoff_hz),
        IirStageSpec::Notch(n) => notch_design(&n.frequency_hz, &n.q, &n.harmonics),
    }
}

fn selection(channels: &Option<Located<Vec<String>>>) -> ChannelSelection {
    match channels {
        Some(names) => ChannelSelection::Named(names.value.clone()),
        None => ChannelSelection::All,
    }
}

struct OperatorTask {
    operator: Box<dyn Operator>,
    /// Issues the tokens of what the operator emits at `finish`, which
    /// derives from no single input.
    acks: Arc<AckCounter>,
    outlet: Outlet,
}

/// Where an operator task sends things; kept apart from the operator, which
/// need not be `Sync`.
struct Outlet {
    name: Arc<str>,
    out: Fanout,
    dead_letter: Option<mpsc::Sender<DeadLetter>>,
    counters: Arc<NodeCounters>,
}

impl OperatorTask {
    async fn run(self, mut rx: mpsc::Receiver<Envelope>) -> Result<(), RuntimeError> {
        let OperatorTask {
            mut operator,
            acks,
            outlet,
        } = self;
        let mut output = Output::default();
        while let Some(Envelope { item, ack, received }) = rx.recv().await {
            NodeCounters::add(&outlet.counters.items_in, 1);
            NodeCounters::add(&outlet.counters.samples_in, samples_of(&item));
            let rejected = operator.process(item, &mut output).err();
            let produced = output.len();
            // Outputs share the input's acknowledgement; the input's own
            // share ends once they are on their way.
            for item in output.drain() {
                NodeCounters::add(&outlet.counters.items_out, 1);
                let _ = outlet
                    .out
                    .send(Envelope {
                        item,
                        ack: ack.clone(),
                        received,
                    })
                    .await;
            }
            match rejected {
                Some(rejected) => {
                    let Rejected { item, reason } = *rejected;
                    outlet.reject(item, reason, ack, received).await
                }
                None if produced == 0 => ack.settle(AckStatus::Dropped),
                None => ack.hand_over(),
            }
        }
        operator.finish(&mut output);
        outlet.send_finished(&mut output, &acks).await;
        Ok(())
    }
}

impl Outlet {
    /// Sends what the operator emitted at `finish`, each item under a token
    /// of its own.
    async fn send_finished(&self, output: &mut Output, acks: &Arc<AckCounter>) {
        let received = std::time::Instant::now();
        for item in output.drain() {
            NodeCounters::add(&self.counters.items_out, 1);
            let ack = acks.issue();
            let _ = self
                .out
                .send(Envelope {
                    item,
                    ack: ack.clone(),
                    received,
                })
                .await;
            ack.hand_over();
        }
    }

    async fn reject(
        &self,
        item: Item,
        reason: std::borrow::Cow<'static, str>,
        ack: crate::ack::AckToken,
        received: std::time::Instant,
    ) {
        NodeCounters::add(&self.counters.rejected, 1);
        let sequence = item.sequence();
        match &self.dead_letter {
            Some(tx) => {
                let letter = DeadLetter {
                    item,
                    ack,
                    received,
                    reason,
                    node: self.name.clone(),
                };
                if tx.send(letter).await.is_err() {
                    tracing::error!(node = %self.name, sequence, "dead-letter sink has stopped; item abandoned");
                }
            }
            None => {
                tracing::warn!(node = %self.name, sequence, %reason, "item rejected and no dead_letter sink is configured");
                ack.settle(AckStatus::Rejected);
            }
        }
    }
}

fn latency_summary(histogram: &crate::latency::LatencyHistogram) -> Option<[std::time::Duration; 3]> {
    Some([
        histogram.quantile(0.5)?,
        histogram.quantile(0.99)?,
        histogram.quantile(0.999)?,
    ])
}

fn samples_of(item: &Item) -> u64 {
    match item {
        Item::Frame(f) => f.sample_count() as u64,
        Item::Record(_) => 0,
    }
}
