//! The `pulses` operator: beats of one ABP or PPG channel per stream, one
//! record per beat with systolic, diastolic and mean value and pulse rate.

use std::sync::Arc;

use super::pulse::PulseDetector;
use super::streams::{process_frames, record, StreamState, Streams};
use crate::{ChannelLayout, Frame, Item, Names, Operator, Output, Rejected};

#[derive(Debug)]
struct PulseChannel {
    index: usize,
    rate: f64,
    detector: PulseDetector,
    anchor_ns: i64,
    count: u64,
    segment_start: u64,
    names: Names,
}

impl PulseChannel {
    fn sample_ns(&self, k: u64) -> i64 {
        self.anchor_ns + crate::frame::samples_to_ns(k as f64, self.rate)
    }
}

impl StreamState for PulseChannel {
    type Config = str;

    fn build(channel: &str, layout: &ChannelLayout, start_ns: i64) -> Result<Self, String> {
        let index = layout
            .index_of(channel)
            .ok_or("frame lacks the channel named in pulses.channel")?;
        let rate = layout.channels[index].sample_rate;
        let detector = PulseDetector::new(rate)
            .map_err(|_| "pulses needs a sample rate of at least 10 Hz".to_string())?;
        let name = |n: &str| Arc::from(format!("{}.{n}", channel));
        Ok(PulseChannel {
            index,
            rate,
            detector,
            anchor_ns: start_ns,
            count: 0,
            segment_start: 0,
            names: Arc::from([
                name("systolic"),
                name("diastolic"),
                name("mean"),
                name("pulse_rate_bpm"),
                name("latency_s"),
            ]),
        })
    }

    fn restart_at(&mut self, anchor_ns: i64) {
        self.anchor_ns = anchor_ns;
        self.count = 0;
        self.segment_start = 0;
        self.detector.reset();
    }
}

/// Streaming pulse detection; see `docs/features.md`.
#[derive(Debug)]
pub struct Pulses {
    channel: String,
    streams: Streams<PulseChannel>,
    kind: Arc<str>,
}

impl Pulses {
    /// Pulses of the channel named `channel`.
    pub fn new(channel: &str) -> Self {
        Self {
            channel: channel.into(),
            streams: Streams::new(),
            kind: Arc::from("pulse"),
        }
    }

    fn run(&mut self, frame: &Frame, out: &mut Output) -> Result<(), String> {
        let c = self.streams.state(&self.channel, frame)?;
        for &x in frame.channel(c.index) {
            let k = c.count;
            c.count += 1;
            if !x.is_finite() {
                c.detector.reset();
                c.segment_start = k + 1;
                continue;
            }
            c.detector.push(x);
            while let Some(p) = c.detector.next_pulse() {
                let (onset, end) = (c.segment_start + p.onset, c.segment_start + p.end);
                let values = [
                    p.systolic,
                    p.diastolic,
                    p.mean,
                    60.0 * c.rate / (end - onset) as f64,
                    (p.decided - p.end) as f64 / c.rate,
                ];
                let span = (c.sample_ns(onset), c.sample_ns(end));
                out.push(record(frame, &self.kind, span, &c.names, values));
            }
        }
        Ok(())
    }
}

impl Operator for Pulses {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        process_frames(item, out, |frame, out| self.run(frame, out))
    }
}
