//! Basic operators: pass-through, channel selection, per-frame statistics and
//! frame validation. The DSP operators live in their own modules.

use std::sync::Arc;

use crate::{ChannelLayout, Frame, Item, Names, Operator, Output, Record, Rejected, Values};

/// Forwards every item unchanged.
#[derive(Debug, Default)]
pub struct Passthrough;

impl Operator for Passthrough {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        out.push(item);
        Ok(())
    }
}

/// Keeps the named channels, in the order given. A frame that lacks one of
/// them is rejected.
#[derive(Debug)]
pub struct SelectChannels {
    names: Vec<String>,
    /// Layout of the last input and the matching output layout and indices,
    /// so the selection is worked out once per stream layout, not per frame.
    cached: Option<(Arc<ChannelLayout>, Arc<ChannelLayout>, Vec<usize>)>,
    scratch_counts: Vec<u32>,
    scratch_samples: Vec<f32>,
}

impl SelectChannels {
    pub fn new(names: Vec<String>) -> Self {
        Self {
            names,
            cached: None,
            scratch_counts: Vec::new(),
            scratch_samples: Vec::new(),
        }
    }

    fn selection_for(&mut self, layout: &Arc<ChannelLayout>) -> Option<(Arc<ChannelLayout>, Vec<usize>)> {
        if let Some((input, output, indices)) = &self.cached {
            if Arc::ptr_eq(input, layout) || **input == **layout {
                return Some((output.clone(), indices.clone()));
            }
        }
        let indices: Vec<usize> = self
            .names
            .iter()
            .map(|n| layout.index_of(n))
            .collect::<Option<_>>()?;
        let output = Arc::new(ChannelLayout::new(
            indices.iter().map(|&i| layout.channels[i].clone()).collect(),
        ));
        self.cached = Some((layout.clone(), output.clone(), indices.clone()));
        Some((output, indices))
    }
}

impl Operator for SelectChannels {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Frame(mut frame) = item else {
            out.push(item);
            return Ok(());
        };
        let Some((layout, indices)) = self.selection_for(&frame.layout) else {
            return Err(Rejected::boxed(
                Item::Frame(frame),
                "frame lacks a channel named in select_channels",
            ));
        };
        let mut counts = std::mem::take(&mut self.scratch_counts);
        let mut samples = std::mem::take(&mut self.scratch_samples);
        counts.clear();
        samples.clear();
        for &i in &indices {
            counts.push(frame.counts()[i]);
            samples.extend_from_slice(frame.channel(i));
        }
        match frame.reshape(layout, counts, samples) {
            Ok((old_counts, old_samples)) => {
                self.scratch_counts = old_counts;
                self.scratch_samples = old_samples;
                out.push(Item::Frame(frame));
                Ok(())
            }
            Err(_) => Err(Rejected::boxed(
                Item::Frame(frame),
                "select_channels produced an inconsistent frame",
            )),
        }
    }
}

/// Emits one record per frame with each channel's min, max, mean and RMS
/// (NaN samples are skipped; a channel with no valid sample reports NaN).
#[derive(Debug, Default)]
pub struct FrameStats {
    /// Value names per stream layout: built once, shared by every record.
    names: Option<(Arc<ChannelLayout>, Names)>,
}

const STATS: [&str; 4] = ["min", "max", "mean", "rms"];

impl FrameStats {
    fn names_for(&mut self, layout: &Arc<ChannelLayout>) -> Names {
        match &self.names {
            Some((cached, names)) if Arc::ptr_eq(cached, layout) || **cached == **layout => names.clone(),
            _ => {
                let names: Names = layout
                    .channels
                    .iter()
                    .flat_map(|c| STATS.iter().map(move |s| Arc::from(format!("{}.{}", c.name, s))))
                    .collect();
                self.names = Some((layout.clone(), names.clone()));
                names
            }
        }
    }
}

/// (min, max, mean, rms) of the non-NaN samples.
pub fn channel_stats(samples: &[f32]) -> [f64; 4] {
    let (mut min, mut max, mut sum, mut sum_sq, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0, 0u64);
    for &x in samples.iter().filter(|x| !x.is_nan()) {
        let x = f64::from(x);
        min = min.min(x);
        max = max.max(x);
        sum += x;
        sum_sq += x * x;
        n += 1;
    }
    if n == 0 {
        return [f64::NAN; 4];
    }
    let n = n as f64;
    [min, max, sum / n, (sum_sq / n).sqrt()]
}

impl Operator for FrameStats {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Frame(frame) = item else {
            out.push(item);
            return Ok(());
        };
        let names = self.names_for(&frame.layout);
        let values = Values::new(
            names,
            frame.channels().flat_map(|(_, x)| channel_stats(x)).collect(),
        );
        out.push(Item::Record(Record {
            stream_id: frame.stream_id.clone(),
            sequence: frame.sequence,
            kind: Arc::from("frame_stats"),
            start_ns: frame.start_ns,
            end_ns: frame.start_ns + frame.duration_ns(),
            values,
            labels: Vec::new(),
        }));
        Ok(())
    }
}

/// Limits a frame must respect; a frame that breaks one is rejected (and
/// dead-lettered by the engine) with the name of the limit as the reason.
#[derive(Debug, Clone, Default)]
pub struct ValidateLimits {
    /// Largest allowed |sample| in physical units.
    pub max_abs: Option<f32>,
    /// Largest allowed fraction of NaN samples, 0..=1.
    pub max_nan_fraction: Option<f32>,
    /// Required channel count.
    pub channels: Option<usize>,
}

#[derive(Debug)]
pub struct Validate {
    limits: ValidateLimits,
}

impl Validate {
    pub fn new(limits: ValidateLimits) -> Self {
        Self { limits }
    }

    fn violation(&self, frame: &Frame) -> Option<&'static str> {
        if let Some(expected) = self.limits.channels {
            if frame.channel_count() != expected {
                return Some("channel count differs from validate.channels");
            }
        }
        let samples = frame.samples();
        if let Some(max_abs) = self.limits.max_abs {
            if samples.iter().any(|x| x.abs() > max_abs) {
                return Some("sample magnitude above validate.max_abs");
            }
        }
        if let Some(max_fraction) = self.limits.max_nan_fraction {
            let nans = samples.iter().filter(|x| x.is_nan()).count();
            if !samples.is_empty() && nans as f32 / samples.len() as f32 > max_fraction {
                return Some("NaN fraction above validate.max_nan_fraction");
            }
        }
        None
    }
}

impl Operator for Validate {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        if let Item::Frame(frame) = &item {
            if let Some(reason) = self.violation(frame) {
                return Err(Rejected::boxed(item, reason));
            }
        }
        out.push(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelSpec, Modality};

    fn frame(values: &[&[f32]]) -> Frame {
        let layout = Arc::new(ChannelLayout::new(
            (0..values.len())
                .map(|i| ChannelSpec {
                    name: format!("C{i}"),
                    unit: "uV".into(),
                    sample_rate: 100.0,
                })
                .collect(),
        ));
        let counts = values.iter().map(|v| v.len() as u32).collect();
        let samples = values.iter().flat_map(|v| v.iter().copied()).collect();
        Frame::new("s".into(), Modality::Eeg, layout, 0, 3, counts, samples).unwrap()
    }

    fn run(op: &mut dyn Operator, f: Frame) -> Result<Vec<Item>, Box<Rejected>> {
        let mut out = Output::default();
        op.process(Item::Frame(f), &mut out)?;
        Ok(out.drain().collect())
    }

    #[test]
    fn select_reorders_and_reuses_buffers() {
        let mut op = SelectChannels::new(vec!["C2".into(), "C0".into()]);
        for _ in 0..3 {
            let items = run(&mut op, frame(&[&[1.0, 2.0], &[3.0, 4.0], &[5.0]])).unwrap();
            let Item::Frame(f) = &items[0] else {
                panic!("expected a frame")
            };
            assert_eq!(f.layout.channels[0].name, "C2");
            assert_eq!(f.channel(0), &[5.0]);
            assert_eq!(f.channel(1), &[1.0, 2.0]);
        }
        let err = run(&mut SelectChannels::new(vec!["missing".into()]), frame(&[&[1.0]])).unwrap_err();
        assert!(err.reason.contains("lacks a channel"));
    }

    #[test]
    fn stats_skip_nan_and_name_values_by_channel() {
        let items = run(
            &mut FrameStats::default(),
            frame(&[&[1.0, f32::NAN, 3.0], &[f32::NAN]]),
        )
        .unwrap();
        let Item::Record(r) = &items[0] else {
            panic!("expected a record")
        };
        assert_eq!(r.values.name(0), "C0.min");
        let v: Vec<f64> = r.values.numbers().to_vec();
        assert_eq!(&v[..3], &[1.0, 3.0, 2.0]);
        assert!((v[3] - 5f64.sqrt()).abs() < 1e-12);
        assert!(v[4..].iter().all(|x| x.is_nan()));
        assert_eq!(r.end_ns - r.start_ns, 30_000_000);
    }

    #[test]
    fn validate_rejects_with_a_reason() {
        let mut op = Validate::new(ValidateLimits {
            max_abs: Some(10.0),
            max_nan_fraction: Some(0.5),
            channels: None,
        });
        assert_eq!(run(&mut op, frame(&[&[1.0, -9.0]])).unwrap().len(), 1);
        let err = run(&mut op, frame(&[&[1.0, -11.0]])).unwrap_err();
        assert_eq!(err.reason, "sample magnitude above validate.max_abs");
        let err = run(&mut op, frame(&[&[f32::NAN, f32::NAN, 1.0]])).unwrap_err();
        assert!(err.reason.contains("NaN fraction"));
    }
}
