//! The filter operator: designs a cascade per distinct sample rate of the
//! selected channels and carries each channel's state across frames.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::design::{butterworth, notch, Band, Biquad, DesignError};
use super::sos::{ChannelBank, Kernel, Span};
use crate::{ChannelLayout, Frame, Item, Operator, Output, Rejected};

/// What to design, once per sample rate.
#[derive(Clone, Debug, PartialEq)]
pub enum IirDesign {
    Butterworth {
        order: usize,
        band: Band,
    },
    /// Notches at `frequency` and its first `harmonics` multiples, each with
    /// quality factor `q` (bandwidth = frequency / q). Multiples at or above
    /// the Nyquist frequency are left out; the fundamental must be below it.
    Notch {
        frequency: f64,
        q: f64,
        harmonics: u32,
    },
}

impl IirDesign {
    /// The cascade for one sample rate.
    pub fn sections(&self, sample_rate: f64) -> Result<Vec<Biquad>, DesignError> {
        match *self {
            IirDesign::Butterworth { order, band } => butterworth(order, band, sample_rate),
            IirDesign::Notch {
                frequency,
                q,
                harmonics,
            } => {
                let fundamental = notch(frequency, q, sample_rate)?;
                let overtones = (2..=harmonics as u64 + 1)
                    .map(|k| k as f64 * frequency)
                    .take_while(|&f| f < sample_rate / 2.0)
                    .map(|f| notch(f, q, sample_rate))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(std::iter::once(fundamental).chain(overtones).collect())
            }
        }
    }

    fn operator_name(&self) -> &'static str {
        match self {
            IirDesign::Butterworth { .. } => "butterworth",
            IirDesign::Notch { .. } => "notch",
        }
    }
}

/// Which channels a filter touches; the others pass unchanged.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum ChannelSelection {
    #[default]
    All,
    Named(Vec<String>),
}

impl ChannelSelection {
    /// The selected channels' indices in `layout`, in selection order; the
    /// error names `operator`'s `channels` setting, never a channel.
    pub fn indices(&self, layout: &ChannelLayout, operator: &str) -> Result<Vec<usize>, Cow<'static, str>> {
        match self {
            ChannelSelection::All => Ok((0..layout.len()).collect()),
            ChannelSelection::Named(names) => names
                .iter()
                .map(|n| layout.index_of(n))
                .collect::<Option<_>>()
                .ok_or_else(|| Cow::from(format!("frame lacks a channel named in {operator}.channels"))),
        }
    }
}

/// The banks for one layout, or why that layout cannot be filtered.
type Banks = Result<Vec<RateBank>, Cow<'static, str>>;

/// Channels of one sample rate and their filter state.
#[derive(Debug)]
struct RateBank {
    channels: Vec<usize>,
    bank: ChannelBank,
    /// Where each channel lies in the current frame (rewritten per frame).
    spans: Vec<Span>,
}

/// A causal IIR filter operator. Each stream (frames with one
/// `stream_id`) has its own per-channel state, carried across its frames; a
/// frame with `discontinuity` set, or a changed channel layout, starts every
/// channel of its stream afresh, and a NaN sample restarts its channel (see
/// [`super::sos`]). A stream's state is kept for the operator's lifetime.
#[derive(Debug)]
pub struct IirFilter {
    config: FilterConfig,
    streams: HashMap<Arc<str>, StreamFilter>,
    /// Start of each channel in the planar buffer of the current frame.
    offsets: Vec<usize>,
}

/// What the operator was asked for.
#[derive(Debug)]
struct FilterConfig {
    /// Run one after the other, in one pass over the samples.
    designs: Vec<IirDesign>,
    selection: ChannelSelection,
    warm_start: bool,
    kernel: Kernel,
}

/// One stream's layout and its banks, or why that layout cannot be filtered
/// (every frame of it is then rejected).
#[derive(Debug)]
struct StreamFilter {
    layout: Arc<ChannelLayout>,
    banks: Banks,
}

impl IirFilter {
    pub fn new(design: IirDesign, selection: ChannelSelection, warm_start: bool) -> Self {
        Self::with_kernel(design, selection, warm_start, Kernel::detect())
    }

    /// As [`IirFilter::new`] with a chosen kernel (tests and benchmarks
    /// compare the portable fallback with the SIMD kernel).
    pub fn with_kernel(
        design: IirDesign,
        selection: ChannelSelection,
        warm_start: bool,
        kernel: Kernel,
    ) -> Self {
        Self::cascade(vec![design], selection, warm_start, kernel)
    }

    /// Several designs run as one cascade: the same result as a chain of
    /// filters (up to rounding), in one pass over the samples, which is
    /// what makes a band-pass plus notch cheap (docs/filters.md).
    pub fn cascade(
        designs: Vec<IirDesign>,
        selection: ChannelSelection,
        warm_start: bool,
        kernel: Kernel,
    ) -> Self {
        Self {
            config: FilterConfig {
                designs,
                selection,
                warm_start,
                kernel,
            },
            streams: HashMap::new(),
            offsets: Vec::new(),
        }
    }

    /// The frame's stream's banks, built for a new stream or layout, reset
    /// on a discontinuity.
    fn banks_for(&mut self, frame: &Frame) -> &mut Banks {
        let same_layout =
            |s: &StreamFilter| Arc::ptr_eq(&s.layout, &frame.layout) || *s.layout == *frame.layout;
        let known = self.streams.get(&*frame.stream_id).is_some_and(same_layout);
        if !known {
            self.streams.remove(&*frame.stream_id);
        }
        let config = &self.config;
        let stream = self
            .streams
            .entry(frame.stream_id.clone())
            .or_insert_with(|| StreamFilter {
                layout: frame.layout.clone(),
                banks: config.build(&frame.layout),
            });
        if known && frame.discontinuity {
            if let Ok(banks) = &mut stream.banks {
                banks.iter_mut().for_each(|b| b.bank.reset());
            }
        }
        &mut stream.banks
    }
}

impl FilterConfig {
    /// The operator type that the errors name.
    fn operator_name(&self) -> &'static str {
        match &self.designs[..] {
            [single] => single.operator_name(),
            _ => "iir",
        }
    }

    /// All designs' sections for one sample rate, in order.
    fn sections(&self, sample_rate: f64) -> Result<Vec<Biquad>, DesignError> {
        let mut sections = Vec::new();
        for design in &self.designs {
            sections.extend(design.sections(sample_rate)?);
        }
        Ok(sections)
    }

    fn build(&self, layout: &ChannelLayout) -> Banks {
        let name = self.operator_name();
        let selected = self.selection.indices(layout, name)?;
        let mut by_rate: Vec<(f64, Vec<usize>)> = Vec::new();
        for index in selected {
            let rate = layout.channels[index].sample_rate;
            match by_rate.iter_mut().find(|(r, _)| *r == rate) {
                Some((_, channels)) => channels.push(index),
                None => by_rate.push((rate, vec![index])),
            }
        }
        by_rate
            .into_iter()
            .map(|(rate, channels)| {
                let design_error =
                    |e: DesignError| Cow::from(format!("{name} cannot be designed for {rate} Hz: {e}"));
                let sections = self.sections(rate).map_err(design_error)?;
                let bank = ChannelBank::new(&sections, channels.len(), self.warm_start, self.kernel)
                    .map_err(design_error)?;
                Ok(RateBank {
                    channels,
                    bank,
                    spans: Vec::new(),
                })
            })
            .collect()
    }
}

impl Operator for IirFilter {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Frame(mut frame) = item else {
            out.push(item);
            return Ok(());
        };
        let mut offsets = std::mem::take(&mut self.offsets);
        offsets.clear();
        offsets.extend(frame.counts().iter().scan(0usize, |next, &count| {
            let start = *next;
            *next += count as usize;
            Some(start)
        }));
        let banks = match self.banks_for(&frame) {
            Ok(banks) => banks,
            Err(reason) => {
                let reason = reason.clone();
                self.offsets = offsets;
                return Err(Rejected::boxed(Item::Frame(frame), reason));
            }
        };
        for rate_bank in banks.iter_mut() {
            rate_bank.spans.clear();
            let counts = frame.counts();
            rate_bank.spans.extend(
                rate_bank
                    .channels
                    .iter()
                    .map(|&c| (offsets[c], counts[c] as usize)),
            );
            rate_bank.bank.process(frame.samples_mut(), &rate_bank.spans);
        }
        self.offsets = offsets;
        out.push(Item::Frame(frame));
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::filters::design::magnitude_response;
    use crate::filters::sos::ChannelBank;
    use crate::filters::test_noise::{measured_response, noise};
    use crate::{ChannelSpec, Modality};

    fn layout(rates: &[f64]) -> Arc<ChannelLayout> {
        Arc::new(ChannelLayout::new(
            rates
                .iter()
                .enumerate()
                .map(|(i, &sample_rate)| ChannelSpec {
                    name: format!("ch{i}"),
                    unit: "uV".into(),
                    sample_rate,
                })
                .collect(),
        ))
    }

    fn frame(layout: &Arc<ChannelLayout>, channels: &[Vec<f32>]) -> Frame {
        let counts = channels.iter().map(|c| c.len() as u32).collect();
        let samples = channels.iter().flatten().copied().collect();
        Frame::new("s".into(), Modality::Eeg, layout.clone(), 0, 0, counts, samples).unwrap()
    }

    fn filter_frame(filter: &mut IirFilter, frame: Frame) -> Result<Frame, Box<Rejected>> {
        let mut out = Output::default();
        filter.process(Item::Frame(frame), &mut out)?;
        let produced = out.drain().next();
        match produced {
            Some(Item::Frame(frame)) => Ok(frame),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    fn lowpass_40() -> IirDesign {
        IirDesign::Butterworth {
            order: 4,
            band: Band::Lowpass(40.0),
        }
    }

    /// One channel through a fresh bank designed for `rate`.
    fn alone(design: &IirDesign, rate: f64, samples: &[f32]) -> Vec<f32> {
        let sections = design.sections(rate).unwrap();
        let mut bank = ChannelBank::new(&sections, 1, false, Kernel::detect()).unwrap();
        let mut samples = samples.to_vec();
        let len = samples.len();
        bank.process(&mut samples, &[(0, len)]);
        samples
    }

    #[test]
    fn each_sample_rate_gets_its_own_design() {
        let rates = [250.0, 125.0, 250.0];
        let inputs = [noise(100, 1), noise(50, 2), noise(100, 3)];
        let mut filter = IirFilter::new(lowpass_40(), ChannelSelection::All, false);
        let out = filter_frame(&mut filter, frame(&layout(&rates), &inputs)).unwrap();
        for (c, (&rate, input)) in rates.iter().zip(&inputs).enumerate() {
            assert_eq!(
                out.channel(c),
                alone(&lowpass_40(), rate, input).as_slice(),
                "channel {c}"
            );
        }
    }

    #[test]
    fn unselected_channels_pass_unchanged_and_missing_ones_are_rejected() {
        let inputs = [noise(64, 1), noise(64, 2)];
        let selection = ChannelSelection::Named(vec!["ch1".into()]);
        let mut filter = IirFilter::new(lowpass_40(), selection, false);
        let out = filter_frame(&mut filter, frame(&layout(&[250.0, 250.0]), &inputs)).unwrap();
        assert_eq!(out.channel(0), inputs[0].as_slice());
        assert_eq!(out.channel(1), alone(&lowpass_40(), 250.0, &inputs[1]).as_slice());
        let only_ch0 = frame(&layout(&[250.0]), &inputs[..1]);
        let rejected = filter_frame(&mut filter, only_ch0).unwrap_err();
        assert_eq!(
            rejected.reason,
            "frame lacks a channel named in butterworth.channels"
        );
    }

    #[test]
    fn channels_selected_out_of_storage_order_are_filtered_in_place() {
        let inputs: Vec<Vec<f32>> = (0..5).map(|c| noise(33, c)).collect();
        let selection = ChannelSelection::Named(vec!["ch4".into(), "ch0".into(), "ch2".into()]);
        let mut filter = IirFilter::new(lowpass_40(), selection, true);
        let out = filter_frame(&mut filter, frame(&layout(&[250.0; 5]), &inputs)).unwrap();
        for c in [1, 3] {
            assert_eq!(
                out.channel(c),
                inputs[c].as_slice(),
                "channel {c} is not selected"
            );
        }
        for c in [0, 2, 4] {
            let sections = lowpass_40().sections(250.0).unwrap();
            let mut bank = ChannelBank::new(&sections, 1, true, Kernel::detect()).unwrap();
            let mut expected = inputs[c].clone();
            bank.process(&mut expected, &[(0, 33)]);
            assert_eq!(out.channel(c), expected.as_slice(), "channel {c}");
        }
    }

    #[test]
    fn interleaved_streams_keep_their_own_state() {
        let (a, b) = (noise(60, 1), noise(60, 2));
        let one = layout(&[250.0]);
        let mut filter = IirFilter::new(lowpass_40(), ChannelSelection::All, false);
        let mut outputs: [Vec<f32>; 2] = Default::default();
        for start in (0..60).step_by(20) {
            for (stream, input) in [&a, &b].into_iter().enumerate() {
                let mut piece = frame(&one, &[input[start..start + 20].to_vec()]);
                piece.stream_id = ["bed-a", "bed-b"][stream].into();
                outputs[stream].extend_from_slice(filter_frame(&mut filter, piece).unwrap().channel(0));
            }
        }
        assert_eq!(outputs[0], alone(&lowpass_40(), 250.0, &a));
        assert_eq!(outputs[1], alone(&lowpass_40(), 250.0, &b));
    }

    #[test]
    fn a_cut_off_above_nyquist_rejects_the_frame() {
        let mut filter = IirFilter::new(lowpass_40(), ChannelSelection::All, false);
        let rejected = filter_frame(&mut filter, frame(&layout(&[64.0]), &[noise(8, 1)])).unwrap_err();
        assert!(
            rejected.reason.contains("cannot be designed for 64 Hz"),
            "{}",
            rejected.reason
        );
        assert!(matches!(rejected.item, Item::Frame(_)));
    }

    #[test]
    fn a_discontinuity_or_a_new_layout_restarts_the_filter() {
        let input = noise(80, 5);
        let fresh = alone(&lowpass_40(), 250.0, &input[40..]);
        let mut filter = IirFilter::new(lowpass_40(), ChannelSelection::All, false);
        let one = layout(&[250.0]);
        filter_frame(&mut filter, frame(&one, &[input[..40].to_vec()])).unwrap();
        let mut second = frame(&one, &[input[40..].to_vec()]);
        second.discontinuity = true;
        assert_eq!(
            filter_frame(&mut filter, second).unwrap().channel(0),
            fresh.as_slice()
        );
        let two = layout(&[250.0, 250.0]);
        let out = filter_frame(
            &mut filter,
            frame(&two, &[input[40..].to_vec(), input[40..].to_vec()]),
        )
        .unwrap();
        assert_eq!(out.channel(0), fresh.as_slice());
    }

    #[test]
    fn response_measured_on_white_noise_matches_the_design() {
        let rate = 128.0;
        let bandpass = IirDesign::Butterworth {
            order: 4,
            band: Band::Bandpass(0.5, 45.0),
        };
        let notch = IirDesign::Notch {
            frequency: 50.0,
            q: 30.0,
            harmonics: 0,
        };
        let input = noise(1 << 18, 11);
        let mut filters =
            [bandpass.clone(), notch.clone()].map(|d| IirFilter::new(d, ChannelSelection::All, false));
        let mut current = frame(&layout(&[rate]), std::slice::from_ref(&input));
        for filter in &mut filters {
            current = filter_frame(filter, current).unwrap();
        }
        let skip = 4096; // the start-up transient
        let frequencies = [
            0.25, 0.5, 1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 45.0, 48.0, 49.5, 50.0, 52.0, 55.0, 60.0,
        ];
        let measured = measured_response(&input[skip..], &current.channel(0)[skip..], &frequencies, rate);
        let mut sections = bandpass.sections(rate).unwrap();
        sections.extend(notch.sections(rate).unwrap());
        for (&f, &estimate) in frequencies.iter().zip(&measured) {
            let design = magnitude_response(&sections, f, rate);
            assert!(
                (estimate - design).abs() <= 0.01,
                "{f} Hz: measured {estimate:.4}, designed {design:.4}"
            );
        }
    }
}
