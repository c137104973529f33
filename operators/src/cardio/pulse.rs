//! A streaming, causal pulse detector for arterial pressure (ABP) and
//! photoplethysmogram (PPG) waveforms, after Zong et al. (2003), "An
//! open-source algorithm to detect onset of arterial blood pressure pulses".
//!
//! Per sample: Butterworth low-pass (order 2, 16 Hz or 0.4 × rate if lower,
//! steady-state start) → slope sum function `SSF[t] = Σ max(0, Δy)` over the
//! last 128 ms. The first [`LEARNING_S`] seconds after a (re)start set the
//! threshold base to 3 × the mean SSF; the threshold is half the base. When
//! the SSF crosses the threshold upwards (outside the 250 ms eye-closing
//! period after the last onset), the crossing is judged exactly 150 ms
//! later: the pulse is accepted when the SSF's rise (maximum in the 150 ms
//! after the crossing minus the minimum in the 150 ms before) exceeds the
//! threshold. Its onset is the last sample before the crossing, at most
//! 300 ms back, where the SSF was below 1 % of that maximum. The base then
//! moves a quarter of the way to the pulse's SSF maximum; with no pulse for
//! [`DECAY_S`] seconds it halves (repeatedly), so a lost signal is found
//! again.
//!
//! A beat spans one onset to the next; for it the detector reports the
//! largest (systolic), smallest (diastolic) and mean sample of the raw
//! signal over `[onset, next onset)`. Beats longer than [`MAX_BEAT_S`] are
//! not reported.

use super::iir::Cascade;
use crate::filters::design::{butterworth, Band, DesignError};

pub const LEARNING_S: f64 = 3.0;
pub const DECAY_S: f64 = 3.0;
pub const MAX_BEAT_S: f64 = 2.5;
const SSF_WINDOW_S: f64 = 0.128;
const JUDGE_S: f64 = 0.15;
const EYE_CLOSING_S: f64 = 0.25;
const ONSET_SEARCH_S: f64 = 0.3;

/// One beat: sample indices count from the detector's last reset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pulse {
    pub onset: u64,
    /// The next beat's onset, which ends this one.
    pub end: u64,
    /// The sample whose arrival reported the beat.
    pub decided: u64,
    pub systolic: f64,
    pub diastolic: f64,
    pub mean: f64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct PulseDetector {
    lowpass: Cascade,
    window: usize,
    judge: u64,
    eye_closing: u64,
    onset_search: u64,
    learning: u64,
    decay: u64,
    max_beat: u64,
    raw: Vec<f64>,
    /// The low-passed signal.
    smooth: Vec<f64>,
    ssf: Vec<f64>,
    rises: Vec<f64>,
    previous_y: f64,
    t: u64,
    learn_sum: f64,
    base: f64,
    /// The upward crossing awaiting judgement.
    crossing: Option<u64>,
    last_onset: Option<u64>,
    last_event: u64,
    pulses: std::collections::VecDeque<Pulse>,
}

impl PulseDetector {
    pub fn new(rate: f64) -> Result<Self, DesignError> {
        let cutoff = 16.0f64.min(0.4 * rate);
        let lowpass = Cascade::new(butterworth(2, Band::Lowpass(cutoff), rate)?)?;
        let samples = |s: f64| (s * rate).round().max(1.0) as u64;
        let max_beat = samples(MAX_BEAT_S);
        let ring = (max_beat + samples(JUDGE_S) + samples(ONSET_SEARCH_S) + 8) as usize;
        Ok(Self {
            lowpass,
            window: samples(SSF_WINDOW_S) as usize,
            judge: samples(JUDGE_S),
            eye_closing: samples(EYE_CLOSING_S),
            onset_search: samples(ONSET_SEARCH_S),
            learning: samples(LEARNING_S),
            decay: samples(DECAY_S),
            max_beat,
            raw: vec![0.0; ring],
            smooth: vec![0.0; ring],
            ssf: vec![0.0; ring],
            rises: vec![0.0; samples(SSF_WINDOW_S) as usize],
            previous_y: 0.0,
            t: 0,
            learn_sum: 0.0,
            base: 0.0,
            crossing: None,
            last_onset: None,
            last_event: 0,
            pulses: Default::default(),
        })
    }

    /// The longest time from a beat's end (the next onset) to the sample
    /// that reports it: the onset lies at most 300 ms before the crossing,
    /// which is judged 150 ms after it. Samples.
    pub fn max_delay(&self) -> u64 {
        self.onset_search + self.judge
    }

    pub fn reset(&mut self) {
        self.lowpass.reset();
        self.t = 0;
        self.learn_sum = 0.0;
        self.base = 0.0;
        self.crossing = None;
        self.last_onset = None;
        self.last_event = 0;
        self.pulses.clear();
    }

    pub fn next_pulse(&mut self) -> Option<Pulse> {
        self.pulses.pop_front()
    }

    fn at(ring: &[f64], i: u64) -> f64 {
        ring[(i % ring.len() as u64) as usize]
    }

    fn threshold(&self) -> f64 {
        0.5 * self.base
    }

    /// Takes one (finite) sample.
    pub fn push(&mut self, x: f32) {
        let x = f64::from(x);
        let t = self.t;
        let slot = (t % self.raw.len() as u64) as usize;
        let y = self.lowpass.step(x);
        let rise = if t == 0 {
            0.0
        } else {
            (y - self.previous_y).max(0.0)
        };
        self.previous_y = y;
        self.rises[(t % self.window as u64) as usize] = rise;
        let filled = (t + 1).min(self.window as u64) as usize;
        let ssf = self.rises[..filled].iter().sum::<f64>();
        self.raw[slot] = x;
        self.smooth[slot] = y;
        self.ssf[slot] = ssf;
        self.t += 1;
        if t < self.learning {
            self.learn_sum += ssf;
            if t + 1 == self.learning {
                self.base = 3.0 * self.learn_sum / self.learning as f64;
                self.last_event = t;
            }
            return;
        }
        let thr = self.threshold();
        let refractory = self.last_onset.is_some_and(|o| t < o + self.eye_closing);
        if self.crossing.is_none()
            && !refractory
            && thr > 0.0
            && ssf >= thr
            && Self::at(&self.ssf, t - 1) < thr
        {
            self.crossing = Some(t);
        }
        if let Some(c) = self.crossing {
            if t == c + self.judge {
                self.crossing = None;
                self.judge_crossing(c, t);
            }
        }
        if t - self.last_event > self.decay {
            self.base *= 0.5;
            self.last_event = t;
        }
    }

    fn judge_crossing(&mut self, c: u64, t: u64) {
        let max = (c..=t).map(|j| Self::at(&self.ssf, j)).fold(f64::MIN, f64::max);
        let from = c
            .saturating_sub(self.judge)
            .max(t.saturating_sub(self.ssf.len() as u64 - 1));
        let min = (from..=c)
            .map(|j| Self::at(&self.ssf, j))
            .fold(f64::MAX, f64::min);
        if max - min <= self.threshold() {
            return;
        }
        // The foot: walking back from the crossing while the low-passed
        // signal keeps falling, the first local minimum.
        let lowest = c.saturating_sub(self.onset_search);
        let mut onset = c;
        while onset > lowest && Self::at(&self.smooth, onset - 1) <= Self::at(&self.smooth, onset) {
            onset -= 1;
        }
        if self.last_onset.is_some_and(|o| onset <= o) {
            return;
        }
        self.base += (max - self.base) / 4.0;
        self.last_event = t;
        if let Some(previous) = self.last_onset {
            if onset - previous <= self.max_beat {
                let (mut hi, mut lo, mut sum) = (f64::MIN, f64::MAX, 0.0);
                for k in previous..onset {
                    let v = Self::at(&self.raw, k);
                    hi = hi.max(v);
                    lo = lo.min(v);
                    sum += v;
                }
                self.pulses.push_back(Pulse {
                    onset: previous,
                    end: onset,
                    decided: t,
                    systolic: hi,
                    diastolic: lo,
                    mean: sum / (onset - previous) as f64,
                });
            }
        }
        self.last_onset = Some(onset);
    }
}
