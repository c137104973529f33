//! A scalar f64 biquad cascade (transposed direct form II, as
//! `scipy.signal.sosfilt`) for the one channel a cardiac detector follows.

use std::f64::consts::PI;

use crate::filters::design::{steady_state, Biquad, DesignError};

/// One channel through a cascade of second-order sections.
#[derive(Clone, Debug)]
pub(crate) struct Cascade {
    sections: Vec<Biquad>,
    /// `sosfilt_zi` for a unit input: the state after a settled step.
    unit_state: Vec<[f64; 2]>,
    state: Vec<[f64; 2]>,
    started: bool,
}

impl Cascade {
    pub(crate) fn new(sections: Vec<Biquad>) -> Result<Self, DesignError> {
        let unit_state = steady_state(&sections)?;
        let state = vec![[0.0; 2]; sections.len()];
        Ok(Self {
            sections,
            unit_state,
            state,
            started: false,
        })
    }

    /// Forgets the history; the next sample starts the filter as if it had
    /// always been there (steady state), so a DC offset makes no transient.
    pub(crate) fn reset(&mut self) {
        self.started = false;
    }

    pub(crate) fn step(&mut self, x: f64) -> f64 {
        if !self.started {
            for (s, zi) in self.state.iter_mut().zip(&self.unit_state) {
                *s = [zi[0] * x, zi[1] * x];
            }
            self.started = true;
        }
        let mut v = x;
        for (section, z) in self.sections.iter().zip(self.state.iter_mut()) {
            let y = section.b[0] * v + z[0];
            z[0] = section.b[1] * v - section.a[1] * y + z[1];
            z[1] = section.b[2] * v - section.a[2] * y;
            v = y;
        }
        v
    }

    /// Group delay in samples at `frequency` Hz (numerical phase derivative).
    pub(crate) fn group_delay(&self, frequency: f64, sample_rate: f64) -> f64 {
        let phase = |f: f64| -> f64 {
            let w = 2.0 * PI * f / sample_rate;
            self.sections
                .iter()
                .map(|s| {
                    let eval = |c: &[f64; 3]| {
                        let re = c[0] + c[1] * w.cos() + c[2] * (2.0 * w).cos();
                        let im = -c[1] * w.sin() - c[2] * (2.0 * w).sin();
                        im.atan2(re)
                    };
                    eval(&s.b) - eval(&s.a)
                })
                .sum()
        };
        let df = 1e-4 * sample_rate;
        let mut dphi = phase(frequency + df) - phase(frequency - df);
        // Unwrap the difference.
        while dphi > PI {
            dphi -= 2.0 * PI;
        }
        while dphi < -PI {
            dphi += 2.0 * PI;
        }
        -dphi / (2.0 * PI * 2.0 * df / sample_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::design::{butterworth, Band};

    #[test]
    fn steady_start_and_group_delay() {
        let mut c = Cascade::new(butterworth(2, Band::Lowpass(10.0), 360.0).unwrap()).unwrap();
        // A constant input passes a lowpass unchanged from the first sample.
        for _ in 0..10 {
            assert!((c.step(5.0) - 5.0).abs() < 1e-9);
        }
        // A 2nd-order Butterworth low-pass has group delay sqrt(2)/(2π fc)
        // seconds near DC.
        let gd = c.group_delay(0.1, 360.0) / 360.0;
        let expected = 2f64.sqrt() / (2.0 * PI * 10.0);
        assert!((gd - expected).abs() / expected < 0.02, "{gd} vs {expected}");
    }
}
