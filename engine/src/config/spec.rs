//! The typed form of a pipeline file. Doc comments here become the
//! descriptions of `sigfab schema`.

use std::borrow::Cow;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

use super::located::{Located, NodeKinds, NodeMap};

/// A Signal Fabric pipeline: sources feed operators, operators feed sinks.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Free text describing the pipeline.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub settings: Settings,
    /// Named sources of frames.
    pub sources: NodeMap<SourceKind>,
    /// Named transforms; each reads from `inputs` (sources or operators).
    #[serde(default)]
    pub operators: NodeMap<OperatorKind>,
    /// Named outputs; each reads from `inputs`.
    pub sinks: NodeMap<SinkKind>,
    /// Where rejected items go, each with its reason. Without it, rejected
    /// items are counted and logged but not stored, and count as unhandled.
    #[serde(default)]
    pub dead_letter: Option<Located<DeadLetterSpec>>,
}

/// Engine settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Capacity of every queue between two nodes, in items (frames or
    /// records). A full queue makes the upstream node wait (backpressure).
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: Located<usize>,
    /// Serve Prometheus metrics on `/metrics`, readiness on `/ready` and
    /// liveness on `/live` at this host:port (port 0 picks a free one; the
    /// log says which). Off when absent; `sigfab run --metrics` overrides.
    #[serde(default)]
    pub metrics_listen: Option<Located<String>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            queue_capacity: default_queue_capacity(),
            metrics_listen: None,
        }
    }
}

fn default_queue_capacity() -> Located<usize> {
    Located::new(16, Default::default())
}

/// Source types.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Seedable generator of plausible EEG or ECG, for demos and load tests.
    Synthetic(SyntheticSpec),
    /// Replays a recording (EDF, EDF+, BDF, WFDB) as frames.
    File(FileSourceSpec),
    /// Consumes wire-format frames from Kafka topics in a consumer group,
    /// committing offsets only past frames every sink has taken.
    Kafka(KafkaSourceSpec),
}

impl NodeKinds for SourceKind {
    const ROLE: &'static str = "source";
    const HAS_INPUTS: bool = false;
    fn names() -> &'static [&'static str] {
        &["synthetic", "file", "kafka"]
    }
}

/// How fast a source emits frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// As fast as the pipeline takes them.
    #[default]
    Fast,
    /// One frame per frame duration, by the sample clock (like a live device).
    Realtime,
}

/// Kind of synthetic signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticSignal {
    Eeg,
    Ecg,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    /// eeg or ecg.
    pub signal: SyntheticSignal,
    /// Channels per stream (default: 8 for EEG, 3 for ECG).
    #[serde(default)]
    pub channels: Option<Located<u16>>,
    /// Sample rate in Hz (default: 256 for EEG, 500 for ECG; see `rate`).
    #[serde(default)]
    pub sample_rate: Option<Located<f64>>,
    /// Frame duration, e.g. 40ms.
    #[serde(default = "default_frame")]
    pub frame: Located<DurationSpec>,
    /// Length of signal to generate, e.g. 10s; endless when absent.
    #[serde(default)]
    pub duration: Option<Located<DurationSpec>>,
    /// fast or realtime.
    #[serde(default)]
    pub pace: Pace,
    /// Seed of the generator: the same seed gives the same samples.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Number of independent streams (beds), named `<stream_id>-<n>` when
    /// more than one.
    #[serde(default = "default_streams")]
    pub streams: Located<u32>,
    /// Stream id (default: the source's name).
    #[serde(default)]
    pub stream_id: Option<String>,
    /// Time of the first sample, ns since the Unix epoch; default: now.
    #[serde(default)]
    pub start_ns: Option<i64>,
}

impl SyntheticSpec {
    /// The sample rate in Hz: `sample_rate`, or 256 for EEG and 500 for ECG.
    pub fn rate(&self) -> f64 {
        let default = match self.signal {
            SyntheticSignal::Eeg => 256.0,
            SyntheticSignal::Ecg => 500.0,
        };
        self.sample_rate.as_ref().map_or(default, |r| r.value)
    }
}

fn default_frame() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_millis(40)), Default::default())
}

fn default_seed() -> u64 {
    1
}

fn default_streams() -> Located<u32> {
    Located::new(1, Default::default())
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceSpec {
    /// The recording: an .edf/.bdf file or a WFDB record (the .hea file or
    /// its path without extension). Relative to the pipeline file's folder.
    pub path: Located<String>,
    /// Frame duration, e.g. 40ms.
    #[serde(default = "default_frame")]
    pub frame: Located<DurationSpec>,
    /// fast or realtime.
    #[serde(default)]
    pub pace: Pace,
    /// Stream id (default: the file name without extension).
    #[serde(default)]
    pub stream_id: Option<String>,
    /// Modality of the stream (default: eeg for EDF/BDF, ecg for WFDB).
    #[serde(default)]
    pub modality: Option<ModalityName>,
    /// Metadata added to every frame after the recording's own, e.g.
    /// `{ unit: ICU-A, age_band: 60-69 }` (what a bedside gateway would
    /// attach). Treated like any metadata: `deidentify` applies its policy.
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// A modality, written by its name (eeg, ecg, abp, ppg, spo2, resp, audio,
/// other); the names come from the frame model, so there is one list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModalityName(pub sigfab_operators::Modality);

impl<'de> Deserialize<'de> for ModalityName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        sigfab_operators::Modality::parse(&name)
            .map(ModalityName)
            .ok_or_else(|| {
                let names: Vec<&str> = sigfab_operators::Modality::ALL
                    .iter()
                    .map(|m| m.as_str())
                    .collect();
                serde::de::Error::custom(format!(
                    "unknown modality '{name}', expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

impl JsonSchema for ModalityName {
    fn schema_name() -> Cow<'static, str> {
        "Modality".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = sigfab_operators::Modality::ALL
            .iter()
            .map(|m| m.as_str())
            .collect();
        json_schema!({ "type": "string", "enum": names })
    }
}

/// Operator types.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    /// Forwards everything unchanged.
    Passthrough(NoParams),
    /// Keeps the named channels, in the given order.
    SelectChannels(SelectChannelsSpec),
    /// One record per frame: each channel's min, max, mean and RMS.
    FrameStats(NoParams),
    /// Rejects frames that break a limit (they go to the dead letters).
    Validate(ValidateSpec),
    /// Causal Butterworth IIR filter (low-, high-, band-pass or band-stop)
    /// as second-order sections, designed per channel sample rate exactly as
    /// `scipy.signal.butter(..., output='sos')`. State carries across frames;
    /// a NaN sample passes through as NaN and restarts its channel; a frame
    /// marked `discontinuity` restarts every channel. See docs/filters.md.
    Butterworth(ButterworthSpec),
    /// Causal mains notch (`scipy.signal.iirnotch`) at 50 or 60 Hz, with
    /// optional harmonics; same state and gap rules as `butterworth`.
    Notch(NotchSpec),
    /// `butterworth` and `notch` stages run as one cascade, in one pass over
    /// the samples: the output of the same chain of operators (up to
    /// rounding) for little more than the cost of one. Same state and gap
    /// rules as `butterworth`. See docs/filters.md.
    Iir(IirSpec),
    /// De-identifies frames and records: metadata scrubbed by a policy
    /// (HIPAA Safe Harbor by default; unknown keys dropped), stream and
    /// patient ids replaced by keyed HMAC-SHA-256 pseudonyms, timestamps
    /// shifted per patient, annotations reduced to allowed terms; emits one
    /// `deid_audit` record (counts only) when the run ends. See
    /// docs/privacy.md.
    Deidentify(DeidentifySpec),
    /// Sliding windows per channel (never across a gap) and, per window,
    /// Welch band powers (absolute and relative), spectral edge frequencies
    /// and peak frequency: one record per channel per window. See
    /// docs/features.md.
    BandPowers(BandPowersSpec),
    /// Causal R-peak detection (Pan–Tompkins-style, bounded look-back) on
    /// one ECG channel: one `ecg_beat` record per beat (RR, heart rate,
    /// delay) and `hrv` records per sliding window (SDNN, RMSSD, pNN50,
    /// LF/HF). See docs/features.md.
    EcgBeats(EcgBeatsSpec),
    /// Causal pulse detection (slope sum function, Zong et al. 2003) on one
    /// ABP or PPG channel: one `pulse` record per beat with systolic,
    /// diastolic and mean value and pulse rate. See docs/features.md.
    Pulses(PulsesSpec),
    /// SpO2 by the ratio of ratios of a red and an infrared PPG channel
    /// over sliding windows, `SpO2 = a - b·R`. See docs/features.md.
    Spo2(Spo2Spec),
    /// Copies chosen keys of de-identified frame metadata (e.g. age_band,
    /// sex, unit) onto the records of the same stream as labels
    /// (quasi-identifiers). Reads frames, which must come through a
    /// `deidentify` node, and records; emits the records. See
    /// docs/privacy.md.
    AttachLabels(AttachLabelsSpec),
    /// k-anonymity gate: per tumbling window of record time, records whose
    /// quasi-identifier labels are shared by fewer than k records are
    /// suppressed, or generalised first. See docs/privacy.md.
    KAnonymity(KAnonymitySpec),
    /// Differentially private count, sum or mean of a record value per
    /// window and group, with exact discrete Laplace or Gaussian noise,
    /// clamping bounds and a persistent budget ledger that refuses releases
    /// past the budget. See docs/privacy.md.
    DpAggregate(DpAggregateSpec),
    /// Sliding windows per channel and, per window, line length, RMS,
    /// Hjorth activity/mobility/complexity, zero crossings and the
    /// burst-suppression ratio. See docs/features.md.
    EegTimeFeatures(TimeFeaturesSpec),
    /// Per channel per window: flat-line, clipping, NaN, line-noise and
    /// out-of-range fractions, and a quality flag (`ok`, `reasons` bits).
    /// See docs/features.md.
    SignalQuality(SignalQualitySpec),
    /// Per channel per (25 ms) window: RMS, dBFS, log-mel band energies,
    /// spectral centroid. See docs/features.md.
    AudioFeatures(AudioFeaturesSpec),
    /// Causal FIR filter designed per channel sample rate exactly as
    /// `scipy.signal.firwin` (window method; tap count given, or from
    /// `kaiserord` with attenuation and transition width), linear phase with
    /// a delay of (taps - 1) / 2 samples, or minimum phase. Direct
    /// convolution, or overlap-save FFT for long kernels (adds its block
    /// length of latency). See docs/filters.md.
    Fir(FirSpec),
    /// Streaming rational resampling (polyphase FIR, the anti-aliasing
    /// filter of `scipy.signal.resample_poly`), each channel from its own
    /// rate; frames get the new rates and sample counts. See docs/filters.md.
    Resample(ResampleSpec),
    /// Re-referencing and montages: common average, linked reference,
    /// bipolar chains (or the built-in double banana), or any matrix; then
    /// optional DC removal and per-channel gain and offset. See
    /// docs/filters.md.
    Montage(MontageSpec),
}

impl NodeKinds for OperatorKind {
    const ROLE: &'static str = "operator";
    const HAS_INPUTS: bool = true;
    fn names() -> &'static [&'static str] {
        &[
            "passthrough",
            "select_channels",
            "frame_stats",
            "validate",
            "butterworth",
            "notch",
            "iir",
            "deidentify",
            "band_powers",
            "ecg_beats",
            "pulses",
            "spo2",
            "attach_labels",
            "k_anonymity",
            "dp_aggregate",
            "eeg_time_features",
            "signal_quality",
            "audio_features",
            "fir",
            "resample",
            "montage",
        ]
    }
}

/// No parameters: write `{}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectChannelsSpec {
    /// Channel names to keep.
    pub channels: Located<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateSpec {
    /// Largest allowed |sample|, in the channel's physical unit.
    #[serde(default)]
    pub max_abs: Option<Located<f32>>,
    /// Largest allowed fraction of missing (NaN) samples, 0 to 1.
    #[serde(default)]
    pub max_nan_fraction: Option<Located<f32>>,
    /// Required number of channels.
    #[serde(default)]
    pub channels: Option<usize>,
}

/// The band a Butterworth filter keeps or removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    /// Keeps frequencies below `cutoff_hz`.
    Lowpass,
    /// Keeps frequencies above `cutoff_hz`.
    Highpass,
    /// Keeps frequencies between the two `cutoff_hz` edges.
    Bandpass,
    /// Removes frequencies between the two `cutoff_hz` edges.
    Bandstop,
}

impl FilterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FilterKind::Lowpass => "lowpass",
            FilterKind::Highpass => "highpass",
            FilterKind::Bandpass => "bandpass",
            FilterKind::Bandstop => "bandstop",
        }
    }

    /// How many edge frequencies the kind takes.
    pub fn edges(self) -> usize {
        match self {
            FilterKind::Lowpass | FilterKind::Highpass => 1,
            FilterKind::Bandpass | FilterKind::Bandstop => 2,
        }
    }
}

/// One frequency in Hz, or a `[low, high]` pair.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Cutoff {
    One(f64),
    Several(Vec<f64>),
}

impl Cutoff {
    pub fn frequencies(&self) -> &[f64] {
        match self {
            Cutoff::One(f) => std::slice::from_ref(f),
            Cutoff::Several(fs) => fs,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ButterworthSpec {
    /// lowpass, highpass, bandpass or bandstop.
    pub kind: FilterKind,
    /// Filter order, 1 to 32. As in SciPy, band-pass and band-stop filters
    /// of order N have 2N poles (N second-order sections).
    pub order: Located<u32>,
    /// Edge frequency in Hz (-3 dB): one number for lowpass and highpass,
    /// `[low, high]` for bandpass and bandstop. Each must lie below the
    /// Nyquist frequency of every filtered channel, or its frames are
    /// rejected.
    pub cutoff_hz: Located<Cutoff>,
    /// Start each channel (and restart it after a gap) from the steady state
    /// for its first sample, as `scipy.signal.sosfilt_zi` does, instead of
    /// from zero: no start-up transient on a signal with an offset.
    #[serde(default)]
    pub warm_start: bool,
    /// Channels to filter (default: all); the others pass unchanged.
    #[serde(default)]
    pub channels: Option<Located<Vec<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IirSpec {
    /// The stages, in order; each is `butterworth: {kind, order, cutoff_hz}`
    /// or `notch: {frequency_hz, q, harmonics}`, with the meaning those
    /// operators give them.
    pub stages: Located<Vec<IirStageSpec>>,
    /// Start from the steady state of the whole cascade for the first
    /// sample (see butterworth).
    #[serde(default)]
    pub warm_start: bool,
    /// Channels to filter (default: all); the others pass unchanged.
    #[serde(default)]
    pub channels: Option<Located<Vec<String>>>,
}

/// One stage of an `iir` cascade.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum IirStageSpec {
    Butterworth(ButterworthStageSpec),
    Notch(NotchStageSpec),
}

/// A Butterworth design, as the `butterworth` operator's fields of the same names.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ButterworthStageSpec {
    pub kind: FilterKind,
    pub order: Located<u32>,
    pub cutoff_hz: Located<Cutoff>,
}

/// A mains notch, as the `notch` operator's fields of the same names.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotchStageSpec {
    pub frequency_hz: Located<f64>,
    #[serde(default = "default_notch_q")]
    pub q: Located<f64>,
    #[serde(default)]
    pub harmonics: Located<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotchSpec {
    /// Mains frequency: 50 or 60.
    pub frequency_hz: Located<f64>,
    /// Quality factor: the -3 dB bandwidth is frequency / q (default 30).
    #[serde(default = "default_notch_q")]
    pub q: Located<f64>,
    /// Harmonics notched as well (2f, 3f, ...), each with the same q;
    /// those at or above a channel's Nyquist frequency are left out
    /// (default 0, at most 20).
    #[serde(default)]
    pub harmonics: Located<u32>,
    /// Start from the steady state for the first sample (see butterworth).
    #[serde(default)]
    pub warm_start: bool,
    /// Channels to filter (default: all); the others pass unchanged.
    #[serde(default)]
    pub channels: Option<Located<Vec<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BandPowersSpec {
    /// Window length, e.g. 2s.
    #[serde(default = "default_feature_window")]
    pub window: Located<DurationSpec>,
    /// Time between successive windows, e.g. 250ms; at most `window`.
    #[serde(default = "default_feature_hop")]
    pub hop: Located<DurationSpec>,
    /// Welch segment length (Hann, 50 % overlap), e.g. 1s; at most `window`.
    #[serde(default = "default_feature_segment")]
    pub segment: Located<DurationSpec>,
    /// Frequency bands in order (default: delta 1-4, theta 4-8, alpha 8-13,
    /// beta 13-30, gamma 30-50 Hz). Each is `[low, high)` in Hz.
    #[serde(default)]
    pub bands: Option<Located<Vec<BandSpec>>>,
    /// `[low, high]` Hz range for the spectral edge and peak frequencies
    /// (default: from the lowest band edge to the highest).
    #[serde(default)]
    pub edge_range_hz: Option<Located<Vec<f64>>>,
    /// Channels to compute (default: all).
    #[serde(default)]
    pub channels: Option<Located<Vec<String>>>,
    /// One record per window with every channel's values.
    #[serde(default)]
    pub across_channels: bool,
    /// Drop a window's record when its signal quality is flagged.
    #[serde(default)]
    pub quality_gate: Option<QualitySpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeFeaturesSpec {
    /// Window length, e.g. 2s.
    #[serde(default = "default_feature_window")]
    pub window: Located<DurationSpec>,
    /// Time between successive windows, e.g. 250ms; at most `window`.
    #[serde(default = "default_feature_hop")]
    pub hop: Located<DurationSpec>,
    /// Channels to compute (default: all).
    #[serde(default)]
    pub channels: Option<Located<Vec<String>>>,
    /// One record per window with every channel's values.
    #[serde(default)]
    pub across_channels: bool,
    /// Drop a window's record when its signal quality is flagged.
    #[serde(default)]
    pub quality_gate: Option<QualitySpec>,
    /// |x| below this (channel unit, default 5, i.e. 5 µV) is suppressed.
    #[serde(default)]
    pub suppression_threshold: Option<Located<f64>>,
    /// Shortest suppression counted (default 500ms).
    #[serde(default)]
    pub suppression_min: Option<Located<DurationSpec>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalQualitySpec {
    /// Window length, e.g. 2s.
    #[serde(default = "default_feature_window")]
    pub window: Located<DurationSpec>,
    /// Time between successive windows, e.g. 250ms; at most `window`.
    #[serde(default = "default_feature_hop")]
    pub hop: Located<DurationSpec>,
    /// Channels to check (default: all).
    #[serde(default)]
    pub channels: Option<Located<Vec<String>>>,
    /// One record per window with every channel's values.
    #[serde(default)]
    pub across_channels: bool,
    /// Definitions and thresholds (defaults in docs/features.md).
    #[serde(default)]
    pub checks: QualitySpec,
}

/// Signal-quality definitions and thresholds; every field is optional and
/// amplitudes are in the channel's unit.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualitySpec {
    /// Shortest flat run counted (default 100ms).
    #[serde(default)]
    pub flat_min: Option<Located<DurationSpec>>,
    /// Largest step between samples of a flat run (default 0).
    #[serde(default)]
    pub flat_tolerance: Option<Located<f64>>,
    /// `[low, high]` rails of the amplifier; default: repeats of the
    /// window's extremes count as clipped.
    #[serde(default)]
    pub clip_range: Option<Located<Vec<f64>>>,
    /// Distance from a rail (or extreme) still counted as clipped (default 0).
    #[serde(default)]
    pub clip_tolerance: Option<Located<f64>>,
    /// `[low, high]` physiological range (default per modality: EEG ±500 µV,
    /// ECG ±10 mV, ABP -20 to 300 mmHg, audio ±1).
    #[serde(default)]
    pub range: Option<Located<Vec<f64>>>,
    /// Mains frequency, 50 or 60 Hz (default 50).
    #[serde(default)]
    pub mains_hz: Option<Located<f64>>,
    /// Thresholds: a value above its maximum sets its reason bit.
    #[serde(default)]
    pub max_flat_fraction: Option<Located<f64>>,
    #[serde(default)]
    pub max_clip_fraction: Option<Located<f64>>,
    #[serde(default)]
    pub max_nan_fraction: Option<Located<f64>>,
    #[serde(default)]
    pub max_line_noise_ratio: Option<Located<f64>>,
    #[serde(default)]
    pub max_out_of_range_fraction: Option<Located<f64>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioFeaturesSpec {
    /// Window length (default 25ms).
    #[serde(default = "default_audio_window")]
    pub window: Located<DurationSpec>,
    /// Time between successive windows (default 10ms); at most `window`.
    #[serde(default = "default_audio_hop")]
    pub hop: Located<DurationSpec>,
    /// Channels to compute (default: all).
    #[serde(default)]
    pub channels: Option<Located<Vec<String>>>,
    /// One record per window with every channel's values.
    #[serde(default)]
    pub across_channels: bool,
    /// Number of HTK mel bands (default 40).
    #[serde(default)]
    pub mel_bands: Option<Located<u32>>,
    /// `[low, high]` Hz of the mel filterbank (default 0 to Nyquist).
    #[serde(default)]
    pub mel_range_hz: Option<Located<Vec<f64>>>,
    /// FFT length (default: the next power of two at or above the window).
    #[serde(default)]
    pub n_fft: Option<Located<u32>>,
}

fn default_audio_window() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_millis(25)), Default::default())
}

fn default_audio_hop() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_millis(10)), Default::default())
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcgBeatsSpec {
    /// The ECG channel's name.
    pub channel: Located<String>,
    /// Emit one `ecg_beat` record per beat (default true).
    #[serde(default = "default_true")]
    pub beats: bool,
    /// Emit `hrv` records per window (default true).
    #[serde(default = "default_true")]
    pub hrv: bool,
    /// HRV window, e.g. 5min (default 300s).
    #[serde(default = "default_hrv_window")]
    pub hrv_window: Located<DurationSpec>,
    /// Time between HRV windows (default 30s); at most `hrv_window`.
    #[serde(default = "default_hrv_hop")]
    pub hrv_hop: Located<DurationSpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PulsesSpec {
    /// The ABP or PPG channel's name.
    pub channel: Located<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spo2Spec {
    /// The red PPG channel's name.
    pub red: Located<String>,
    /// The infrared PPG channel's name (same sample rate as red).
    pub ir: Located<String>,
    /// Window length (default 4s).
    #[serde(default = "default_spo2_window")]
    pub window: Located<DurationSpec>,
    /// Time between windows (default 1s); at most `window`.
    #[serde(default = "default_spo2_hop")]
    pub hop: Located<DurationSpec>,
    /// Calibration `SpO2 = a - b·R` (%): a, default 110.
    #[serde(default = "default_spo2_a")]
    pub a: Located<f64>,
    /// Calibration b, default 25.
    #[serde(default = "default_spo2_b")]
    pub b: Located<f64>,
}

fn default_hrv_window() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_secs(300)), Default::default())
}

fn default_hrv_hop() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_secs(30)), Default::default())
}

fn default_spo2_window() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_secs(4)), Default::default())
}

fn default_spo2_hop() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_secs(1)), Default::default())
}

fn default_spo2_a() -> Located<f64> {
    Located::new(110.0, Default::default())
}

fn default_spo2_b() -> Located<f64> {
    Located::new(25.0, Default::default())
}

/// One named frequency band.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BandSpec {
    /// Prefix of the band's values, e.g. alpha gives alpha_abs, alpha_rel.
    pub name: String,
    /// `[low, high]` in Hz.
    pub hz: [f64; 2],
}

/// Window of an FIR design.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FirWindowName {
    #[default]
    Hamming,
    Hann,
    Blackman,
    /// Needs `kaiser_beta`.
    Kaiser,
}

/// How an FIR filter is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FirMethodName {
    /// Direct below the measured crossover (docs/filters.md), FFT above.
    #[default]
    Auto,
    /// Direct convolution: no added latency.
    Direct,
    /// Overlap-save FFT: adds one block of latency.
    Fft,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirSpec {
    /// lowpass, highpass, bandpass or bandstop.
    pub kind: FilterKind,
    /// Edge frequency in Hz (-6 dB, the window method's): one number for
    /// lowpass and highpass, `[low, high]` for bandpass and bandstop.
    pub cutoff_hz: Located<Cutoff>,
    /// Number of taps; highpass and bandstop need an odd number. Give
    /// either `taps` or `attenuation_db` with `transition_hz`.
    #[serde(default)]
    pub taps: Option<Located<u32>>,
    /// Window for `taps` (default hamming).
    #[serde(default)]
    pub window: Option<Located<FirWindowName>>,
    /// Kaiser window shape, with `window: kaiser`.
    #[serde(default)]
    pub kaiser_beta: Option<Located<f64>>,
    /// Stop-band attenuation in dB for a Kaiser design (`kaiserord`).
    #[serde(default)]
    pub attenuation_db: Option<Located<f64>>,
    /// Transition width in Hz for a Kaiser design.
    #[serde(default)]
    pub transition_hz: Option<Located<f64>>,
    /// Minimum phase (`scipy.signal.minimum_phase`, homomorphic): about half
    /// the taps and delay, the square root of the linear-phase magnitude.
    #[serde(default)]
    pub minimum_phase: bool,
    /// auto, direct or fft.
    #[serde(default)]
    pub method: FirMethodName,
    /// Channels to filter (default: all); the others pass unchanged.
    #[serde(default)]
    pub channels: Option<Located<Vec<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResampleSpec {
    /// Output rate in Hz for every channel; the factors are the closest
    /// fraction with numerator and denominator at most 1000.
    #[serde(default)]
    pub to_hz: Option<Located<f64>>,
    /// Up-sampling factor (with `down`), 1 to 1000.
    #[serde(default)]
    pub up: Option<Located<u32>>,
    /// Down-sampling factor (with `up`), 1 to 1000.
    #[serde(default)]
    pub down: Option<Located<u32>>,
}

/// The kind of montage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MontageKindName {
    /// `channels` (default all) minus their mean.
    CommonAverage,
    /// Every channel but `reference` minus the mean of `reference`.
    Linked,
    /// `A-B` for each of `pairs`.
    Bipolar,
    /// The 18-channel longitudinal bipolar montage of the 10-20 system.
    DoubleBanana,
    /// `rows`: named weighted sums of input channels.
    Matrix,
}

/// One output channel of a matrix montage.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MontageRow {
    /// Output channel name.
    pub name: String,
    /// Input channel name to weight.
    pub weights: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MontageSpec {
    /// common_average, linked, bipolar, double_banana or matrix.
    pub kind: Located<MontageKindName>,
    /// Channels averaged (common_average; default all).
    #[serde(default)]
    pub channels: Option<Located<Vec<String>>>,
    /// Reference channels (linked), e.g. [A1, A2].
    #[serde(default)]
    pub reference: Option<Located<Vec<String>>>,
    /// `[A, B]` pairs (bipolar), each giving channel `A-B`.
    #[serde(default)]
    pub pairs: Option<Located<Vec<[String; 2]>>>,
    /// Output rows (matrix).
    #[serde(default)]
    pub rows: Option<Located<Vec<MontageRow>>>,
    /// Gain per output channel name (default 1).
    #[serde(default)]
    pub gain: Option<Located<std::collections::BTreeMap<String, f64>>>,
    /// Offset per output channel name, added after the gain (default 0).
    #[serde(default)]
    pub offset: Option<Located<std::collections::BTreeMap<String, f64>>>,
    /// Causal DC removal: time constant of a one-pole running mean
    /// subtracted from each output, e.g. 10s.
    #[serde(default)]
    pub dc_removal: Option<Located<DurationSpec>>,
}

fn default_feature_window() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_secs(2)), Default::default())
}

fn default_feature_hop() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_millis(250)), Default::default())
}

fn default_feature_segment() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_secs(1)), Default::default())
}

fn default_notch_q() -> Located<f64> {
    Located::new(30.0, Default::default())
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeidentifySpec {
    /// File holding the secret pseudonymisation key (at least 32 bytes; a
    /// final newline is ignored), e.g. made by
    /// `head -c 32 /dev/urandom | base64 > deid.key`. Relative to the
    /// pipeline file's folder. Read when the pipeline runs, not when it is
    /// validated. Give exactly one of key_file and key_env.
    #[serde(default)]
    pub key_file: Option<Located<String>>,
    /// Environment variable holding the secret key (at least 32 bytes).
    #[serde(default)]
    pub key_env: Option<Located<String>>,
    /// Version of the key, written into every pseudonym (`p<version>-…`)
    /// so keys can rotate; pseudonyms of different versions never match.
    pub key_version: Located<u32>,
    /// A key written into the pipeline itself is refused: pipeline files
    /// are shared and versioned. Its value is never kept.
    #[serde(default, alias = "secret")]
    #[schemars(skip)]
    pub key: Option<Located<InlineSecret>>,
    /// What happens to each metadata key and to annotations.
    #[serde(default)]
    pub policy: PolicySpec,
    /// How timestamps are shifted.
    #[serde(default)]
    pub date_shift: DateShiftSpec,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachLabelsSpec {
    /// Frame metadata keys copied as record labels, e.g. [age_band, sex,
    /// unit]. Only what the upstream `deidentify` policy let through (kept
    /// or generalised) can be copied.
    pub keys: Located<Vec<String>>,
    /// Records held per stream until its first frame arrives (default
    /// 1024); beyond that they leave without labels.
    #[serde(default = "default_max_held")]
    pub max_held: Located<usize>,
}

fn default_max_held() -> Located<usize> {
    Located::new(1024, Default::default())
}

/// What the k-anonymity gate does with a class smaller than k.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KAnonymityAction {
    /// Withhold its records.
    #[default]
    Suppress,
    /// Coarsen quasi-identifiers (age band → 20-year band → *, others →
    /// *), one column at a time, then suppress what is still below k.
    #[serde(alias = "generalize")]
    Generalise,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KAnonymitySpec {
    /// Smallest class size released, at least 2.
    pub k: Located<usize>,
    /// Record labels forming the equivalence classes, e.g. [age_band, sex,
    /// unit]. A record without one counts as `*` for it.
    pub quasi_identifiers: Located<Vec<String>>,
    /// Tumbling window of record time (start_ns), e.g. 1h. Records are held
    /// until a record of a later window arrives, or the run ends.
    pub window: Located<DurationSpec>,
    /// suppress (default) or generalise.
    #[serde(default)]
    pub action: KAnonymityAction,
    /// Most records held per window (default 100000); reaching it decides
    /// the window early and starts a new batch.
    #[serde(default = "default_max_records")]
    pub max_records: Located<usize>,
}

fn default_max_records() -> Located<usize> {
    Located::new(100_000, Default::default())
}

/// The released statistic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DpStatistic {
    Count,
    Sum,
    /// Noisy sum / noisy count, each with half of epsilon (and delta).
    Mean,
}

/// The noise distribution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DpMechanism {
    /// Discrete Laplace: pure epsilon-DP.
    #[default]
    Laplace,
    /// Discrete Gaussian: (epsilon, delta)-DP; needs delta.
    Gaussian,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DpAggregateSpec {
    /// count, sum or mean.
    pub statistic: Located<DpStatistic>,
    /// The record value summed or averaged (sum and mean only).
    #[serde(default)]
    pub value: Option<Located<String>>,
    /// Clamping bounds [lower, upper] of the value (sum and mean only).
    #[serde(default)]
    pub bounds: Option<Located<Vec<f64>>>,
    /// Grid step values are snapped to before summing (default: the
    /// largest power of two at most (upper - lower) / 4096).
    #[serde(default)]
    pub granularity: Option<Located<f64>>,
    /// laplace (default) or gaussian.
    #[serde(default)]
    pub mechanism: DpMechanism,
    /// Privacy loss charged per window release (all groups together).
    pub epsilon: Located<f64>,
    /// Gaussian only: delta per window release, between 0 and 1.
    #[serde(default)]
    pub delta: Option<Located<f64>>,
    /// The record label that names the group, e.g. unit.
    pub group_by: Located<String>,
    /// Every group, listed in advance (public): each is released in every
    /// window, empty or not; records of other groups are dropped.
    pub groups: Located<Vec<String>>,
    /// Tumbling window of record time, e.g. 1h.
    pub window: Located<DurationSpec>,
    /// Records one stream may add per window (default 1); the sensitivity
    /// scales with it.
    #[serde(default = "default_max_contributions")]
    pub max_contributions: Located<u32>,
    /// The persistent budget ledger.
    pub ledger: DpLedgerSpec,
}

fn default_max_contributions() -> Located<u32> {
    Located::new(1, Default::default())
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DpLedgerSpec {
    /// Ledger file (JSON Lines, appended and fsynced before every release).
    /// Relative to the pipeline file's folder.
    pub path: Located<String>,
    /// Name of the budget in the ledger; nodes and runs that name the same
    /// budget spend from the same total.
    pub budget: Located<String>,
    /// Total epsilon of the budget over all releases ever (basic
    /// composition).
    pub total_epsilon: Located<f64>,
    /// Total delta (Gaussian; default 0).
    #[serde(default)]
    pub total_delta: Option<Located<f64>>,
}

/// Whatever was written as an inline key, thrown away unread.
#[derive(Debug, Default)]
pub struct InlineSecret;

impl<'de> Deserialize<'de> for InlineSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| InlineSecret)
    }
}

/// A de-identification policy: a base list of keys plus overrides.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Rules to start from: safe_harbor (default) or none.
    #[serde(default)]
    pub base: PolicyBase,
    /// Version of this policy, reported in the audit record (default 1).
    #[serde(default)]
    pub version: Option<u32>,
    /// Metadata keys and their action (keep, drop, generalise,
    /// pseudonymise), added to or overriding the base. Keys named nowhere
    /// are dropped.
    #[serde(default)]
    pub keys: std::collections::BTreeMap<String, KeyAction>,
    #[serde(default)]
    pub annotations: AnnotationsSpec,
    /// Keys whose value identifies the patient, first present wins: it
    /// drives the patient pseudonym and the date shift (default: patient_id,
    /// mrn, medical_record_number, subject_id, patient).
    #[serde(default)]
    pub patient_keys: Option<Located<Vec<String>>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyBase {
    /// HIPAA Safe Harbor's 18 identifier kinds under common key names.
    #[default]
    SafeHarbor,
    /// No rules: every key must be listed in `keys` or it is dropped.
    None,
}

/// The treatment of one metadata key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyAction {
    /// Pass through unchanged.
    Keep,
    /// Remove.
    Drop,
    /// Coarsen: ages (over 89 → "90+"), dates (year), ZIP (3 digits);
    /// annotations: allow-list. Values without a known coarse form are dropped.
    #[serde(alias = "generalize")]
    Generalise,
    /// Replace by a keyed pseudonym.
    #[serde(alias = "pseudonymize")]
    Pseudonymise,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnotationsSpec {
    /// Annotation texts kept verbatim (whole text, case-insensitive), in
    /// addition to the base's event terms (Sleep stage W, Seizure, T0, ...).
    #[serde(default)]
    pub allow: Vec<String>,
    /// What happens to any other annotation text: redact (default; the
    /// onset stays, the text becomes "[redacted]") or drop.
    #[serde(default)]
    pub unlisted: UnlistedAnnotationSpec,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnlistedAnnotationSpec {
    #[default]
    Redact,
    Drop,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateShiftSpec {
    /// Largest shift either way, in days (default 364).
    #[serde(default = "default_max_shift_days")]
    pub max_days: Located<u32>,
    /// weeks (default: keeps weekday and time of day) or days (keeps time
    /// of day only).
    #[serde(default)]
    pub unit: ShiftUnit,
}

impl Default for DateShiftSpec {
    fn default() -> Self {
        Self {
            max_days: default_max_shift_days(),
            unit: ShiftUnit::default(),
        }
    }
}

fn default_max_shift_days() -> Located<u32> {
    Located::new(364, Default::default())
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShiftUnit {
    #[default]
    Weeks,
    Days,
}

/// Sink types.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// Writes items to a file, as JSON Lines or binary wire format.
    File(FileSinkSpec),
    /// Writes items to standard output.
    Stdout(StdoutSpec),
    /// Produces items to a Kafka topic (idempotent producer, key = stream id).
    Kafka(KafkaSinkSpec),
    /// Encrypted archive: per-stream segments under per-patient keys (crypto-shredding).
    Archive(ArchiveSinkSpec),
}

impl NodeKinds for SinkKind {
    const ROLE: &'static str = "sink";
    const HAS_INPUTS: bool = true;
    fn names() -> &'static [&'static str] {
        &["file", "stdout", "kafka", "archive"]
    }
}

/// Wire encodings on Kafka.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WireEncoding {
    /// Binary wire format v1 (compact, checksummed).
    #[default]
    Binary,
    /// JSON wire format v1 (for low-rate devices and debugging).
    Json,
}

/// Where a consumer group with no committed offset starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    #[default]
    Earliest,
    Latest,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// Bootstrap brokers, comma-separated host:port.
    pub brokers: Located<String>,
    /// Topics to consume.
    pub topics: Located<Vec<String>>,
    /// Consumer group: instances with the same group share the partitions.
    pub group: Located<String>,
    #[serde(default)]
    pub encoding: WireEncoding,
    /// Topic that receives undecodable records, with the reason and their
    /// source topic, partition and offset in headers.
    pub dead_letter_topic: Located<String>,
    /// Where a group with no committed offset starts.
    #[serde(default)]
    pub start: StartFrom,
    /// Unacknowledged records per partition at which fetching from it pauses
    /// (it resumes at half).
    #[serde(default = "default_max_unacked")]
    pub max_unacked: Located<usize>,
    /// How often handled offsets are committed.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: Located<DurationSpec>,
    /// librdkafka properties passed through (e.g. security.protocol,
    /// sasl.mechanism, ssl.ca.location).
    #[serde(default)]
    pub properties: Located<std::collections::BTreeMap<String, String>>,
    /// Open records sealed by a Kafka sink with `encrypt` (docs/security.md); a record that
    /// does not open, or repeats or leaves its stream's position, is dead-lettered.
    #[serde(default)]
    pub encrypt: Option<RecordKeySpec>,
}

/// The master key of encrypted Kafka records (docs/security.md, "Encrypted Kafka records"):
/// 64 hex digits (32 bytes), e.g. `head -c 32 /dev/urandom | xxd -p -c 64 > kafka.key`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordKeySpec {
    /// File holding the master key (64 hex digits; a final newline is ignored). Relative to
    /// the pipeline file's folder. Read when the pipeline runs. Give exactly one of key_file
    /// and key_env.
    #[serde(default)]
    pub key_file: Option<Located<String>>,
    /// Environment variable holding the master key (64 hex digits).
    #[serde(default)]
    pub key_env: Option<Located<String>>,
    /// Version of the master key (at least 1), written into every record; a reader needs the
    /// same version.
    pub key_version: Located<u32>,
    /// A key written into the pipeline itself is refused. Its value is never kept.
    #[serde(default, alias = "secret")]
    #[schemars(skip)]
    pub key: Option<Located<InlineSecret>>,
}

fn default_max_unacked() -> Located<usize> {
    Located::new(1000, Default::default())
}

fn default_commit_interval() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_millis(100)), Default::default())
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkSpec {
    /// Bootstrap brokers, comma-separated host:port.
    pub brokers: Located<String>,
    pub topic: Located<String>,
    #[serde(default)]
    pub encoding: WireEncoding,
    /// How long the producer waits to fill a batch (librdkafka linger.ms).
    #[serde(default = "default_linger")]
    pub linger: Located<DurationSpec>,
    /// librdkafka properties passed through.
    #[serde(default)]
    pub properties: Located<std::collections::BTreeMap<String, String>>,
    /// Seal each record under a per-stream key derived from this master key
    /// (docs/security.md, "Encrypted Kafka records").
    #[serde(default)]
    pub encrypt: Option<RecordKeySpec>,
}

fn default_linger() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_millis(5)), Default::default())
}

/// File encodings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One wire-format JSON object per line.
    #[default]
    Jsonl,
    /// Concatenated binary wire-format messages.
    Binary,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkSpec {
    /// Output file, created or truncated. Relative to the pipeline file's
    /// folder; missing folders are created.
    pub path: Located<String>,
    #[serde(default)]
    pub format: FileFormat,
    /// fsync before acknowledging, so acknowledged items survive a power
    /// loss (default true).
    #[serde(default = "default_true")]
    pub fsync: bool,
}

fn default_true() -> bool {
    true
}

/// The encrypted archive sink (`docs/security.md`): each stream's items, as binary wire
/// messages, sealed into segments under a key derived from that stream's patient key; the
/// patient key lives in the keystore, wrapped for the recipients. An item is acknowledged
/// only once its segment is finished, fsynced and renamed into place.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSinkSpec {
    /// Folder of the segments (`<patient>/<key id>-<sequence>.sfa`). Relative to the pipeline
    /// file's folder.
    pub path: Located<String>,
    /// Keystore folder: one entry per patient key, wrapped for the recipients.
    pub keystore: Located<String>,
    /// Recipient files (`sigfab keygen`), 1 to 255: who can decrypt.
    pub recipients: Located<Vec<String>>,
    /// A segment ends once it holds this many plaintext bytes (default 16 MiB).
    #[serde(default = "default_segment_bytes")]
    pub max_segment_bytes: Located<u64>,
    /// A segment ends once its frames span this much signal time (default 10m).
    #[serde(default = "default_segment_duration")]
    pub max_segment_duration: Located<DurationSpec>,
    /// A segment ends at most this long (wall clock) after its first item, so items wait at
    /// most about this long for their acknowledgement (default 2s).
    #[serde(default = "default_flush_interval")]
    pub flush_interval: Located<DurationSpec>,
    /// Items held unacknowledged in open segments, all streams together, at which every open
    /// segment is ended (default 4096).
    #[serde(default = "default_max_pending")]
    pub max_pending: Located<usize>,
    /// Accept only stream ids made by `deidentify` (`p<version>-<32 hex>`, and its
    /// `deid-audit-…` stream): they name keystore entries and folders, so a raw identifier
    /// must never reach them. Set false only when stream ids are pseudonyms already.
    #[serde(default = "default_true")]
    pub pseudonyms_only: bool,
    /// How samples are stored inside segments (docs/security.md, "Segment plaintext"):
    /// `none` (binary wire messages, the default), `lossless` or `lossy`.
    #[serde(default)]
    pub codec: Located<ArchiveCodec>,
    /// Seconds of samples per codec block and stream, 1 to 10 (default 10); ignored with
    /// `codec: none`.
    #[serde(default = "default_block_seconds")]
    pub block_seconds: Located<u32>,
    /// The PRDN bound of `codec: lossy`, in percent (required there, refused elsewhere): a
    /// block that cannot be coded within it is coded losslessly instead.
    #[serde(default)]
    pub max_prdn_percent: Option<Located<f64>>,
    /// Declared quantisation step per channel name (physical units), for f32 samples known
    /// to be multiples of it; without one the sink infers each block's grid from its samples.
    #[serde(default)]
    pub resolution: Option<Located<std::collections::BTreeMap<String, f64>>>,
}

/// Sample coding inside archive segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveCodec {
    /// Binary wire-format v1 messages, uncompressed.
    #[default]
    None,
    /// Samples coded losslessly in blocks; a block off every exact grid stays raw.
    Lossless,
    /// PCA across channels within `max_prdn_percent`, else lossless, else raw.
    Lossy,
}

fn default_block_seconds() -> Located<u32> {
    Located::new(10, Default::default())
}

fn default_segment_bytes() -> Located<u64> {
    Located::new(16 << 20, Default::default())
}

fn default_segment_duration() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_secs(600)), Default::default())
}

fn default_flush_interval() -> Located<DurationSpec> {
    Located::new(DurationSpec(Duration::from_secs(2)), Default::default())
}

fn default_max_pending() -> Located<usize> {
    Located::new(4096, Default::default())
}

/// Standard output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StdoutFormat {
    /// One short human-readable line per item.
    #[default]
    Summary,
    /// One wire-format JSON object per line.
    Jsonl,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutSpec {
    #[serde(default)]
    pub format: StdoutFormat,
}

/// The dead-letter sink: one JSON line per rejected item, with the reason,
/// the node that rejected it and the item itself.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSpec {
    /// Output file (JSON Lines). Relative to the pipeline file's folder.
    pub path: Located<String>,
    /// fsync before acknowledging (default true).
    #[serde(default = "default_true")]
    pub fsync: bool,
}

/// A duration written as a number and a unit: `40ms`, `1.5s`, `250us`,
/// `2m`, `1h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    pub fn parse(text: &str) -> Result<DurationSpec, String> {
        let text = text.trim();
        let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not a duration: write a number and a unit, e.g. 40ms or 2s"))?;
        let seconds_per_unit = match unit.trim() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("'{text}' has no unit: write e.g. {text}ms or {text}s")),
            other => {
                return Err(format!(
                    "unknown duration unit '{other}' (use ns, us, ms, s, m or h)"
                ))
            }
        };
        let seconds = value * seconds_per_unit;
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(format!("'{text}' is not a valid duration"));
        }
        Ok(DurationSpec(Duration::from_secs_f64(seconds)))
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DurationSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?\\s*(ns|us|µs|ms|s|m|min|h)$",
            "description": "A number and a unit, e.g. 40ms, 1.5s, 2m."
        })
    }
}

/// A section is a map from node names to node bodies; each body is one of
/// the kind's type keys, plus `inputs` where the section has inputs.
impl<K: NodeKinds> JsonSchema for NodeMap<K> {
    fn schema_name() -> Cow<'static, str> {
        format!("{}Nodes", K::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut body = K::json_schema(generator);
        if K::HAS_INPUTS {
            add_inputs_property(&mut body);
        }
        json_schema!({
            "type": "object",
            "additionalProperties": body,
        })
    }
}

fn add_inputs_property(body: &mut Schema) {
    let inputs = serde_json::json!({
        "type": "array",
        "items": { "type": "string" },
        "description": "Names of the sources or operators this node reads from."
    });
    let Some(variants) = body.get_mut("oneOf").and_then(|v| v.as_array_mut()) else {
        return;
    };
    for variant in variants {
        if let Some(properties) = variant.get_mut("properties").and_then(|p| p.as_object_mut()) {
            properties.insert("inputs".into(), inputs.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(DurationSpec::parse("40ms").unwrap().0, Duration::from_millis(40));
        assert_eq!(
            DurationSpec::parse("1.5 s").unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!(DurationSpec::parse("2m").unwrap().0, Duration::from_secs(120));
        assert!(DurationSpec::parse("40").unwrap_err().contains("no unit"));
        assert!(DurationSpec::parse("4 parsecs")
            .unwrap_err()
            .contains("unknown duration unit"));
        assert!(DurationSpec::parse("-1s").is_err());
    }
}
