//! The runtime cascade of second-order sections: transposed direct form II,
//! several channels per instruction.
//!
//! **Precision.** Each section runs in one of three forms, chosen by how
//! much it amplifies its own rounding (see `Form`). Most run in f32,
//! transposed direct form II, 8 channels per instruction. A section whose
//! poles are near z = 1 (a low cut-off) or very near the unit circle cannot:
//! its f32 state rounding is amplified by roughly the inverse square of the
//! distance, and a one-hour 0.1 Hz high-pass at 1 kHz would drift by 1.7e-2
//! (tested in `engine/tests/filters_reference.rs`). Such a section runs in
//! f32 in the *delta form* instead, where each delay is an accumulator
//! (`z⁻¹ = ρ / (1 + ρ)`, ρ an integrator) and the coefficients are the
//! small distances of the poles from z = 1, so the rounding no longer
//! cancels: for every high-pass Butterworth section and high-rate notch
//! its noise gain is 0.4–7 where direct form II's is 10³–10⁹. What neither
//! f32 form holds (a low-pass with a very low cut-off) runs in f64. Values
//! pass between sections in f64 (rounded to f32 on entering an f32
//! section); samples are f32 on the way in and out.
//!
//! **SIMD.** Channels sharing one design are filtered in groups of
//! [`LANES`] = 4 f64 lanes, a pair of groups per f32 vector. The AVX2
//! kernel works section by section on blocks of 32 steps: it reads a block
//! of a pass of groups into a buffer (transposed in registers, so the
//! channels lie across the lanes), runs the first section over the whole
//! block with 4 vectors side by side (their state stays in registers), then
//! the next section, and so on, and writes the block back. The buffers
//! belong to the bank: no allocation per call. [`Kernel::detect`] picks
//! AVX2+FMA at run time when the CPU has it, otherwise a portable scalar
//! loop (one channel at a time, no FMA). Where the CPU also has AVX-512VL,
//! the same 256-bit code is compiled a second time for its 32 registers:
//! passes of 16 groups (64 channels) and 8 f64 recurrences side by side.
//!
//! **Bitwise framing independence.** A channel's output does not depend on
//! how its samples were cut into frames. The AVX2 kernel advances the state
//! only by the samples present (a frame's last step may hold fewer than 4);
//! it stops before a block that holds a non-finite sample, and that block
//! and the rest of the frame, as well as ragged rows, go through a scalar
//! loop that uses the same fused multiply-adds in the same order and
//! precision, so whichever path a sample takes the result is the same bits.
//!
//! **Gaps.** A non-finite input sample (NaN marks a gap) comes out as NaN and
//! marks its channel for restart: the next valid sample starts from a fresh
//! state, zero or (with warm start) the steady state for that sample.

use super::design::{steady_state, Biquad, DesignError};

/// Channels per SIMD group (f64 lanes of an AVX2 register).
pub const LANES: usize = 4;
/// Groups that share one pass over the samples: a row of channels.
const GROUPS_PER_ROW: usize = 16;
const CHANNELS_PER_ROW: usize = LANES * GROUPS_PER_ROW;

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
            KernelKind::Avx2Fma => "AVX2+FMA, 8 channels (f32 sections) or 4 (f64) per instruction",
        }
    }
}

/// One section as the kernels run it, its numerator divided by `b0` (the
/// cascade's gain, the product of the `b0`s, scales the input once):
/// `y = x + z1; z1 ← c1·x + z2 − a1·y; z2 ← c2·x − a2·y`. The feedback
/// coefficients are negated so every update is a multiply-add. Against the
/// textbook form this saves the multiply by `b0`, and where `c2 = 1` (every
/// Butterworth section of even order, every notch: palindromic numerators,
/// zeros on the unit circle) the multiply by `c2` too: 3 FMAs and an add
/// per section instead of 4 FMAs and a multiply.
///
/// A section runs in f32 (`single()`) when f32 rounding cannot hurt it:
/// see [`Form`]. Its coefficients are then rounded to f32 (and kept in
/// these f64 fields, exactly). In the delta form the fields hold
/// `β1, β2, −α1, −α2` instead (see [`Form::Delta`]).
#[derive(Clone, Copy, Debug)]
struct Section {
    c1: f64,
    c2: f64,
    neg_a1: f64,
    neg_a2: f64,
    form: Form,
    /// `c1, c2, −a1, −a2` (or the delta form's) as f32, for the scalar path.
    coefficients32: [f32; 4],
}

/// How a section is computed. The rule: the first form whose noise gain
/// is at most its bound.
///
/// - [`Form::Single`], f32 direct form II, where the feedback noise gain
///   is at most [`SINGLE_PRECISION_NOISE_GAIN`];
/// - [`Form::Delta`], f32 delta form, where its Mullis–Roberts noise gain
///   is at most [`DELTA_NOISE_GAIN`];
/// - [`Form::Double`], f64 direct form II, otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Single,
    /// The delta form (Middleton & Goodwin; Kauraniemi et al., "Delta
    /// operator realizations of direct-form IIR filters", IEEE TCAS II,
    /// 1998), transposed: with `α1 = 2 + a1`, `α2 = 1 + a1 + a2` (the
    /// poles' distances from z = 1, computed in f64 before rounding),
    /// `β1 = 2 + c1`, `β2 = 1 + c1 + c2`:
    /// `y = x + s1; s1 ← s1 + (β1·x + s2 − α1·y); s2 ← s2 + β2·x − α2·y`.
    /// Its state is direct form II's as `s1 = z1, s2 = z1 + z2` (exactly,
    /// in exact arithmetic). A high-pass section (zeros at z = 1) has
    /// `β1 = β2 = 0`: 2 FMAs and 2 adds, as cheap as direct form II.
    Delta,
    Double,
}

/// A section runs in f32 direct form II when the noise gain of its
/// feedback, Σh² of the impulse response of `1 / (1 + a1 z⁻¹ + a2 z⁻²)`, is
/// at most this: f32 rounding in its state then reaches the output
/// amplified at most √100 = 10 times (≈ 6·10⁻⁷ of the signal). Poles near
/// z = 1 (low cut-offs: 10⁴ and more) or very near the unit circle fail it
/// and go to the delta form or f64 (see `Form`). On
/// measured designs the two kinds are far apart: high cut-off Butterworth
/// sections 1.5–10, a 50 Hz notch (Q 30) at 128–256 Hz 14–16, but 297 at
/// 1 kHz; 0.5–1 Hz high-pass sections at 128–250 Hz 1.4·10⁴–1.1·10⁵.
pub const SINGLE_PRECISION_NOISE_GAIN: f64 = 100.0;

/// A section that fails [`SINGLE_PRECISION_NOISE_GAIN`] runs in the f32
/// delta form when that form's roundoff noise gain, Σ Kᵢᵢ·Wᵢᵢ over its two
/// states (K and W its controllability and observability Gramians, the
/// Mullis–Roberts measure: each state's rounding, relative to the state's
/// size under white input, times its gain to the output), is at most this.
/// Measured: high-pass Butterworth sections at 0.1–1 Hz and 128–2000 Hz
/// 0.4–1.2; 50/60 Hz notches (Q 30) at 500–2000 Hz 0.5–0.6; the [1, 0, −1]
/// section of a 3rd-order 0.5–40 Hz band-pass at 360 Hz 7.2; but low-pass
/// sections below 5 Hz 10⁴ and more (those stay in f64).
pub const DELTA_NOISE_GAIN: f64 = 10.0;

/// Σh² of `1 / (1 + a1 z⁻¹ + a2 z⁻²)` (closed form; infinite if unstable).
fn feedback_noise_gain(a1: f64, a2: f64) -> f64 {
    let stable = a2.abs() < 1.0 && a1.abs() < 1.0 + a2;
    if !stable {
        return f64::INFINITY;
    }
    (1.0 + a2) / ((1.0 - a2) * ((1.0 + a2) * (1.0 + a2) - a1 * a1))
}

/// The delta form's noise gain (see [`DELTA_NOISE_GAIN`]) for the
/// normalised section `[1, c1, c2] / [1, a1, a2]`; infinite if unstable.
fn delta_noise_gain(c1: f64, c2: f64, a1: f64, a2: f64) -> f64 {
    if !feedback_noise_gain(a1, a2).is_finite() {
        return f64::INFINITY;
    }
    let (alpha1, alpha2) = (2.0 + a1, 1.0 + a1 + a2);
    let (beta1, beta2) = (2.0 + c1, 1.0 + c1 + c2);
    // s ← A·s + B·x, y = C·s + x, with C = [1, 0].
    let a = [[1.0 - alpha1, 1.0], [-alpha2, 1.0]];
    let b = [beta1 - alpha1, beta2 - alpha2];
    let k = lyapunov(a, [b[0] * b[0], b[0] * b[1], b[1] * b[1]]);
    let transposed = [[a[0][0], a[1][0]], [a[0][1], a[1][1]]];
    let w = lyapunov(transposed, [1.0, 0.0, 0.0]);
    k[0] * w[0] + k[2] * w[2]
}

/// The symmetric P = A·P·Aᵀ + Q of a stable 2×2 A, as `[p11, p12, p22]`
/// (Q likewise): three linear equations, solved by Cramer's rule.
fn lyapunov(a: [[f64; 2]; 2], q: [f64; 3]) -> [f64; 3] {
    let [[a11, a12], [a21, a22]] = a;
    // (I − M)·p = q, M the map p ↦ A·P·Aᵀ on [p11, p12, p22].
    let m = [
        [1.0 - a11 * a11, -2.0 * a11 * a12, -a12 * a12],
        [-a11 * a21, 1.0 - (a11 * a22 + a12 * a21), -a12 * a22],
        [-a21 * a21, -2.0 * a21 * a22, 1.0 - a22 * a22],
    ];
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let whole = det(m);
    let mut p = [0.0; 3];
    for (column, value) in p.iter_mut().enumerate() {
        let mut replaced = m;
        for (row, line) in replaced.iter_mut().enumerate() {
            line[column] = q[row];
        }
        *value = det(replaced) / whole;
    }
    p
}

impl Section {
    /// Chooses the section's [`Form`] and puts its coefficients in it.
    fn new(biquad: &Biquad) -> Section {
        let [b0, b1, b2] = biquad.b;
        let [_, a1, a2] = biquad.a;
        let (c1, c2) = (b1 / b0, b2 / b0);
        let form = if feedback_noise_gain(a1, a2) <= SINGLE_PRECISION_NOISE_GAIN {
            Form::Single
        } else if delta_noise_gain(c1, c2, a1, a2) <= DELTA_NOISE_GAIN {
            Form::Delta
        } else {
            Form::Double
        };
        let single = |c: f64| f64::from(c as f32);
        let (c1, c2, neg_a1, neg_a2) = match form {
            Form::Single => (single(c1), single(c2), single(-a1), single(-a2)),
            Form::Delta => (
                single(2.0 + c1),
                single(1.0 + c1 + c2),
                single(-(2.0 + a1)),
                single(-(1.0 + a1 + a2)),
            ),
            Form::Double => (c1, c2, -a1, -a2),
        };
        Section {
            c1,
            c2,
            neg_a1,
            neg_a2,
            form,
            coefficients32: [c1, c2, neg_a1, neg_a2].map(|c| c as f32),
        }
    }

    /// Runs in f32 (direct form II or delta form).
    fn single(&self) -> bool {
        self.form != Form::Double
    }

    fn delta(&self) -> bool {
        self.form == Form::Delta
    }

    /// `c2 = 1` (direct form II), so the SIMD kernel skips `c2·x` (exact:
    /// the same bits as the general formula).
    fn palindromic(&self) -> bool {
        !self.delta() && self.c2 == 1.0
    }

    /// A delta-form section with `β1 = β2 = 0` (zeros at z = 1: high-pass):
    /// both kernels skip the `β·x` terms.
    fn delta_without_numerator(&self) -> bool {
        self.delta() && self.c1 == 0.0 && self.c2 == 0.0
    }

    /// The SIMD kernel's variant for an f32 section.
    #[cfg(target_arch = "x86_64")]
    fn f32_kind(&self) -> u8 {
        if self.delta_without_numerator() {
            avx2::DELTA_HIGH_PASS
        } else if self.delta() {
            avx2::DELTA
        } else if self.palindromic() {
            avx2::PALINDROMIC
        } else {
            avx2::GENERAL
        }
    }
}

/// A cascade in the kernels' form.
#[derive(Clone, Debug)]
struct Cascade {
    /// Product of the sections' `b0`: the input is multiplied by it once
    /// (in f32 if the first section is single precision).
    gain: f64,
    sections: Vec<Section>,
    /// `sosfilt_zi` of the normalised cascade (in each section's form), per
    /// unit of (unscaled) input, when warm-starting or shifting.
    steady: Option<Vec<[f64; 2]>>,
    warm_start: bool,
    /// The input is shifted by its value at the restart (see
    /// [`Cascade::restart`]).
    shift: bool,
}

impl Cascade {
    /// Some section runs in f32: the SIMD kernel then needs groups in pairs
    /// (8 f32 lanes).
    fn has_single(&self) -> bool {
        self.sections.iter().any(|s| s.single())
    }

    /// Groups of [`LANES`] for `channels`, even when f32 sections need pairs.
    fn groups(&self, channels: usize) -> usize {
        let groups = channels.div_ceil(LANES);
        if self.has_single() {
            groups.next_multiple_of(2)
        } else {
            groups
        }
    }

    /// Normalises each section's numerator by its `b0`. Section k of the
    /// normalised cascade sees its original input times the product of
    /// `b0` from k on, so its state is the original state times the product
    /// of the `b0`s after k.
    fn new(biquads: &[Biquad], warm_start: bool) -> Result<Cascade, DesignError> {
        if biquads.iter().any(|b| b.b[0] == 0.0 || !b.b[0].is_finite()) {
            return Err(DesignError::ZeroLeadingCoefficient);
        }
        let sections = biquads.iter().map(Section::new).collect::<Vec<Section>>();
        let blocks_dc = biquads.iter().any(|b| {
            let [b0, b1, b2] = b.b;
            (b0 + b1 + b2).abs() <= 1e-12 * (b0.abs() + b1.abs() + b2.abs())
        });
        let wants_shift = blocks_dc && sections.iter().any(|s| s.delta());
        let steady = if warm_start || wants_shift {
            let original = match steady_state(biquads) {
                Ok(original) => original,
                Err(error) if warm_start => return Err(error),
                Err(_) => return Ok(Cascade::unshifted(biquads, sections)),
            };
            let mut later_gain = 1.0;
            let mut normalised = vec![[0.0; 2]; biquads.len()];
            for (k, zi) in original.iter().enumerate().rev() {
                // The delta form's state is (z1, z1 + z2).
                let second = if sections[k].delta() { zi[0] + zi[1] } else { zi[1] };
                normalised[k] = [zi[0] * later_gain, second * later_gain];
                later_gain *= biquads[k].b[0];
            }
            Some(normalised)
        } else {
            None
        };
        Ok(Cascade {
            steady,
            warm_start,
            shift: wants_shift,
            ..Cascade::unshifted(biquads, sections)
        })
    }

    /// A cold-starting cascade without shift.
    fn unshifted(biquads: &[Biquad], sections: Vec<Section>) -> Cascade {
        let gain: f64 = biquads.iter().map(|b| b.b[0]).product();
        // The gain is applied in the first section's precision.
        let first_single = sections.first().is_some_and(|s| s.single());
        Cascade {
            gain: if first_single {
                f64::from(gain as f32)
            } else {
                gain
            },
            sections,
            steady: None,
            warm_start: false,
            shift: false,
        }
    }

    /// Section `s`'s state for a restart at input `x`.
    ///
    /// **Shift.** A cascade that blocks DC (a section with zeros at z = 1)
    /// and runs a section in the delta form filters `x − c` instead of `x`,
    /// `c` the first sample after the restart, from the state less the
    /// steady state for `c`: in exact arithmetic the same output, since the
    /// steady response to `c` is 0. Why: with a DC offset (DC-coupled
    /// amplifiers: millivolts under a signal of microvolts) a high-pass's
    /// f32 delta state would carry the offset, and its rounding, relative
    /// to the offset, would swamp a small output (a 0.1 Hz high-pass at
    /// 1 kHz with an offset 35 times the signal: 1.2e-5 of it; shifted:
    /// see `engine/tests/filters_reference.rs`). The shift enters as the
    /// [`Cascade::bias`] added to the scaled input.
    fn restart(&self, s: usize, x: f64) -> [f64; 2] {
        match (&self.steady, self.shift, self.warm_start) {
            (Some(zi), false, true) => [zi[s][0] * x, zi[s][1] * x],
            (Some(zi), true, false) => [-(zi[s][0] * x), -(zi[s][1] * x)],
            _ => [0.0, 0.0],
        }
    }

    /// What is added to the scaled input (`gain·x + bias`, one rounding)
    /// after a restart at input `x`: minus the scaled shift, in the first
    /// section's precision; −0.0 (which changes no value) without shift.
    fn bias(&self, x: f64) -> f64 {
        if !self.shift {
            -0.0
        } else if self.sections.first().is_some_and(|s| s.single()) {
            f64::from(-(self.gain as f32 * x as f32))
        } else {
            -(self.gain * x)
        }
    }
}

/// Where one channel's samples lie in a planar buffer: (start, length).
pub type Span = (usize, usize);

/// The state of a set of channels filtered by one cascade.
#[derive(Debug, Clone)]
pub struct ChannelBank {
    kernel: Kernel,
    cascade: Cascade,
    channels: usize,
    /// Per group of [`LANES`] channels, per section: z1 of each lane, then z2
    /// of each lane.
    state: Vec<f64>,
    /// Per channel: the next valid sample starts the filter afresh.
    restart: Vec<bool>,
    /// Per channel, and a group's absent lanes: [`Cascade::bias`].
    bias: Vec<f64>,
    /// Zeros read by the absent lanes of a partly filled group (and written
    /// to, then zeroed again); grows to the longest frame, then stays.
    padding: Vec<f32>,
    /// One channel's state while the scalar path runs it.
    channel_state: Vec<[f64; 2]>,
    /// The same in f32, for its f32 sections.
    channel_state32: Vec<[f32; 2]>,
    /// Channel indices sorted by span start, for spans not in storage order.
    order: Vec<usize>,
    /// The AVX2 kernel's block buffers (with that kernel only).
    #[cfg(target_arch = "x86_64")]
    scratch: Option<avx2::Scratch>,
}

impl ChannelBank {
    pub fn new(
        biquads: &[Biquad],
        channels: usize,
        warm_start: bool,
        kernel: Kernel,
    ) -> Result<Self, DesignError> {
        let cascade = Cascade::new(biquads, warm_start)?;
        let groups = cascade.groups(channels);
        #[cfg(target_arch = "x86_64")]
        let scratch = match kernel.0 {
            // SAFETY: an Avx2Fma kernel exists only where the CPU has AVX2.
            KernelKind::Avx2Fma => Some(unsafe { avx2::Scratch::new() }),
            KernelKind::Portable => None,
        };
        Ok(ChannelBank {
            #[cfg(target_arch = "x86_64")]
            scratch,
            kernel,
            cascade,
            channels,
            state: vec![0.0; groups * biquads.len() * 2 * LANES],
            restart: vec![true; channels],
            bias: vec![-0.0; groups * LANES],
            padding: Vec::new(),
            channel_state: vec![[0.0; 2]; biquads.len()],
            channel_state32: vec![[0.0; 2]; biquads.len()],
            order: Vec::new(),
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
        assert_disjoint_and_inside(spans, samples.len(), &mut self.order);
        for (row, row_spans) in spans.chunks(CHANNELS_PER_ROW).enumerate() {
            let first_group = row * GROUPS_PER_ROW;
            // Samples of each group the SIMD kernel filtered; the scalar
            // path takes the rest (a gap and everything after it).
            let mut filtered = [0; GROUPS_PER_ROW];
            if self.row_fits_simd(row_spans) {
                self.process_row_simd(first_group, samples, row_spans, &mut filtered);
            }
            for (i, &(start, len)) in row_spans.iter().enumerate() {
                let done = filtered[i / LANES];
                if done < len {
                    let rest = &mut samples[start + done..start + len];
                    self.process_channel(first_group + i / LANES, i % LANES, rest);
                }
            }
        }
    }

    /// SIMD needs an AVX2 kernel, at least one section (an empty cascade
    /// passes samples through on the scalar path) and channels of equal
    /// length. Gaps are found by the kernel itself, block by block.
    fn row_fits_simd(&self, spans: &[Span]) -> bool {
        if self.kernel == Kernel::portable() || self.cascade.sections.is_empty() {
            return false;
        }
        let len = spans[0].1;
        spans.iter().all(|&(_, n)| n == len)
    }

    /// Sets a channel's state for a restart at input `x`.
    fn restart_lane(&mut self, group: usize, lane: usize, x: f64) {
        let size = self.cascade.sections.len() * 2 * LANES;
        let state = &mut self.state[group * size..(group + 1) * size];
        for (s, section_state) in state.chunks_exact_mut(2 * LANES).enumerate() {
            let [z1, z2] = self.cascade.restart(s, x);
            section_state[lane] = z1;
            section_state[LANES + lane] = z2;
        }
        self.bias[group * LANES + lane] = self.cascade.bias(x);
    }

    /// Filters up to [`CHANNELS_PER_ROW`] channels of equal length (`spans`
    /// checked by `process` to be disjoint and inside `samples`) up to the
    /// first block of each group that holds a gap; `filtered[g]` receives
    /// how many samples of group g's channels that was.
    fn process_row_simd(
        &mut self,
        first_group: usize,
        samples: &mut [f32],
        spans: &[Span],
        filtered: &mut [usize],
    ) {
        let len = spans[0].1;
        // A restart needs a finite first sample: leave gaps at the start to
        // the scalar path.
        let restarts_at_gap = spans.iter().enumerate().any(|(i, &(start, _))| {
            self.restart[first_group * LANES + i] && !samples.get(start).is_some_and(|x| x.is_finite())
        });
        if len == 0 || restarts_at_gap {
            return;
        }
        for (i, &(start, _)) in spans.iter().enumerate() {
            let channel = first_group * LANES + i;
            if self.restart[channel] {
                self.restart_lane(first_group + i / LANES, i % LANES, f64::from(samples[start]));
                self.restart[channel] = false;
            }
        }
        let groups = self.cascade.groups(spans.len());
        let group_size = self.cascade.sections.len() * 2 * LANES;
        let state = &mut self.state[first_group * group_size..(first_group + groups) * group_size];
        let absent = groups * LANES - spans.len();
        self.padding.clear();
        self.padding.resize(absent * len, 0.0);
        let mut channels = [std::ptr::null_mut::<f32>(); CHANNELS_PER_ROW];
        let base = samples.as_mut_ptr();
        for (pointer, &(start, _)) in channels.iter_mut().zip(spans) {
            // In bounds: `process` checked start + len <= samples.len().
            *pointer = base.wrapping_add(start);
        }
        for (i, lane) in self.padding.chunks_exact_mut(len).enumerate() {
            channels[spans.len() + i] = lane.as_mut_ptr();
        }
        let channels = Channels {
            pointers: &channels[..groups * LANES],
            len,
            bias: &self.bias[first_group * LANES..(first_group + groups) * LANES],
        };
        match self.kernel.0 {
            KernelKind::Portable => unreachable!("the portable kernel filters channel by channel"),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the pointers are `len` samples into `samples` at spans
            // that `process` checked are inside it and pairwise disjoint, or
            // into `padding`, distinct from `samples`; both are borrowed
            // mutably for this call. An Avx2Fma kernel exists only where the
            // CPU has AVX2 and FMA.
            KernelKind::Avx2Fma => {
                let Some(scratch) = self.scratch.as_mut() else {
                    unreachable!("an AVX2 bank has its scratch")
                };
                unsafe { avx2::filter_row(&self.cascade, state, channels, filtered, scratch) }
            }
        }
    }

    /// The per-channel path: gaps, ragged groups, long cascades
    /// and the portable kernel.
    fn process_channel(&mut self, group: usize, lane: usize, samples: &mut [f32]) {
        if samples.is_empty() {
            return;
        }
        let size = self.cascade.sections.len() * 2 * LANES;
        let group_state = &mut self.state[group * size..(group + 1) * size];
        for (s, section_state) in group_state.chunks_exact(2 * LANES).enumerate() {
            self.channel_state[s] = [section_state[lane], section_state[LANES + lane]];
            self.channel_state32[s] = self.channel_state[s].map(|v| v as f32);
        }
        let channel = ChannelRun {
            cascade: &self.cascade,
            state: &mut self.channel_state,
            state32: &mut self.channel_state32,
            restart: &mut self.restart[group * LANES + lane],
            bias: &mut self.bias[group * LANES + lane],
        };
        match self.kernel.0 {
            KernelKind::Portable => channel.run::<false>(samples),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an Avx2Fma kernel exists only where the CPU has FMA.
            KernelKind::Avx2Fma => unsafe { run_channel_fma(channel, samples) },
        }
        let group_state = &mut self.state[group * size..(group + 1) * size];
        for (s, section_state) in group_state.chunks_exact_mut(2 * LANES).enumerate() {
            [section_state[lane], section_state[LANES + lane]] = if self.cascade.sections[s].single() {
                self.channel_state32[s].map(f64::from)
            } else {
                self.channel_state[s]
            };
        }
    }
}

/// A row's channels for the SIMD kernel: each pointer starts `len` samples
/// that no other pointer (and no live reference) reaches.
#[derive(Clone, Copy)]
struct Channels<'a> {
    pointers: &'a [*mut f32],
    len: usize,
    /// Per pointer: [`Cascade::bias`].
    bias: &'a [f64],
}

/// Panics unless every span ends inside a buffer of `len` samples and no two
/// overlap: what makes the SIMD kernel's raw pointers sound. Spans in
/// storage order (the usual case) are checked in one pass; others are
/// sorted through `order`, a buffer kept between calls.
fn assert_disjoint_and_inside(spans: &[Span], len: usize, order: &mut Vec<usize>) {
    let end = |&(start, n): &Span| start.checked_add(n).expect("channel span overflows");
    let in_order = spans.windows(2).all(|w| end(&w[0]) <= w[1].0);
    let last = if in_order {
        spans.last()
    } else {
        order.clear();
        order.extend(0..spans.len());
        order.sort_unstable_by_key(|&i| spans[i].0);
        for w in order.windows(2) {
            assert!(end(&spans[w[0]]) <= spans[w[1]].0, "channel spans overlap");
        }
        order.last().map(|&i| &spans[i])
    };
    assert!(
        last.is_none_or(|s| end(s) <= len),
        "channel span outside the samples"
    );
}

/// One channel run through the cascade sample by sample.
struct ChannelRun<'a> {
    cascade: &'a Cascade,
    /// The state of the f64 sections (the others' is unused).
    state: &'a mut [[f64; 2]],
    /// The state of the f32 sections, in f32 (the others' is unused).
    state32: &'a mut [[f32; 2]],
    restart: &'a mut bool,
    /// Added to the scaled input: see [`Cascade::bias`].
    bias: &'a mut f64,
}

impl ChannelRun<'_> {
    /// `FUSED` selects `mul_add` (one rounding, as the AVX2 kernel) or a
    /// separate multiply and add (the portable kernel, no FMA needed). This
    /// is the reference arithmetic: the AVX2 kernel computes the same
    /// operations in the same order.
    #[inline(always)]
    fn run<const FUSED: bool>(self, samples: &mut [f32]) {
        let Cascade { gain, sections, .. } = self.cascade;
        for sample in samples {
            if !sample.is_finite() {
                *sample = f32::NAN;
                *self.restart = true;
                continue;
            }
            if *self.restart {
                let x = f64::from(*sample);
                for (s, (z, z32)) in self.state.iter_mut().zip(self.state32.iter_mut()).enumerate() {
                    *z = self.cascade.restart(s, x);
                    *z32 = z.map(|v| v as f32);
                }
                *self.bias = self.cascade.bias(x);
                *self.restart = false;
            }
            // The value between sections, in f64; exactly an f32 after a
            // single-precision section.
            let mut x = if sections.first().is_some_and(|c| c.single()) {
                f64::from(madd32::<FUSED>(*gain as f32, *sample, *self.bias as f32))
            } else {
                madd::<FUSED>(*gain, f64::from(*sample), *self.bias)
            };
            for ((c, z), z32) in sections
                .iter()
                .zip(self.state.iter_mut())
                .zip(self.state32.iter_mut())
            {
                let [c1, c2, neg_a1, neg_a2] = c.coefficients32;
                if c.delta() {
                    let x32 = x as f32;
                    let [s1, s2] = *z32;
                    let y = x32 + s1;
                    let (step1, step2) = if c.delta_without_numerator() {
                        (s2, s2)
                    } else {
                        (madd32::<FUSED>(c1, x32, s2), madd32::<FUSED>(c2, x32, s2))
                    };
                    *z32 = [
                        s1 + madd32::<FUSED>(neg_a1, y, step1),
                        madd32::<FUSED>(neg_a2, y, step2),
                    ];
                    x = f64::from(y);
                } else if c.single() {
                    let x32 = x as f32;
                    let [z1, z2] = *z32;
                    let y = x32 + z1;
                    *z32 = [
                        madd32::<FUSED>(neg_a1, y, madd32::<FUSED>(c1, x32, z2)),
                        madd32::<FUSED>(neg_a2, y, c2 * x32),
                    ];
                    x = f64::from(y);
                } else {
                    let y = x + z[0];
                    z[0] = madd::<FUSED>(c.neg_a1, y, madd::<FUSED>(c.c1, x, z[1]));
                    z[1] = madd::<FUSED>(c.neg_a2, y, c.c2 * x);
                    x = y;
                }
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

#[inline(always)]
fn madd32<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// # Safety
/// The CPU must support FMA.
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

    use super::{Cascade, Channels, Section, CHANNELS_PER_ROW, LANES};

    /// Time steps per block: the kernel reads a block of every group of a
    /// pass into a buffer, runs each section over the whole block, then
    /// writes it back. 32 steps of 16 groups is 16 KiB in f64: it stays in
    /// L1.
    const BLOCK: usize = 32;

    /// A step of a block in f64: a vector per group (up to 16 per pass).
    type Wide = [__m256d; MIXED_SIDE_BY_SIDE];
    /// A step of a block in f32: vector p holds groups 2p and 2p + 1.
    type Narrow = [__m256; MIXED_SIDE_BY_SIDE / 2];

    /// The block buffers, kept by the channel bank so that a call does not
    /// clear 12 KiB of stack (which cost more than filtering a 40 ms frame).
    #[derive(Clone, Debug)]
    pub(super) struct Scratch {
        wide: Vec<Wide>,
        narrow: Vec<Narrow>,
        /// The CPU has AVX-512VL: 32 vector registers, so twice as many
        /// recurrences fit side by side (see [`run_512`]). Tests turn it
        /// off to run the 16-register passes on such a CPU too.
        pub(super) registers_32: bool,
    }

    impl Scratch {
        /// # Safety
        /// The CPU must support AVX.
        #[target_feature(enable = "avx")]
        pub(super) unsafe fn new() -> Scratch {
            Scratch {
                wide: vec![[_mm256_setzero_pd(); MIXED_SIDE_BY_SIDE]; BLOCK],
                narrow: vec![[_mm256_setzero_ps(); MIXED_SIDE_BY_SIDE / 2]; BLOCK],
                registers_32: is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl"),
            }
        }
    }

    /// Groups whose f64 recurrences run side by side within a section: a
    /// section's feedback is an add then an FMA (7 cycles on Zen 3 and 4)
    /// per step and its work 3 FMAs (1.5 cycles on two pipes), so 4 groups
    /// come close to keeping both FMA pipes busy while their 8 state vectors
    /// and the coefficients fit the 16 registers (5 or 6 spilled: measured).
    /// With 32 registers (AVX-512VL) 8 fit: see [`run_512`].
    const F64_SIDE_BY_SIDE: usize = 4;

    /// Most groups in a pass of a cascade with f32 sections: 16 with 32
    /// registers (8 vectors of 8 f32 lanes side by side, f64 sections as two
    /// halves of 8), else 8 (4 vectors; halves of 4). The block buffers are
    /// sized for the larger.
    const MIXED_SIDE_BY_SIDE: usize = 16;

    /// Filters `channels` (4 per group; an even number of groups if the
    /// cascade has f32 sections); `state` holds their groups one after the
    /// other. Each group stops before its first block that holds a
    /// non-finite sample; `filtered[g]` receives where group g stopped
    /// (`channels.len` if it did not).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and each of `channels.pointers`
    /// must start `channels.len` samples that nothing else reads or writes
    /// during the call.
    pub(super) unsafe fn filter_row(
        cascade: &Cascade,
        state: &mut [f64],
        channels: Channels<'_>,
        filtered: &mut [usize],
        scratch: &mut Scratch,
    ) {
        let groups = channels.pointers.len() / LANES;
        let mixed = cascade.has_single();
        assert!(channels.pointers.len().is_multiple_of(LANES) && channels.pointers.len() <= CHANNELS_PER_ROW);
        assert!(state.len() == groups * cascade.sections.len() * 2 * LANES);
        assert!(!mixed || groups.is_multiple_of(2));
        let group_size = cascade.sections.len() * 2 * LANES;
        let mut first = 0;
        while first < groups {
            let count = side_by_side(groups - first, mixed, scratch.registers_32);
            let state = &mut state[first * group_size..(first + count) * group_size];
            let channels = Channels {
                pointers: &channels.pointers[first * LANES..(first + count) * LANES],
                len: channels.len,
                bias: &channels.bias[first * LANES..(first + count) * LANES],
            };
            // run::<G, H, P>: G groups, f64 sections in passes of H groups,
            // f32 sections over P = G/2 vectors (0: the cascade has none).
            // SAFETY (all arms): as this function's contract, for a subset of
            // the channels; an even count where the cascade is mixed. The
            // `run_512` arms are taken only with `registers_32` (16 groups
            // come from `side_by_side` only then): the CPU has AVX-512VL.
            let done = unsafe {
                match (count, mixed) {
                    (16, true) => run_512::<16, 8, 8>(cascade, state, channels, scratch),
                    (8, true) if scratch.registers_32 => {
                        run_512::<8, 8, 4>(cascade, state, channels, scratch)
                    }
                    (1, false) => run::<1, 1, 0>(cascade, state, channels, scratch),
                    (2, false) => run::<2, 2, 0>(cascade, state, channels, scratch),
                    (3, false) => run::<3, 3, 0>(cascade, state, channels, scratch),
                    (4, false) => run::<4, 4, 0>(cascade, state, channels, scratch),
                    (2, true) => run::<2, 2, 1>(cascade, state, channels, scratch),
                    (4, true) => run::<4, 4, 2>(cascade, state, channels, scratch),
                    (8, true) => run::<8, 4, 4>(cascade, state, channels, scratch),
                    _ => unreachable!("side_by_side gives 1 to 4 groups, or 2, 4, 8 or 16 when mixed"),
                }
            };
            filtered[first..first + count].fill(done);
            first += count;
        }
    }

    /// How many of `left` groups to run in one pass. In f64, split evenly
    /// (10 groups run as 4 + 3 + 3). When `mixed` (`left` even): 16 (with
    /// 32 registers), 8, 4 or 2, so that the f64 halves hold whole pairs.
    fn side_by_side(left: usize, mixed: bool, registers_32: bool) -> usize {
        if mixed {
            match left {
                16.. if registers_32 => 16,
                8.. => 8,
                6 => 4,
                _ => left,
            }
        } else {
            let passes = left.div_ceil(F64_SIDE_BY_SIDE);
            left.div_ceil(passes)
        }
    }

    /// G groups of 4 channels through every section, a block at a time,
    /// up to the first block that holds a non-finite sample (a gap); returns
    /// the samples filtered, a multiple of [`BLOCK`] or all. f64 sections
    /// run over `wide` (a vector per group) in passes of H groups; f32
    /// sections over `narrow` (vector p holds groups 2p and 2p + 1), P = G/2
    /// vectors. The block moves between the two where the precision changes.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and `channels` satisfies
    /// [`filter_row`]'s contract with exactly `G` groups. State moves
    /// through bounds-checked slices of 4; samples through the channel
    /// pointers at `t + n <= len` (see [`load_block`]).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const G: usize, const H: usize, const P: usize>(
        cascade: &Cascade,
        state: &mut [f64],
        channels: Channels<'_>,
        scratch: &mut Scratch,
    ) -> usize {
        // SAFETY: as this function's contract.
        unsafe { run_blocks::<G, H, P>(cascade, state, channels, scratch) }
    }

    /// [`run`] compiled with AVX-512VL as well, for its 32 vector registers
    /// (the instructions stay 256 bits wide): 8 f64 recurrences or 8 f32
    /// vectors side by side fit without spilling, twice what 16 registers
    /// hold, so a section's feedback latency (an add then an FMA) no longer
    /// bounds it. The same operations in the same order: the same bits.
    ///
    /// # Safety
    /// As [`run`], and the CPU must support AVX-512F and AVX-512VL.
    #[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
    unsafe fn run_512<const G: usize, const H: usize, const P: usize>(
        cascade: &Cascade,
        state: &mut [f64],
        channels: Channels<'_>,
        scratch: &mut Scratch,
    ) -> usize {
        // SAFETY: as this function's contract.
        unsafe { run_blocks::<G, H, P>(cascade, state, channels, scratch) }
    }

    /// The body of [`run`] and [`run_512`], inlined into each.
    ///
    /// # Safety
    /// As [`run`].
    #[inline(always)]
    unsafe fn run_blocks<const G: usize, const H: usize, const P: usize>(
        cascade: &Cascade,
        state: &mut [f64],
        channels: Channels<'_>,
        scratch: &mut Scratch,
    ) -> usize {
        assert!(channels.pointers.len() == G * LANES && G.is_multiple_of(H));
        assert!(P == G / 2 || !cascade.has_single());
        let sections = &cascade.sections;
        let group_size = state.len() / G;
        let first_single = sections.first().is_some_and(|s| s.single());
        let last_single = sections.last().is_some_and(|s| s.single());
        let mut pointers = [std::ptr::null_mut::<f32>(); CHANNELS_PER_ROW];
        pointers[..channels.pointers.len()].copy_from_slice(channels.pointers);
        let Scratch { wide, narrow, .. } = scratch;
        let len = channels.len;
        assert!(channels.bias.len() == G * LANES);
        // The bias of 8 channels per f32 vector (each an f32 value, exactly,
        // when the first section is f32; unused otherwise).
        let mut bias_f32 = [_mm256_set1_ps(-0.0); P];
        for (vector, eight) in bias_f32.iter_mut().zip(channels.bias.chunks_exact(8)) {
            let (low, high) = eight.split_at(4);
            // SAFETY: each half is 4 f64.
            *vector = unsafe {
                _mm256_set_m128(
                    _mm256_cvtpd_ps(_mm256_loadu_pd(high.as_ptr())),
                    _mm256_cvtpd_ps(_mm256_loadu_pd(low.as_ptr())),
                )
            };
        }
        for start in (0..len).step_by(BLOCK) {
            let n = BLOCK.min(len - start);
            let (wide, narrow) = (&mut wide[..n], &mut narrow[..n]);
            // SAFETY (loads and stores): start + n <= len.
            let finite = if first_single {
                unsafe {
                    load_block_f32::<P>(
                        _mm256_set1_ps(cascade.gain as f32),
                        &bias_f32,
                        &pointers,
                        start,
                        narrow,
                    )
                }
            } else {
                unsafe {
                    load_block::<G>(
                        _mm256_set1_pd(cascade.gain),
                        channels.bias,
                        &pointers,
                        start,
                        wide,
                    )
                }
            };
            if !finite {
                return start;
            }
            // Whether the block is in `narrow` (f32) or `wide` (f64). An f64
            // section reads it from either and leaves it where the next
            // section wants it: the conversions ride in its loop, whose
            // feedback latency leaves room for them.
            let mut in_narrow = first_single;
            for (s, section) in sections.iter().enumerate() {
                if section.single() {
                    debug_assert!(in_narrow, "an f64 section before narrowed the block");
                    let mut z = NarrowState::<P>::load(state, group_size, s);
                    match section.f32_kind() {
                        GENERAL => run_section_f32::<P, GENERAL>(section, &mut z, narrow),
                        PALINDROMIC => run_section_f32::<P, PALINDROMIC>(section, &mut z, narrow),
                        DELTA => run_section_f32::<P, DELTA>(section, &mut z, narrow),
                        _ => run_section_f32::<P, DELTA_HIGH_PASS>(section, &mut z, narrow),
                    }
                    z.store(state, group_size, s);
                } else {
                    let to_narrow = sections.get(s + 1).is_some_and(|next| next.single());
                    for offset in (0..G).step_by(H) {
                        let mut z = WideState::<H>::load(state, group_size, s, offset);
                        // c2·x is x itself when c2 = 1: the same bits, one multiply less.
                        let io = Io {
                            wide: &mut *wide,
                            narrow: &mut *narrow,
                            offset,
                        };
                        match (section.palindromic(), in_narrow, to_narrow) {
                            (true, false, false) => {
                                run_section::<G, H, true, false, false>(section, &mut z, io)
                            }
                            (true, false, true) => {
                                run_section::<G, H, true, false, true>(section, &mut z, io)
                            }
                            (true, true, false) => {
                                run_section::<G, H, true, true, false>(section, &mut z, io)
                            }
                            (true, true, true) => run_section::<G, H, true, true, true>(section, &mut z, io),
                            (false, false, false) => {
                                run_section::<G, H, false, false, false>(section, &mut z, io)
                            }
                            (false, false, true) => {
                                run_section::<G, H, false, false, true>(section, &mut z, io)
                            }
                            (false, true, false) => {
                                run_section::<G, H, false, true, false>(section, &mut z, io)
                            }
                            (false, true, true) => {
                                run_section::<G, H, false, true, true>(section, &mut z, io)
                            }
                        }
                        z.store(state, group_size, s, offset);
                    }
                    in_narrow = to_narrow;
                }
            }
            if last_single {
                unsafe { store_block_f32::<P>(&pointers, start, narrow) };
            } else {
                unsafe { store_block::<G>(&pointers, start, wide) };
            }
        }
        len
    }

    /// The f64 state of one section for H groups from `offset` (z1 and z2,
    /// a vector per group). A group's state is `group_size` values, per
    /// section z1 of each lane then z2 of each lane.
    struct WideState<const H: usize> {
        z1: [__m256d; H],
        z2: [__m256d; H],
    }

    #[inline(always)]
    fn load_lanes(state: &[f64], at: usize) -> __m256d {
        let lanes: &[f64; LANES] = state[at..at + LANES].try_into().expect("4 lanes");
        // SAFETY: the pointer reaches exactly 4 f64 of `state`.
        unsafe { _mm256_loadu_pd(lanes.as_ptr()) }
    }

    #[inline(always)]
    fn store_lanes(state: &mut [f64], at: usize, value: __m256d) {
        let lanes: &mut [f64; LANES] = (&mut state[at..at + LANES]).try_into().expect("4 lanes");
        // SAFETY: the pointer reaches exactly 4 f64 of `state`.
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), value) }
    }

    impl<const H: usize> WideState<H> {
        // Plain loops, not closures or `array::from_fn`: a closure is a
        // function of its own, without the caller's target features, and was
        // not inlined (the state then went through memory: 30 % slower).
        #[inline(always)]
        fn load(state: &[f64], group_size: usize, s: usize, offset: usize) -> Self {
            // SAFETY: `run`, the only caller, has AVX enabled, and this
            // function is always inlined into it.
            let mut z = unsafe {
                WideState {
                    z1: [_mm256_setzero_pd(); H],
                    z2: [_mm256_setzero_pd(); H],
                }
            };
            for k in 0..H {
                let at = (offset + k) * group_size + 2 * LANES * s;
                z.z1[k] = load_lanes(state, at);
                z.z2[k] = load_lanes(state, at + LANES);
            }
            z
        }

        #[inline(always)]
        fn store(&self, state: &mut [f64], group_size: usize, s: usize, offset: usize) {
            for k in 0..H {
                let at = (offset + k) * group_size + 2 * LANES * s;
                store_lanes(state, at, self.z1[k]);
                store_lanes(state, at + LANES, self.z2[k]);
            }
        }
    }

    /// The f32 state of one section for P pairs of groups, kept in f64 in
    /// `state` (f32 values, exactly; a warm start's first value is rounded
    /// here, as the scalar path rounds it).
    struct NarrowState<const P: usize> {
        z1: [__m256; P],
        z2: [__m256; P],
    }

    impl<const P: usize> NarrowState<P> {
        /// As [`WideState::load`], plain loops.
        #[inline(always)]
        fn load(state: &[f64], group_size: usize, s: usize) -> Self {
            // SAFETY (intrinsics): `run`, the only caller, has AVX enabled,
            // and this function is always inlined into it.
            unsafe {
                let mut z = NarrowState {
                    z1: [_mm256_setzero_ps(); P],
                    z2: [_mm256_setzero_ps(); P],
                };
                for p in 0..P {
                    let low = 2 * p * group_size + 2 * LANES * s;
                    let high = low + group_size;
                    z.z1[p] = _mm256_set_m128(
                        _mm256_cvtpd_ps(load_lanes(state, high)),
                        _mm256_cvtpd_ps(load_lanes(state, low)),
                    );
                    z.z2[p] = _mm256_set_m128(
                        _mm256_cvtpd_ps(load_lanes(state, high + LANES)),
                        _mm256_cvtpd_ps(load_lanes(state, low + LANES)),
                    );
                }
                z
            }
        }

        #[inline(always)]
        fn store(&self, state: &mut [f64], group_size: usize, s: usize) {
            for p in 0..P {
                let low = 2 * p * group_size + 2 * LANES * s;
                let high = low + group_size;
                // SAFETY: as for `load`.
                let ((z1_low, z1_high), (z2_low, z2_high)) =
                    unsafe { (widen(self.z1[p]), widen(self.z2[p])) };
                store_lanes(state, low, z1_low);
                store_lanes(state, high, z1_high);
                store_lanes(state, low + LANES, z2_low);
                store_lanes(state, high + LANES, z2_high);
            }
        }
    }

    /// Where an f64 section reads its input and writes its output: groups
    /// `offset .. offset + H` of the block, in `wide` or (as pairs) in
    /// `narrow`.
    struct Io<'a> {
        wide: &'a mut [Wide],
        narrow: &'a mut [Narrow],
        offset: usize,
    }

    /// One f64 section over groups `offset .. offset + H` of a block: the
    /// same operations in the same order as the scalar
    /// [`super::ChannelRun`], so the same bits. `PALINDROMIC`: `c2 = 1`.
    /// `FROM_NARROW`: the input is in `narrow` (widened here, exactly);
    /// `TO_NARROW`: the output goes to `narrow` (rounded here, as `as f32`);
    /// otherwise `wide`, in place.
    #[inline(always)]
    fn run_section<
        const G: usize,
        const H: usize,
        const PALINDROMIC: bool,
        const FROM_NARROW: bool,
        const TO_NARROW: bool,
    >(
        section: &Section,
        z: &mut WideState<H>,
        io: Io<'_>,
    ) {
        let Io { wide, narrow, offset } = io;
        assert!(offset + H <= G && wide.len() == narrow.len());
        // Pairs of groups never straddle two passes.
        assert!(!(FROM_NARROW || TO_NARROW) || (offset.is_multiple_of(2) && H.is_multiple_of(2)));
        // SAFETY (the intrinsics below): `run`, the only caller, has AVX2
        // and FMA enabled, and this function is always inlined into it.
        unsafe {
            let c1 = _mm256_set1_pd(section.c1);
            let c2 = _mm256_set1_pd(section.c2);
            let neg_a1 = _mm256_set1_pd(section.neg_a1);
            let neg_a2 = _mm256_set1_pd(section.neg_a2);
            for (wide_step, narrow_step) in wide.iter_mut().zip(narrow.iter_mut()) {
                let mut out = [_mm256_setzero_pd(); H];
                for k in 0..H {
                    let x = if FROM_NARROW {
                        let pair = narrow_step[(offset + k) / 2];
                        if k.is_multiple_of(2) {
                            _mm256_cvtps_pd(_mm256_castps256_ps128(pair))
                        } else {
                            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(pair))
                        }
                    } else {
                        wide_step[offset + k]
                    };
                    let y = _mm256_add_pd(x, z.z1[k]);
                    let partial = _mm256_fmadd_pd(c1, x, z.z2[k]);
                    let scaled = if PALINDROMIC { x } else { _mm256_mul_pd(c2, x) };
                    z.z1[k] = _mm256_fmadd_pd(neg_a1, y, partial);
                    z.z2[k] = _mm256_fmadd_pd(neg_a2, y, scaled);
                    if TO_NARROW {
                        out[k] = y;
                    } else {
                        wide_step[offset + k] = y;
                    }
                }
                if TO_NARROW {
                    for j in 0..H / 2 {
                        narrow_step[offset / 2 + j] =
                            _mm256_set_m128(_mm256_cvtpd_ps(out[2 * j + 1]), _mm256_cvtpd_ps(out[2 * j]));
                    }
                }
            }
        }
    }

    /// An f32 section's variant ([`Section::f32_kind`]): direct form II,
    /// general or with `c2 = 1`; the delta form, general or without its
    /// `β·x` terms.
    pub(super) const GENERAL: u8 = 0;
    pub(super) const PALINDROMIC: u8 = 1;
    pub(super) const DELTA: u8 = 2;
    pub(super) const DELTA_HIGH_PASS: u8 = 3;

    /// One f32 section over a block of P vectors, in place; as
    /// [`run_section`], in f32 (the scalar path's `single` and `delta`
    /// arms). `KIND`: one of the variants above.
    #[inline(always)]
    fn run_section_f32<const P: usize, const KIND: u8>(
        section: &Section,
        z: &mut NarrowState<P>,
        block: &mut [Narrow],
    ) {
        // SAFETY: as `run_section`.
        unsafe {
            let c1 = _mm256_set1_ps(section.c1 as f32);
            let c2 = _mm256_set1_ps(section.c2 as f32);
            let neg_a1 = _mm256_set1_ps(section.neg_a1 as f32);
            let neg_a2 = _mm256_set1_ps(section.neg_a2 as f32);
            for step in block.iter_mut() {
                for (p, value) in step.iter_mut().enumerate().take(P) {
                    let x = *value;
                    let y = _mm256_add_ps(x, z.z1[p]);
                    if KIND == DELTA || KIND == DELTA_HIGH_PASS {
                        let (step1, step2) = if KIND == DELTA_HIGH_PASS {
                            (z.z2[p], z.z2[p])
                        } else {
                            (_mm256_fmadd_ps(c1, x, z.z2[p]), _mm256_fmadd_ps(c2, x, z.z2[p]))
                        };
                        z.z1[p] = _mm256_add_ps(z.z1[p], _mm256_fmadd_ps(neg_a1, y, step1));
                        z.z2[p] = _mm256_fmadd_ps(neg_a2, y, step2);
                    } else {
                        let partial = _mm256_fmadd_ps(c1, x, z.z2[p]);
                        let scaled = if KIND == PALINDROMIC {
                            x
                        } else {
                            _mm256_mul_ps(c2, x)
                        };
                        z.z1[p] = _mm256_fmadd_ps(neg_a1, y, partial);
                        z.z2[p] = _mm256_fmadd_ps(neg_a2, y, scaled);
                    }
                    *value = y;
                }
            }
        }
    }

    /// Eight f32 lanes as two vectors of four f64 (exact).
    #[inline(always)]
    unsafe fn widen(v: __m256) -> (__m256d, __m256d) {
        (
            _mm256_cvtps_pd(_mm256_castps256_ps128(v)),
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v)),
        )
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

    /// Eight samples of eight channels (one per vector) become eight time
    /// steps (one per vector, a channel per lane), and back.
    #[inline(always)]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }

    /// Lane masks for 0 to 8 valid values: `MASKS[8 - valid..][..8]` (the
    /// first 4 of them for 4 lanes).
    const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

    /// The mask for the `valid` (1 to 4) first samples of a step of 4.
    #[inline(always)]
    unsafe fn mask(valid: usize) -> __m128i {
        if valid == LANES {
            _mm_set1_epi32(-1)
        } else {
            _mm_loadu_si128(MASKS[8 - valid..].as_ptr().cast())
        }
    }

    /// The mask for the `valid` (1 to 8) first samples of a step of 8.
    #[inline(always)]
    unsafe fn mask8(valid: usize) -> __m256i {
        if valid == 8 {
            _mm256_set1_epi32(-1)
        } else {
            _mm256_loadu_si256(MASKS[8 - valid..].as_ptr().cast())
        }
    }

    /// As [`load_block`], for a first section in f32: 8 samples of 8
    /// channels at a time, transposed in f32, times `gain` plus `bias[p]`
    /// (one rounding); `block[t][p]` is step `start + t` of channels
    /// 8p .. 8p + 8. Returns whether all samples read were finite.
    ///
    /// # Safety
    /// As [`load_block`].
    #[inline(always)]
    unsafe fn load_block_f32<const P: usize>(
        gain: __m256,
        bias: &[__m256; P],
        channels: &[*mut f32; CHANNELS_PER_ROW],
        start: usize,
        block: &mut [Narrow],
    ) -> bool {
        let whole = block.len() - block.len() % 8;
        let mut not_finite = _mm256_setzero_ps();
        // Eight channels' whole block before the next eight: see [`run`]
        // on why the order of reads matters.
        for (p, &bias) in bias.iter().enumerate() {
            let mut steps = block.chunks_exact_mut(8);
            for (step, rows) in (&mut steps).enumerate() {
                // SAFETY: as this function's contract.
                let residue = unsafe { load_step_f32(gain, bias, channels, p, start + step * 8, rows) };
                not_finite = _mm256_or_ps(not_finite, residue);
            }
            let rows = steps.into_remainder();
            if !rows.is_empty() {
                // SAFETY: as this function's contract.
                let residue = unsafe { load_step_f32(gain, bias, channels, p, start + whole, rows) };
                not_finite = _mm256_or_ps(not_finite, residue);
            }
        }
        _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(not_finite, not_finite)) == 0
    }

    /// `rows.len()` (1 to 8) samples of channels 8p .. 8p + 8 from `t`
    /// into `rows[..][p]`; returns the OR of `x − x` over the samples read.
    ///
    /// # Safety
    /// As [`load_step`], with masked loads for fewer than 8 samples.
    #[inline(always)]
    unsafe fn load_step_f32(
        gain: __m256,
        bias: __m256,
        channels: &[*mut f32; CHANNELS_PER_ROW],
        p: usize,
        t: usize,
        rows: &mut [Narrow],
    ) -> __m256 {
        let valid = rows.len();
        let mut residue = _mm256_setzero_ps();
        // SAFETY (intrinsics and pointers): as this function's contract.
        unsafe {
            let mask = mask8(valid);
            let mut columns = [_mm256_setzero_ps(); 8];
            for (lane, column) in columns.iter_mut().enumerate() {
                let input = channels[8 * p + lane].add(t);
                let eight = if valid == 8 {
                    _mm256_loadu_ps(input)
                } else {
                    _mm256_maskload_ps(input, mask)
                };
                residue = _mm256_or_ps(residue, _mm256_sub_ps(eight, eight));
                *column = eight;
            }
            for (row, column) in rows.iter_mut().zip(transpose8(columns)) {
                row[p] = _mm256_fmadd_ps(gain, column, bias);
            }
        }
        residue
    }

    /// Writes a block back from f32: the inverse of [`load_block_f32`]
    /// (without the gain).
    ///
    /// # Safety
    /// As [`load_block`]; no other pointer reaches these samples.
    #[inline(always)]
    unsafe fn store_block_f32<const P: usize>(
        channels: &[*mut f32; CHANNELS_PER_ROW],
        start: usize,
        block: &[Narrow],
    ) {
        let whole = block.len() - block.len() % 8;
        for p in 0..P {
            let mut steps = block.chunks_exact(8);
            for (step, rows) in (&mut steps).enumerate() {
                // SAFETY: as this function's contract.
                unsafe { store_step_f32(channels, p, start + step * 8, rows) };
            }
            let rows = steps.remainder();
            if !rows.is_empty() {
                // SAFETY: as this function's contract.
                unsafe { store_step_f32(channels, p, start + whole, rows) };
            }
        }
    }

    /// `rows.len()` (1 to 8) samples of channels 8p .. 8p + 8 from `t`,
    /// from `rows[..][p]`.
    ///
    /// # Safety
    /// As [`store_step`], with masked stores for fewer than 8 samples.
    #[inline(always)]
    unsafe fn store_step_f32(channels: &[*mut f32; CHANNELS_PER_ROW], p: usize, t: usize, rows: &[Narrow]) {
        let valid = rows.len();
        // SAFETY (intrinsics and pointers): as this function's contract.
        unsafe {
            let mask = mask8(valid);
            let mut steps = [_mm256_setzero_ps(); 8];
            for (value, row) in steps.iter_mut().zip(rows) {
                *value = row[p];
            }
            for (lane, column) in transpose8(steps).into_iter().enumerate() {
                let output = channels[8 * p + lane].add(t);
                if valid == 8 {
                    _mm256_storeu_ps(output, column);
                } else {
                    _mm256_maskstore_ps(output, mask, column);
                }
            }
        }
    }

    /// Reads `block.len()` samples of each channel from `start`, widened,
    /// times `gain` plus the channel's `bias` (one rounding), transposed:
    /// `block[t][g]` is step `start + t` of group g's four channels.
    /// Returns whether all of them were finite.
    ///
    /// # Safety
    /// As [`run`], whose target features it needs (it is always inlined);
    /// `channels[..4G]` each start at least `start + block.len()` samples
    /// that only this call touches.
    #[inline(always)]
    unsafe fn load_block<const G: usize>(
        gain: __m256d,
        bias: &[f64],
        channels: &[*mut f32; CHANNELS_PER_ROW],
        start: usize,
        block: &mut [Wide],
    ) -> bool {
        // Whole steps of 4 with constant lengths, so no masks and no
        // branches in the loop; then the ragged end, masked. `x − x` is 0
        // for a finite x and NaN otherwise; NaN survives the OR.
        let whole = block.len() - block.len() % LANES;
        let mut not_finite = _mm_setzero_ps();
        // A group's whole block before the next group's (see [`run`]).
        for g in 0..G {
            let mut steps = block.chunks_exact_mut(LANES);
            for (step, rows) in (&mut steps).enumerate() {
                // SAFETY: as this function's contract.
                let residue = unsafe { load_step(gain, bias, channels, g, start + step * LANES, rows) };
                not_finite = _mm_or_ps(not_finite, residue);
            }
            let rows = steps.into_remainder();
            if !rows.is_empty() {
                // SAFETY: as this function's contract.
                let residue = unsafe { load_step(gain, bias, channels, g, start + whole, rows) };
                not_finite = _mm_or_ps(not_finite, residue);
            }
        }
        _mm_movemask_ps(_mm_cmpunord_ps(not_finite, not_finite)) == 0
    }

    /// `rows.len()` (1 to 4) samples of each channel from `t` into `rows`;
    /// returns the OR of `x − x` over the samples read (NaN in some lane if
    /// one of them was not finite).
    ///
    /// # Safety
    /// As [`load_block`], for the samples `t .. t + rows.len()`. Fewer than
    /// 4 are read with masked loads, which do not touch (or fault on) the
    /// masked-out lanes.
    #[inline(always)]
    unsafe fn load_step(
        gain: __m256d,
        bias: &[f64],
        channels: &[*mut f32; CHANNELS_PER_ROW],
        g: usize,
        t: usize,
        rows: &mut [Wide],
    ) -> __m128 {
        let valid = rows.len();
        let mut residue = _mm_setzero_ps();
        // SAFETY (intrinsics and pointers): as this function's contract.
        unsafe {
            let mask = mask(valid);
            // Plain loops, not closures: a closure is a function of its
            // own, without the caller's target features, and was not
            // inlined.
            let mut columns = [_mm256_setzero_pd(); 4];
            for (lane, column) in columns.iter_mut().enumerate() {
                let input = channels[LANES * g + lane].add(t);
                let four = if valid == LANES {
                    _mm_loadu_ps(input)
                } else {
                    _mm_maskload_ps(input, mask)
                };
                residue = _mm_or_ps(residue, _mm_sub_ps(four, four));
                let shift = _mm256_set1_pd(bias[LANES * g + lane]);
                *column = _mm256_fmadd_pd(gain, _mm256_cvtps_pd(four), shift);
            }
            for (row, column) in rows.iter_mut().zip(transpose(columns)) {
                row[g] = column;
            }
        }
        residue
    }

    /// Writes a block back: the inverse of [`load_block`], narrowed to f32.
    ///
    /// # Safety
    /// As [`load_block`]; no other pointer reaches these samples.
    #[inline(always)]
    unsafe fn store_block<const G: usize>(
        channels: &[*mut f32; CHANNELS_PER_ROW],
        start: usize,
        block: &[Wide],
    ) {
        for g in 0..G {
            let mut steps = block.chunks_exact(LANES);
            for (step, rows) in (&mut steps).enumerate() {
                // SAFETY: as this function's contract.
                unsafe { store_step(channels, g, start + step * LANES, rows) };
            }
            let rows = steps.remainder();
            if !rows.is_empty() {
                // SAFETY: as this function's contract.
                unsafe { store_step(channels, g, start + block.len() - block.len() % LANES, rows) };
            }
        }
    }

    /// `rows.len()` (1 to 4) samples of each channel from `t`, from `rows`.
    ///
    /// # Safety
    /// As [`load_step`]; masked stores leave the masked-out lanes alone.
    #[inline(always)]
    unsafe fn store_step(channels: &[*mut f32; CHANNELS_PER_ROW], g: usize, t: usize, rows: &[Wide]) {
        let valid = rows.len();
        // SAFETY (intrinsics and pointers): as this function's contract.
        unsafe {
            let mask = mask(valid);
            let mut steps = [_mm256_setzero_pd(); 4];
            for (value, row) in steps.iter_mut().zip(rows) {
                *value = row[g];
            }
            for (lane, column) in transpose(steps).into_iter().enumerate() {
                let output = channels[LANES * g + lane].add(t);
                if valid == LANES {
                    _mm_storeu_ps(output, _mm256_cvtpd_ps(column));
                } else {
                    _mm_maskstore_ps(output, mask, _mm256_cvtpd_ps(column));
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
        filter_with(
            ChannelBank::new(biquads, channels, true, kernel).unwrap(),
            data,
            frame,
        )
    }

    fn filter_with(mut bank: ChannelBank, data: &[f32], frame: usize) -> Vec<f32> {
        let channels = bank.channels();
        let len = data.len() / channels;
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

    /// Cascades with and without a general (non-palindromic) section, in
    /// every form and every change of precision between sections.
    fn cascades() -> Vec<Vec<Biquad>> {
        let notch = |f: f64| crate::filters::design::notch(f, 30.0, 250.0).unwrap();
        let mut bandstop_and_notch = butterworth(3, Band::Bandstop(45.0, 55.0), 250.0).unwrap();
        bandstop_and_notch.push(notch(60.0));
        // f32 → f64 → f32 delta → f32, and a general delta section ([1, 0, −1]).
        let mut mixed = vec![notch(50.0)];
        mixed.extend(butterworth(2, Band::Lowpass(1.0), 250.0).unwrap());
        mixed.extend(butterworth(3, Band::Bandpass(0.5, 40.0), 360.0).unwrap());
        mixed.push(notch(60.0));
        vec![
            // [1, ±2, 1] only, 10 sections: palindromic, high-pass ones in the delta form.
            butterworth(10, Band::Bandpass(1.0, 30.0), 250.0).unwrap(),
            // 16 sections: longer than the scalar loop's old limit of 12.
            butterworth(16, Band::Bandpass(2.0, 40.0), 250.0).unwrap(),
            // Low cut-off low-pass only: every section in f64.
            butterworth(4, Band::Lowpass(1.0), 250.0).unwrap(),
            // Odd order: a general [1, c1, 0] section.
            butterworth(5, Band::Lowpass(20.0), 250.0).unwrap(),
            bandstop_and_notch,
            mixed,
        ]
    }

    /// The form each section of `biquads`' cascade takes.
    fn forms_of(biquads: &[Biquad]) -> Vec<Form> {
        Cascade::new(biquads, false)
            .unwrap()
            .sections
            .iter()
            .map(|s| s.form)
            .collect()
    }

    #[test]
    fn the_test_cascades_cover_every_form_and_change_of_precision() {
        let all = cascades();
        let forms: Vec<Vec<Form>> = all.iter().map(|b| forms_of(b)).collect();
        assert!(forms[2].iter().all(|&f| f == Form::Double));
        use Form::{Delta, Double, Single};
        assert_eq!(forms[5], [Single, Double, Single, Delta, Delta, Single]);
        let mixed = Cascade::new(&all[5], false).unwrap();
        assert!(mixed.sections[3].delta() && !mixed.sections[3].delta_without_numerator());
        assert!(mixed.sections[4].delta_without_numerator());
    }

    #[test]
    fn even_butterworth_and_notch_cascades_are_palindromic() {
        // In direct form II; delta-form sections have no such shortcut.
        let palindromic = |biquads: &[Biquad]| {
            let cascade = Cascade::new(biquads, false).unwrap();
            cascade
                .sections
                .iter()
                .filter(|s| !s.delta())
                .all(Section::palindromic)
        };
        let [bandpass, _, _, lowpass, ..] = &cascades()[..] else {
            unreachable!()
        };
        assert!(palindromic(bandpass));
        let mut with_notch = bandpass.clone();
        with_notch.push(crate::filters::design::notch(50.0, 30.0, 250.0).unwrap());
        assert!(palindromic(&with_notch));
        // Odd order: a [1, c1, 0] section.
        assert!(!palindromic(lowpass));
    }

    #[test]
    fn simd_output_does_not_depend_on_framing() {
        // 70 channels: rows of 64 and 6 (18 groups, the last partial:
        // passes of 4 + 4 + 4 + 4 and 2 in f64, 8 + 8 and 2 mixed); 10
        // channels: 3 groups, and a fourth of padding when mixed. 500
        // samples: blocks of 32 and a ragged end.
        for biquads in cascades() {
            for channels in [70, 10] {
                let data = noise(channels * 500, 11);
                let whole = filter(Kernel::detect(), &biquads, channels, &data, 500);
                for frame in [1, 7, 37, 130] {
                    let framed = filter(Kernel::detect(), &biquads, channels, &data, frame);
                    assert!(framed == whole, "{channels} channels, frame {frame}");
                }
            }
        }
    }

    #[test]
    fn each_section_takes_the_first_form_whose_noise_gain_is_low_enough() {
        use Form::{Delta, Double, Single};
        // 0.5–45 Hz at 128 Hz: the 45 Hz sections in f32 direct form II, the
        // 0.5 Hz ones (direct form II noise gain 10⁴) in the f32 delta form.
        let bandpass = butterworth(4, Band::Bandpass(0.5, 45.0), 128.0).unwrap();
        assert_eq!(forms_of(&bandpass), [Single, Single, Delta, Delta]);
        let notch = |f: f64, rate: f64| crate::filters::design::notch(f, 30.0, rate).unwrap();
        assert_eq!(forms_of(&[notch(50.0, 128.0)]), [Single]); // noise gain 16
        assert_eq!(forms_of(&[notch(60.0, 1000.0)]), [Delta]); // 297; delta 0.53
        assert_eq!(
            forms_of(&butterworth(2, Band::Highpass(0.1), 1000.0).unwrap()),
            [Delta]
        );
        // A low-pass at 0.5 Hz: its delta form amplifies rounding 10⁸ times.
        assert_eq!(
            forms_of(&butterworth(4, Band::Lowpass(0.5), 256.0).unwrap()),
            [Double, Double]
        );
        // Delta sections without numerator terms (zeros at z = 1).
        let cascade = Cascade::new(&bandpass, false).unwrap();
        assert!(cascade.sections[2..].iter().all(Section::delta_without_numerator));
    }

    /// The delta form's noise gain against `scipy.linalg.solve_discrete_lyapunov`
    /// on the same realization (see [`delta_noise_gain`]).
    #[test]
    fn the_delta_noise_gain_matches_scipy() {
        let gain = |biquad: &Biquad| {
            let [b0, b1, b2] = biquad.b;
            delta_noise_gain(b1 / b0, b2 / b0, biquad.a[1], biquad.a[2])
        };
        let highpass = butterworth(4, Band::Highpass(0.5), 128.0).unwrap();
        let notch = crate::filters::design::notch(60.0, 30.0, 1000.0).unwrap();
        let bandpass = butterworth(3, Band::Bandpass(0.5, 40.0), 360.0).unwrap();
        let middle = bandpass
            .iter()
            .find(|b| b.b[1] == 0.0)
            .expect("a [1, 0, -1] section");
        for (ours, scipy) in [
            (gain(&highpass[0]), 0.41825),
            (gain(&highpass[1]), 1.13302),
            (gain(&notch), 0.524727),
            (gain(middle), 7.17536),
        ] {
            assert!((ours / scipy - 1.0).abs() < 1e-4, "{ours} vs {scipy}");
        }
    }

    #[test]
    fn the_noise_gain_formula_matches_the_impulse_response() {
        for biquad in butterworth(10, Band::Bandpass(1.0, 30.0), 250.0).unwrap() {
            let [_, a1, a2] = biquad.a;
            let (mut h1, mut h2, mut sum) = (0.0, 0.0, 0.0);
            for n in 0..200_000 {
                let h = f64::from(u8::from(n == 0)) - a1 * h1 - a2 * h2;
                sum += h * h;
                (h2, h1) = (h1, h);
            }
            let formula = feedback_noise_gain(a1, a2);
            assert!((formula - sum).abs() <= 1e-9 * sum, "{formula} vs {sum}");
        }
        assert_eq!(feedback_noise_gain(-2.0, 1.0), f64::INFINITY); // double pole at z = 1
    }

    /// On a CPU with AVX-512VL the kernel takes 16-group passes compiled
    /// for 32 registers; the 16-register passes (what other CPUs run) must
    /// give the same bits, and are run here by turning the flag off.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn passes_for_16_and_32_registers_agree_bitwise() {
        let kernel = Kernel::detect();
        if kernel == Kernel::portable() {
            return;
        }
        for biquads in cascades() {
            let data = noise(70 * 300, 11);
            for frame in [7, 37, 300] {
                let default = filter(kernel, &biquads, 70, &data, frame);
                let mut bank = ChannelBank::new(&biquads, 70, true, kernel).unwrap();
                if let Some(scratch) = bank.scratch.as_mut() {
                    scratch.registers_32 = false;
                }
                let narrow = filter_with(bank, &data, frame);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&default), bits(&narrow), "frames of {frame}");
            }
        }
    }

    #[test]
    fn simd_and_gap_paths_agree_bitwise() {
        for biquads in cascades() {
            // 6 channels (a partial group).
            let data = noise(6 * 500, 7);
            let whole = filter(Kernel::detect(), &biquads, 6, &data, 500);
            // A gap at step 100: the first of a 20-sample frame, or inside a
            // block of one 500-sample frame, or an infinity inside a
            // 37-sample frame. The pass's channels go on in the scalar path
            // from the block holding it.
            for (at, bad, frame) in [
                (100, f32::NAN, 20),
                (100, f32::NAN, 500),
                (117, f32::INFINITY, 37),
            ] {
                let mut gappy = data.clone();
                gappy[3 * 500 + at] = bad;
                let by_frame = filter(Kernel::detect(), &biquads, 6, &gappy, frame);
                for c in [0, 1, 2, 4, 5] {
                    assert_eq!(whole[c * 500..(c + 1) * 500], by_frame[c * 500..(c + 1) * 500]);
                }
                assert_eq!(whole[3 * 500..3 * 500 + at], by_frame[3 * 500..3 * 500 + at]);
                assert!(by_frame[3 * 500 + at].is_nan());
            }
        }
    }

    /// Relative RMS error of `ours` against the textbook cascade in f64.
    fn error_against_textbook(biquads: &[Biquad], data: &[f32], ours: &[f32]) -> f64 {
        let mut state = vec![[0.0f64; 2]; biquads.len()];
        let (mut error, mut power) = (0.0, 0.0);
        for (&sample, &our) in data.iter().zip(ours) {
            let mut x = f64::from(sample);
            for (b, z) in biquads.iter().zip(state.iter_mut()) {
                let y = b.b[0] * x + z[0];
                z[0] = b.b[1] * x - b.a[1] * y + z[1];
                z[1] = b.b[2] * x - b.a[2] * y;
                x = y;
            }
            error += (f64::from(our) - x).powi(2);
            power += x * x;
        }
        (error / power).sqrt()
    }

    /// A DC offset 1000 times the signal (a DC-coupled amplifier) through
    /// high-pass sections in the f32 delta form: the shift keeps the error
    /// at f32 level; without it the offset's rounding would show.
    #[test]
    fn a_large_dc_offset_costs_no_precision() {
        let data: Vec<f32> = noise(60 * 1000, 11).iter().map(|x| 20_000.0 + 20.0 * x).collect();
        let mut bandpass = butterworth(4, Band::Bandpass(0.5, 45.0), 256.0).unwrap();
        bandpass.push(crate::filters::design::notch(50.0, 30.0, 256.0).unwrap());
        let highpass = butterworth(2, Band::Highpass(0.1), 1000.0).unwrap();
        for (biquads, kernel) in [
            (&bandpass, Kernel::detect()),
            (&bandpass, Kernel::portable()),
            (&highpass, Kernel::detect()),
        ] {
            let mut bank = ChannelBank::new(biquads, 1, false, kernel).unwrap();
            assert!(bank.cascade.shift);
            let mut ours = data.clone();
            bank.process(&mut ours, &[(0, data.len())]);
            let error = error_against_textbook(biquads, &data, &ours);

            let mut unshifted = ChannelBank::new(biquads, 1, false, kernel).unwrap();
            unshifted.cascade.shift = false;
            let mut ours = data.clone();
            unshifted.process(&mut ours, &[(0, data.len())]);
            let unshifted_error = error_against_textbook(biquads, &data, &ours);
            eprintln!(
                "{}: shifted {error:.2e}, unshifted {unshifted_error:.2e}",
                kernel.name()
            );
            assert!(error < 1e-6, "{}: {error:e}", kernel.name());
            assert!(unshifted_error > 4.0 * error, "{unshifted_error:e} vs {error:e}");
        }
    }

    #[test]
    fn the_normalised_cascade_matches_the_textbook_form() {
        // Direct transposed form II with the designed b and a, in f64.
        for biquads in cascades() {
            let data = noise(2000, 5);
            let mut bank = ChannelBank::new(&biquads, 1, false, Kernel::detect()).unwrap();
            let mut ours = data.clone();
            bank.process(&mut ours, &[(0, 2000)]);
            let mut state = vec![[0.0f64; 2]; biquads.len()];
            for (i, &sample) in data.iter().enumerate() {
                let mut x = f64::from(sample);
                for (b, z) in biquads.iter().zip(state.iter_mut()) {
                    let y = b.b[0] * x + z[0];
                    z[0] = b.b[1] * x - b.a[1] * y + z[1];
                    z[1] = b.b[2] * x - b.a[2] * y;
                    x = y;
                }
                let expected = x as f32;
                assert!(
                    (ours[i] - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                    "sample {i}: {} vs {expected}",
                    ours[i]
                );
            }
        }
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
    fn an_empty_cascade_passes_samples_through() {
        let data = noise(6 * 40, 9);
        for kernel in [Kernel::detect(), Kernel::portable()] {
            assert_eq!(filter(kernel, &[], 6, &data, 7), data);
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
