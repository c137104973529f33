//! Streaming rational resampling: a polyphase FIR whose taps are exactly
//! those of `scipy.signal.resample_poly(x, up, down)` (firwin, Kaiser window
//! beta 5, `half_len = 10 * max(up, down)`, cutoff `1 / max(up, down)`,
//! gain `up`), run causally.
//!
//! Output sample `m` of a channel is the filter output at position
//! `m * down + p` of the up-sampled grid, with `p = half_len % down`: so
//! `y[m]` equals `resample_poly`'s `y[m - D]` with `D = half_len / down`
//! (integer division), the group delay in output samples, reported by
//! [`Polyphase::delay`]. Every output sample is one dot product over the
//! same inputs whatever the framing, so the joined output is bitwise
//! independent of the frames.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::fir::{dot, firwin, FirWindow};
use crate::{ChannelLayout, ChannelSpec, Item, Operator, Output, Rejected};

/// Largest `up` or `down` accepted (a filter of `20 * max + 1` taps).
pub const MAX_FACTOR: u64 = 1000;

/// What rate to produce.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ResampleFactors {
    /// Every channel to this rate, by the closest fraction `up/down` to
    /// `to_hz / rate` with both at most [`MAX_FACTOR`].
    ToHz(f64),
    /// Every channel's rate times `up / down`.
    Ratio { up: u32, down: u32 },
}

impl ResampleFactors {
    /// `(up, down)` in lowest terms for a channel of `rate` Hz.
    pub fn factors(&self, rate: f64) -> Result<(u64, u64), Cow<'static, str>> {
        let (up, down) = match *self {
            ResampleFactors::ToHz(to) => rational(to / rate, MAX_FACTOR)
                .ok_or_else(|| Cow::from(format!("resample cannot reach {to} Hz from {rate} Hz")))?,
            ResampleFactors::Ratio { up, down } => (u64::from(up), u64::from(down)),
        };
        if up == 0 || down == 0 {
            return Err("resample factors must be positive".into());
        }
        let g = gcd(up, down);
        let (up, down) = (up / g, down / g);
        if up.max(down) > MAX_FACTOR {
            return Err(format!("resample factors {up}/{down} exceed {MAX_FACTOR}").into());
        }
        Ok((up, down))
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The fraction `p/q` closest to `x` with `p, q <= max` (continued
/// fractions, stopping when the next convergent would exceed `max` or the
/// fraction is exact to 1e-12).
pub fn rational(x: f64, max: u64) -> Option<(u64, u64)> {
    if !(x.is_finite() && x > 0.0) {
        return None;
    }
    let (mut p0, mut q0, mut p1, mut q1) = (0u64, 1u64, 1u64, 0u64);
    let mut rest = x;
    let mut best = None;
    for _ in 0..64 {
        let a = rest.floor();
        if a > max as f64 {
            break;
        }
        let a = a as u64;
        let (p2, q2) = (a * p1 + p0, a * q1 + q0);
        if p2 > max || q2 > max {
            break;
        }
        best = Some((p2, q2));
        (p0, q0, p1, q1) = (p1, q1, p2, q2);
        let approx = p2 as f64 / q2 as f64;
        let fraction = rest - a as f64;
        if (approx - x).abs() <= 1e-12 * x || fraction < 1e-12 {
            break;
        }
        rest = 1.0 / fraction;
    }
    best.filter(|&(p, _)| p > 0)
}

/// The polyphase filter for one `(up, down)`.
#[derive(Debug)]
pub struct Polyphase {
    up: u64,
    down: u64,
    /// Taps per phase.
    width: usize,
    /// Phase r's taps `h[r + i*up]`, reversed, `width` each.
    phases: Vec<f64>,
    offset: u64,
    delay: u64,
}

impl Polyphase {
    /// `up` and `down` in lowest terms, both positive.
    pub fn new(up: u64, down: u64) -> Self {
        let max_rate = up.max(down);
        let (taps, half_len) = if max_rate == 1 {
            (vec![1.0], 0)
        } else {
            let half_len = 10 * max_rate;
            let mut h = firwin(
                2 * half_len as usize + 1,
                &[1.0 / max_rate as f64],
                true,
                FirWindow::Kaiser(5.0),
            );
            h.iter_mut().for_each(|x| *x *= up as f64);
            (h, half_len)
        };
        let upu = up as usize;
        let width = taps.len().div_ceil(upu);
        let mut phases = vec![0.0; upu * width];
        for r in 0..upu {
            for i in 0..width {
                if let Some(&t) = taps.get(r + i * upu) {
                    phases[r * width + (width - 1 - i)] = t;
                }
            }
        }
        Self {
            up,
            down,
            width,
            phases,
            offset: half_len % down,
            delay: half_len / down,
        }
    }

    /// Group delay in output samples: output `m` is `resample_poly`'s `m - delay`.
    pub fn delay(&self) -> u64 {
        self.delay
    }

    pub fn factors(&self) -> (u64, u64) {
        (self.up, self.down)
    }
}

/// One channel's resampling state.
#[derive(Debug)]
pub struct ResampleChannel {
    poly: Arc<Polyphase>,
    /// The last `width - 1` inputs, then the current frame's.
    line: Vec<f64>,
    inputs: u64,
    next_output: u64,
}

impl ResampleChannel {
    pub fn new(poly: Arc<Polyphase>) -> Self {
        let line = vec![0.0; poly.width - 1];
        Self {
            poly,
            line,
            inputs: 0,
            next_output: 0,
        }
    }

    pub fn reset(&mut self) {
        self.line.clear();
        self.line.resize(self.poly.width - 1, 0.0);
        self.inputs = 0;
        self.next_output = 0;
    }

    /// Index of the next output sample.
    pub fn next_output(&self) -> u64 {
        self.next_output
    }

    /// Consumes `x`, appending every output it completes to `out`.
    pub fn process(&mut self, x: &[f32], out: &mut Vec<f32>) {
        let p = &*self.poly;
        let keep = p.width - 1;
        self.line.extend(x.iter().map(|&v| f64::from(v)));
        let total = self.inputs + x.len() as u64;
        let end = if total * p.up > p.offset {
            (total * p.up - 1 - p.offset) / p.down + 1
        } else {
            0
        };
        for m in self.next_output..end {
            let j = m * p.down + p.offset;
            let (a, r) = ((j / p.up), (j % p.up) as usize);
            let start = (a - self.inputs) as usize;
            let taps = &p.phases[r * p.width..(r + 1) * p.width];
            out.push(dot(&self.line[start..start + p.width], taps) as f32);
        }
        let len = self.line.len();
        self.line.copy_within(len - keep.., 0);
        self.line.truncate(keep);
        self.inputs = total;
        self.next_output = end;
    }
}

#[derive(Debug)]
struct StreamResample {
    layout_in: Arc<ChannelLayout>,
    state: Result<StreamState, Cow<'static, str>>,
}

#[derive(Debug)]
struct StreamState {
    layout_out: Arc<ChannelLayout>,
    channels: Vec<ResampleChannel>,
    /// Start time of the stream (or of its last restart).
    origin_ns: i64,
    /// A discontinuity seen on a frame that produced no output yet.
    pending_discontinuity: bool,
}

/// The resampling operator. Every channel is resampled, each from its own
/// rate (per-channel factors); the output layout carries the new rates.
/// Output frames keep the input's sequence; their `start_ns` is the stream
/// origin plus `m / rate_out` for the first output sample `m` of the first
/// channel (the output sample clock, so the group delay shows as a shift
/// of the signal, as with the FIR filter). A frame that completes no output
/// sample produces no frame (it is settled as dropped); its discontinuity
/// flag moves to the next frame out. A discontinuity or a new layout
/// restarts every channel and the clock.
#[derive(Debug)]
pub struct Resample {
    factors: ResampleFactors,
    designs: HashMap<(u64, u64), Arc<Polyphase>>,
    streams: HashMap<Arc<str>, StreamResample>,
    spare_counts: Vec<u32>,
    spare_samples: Vec<f32>,
}

impl Resample {
    pub fn new(factors: ResampleFactors) -> Self {
        Self {
            factors,
            designs: HashMap::new(),
            streams: HashMap::new(),
            spare_counts: Vec::new(),
            spare_samples: Vec::new(),
        }
    }

    /// `(up, down, output rate, group delay in output samples)` for a
    /// channel of `rate` Hz.
    pub fn plan(&mut self, rate: f64) -> Result<(u64, u64, f64, u64), Cow<'static, str>> {
        let (up, down) = self.factors.factors(rate)?;
        let poly = self.design(up, down);
        Ok((up, down, rate * up as f64 / down as f64, poly.delay()))
    }

    fn design(&mut self, up: u64, down: u64) -> Arc<Polyphase> {
        self.designs
            .entry((up, down))
            .or_insert_with(|| Arc::new(Polyphase::new(up, down)))
            .clone()
    }

    fn build(&mut self, layout: &ChannelLayout, origin_ns: i64) -> Result<StreamState, Cow<'static, str>> {
        let mut specs = Vec::with_capacity(layout.len());
        let mut channels = Vec::with_capacity(layout.len());
        for spec in &layout.channels {
            let (up, down) = self.factors.factors(spec.sample_rate)?;
            channels.push(ResampleChannel::new(self.design(up, down)));
            specs.push(ChannelSpec {
                sample_rate: spec.sample_rate * up as f64 / down as f64,
                ..spec.clone()
            });
        }
        Ok(StreamState {
            layout_out: Arc::new(ChannelLayout::new(specs)),
            channels,
            origin_ns,
            pending_discontinuity: false,
        })
    }
}

impl Operator for Resample {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Frame(mut frame) = item else {
            out.push(item);
            return Ok(());
        };
        let same =
            |s: &StreamResample| Arc::ptr_eq(&s.layout_in, &frame.layout) || *s.layout_in == *frame.layout;
        let known = self.streams.get(&*frame.stream_id).is_some_and(same);
        if !known {
            let state = self.build(&frame.layout, frame.start_ns);
            self.streams.insert(
                frame.stream_id.clone(),
                StreamResample {
                    layout_in: frame.layout.clone(),
                    state,
                },
            );
        }
        let Some(stream) = self.streams.get_mut(&*frame.stream_id) else {
            return Err(Rejected::boxed(
                Item::Frame(frame),
                "resample stream state missing",
            ));
        };
        let state = match &mut stream.state {
            Ok(state) => state,
            Err(reason) => {
                let reason = reason.clone();
                return Err(Rejected::boxed(Item::Frame(frame), reason));
            }
        };
        if known && frame.discontinuity {
            state.channels.iter_mut().for_each(ResampleChannel::reset);
            state.origin_ns = frame.start_ns;
        }
        let first_output = state.channels.first().map_or(0, ResampleChannel::next_output);
        let mut counts = std::mem::take(&mut self.spare_counts);
        let mut samples = std::mem::take(&mut self.spare_samples);
        counts.clear();
        samples.clear();
        for (channel, (_, input)) in state.channels.iter_mut().zip(frame.channels()) {
            let before = samples.len();
            channel.process(input, &mut samples);
            counts.push((samples.len() - before) as u32);
        }
        let discontinuity = frame.discontinuity || state.pending_discontinuity;
        if samples.is_empty() {
            state.pending_discontinuity = discontinuity;
            self.spare_counts = counts;
            self.spare_samples = samples;
            return Ok(());
        }
        state.pending_discontinuity = false;
        let rate = state.layout_out.channels.first().map_or(1.0, |c| c.sample_rate);
        let start_ns = state.origin_ns + crate::frame::samples_to_ns(first_output as f64, rate);
        match frame.reshape(state.layout_out.clone(), counts, samples) {
            Ok((old_counts, old_samples)) => {
                self.spare_counts = old_counts;
                self.spare_samples = old_samples;
            }
            Err(_) => {
                return Err(Rejected::boxed(
                    Item::Frame(frame),
                    "resample produced an inconsistent frame",
                ));
            }
        }
        frame.start_ns = start_ns;
        frame.discontinuity = discontinuity;
        out.push(Item::Frame(frame));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::test_noise::noise;

    #[test]
    fn rational_factors_of_common_rates() {
        assert_eq!(rational(256.0 / 500.0, MAX_FACTOR), Some((64, 125)));
        assert_eq!(rational(16000.0 / 44100.0, MAX_FACTOR), Some((160, 441)));
        assert_eq!(rational(2.0, MAX_FACTOR), Some((2, 1)));
        assert_eq!(rational(0.0, MAX_FACTOR), None);
    }

    #[test]
    fn output_is_the_same_for_any_framing() {
        for (up, down) in [(64, 125), (3, 2), (1, 3)] {
            let poly = Arc::new(Polyphase::new(up, down));
            let x = noise(2000, 9);
            let mut whole = Vec::new();
            ResampleChannel::new(poly.clone()).process(&x, &mut whole);
            assert_eq!(whole.len() as u64, (2000 * up - 1 - poly.offset) / down + 1);
            for size in [1, 7, 40] {
                let mut channel = ResampleChannel::new(poly.clone());
                let mut pieces = Vec::new();
                x.chunks(size).for_each(|c| channel.process(c, &mut pieces));
                assert_eq!(pieces, whole, "{up}/{down} in frames of {size}");
            }
        }
    }
}
