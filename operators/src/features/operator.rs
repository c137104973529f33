//! The `band_powers` operator: per-stream, per-channel sliding windows that
//! never cross a gap, each turned into one record of Welch features.

use std::collections::HashMap;
use std::sync::Arc;

use super::welch::{Band, SpectralFeatures, Welch, WelchError};
use crate::{ChannelLayout, Frame, Item, Operator, Output, Record, Rejected};

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

/// One channel's ring buffer and timing. The ring is allocated once per
/// layout; a NaN sample or a discontinuity empties it, so a window only
/// ever holds contiguous valid samples.
#[derive(Debug)]
struct ChannelWindow {
    index: usize,
    rate: f64,
    ring: Vec<f32>,
    /// Next write position in `ring`.
    head: usize,
    /// Valid samples held (up to the ring length).
    filled: usize,
    /// Samples to take before the next window is emitted.
    until_emit: usize,
    hop: usize,
    /// Time of sample 0 of `count`; sample times are derived from this one
    /// anchor so they do not depend on how the stream was cut into frames.
    anchor_ns: i64,
    count: u64,
    welch: Welch,
    /// Value names "<channel>.<feature>", built once per layout.
    names: Vec<Arc<str>>,
}

impl ChannelWindow {
    fn reset_buffer(&mut self) {
        self.filled = 0;
        self.head = 0;
        self.until_emit = self.ring.len();
        self.welch.forget();
    }

    fn sample_ns(&self, k: u64) -> i64 {
        self.anchor_ns + (k as f64 * 1e9 / self.rate).round() as i64
    }

    /// Takes one sample; true when a window ends with it.
    fn push(&mut self, x: f32) -> bool {
        self.count += 1;
        if x.is_nan() {
            self.reset_buffer();
            return false;
        }
        self.ring[self.head] = x;
        self.head = (self.head + 1) % self.ring.len();
        self.filled = (self.filled + 1).min(self.ring.len());
        self.until_emit -= 1;
        if self.until_emit == 0 {
            self.until_emit = self.hop;
            return true;
        }
        false
    }
}

/// One stream's layout and windows, or why the layout cannot be handled.
#[derive(Debug)]
struct StreamWindows {
    layout: Arc<ChannelLayout>,
    channels: Result<Vec<ChannelWindow>, String>,
}

/// Sliding-window Welch band powers; see `docs/features.md`.
#[derive(Debug)]
pub struct BandPowers {
    config: BandPowersConfig,
    /// The feature set, or why the configuration cannot make one (every
    /// frame is then rejected with that reason; the engine's config checks
    /// refuse such pipelines before they run).
    features: Result<SpectralFeatures, String>,
    streams: HashMap<Arc<str>, StreamWindows>,
    kind: Arc<str>,
    /// Scratch: the window in time order, as f64.
    linear: Vec<f64>,
    values: Vec<f64>,
    /// Records of the current frame, sorted by (end, channel) before they
    /// go out, so the order does not depend on frame size.
    pending: Vec<(i64, usize, Record)>,
}

impl BandPowers {
    pub fn new(config: BandPowersConfig) -> Self {
        let features = SpectralFeatures::new(config.bands.clone(), config.edge_range_hz)
            .map_err(|e: WelchError| format!("band_powers: {e}"));
        Self {
            config,
            features,
            streams: HashMap::new(),
            kind: Arc::from("band_powers"),
            linear: Vec::new(),
            values: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn build(&self, layout: &ChannelLayout, start_ns: i64) -> Result<Vec<ChannelWindow>, String> {
        let features = self.features.as_ref().map_err(|e| e.clone())?;
        let indices: Vec<usize> = match &self.config.channels {
            None => (0..layout.len()).collect(),
            Some(names) => names
                .iter()
                .map(|n| layout.index_of(n))
                .collect::<Option<_>>()
                .ok_or("frame lacks a channel named in band_powers.channels")?,
        };
        let mut names = features.names();
        names.push("latency_s".into());
        indices
            .into_iter()
            .map(|index| {
                let spec = &layout.channels[index];
                let samples = |s: f64| (s * spec.sample_rate).round() as usize;
                let (window, hop, segment) = (
                    samples(self.config.window_s),
                    samples(self.config.hop_s),
                    samples(self.config.segment_s),
                );
                if hop == 0 || segment > window {
                    return Err("band_powers window, hop or segment too short for a channel's rate".into());
                }
                let welch = Welch::new(segment).map_err(|e| format!("band_powers: {e}"))?;
                let names = names
                    .iter()
                    .map(|n| Arc::from(format!("{}.{n}", spec.name)))
                    .collect();
                Ok(ChannelWindow {
                    index,
                    rate: spec.sample_rate,
                    ring: vec![0.0; window],
                    head: 0,
                    filled: 0,
                    until_emit: window,
                    hop,
                    anchor_ns: start_ns,
                    count: 0,
                    welch,
                    names,
                })
            })
            .collect()
    }

    /// The frame's stream state: built for a new stream or layout; on a
    /// discontinuity every channel starts afresh, anchored at this frame.
    fn prepare(&mut self, frame: &Frame) {
        let same = |s: &StreamWindows| Arc::ptr_eq(&s.layout, &frame.layout) || *s.layout == *frame.layout;
        let known = self.streams.get(&*frame.stream_id).is_some_and(same);
        if !known {
            let channels = self.build(&frame.layout, frame.start_ns);
            let layout = frame.layout.clone();
            self.streams
                .insert(frame.stream_id.clone(), StreamWindows { layout, channels });
        } else if frame.discontinuity {
            if let Some(Ok(channels)) = self
                .streams
                .get_mut(&*frame.stream_id)
                .map(|s| s.channels.as_mut())
            {
                for c in channels {
                    c.reset_buffer();
                    c.anchor_ns = frame.start_ns;
                    c.count = 0;
                }
            }
        }
    }

    /// Runs the frame's samples through every channel's ring, computing a
    /// record for each window that completes.
    fn windows(&mut self, frame: &Frame) -> Result<(), String> {
        let Some(stream) = self.streams.get_mut(&*frame.stream_id) else {
            return Ok(());
        };
        let channels = stream.channels.as_mut().map_err(|e| e.clone())?;
        let features = self.features.as_ref().map_err(|e| e.clone())?;
        for c in channels.iter_mut() {
            for &x in frame.channel(c.index) {
                if c.push(x) {
                    let record = window_record(
                        c,
                        (features, &self.kind, &frame.stream_id),
                        frame.sequence,
                        (&mut self.linear, &mut self.values),
                    );
                    self.pending.push((record.end_ns, c.index, record));
                }
            }
        }
        Ok(())
    }
}

/// Computes the features of the channel's current (full) window.
fn window_record(
    c: &mut ChannelWindow,
    (features, kind, stream_id): (&SpectralFeatures, &Arc<str>, &Arc<str>),
    sequence: u64,
    (linear, values): (&mut Vec<f64>, &mut Vec<f64>),
) -> Record {
    let n = c.ring.len();
    linear.clear();
    linear.extend(
        c.ring[c.head..]
            .iter()
            .chain(&c.ring[..c.head])
            .map(|&x| f64::from(x)),
    );
    let df = c.rate / c.welch.segment() as f64;
    // Sample indices name the same samples until a discontinuity, which
    // makes the Welch cache forget (reset_buffer).
    let psd = c.welch.psd_at(linear, c.rate, c.count - n as u64);
    values.clear();
    features.compute(psd, df, values);
    let end_ns = c.sample_ns(c.count);
    let start_ns = c.sample_ns(c.count - n as u64);
    // Latency contribution: the window's first sample waits the whole
    // window before its record exists.
    let latency_s = (end_ns - start_ns) as f64 / 1e9;
    values.push(latency_s);
    let named = c.names.iter().cloned().zip(values.iter().copied()).collect();
    Record {
        stream_id: stream_id.clone(),
        sequence,
        kind: kind.clone(),
        start_ns,
        end_ns,
        values: named,
        labels: Vec::new(),
    }
}

impl Operator for BandPowers {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Frame(frame) = item else {
            out.push(item);
            return Ok(());
        };
        self.prepare(&frame);
        if let Err(reason) = self.windows(&frame) {
            return Err(Rejected::boxed(Item::Frame(frame), reason));
        }
        self.pending.sort_by_key(|(end, channel, _)| (*end, *channel));
        for (_, _, record) in self.pending.drain(..) {
            out.push(Item::Record(record));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelSpec, Modality};

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
        assert_eq!(&*whole[0].values[0].0, "C0.delta_abs");
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
            .filter(|r| r.values[0].0.starts_with("C0."))
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
