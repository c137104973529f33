//! The `pulses` operator: beats of one ABP or PPG channel per stream, one
//! record per beat with systolic, diastolic and mean value and pulse rate.

use std::collections::HashMap;
use std::sync::Arc;

use super::pulse::PulseDetector;
use crate::{ChannelLayout, Frame, Item, Operator, Output, Record, Rejected};

#[derive(Debug)]
struct PulseStream {
    layout: Arc<ChannelLayout>,
    state: Result<PulseChannel, String>,
}

#[derive(Debug)]
struct PulseChannel {
    index: usize,
    rate: f64,
    detector: PulseDetector,
    anchor_ns: i64,
    count: u64,
    segment_start: u64,
    names: [Arc<str>; 5],
}

impl PulseChannel {
    fn sample_ns(&self, k: u64) -> i64 {
        self.anchor_ns + (k as f64 * 1e9 / self.rate).round() as i64
    }
}

/// Streaming pulse detection; see `docs/features.md`.
#[derive(Debug)]
pub struct Pulses {
    channel: String,
    streams: HashMap<Arc<str>, PulseStream>,
    kind: Arc<str>,
}

impl Pulses {
    /// Pulses of the channel named `channel`.
    pub fn new(channel: &str) -> Self {
        Self {
            channel: channel.into(),
            streams: HashMap::new(),
            kind: Arc::from("pulse"),
        }
    }

    fn build(&self, layout: &ChannelLayout, start_ns: i64) -> Result<PulseChannel, String> {
        let index = layout
            .index_of(&self.channel)
            .ok_or("frame lacks the channel named in pulses.channel")?;
        let rate = layout.channels[index].sample_rate;
        let detector = PulseDetector::new(rate)
            .map_err(|_| "pulses needs a sample rate of at least 10 Hz".to_string())?;
        let name = |n: &str| Arc::from(format!("{}.{n}", self.channel));
        Ok(PulseChannel {
            index,
            rate,
            detector,
            anchor_ns: start_ns,
            count: 0,
            segment_start: 0,
            names: [
                name("systolic"),
                name("diastolic"),
                name("mean"),
                name("pulse_rate_bpm"),
                name("latency_s"),
            ],
        })
    }

    fn prepare(&mut self, frame: &Frame) {
        let same = |s: &PulseStream| Arc::ptr_eq(&s.layout, &frame.layout) || *s.layout == *frame.layout;
        let known = self.streams.get(&*frame.stream_id).is_some_and(same);
        if !known {
            let state = self.build(&frame.layout, frame.start_ns);
            let layout = frame.layout.clone();
            self.streams
                .insert(frame.stream_id.clone(), PulseStream { layout, state });
        } else if frame.discontinuity {
            if let Some(Ok(c)) = self.streams.get_mut(&*frame.stream_id).map(|s| s.state.as_mut()) {
                c.anchor_ns = frame.start_ns;
                c.count = 0;
                c.segment_start = 0;
                c.detector.reset();
            }
        }
    }

    fn run(&mut self, frame: &Frame, out: &mut Output) -> Result<(), String> {
        let Some(stream) = self.streams.get_mut(&*frame.stream_id) else {
            return Ok(());
        };
        let c = stream.state.as_mut().map_err(|e| e.clone())?;
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
                out.push(Item::Record(Record {
                    stream_id: frame.stream_id.clone(),
                    sequence: frame.sequence,
                    kind: self.kind.clone(),
                    start_ns: c.sample_ns(onset),
                    end_ns: c.sample_ns(end),
                    values: c.names.iter().cloned().zip(values).collect(),
                    labels: Vec::new(),
                }));
            }
        }
        Ok(())
    }
}

impl Operator for Pulses {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        let Item::Frame(frame) = item else {
            out.push(item);
            return Ok(());
        };
        self.prepare(&frame);
        if let Err(reason) = self.run(&frame, out) {
            return Err(Rejected::boxed(Item::Frame(frame), reason));
        }
        Ok(())
    }
}
