//! The filter operator: designs a cascade per distinct sample rate of the
//! selected channels and carries each channel's state across frames.

use std::borrow::Cow;
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

/// A causal IIR filter operator. Per-channel state carries across frames;
/// a frame with `discontinuity` set, or a changed channel layout, starts
/// every channel afresh, and a NaN sample restarts its channel (see
/// [`super::sos`]).
#[derive(Debug)]
pub struct IirFilter {
    design: IirDesign,
    selection: ChannelSelection,
    warm_start: bool,
    kernel: Kernel,
    /// The layout the banks were built for and the banks, or why that
    /// layout cannot be filtered (every frame of it is then rejected).
    built: Option<(Arc<ChannelLayout>, Banks)>,
    /// Start of each channel in the planar buffer of the current frame.
    offsets: Vec<usize>,
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
        Self {
            design,
            selection,
            warm_start,
            kernel,
            built: None,
            offsets: Vec::new(),
        }
    }

    fn build(&self, layout: &ChannelLayout) -> Banks {
        let name = self.design.operator_name();
        let selected: Vec<usize> = match &self.selection {
            ChannelSelection::All => (0..layout.len()).collect(),
            ChannelSelection::Named(names) => names
                .iter()
                .map(|n| layout.index_of(n))
                .collect::<Option<_>>()
                .ok_or_else(|| Cow::from(format!("frame lacks a channel named in {name}.channels")))?,
        };
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
                let sections = self.design.sections(rate).map_err(design_error)?;
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

    fn banks_for(&mut self, frame: &Frame) -> &mut Banks {
        let layout = &frame.layout;
        let same =
            matches!(&self.built, Some((built, _)) if Arc::ptr_eq(built, layout) || **built == **layout);
        if !same {
            let banks = self.build(layout);
            self.built = Some((layout.clone(), banks));
        } else if frame.discontinuity {
            if let Some((_, Ok(banks))) = &mut self.built {
                banks.iter_mut().for_each(|b| b.bank.reset());
            }
        }
        match &mut self.built {
            Some((_, banks)) => banks,
            None => unreachable!("built just above"),
        }
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
