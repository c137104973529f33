//! The runtime cascade of second-order sections: transposed direct form II,
//! several channels per instruction.
//!
//! **Precision.** Coefficients, state and the values between sections are
//! f64; samples are f32 only on the way in and out. A low cut-off puts poles
//! within `2π·fc/fs` of z = 1 (6·10⁻⁴ for 0.1 Hz at 1 kHz), where f32 state
//! rounding is amplified by roughly the inverse square of that distance: the
//! output error would reach the signal's own size. In f64 the same 1-hour
//! 0.1 Hz high-pass stays within 1e-9 of an exact reference (tested).
//!
//! **SIMD.** Channels sharing one design are filtered in groups of
//! [`LANES`] = 4: a frame's planar samples are interleaved into
//! `[time][lane]` f64 rows, each AVX2 instruction then advances four channels
//! by one step, and the rows are written back. [`Kernel::detect`] picks
//! AVX2+FMA at run time when the CPU has it, otherwise a portable scalar loop
//! (one channel at a time, no FMA). Both run the same operations in the same
//! order; under AVX2 the gap path uses scalar FMA, so a channel's output is
//! bitwise the same whichever path (SIMD group or per-channel gap path) and
//! whatever framing it went through.
//!
//! **Gaps.** A non-finite input sample (NaN marks a gap) comes out as NaN and
//! marks its channel for restart: the next valid sample starts from a fresh
//! state, zero or (with warm start) the steady state for that sample.

use super::design::{steady_state, Biquad, DesignError};

/// Channels per SIMD group (f64 lanes of an AVX2 register).
pub const LANES: usize = 4;
/// Sections run per pass over a block; longer cascades take several passes
/// (each section only needs its input, so passes change nothing numerically).
const MAX_SECTIONS_PER_PASS: usize = 8;

/// Which instructions filter the channels. Only [`Kernel::detect`] can choose
/// AVX2, and only when the CPU has it: that is what makes the SIMD calls sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel(KernelKind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KernelKind {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Kernel(KernelKind::Avx2Fma);
        }
        Kernel(KernelKind::Portable)
    }

    /// The scalar fallback, one channel at a time.
    pub fn portable() -> Kernel {
        Kernel(KernelKind::Portable)
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            KernelKind::Portable => "portable scalar",
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2Fma => "AVX2+FMA, 4 channels per instruction",
        }
    }
}

/// One section as the kernels use it: the feedback coefficients negated so
/// every update is a multiply-add.
#[derive(Clone, Copy, Debug, Default)]
struct Section {
    b0: f64,
    b1: f64,
    b2: f64,
    neg_a1: f64,
    neg_a2: f64,
}

impl From<&Biquad> for Section {
    fn from(biquad: &Biquad) -> Self {
        Section {
            b0: biquad.b[0],
            b1: biquad.b[1],
            b2: biquad.b[2],
            neg_a1: -biquad.a[1],
            neg_a2: -biquad.a[2],
        }
    }
}

/// Where one channel's samples lie in a planar buffer: (start, length).
pub type Span = (usize, usize);

/// The state of a set of channels filtered by one cascade.
#[derive(Debug, Clone)]
pub struct ChannelBank {
    kernel: Kernel,
    sections: Vec<Section>,
    /// `sosfilt_zi` of the cascade for a unit input, when warm-starting.
    warm_start: Option<Vec<[f64; 2]>>,
    channels: usize,
    /// Per group of [`LANES`] channels, per section: z1 of each lane, then z2
    /// of each lane.
    state: Vec<f64>,
    /// Per channel: the next valid sample starts the filter afresh.
    restart: Vec<bool>,
    /// `[time][lane]` rows of the group being filtered; grows to the longest
    /// frame seen, then stays.
    rows: Vec<f64>,
    /// One channel's state while the scalar path runs it.
    channel_state: Vec<[f64; 2]>,
}

impl ChannelBank {
    pub fn new(
        biquads: &[Biquad],
        channels: usize,
        warm_start: bool,
        kernel: Kernel,
    ) -> Result<Self, DesignError> {
        let warm_start = if warm_start {
            Some(steady_state(biquads)?)
        } else {
            None
        };
        let groups = channels.div_ceil(LANES);
        Ok(ChannelBank {
            kernel,
            sections: biquads.iter().map(Section::from).collect(),
            warm_start,
            channels,
            state: vec![0.0; groups * biquads.len() * 2 * LANES],
            restart: vec![true; channels],
            rows: Vec::new(),
            channel_state: vec![[0.0; 2]; biquads.len()],
        })
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Forgets all history: every channel restarts at its next valid sample.
    pub fn reset(&mut self) {
        self.restart.fill(true);
    }

    /// Filters the channels in place; `spans[i]` locates channel i in
    /// `samples`. Panics if a span lies outside `samples` or `spans` does not
    /// have one entry per channel.
    pub fn process(&mut self, samples: &mut [f32], spans: &[Span]) {
        assert_eq!(spans.len(), self.channels, "one span per channel");
        for (group, lanes) in spans.chunks(LANES).enumerate() {
            if self.group_fits_simd(samples, lanes) {
                self.process_group_simd(group, samples, lanes);
            } else {
                for (lane, &(start, len)) in lanes.iter().enumerate() {
                    self.process_channel(group, lane, &mut samples[start..start + len]);
                }
            }
        }
    }

    /// SIMD needs an AVX2 kernel, equal lengths and no gap in the group.
    fn group_fits_simd(&self, samples: &[f32], lanes: &[Span]) -> bool {
        if self.kernel == Kernel::portable() {
            return false;
        }
        let len = lanes[0].1;
        lanes
            .iter()
            .all(|&(start, n)| n == len && samples[start..start + n].iter().all(|x| x.is_finite()))
    }

    /// Sets a channel's state for a restart at input `x`.
    fn restart_lane(&mut self, group: usize, lane: usize, x: f64) {
        let size = self.sections.len() * 2 * LANES;
        let state = &mut self.state[group * size..(group + 1) * size];
        for (s, section_state) in state.chunks_exact_mut(2 * LANES).enumerate() {
            let [z1, z2] = self
                .warm_start
                .as_ref()
                .map_or([0.0, 0.0], |zi| [zi[s][0] * x, zi[s][1] * x]);
            section_state[lane] = z1;
            section_state[LANES + lane] = z2;
        }
    }

    fn process_group_simd(&mut self, group: usize, samples: &mut [f32], lanes: &[Span]) {
        let len = lanes[0].1;
        if len == 0 {
            return;
        }
        let channel0 = group * LANES;
        for (lane, &(start, _)) in lanes.iter().enumerate() {
            if self.restart[channel0 + lane] {
                self.restart_lane(group, lane, f64::from(samples[start]));
                self.restart[channel0 + lane] = false;
            }
        }
        self.rows.resize(len * LANES, 0.0);
        let rows = &mut self.rows[..len * LANES];
        interleave(samples, lanes, rows);
        let size = self.sections.len() * 2 * LANES;
        let state = &mut self.state[group * size..(group + 1) * size];
        let passes = self.sections.chunks(MAX_SECTIONS_PER_PASS);
        for (sections, pass_state) in passes.zip(state.chunks_mut(MAX_SECTIONS_PER_PASS * 2 * LANES)) {
            run_pass(self.kernel, sections, pass_state, rows);
        }
        deinterleave(rows, samples, lanes);
    }

    /// The per-channel path: gaps, ragged groups, and the portable kernel.
    fn process_channel(&mut self, group: usize, lane: usize, samples: &mut [f32]) {
        let size = self.sections.len() * 2 * LANES;
        let group_state = &mut self.state[group * size..(group + 1) * size];
        for (s, section_state) in group_state.chunks_exact(2 * LANES).enumerate() {
            self.channel_state[s] = [section_state[lane], section_state[LANES + lane]];
        }
        let channel = ChannelRun {
            sections: &self.sections,
            warm_start: self.warm_start.as_deref(),
            state: &mut self.channel_state,
            restart: &mut self.restart[group * LANES + lane],
        };
        match self.kernel.0 {
            KernelKind::Portable => channel.run::<false>(samples),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an Avx2Fma kernel exists only where the CPU has FMA.
            KernelKind::Avx2Fma => unsafe { run_channel_fma(channel, samples) },
        }
        let group_state = &mut self.state[group * size..(group + 1) * size];
        for (s, section_state) in group_state.chunks_exact_mut(2 * LANES).enumerate() {
            [section_state[lane], section_state[LANES + lane]] = self.channel_state[s];
        }
    }
}

/// Copies a group's channels into `[time][lane]` rows (absent lanes: 0).
fn interleave(samples: &[f32], lanes: &[Span], rows: &mut [f64]) {
    for (lane, &(start, len)) in lanes.iter().enumerate() {
        for (row, &x) in rows.chunks_exact_mut(LANES).zip(&samples[start..start + len]) {
            row[lane] = f64::from(x);
        }
    }
    for lane in lanes.len()..LANES {
        rows.chunks_exact_mut(LANES).for_each(|row| row[lane] = 0.0);
    }
}

fn deinterleave(rows: &[f64], samples: &mut [f32], lanes: &[Span]) {
    for (lane, &(start, len)) in lanes.iter().enumerate() {
        for (row, y) in rows.chunks_exact(LANES).zip(&mut samples[start..start + len]) {
            *y = row[lane] as f32;
        }
    }
}

fn run_pass(kernel: Kernel, sections: &[Section], state: &mut [f64], rows: &mut [f64]) {
    match kernel.0 {
        KernelKind::Portable => unreachable!("the portable kernel filters channel by channel"),
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2Fma => avx2::run_pass(sections, state, rows),
    }
}

/// One channel run through the cascade sample by sample.
struct ChannelRun<'a> {
    sections: &'a [Section],
    warm_start: Option<&'a [[f64; 2]]>,
    state: &'a mut [[f64; 2]],
    restart: &'a mut bool,
}

impl ChannelRun<'_> {
    /// `FUSED` selects `mul_add` (one rounding, as the AVX2 kernel) or a
    /// separate multiply and add (the portable kernel, no FMA needed).
    #[inline(always)]
    fn run<const FUSED: bool>(self, samples: &mut [f32]) {
        for sample in samples {
            if !sample.is_finite() {
                *sample = f32::NAN;
                *self.restart = true;
                continue;
            }
            let mut x = f64::from(*sample);
            if *self.restart {
                for (s, z) in self.state.iter_mut().enumerate() {
                    *z = self
                        .warm_start
                        .map_or([0.0, 0.0], |zi| [zi[s][0] * x, zi[s][1] * x]);
                }
                *self.restart = false;
            }
            for (c, z) in self.sections.iter().zip(self.state.iter_mut()) {
                let y = madd::<FUSED>(c.b0, x, z[0]);
                z[0] = madd::<FUSED>(c.neg_a1, y, madd::<FUSED>(c.b1, x, z[1]));
                z[1] = madd::<FUSED>(c.neg_a2, y, c.b2 * x);
                x = y;
            }
            *sample = x as f32;
        }
    }
}

#[inline(always)]
fn madd<const FUSED: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// # Safety
/// The CPU must support FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn run_channel_fma(channel: ChannelRun<'_>, samples: &mut [f32]) {
    channel.run::<true>(samples)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Section, LANES, MAX_SECTIONS_PER_PASS};

    /// Runs up to [`MAX_SECTIONS_PER_PASS`] sections over `rows`, with the
    /// section count a constant so the state stays in registers.
    pub(super) fn run_pass(sections: &[Section], state: &mut [f64], rows: &mut [f64]) {
        assert!(sections.len() <= MAX_SECTIONS_PER_PASS);
        assert_eq!(state.len(), sections.len() * 2 * LANES);
        assert_eq!(rows.len() % LANES, 0);
        // SAFETY (all arms): this module is reached only through a Kernel
        // that `Kernel::detect` made after finding AVX2 and FMA.
        unsafe {
            match sections.len() {
                1 => run::<1>(sections, state, rows),
                2 => run::<2>(sections, state, rows),
                3 => run::<3>(sections, state, rows),
                4 => run::<4>(sections, state, rows),
                5 => run::<5>(sections, state, rows),
                6 => run::<6>(sections, state, rows),
                7 => run::<7>(sections, state, rows),
                8 => run::<8>(sections, state, rows),
                _ => {}
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA. Every load and store below reads
    /// or writes exactly `LANES` = 4 f64 through a pointer to a chunk of
    /// `chunks_exact(4)`, or to `state[8s..8s+8]` with `s < S` and
    /// `state.len() == 8·S` (asserted by the caller), so all are in bounds.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const S: usize>(sections: &[Section], state: &mut [f64], rows: &mut [f64]) {
        let splat = |s: usize, f: fn(&Section) -> f64| _mm256_set1_pd(f(&sections[s]));
        let b0: [__m256d; S] = std::array::from_fn(|s| splat(s, |c| c.b0));
        let b1: [__m256d; S] = std::array::from_fn(|s| splat(s, |c| c.b1));
        let b2: [__m256d; S] = std::array::from_fn(|s| splat(s, |c| c.b2));
        let na1: [__m256d; S] = std::array::from_fn(|s| splat(s, |c| c.neg_a1));
        let na2: [__m256d; S] = std::array::from_fn(|s| splat(s, |c| c.neg_a2));
        let mut z1: [__m256d; S] = std::array::from_fn(|s| _mm256_loadu_pd(state[8 * s..].as_ptr()));
        let mut z2: [__m256d; S] = std::array::from_fn(|s| _mm256_loadu_pd(state[8 * s + 4..].as_ptr()));
        for row in rows.chunks_exact_mut(LANES) {
            let mut x = _mm256_loadu_pd(row.as_ptr());
            for s in 0..S {
                let y = _mm256_fmadd_pd(b0[s], x, z1[s]);
                z1[s] = _mm256_fmadd_pd(na1[s], y, _mm256_fmadd_pd(b1[s], x, z2[s]));
                z2[s] = _mm256_fmadd_pd(na2[s], y, _mm256_mul_pd(b2[s], x));
                x = y;
            }
            _mm256_storeu_pd(row.as_mut_ptr(), x);
        }
        for s in 0..S {
            _mm256_storeu_pd(state[8 * s..].as_mut_ptr(), z1[s]);
            _mm256_storeu_pd(state[8 * s + 4..].as_mut_ptr(), z2[s]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::design::{butterworth, Band};

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    fn filter(kernel: Kernel, biquads: &[Biquad], channels: usize, data: &[f32], frame: usize) -> Vec<f32> {
        let len = data.len() / channels;
        let mut bank = ChannelBank::new(biquads, channels, true, kernel).unwrap();
        let mut out = vec![0.0; data.len()];
        let mut start = 0;
        while start < len {
            let n = frame.min(len - start);
            let mut planar: Vec<f32> = (0..channels)
                .flat_map(|c| data[c * len + start..c * len + start + n].to_vec())
                .collect();
            let spans: Vec<Span> = (0..channels).map(|c| (c * n, n)).collect();
            bank.process(&mut planar, &spans);
            for c in 0..channels {
                out[c * len + start..c * len + start + n].copy_from_slice(&planar[c * n..(c + 1) * n]);
            }
            start += n;
        }
        out
    }

    #[test]
    fn simd_and_gap_paths_agree_bitwise() {
        // 9 sections (two passes), 6 channels (a partial group).
        let biquads = butterworth(18, Band::Bandpass(1.0, 30.0), 250.0).unwrap();
        assert_eq!(biquads.len(), 18);
        let data = noise(6 * 500, 7);
        let whole = filter(Kernel::detect(), &biquads, 6, &data, 500);
        let mut gappy = data.clone();
        gappy[3 * 500 + 100] = f32::NAN; // forces the per-channel path for one frame
        let by_frame = filter(Kernel::detect(), &biquads, 6, &gappy, 20);
        for c in [0, 1, 2, 4, 5] {
            assert_eq!(whole[c * 500..(c + 1) * 500], by_frame[c * 500..(c + 1) * 500]);
        }
        assert_eq!(whole[3 * 500..3 * 500 + 100], by_frame[3 * 500..3 * 500 + 100]);
        assert!(by_frame[3 * 500 + 100].is_nan());
    }

    #[test]
    fn portable_and_detected_kernels_agree_closely() {
        let biquads = butterworth(4, Band::Bandpass(0.5, 45.0), 128.0).unwrap();
        let data = noise(5 * 1000, 3);
        let fast = filter(Kernel::detect(), &biquads, 5, &data, 37);
        let slow = filter(Kernel::portable(), &biquads, 5, &data, 37);
        for (a, b) in fast.iter().zip(&slow) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn warm_start_passes_a_constant_without_transient() {
        let biquads = butterworth(4, Band::Lowpass(5.0), 100.0).unwrap();
        let mut bank = ChannelBank::new(&biquads, 1, true, Kernel::detect()).unwrap();
        let mut samples = vec![3.0f32; 50];
        bank.process(&mut samples, &[(0, 50)]);
        assert!(samples.iter().all(|y| (y - 3.0).abs() < 1e-5), "{samples:?}");
    }
}
