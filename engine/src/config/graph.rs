//! Builds the pipeline graph from a spec and checks it: names, inputs,
//! cycles, edge types, unused outputs and parameter values. All problems are
//! collected so the user sees them together.

use std::collections::HashMap;

use sigfab_operators::ItemKind;

use super::located::{Deferred, Located, NodeKinds, NodeSpec, Pos};
use super::spec::*;
use super::{closest, ConfigError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Source,
    Operator,
    Sink,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Operator => "operator",
            Role::Sink => "sink",
        }
    }
}

/// A node of the checked graph. `spec_index` points into the spec section
/// of its role.
#[derive(Clone, Debug)]
pub struct GraphNode {
    pub name: String,
    pub role: Role,
    pub spec_index: usize,
    /// Node ids this node reads from.
    pub inputs: Vec<usize>,
    /// Node ids that read from this node.
    pub consumers: Vec<usize>,
    /// What this node emits (None for sinks).
    pub output: Option<ItemKind>,
}

/// The checked pipeline graph. Node ids: sources, then operators, then sinks,
/// each in file order.
#[derive(Clone, Debug)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    /// Operator ids in an order where every operator comes after its inputs.
    pub operator_order: Vec<usize>,
}

/// What an operator reads and what it emits.
enum Signature {
    FramesTo(ItemKind),
    /// Reads records, emits records.
    RecordsToRecords,
    /// Reads frames and records (frames only set state), emits records.
    FramesAndRecordsToRecords,
    /// Emits what it reads.
    Any,
}

fn signature(kind: &OperatorKind) -> Signature {
    match kind {
        OperatorKind::Passthrough(_) | OperatorKind::Deidentify(_) => Signature::Any,
        OperatorKind::SelectChannels(_)
        | OperatorKind::Validate(_)
        | OperatorKind::Butterworth(_)
        | OperatorKind::Notch(_)
        | OperatorKind::Iir(_)
        | OperatorKind::Fir(_)
        | OperatorKind::Resample(_)
        | OperatorKind::Montage(_) => Signature::FramesTo(ItemKind::Frame),
        OperatorKind::FrameStats(_)
        | OperatorKind::BandPowers(_)
        | OperatorKind::EcgBeats(_)
        | OperatorKind::Pulses(_)
        | OperatorKind::Spo2(_)
        | OperatorKind::EegTimeFeatures(_)
        | OperatorKind::SignalQuality(_)
        | OperatorKind::AudioFeatures(_) => Signature::FramesTo(ItemKind::Record),
        OperatorKind::KAnonymity(_) | OperatorKind::DpAggregate(_) => Signature::RecordsToRecords,
        OperatorKind::AttachLabels(_) => Signature::FramesAndRecordsToRecords,
    }
}

impl Graph {
    pub fn build(spec: &PipelineSpec) -> Result<Graph, Vec<ConfigError>> {
        let mut builder = Builder::default();
        builder.add_section(Role::Source, &spec.sources.0);
        builder.add_section(Role::Operator, &spec.operators.0);
        builder.add_section(Role::Sink, &spec.sinks.0);
        builder.resolve_inputs(spec);
        check_filter_rates(spec, &builder.nodes, &mut builder.errors);
        check_montage_names(spec, &builder.nodes, &mut builder.errors);
        let operator_order = builder.order_operators(spec);
        builder.infer_types(spec, &operator_order);
        builder.check_used(spec);
        check_values(spec, &mut builder.errors);
        if spec.sources.0.is_empty() {
            builder.error(Pos { line: 1, column: 1 }, "the pipeline has no sources");
        }
        if spec.sinks.0.is_empty() {
            builder.error(Pos { line: 1, column: 1 }, "the pipeline has no sinks");
        }
        if builder.errors.is_empty() {
            Ok(Graph {
                nodes: builder.nodes,
                operator_order,
            })
        } else {
            Err(builder.errors)
        }
    }

    pub fn ids_of(&self, role: Role) -> impl Iterator<Item = usize> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.role == role)
            .map(|(i, _)| i)
    }
}

#[derive(Default)]
struct Builder {
    nodes: Vec<GraphNode>,
    /// Name → node id and where it was defined.
    by_name: HashMap<String, (usize, Pos)>,
    /// Per node: the position of its name and of each input reference.
    name_pos: Vec<Pos>,
    input_pos: Vec<Vec<Pos>>,
    errors: Vec<ConfigError>,
}

impl Builder {
    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(ConfigError::new(pos, message));
    }

    fn add_section<K: NodeKinds>(&mut self, role: Role, nodes: &[NodeSpec<K>]) {
        for (spec_index, node) in nodes.iter().enumerate() {
            let id = self.nodes.len();
            let name = node.name.value.clone();
            if let Some((other, at)) = self.by_name.get(&name) {
                let other_role = self.nodes[*other].role.as_str();
                let article = if other_role == "operator" { "an" } else { "a" };
                let message = format!(
                    "duplicate name '{name}': {article} {other_role} on line {} already has it; names must be unique across sources, operators and sinks",
                    at.line
                );
                self.error(node.name.pos, message);
            } else {
                self.by_name.insert(name.clone(), (id, node.name.pos));
            }
            if let Err(Deferred { pos, message }) = &node.kind {
                self.error(*pos, message.clone());
            }
            if K::HAS_INPUTS && node.inputs.is_empty() {
                self.error(
                    node.name.pos,
                    format!(
                        "{} '{name}' has no inputs: add `inputs: [<source or operator>]`",
                        role.as_str()
                    ),
                );
            }
            self.nodes.push(GraphNode {
                name,
                role,
                spec_index,
                inputs: Vec::new(),
                consumers: Vec::new(),
                output: None,
            });
            self.name_pos.push(node.name.pos);
            self.input_pos.push(node.inputs.iter().map(|i| i.pos).collect());
        }
    }

    fn resolve_inputs(&mut self, spec: &PipelineSpec) {
        let references = spec
            .operators
            .0
            .iter()
            .map(|n| &n.inputs)
            .chain(spec.sinks.0.iter().map(|n| &n.inputs));
        let first_reader = spec.sources.0.len();
        for (offset, inputs) in references.enumerate() {
            let id = first_reader + offset;
            for input in inputs {
                self.resolve_one(id, &input.value, input.pos);
            }
        }
    }

    fn resolve_one(&mut self, id: usize, input: &str, pos: Pos) {
        let reader = format!("{} '{}'", self.nodes[id].role.as_str(), self.nodes[id].name);
        let Some(&(source, _)) = self.by_name.get(input) else {
            let candidates = self
                .nodes
                .iter()
                .filter(|n| n.role != Role::Sink)
                .map(|n| n.name.as_str());
            let hint = closest(input, candidates)
                .map(|c| format!(" (did you mean '{c}'?)"))
                .unwrap_or_default();
            self.error(
                pos,
                format!("{reader} reads from '{input}', which is not defined{hint}"),
            );
            return;
        };
        if self.nodes[source].role == Role::Sink {
            self.error(
                pos,
                format!("{reader} reads from sink '{input}', but sinks have no output"),
            );
        } else if self.nodes[id].inputs.contains(&source) {
            self.error(pos, format!("{reader} lists '{input}' twice in its inputs"));
        } else if source == id {
            self.error(pos, format!("{reader} reads from itself"));
        } else {
            self.nodes[id].inputs.push(source);
            self.nodes[source].consumers.push(id);
        }
    }

    /// Kahn's algorithm over operators; whatever is left sits on a cycle.
    fn order_operators(&mut self, spec: &PipelineSpec) -> Vec<usize> {
        let first = spec.sources.0.len();
        let operators: Vec<usize> = (first..first + spec.operators.0.len()).collect();
        let mut pending: HashMap<usize, usize> = operators
            .iter()
            .map(|&id| {
                let from_operators = self.nodes[id]
                    .inputs
                    .iter()
                    .filter(|&&i| operators.contains(&i))
                    .count();
                (id, from_operators)
            })
            .collect();
        let mut order = Vec::new();
        let mut ready: Vec<usize> = operators.iter().copied().filter(|id| pending[id] == 0).collect();
        while let Some(id) = ready.pop() {
            order.push(id);
            for &consumer in &self.nodes[id].consumers {
                if let Some(count) = pending.get_mut(&consumer) {
                    *count -= 1;
                    if *count == 0 {
                        ready.push(consumer);
                    }
                }
            }
        }
        let mut cyclic: Vec<usize> = operators.into_iter().filter(|id| !order.contains(id)).collect();
        cyclic.sort_unstable();
        if let Some(&first_cyclic) = cyclic.first() {
            let names: Vec<String> = cyclic
                .iter()
                .map(|&i| format!("'{}'", self.nodes[i].name))
                .collect();
            self.error(
                self.name_pos[first_cyclic],
                format!(
                    "operators {} form a cycle through their inputs; a pipeline must flow one way",
                    names.join(", ")
                ),
            );
        }
        order
    }

    fn infer_types(&mut self, spec: &PipelineSpec, operator_order: &[usize]) {
        for id in self.ids(Role::Source) {
            self.nodes[id].output = Some(ItemKind::Frame);
        }
        for &id in operator_order {
            let Ok(kind) = &spec.operators.0[self.nodes[id].spec_index].kind else {
                continue;
            };
            let input_kinds: Vec<(usize, Option<ItemKind>)> = self.nodes[id]
                .inputs
                .iter()
                .map(|&i| (i, self.nodes[i].output))
                .collect();
            let output = match signature(&kind.value) {
                Signature::FramesTo(output) => {
                    self.require_frames(id, &input_kinds);
                    Some(output)
                }
                Signature::RecordsToRecords => {
                    self.require_records(id, &input_kinds);
                    Some(ItemKind::Record)
                }
                Signature::FramesAndRecordsToRecords => {
                    self.require_deidentified_frames(spec, id, &input_kinds);
                    Some(ItemKind::Record)
                }
                Signature::Any => self.common_kind(id, &input_kinds),
            };
            self.nodes[id].output = output;
        }
    }

    fn require_frames(&mut self, id: usize, inputs: &[(usize, Option<ItemKind>)]) {
        for (position, &(input, kind)) in inputs.iter().enumerate() {
            if kind == Some(ItemKind::Record) {
                let message = format!(
                    "operator '{}' takes frames, but its input '{}' produces records",
                    self.nodes[id].name, self.nodes[input].name
                );
                self.error(self.input_pos[id][position], message);
            }
        }
    }

    fn require_records(&mut self, id: usize, inputs: &[(usize, Option<ItemKind>)]) {
        for (position, &(input, kind)) in inputs.iter().enumerate() {
            if kind == Some(ItemKind::Frame) {
                let message = format!(
                    "operator '{}' takes records, but its input '{}' produces frames",
                    self.nodes[id].name, self.nodes[input].name
                );
                self.error(self.input_pos[id][position], message);
            }
        }
    }

    /// Frame metadata may be PHI: `attach_labels` may copy it only from
    /// frames that came through a `deidentify` node.
    fn require_deidentified_frames(
        &mut self,
        spec: &PipelineSpec,
        id: usize,
        inputs: &[(usize, Option<ItemKind>)],
    ) {
        for (position, &(input, kind)) in inputs.iter().enumerate() {
            if kind == Some(ItemKind::Frame) && !self.deidentified(spec, input) {
                let message = format!(
                    "operator '{}' copies frame metadata into labels, but its input '{}' is not de-identified: put a deidentify operator before it",
                    self.nodes[id].name, self.nodes[input].name
                );
                self.error(self.input_pos[id][position], message);
            }
        }
    }

    /// Whether every path from a source to `id` passes a deidentify node.
    fn deidentified(&self, spec: &PipelineSpec, id: usize) -> bool {
        let node = &self.nodes[id];
        match node.role {
            Role::Source | Role::Sink => false,
            Role::Operator => {
                let is_deid = matches!(
                    &spec.operators.0[node.spec_index].kind,
                    Ok(kind) if matches!(kind.value, OperatorKind::Deidentify(_))
                );
                is_deid
                    || (!node.inputs.is_empty() && node.inputs.iter().all(|&i| self.deidentified(spec, i)))
            }
        }
    }

    fn common_kind(&mut self, id: usize, inputs: &[(usize, Option<ItemKind>)]) -> Option<ItemKind> {
        let kinds: Vec<ItemKind> = inputs.iter().filter_map(|(_, k)| *k).collect();
        let first = *kinds.first()?;
        if kinds.iter().any(|&k| k != first) {
            let message = format!(
                "operator '{}' mixes inputs that produce frames with inputs that produce records",
                self.nodes[id].name
            );
            self.error(self.name_pos[id], message);
        }
        Some(first)
    }

    /// Skipped when another error already explains the graph's shape (a
    /// dangling or duplicate name, no sinks): "not used" would be noise.
    fn check_used(&mut self, spec: &PipelineSpec) {
        if !self.errors.is_empty() || spec.sinks.0.is_empty() {
            return;
        }
        let producers = spec.sources.0.len() + spec.operators.0.len();
        for id in 0..producers {
            if self.nodes[id].consumers.is_empty() {
                let node = &self.nodes[id];
                let message = format!(
                    "the output of {} '{}' is not used: list it in the inputs of a sink or operator, or remove it",
                    node.role.as_str(),
                    node.name
                );
                self.error(self.name_pos[id], message);
            }
        }
    }

    fn ids(&self, role: Role) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].role == role)
            .collect()
    }
}

/// Checks the values serde cannot: positive rates, non-empty lists, ranges.
fn check_values(spec: &PipelineSpec, errors: &mut Vec<ConfigError>) {
    let mut fail = |pos: Pos, message: String| errors.push(ConfigError::new(pos, message));
    if spec.settings.queue_capacity.value == 0 {
        fail(
            spec.settings.queue_capacity.pos,
            "settings.queue_capacity must be at least 1".into(),
        );
    }
    if let Some(listen) = &spec.settings.metrics_listen {
        let port = listen.value.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
        if !matches!(port, Some(Ok(_))) {
            fail(
                listen.pos,
                "settings.metrics_listen must be host:port, e.g. 127.0.0.1:9464 (port 0 picks a free one)"
                    .into(),
            );
        }
    }
    for node in &spec.sources.0 {
        let Ok(kind) = &node.kind else { continue };
        match &kind.value {
            SourceKind::Synthetic(s) => {
                check_frame(&s.frame, &mut fail);
                if let Some(channels) = &s.channels {
                    if channels.value == 0 {
                        fail(channels.pos, "synthetic.channels must be at least 1".into());
                    }
                }
                if let Some(rate) = &s.sample_rate {
                    if !(rate.value.is_finite() && rate.value > 0.0) {
                        fail(
                            rate.pos,
                            format!("sample_rate must be a positive number of Hz, not {}", rate.value),
                        );
                    }
                }
                if s.streams.value == 0 {
                    fail(s.streams.pos, "synthetic.streams must be at least 1".into());
                }
            }
            SourceKind::File(f) => check_frame(&f.frame, &mut fail),
            SourceKind::Kafka(k) => {
                check_brokers(&k.brokers, &mut fail);
                if k.topics.value.is_empty() || k.topics.value.iter().any(|t| t.trim().is_empty()) {
                    fail(
                        k.topics.pos,
                        "kafka.topics must list at least one topic name".into(),
                    );
                }
                if k.max_unacked.value == 0 {
                    fail(k.max_unacked.pos, "kafka.max_unacked must be at least 1".into());
                }
                if k.commit_interval.value.0.is_zero() {
                    fail(
                        k.commit_interval.pos,
                        "kafka.commit_interval must be longer than zero".into(),
                    );
                }
                check_properties(&k.properties, CONSUMER_MANAGED, &mut fail);
                if let Some(key) = &k.encrypt {
                    check_record_key(key, kind.pos, &mut fail);
                }
            }
        }
    }
    for node in &spec.sinks.0 {
        let Ok(kind) = &node.kind else { continue };
        if let SinkKind::Archive(a) = &kind.value {
            let count = a.recipients.value.len();
            if count == 0 || count > 255 {
                fail(
                    a.recipients.pos,
                    format!("archive.recipients must list 1 to 255 recipient files, not {count}"),
                );
            }
            if a.max_segment_bytes.value == 0 {
                fail(
                    a.max_segment_bytes.pos,
                    "archive.max_segment_bytes must be at least 1".into(),
                );
            }
            if a.max_segment_duration.value.0.is_zero() {
                fail(
                    a.max_segment_duration.pos,
                    "archive.max_segment_duration must be longer than zero".into(),
                );
            }
            if a.flush_interval.value.0.is_zero() {
                fail(
                    a.flush_interval.pos,
                    "archive.flush_interval must be longer than zero".into(),
                );
            }
            if a.max_pending.value == 0 {
                fail(a.max_pending.pos, "archive.max_pending must be at least 1".into());
            }
            check_archive_codec(a, &mut fail);
        }
        if let SinkKind::Kafka(k) = &kind.value {
            check_brokers(&k.brokers, &mut fail);
            if k.linger.value.0 > std::time::Duration::from_secs(1) {
                fail(
                    k.linger.pos,
                    "kafka.linger above 1s defeats a live pipeline's latency budget".into(),
                );
            }
            check_properties(&k.properties, PRODUCER_MANAGED, &mut fail);
            if let Some(key) = &k.encrypt {
                check_record_key(key, kind.pos, &mut fail);
            }
        }
    }
    let inline_record_keys = spec
        .sources
        .0
        .iter()
        .filter_map(|node| match node.kind.as_ref().map(|k| &k.value) {
            Ok(SourceKind::Kafka(k)) => k.encrypt.as_ref(),
            _ => None,
        })
        .chain(
            spec.sinks
                .0
                .iter()
                .filter_map(|node| match node.kind.as_ref().map(|k| &k.value) {
                    Ok(SinkKind::Kafka(k)) => k.encrypt.as_ref(),
                    _ => None,
                }),
        );
    for key in inline_record_keys {
        if let Some(inline) = &key.key {
            let message =
                "kafka.encrypt: a key must not be written in the pipeline file; use key_file or key_env";
            errors.push(ConfigError::on_secret(inline.pos, message));
        }
    }
    for node in &spec.operators.0 {
        let Ok(kind) = &node.kind else { continue };
        if let OperatorKind::Deidentify(d) = &kind.value {
            if let Some(inline) = &d.key {
                let message =
                    "deidentify: a key must not be written in the pipeline file; use key_file or key_env";
                errors.push(ConfigError::on_secret(inline.pos, message));
            }
        }
    }
    let mut fail = |pos: Pos, message: String| errors.push(ConfigError::new(pos, message));
    for node in &spec.operators.0 {
        let Ok(kind) = &node.kind else { continue };
        match &kind.value {
            OperatorKind::SelectChannels(s) if s.channels.value.is_empty() => {
                fail(s.channels.pos, "select_channels.channels lists no channel".into());
            }
            OperatorKind::Deidentify(d) => check_deidentify(d, kind.pos, &mut fail),
            OperatorKind::Validate(v) => {
                if let Some(f) = &v.max_nan_fraction {
                    if !(0.0..=1.0).contains(&f.value) {
                        fail(
                            f.pos,
                            format!("max_nan_fraction must be between 0 and 1, not {}", f.value),
                        );
                    }
                }
                if let Some(m) = &v.max_abs {
                    if m.value.is_nan() || m.value <= 0.0 {
                        fail(m.pos, format!("max_abs must be positive, not {}", m.value));
                    }
                }
            }
            OperatorKind::Butterworth(b) => {
                check_butterworth("butterworth", b.kind, &b.order, &b.cutoff_hz, &mut fail);
                check_filter_channels(&b.channels, "butterworth", &mut fail);
            }
            OperatorKind::Notch(n) => {
                check_notch("notch", &n.frequency_hz, &n.q, &n.harmonics, &mut fail);
                check_filter_channels(&n.channels, "notch", &mut fail);
            }
            OperatorKind::Iir(i) => check_iir(i, &mut fail),
            OperatorKind::BandPowers(b) => check_band_powers(b, &mut fail),
            OperatorKind::EcgBeats(e) => check_ecg_beats(e, &mut fail),
            OperatorKind::Pulses(p) => check_channel_name(&p.channel, "pulses.channel", &mut fail),
            OperatorKind::Spo2(s) => check_spo2(s, &mut fail),
            OperatorKind::AttachLabels(a) => check_names(&a.keys, "attach_labels.keys", &mut fail),
            OperatorKind::KAnonymity(k) => check_k_anonymity(k, &mut fail),
            OperatorKind::DpAggregate(d) => check_dp_aggregate(d, &mut fail),
            OperatorKind::EegTimeFeatures(t) => check_time_features(t, &mut fail),
            OperatorKind::SignalQuality(q) => {
                check_windows("signal_quality", &q.window, &q.hop, &q.channels, &mut fail);
                check_quality("signal_quality.checks", &q.checks, &mut fail);
            }
            OperatorKind::AudioFeatures(a) => check_audio_features(a, &mut fail),
            OperatorKind::Fir(f) => check_fir(f, &mut fail),
            OperatorKind::Resample(r) => check_resample(r, kind.pos, &mut fail),
            OperatorKind::Montage(m) => check_montage(m, &mut fail),
            _ => {}
        }
    }
}

/// Highest Butterworth order accepted: beyond it the design is numerically
/// meaningless long before it is useful.
const MAX_BUTTERWORTH_ORDER: u32 = 32;
const MAX_NOTCH_HARMONICS: u32 = 20;

/// A Butterworth design's fields; `field` names them in messages
/// (`butterworth`, or `iir.stages[i].butterworth`).
fn check_butterworth(
    field: &str,
    kind: FilterKind,
    order: &Located<u32>,
    cutoff: &Located<Cutoff>,
    fail: &mut impl FnMut(Pos, String),
) {
    if order.value == 0 || order.value > MAX_BUTTERWORTH_ORDER {
        let message = format!(
            "{field}.order must be between 1 and {MAX_BUTTERWORTH_ORDER}, not {}",
            order.value
        );
        fail(order.pos, message);
    }
    let frequencies = cutoff.value.frequencies();
    if frequencies.len() != kind.edges() {
        let expected = if kind.edges() == 1 {
            "one frequency"
        } else {
            "two frequencies, [low, high]"
        };
        fail(
            cutoff.pos,
            format!("{field}.cutoff_hz of a {} filter takes {expected}", kind.as_str()),
        );
    } else if let Some(bad) = frequencies.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
        fail(
            cutoff.pos,
            format!("{field}.cutoff_hz must be positive numbers of Hz, not {bad}"),
        );
    } else if let [low, high] = frequencies {
        if low >= high {
            fail(
                cutoff.pos,
                format!("{field}.cutoff_hz must be [low, high] with low < high, not [{low}, {high}]"),
            );
        }
    }
}

/// A notch's fields; `field` names them in messages.
fn check_notch(
    field: &str,
    frequency: &Located<f64>,
    q: &Located<f64>,
    harmonics: &Located<u32>,
    fail: &mut impl FnMut(Pos, String),
) {
    if frequency.value != 50.0 && frequency.value != 60.0 {
        fail(
            frequency.pos,
            format!(
                "{field}.frequency_hz is the mains frequency, 50 or 60, not {}",
                frequency.value
            ),
        );
    }
    if !(q.value.is_finite() && q.value > 0.0) {
        fail(
            q.pos,
            format!("{field}.q must be a positive number, not {}", q.value),
        );
    }
    if harmonics.value > MAX_NOTCH_HARMONICS {
        fail(
            harmonics.pos,
            format!(
                "{field}.harmonics must be at most {MAX_NOTCH_HARMONICS}, not {}",
                harmonics.value
            ),
        );
    }
}

fn check_iir(spec: &IirSpec, fail: &mut impl FnMut(Pos, String)) {
    if spec.stages.value.is_empty() {
        fail(
            spec.stages.pos,
            "iir.stages lists no stage; give at least one butterworth or notch".into(),
        );
    }
    for (i, stage) in spec.stages.value.iter().enumerate() {
        match stage {
            IirStageSpec::Butterworth(b) => check_butterworth(
                &format!("iir.stages[{i}].butterworth"),
                b.kind,
                &b.order,
                &b.cutoff_hz,
                fail,
            ),
            IirStageSpec::Notch(n) => check_notch(
                &format!("iir.stages[{i}].notch"),
                &n.frequency_hz,
                &n.q,
                &n.harmonics,
                fail,
            ),
        }
    }
    check_filter_channels(&spec.channels, "iir", fail);
}

fn check_band_powers(spec: &BandPowersSpec, fail: &mut impl FnMut(Pos, String)) {
    let (window, hop, segment) = (spec.window.value.0, spec.hop.value.0, spec.segment.value.0);
    if window.is_zero() {
        fail(spec.window.pos, "band_powers.window must be longer than 0".into());
    }
    if hop.is_zero() || hop > window {
        fail(
            spec.hop.pos,
            "band_powers.hop must be longer than 0 and at most band_powers.window".into(),
        );
    }
    if segment.is_zero() || segment > window {
        fail(
            spec.segment.pos,
            "band_powers.segment must be longer than 0 and at most band_powers.window".into(),
        );
    }
    if let Some(bands) = &spec.bands {
        if bands.value.is_empty() {
            fail(
                bands.pos,
                "band_powers.bands lists no band; leave it out for the EEG bands".into(),
            );
        }
        for band in &bands.value {
            let [low, high] = band.hz;
            if !(low.is_finite() && high.is_finite() && low >= 0.0 && low < high) {
                let message = format!(
                    "band_powers.bands: band {} must be [low, high] Hz with 0 <= low < high",
                    band.name
                );
                fail(bands.pos, message);
            }
        }
    }
    if let Some(range) = &spec.edge_range_hz {
        if !matches!(range.value[..], [low, high] if low >= 0.0 && low < high) {
            fail(
                range.pos,
                "band_powers.edge_range_hz must be [low, high] Hz with 0 <= low < high".into(),
            );
        }
    }
    check_filter_channels(&spec.channels, "band_powers", fail);
    if let Some(gate) = &spec.quality_gate {
        check_quality("band_powers.quality_gate", gate, fail);
    }
}

/// Window, hop and channel list of a windowed operator.
fn check_windows(
    operator: &str,
    window: &super::Located<DurationSpec>,
    hop: &super::Located<DurationSpec>,
    channels: &Option<super::Located<Vec<String>>>,
    fail: &mut impl FnMut(Pos, String),
) {
    if window.value.0.is_zero() {
        fail(window.pos, format!("{operator}.window must be longer than 0"));
    }
    if hop.value.0.is_zero() || (hop.value.0 > window.value.0 && !window.value.0.is_zero()) {
        // A default hop has no place in the file: point at the window.
        let pos = if hop.pos.line == 0 { window.pos } else { hop.pos };
        fail(
            pos,
            format!("{operator}.hop must be longer than 0 and at most {operator}.window"),
        );
    }
    check_filter_channels(channels, operator, fail);
}

/// `[low, high]` with low < high, both finite.
fn check_archive_codec(a: &super::spec::ArchiveSinkSpec, fail: &mut impl FnMut(Pos, String)) {
    use super::spec::ArchiveCodec;
    let seconds = a.block_seconds.value;
    if !sigfab_operators::codec::BLOCK_SECONDS.contains(&seconds) {
        fail(
            a.block_seconds.pos,
            format!("archive.block_seconds must be between 1 and 10, not {seconds}"),
        );
    }
    match (a.codec.value, &a.max_prdn_percent) {
        (ArchiveCodec::Lossy, None) => fail(
            a.codec.pos,
            "archive.codec: lossy needs max_prdn_percent (the PRDN bound, in percent)".into(),
        ),
        (ArchiveCodec::Lossy, Some(bound)) => {
            if !(bound.value.is_finite() && bound.value > 0.0 && bound.value <= 100.0) {
                fail(
                    bound.pos,
                    format!(
                        "archive.max_prdn_percent must be above 0 and at most 100, not {}",
                        bound.value
                    ),
                );
            }
        }
        (_, Some(bound)) => fail(
            bound.pos,
            "archive.max_prdn_percent applies only with codec: lossy".into(),
        ),
        (_, None) => {}
    }
    if let Some(resolution) = &a.resolution {
        if a.codec.value == ArchiveCodec::None {
            fail(
                resolution.pos,
                "archive.resolution applies only with codec: lossless or lossy".into(),
            );
        }
        for (channel, step) in &resolution.value {
            if !(step.is_finite() && *step > 0.0) {
                fail(
                    resolution.pos,
                    format!(
                        "archive.resolution of channel '{channel}' must be a positive number, not {step}"
                    ),
                );
            }
        }
    }
}

fn check_range(field: &str, range: &Option<super::Located<Vec<f64>>>, fail: &mut impl FnMut(Pos, String)) {
    if let Some(range) = range {
        if !matches!(range.value[..], [low, high] if low.is_finite() && high.is_finite() && low < high) {
            fail(range.pos, format!("{field} must be [low, high] with low < high"));
        }
    }
}

fn check_quality(prefix: &str, spec: &QualitySpec, fail: &mut impl FnMut(Pos, String)) {
    if let Some(flat) = &spec.flat_min {
        if flat.value.0.is_zero() {
            fail(flat.pos, format!("{prefix}.flat_min must be longer than 0"));
        }
    }
    for (name, value) in [
        ("flat_tolerance", &spec.flat_tolerance),
        ("clip_tolerance", &spec.clip_tolerance),
        ("max_line_noise_ratio", &spec.max_line_noise_ratio),
    ] {
        if let Some(v) = value {
            if !(v.value.is_finite() && v.value >= 0.0) {
                fail(
                    v.pos,
                    format!("{prefix}.{name} must be 0 or more, not {}", v.value),
                );
            }
        }
    }
    for (name, value) in [
        ("max_flat_fraction", &spec.max_flat_fraction),
        ("max_clip_fraction", &spec.max_clip_fraction),
        ("max_nan_fraction", &spec.max_nan_fraction),
        ("max_out_of_range_fraction", &spec.max_out_of_range_fraction),
    ] {
        if let Some(v) = value {
            if !(0.0..=1.0).contains(&v.value) {
                fail(
                    v.pos,
                    format!("{prefix}.{name} must be between 0 and 1, not {}", v.value),
                );
            }
        }
    }
    if let Some(mains) = &spec.mains_hz {
        if !(mains.value.is_finite() && mains.value > 1.0) {
            fail(
                mains.pos,
                format!("{prefix}.mains_hz must be above 1 Hz, not {}", mains.value),
            );
        }
    }
    check_range(&format!("{prefix}.clip_range"), &spec.clip_range, fail);
    check_range(&format!("{prefix}.range"), &spec.range, fail);
}

fn check_time_features(spec: &TimeFeaturesSpec, fail: &mut impl FnMut(Pos, String)) {
    check_windows("eeg_time_features", &spec.window, &spec.hop, &spec.channels, fail);
    if let Some(t) = &spec.suppression_threshold {
        if !(t.value.is_finite() && t.value > 0.0) {
            let message = format!(
                "eeg_time_features.suppression_threshold must be positive, not {}",
                t.value
            );
            fail(t.pos, message);
        }
    }
    if let Some(gate) = &spec.quality_gate {
        check_quality("eeg_time_features.quality_gate", gate, fail);
    }
}

/// Most mel bands accepted.
const MAX_MEL_BANDS: u32 = 256;

fn check_audio_features(spec: &AudioFeaturesSpec, fail: &mut impl FnMut(Pos, String)) {
    check_windows("audio_features", &spec.window, &spec.hop, &spec.channels, fail);
    if let Some(bands) = &spec.mel_bands {
        if bands.value == 0 || bands.value > MAX_MEL_BANDS {
            let message = format!(
                "audio_features.mel_bands must be 1 to {MAX_MEL_BANDS}, not {}",
                bands.value
            );
            fail(bands.pos, message);
        }
    }
    if let Some(range) = &spec.mel_range_hz {
        if !matches!(range.value[..], [low, high] if low >= 0.0 && low < high) {
            fail(
                range.pos,
                "audio_features.mel_range_hz must be [low, high] Hz with 0 <= low < high".into(),
            );
        }
    }
    if let Some(n) = &spec.n_fft {
        if n.value < 2 {
            fail(
                n.pos,
                format!("audio_features.n_fft must be at least 2, not {}", n.value),
            );
        }
    }
}

fn check_channel_name(name: &super::Located<String>, field: &str, fail: &mut impl FnMut(Pos, String)) {
    if name.value.is_empty() {
        fail(name.pos, format!("{field} must name a channel"));
    }
}

/// Shortest HRV window: LF/HF needs 64 s of resampled RR series.
const MIN_HRV_WINDOW_S: u64 = 60;

fn check_ecg_beats(spec: &EcgBeatsSpec, fail: &mut impl FnMut(Pos, String)) {
    check_channel_name(&spec.channel, "ecg_beats.channel", fail);
    if !spec.beats && !spec.hrv {
        fail(
            spec.channel.pos,
            "ecg_beats emits nothing with both beats and hrv false".into(),
        );
    }
    let (window, hop) = (spec.hrv_window.value.0, spec.hrv_hop.value.0);
    if window.as_secs() < MIN_HRV_WINDOW_S {
        fail(
            spec.hrv_window.pos,
            format!("ecg_beats.hrv_window must be at least {MIN_HRV_WINDOW_S}s"),
        );
    }
    if hop.is_zero() || hop > window {
        fail(
            spec.hrv_hop.pos,
            "ecg_beats.hrv_hop must be longer than 0 and at most ecg_beats.hrv_window".into(),
        );
    }
}

fn check_spo2(spec: &Spo2Spec, fail: &mut impl FnMut(Pos, String)) {
    check_channel_name(&spec.red, "spo2.red", fail);
    check_channel_name(&spec.ir, "spo2.ir", fail);
    if spec.red.value == spec.ir.value {
        fail(spec.ir.pos, "spo2.ir must differ from spo2.red".into());
    }
    let (window, hop) = (spec.window.value.0, spec.hop.value.0);
    if window.is_zero() {
        fail(spec.window.pos, "spo2.window must be longer than 0".into());
    }
    if hop.is_zero() || hop > window {
        fail(
            spec.hop.pos,
            "spo2.hop must be longer than 0 and at most spo2.window".into(),
        );
    }
    for (value, field) in [(&spec.a, "spo2.a"), (&spec.b, "spo2.b")] {
        if !value.value.is_finite() {
            fail(value.pos, format!("{field} must be a finite number"));
        }
    }
}

fn check_fir(spec: &FirSpec, fail: &mut impl FnMut(Pos, String)) {
    let cutoff = &spec.cutoff_hz;
    check_edges("fir", spec.kind, cutoff, fail);
    match (&spec.taps, &spec.attenuation_db, &spec.transition_hz) {
        (Some(taps), None, None) => {
            let max = sigfab_operators::filters::fir::MAX_TAPS;
            if taps.value == 0 || taps.value as usize > max {
                fail(
                    taps.pos,
                    format!("fir.taps must be between 1 and {max}, not {}", taps.value),
                );
            } else if taps.value.is_multiple_of(2)
                && matches!(spec.kind, FilterKind::Highpass | FilterKind::Bandstop)
            {
                fail(
                    taps.pos,
                    format!(
                        "fir.taps of a {} filter must be odd (it passes the Nyquist frequency), not {}",
                        spec.kind.as_str(),
                        taps.value
                    ),
                );
            }
            let kaiser = spec
                .window
                .as_ref()
                .is_some_and(|w| w.value == FirWindowName::Kaiser);
            match (&spec.kaiser_beta, kaiser) {
                (None, true) => {
                    if let Some(window) = &spec.window {
                        fail(window.pos, "fir.window kaiser needs fir.kaiser_beta".into());
                    }
                }
                (Some(beta), false) => fail(beta.pos, "fir.kaiser_beta goes with window: kaiser".into()),
                (Some(beta), true) if !(beta.value >= 0.0 && beta.value.is_finite()) => {
                    fail(
                        beta.pos,
                        format!("fir.kaiser_beta must be 0 or more, not {}", beta.value),
                    );
                }
                _ => {}
            }
        }
        (None, Some(attenuation), Some(transition)) => {
            if !(attenuation.value > 0.0 && attenuation.value.is_finite()) {
                fail(
                    attenuation.pos,
                    format!("fir.attenuation_db must be positive, not {}", attenuation.value),
                );
            }
            if !(transition.value > 0.0 && transition.value.is_finite()) {
                fail(
                    transition.pos,
                    format!("fir.transition_hz must be positive, not {}", transition.value),
                );
            }
            for (pos, field) in [
                (spec.window.as_ref().map(|w| w.pos), "fir.window"),
                (spec.kaiser_beta.as_ref().map(|b| b.pos), "fir.kaiser_beta"),
            ] {
                if let Some(pos) = pos {
                    fail(
                        pos,
                        format!("{field} goes with fir.taps; a Kaiser design sets its own window"),
                    );
                }
            }
        }
        _ => fail(
            cutoff.pos,
            "fir needs either taps, or attenuation_db and transition_hz (not both)".into(),
        ),
    }
    check_filter_channels(&spec.channels, "fir", fail);
}

/// Edge count and order for a filter kind.
fn check_edges(
    operator: &str,
    kind: FilterKind,
    cutoff: &super::Located<Cutoff>,
    fail: &mut impl FnMut(Pos, String),
) {
    let edges = cutoff.value.frequencies();
    if edges.len() != kind.edges() {
        let expected = if kind.edges() == 1 {
            "one frequency"
        } else {
            "[low, high]"
        };
        fail(
            cutoff.pos,
            format!(
                "{operator}.cutoff_hz of a {} filter takes {expected}",
                kind.as_str()
            ),
        );
    } else if let Some(bad) = edges.iter().find(|f| !(**f > 0.0 && f.is_finite())) {
        fail(
            cutoff.pos,
            format!("{operator}.cutoff_hz must be positive numbers of Hz, not {bad}"),
        );
    } else if let [low, high] = edges[..] {
        if low >= high {
            fail(
                cutoff.pos,
                format!("{operator}.cutoff_hz must be [low, high] with low < high, not [{low}, {high}]"),
            );
        }
    }
}

fn check_resample(spec: &ResampleSpec, node: Pos, fail: &mut impl FnMut(Pos, String)) {
    let max = sigfab_operators::filters::resample::MAX_FACTOR;
    match (&spec.to_hz, &spec.up, &spec.down) {
        (Some(to), None, None) => {
            if !(to.value > 0.0 && to.value.is_finite()) {
                fail(
                    to.pos,
                    format!("resample.to_hz must be a positive rate, not {}", to.value),
                );
            }
        }
        (None, Some(up), Some(down)) => {
            for (factor, field) in [(up, "up"), (down, "down")] {
                if factor.value == 0 || u64::from(factor.value) > max {
                    fail(
                        factor.pos,
                        format!(
                            "resample.{field} must be between 1 and {max}, not {}",
                            factor.value
                        ),
                    );
                }
            }
        }
        _ => fail(
            node,
            "resample needs either to_hz, or up and down (not both)".into(),
        ),
    }
}

fn check_montage(spec: &MontageSpec, fail: &mut impl FnMut(Pos, String)) {
    let kind = spec.kind.value;
    let fields: [(bool, Option<Pos>, &str, MontageKindName); 4] = [
        (
            spec.channels.is_some(),
            spec.channels.as_ref().map(|c| c.pos),
            "channels",
            MontageKindName::CommonAverage,
        ),
        (
            spec.reference.is_some(),
            spec.reference.as_ref().map(|c| c.pos),
            "reference",
            MontageKindName::Linked,
        ),
        (
            spec.pairs.is_some(),
            spec.pairs.as_ref().map(|c| c.pos),
            "pairs",
            MontageKindName::Bipolar,
        ),
        (
            spec.rows.is_some(),
            spec.rows.as_ref().map(|c| c.pos),
            "rows",
            MontageKindName::Matrix,
        ),
    ];
    for (present, pos, field, owner) in fields {
        if let (true, Some(pos)) = (present, pos) {
            if owner != kind {
                fail(
                    pos,
                    format!(
                        "montage.{field} does not go with kind {}",
                        montage_kind_name(kind)
                    ),
                );
            }
        }
        let required = owner == kind && owner != MontageKindName::CommonAverage;
        if required && !present {
            fail(
                spec.kind.pos,
                format!("montage kind {} needs montage.{field}", montage_kind_name(kind)),
            );
        }
    }
    let empty_name = |n: &String| n.trim().is_empty();
    if let Some(list) = spec.channels.as_ref().or(spec.reference.as_ref()) {
        if list.value.is_empty() || list.value.iter().any(empty_name) {
            fail(
                list.pos,
                "montage channel lists must name at least one channel, none empty".into(),
            );
        }
    }
    if let Some(pairs) = &spec.pairs {
        if pairs.value.is_empty() || pairs.value.iter().flatten().any(empty_name) {
            fail(
                pairs.pos,
                "montage.pairs must list [A, B] pairs of channel names".into(),
            );
        }
    }
    if let Some(rows) = &spec.rows {
        if rows.value.is_empty()
            || rows
                .value
                .iter()
                .any(|r| empty_name(&r.name) || r.weights.is_empty())
        {
            fail(
                rows.pos,
                "montage.rows must each have a name and at least one weight".into(),
            );
        }
        if let Some(bad) = rows
            .value
            .iter()
            .flat_map(|r| r.weights.values())
            .find(|w| !w.is_finite())
        {
            fail(
                rows.pos,
                format!("montage.rows weights must be finite, not {bad}"),
            );
        }
    }
    let outputs = montage_outputs(spec);
    if let Some(outputs) = &outputs {
        let mut seen = std::collections::HashSet::new();
        if let Some(duplicate) = outputs.iter().find(|n| !seen.insert(n.as_str())) {
            let pos = spec
                .rows
                .as_ref()
                .map(|r| r.pos)
                .or(spec.pairs.as_ref().map(|p| p.pos));
            fail(
                pos.unwrap_or(spec.kind.pos),
                format!("montage gives two output channels the name {duplicate}"),
            );
        }
    }
    for (table, field) in [(&spec.gain, "gain"), (&spec.offset, "offset")] {
        let Some(table) = table else { continue };
        if let Some(bad) = table.value.values().find(|v| !v.is_finite()) {
            fail(
                table.pos,
                format!("montage.{field} values must be finite, not {bad}"),
            );
        }
        if let Some(outputs) = &outputs {
            if let Some(unknown) = table.value.keys().find(|k| !outputs.contains(k)) {
                fail(
                    table.pos,
                    format!(
                        "montage.{field} names {unknown}, which is not an output channel of this montage"
                    ),
                );
            }
        }
    }
    if let Some(dc) = &spec.dc_removal {
        if dc.value.0.is_zero() {
            fail(dc.pos, "montage.dc_removal must be longer than 0".into());
        }
    }
}

fn montage_kind_name(kind: MontageKindName) -> &'static str {
    match kind {
        MontageKindName::CommonAverage => "common_average",
        MontageKindName::Linked => "linked",
        MontageKindName::Bipolar => "bipolar",
        MontageKindName::DoubleBanana => "double_banana",
        MontageKindName::Matrix => "matrix",
    }
}

/// Output channel names when the spec alone fixes them.
fn montage_outputs(spec: &MontageSpec) -> Option<Vec<String>> {
    match spec.kind.value {
        MontageKindName::Bipolar => spec
            .pairs
            .as_ref()
            .map(|p| p.value.iter().map(|[a, b]| format!("{a}-{b}")).collect()),
        MontageKindName::DoubleBanana => Some(
            sigfab_operators::montage::DOUBLE_BANANA
                .iter()
                .map(|(a, b)| format!("{a}-{b}"))
                .collect(),
        ),
        MontageKindName::Matrix => spec
            .rows
            .as_ref()
            .map(|r| r.value.iter().map(|r| r.name.clone()).collect()),
        MontageKindName::CommonAverage | MontageKindName::Linked => None,
    }
}

/// Input channel names a montage refers to, with where they are written.
fn montage_inputs(spec: &MontageSpec) -> Vec<(Pos, &str)> {
    let mut names = Vec::new();
    for list in [&spec.channels, &spec.reference].into_iter().flatten() {
        names.extend(list.value.iter().map(|n| (list.pos, n.as_str())));
    }
    if let Some(pairs) = &spec.pairs {
        names.extend(pairs.value.iter().flatten().map(|n| (pairs.pos, n.as_str())));
    }
    if let Some(rows) = &spec.rows {
        names.extend(
            rows.value
                .iter()
                .flat_map(|r| r.weights.keys())
                .map(|n| (rows.pos, n.as_str())),
        );
    }
    names
}

/// Montage channel names missing from a synthetic source that feeds the
/// montage directly (the only channel names known before running; frames
/// of other sources that lack a name are rejected when they arrive).
fn check_montage_names(spec: &PipelineSpec, nodes: &[GraphNode], errors: &mut Vec<ConfigError>) {
    let first_operator = spec.sources.0.len();
    for (index, node) in spec.operators.0.iter().enumerate() {
        let Ok(kind) = &node.kind else { continue };
        let OperatorKind::Montage(montage) = &kind.value else {
            continue;
        };
        for &input in &nodes[first_operator + index].inputs {
            if nodes[input].role != Role::Source {
                continue;
            }
            let Ok(source) = &spec.sources.0[nodes[input].spec_index].kind else {
                continue;
            };
            let SourceKind::Synthetic(synthetic) = &source.value else {
                continue;
            };
            let available = crate::sources::synthetic::channel_names(synthetic);
            for (pos, name) in montage_inputs(montage) {
                if !available.iter().any(|a| a == name) {
                    let message = format!(
                        "montage names channel {name}, which source '{}' does not have (it has {})",
                        nodes[input].name,
                        available.join(", ")
                    );
                    errors.push(ConfigError::new(pos, message));
                }
            }
        }
    }
}

fn check_filter_channels(
    channels: &Option<super::Located<Vec<String>>>,
    operator: &str,
    fail: &mut impl FnMut(Pos, String),
) {
    if let Some(channels) = channels {
        if channels.value.is_empty() {
            fail(
                channels.pos,
                format!("{operator}.channels lists no channel; leave it out to use all channels"),
            );
        }
    }
}

/// Filter frequencies at or above the Nyquist frequency of a synthetic
/// source upstream: the only rates known before running. Frames of other
/// sources are checked when they arrive, and rejected.
fn check_filter_rates(spec: &PipelineSpec, nodes: &[GraphNode], errors: &mut Vec<ConfigError>) {
    let first_operator = spec.sources.0.len();
    for (index, node) in spec.operators.0.iter().enumerate() {
        let Ok(kind) = &node.kind else { continue };
        if let OperatorKind::Iir(iir) = &kind.value {
            for (i, stage) in iir.stages.value.iter().enumerate() {
                let (field, frequencies, pos) = match stage {
                    IirStageSpec::Butterworth(b) => (
                        format!("iir.stages[{i}].butterworth.cutoff_hz"),
                        b.cutoff_hz.value.frequencies(),
                        b.cutoff_hz.pos,
                    ),
                    IirStageSpec::Notch(n) => (
                        format!("iir.stages[{i}].notch.frequency_hz"),
                        std::slice::from_ref(&n.frequency_hz.value),
                        n.frequency_hz.pos,
                    ),
                };
                check_below_nyquist(
                    spec,
                    nodes,
                    first_operator + index,
                    &field,
                    frequencies,
                    pos,
                    errors,
                );
            }
            continue;
        }
        let (field, frequencies, pos) = match &kind.value {
            OperatorKind::Butterworth(b) => (
                "butterworth.cutoff_hz",
                b.cutoff_hz.value.frequencies().to_vec(),
                b.cutoff_hz.pos,
            ),
            OperatorKind::Notch(n) => (
                "notch.frequency_hz",
                vec![n.frequency_hz.value],
                n.frequency_hz.pos,
            ),
            OperatorKind::Fir(f) => (
                "fir.cutoff_hz",
                f.cutoff_hz.value.frequencies().to_vec(),
                f.cutoff_hz.pos,
            ),
            OperatorKind::BandPowers(b) => match &b.bands {
                Some(bands) => (
                    "band_powers.bands",
                    bands.value.iter().map(|b| b.hz[1]).collect(),
                    bands.pos,
                ),
                None => continue,
            },
            _ => continue,
        };
        check_below_nyquist(
            spec,
            nodes,
            first_operator + index,
            field,
            &frequencies,
            pos,
            errors,
        );
    }
}

/// The highest of `frequencies` (the field at `pos` of node `id`) against
/// the Nyquist frequency of each synthetic source upstream.
fn check_below_nyquist(
    spec: &PipelineSpec,
    nodes: &[GraphNode],
    id: usize,
    field: &str,
    frequencies: &[f64],
    pos: Pos,
    errors: &mut Vec<ConfigError>,
) {
    let Some(highest) = frequencies.iter().copied().reduce(f64::max) else {
        return;
    };
    for source in upstream_sources(nodes, id) {
        let Ok(kind) = &spec.sources.0[nodes[source].spec_index].kind else {
            continue;
        };
        let SourceKind::Synthetic(synthetic) = &kind.value else {
            continue;
        };
        let nyquist = synthetic.rate() / 2.0;
        if highest >= nyquist {
            let message = format!(
                "{field} {highest} Hz is not below the Nyquist frequency ({nyquist} Hz) of source '{}'",
                nodes[source].name
            );
            errors.push(ConfigError::new(pos, message));
        }
    }
}

/// The sources a node reads from, directly or through operators.
fn upstream_sources(nodes: &[GraphNode], id: usize) -> Vec<usize> {
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![id];
    let mut sources = Vec::new();
    while let Some(node) = stack.pop() {
        if std::mem::replace(&mut seen[node], true) {
            continue;
        }
        if nodes[node].role == Role::Source {
            sources.push(node);
        }
        stack.extend(&nodes[node].inputs);
    }
    sources.sort_unstable();
    sources
}

/// The record master key comes from outside the pipeline, from exactly one place; whether it
/// exists and holds 64 hex digits is checked when the pipeline runs.
fn check_record_key(spec: &RecordKeySpec, at: Pos, fail: &mut impl FnMut(Pos, String)) {
    match (&spec.key_file, &spec.key_env) {
        (None, None) if spec.key.is_some() => {}
        (None, None) => fail(
            at,
            "kafka.encrypt needs its master key from key_file or key_env".into(),
        ),
        (Some(_), Some(env)) => fail(
            env.pos,
            "kafka.encrypt takes key_file or key_env, not both".into(),
        ),
        (Some(file), None) if file.value.trim().is_empty() => {
            fail(file.pos, "kafka.encrypt.key_file is empty".into())
        }
        (None, Some(env)) if env.value.trim().is_empty() || env.value.contains('=') => fail(
            env.pos,
            "kafka.encrypt.key_env must name an environment variable".into(),
        ),
        _ => {}
    }
    if spec.key_version.value == 0 {
        fail(
            spec.key_version.pos,
            "kafka.encrypt.key_version must be at least 1".into(),
        );
    }
}

fn check_names(names: &Located<Vec<String>>, field: &str, fail: &mut impl FnMut(Pos, String)) {
    if names.value.is_empty() || names.value.iter().any(|n| n.trim().is_empty()) {
        fail(
            names.pos,
            format!("{field} must list at least one name, none empty"),
        );
    }
}

fn check_k_anonymity(spec: &KAnonymitySpec, fail: &mut impl FnMut(Pos, String)) {
    if spec.k.value < 2 {
        fail(spec.k.pos, "k_anonymity.k must be at least 2".into());
    }
    check_names(&spec.quasi_identifiers, "k_anonymity.quasi_identifiers", fail);
    if spec.window.value.0.is_zero() {
        fail(spec.window.pos, "k_anonymity.window must be longer than 0".into());
    }
    if spec.max_records.value < spec.k.value {
        fail(
            spec.max_records.pos,
            "k_anonymity.max_records must be at least k".into(),
        );
    }
}

/// Every value and their combination: the mechanism is built here exactly
/// as the run builds it, so a scale too large for exact sampling is a
/// configuration error.
fn check_dp_aggregate(spec: &DpAggregateSpec, fail: &mut impl FnMut(Pos, String)) {
    for error in crate::privacy::check_dp_spec(spec) {
        fail(error.0, error.1);
    }
}

/// Longest date shift accepted: ten years either way.
const MAX_SHIFT_DAYS: u32 = 3650;

/// The key must come from outside the pipeline file, from exactly one
/// place; whether it exists is checked when the pipeline runs, so that
/// validating a pipeline needs no secret.
fn check_deidentify(spec: &DeidentifySpec, at: Pos, fail: &mut impl FnMut(Pos, String)) {
    match (&spec.key_file, &spec.key_env) {
        // An inline key has its own error (which never quotes the line).
        (None, None) if spec.key.is_some() => {}
        (None, None) => fail(
            at,
            "deidentify needs its secret key from key_file or key_env".into(),
        ),
        (Some(_), Some(env)) => fail(env.pos, "deidentify takes key_file or key_env, not both".into()),
        (Some(file), None) if file.value.trim().is_empty() => {
            fail(file.pos, "deidentify.key_file is empty".into())
        }
        (None, Some(env)) if env.value.trim().is_empty() || env.value.contains('=') => fail(
            env.pos,
            "deidentify.key_env must name an environment variable".into(),
        ),
        _ => {}
    }
    if spec.key_version.value == 0 {
        fail(
            spec.key_version.pos,
            "deidentify.key_version must be at least 1".into(),
        );
    }
    let shift = &spec.date_shift;
    let shortest = if shift.unit == ShiftUnit::Weeks { 7 } else { 1 };
    if !(shortest..=MAX_SHIFT_DAYS).contains(&shift.max_days.value) {
        fail(
            shift.max_days.pos,
            format!("date_shift.max_days must be between {shortest} and {MAX_SHIFT_DAYS}"),
        );
    }
    if let Some(keys) = &spec.policy.patient_keys {
        if keys.value.is_empty() {
            fail(keys.pos, "policy.patient_keys lists no key".into());
        }
    }
}

/// Consumer properties the engine sets itself: overriding them would break
/// at-least-once delivery (offsets are committed by the engine, only past
/// handled records).
const CONSUMER_MANAGED: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "statistics.interval.ms",
];
/// Producer properties the engine sets itself (idempotence keeps retries
/// from duplicating or reordering records within a partition; statistics
/// feed readiness).
const PRODUCER_MANAGED: &[&str] = &[
    "bootstrap.servers",
    "enable.idempotence",
    "statistics.interval.ms",
];

fn check_brokers(brokers: &super::Located<String>, fail: &mut impl FnMut(Pos, String)) {
    if brokers.value.split(',').any(|b| b.trim().is_empty()) {
        fail(
            brokers.pos,
            "kafka.brokers must be a comma-separated list of host:port".into(),
        );
    }
}

fn check_properties(
    properties: &super::Located<std::collections::BTreeMap<String, String>>,
    managed: &[&str],
    fail: &mut impl FnMut(Pos, String),
) {
    for key in properties.value.keys().filter(|k| managed.contains(&k.as_str())) {
        let message = format!("kafka property '{key}' is set by sigfab itself and cannot be overridden");
        fail(properties.pos, message);
    }
}

fn check_frame(frame: &super::Located<DurationSpec>, fail: &mut impl FnMut(Pos, String)) {
    if frame.value.0.is_zero() {
        fail(frame.pos, "frame duration must be longer than zero".into());
    } else if frame.value.0.as_secs() > 60 {
        fail(frame.pos, "frame duration must be at most 60s".into());
    }
}
