//! The `band_powers` operator: per-stream, per-channel sliding windows that
//! never cross a gap, each turned into one record of Welch features.

use super::quality::QualityConfig;
use super::welch::{Band, FeaturePlan, SpectralFeatures, Welch, WelchError};
use super::windowed::{WindowConfig, WindowKernel, Windowed};
use crate::{ChannelSpec, Item, Modality, Operator, Output, Rejected};

/// What the operator computes; durations are in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct BandPowersConfig {
    pub window_s: f64,
    pub hop_s: f64,
    /// Welch segment length (`nperseg` = round(segment_s · rate)).
    pub segment_s: f64,
    pub bands: Vec<Band>,
    /// `[low, high)` for SEF and peak frequency; default: the bands' span.
    pub edge_range_hz: Option<(f64, f64)>,
    /// Channels to compute (default: all).
    pub channels: Option<Vec<String>>,
}

impl BandPowersConfig {
    /// 2 s windows every 250 ms, 1 s segments, the default EEG bands.
    pub fn eeg_default() -> Self {
        Self {
            window_s: 2.0,
            hop_s: 0.25,
            segment_s: 1.0,
            bands: Band::eeg_defaults(),
            edge_range_hz: None,
            channels: None,
        }
    }
}

/// Welch spectral features as a [`WindowKernel`]: one estimator (plan,
/// scratch, segment cache) per channel.
#[derive(Debug)]
pub struct SpectralKernel {
    features: SpectralFeatures,
    segment_s: f64,
}

impl WindowKernel for SpectralKernel {
    /// The channel's estimator and its feature bin ranges.
    type Channel = (Welch, FeaturePlan);

    fn kind(&self) -> &'static str {
        "band_powers"
    }

    fn names(&self) -> Vec<String> {
        self.features.names()
    }

    fn channel(
        &self,
        spec: &ChannelSpec,
        _modality: Modality,
        window: usize,
    ) -> Result<Self::Channel, String> {
        let segment = (self.segment_s * spec.sample_rate).round() as usize;
        if segment > window {
            return Err("band_powers window, hop or segment too short for a channel's rate".into());
        }
        let welch = Welch::new(segment).map_err(|e| format!("band_powers: {e}"))?;
        let plan = self
            .features
            .plan(welch.bins(), spec.sample_rate / segment as f64);
        Ok((welch, plan))
    }

    fn forget(&self, (welch, _): &mut Self::Channel) {
        welch.forget();
    }

    fn compute(
        &self,
        (welch, plan): &mut Self::Channel,
        window: &[f64],
        first: u64,
        rate: f64,
        out: &mut Vec<f64>,
    ) {
        // Sample indices name the same samples until a discontinuity or a
        // NaN, which make the Welch cache forget.
        let psd = welch.psd_at(window, rate, first);
        plan.compute(psd, out);
    }
}

/// Sliding-window Welch band powers; see `docs/features.md`.
#[derive(Debug)]
pub struct BandPowers(Windowed<SpectralKernel>);

impl BandPowers {
    pub fn new(config: BandPowersConfig) -> Self {
        Self::with_windows(config, false, None)
    }

    /// As [`BandPowers::new`], with the shared window options: one record
    /// per window across channels, and a quality gate.
    pub fn with_windows(
        config: BandPowersConfig,
        across_channels: bool,
        quality_gate: Option<QualityConfig>,
    ) -> Self {
        let kernel = SpectralFeatures::new(config.bands.clone(), config.edge_range_hz)
            .map(|features| SpectralKernel {
                features,
                segment_s: config.segment_s,
            })
            .map_err(|e: WelchError| format!("band_powers: {e}"));
        let windows = WindowConfig {
            window_s: config.window_s,
            hop_s: config.hop_s,
            channels: config.channels.clone(),
            across_channels,
            quality_gate,
        };
        Self(Windowed::new(windows, kernel, "band_powers"))
    }
}

impl Operator for BandPowers {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        self.0.process(item, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelLayout, Frame, Record};
    use std::sync::Arc;

    const RATE: f64 = 128.0;

    fn signal(channels: usize, n: usize) -> Vec<Vec<f32>> {
        (0..channels)
            .map(|c| {
                (0..n)
                    .map(|i| {
                        let t = i as f64 / RATE;
                        let x = (2.0 * std::f64::consts::PI * (6.0 + 3.0 * c as f64) * t).sin() * 20.0
                            + (i as f64 * 0.37 + c as f64).sin() * 5.0;
                        x as f32
                    })
                    .collect()
            })
            .collect()
    }

    fn layout(channels: usize) -> Arc<ChannelLayout> {
        Arc::new(ChannelLayout::new(
            (0..channels)
                .map(|i| ChannelSpec {
                    name: format!("C{i}"),
                    unit: "uV".into(),
                    sample_rate: RATE,
                })
                .collect(),
        ))
    }

    /// Runs `data` cut into frames of `frame` samples.
    fn run(data: &[Vec<f32>], frame: usize) -> Vec<Record> {
        let mut op = BandPowers::new(BandPowersConfig::eeg_default());
        let layout = layout(data.len());
        let mut out = Output::default();
        let mut records = Vec::new();
        for (seq, start) in (0..data[0].len()).step_by(frame).enumerate() {
            let end = (start + frame).min(data[0].len());
            let counts = vec![(end - start) as u32; data.len()];
            let samples = data.iter().flat_map(|c| c[start..end].iter().copied()).collect();
            let start_ns = 1_000_000_000 + (start as f64 * 1e9 / RATE).round() as i64;
            let f = Frame::new(
                "s".into(),
                Modality::Eeg,
                layout.clone(),
                start_ns,
                seq as u64,
                counts,
                samples,
            )
            .unwrap();
            op.process(Item::Frame(f), &mut out).unwrap();
            records.extend(out.drain().map(|i| match i {
                Item::Record(r) => r,
                Item::Frame(_) => panic!("expected records"),
            }));
        }
        records
    }

    fn without_sequence(records: Vec<Record>) -> Vec<Record> {
        records.into_iter().map(|r| Record { sequence: 0, ..r }).collect()
    }

    #[test]
    fn records_do_not_depend_on_frame_size() {
        let data = signal(3, 128 * 5);
        let whole = without_sequence(run(&data, data[0].len()));
        // 2 s windows every 250 ms over 5 s: 1 + 12 per channel.
        assert_eq!(whole.len(), 3 * 13);
        assert_eq!(whole[0].end_ns - whole[0].start_ns, 2_000_000_000);
        assert_eq!(whole[0].values.name(0), "C0.delta_abs");
        assert_eq!(whole[0].values.last().map(|v| v.1), Some(2.0));
        // 1 sample (~7 ms at 128 Hz), 40 ms (5 samples), and an odd 7 samples.
        for frame in [1, 5, 7] {
            assert_eq!(
                without_sequence(run(&data, frame)),
                whole,
                "frame of {frame} samples"
            );
        }
    }

    #[test]
    fn no_window_spans_a_nan() {
        let mut data = signal(2, 128 * 6);
        let gap_at = 128 * 3 + 10;
        data[0][gap_at] = f32::NAN;
        let records = run(&data, 5);
        let gap_ns = 1_000_000_000 + (gap_at as f64 * 1e9 / RATE).round() as i64;
        let c0: Vec<&Record> = records
            .iter()
            .filter(|r| r.values.name(0).starts_with("C0."))
            .collect();
        let c1 = records.len() - c0.len();
        assert!(c0.iter().all(|r| r.end_ns <= gap_ns || r.start_ns > gap_ns));
        assert!(c0.len() < c1, "the gap costs channel 0 windows");
        assert!(records
            .iter()
            .all(|r| r.values.iter().all(|(_, v)| v.is_finite())));
    }

    #[test]
    fn missing_channel_is_rejected() {
        let mut config = BandPowersConfig::eeg_default();
        config.channels = Some(vec!["nope".into()]);
        let mut op = BandPowers::new(config);
        let f = Frame::new("s".into(), Modality::Eeg, layout(1), 0, 0, vec![1], vec![0.0]).unwrap();
        let err = op.process(Item::Frame(f), &mut Output::default()).unwrap_err();
        assert!(err.reason.contains("band_powers.channels"));
    }
}
