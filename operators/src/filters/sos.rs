//! The runtime cascade of second-order sections: transposed direct form II,
//! several channels per instruction.
//!
//! **Precision.** Coefficients, state and the values between sections are
//! f64; samples are f32 only on the way in and out. A low cut-off puts poles
//! within `2π·fc/fs` of z = 1 (6·10⁻⁴ for 0.1 Hz at 1 kHz), where f32 state
//! rounding is amplified by roughly the inverse square of that distance and
//! the output error would approach the signal's own size; in f64 a one-hour
//! 0.1 Hz high-pass at 1 kHz stays within 1e-9 (relative RMS) of an exact
//! reference (tested in `engine/tests/filters_reference.rs`).
//!
//! **SIMD.** Channels sharing one design are filtered in groups of
//! [`LANES`] = 4 f64 lanes, up to four groups side by side. The AVX2 kernel
//! reads 4 samples of each of 4 channels, widens them to f64 and transposes
//! them in registers, so each FMA advances four channels by one step; it then
//! transposes back and writes f32. No buffer in between, no allocation.
//! [`Kernel::detect`] picks AVX2+FMA at run time when the CPU has it,
//! otherwise a portable scalar loop (one channel at a time, no FMA).
//!
//! **Bitwise framing independence.** A channel's output does not depend on
//! how its samples were cut into frames. The AVX2 kernel advances the state
//! only by the samples present (a frame's last step may hold fewer than 4);
//! gaps, ragged groups and cascades longer
//! than [`MAX_SIMD_SECTIONS`] go through a scalar loop that uses the same
//! fused multiply-adds in the same order, so whichever path a sample takes
//! the result is the same bits.
//!
//! **Gaps.** A non-finite input sample (NaN marks a gap) comes out as NaN and
//! marks its channel for restart: the next valid sample starts from a fresh
//! state, zero or (with warm start) the steady state for that sample.

use super::design::{steady_state, Biquad, DesignError};

/// Channels per SIMD group (f64 lanes of an AVX2 register).
pub const LANES: usize = 4;
/// Groups that share one pass over the samples: a row of channels.
const GROUPS_PER_ROW: usize = 4;
const CHANNELS_PER_ROW: usize = LANES * GROUPS_PER_ROW;
/// Longest cascade the SIMD kernel runs (order 24 low-pass, 12 band-pass);
/// longer ones use the scalar loop.
pub const MAX_SIMD_SECTIONS: usize = 12;

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
    /// Zeros read by the absent lanes of a partly filled group (and written
    /// to, then zeroed again); grows to the longest frame, then stays.
    padding: Vec<f32>,
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
            padding: Vec::new(),
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
    /// `samples`. Panics if a span lies outside `samples`, two spans overlap,
    /// or `spans` does not have one entry per channel.
    pub fn process(&mut self, samples: &mut [f32], spans: &[Span]) {
        assert_eq!(spans.len(), self.channels, "one span per channel");
        for (row, row_spans) in spans.chunks(CHANNELS_PER_ROW).enumerate() {
            let first_group = row * GROUPS_PER_ROW;
            let simd_len = if self.row_fits_simd(samples, row_spans) {
                self.process_row_simd(first_group, samples, row_spans)
            } else {
                0
            };
            for (i, &(start, len)) in row_spans.iter().enumerate() {
                let rest = &mut samples[start + simd_len..start + len];
                self.process_channel(first_group + i / LANES, i % LANES, rest);
            }
        }
    }

    /// SIMD needs an AVX2 kernel, a cascade it takes, equal lengths and no
    /// gap in the row.
    fn row_fits_simd(&self, samples: &[f32], spans: &[Span]) -> bool {
        if self.kernel == Kernel::portable() || self.sections.len() > MAX_SIMD_SECTIONS {
            return false;
        }
        let len = spans[0].1;
        let all_finite = |x: &[f32]| x.iter().fold(true, |ok, x| ok & x.is_finite());
        spans
            .iter()
            .all(|&(start, n)| n == len && all_finite(&samples[start..start + n]))
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

    /// Filters up to [`CHANNELS_PER_ROW`] gap-free channels of equal length;
    /// returns how many samples of each it filtered (all of them).
    fn process_row_simd(&mut self, first_group: usize, samples: &mut [f32], spans: &[Span]) -> usize {
        let simd_len = spans[0].1;
        if simd_len == 0 {
            return 0;
        }
        for (i, &(start, _)) in spans.iter().enumerate() {
            let channel = first_group * LANES + i;
            if self.restart[channel] {
                self.restart_lane(first_group + i / LANES, i % LANES, f64::from(samples[start]));
                self.restart[channel] = false;
            }
        }
        let groups = spans.len().div_ceil(LANES);
        let group_size = self.sections.len() * 2 * LANES;
        let state = &mut self.state[first_group * group_size..(first_group + groups) * group_size];
        let absent = groups * LANES - spans.len();
        self.padding.clear();
        self.padding.resize(absent * simd_len, 0.0);
        let mut channels = disjoint_channels(samples, spans, simd_len);
        for (i, lane) in self.padding.chunks_exact_mut(simd_len).enumerate() {
            channels[spans.len() + i] = lane;
        }
        run_simd(
            self.kernel,
            &self.sections,
            state,
            &mut channels[..groups * LANES],
        );
        simd_len
    }

    /// The per-channel path: gaps, ragged groups, long cascades
    /// and the portable kernel.
    fn process_channel(&mut self, group: usize, lane: usize, samples: &mut [f32]) {
        if samples.is_empty() {
            return;
        }
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

/// The first `len` samples of each span as separate mutable slices, in span
/// order (found by splitting the buffer in address order; panics on overlap).
fn disjoint_channels<'a>(
    samples: &'a mut [f32],
    spans: &[Span],
    len: usize,
) -> [&'a mut [f32]; CHANNELS_PER_ROW] {
    let mut channels: [&mut [f32]; CHANNELS_PER_ROW] = std::array::from_fn(|_| &mut [][..]);
    let mut order: [usize; CHANNELS_PER_ROW] = std::array::from_fn(|i| i);
    let order = &mut order[..spans.len()];
    if !order.is_sorted_by_key(|&i| spans[i].0) {
        order.sort_unstable_by_key(|&i| spans[i].0);
    }
    let mut rest = samples;
    let mut consumed = 0;
    for &i in order.iter() {
        let (start, span_len) = spans[i];
        let skip = start.checked_sub(consumed).expect("channel spans overlap");
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(skip);
        let (channel, tail) = tail.split_at_mut(span_len);
        channels[i] = &mut channel[..len];
        rest = tail;
        consumed = start + span_len;
    }
    channels
}

fn run_simd(kernel: Kernel, sections: &[Section], state: &mut [f64], channels: &mut [&mut [f32]]) {
    match kernel.0 {
        KernelKind::Portable => unreachable!("the portable kernel filters channel by channel"),
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2Fma => avx2::filter_row(sections, state, channels),
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

    use super::{Section, CHANNELS_PER_ROW, LANES, MAX_SIMD_SECTIONS};

    /// Groups run side by side: enough independent recurrences to hide the
    /// feedback latency (two dependent FMAs per section and sample), few
    /// enough that their state fits the 16 vector registers.
    fn groups_side_by_side(sections: usize) -> usize {
        match sections {
            1 => 4,
            2 => 3,
            3 | 4 => 2,
            _ => 1,
        }
    }

    /// Filters `channels` (4 per group, equal lengths);
    /// `state` holds their groups one after the other.
    pub(super) fn filter_row(sections: &[Section], state: &mut [f64], channels: &mut [&mut [f32]]) {
        let groups = channels.len() / LANES;
        let len = channels[0].len();
        assert!(channels.len().is_multiple_of(LANES));
        assert!(channels.iter().all(|c| c.len() == len));
        assert!(sections.len() <= MAX_SIMD_SECTIONS && state.len() == groups * sections.len() * 2 * LANES);
        let group_size = sections.len() * 2 * LANES;
        let step = groups_side_by_side(sections.len());
        for first in (0..groups).step_by(step) {
            let count = step.min(groups - first);
            let state = &mut state[first * group_size..(first + count) * group_size];
            let channels = &mut channels[first * LANES..(first + count) * LANES];
            match count {
                1 => by_sections::<1>(sections, state, channels),
                2 => by_sections::<2>(sections, state, channels),
                3 => by_sections::<3>(sections, state, channels),
                _ => by_sections::<4>(sections, state, channels),
            }
        }
    }

    fn by_sections<const G: usize>(sections: &[Section], state: &mut [f64], channels: &mut [&mut [f32]]) {
        assert!(channels.len() == G * LANES);
        // SAFETY (all arms): this module is reached only through a Kernel
        // that `Kernel::detect` made after finding AVX2 and FMA.
        unsafe {
            match sections.len() {
                1 => run::<1, G>(sections, state, channels),
                2 => run::<2, G>(sections, state, channels),
                3 => run::<3, G>(sections, state, channels),
                4 => run::<4, G>(sections, state, channels),
                5 => run::<5, G>(sections, state, channels),
                6 => run::<6, G>(sections, state, channels),
                7 => run::<7, G>(sections, state, channels),
                8 => run::<8, G>(sections, state, channels),
                9 => run::<9, G>(sections, state, channels),
                10 => run::<10, G>(sections, state, channels),
                11 => run::<11, G>(sections, state, channels),
                12 => run::<12, G>(sections, state, channels),
                _ => unreachable!("filter_row checks the section count"),
            }
        }
    }

    /// Four samples of four channels (one per vector) become four time
    /// steps (one per vector, a channel per lane), and back.
    #[inline(always)]
    unsafe fn transpose(v: [__m256d; 4]) -> [__m256d; 4] {
        let t0 = _mm256_unpacklo_pd(v[0], v[1]);
        let t1 = _mm256_unpackhi_pd(v[0], v[1]);
        let t2 = _mm256_unpacklo_pd(v[2], v[3]);
        let t3 = _mm256_unpackhi_pd(v[2], v[3]);
        [
            _mm256_permute2f128_pd::<0x20>(t0, t2),
            _mm256_permute2f128_pd::<0x20>(t1, t3),
            _mm256_permute2f128_pd::<0x31>(t0, t2),
            _mm256_permute2f128_pd::<0x31>(t1, t3),
        ]
    }

    /// The broadcast coefficients of S sections.
    struct Coefficients<const S: usize> {
        b0: [__m256d; S],
        b1: [__m256d; S],
        b2: [__m256d; S],
        neg_a1: [__m256d; S],
        neg_a2: [__m256d; S],
    }

    /// State of S sections for G groups (z1 and z2, a vector per group).
    struct State<const S: usize, const G: usize> {
        z1: [[__m256d; G]; S],
        z2: [[__m256d; G]; S],
    }

    /// S sections over G groups of 4 channels, 4 samples at a time.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. Every load and store moves exactly
    /// 4 values through the pointer of a slice of 4: `state[i..i + 4]`
    /// (bounds-checked), a 4-long padded copy, or 4 samples of a channel at
    /// `t + 4 <= len`, where the channels are distinct `&mut` slices of `len`
    /// samples (asserted by `filter_row`) borrowed for the whole call.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const S: usize, const G: usize>(
        sections: &[Section],
        state: &mut [f64],
        channels: &mut [&mut [f32]],
    ) {
        let group_size = state.len() / G;
        let z1_at = |s: usize, g: usize| g * group_size + 2 * LANES * s;
        let splat = |s: usize, f: fn(&Section) -> f64| _mm256_set1_pd(f(&sections[s]));
        let coefficients = Coefficients::<S> {
            b0: std::array::from_fn(|s| splat(s, |c| c.b0)),
            b1: std::array::from_fn(|s| splat(s, |c| c.b1)),
            b2: std::array::from_fn(|s| splat(s, |c| c.b2)),
            neg_a1: std::array::from_fn(|s| splat(s, |c| c.neg_a1)),
            neg_a2: std::array::from_fn(|s| splat(s, |c| c.neg_a2)),
        };
        let load = |i: usize| _mm256_loadu_pd(state[i..i + LANES].as_ptr());
        let mut z = State::<S, G> {
            z1: std::array::from_fn(|s| std::array::from_fn(|g| load(z1_at(s, g)))),
            z2: std::array::from_fn(|s| std::array::from_fn(|g| load(z1_at(s, g) + LANES))),
        };
        let len = channels[0].len();
        // Raw pointers read once, so the loop neither reloads the slices nor
        // checks bounds: `filter_row` asserted every channel is `len` long.
        let mut pointers = [std::ptr::null_mut::<f32>(); CHANNELS_PER_ROW];
        for (pointer, channel) in pointers.iter_mut().zip(channels.iter_mut()) {
            *pointer = channel.as_mut_ptr();
        }
        let full = len - len % LANES;
        for t in (0..full).step_by(LANES) {
            step(&coefficients, &mut z, &pointers, t, LANES);
        }
        if full < len {
            // The last samples of a frame: only they advance the state.
            step(&coefficients, &mut z, &pointers, full, len - full);
        }
        for s in 0..S {
            for g in 0..G {
                let i = z1_at(s, g);
                _mm256_storeu_pd(state[i..i + LANES].as_mut_ptr(), z.z1[s][g]);
                _mm256_storeu_pd(state[i + LANES..i + 2 * LANES].as_mut_ptr(), z.z2[s][g]);
            }
        }
    }

    /// `valid` (1 to 4) samples of each channel from `t`: load, transpose,
    /// run the sections, transpose back, store. Inlined into `run`, where
    /// the main loop's constant `valid` = 4 removes the padding branches.
    ///
    /// # Safety
    /// As [`run`], whose target features it needs (it is always inlined);
    /// `channels[..4G]` point to distinct live buffers holding at least
    /// `t + valid` samples.
    #[inline(always)]
    unsafe fn step<const S: usize, const G: usize>(
        c: &Coefficients<S>,
        z: &mut State<S, G>,
        channels: &[*mut f32; CHANNELS_PER_ROW],
        t: usize,
        valid: usize,
    ) {
        // Plain loops, not closures: a closure is a function of its own,
        // without the caller's target features, and was not inlined.
        // x[step][group]: time t + step of the group's four channels.
        let mut x = [[_mm256_setzero_pd(); G]; 4];
        for g in 0..G {
            let mut columns = [_mm256_setzero_pd(); 4];
            for (lane, column) in columns.iter_mut().enumerate() {
                // SAFETY: t + valid <= the channel's length (see # Safety),
                // and no `&mut` to these samples is alive while this is read.
                let input = std::slice::from_raw_parts(channels[LANES * g + lane].add(t), valid);
                let mut padded = [0.0f32; LANES];
                let four = if valid == LANES {
                    input
                } else {
                    // A loop, not copy_from_slice: no memcpy call for 1-3 values.
                    padded.iter_mut().zip(input).for_each(|(p, x)| *p = *x);
                    &padded[..]
                };
                *column = _mm256_cvtps_pd(_mm_loadu_ps(four.as_ptr()));
            }
            for (step, row) in transpose(columns).into_iter().enumerate() {
                x[step][g] = row;
            }
        }
        for row in x.iter_mut().take(valid) {
            for s in 0..S {
                for (g, value) in row.iter_mut().enumerate() {
                    let y = _mm256_fmadd_pd(c.b0[s], *value, z.z1[s][g]);
                    let partial = _mm256_fmadd_pd(c.b1[s], *value, z.z2[s][g]);
                    z.z1[s][g] = _mm256_fmadd_pd(c.neg_a1[s], y, partial);
                    z.z2[s][g] = _mm256_fmadd_pd(c.neg_a2[s], y, _mm256_mul_pd(c.b2[s], *value));
                    *value = y;
                }
            }
        }
        for g in 0..G {
            let columns = transpose([x[0][g], x[1][g], x[2][g], x[3][g]]);
            for (lane, column) in columns.into_iter().enumerate() {
                // SAFETY: as for `input`; the channels are distinct buffers,
                // so this is the only reference to these samples.
                let output = std::slice::from_raw_parts_mut(channels[LANES * g + lane].add(t), valid);
                if valid == LANES {
                    _mm_storeu_ps(output.as_mut_ptr(), _mm256_cvtpd_ps(column));
                } else {
                    let mut padded = [0.0f32; LANES];
                    _mm_storeu_ps(padded.as_mut_ptr(), _mm256_cvtpd_ps(column));
                    output.iter_mut().zip(padded).for_each(|(y, p)| *y = p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::design::{butterworth, Band};
    use crate::filters::test_noise::noise;

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
        // 10 sections, 6 channels (a partial group).
        let biquads = butterworth(10, Band::Bandpass(1.0, 30.0), 250.0).unwrap();
        assert_eq!(biquads.len(), 10);
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
