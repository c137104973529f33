//! The FIR operator: designs taps once per distinct sample rate of the
//! selected channels and carries each channel's history across frames.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::fir::{DirectFir, FftFir, FftPlan, FirDesign, FirError};
use super::ChannelSelection;
use crate::{ChannelLayout, Frame, Item, Operator, Output, Rejected};

/// Kernels with at least this many taps run by overlap-save when the method
/// is `Auto` (measured by `benches/benches/fir_filters.rs`; docs/filters.md).
pub const FFT_CROSSOVER_TAPS: usize = 16;

/// How the taps are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FirMethod {
    /// Direct below [`FFT_CROSSOVER_TAPS`] taps, overlap-save from there.
    #[default]
    Auto,
    /// Direct convolution: no added latency.
    Direct,
    /// Overlap-save: adds its block hop of latency.
    Fft,
}

#[derive(Debug)]
enum Kernel {
    Direct(DirectFir),
    Fft(FftFir),
}

impl Kernel {
    fn process(&mut self, x: &mut [f32]) {
        match self {
            Kernel::Direct(k) => k.process(x),
            Kernel::Fft(k) => k.process(x),
        }
    }

    fn reset(&mut self) {
        match self {
            Kernel::Direct(k) => k.reset(),
            Kernel::Fft(k) => k.reset(),
        }
    }
}

/// One stream's layout and its per-channel kernels (channel index, kernel),
/// or why that layout cannot be filtered.
#[derive(Debug)]
struct StreamFir {
    layout: Arc<ChannelLayout>,
    kernels: Result<Vec<(usize, Kernel)>, Cow<'static, str>>,
}

/// A causal FIR filter operator; state per stream as [`super::IirFilter`]:
/// a frame with `discontinuity`, or a changed layout, restarts every
/// channel from zero history. A NaN input makes NaN every output whose
/// window holds it (direct: the next `taps` outputs; overlap-save: the
/// blocks that hold it).
#[derive(Debug)]
pub struct FirFilter {
    design: FirDesign,
    selection: ChannelSelection,
    method: FirMethod,
    streams: HashMap<Arc<str>, StreamFir>,
}

/// The design for one rate, with its delays.
#[derive(Clone, Debug, PartialEq)]
pub struct FirReport {
    pub taps: usize,
    /// Whether overlap-save runs it.
    pub fft: bool,
    /// Total delay in samples of a linear-phase design: `(taps - 1) / 2`
    /// plus the overlap-save hop when that runs it.
    pub delay_samples: Option<f64>,
    /// Latency the overlap-save blocks add (0 for direct).
    pub block_latency: usize,
}

impl FirFilter {
    pub fn new(design: FirDesign, selection: ChannelSelection, method: FirMethod) -> Self {
        Self {
            design,
            selection,
            method,
            streams: HashMap::new(),
        }
    }

    /// What runs at `sample_rate`: taps, method and delay.
    pub fn report(&self, sample_rate: f64) -> Result<FirReport, FirError> {
        let taps = self.design.taps(sample_rate)?;
        let fft = self.uses_fft(taps.taps.len());
        let block_latency = if fft {
            FftPlan::new(&taps.taps).latency()
        } else {
            0
        };
        Ok(FirReport {
            taps: taps.taps.len(),
            fft,
            delay_samples: taps.delay_samples.map(|d| d + block_latency as f64),
            block_latency,
        })
    }

    fn uses_fft(&self, taps: usize) -> bool {
        match self.method {
            FirMethod::Auto => taps >= FFT_CROSSOVER_TAPS,
            FirMethod::Direct => false,
            FirMethod::Fft => true,
        }
    }

    fn build(&self, layout: &ChannelLayout) -> Result<Vec<(usize, Kernel)>, Cow<'static, str>> {
        let selected = self.selection.indices(layout, "fir")?;
        let mut designs: Vec<(f64, Arc<[f64]>, Option<FftPlan>)> = Vec::new();
        let mut kernels = Vec::with_capacity(selected.len());
        for index in selected {
            let rate = layout.channels[index].sample_rate;
            let position = match designs.iter().position(|(r, _, _)| *r == rate) {
                Some(p) => p,
                None => {
                    let taps = self
                        .design
                        .taps(rate)
                        .map_err(|e| Cow::from(format!("fir cannot be designed for {rate} Hz: {e}")))?;
                    let plan = self.uses_fft(taps.taps.len()).then(|| FftPlan::new(&taps.taps));
                    designs.push((rate, taps.taps.into(), plan));
                    designs.len() - 1
                }
            };
            let (_, taps, plan) = &designs[position];
            let kernel = match plan {
                Some(plan) => Kernel::Fft(FftFir::new(plan)),
                None => Kernel::Direct(DirectFir::new(taps.clone())),
            };
            kernels.push((index, kernel));
        }
        Ok(kernels)
    }
}

impl Operator for FirFilter {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Frame(mut frame) = item else {
            out.push(item);
            return Ok(());
        };
        let same = |s: &StreamFir| Arc::ptr_eq(&s.layout, &frame.layout) || *s.layout == *frame.layout;
        let known = self.streams.get(&*frame.stream_id).is_some_and(same);
        if !known {
            let kernels = self.build(&frame.layout);
            self.streams.insert(
                frame.stream_id.clone(),
                StreamFir {
                    layout: frame.layout.clone(),
                    kernels,
                },
            );
        }
        let Some(stream) = self.streams.get_mut(&*frame.stream_id) else {
            return Err(Rejected::boxed(Item::Frame(frame), "fir stream state missing"));
        };
        let kernels = match &mut stream.kernels {
            Ok(kernels) => kernels,
            Err(reason) => {
                let reason = reason.clone();
                return Err(Rejected::boxed(Item::Frame(frame), reason));
            }
        };
        if known && frame.discontinuity {
            kernels.iter_mut().for_each(|(_, k)| k.reset());
        }
        process_channels(&mut frame, kernels);
        out.push(Item::Frame(frame));
        Ok(())
    }
}

/// Runs each kernel on its channel's span of the planar buffer (channels in
/// any order, no allocation; the start is a sum over the few channels).
fn process_channels(frame: &mut Frame, kernels: &mut [(usize, Kernel)]) {
    for (channel, kernel) in kernels.iter_mut() {
        let counts = frame.counts();
        let start: usize = counts[..*channel].iter().map(|&c| c as usize).sum();
        let len = counts[*channel] as usize;
        kernel.process(&mut frame.samples_mut()[start..start + len]);
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use super::*;
    use crate::filters::design::Band;
    use crate::filters::fir::{FirLength, FirWindow};
    use crate::filters::test_noise::{measured_response, noise};
    use crate::{ChannelSpec, Modality};

    fn one_channel(rate: f64, samples: Vec<f32>) -> Frame {
        let layout = Arc::new(ChannelLayout::new(vec![ChannelSpec {
            name: "x".into(),
            unit: "uV".into(),
            sample_rate: rate,
        }]));
        let count = samples.len() as u32;
        Frame::new("s".into(), Modality::Eeg, layout, 0, 0, vec![count], samples).unwrap()
    }

    fn designed_response(taps: &[f64], f: f64, rate: f64) -> f64 {
        let (re, im) = taps.iter().enumerate().fold((0.0, 0.0), |(re, im), (k, h)| {
            let phase = -2.0 * PI * f / rate * k as f64;
            (re + h * phase.cos(), im + h * phase.sin())
        });
        re.hypot(im)
    }

    #[test]
    fn response_measured_on_white_noise_matches_the_design() {
        let rate = 256.0;
        let designs = [
            (
                Band::Bandpass(8.0, 30.0),
                FirLength::Taps(129, FirWindow::Hamming),
                false,
            ),
            (
                Band::Highpass(1.0),
                FirLength::Kaiser {
                    attenuation_db: 60.0,
                    transition_hz: 2.0,
                },
                false,
            ),
            (
                Band::Lowpass(40.0),
                FirLength::Taps(101, FirWindow::Blackman),
                true,
            ),
        ];
        let input = noise(1 << 17, 21);
        let frequencies = [
            0.5, 2.0, 6.0, 8.0, 10.0, 20.0, 30.0, 35.0, 40.0, 45.0, 60.0, 100.0,
        ];
        for (band, length, minimum_phase) in designs {
            let design = FirDesign {
                band,
                length,
                minimum_phase,
            };
            let taps = design.taps(rate).unwrap().taps;
            for method in [FirMethod::Direct, FirMethod::Fft] {
                let mut filter = FirFilter::new(design, ChannelSelection::All, method);
                // Align the output by the whole delay (block latency and
                // linear-phase delay): a delay biases the H1 estimate low by
                // decorrelating the segments, and |H| does not depend on it.
                let report = filter.report(rate).unwrap();
                let latency = report
                    .delay_samples
                    .map_or(report.block_latency, |d| d.floor() as usize);
                let mut out = Output::default();
                filter
                    .process(Item::Frame(one_channel(rate, input.clone())), &mut out)
                    .unwrap();
                let Some(Item::Frame(frame)) = out.drain().next() else {
                    panic!("a frame")
                };
                let skip = taps.len();
                let output = &frame.channel(0)[skip + latency..];
                let measured =
                    measured_response(&input[skip..input.len() - latency], output, &frequencies, rate);
                for (&f, &estimate) in frequencies.iter().zip(&measured) {
                    let expected = designed_response(&taps, f, rate);
                    assert!(
                        (estimate - expected).abs() <= 0.01,
                        "{design:?} {method:?} at {f} Hz: measured {estimate:.4}, designed {expected:.4}"
                    );
                }
            }
        }
    }

    #[test]
    fn auto_switches_to_overlap_save_at_the_crossover() {
        let design = |taps| FirDesign {
            band: Band::Lowpass(10.0),
            length: FirLength::Taps(taps, FirWindow::Hamming),
            minimum_phase: false,
        };
        let below = FirFilter::new(
            design(FFT_CROSSOVER_TAPS - 1),
            ChannelSelection::All,
            FirMethod::Auto,
        );
        let report = below.report(100.0).unwrap();
        assert!(!report.fft);
        assert_eq!(
            report.delay_samples,
            Some((FFT_CROSSOVER_TAPS as f64 - 2.0) / 2.0)
        );
        let at = FirFilter::new(design(FFT_CROSSOVER_TAPS), ChannelSelection::All, FirMethod::Auto);
        let report = at.report(100.0).unwrap();
        assert!(report.fft && report.block_latency > 0);
        assert_eq!(
            report.delay_samples,
            Some((FFT_CROSSOVER_TAPS as f64 - 1.0) / 2.0 + report.block_latency as f64)
        );
    }
}
