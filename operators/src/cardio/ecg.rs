//! The `ecg_beats` operator: R peaks of one ECG channel per stream, one
//! record per beat and (optionally) one HRV record per sliding window.

use std::collections::VecDeque;
use std::sync::Arc;

use super::hrv::{Hrv, HrvValues};
use super::qrs::QrsDetector;
use super::streams::{process_frames, record, StreamState, Streams};
use crate::{ChannelLayout, Frame, Item, Names, Operator, Output, Rejected};

/// What the operator emits; durations in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct EcgBeatsConfig {
    /// The ECG channel, by name.
    pub channel: String,
    /// One `ecg_beat` record per beat.
    pub beats: bool,
    /// HRV windows `(window_s, hop_s)`; `None` for no `hrv` records.
    pub hrv: Option<(f64, f64)>,
}

impl EcgBeatsConfig {
    /// Beat records and 5-minute HRV windows every 30 s.
    pub fn new(channel: &str) -> Self {
        Self {
            channel: channel.into(),
            beats: true,
            hrv: Some((300.0, 30.0)),
        }
    }
}

#[derive(Debug)]
struct EcgChannel {
    index: usize,
    rate: f64,
    detector: QrsDetector,
    anchor_ns: i64,
    /// Samples since the anchor.
    count: u64,
    /// Sample index (from the anchor) of the detector's sample 0.
    segment_start: u64,
    previous_r: Option<u64>,
    /// R peaks (from the anchor) still needed by an HRV window.
    history: VecDeque<u64>,
    /// End (exclusive, sample index) of the next HRV window.
    next_window_end: u64,
    window: u64,
    hop: u64,
    /// The detector's bound on beat delay, samples.
    max_delay: u64,
    beat_names: Names,
    hrv_names: Names,
}

impl EcgChannel {
    fn sample_ns(&self, k: u64) -> i64 {
        self.anchor_ns + crate::frame::samples_to_ns(k as f64, self.rate)
    }

    /// Starts a new segment at sample `k` (after a gap or discontinuity).
    fn restart(&mut self, k: u64) {
        self.detector.reset();
        self.segment_start = k;
        self.previous_r = None;
        self.history.clear();
        self.next_window_end = k + self.window;
    }
}

impl StreamState for EcgChannel {
    type Config = EcgBeatsConfig;

    fn build(config: &EcgBeatsConfig, layout: &ChannelLayout, start_ns: i64) -> Result<Self, String> {
        let index = layout
            .index_of(&config.channel)
            .ok_or("frame lacks the channel named in ecg_beats.channel")?;
        let rate = layout.channels[index].sample_rate;
        let detector = QrsDetector::new(rate)
            .map_err(|_| "ecg_beats needs a sample rate above 30 Hz (5-15 Hz band-pass)".to_string())?;
        let samples = |s: f64| (s * rate).round() as u64;
        let (window, hop) = config.hrv.map_or((0, 0), |(w, h)| (samples(w), samples(h)));
        if config.hrv.is_some() && (window == 0 || hop == 0) {
            return Err("ecg_beats hrv window or hop too short for the channel's rate".into());
        }
        let name = |n: &str| Arc::from(format!("{}.{n}", config.channel));
        let mut hrv_names: Vec<Arc<str>> = HrvValues::NAMES.iter().map(|n| name(n)).collect();
        hrv_names.push(name("latency_s"));
        let max_delay = detector.max_delay();
        Ok(EcgChannel {
            index,
            rate,
            detector,
            anchor_ns: start_ns,
            count: 0,
            segment_start: 0,
            previous_r: None,
            history: VecDeque::new(),
            next_window_end: window,
            window,
            hop,
            max_delay,
            beat_names: Arc::from([
                name("rr_s"),
                name("hr_bpm"),
                name("search_back"),
                name("latency_s"),
            ]),
            hrv_names: hrv_names.into(),
        })
    }

    fn restart_at(&mut self, anchor_ns: i64) {
        self.anchor_ns = anchor_ns;
        self.count = 0;
        self.restart(0);
    }
}

/// Streaming R-peak detection and HRV; see `docs/features.md`.
#[derive(Debug)]
pub struct EcgBeats {
    config: EcgBeatsConfig,
    streams: Streams<EcgChannel>,
    beat_kind: Arc<str>,
    hrv_kind: Arc<str>,
    hrv: Hrv,
    times: Vec<f64>,
}

impl EcgBeats {
    pub fn new(config: EcgBeatsConfig) -> Self {
        Self {
            config,
            streams: Streams::new(),
            beat_kind: Arc::from("ecg_beat"),
            hrv_kind: Arc::from("hrv"),
            hrv: Hrv::new(),
            times: Vec::new(),
        }
    }

    fn run(&mut self, frame: &Frame, out: &mut Output) -> Result<(), String> {
        let c = self.streams.state(&self.config, frame)?;
        let samples = frame.channel(c.index);
        for &x in samples {
            let k = c.count;
            c.count += 1;
            if x.is_finite() {
                c.detector.push(x);
            } else {
                // A gap: nothing before it is used after it.
                c.restart(k + 1);
                continue;
            }
            while let Some(beat) = c.detector.next_beat() {
                let r = c.segment_start + beat.r;
                let decided = c.segment_start + beat.decided;
                if self.config.beats {
                    let rr = c.previous_r.map_or(f64::NAN, |p| (r - p) as f64 / c.rate);
                    let values = [
                        rr,
                        60.0 / rr,
                        if beat.search_back { 1.0 } else { 0.0 },
                        (decided - r) as f64 / c.rate,
                    ];
                    let span = (c.sample_ns(c.previous_r.unwrap_or(r)), c.sample_ns(r));
                    out.push(record(frame, &self.beat_kind, span, &c.beat_names, values));
                }
                c.previous_r = Some(r);
                if self.config.hrv.is_some() {
                    c.history.push_back(r);
                }
            }
            // An HRV window [end - window, end) is complete once no beat
            // inside it can still be reported.
            while self.config.hrv.is_some() && c.next_window_end + c.max_delay <= k {
                let end = c.next_window_end;
                let start = end - c.window;
                while c.history.front().is_some_and(|&r| r < start) {
                    c.history.pop_front();
                }
                self.times.clear();
                self.times.extend(
                    c.history
                        .iter()
                        .take_while(|&&r| r < end)
                        .map(|&r| r as f64 / c.rate),
                );
                let mut values: Vec<f64> = self.hrv.compute(&self.times).as_array().to_vec();
                values.push((k - start) as f64 / c.rate);
                let span = (c.sample_ns(start), c.sample_ns(end));
                out.push(record(frame, &self.hrv_kind, span, &c.hrv_names, values));
                c.next_window_end += c.hop;
            }
        }
        Ok(())
    }
}

impl Operator for EcgBeats {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        process_frames(item, out, |frame, out| self.run(frame, out))
    }
}
