//! The `band_powers` operator: per-stream, per-channel sliding windows that
//! never cross a gap, each turned into one record of Welch features.

use super::lanes::{self, LANES};
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
    /// The PSDs of a frame's windows, when their features are computed
    /// eight channels at a time (`lanes`: AVX-512, edges in one walk).
    batch: Option<Batch>,
}

/// PSDs waiting for their features, in groups of up to [`LANES`] that
/// share a plan (one group per 8 channels at one rate).
#[derive(Debug, Default)]
struct Batch {
    groups: Vec<Group>,
    /// Groups holding PSDs of the current frame.
    used: usize,
    /// One lane's values, for the fallback path.
    values: Vec<f64>,
}

#[derive(Debug)]
struct Group {
    plan: FeaturePlan,
    /// Where the channel's plan that `plan` copies lives (compared first:
    /// within a frame, the same address is the same plan).
    plan_at: usize,
    bins: usize,
    /// Lane 0's PSD, then lane 1's, ...
    rows: Vec<f64>,
    lanes: usize,
    /// The PSDs transposed (see `lanes`).
    scratch: Vec<f64>,
    /// Value-major, lanes interleaved.
    values: Vec<f64>,
}

impl Batch {
    /// The next lane's PSD row, `bins` long, for the caller to write; a
    /// new group starts when the last one is full or has another plan.
    /// Buffers are reused from frame to frame.
    fn next_row(&mut self, plan: &FeaturePlan, bins: usize) -> &mut [f64] {
        let plan_at = plan as *const FeaturePlan as usize;
        let fits = self.used > 0 && {
            let last = &self.groups[self.used - 1];
            last.lanes < LANES && last.bins == bins && (last.plan_at == plan_at || last.plan == *plan)
        };
        if !fits {
            if self.used == self.groups.len() {
                self.groups.push(Group {
                    plan: plan.clone(),
                    plan_at,
                    bins,
                    rows: Vec::new(),
                    lanes: 0,
                    scratch: Vec::new(),
                    values: Vec::new(),
                });
            }
            let group = &mut self.groups[self.used];
            if group.plan != *plan {
                group.plan = plan.clone();
            }
            group.plan_at = plan_at;
            group.bins = bins;
            group.rows.resize(LANES * bins, 0.0);
            group.scratch.resize(LANES * bins, 0.0);
            group.values.resize(LANES * plan.values(), 0.0);
            group.lanes = 0;
            self.used += 1;
        }
        let group = &mut self.groups[self.used - 1];
        let at = group.lanes * bins;
        group.lanes += 1;
        &mut group.rows[at..at + bins]
    }

    /// Writes each added PSD's features to the next of `values`, in the
    /// order they were added, and empties the batch.
    fn complete<'a>(&mut self, mut values: impl Iterator<Item = &'a mut [f64]>) {
        for group in &mut self.groups[..self.used] {
            let together = lanes::features_of_lanes(
                &group.plan,
                &group.rows,
                group.bins,
                &mut group.scratch,
                &mut group.values,
            );
            let count = group.plan.values();
            for lane in 0..group.lanes {
                let Some(out) = values.next() else {
                    break;
                };
                if together {
                    for (v, o) in out.iter_mut().take(count).enumerate() {
                        *o = group.values[LANES * v + lane];
                    }
                    continue;
                }
                // Not reached while the lanes run every plan a batch is
                // made for; one lane at a time, the same values.
                let psd = &group.rows[lane * group.bins..(lane + 1) * group.bins];
                self.values.clear();
                group.plan.compute(psd, &mut self.values);
                for (o, &v) in out.iter_mut().zip(&self.values) {
                    *o = v;
                }
            }
        }
        self.used = 0;
    }
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
        &mut self,
        (welch, plan): &mut Self::Channel,
        window: &[f64],
        first: u64,
        rate: f64,
        out: &mut Vec<f64>,
    ) {
        // Sample indices name the same samples until a discontinuity or a
        // NaN, which make the Welch cache forget.
        match &mut self.batch {
            Some(batch) => {
                // Straight into the batch: a copy less per window.
                let row = batch.next_row(plan, welch.bins());
                welch.psd_at_into(window, rate, first, row);
                out.extend(std::iter::repeat_n(f64::NAN, plan.values()));
            }
            None => plan.compute(welch.psd_at(window, rate, first), out),
        }
    }

    fn complete<'a>(&mut self, values: impl Iterator<Item = &'a mut [f64]>) {
        if let Some(batch) = &mut self.batch {
            batch.complete(values);
        }
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
                batch: (lanes::available() && features.one_walk()).then(Batch::default),
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
        run_with(BandPowers::new(BandPowersConfig::eeg_default()), data, frame)
    }

    fn run_with(mut op: BandPowers, data: &[Vec<f32>], frame: usize) -> Vec<Record> {
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

    /// The operator computing every window's features on its own, as on a
    /// CPU without AVX-512.
    fn one_channel_at_a_time() -> BandPowers {
        let mut op = BandPowers::new(BandPowersConfig::eeg_default());
        if let Ok(kernel) = op.0.kernel_mut() {
            kernel.batch = None;
        }
        op
    }

    #[test]
    fn channels_side_by_side_give_the_bits_of_one_at_a_time() {
        // 11 channels: a full batch of 8 and one of 3; a NaN in channel 4
        // puts it out of step with the others.
        let mut data = signal(11, 128 * 6);
        data[4][128 * 2 + 3] = f32::NAN;
        for frame in [1, 5, 128, data[0].len()] {
            let together = run(&data, frame);
            let alone = run_with(one_channel_at_a_time(), &data, frame);
            assert_eq!(together.len(), alone.len());
            assert!(together.len() > 11 * 10);
            for (a, b) in together.iter().zip(&alone) {
                let bits = |r: &Record| r.values.numbers().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(a), bits(b), "frame of {frame}: {}", a.values.name(0));
                assert_eq!((a.start_ns, a.end_ns), (b.start_ns, b.end_ns));
            }
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
