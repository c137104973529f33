//! A seedable generator of plausible EEG and ECG, for demos and load tests.
//!
//! EEG: per channel, delta/theta/alpha/beta oscillations with slowly varying
//! amplitude plus 1/f-like background noise, in µV. ECG: beats built from
//! five Gaussian waves (P, Q, R, S, T, after McSharry et al. 2003) with
//! respiratory heart-rate variability, baseline wander and noise, in mV, on
//! leads I, II and III (III = II − I, Einthoven). The same seed gives the same
//! samples on every machine.

use std::f64::consts::TAU;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Modality};

use super::framing::sample_boundary;
use super::{FrameSource, SourceError};
use crate::config::{Pace, SyntheticSignal, SyntheticSpec};

const EEG_NAMES: [&str; 19] = [
    "Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T3", "T4", "T5", "T6", "Fz",
    "Cz", "Pz",
];
const ECG_NAMES: [&str; 3] = ["I", "II", "III"];

/// xoshiro256** seeded through SplitMix64: small, fast, and stable across
/// platforms and versions (a dependency's generator could change).
#[derive(Clone, Debug)]
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
    }
}

/// One oscillation of an EEG channel.
#[derive(Clone, Debug)]
struct Rhythm {
    hz: f64,
    amplitude: f64,
    phase: f64,
    /// Frequency of the slow amplitude modulation (waxing and waning).
    modulation_hz: f64,
}

#[derive(Clone, Debug)]
struct EegChannel {
    rhythms: Vec<Rhythm>,
    /// Three AR(1) noise states with different time constants sum to a
    /// roughly 1/f spectrum.
    noise: [f64; 3],
    /// Each channel draws its own noise, so the samples do not depend on how
    /// the stream is cut into frames.
    rng: Rng,
}

#[derive(Clone, Debug)]
struct EcgState {
    /// Times (s) of upcoming R peaks, oldest first.
    beats: std::collections::VecDeque<f64>,
    mean_rr: f64,
}

#[derive(Clone, Debug)]
enum Generator {
    Eeg(Vec<EegChannel>),
    Ecg(EcgState),
}

#[derive(Debug)]
struct Stream {
    id: Arc<str>,
    rng: Rng,
    generator: Generator,
}

/// Emits frame `k` of every stream, then frame `k+1`, and so on.
#[derive(Debug)]
pub struct SyntheticSource {
    modality: Modality,
    layout: Arc<ChannelLayout>,
    rate: f64,
    frame_ns: u64,
    start_ns: i64,
    total_samples: Option<u64>,
    pace: Pace,
    streams: Vec<Stream>,
    frame_index: u64,
    next_stream: usize,
}

/// The channel names a synthetic source gives its frames (for config checks).
pub fn channel_names(spec: &SyntheticSpec) -> Vec<String> {
    let (modality, default_channels) = match spec.signal {
        SyntheticSignal::Eeg => (Modality::Eeg, 8),
        SyntheticSignal::Ecg => (Modality::Ecg, 3),
    };
    let channels = spec.channels.as_ref().map_or(default_channels, |c| c.value);
    layout_for(modality, channels, spec.rate())
        .channels
        .into_iter()
        .map(|c| c.name)
        .collect()
}

impl SyntheticSource {
    pub fn new(spec: &SyntheticSpec, node_name: &str) -> Result<SyntheticSource, SourceError> {
        let (modality, default_channels) = match spec.signal {
            SyntheticSignal::Eeg => (Modality::Eeg, 8),
            SyntheticSignal::Ecg => (Modality::Ecg, 3),
        };
        let channels = spec.channels.as_ref().map_or(default_channels, |c| c.value);
        let rate = spec.rate();
        let layout = Arc::new(layout_for(modality, channels, rate));
        let base_id = spec.stream_id.clone().unwrap_or_else(|| node_name.to_string());
        let count = spec.streams.value;
        let streams = (0..count)
            .map(|i| {
                let id = if count == 1 {
                    base_id.clone()
                } else {
                    format!("{base_id}-{i}")
                };
                let mut rng = Rng::new(spec.seed ^ (u64::from(i) << 32));
                let generator = match modality {
                    Modality::Eeg => Generator::Eeg((0..channels).map(|_| eeg_channel(&mut rng)).collect()),
                    _ => Generator::Ecg(EcgState {
                        beats: Default::default(),
                        mean_rr: 60.0 / (60.0 + 30.0 * rng.uniform()),
                    }),
                };
                Stream {
                    id: Arc::from(id),
                    rng,
                    generator,
                }
            })
            .collect();
        let frame_ns = u64::try_from(spec.frame.value.0.as_nanos())
            .map_err(|_| SourceError::Config("frame duration too long".into()))?;
        Ok(SyntheticSource {
            modality,
            layout,
            rate,
            frame_ns,
            start_ns: spec.start_ns.unwrap_or_else(now_ns),
            total_samples: spec
                .duration
                .as_ref()
                .map(|d| (d.value.0.as_secs_f64() * rate).round() as u64),
            pace: spec.pace,
            streams,
            frame_index: 0,
            next_stream: 0,
        })
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn layout_for(modality: Modality, channels: u16, rate: f64) -> ChannelLayout {
    let (names, unit): (&[&str], &str) = match modality {
        Modality::Eeg => (&EEG_NAMES, "uV"),
        _ => (&ECG_NAMES, "mV"),
    };
    let prefix = if modality == Modality::Eeg { "EEG" } else { "ECG" };
    ChannelLayout::new(
        (0..usize::from(channels))
            .map(|i| ChannelSpec {
                name: names
                    .get(i)
                    .map_or_else(|| format!("{prefix}{}", i + 1), |n| n.to_string()),
                unit: unit.to_string(),
                sample_rate: rate,
            })
            .collect(),
    )
}

fn eeg_channel(rng: &mut Rng) -> EegChannel {
    let bands = [(2.0, 15.0), (6.0, 8.0), (10.0, 20.0), (20.0, 4.0)];
    EegChannel {
        rhythms: bands
            .iter()
            .map(|&(hz, amplitude)| Rhythm {
                hz: hz * (0.85 + 0.3 * rng.uniform()),
                amplitude: amplitude * (0.6 + 0.8 * rng.uniform()),
                phase: TAU * rng.uniform(),
                modulation_hz: 0.05 + 0.2 * rng.uniform(),
            })
            .collect(),
        noise: [0.0; 3],
        rng: Rng::new(rng.next_u64()),
    }
}

impl EegChannel {
    fn sample(&mut self, t: f64, rate: f64) -> f64 {
        let rhythms: f64 = self
            .rhythms
            .iter()
            .map(|r| {
                let envelope = 0.75 + 0.25 * (TAU * r.modulation_hz * t + r.phase).sin();
                r.amplitude * envelope * (TAU * r.hz * t + r.phase).sin()
            })
            .sum();
        let mut background = 0.0;
        for (state, corner_hz) in self.noise.iter_mut().zip([1.0, 8.0, 40.0]) {
            let a = (-TAU * corner_hz / rate).exp();
            *state = a * *state + (1.0 - a * a).sqrt() * self.rng.normal();
            background += *state * 4.0;
        }
        rhythms + background
    }
}

/// (offset from R in s, width in s, amplitude in mV) of P, Q, R, S, T.
const ECG_WAVES: [(f64, f64, f64); 5] = [
    (-0.20, 0.025, 0.15),
    (-0.035, 0.010, -0.12),
    (0.0, 0.011, 1.10),
    (0.035, 0.010, -0.25),
    (0.28, 0.050, 0.30),
];

impl EcgState {
    /// Lead II at time t (mV).
    fn lead_ii(&mut self, t: f64, rng: &mut Rng) -> f64 {
        while self.beats.back().is_none_or(|&last| last < t + 1.0) {
            let last = self.beats.back().copied().unwrap_or(t - 0.3);
            // Respiratory sinus arrhythmia at 0.25 Hz plus a little jitter.
            let rr = self.mean_rr * (1.0 + 0.04 * (TAU * 0.25 * last).sin() + 0.01 * rng.normal());
            self.beats.push_back(last + rr);
        }
        while self.beats.front().is_some_and(|&b| b < t - 1.0) {
            self.beats.pop_front();
        }
        let waves: f64 = self
            .beats
            .iter()
            .flat_map(|&beat| {
                ECG_WAVES
                    .iter()
                    .map(move |&(offset, width, amplitude)| (t - beat - offset, width, amplitude))
            })
            .map(|(dt, width, amplitude)| amplitude * (-0.5 * (dt / width).powi(2)).exp())
            .sum();
        waves + 0.05 * (TAU * 0.3 * t).sin() + 0.01 * rng.normal()
    }
}

impl Stream {
    fn fill(&mut self, first_index: u64, count: u32, rate: f64, channels: usize, samples: &mut [f32]) {
        let count = count as usize;
        match &mut self.generator {
            Generator::Eeg(state) => {
                for (c, channel) in state.iter_mut().enumerate() {
                    for i in 0..count {
                        let t = (first_index + i as u64) as f64 / rate;
                        samples[c * count + i] = channel.sample(t, rate) as f32;
                    }
                }
            }
            Generator::Ecg(state) => {
                for i in 0..count {
                    let t = (first_index + i as u64) as f64 / rate;
                    let ii = state.lead_ii(t, &mut self.rng);
                    let leads = [0.6 * ii, ii, 0.4 * ii];
                    for (c, lead) in leads.iter().take(channels).enumerate() {
                        samples[c * count + i] = *lead as f32;
                    }
                }
            }
        }
    }
}

impl FrameSource for SyntheticSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let k = self.frame_index;
        let first = sample_boundary(k, self.frame_ns, self.rate);
        let mut end = sample_boundary(k + 1, self.frame_ns, self.rate);
        if let Some(total) = self.total_samples {
            if first >= total {
                return Ok(None);
            }
            end = end.min(total);
        }
        let count = u32::try_from(end - first).map_err(|_| SourceError::Config("frame too long".into()))?;
        let channels = self.layout.len();
        let mut samples = vec![0.0f32; channels * count as usize];
        let stream = &mut self.streams[self.next_stream];
        stream.fill(first, count, self.rate, channels, &mut samples);
        let start_ns = self.start_ns + (k * self.frame_ns) as i64;
        let frame = Frame::new(
            stream.id.clone(),
            self.modality,
            self.layout.clone(),
            start_ns,
            k,
            vec![count; channels],
            samples,
        )?;
        self.next_stream += 1;
        if self.next_stream == self.streams.len() {
            self.next_stream = 0;
            self.frame_index += 1;
        }
        Ok(Some(frame))
    }

    fn expected_frames(&self) -> Option<u64> {
        let total = self.total_samples?;
        let per_frame = self.frame_ns as f64 * self.rate / 1e9;
        Some((total as f64 / per_frame).ceil() as u64 * self.streams.len() as u64)
    }

    fn pace(&self) -> Pace {
        self.pace
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DurationSpec, Located};
    use std::time::Duration;

    fn spec(signal: SyntheticSignal, seed: u64, frame_ms: u64) -> SyntheticSpec {
        SyntheticSpec {
            signal,
            channels: None,
            sample_rate: None,
            frame: Located::new(DurationSpec(Duration::from_millis(frame_ms)), Default::default()),
            duration: Some(Located::new(
                DurationSpec(Duration::from_secs(10)),
                Default::default(),
            )),
            pace: Pace::Fast,
            seed,
            streams: Located::new(1, Default::default()),
            stream_id: None,
            start_ns: Some(0),
        }
    }

    fn collect(mut source: SyntheticSource) -> Vec<Frame> {
        std::iter::from_fn(|| source.next_frame().unwrap()).collect()
    }

    fn channel_concat(frames: &[Frame], c: usize) -> Vec<f32> {
        frames.iter().flat_map(|f| f.channel(c).to_vec()).collect()
    }

    #[test]
    fn same_seed_same_samples_different_seed_different() {
        let a = collect(SyntheticSource::new(&spec(SyntheticSignal::Eeg, 7, 40), "eeg").unwrap());
        let b = collect(SyntheticSource::new(&spec(SyntheticSignal::Eeg, 7, 40), "eeg").unwrap());
        let c = collect(SyntheticSource::new(&spec(SyntheticSignal::Eeg, 8, 40), "eeg").unwrap());
        assert_eq!(a, b);
        assert_ne!(channel_concat(&a, 0), channel_concat(&c, 0));
        assert_eq!(a.len(), 250);
        assert_eq!(a.iter().map(|f| f.counts()[0]).sum::<u32>(), 2560);
    }

    #[test]
    fn samples_do_not_depend_on_frame_duration() {
        for signal in [SyntheticSignal::Eeg, SyntheticSignal::Ecg] {
            let short = collect(SyntheticSource::new(&spec(signal, 5, 4), "s").unwrap());
            let long = collect(SyntheticSource::new(&spec(signal, 5, 1000), "s").unwrap());
            for c in 0..3 {
                assert_eq!(channel_concat(&short, c), channel_concat(&long, c));
            }
        }
    }

    #[test]
    fn eeg_has_plausible_amplitude() {
        let frames = collect(SyntheticSource::new(&spec(SyntheticSignal::Eeg, 1, 40), "eeg").unwrap());
        let x = channel_concat(&frames, 0);
        let rms = (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        assert!((5.0..100.0).contains(&rms), "EEG RMS {rms} µV");
    }

    #[test]
    fn ecg_beats_at_a_plausible_heart_rate() {
        let frames = collect(SyntheticSource::new(&spec(SyntheticSignal::Ecg, 3, 40), "ecg").unwrap());
        let lead_ii = channel_concat(&frames, 1);
        // R peaks: local maxima above 0.6 mV at least 250 ms apart.
        let mut peaks = Vec::new();
        for i in 1..lead_ii.len() - 1 {
            let is_peak = lead_ii[i] > 0.6 && lead_ii[i] >= lead_ii[i - 1] && lead_ii[i] > lead_ii[i + 1];
            if is_peak && peaks.last().is_none_or(|&p: &usize| i - p > 125) {
                peaks.push(i);
            }
        }
        let bpm = peaks.len() as f64 * 6.0;
        assert!((50.0..=100.0).contains(&bpm), "{bpm} bpm");
    }
}
