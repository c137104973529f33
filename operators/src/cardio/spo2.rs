//! The `spo2` operator: oxygen saturation from a red and an infrared PPG
//! channel by the ratio of ratios, over sliding windows that never cross a
//! gap.
//!
//! Per window and channel: DC = mean; AC = root mean square of the residual
//! after a least-squares straight line (removes baseline drift within the
//! window). `R = (AC_red / DC_red) / (AC_ir / DC_ir)` and
//! `SpO2 = a − b·R` (%, not clamped), with `a` and `b` from the pipeline
//! (default 110 and 25, a common textbook linear fit; real devices are
//! calibrated per sensor).

use std::sync::Arc;

use super::streams::{process_frames, record, StreamState, Streams};
use crate::{ChannelLayout, Frame, Item, Names, Operator, Output, Rejected};

/// What the operator computes; durations in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Spo2Config {
    pub red: String,
    pub ir: String,
    pub window_s: f64,
    pub hop_s: f64,
    /// Calibration `SpO2 = a − b·R`.
    pub a: f64,
    pub b: f64,
}

impl Spo2Config {
    /// 4 s windows every 1 s, `SpO2 = 110 − 25·R`.
    pub fn new(red: &str, ir: &str) -> Self {
        Self {
            red: red.into(),
            ir: ir.into(),
            window_s: 4.0,
            hop_s: 1.0,
            a: 110.0,
            b: 25.0,
        }
    }
}

#[derive(Debug)]
struct Spo2Channels {
    red: usize,
    ir: usize,
    rate: f64,
    anchor_ns: i64,
    count: u64,
    rings: [Vec<f64>; 2],
    head: usize,
    filled: usize,
    until_emit: usize,
    hop: usize,
    names: Names,
}

impl Spo2Channels {
    fn sample_ns(&self, k: u64) -> i64 {
        self.anchor_ns + crate::frame::samples_to_ns(k as f64, self.rate)
    }

    fn empty(&mut self) {
        self.head = 0;
        self.filled = 0;
        self.until_emit = self.rings[0].len();
    }
}

/// AC/DC of a window in time order: RMS of the residual of a least-squares
/// line over the mean.
pub fn ac_over_dc(ring: &[f64], head: usize) -> (f64, f64) {
    let n = ring.len() as f64;
    let x = |i: usize| ring[(head + i) % ring.len()];
    let mean = (0..ring.len()).map(x).sum::<f64>() / n;
    let centre = (n - 1.0) / 2.0;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for i in 0..ring.len() {
        let u = i as f64 - centre;
        sxy += u * (x(i) - mean);
        sxx += u * u;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let residual = (0..ring.len())
        .map(|i| {
            let e = x(i) - mean - slope * (i as f64 - centre);
            e * e
        })
        .sum::<f64>()
        / n;
    (residual.sqrt() / mean, mean)
}

impl StreamState for Spo2Channels {
    type Config = Spo2Config;

    fn build(config: &Spo2Config, layout: &ChannelLayout, start_ns: i64) -> Result<Self, String> {
        let find = |n: &str| {
            layout
                .index_of(n)
                .ok_or("frame lacks a channel named in spo2.red or spo2.ir")
        };
        let (red, ir) = (find(&config.red)?, find(&config.ir)?);
        let rate = layout.channels[red].sample_rate;
        if layout.channels[ir].sample_rate != rate {
            return Err("spo2.red and spo2.ir must have the same sample rate".into());
        }
        let window = (config.window_s * rate).round() as usize;
        let hop = (config.hop_s * rate).round() as usize;
        if window < 2 || hop == 0 {
            return Err("spo2 window or hop too short for the channels' rate".into());
        }
        let name = |n: &str| Arc::from(format!("{}+{}.{n}", config.red, config.ir));
        Ok(Spo2Channels {
            red,
            ir,
            rate,
            anchor_ns: start_ns,
            count: 0,
            rings: [vec![0.0; window], vec![0.0; window]],
            head: 0,
            filled: 0,
            until_emit: window,
            hop,
            names: Arc::from([
                name("ratio"),
                name("spo2_pct"),
                name("perfusion_red_pct"),
                name("perfusion_ir_pct"),
                name("latency_s"),
            ]),
        })
    }

    fn restart_at(&mut self, anchor_ns: i64) {
        self.anchor_ns = anchor_ns;
        self.count = 0;
        self.empty();
    }
}

/// Windowed ratio-of-ratios SpO2; see the module documentation.
#[derive(Debug)]
pub struct Spo2 {
    config: Spo2Config,
    streams: Streams<Spo2Channels>,
    kind: Arc<str>,
}

impl Spo2 {
    pub fn new(config: Spo2Config) -> Self {
        Self {
            config,
            streams: Streams::new(),
            kind: Arc::from("spo2"),
        }
    }

    fn run(&mut self, frame: &Frame, out: &mut Output) -> Result<(), String> {
        let c = self.streams.state(&self.config, frame)?;
        let (red, ir) = (frame.channel(c.red), frame.channel(c.ir));
        if red.len() != ir.len() {
            return Err("spo2.red and spo2.ir hold different sample counts in a frame".into());
        }
        let window = c.rings[0].len();
        for (&r, &i) in red.iter().zip(ir) {
            c.count += 1;
            if !(r.is_finite() && i.is_finite()) {
                c.empty();
                continue;
            }
            c.rings[0][c.head] = f64::from(r);
            c.rings[1][c.head] = f64::from(i);
            c.head = (c.head + 1) % window;
            c.filled = (c.filled + 1).min(window);
            c.until_emit -= 1;
            if c.until_emit > 0 {
                continue;
            }
            c.until_emit = c.hop;
            let (red_ratio, _) = ac_over_dc(&c.rings[0], c.head);
            let (ir_ratio, _) = ac_over_dc(&c.rings[1], c.head);
            let ratio = red_ratio / ir_ratio;
            let end = c.count;
            let start = end - window as u64;
            let values = [
                ratio,
                self.config.a - self.config.b * ratio,
                100.0 * red_ratio,
                100.0 * ir_ratio,
                window as f64 / c.rate,
            ];
            let span = (c.sample_ns(start), c.sample_ns(end));
            out.push(record(frame, &self.kind, span, &c.names, values));
        }
        Ok(())
    }
}

impl Operator for Spo2 {
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>> {
        process_frames(item, out, |frame, out| self.run(frame, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelSpec, Modality, Record};

    const RATE: f64 = 100.0;

    /// Red and IR PPG with modulation depths giving ratio `r`: a pulse
    /// shape (fundamental + harmonic, 75 bpm, a whole number of periods in
    /// 4 s so the window mean is the DC level) scaled per channel.
    fn ppg(r: f64, seconds: f64) -> (Vec<f32>, Vec<f32>) {
        let n = (seconds * RATE) as usize;
        let (m_ir, dc_red, dc_ir) = (0.02, 1200.0, 1800.0);
        let m_red = r * m_ir;
        let mut red = Vec::new();
        let mut ir = Vec::new();
        for i in 0..n {
            let t = i as f64 / RATE;
            let w = 2.0 * std::f64::consts::PI * 1.25 * t;
            let pulse = w.sin() + 0.4 * (2.0 * w + 0.6).sin();
            red.push((dc_red * (1.0 + m_red * pulse)) as f32);
            ir.push((dc_ir * (1.0 + m_ir * pulse)) as f32);
        }
        (red, ir)
    }

    fn run(op: &mut Spo2, red: &[f32], ir: &[f32], frame: usize) -> Vec<Record> {
        let layout = Arc::new(ChannelLayout::new(
            ["red", "ir"]
                .iter()
                .map(|n| ChannelSpec {
                    name: n.to_string(),
                    unit: "au".into(),
                    sample_rate: RATE,
                })
                .collect(),
        ));
        let mut out = Output::default();
        let mut records = Vec::new();
        for (seq, start) in (0..red.len()).step_by(frame).enumerate() {
            let end = (start + frame).min(red.len());
            let samples = red[start..end].iter().chain(&ir[start..end]).copied().collect();
            let f = Frame::new(
                "p".into(),
                Modality::Ppg,
                layout.clone(),
                (start as f64 * 1e9 / RATE).round() as i64,
                seq as u64,
                vec![(end - start) as u32; 2],
                samples,
            )
            .unwrap();
            op.process(Item::Frame(f), &mut out).unwrap();
            records.extend(out.drain().map(|i| match i {
                Item::Record(r) => Record { sequence: 0, ..r },
                Item::Frame(_) => panic!("records only"),
            }));
        }
        records
    }

    #[test]
    fn known_ratio_gives_the_calibrated_saturation() {
        for r in [0.5, 0.8, 1.0, 1.4] {
            let (red, ir) = ppg(r, 20.0);
            let records = run(&mut Spo2::new(Spo2Config::new("red", "ir")), &red, &ir, 4);
            // 4 s windows every 1 s over 20 s: 17 records.
            assert_eq!(records.len(), 17);
            for rec in &records {
                let ratio = rec.values.number(0);
                // f32 samples limit the agreement.
                assert!((ratio - r).abs() < 1e-4 * r, "R {ratio} vs {r}");
                assert!((rec.values.number(1) - (110.0 - 25.0 * ratio)).abs() < 1e-9);
                assert_eq!(rec.end_ns - rec.start_ns, 4_000_000_000);
                assert_eq!(rec.values.name(1), "red+ir.spo2_pct");
            }
        }
        // Calibration from the configuration.
        let (red, ir) = ppg(0.7, 5.0);
        let config = Spo2Config {
            a: 104.0,
            b: 17.0,
            ..Spo2Config::new("red", "ir")
        };
        let records = run(&mut Spo2::new(config), &red, &ir, 7);
        assert!((records[0].values.number(1) - (104.0 - 17.0 * 0.7)).abs() < 0.05);
    }

    #[test]
    fn framing_and_gaps() {
        let (mut red, ir) = ppg(0.9, 15.0);
        let whole = run(&mut Spo2::new(Spo2Config::new("red", "ir")), &red, &ir, red.len());
        for frame in [1, 4, 7] {
            assert_eq!(
                run(&mut Spo2::new(Spo2Config::new("red", "ir")), &red, &ir, frame),
                whole
            );
        }
        red[700] = f32::NAN;
        let records = run(&mut Spo2::new(Spo2Config::new("red", "ir")), &red, &ir, 7);
        let gap_ns = 7_000_000_000;
        assert!(records.iter().all(|r| r.end_ns <= gap_ns || r.start_ns > gap_ns));
        assert!(records.len() < whole.len());
        assert!(records
            .iter()
            .all(|r| r.values.iter().all(|(_, v)| v.is_finite())));
    }
}
