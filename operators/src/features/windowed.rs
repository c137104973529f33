//! The window machinery shared by every windowed feature operator
//! (`band_powers`, `eeg_time_features`, `signal_quality`,
//! `audio_features`): per-stream, per-channel sliding windows of a length
//! and hop that never cross a discontinuity, each turned into one record by
//! a [`WindowKernel`].
//!
//! * Sample times come from one anchor per run (the stream start or the
//!   last discontinuity) and a sample count, so records do not depend on
//!   how the stream was cut into frames.
//! * A NaN sample empties the channel's window (no window spans it) unless
//!   the kernel keeps NaNs ([`WindowKernel::keeps_nan`], signal quality
//!   counts them).
//! * Records of one frame go out sorted by (window end, channel), so their
//!   order does not depend on frame size either; with `across_channels`
//!   the channels' records of the same window are merged into one.
//! * An optional quality gate ([`super::quality`]) computes the signal
//!   quality of the same window and drops the record when it is flagged.

use std::collections::HashMap;
use std::sync::Arc;

use super::quality::{QualityChannel, QualityConfig, QualityKernel};
use crate::{
    ChannelLayout, ChannelSpec, Frame, Item, Modality, Names, Operator, Output, Record, Rejected, Values,
};

/// Window geometry and channel choice; durations in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowConfig {
    pub window_s: f64,
    pub hop_s: f64,
    /// Channels to compute (default: all).
    pub channels: Option<Vec<String>>,
    /// One record per window holding every channel's values instead of one
    /// record per channel per window.
    pub across_channels: bool,
    /// Drop a window's record when its signal quality is flagged.
    pub quality_gate: Option<QualityConfig>,
}

impl WindowConfig {
    pub fn new(window_s: f64, hop_s: f64) -> Self {
        Self {
            window_s,
            hop_s,
            channels: None,
            across_channels: false,
            quality_gate: None,
        }
    }
}

/// What a windowed operator computes from one channel's window.
pub trait WindowKernel: Send {
    /// Per-channel state (FFT plans, caches, channel-specific limits).
    type Channel: Send;

    /// The record kind, e.g. "band_powers".
    fn kind(&self) -> &'static str;

    /// Value names in the order [`WindowKernel::compute`] writes them,
    /// without the channel prefix and without `latency_s`.
    fn names(&self) -> Vec<String>;

    /// State for one channel whose windows hold `window` samples; an error
    /// (a reason naming no value) rejects the stream's frames.
    fn channel(&self, spec: &ChannelSpec, modality: Modality, window: usize)
        -> Result<Self::Channel, String>;

    /// A new run starts: sample indices no longer name the same samples.
    fn forget(&self, _channel: &mut Self::Channel) {}

    /// Whether NaN samples stay in the window (else they restart it).
    fn keeps_nan(&self) -> bool {
        false
    }

    /// Appends the features of `window` (time order; sample 0 is sample
    /// `first` of the current run) to `out`, or placeholders for values
    /// that [`WindowKernel::complete`] fills in.
    fn compute(
        &mut self,
        channel: &mut Self::Channel,
        window: &[f64],
        first: u64,
        rate: f64,
        out: &mut Vec<f64>,
    );

    /// Called once per frame after `compute` has seen all of its windows:
    /// `values` yields each window's values (as `compute` wrote them,
    /// without `latency_s`), in the order `compute` saw them, for kernels
    /// that compute some values for all of a frame's windows at once.
    fn complete<'a>(&mut self, _values: impl Iterator<Item = &'a mut [f64]>) {}
}

/// One channel's window buffer and timing.
struct ChannelWindow<C> {
    index: usize,
    rate: f64,
    /// Window length in samples.
    len: usize,
    /// The samples, oldest first, ending at `end`: the last `len` are the
    /// window, `buffer[end - len..end]`. Twice the window long, so that
    /// moving the last window to the front ([`ChannelWindow::make_room`])
    /// happens once per `len` samples, and each sample is written once
    /// (a ring would need two copies to hand out contiguous windows).
    /// In f64, the kernels' precision: each sample is widened once here
    /// instead of once per window that holds it (8 windows at 2 s / 250 ms).
    buffer: Vec<f64>,
    end: usize,
    until_emit: usize,
    hop: usize,
    anchor_ns: i64,
    count: u64,
    state: C,
    gate: Option<QualityChannel>,
    /// "<channel>.<feature>" names, built once per layout.
    names: Names,
}

impl<C> ChannelWindow<C> {
    /// The window restarts: the next `len` samples fill it.
    fn reset_buffer(&mut self) {
        self.end = self.len;
        self.until_emit = self.len;
    }

    fn sample_ns(&self, k: u64) -> i64 {
        self.anchor_ns + crate::frame::samples_to_ns(k as f64, self.rate)
    }

    /// A NaN sample: counted, and the window restarts after it.
    fn skip_nan(&mut self) {
        self.count += 1;
        self.reset_buffer();
    }

    /// Moves the window to the front of the buffer, leaving `len` free.
    fn make_room(&mut self) {
        let (end, len) = (self.end, self.len);
        self.buffer.copy_within(end - len..end, 0);
        self.end = len;
    }

    /// Takes `chunk` (at most `until_emit` samples, so at most one window
    /// ends, with its last sample); true when a window ends.
    #[inline(always)]
    fn extend(&mut self, chunk: &[f32]) -> bool {
        let taken = chunk.len().min(self.until_emit);
        // Room after a move: `taken <= until_emit <= len`.
        if self.end + taken > self.buffer.len() {
            self.make_room();
        }
        let end = self.end + taken;
        for (to, &from) in self.buffer[self.end..end].iter_mut().zip(&chunk[..taken]) {
            *to = f64::from(from);
        }
        self.end = end;
        self.count += taken as u64;
        self.until_emit -= taken;
        if self.until_emit == 0 {
            self.until_emit = self.hop;
            return true;
        }
        false
    }
}

/// Whether `x` holds a NaN: one branch-free pass (vectorised) instead of a
/// search per channel and chunk.
fn has_nan(x: &[f32]) -> bool {
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    let mut any = [false; 16];
    for chunk in chunks {
        for (a, &v) in any.iter_mut().zip(chunk) {
            *a |= v.is_nan();
        }
    }
    any.iter().any(|&a| a) || rest.iter().any(|v| v.is_nan())
}

struct StreamWindows<C> {
    layout: Arc<ChannelLayout>,
    channels: Result<Vec<ChannelWindow<C>>, String>,
}

/// A sliding-window operator computing `K` on every window.
pub struct Windowed<K: WindowKernel> {
    config: WindowConfig,
    kernel: Result<K, String>,
    gate: Option<QualityKernel>,
    streams: HashMap<Arc<str>, StreamWindows<K::Channel>>,
    kind: Arc<str>,
    gate_values: Vec<f64>,
    /// Where each channel of the current frame starts in its buffer
    /// (`Frame::channel_starts`).
    starts: Vec<usize>,
    /// (window end, channel) of each record of the current frame, in the
    /// order they went out.
    order: Vec<(i64, usize)>,
    /// The records of a frame being reordered or merged (kept for its
    /// capacity).
    reorder: Vec<((i64, usize), Item)>,
}

impl<K: WindowKernel> std::fmt::Debug for Windowed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Windowed")
            .field("kind", &self.kind)
            .field("config", &self.config)
            .finish()
    }
}

impl<K: WindowKernel> Windowed<K> {
    /// `kernel` is the feature computation, or why the configuration cannot
    /// make one (every frame is then rejected with that reason).
    pub fn new(config: WindowConfig, kernel: Result<K, String>, kind: &'static str) -> Self {
        let gate = config.quality_gate.clone().map(QualityKernel::new);
        Self {
            config,
            kernel,
            gate,
            streams: HashMap::new(),
            kind: Arc::from(kind),
            gate_values: Vec::new(),
            starts: Vec::new(),
            order: Vec::new(),
            reorder: Vec::new(),
        }
    }

    /// The kernel, for tests that change how it runs.
    #[cfg(test)]
    pub(crate) fn kernel_mut(&mut self) -> Result<&mut K, &mut String> {
        self.kernel.as_mut()
    }

    fn build(
        &self,
        layout: &ChannelLayout,
        modality: Modality,
        start_ns: i64,
    ) -> Result<Vec<ChannelWindow<K::Channel>>, String> {
        let kernel = self.kernel.as_ref().map_err(|e| e.clone())?;
        let kind = &self.kind;
        let indices: Vec<usize> = match &self.config.channels {
            None => (0..layout.len()).collect(),
            Some(names) => names
                .iter()
                .map(|n| layout.index_of(n))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("frame lacks a channel named in {kind}.channels"))?,
        };
        let mut names = kernel.names();
        names.push("latency_s".into());
        indices
            .into_iter()
            .map(|index| {
                let spec = &layout.channels[index];
                let samples = |s: f64| (s * spec.sample_rate).round() as usize;
                let (window, hop) = (samples(self.config.window_s), samples(self.config.hop_s));
                if hop == 0 || window < 2 {
                    return Err(format!("{kind} window or hop too short for a channel's rate"));
                }
                let state = kernel.channel(spec, modality, window)?;
                let gate = match &self.gate {
                    Some(g) => Some(g.channel(spec, modality, window)?),
                    None => None,
                };
                let names = names
                    .iter()
                    .map(|n| Arc::from(format!("{}.{n}", spec.name)))
                    .collect();
                Ok(ChannelWindow {
                    index,
                    rate: spec.sample_rate,
                    len: window,
                    buffer: vec![0.0; 2 * window],
                    end: window,
                    until_emit: window,
                    hop,
                    anchor_ns: start_ns,
                    count: 0,
                    state,
                    gate,
                    names,
                })
            })
            .collect()
    }

    fn prepare(&mut self, frame: &Frame) {
        let same = |s: &StreamWindows<K::Channel>| {
            Arc::ptr_eq(&s.layout, &frame.layout) || *s.layout == *frame.layout
        };
        let known = self.streams.get(&*frame.stream_id).is_some_and(same);
        if !known {
            let channels = self.build(&frame.layout, frame.modality, frame.start_ns);
            let layout = frame.layout.clone();
            self.streams
                .insert(frame.stream_id.clone(), StreamWindows { layout, channels });
        } else if frame.discontinuity {
            let (Some(Ok(channels)), Ok(kernel)) = (
                self.streams
                    .get_mut(&*frame.stream_id)
                    .map(|s| s.channels.as_mut()),
                self.kernel.as_ref(),
            ) else {
                return;
            };
            for c in channels {
                c.reset_buffer();
                kernel.forget(&mut c.state);
                // Sample indices restart at 0: the gate's Welch cache too.
                if let (Some(gate), Some(state)) = (&self.gate, c.gate.as_mut()) {
                    gate.forget(state);
                }
                c.anchor_ns = frame.start_ns;
                c.count = 0;
            }
        }
    }

    /// Computes the windows that end in `frame`, pushing their records
    /// to `out` in the order the channels end them (see
    /// [`Windowed::order_records`]).
    fn windows(&mut self, frame: &Frame, out: &mut Output) -> Result<(), String> {
        let start = out.len();
        let Some(stream) = self.streams.get_mut(&*frame.stream_id) else {
            return Ok(());
        };
        let channels = stream.channels.as_mut().map_err(|e| e.clone())?;
        let kernel = self.kernel.as_mut().map_err(|e| e.clone())?;
        frame.channel_starts(&mut self.starts);
        let samples = frame.samples();
        // One pass over the frame: without a NaN in it, no channel needs
        // searching (the usual case).
        let look_for_nan = !kernel.keeps_nan() && has_nan(samples);
        for c in channels.iter_mut() {
            let start = self.starts[c.index];
            let mut rest = &samples[start..start + frame.counts()[c.index] as usize];
            if !look_for_nan && rest.len() < c.until_emit {
                // No window ends in this frame: the samples only go in.
                c.extend(rest);
                continue;
            }
            while !rest.is_empty() {
                // The samples up to the next window end (or the frame's end).
                let chunk = &rest[..rest.len().min(c.until_emit)];
                if look_for_nan {
                    if let Some(nan) = chunk.iter().position(|x| x.is_nan()) {
                        // The samples before the NaN end no window (fewer
                        // than `until_emit`); the NaN restarts it.
                        c.extend(&chunk[..nan]);
                        c.skip_nan();
                        kernel.forget(&mut c.state);
                        rest = &rest[nan + 1..];
                        continue;
                    }
                }
                rest = &rest[chunk.len()..];
                if !c.extend(chunk) {
                    continue;
                }
                let n = c.len;
                // The last `n` samples, oldest first (a field borrow, so
                // that the kernel may take `c.state` mutably beside it).
                let window = &c.buffer[c.end - n..c.end];
                let first = c.count - n as u64;
                if let (Some(gate), Some(state)) = (self.gate.as_mut(), c.gate.as_mut()) {
                    self.gate_values.clear();
                    gate.compute(state, window, first, c.rate, &mut self.gate_values);
                    if QualityKernel::flagged(&self.gate_values) {
                        continue;
                    }
                }
                // The record's own vector, written in place (one value per
                // name: the kernel's and the latency).
                let mut numbers = Vec::with_capacity(c.names.len());
                kernel.compute(&mut c.state, window, first, c.rate, &mut numbers);
                let end_ns = c.sample_ns(c.count);
                let start_ns = c.sample_ns(first);
                // Latency contribution: the window's first sample waits the
                // whole window before its record exists.
                numbers.push((end_ns - start_ns) as f64 / 1e9);
                let values = Values::new(c.names.clone(), numbers);
                let record = Record {
                    stream_id: frame.stream_id.clone(),
                    sequence: frame.sequence,
                    kind: self.kind.clone(),
                    start_ns,
                    end_ns,
                    values,
                    labels: Vec::new(),
                };
                self.order.push((end_ns, c.index));
                out.push(Item::Record(record));
            }
        }
        kernel.complete(out.pushed_since(start).iter_mut().filter_map(|item| {
            match item {
                Item::Record(record) => record
                    .values
                    .numbers_mut()
                    .split_last_mut()
                    .map(|(_latency, kernel)| kernel),
                Item::Frame(_) => None,
            }
        }));
        Ok(())
    }

    /// Puts the records pushed since `start` in (window end, channel)
    /// order, merged per window when `across_channels`. They usually are
    /// in order already (one window per channel per frame, all at one
    /// rate) and then stay where they are, moved once.
    fn order_records(&mut self, out: &mut Output, start: usize) {
        let sorted = self.order.is_sorted();
        if sorted && !self.config.across_channels {
            self.order.clear();
            return;
        }
        self.reorder
            .extend(self.order.drain(..).zip(out.drain_from(start)));
        if !sorted {
            // Stable: a channel's records of one window end keep their order.
            self.reorder.sort_by_key(|(key, _)| *key);
        }
        let mut merged: Option<Record> = None;
        for (_, item) in self.reorder.drain(..) {
            let Item::Record(record) = item else {
                out.push(item);
                continue;
            };
            if !self.config.across_channels {
                out.push(Item::Record(record));
                continue;
            }
            match &mut merged {
                Some(m) if m.start_ns == record.start_ns && m.end_ns == record.end_ns => {
                    m.values.append(record.values);
                }
                _ => {
                    if let Some(m) = merged.replace(record) {
                        out.push(Item::Record(m));
                    }
                }
            }
        }
        if let Some(m) = merged {
            out.push(Item::Record(m));
        }
    }
}

impl<K: WindowKernel> Operator for Windowed<K> {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Frame(frame) = item else {
            out.push(item);
            return Ok(());
        };
        self.prepare(&frame);
        let start = out.len();
        if let Err(reason) = self.windows(&frame, out) {
            // Reasons come before any record; drop any anyway, so that a
            // rejected frame leaves nothing behind.
            self.order.clear();
            out.drain_from(start);
            return Err(Rejected::boxed(Item::Frame(frame), reason));
        }
        self.order_records(out, start);
        Ok(())
    }
}
