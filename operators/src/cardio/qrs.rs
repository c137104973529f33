//! A streaming, causal QRS (R-peak) detector after Pan & Tompkins (1985).
//!
//! Per sample: Butterworth band-pass 5–15 Hz (order 2, steady-state start) →
//! five-point derivative → square → moving-window integration (150 ms).
//! A sample of the integrated signal (MWI) is a *candidate* when it is the
//! largest within ±200 ms (ties go to the later sample), which is decided
//! exactly 200 ms after it: the refractory period. Candidates are classified
//! with Pan–Tompkins' adaptive thresholds on the MWI
//! (`SPKI`, `NPKI`, `THR1 = NPKI + 0.25·(SPKI − NPKI)`, `THR2 = THR1 / 2`),
//! a T-wave test (a candidate within 360 ms of the last beat whose steepest
//! slope is under half the last beat's is noise) and a search-back: when no
//! beat came for 1.66 × the mean of the last 8 RR intervals, the largest
//! pending candidate above `THR2` becomes a beat. Pending candidates are
//! kept at most [`LOOK_BACK_S`] seconds, which bounds every beat's delay.
//!
//! The R peak is located on the raw signal: the largest |band-passed| value
//! in the candidate's integration window, moved back by the band-pass group
//! delay at 10 Hz, then refined to the largest deviation of the raw signal
//! from the straight line joining the ends of a ±60 ms window.
//!
//! The first [`LEARNING_S`] seconds after a (re)start set the thresholds
//! (`SPKI` = half the largest MWI value, `NPKI` = half its mean); the
//! candidates seen meanwhile are then classified in order, so beats of the
//! learning period are not lost. With no beat for [`RELEARN_S`] seconds
//! the detector learns again (thresholds from the last seconds).
//!
//! Every state is a function of the samples since the last [`QrsDetector::reset`],
//! so results do not depend on how the stream was cut into frames.

use std::collections::VecDeque;

use super::iir::Cascade;
use crate::filters::design::{butterworth, Band, DesignError};

/// Seconds of signal that set the initial thresholds.
pub const LEARNING_S: f64 = 2.0;
/// How long an unclassified candidate may still become a beat by search-back.
pub const LOOK_BACK_S: f64 = 3.0;
/// With no beat for this long the thresholds are learnt again.
pub const RELEARN_S: f64 = 6.0;
/// Half-width of the MWI local-maximum test, and the refractory period.
const REFRACTORY_S: f64 = 0.2;
const INTEGRATION_S: f64 = 0.15;
const T_WAVE_S: f64 = 0.36;
const REFINE_S: f64 = 0.06;
/// Mean RR is clamped to this, so the search-back starts within the look-back.
const MAX_MEAN_RR_S: f64 = 1.6;

/// One detected beat. Sample indices count from the detector's last reset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Beat {
    /// The R peak.
    pub r: u64,
    /// The sample whose arrival made the decision (the delay is `decided - r`).
    pub decided: u64,
    /// Found by search-back rather than by the primary threshold.
    pub search_back: bool,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    /// MWI peak sample and value.
    p: u64,
    value: f64,
    /// Steepest |derivative| in the integration window.
    slope: f64,
    /// R peak location.
    r: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct QrsDetector {
    rate: f64,
    bandpass: Cascade,
    /// Band-pass group delay at 10 Hz, samples (rounded).
    filter_delay: u64,
    refractory: u64,
    integration: usize,
    t_wave: u64,
    refine: u64,
    learning: u64,
    look_back: u64,
    relearn: u64,
    /// Rings indexed by sample index modulo their length.
    raw: Vec<f64>,
    bp: Vec<f64>,
    slope: Vec<f64>,
    squares: Vec<f64>,
    mwi: Vec<f64>,
    /// Samples taken since reset.
    t: u64,
    // Thresholds.
    spki: f64,
    npki: f64,
    /// Learning: until this sample, collect candidates and MWI statistics.
    learn_until: u64,
    learn_max: f64,
    learn_sum: f64,
    learn_count: u64,
    learn_candidates: Vec<Candidate>,
    /// Unclassified/noise candidates since the last beat (search-back pool).
    pending: VecDeque<Candidate>,
    last: Option<Candidate>,
    /// When the last beat or learning ended, for the relearn timer.
    last_event: u64,
    rr: [f64; 8],
    rr_len: usize,
    rr_pos: usize,
    beats: VecDeque<Beat>,
}

impl QrsDetector {
    pub fn new(rate: f64) -> Result<Self, DesignError> {
        let sections = butterworth(2, Band::Bandpass(5.0, 15.0), rate)?;
        let bandpass = Cascade::new(sections)?;
        let samples = |s: f64| (s * rate).round().max(1.0) as u64;
        let filter_delay = bandpass.group_delay(10.0, rate).round().max(0.0) as u64;
        let refractory = samples(REFRACTORY_S);
        let integration = samples(INTEGRATION_S) as usize;
        let refine = samples(REFINE_S);
        // Ring: the candidate is decided `refractory` after its MWI peak; the
        // R search reaches `integration + filter_delay + 2 + refine` before
        // that peak and `refine` after; plus margin.
        let ring = (2 * refractory + integration as u64 + filter_delay + 2 * refine + 8) as usize;
        let learning = samples(LEARNING_S);
        Ok(Self {
            rate,
            bandpass,
            filter_delay,
            refractory,
            integration,
            t_wave: samples(T_WAVE_S),
            refine,
            learning,
            look_back: samples(LOOK_BACK_S),
            relearn: samples(RELEARN_S),
            raw: vec![0.0; ring],
            bp: vec![0.0; ring],
            slope: vec![0.0; ring],
            squares: vec![0.0; integration],
            mwi: vec![0.0; ring],
            t: 0,
            spki: 0.0,
            npki: 0.0,
            learn_until: learning,
            learn_max: 0.0,
            learn_sum: 0.0,
            learn_count: 0,
            learn_candidates: Vec::new(),
            pending: VecDeque::new(),
            last: None,
            last_event: 0,
            rr: [0.0; 8],
            rr_len: 0,
            rr_pos: 0,
            beats: VecDeque::new(),
        })
    }

    pub fn sample_rate(&self) -> f64 {
        self.rate
    }

    /// The longest time from an R peak to the sample that reports it, in
    /// samples: a candidate's MWI peak lies at most `integration +
    /// filter_delay + refine` after its R peak, and it is reported at the
    /// latest `look_back` after that peak (search-back), or at the end of
    /// the learning period.
    pub fn max_delay(&self) -> u64 {
        self.integration as u64 + self.filter_delay + self.refine + self.look_back.max(self.learning)
    }

    /// The usual delay: a beat found by the primary threshold is reported
    /// `refractory` (200 ms) after its MWI peak, which lies
    /// `integration / 2 + filter_delay + 2` samples after the R peak for a
    /// symmetric QRS: this value, in samples.
    pub fn typical_delay(&self) -> u64 {
        self.refractory + self.integration as u64 / 2 + self.filter_delay + 2
    }

    /// Forgets everything: the next sample is sample 0 of a new segment.
    pub fn reset(&mut self) {
        self.bandpass.reset();
        self.t = 0;
        self.spki = 0.0;
        self.npki = 0.0;
        self.start_learning(0);
        self.pending.clear();
        self.last = None;
        self.last_event = 0;
        self.rr_len = 0;
        self.rr_pos = 0;
        self.beats.clear();
    }

    fn start_learning(&mut self, from: u64) {
        self.learn_until = from + self.learning;
        self.learn_max = 0.0;
        self.learn_sum = 0.0;
        self.learn_count = 0;
        self.learn_candidates.clear();
    }

    /// The oldest beat decided and not yet taken (beats come in R order).
    pub fn next_beat(&mut self) -> Option<Beat> {
        self.beats.pop_front()
    }

    fn at(ring: &[f64], i: u64) -> f64 {
        ring[(i % ring.len() as u64) as usize]
    }

    /// Takes one (finite) sample.
    pub fn push(&mut self, x: f32) {
        let x = f64::from(x);
        let t = self.t;
        let n = self.raw.len() as u64;
        let slot = (t % n) as usize;
        let y = self.bandpass.step(x);
        self.raw[slot] = x;
        self.bp[slot] = y;
        // Five-point derivative (2y[n] + y[n-1] - y[n-3] - 2y[n-4]) / 8; the
        // band-pass history before sample 0 is the first value.
        let past = |k: u64| {
            if t >= k {
                Self::at(&self.bp, t - k)
            } else {
                Self::at(&self.bp, 0)
            }
        };
        let d = (2.0 * y + past(1) - past(3) - 2.0 * past(4)) * self.rate / 8.0;
        self.slope[slot] = d.abs();
        self.squares[(t % self.integration as u64) as usize] = d * d;
        let filled = (t + 1).min(self.integration as u64) as usize;
        let m = self.squares[..filled].iter().sum::<f64>() / self.integration as f64;
        self.mwi[slot] = m;
        if t < self.learn_until {
            self.learn_max = self.learn_max.max(m);
            self.learn_sum += m;
            self.learn_count += 1;
        }
        if t >= self.refractory {
            self.consider(t - self.refractory);
        }
        if t + 1 == self.learn_until {
            self.end_learning();
        }
        self.search_back();
        self.t += 1;
    }

    /// Is MWI sample `c` a local maximum of ±refractory (decided now)?
    fn consider(&mut self, c: u64) {
        let v = Self::at(&self.mwi, c);
        if v <= 0.0 {
            return;
        }
        let left = c.saturating_sub(self.refractory);
        if (left..c).any(|j| Self::at(&self.mwi, j) > v)
            || (c + 1..=self.t).any(|j| Self::at(&self.mwi, j) >= v)
        {
            return;
        }
        let candidate = self.candidate(c, v);
        if self.t < self.learn_until {
            self.learn_candidates.push(candidate);
        } else {
            self.classify(candidate);
        }
    }

    fn candidate(&self, p: u64, value: f64) -> Candidate {
        let window = (p + 1).saturating_sub(self.integration as u64)..=p;
        let mut slope = 0.0f64;
        let mut best = (p, -1.0f64);
        for j in window {
            slope = slope.max(Self::at(&self.slope, j));
            let b = Self::at(&self.bp, j).abs();
            if b > best.1 {
                best = (j, b);
            }
        }
        // The band-passed peak lags the raw one by the group delay (and the
        // derivative's two samples do not apply to the band-passed signal).
        let estimate = best.0.saturating_sub(self.filter_delay);
        let lo = estimate.saturating_sub(self.refine);
        let hi = (estimate + self.refine).min(self.t);
        let (x0, x1) = (Self::at(&self.raw, lo), Self::at(&self.raw, hi));
        let span = (hi - lo).max(1) as f64;
        let mut r = (estimate, -1.0f64);
        for j in lo..=hi {
            let line = x0 + (x1 - x0) * (j - lo) as f64 / span;
            let dev = (Self::at(&self.raw, j) - line).abs();
            if dev > r.1 {
                r = (j, dev);
            }
        }
        Candidate {
            p,
            value,
            slope,
            r: r.0,
        }
    }

    fn end_learning(&mut self) {
        let mean = self.learn_sum / self.learn_count.max(1) as f64;
        self.spki = 0.5 * self.learn_max;
        self.npki = 0.5 * mean;
        self.last_event = self.t;
        let candidates = std::mem::take(&mut self.learn_candidates);
        for &c in &candidates {
            self.classify(c);
        }
        self.learn_candidates = candidates;
        self.learn_candidates.clear();
    }

    fn thr1(&self) -> f64 {
        self.npki + 0.25 * (self.spki - self.npki)
    }

    fn mean_rr(&self) -> f64 {
        if self.rr_len == 0 {
            return self.rate;
        }
        let mean = self.rr[..self.rr_len].iter().sum::<f64>() / self.rr_len as f64;
        mean.min(MAX_MEAN_RR_S * self.rate)
    }

    fn classify(&mut self, c: Candidate) {
        let is_t_wave = self
            .last
            .is_some_and(|last| c.p.saturating_sub(last.p) < self.t_wave && c.slope < 0.5 * last.slope);
        if c.value > self.thr1() && !is_t_wave {
            self.spki = 0.125 * c.value + 0.875 * self.spki;
            self.accept(c, false);
        } else {
            self.npki = 0.125 * c.value + 0.875 * self.npki;
            self.pending.push_back(c);
        }
    }

    fn accept(&mut self, c: Candidate, search_back: bool) {
        if let Some(last) = self.last {
            if c.r <= last.r {
                return;
            }
            let rr = (c.r - last.r) as f64;
            self.rr[self.rr_pos] = rr;
            self.rr_pos = (self.rr_pos + 1) % self.rr.len();
            self.rr_len = (self.rr_len + 1).min(self.rr.len());
        }
        self.pending.retain(|p| p.p > c.p);
        self.last = Some(c);
        self.last_event = self.t;
        self.beats.push_back(Beat {
            r: c.r,
            decided: self.t,
            search_back,
        });
    }

    fn search_back(&mut self) {
        if self.t < self.learn_until {
            return;
        }
        // Bounded look-back: older candidates can no longer become beats.
        let oldest = self.t.saturating_sub(self.look_back);
        while self.pending.front().is_some_and(|c| c.p < oldest) {
            self.pending.pop_front();
        }
        if let Some(last) = self.last {
            let decided_until = self.t.saturating_sub(self.refractory);
            if (decided_until.saturating_sub(last.p)) as f64 > 1.66 * self.mean_rr() {
                let thr2 = 0.5 * self.thr1();
                let best = self
                    .pending
                    .iter()
                    .filter(|c| c.value > thr2 && c.p.saturating_sub(last.p) >= self.t_wave)
                    .max_by(|a, b| a.value.total_cmp(&b.value))
                    .copied();
                if let Some(c) = best {
                    self.spki = 0.25 * c.value + 0.75 * self.spki;
                    self.accept(c, true);
                }
            }
        }
        if self.t - self.last_event > self.relearn {
            // Nothing for a long time: learn the thresholds again from now.
            self.pending.clear();
            self.last = None;
            self.rr_len = 0;
            self.start_learning(self.t + 1);
            self.last_event = self.t;
        }
    }
}
