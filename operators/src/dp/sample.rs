//! Exact samplers over the integers (Canonne, Kamath, Steinke 2020, "The
//! Discrete Gaussian for Differential Privacy", Algorithms 1-3).
//!
//! Every probability is a ratio of integers and every draw is an integer, so
//! no floating-point rounding can shape the noise (the weakness Mironov 2012
//! found in textbook `-b·ln(u)` Laplace sampling: the set of reachable
//! outputs depends on the secret value). Randomness comes from a
//! [`RandomSource`]: the OS CSPRNG in production ([`OsRandom`]).

use ring::rand::SecureRandom;

/// The randomness failed (the OS generator returned an error). Callers fail
/// closed: no release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// Uniform 64-bit words.
pub trait RandomSource {
    fn next_u64(&mut self) -> Result<u64, RandomError>;
}

/// The operating system's CSPRNG (`getrandom` on Linux, through ring's
/// `SystemRandom`), read 512 bytes at a time.
pub struct OsRandom {
    rng: ring::rand::SystemRandom,
    buffer: [u8; 512],
    used: usize,
}

impl Default for OsRandom {
    fn default() -> Self {
        OsRandom {
            rng: ring::rand::SystemRandom::new(),
            buffer: [0; 512],
            used: 512,
        }
    }
}

impl std::fmt::Debug for OsRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OsRandom")
    }
}

impl RandomSource for OsRandom {
    fn next_u64(&mut self) -> Result<u64, RandomError> {
        if self.used + 8 > self.buffer.len() {
            self.rng.fill(&mut self.buffer).map_err(|_| RandomError)?;
            self.used = 0;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.buffer[self.used..self.used + 8]);
        // Used bytes are overwritten so they cannot be read twice.
        self.buffer[self.used..self.used + 8].fill(0);
        self.used += 8;
        Ok(u64::from_le_bytes(word))
    }
}

/// A uniform integer in `[0, n)`, `n > 0`, by rejection (no modulo bias).
pub fn uniform_below(rng: &mut impl RandomSource, n: u128) -> Result<u128, RandomError> {
    debug_assert!(n > 0);
    if n <= 1 {
        return Ok(0);
    }
    let bits = 128 - (n - 1).leading_zeros();
    let mask = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    loop {
        let high = u128::from(rng.next_u64()?);
        let low = u128::from(rng.next_u64()?);
        let x = ((high << 64) | low) & mask;
        if x < n {
            return Ok(x);
        }
    }
}

/// Bernoulli(num / den), `0 <= num <= den`, `den > 0`.
pub fn bernoulli(rng: &mut impl RandomSource, num: u128, den: u128) -> Result<bool, RandomError> {
    Ok(uniform_below(rng, den)? < num)
}

/// Bernoulli(exp(-num/den)) for `num/den >= 0` (CKS Algorithm 1): exact,
/// with only integer arithmetic.
pub fn bernoulli_exp(rng: &mut impl RandomSource, num: u128, den: u128) -> Result<bool, RandomError> {
    debug_assert!(den > 0);
    // exp(-γ) = exp(-1)^floor(γ) · exp(-(γ - floor γ)).
    let whole = num / den;
    for _ in 0..whole {
        if !bernoulli_exp_at_most_one(rng, 1, 1)? {
            return Ok(false);
        }
    }
    bernoulli_exp_at_most_one(rng, num % den, den)
}

/// Bernoulli(exp(-γ)) for γ = num/den in [0, 1]: count K, the first k with
/// Bernoulli(γ/k) = 0; P(K odd) = exp(-γ).
fn bernoulli_exp_at_most_one(rng: &mut impl RandomSource, num: u128, den: u128) -> Result<bool, RandomError> {
    let mut k: u128 = 1;
    loop {
        // γ/k = num / (den·k); den·k cannot overflow before k is ~2^64,
        // which has probability 1/k! of being reached.
        let Some(scaled) = den.checked_mul(k) else {
            return Ok(k % 2 == 1);
        };
        if !bernoulli(rng, num, scaled)? {
            return Ok(k % 2 == 1);
        }
        k += 1;
    }
}

/// Discrete Laplace with scale `t/s` (pmf ∝ exp(-|x|·s/t)), CKS Algorithm 2.
/// `s, t > 0`.
pub fn discrete_laplace(rng: &mut impl RandomSource, s: u128, t: u128) -> Result<i128, RandomError> {
    debug_assert!(s > 0 && t > 0);
    loop {
        let u = uniform_below(rng, t)?;
        if !bernoulli_exp(rng, u, t)? {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp(rng, 1, 1)? {
            v += 1;
        }
        let x = u.saturating_add(t.saturating_mul(v));
        let y = x / s;
        let negative = bernoulli(rng, 1, 2)?;
        if negative && y == 0 {
            continue;
        }
        let y = i128::try_from(y).unwrap_or(i128::MAX);
        return Ok(if negative { -y } else { y });
    }
}

/// Discrete Gaussian with variance parameter σ² = `num/den` (pmf ∝
/// exp(-x²/(2σ²))), CKS Algorithm 3: discrete Laplace proposals with scale
/// t = floor(σ)+1, accepted with probability exp(-(|y| - σ²/t)²/(2σ²)).
pub fn discrete_gaussian(rng: &mut impl RandomSource, num: u128, den: u128) -> Result<i128, RandomError> {
    debug_assert!(num > 0 && den > 0);
    // t = floor(sqrt(num/den)) + 1, by integer square root.
    let t = isqrt(num / den) + 1;
    loop {
        let y = discrete_laplace(rng, 1, t)?;
        let abs = y.unsigned_abs();
        // (|y| - σ²/t)² / (2σ²) = (|y|·t·den - num)² / (2·num·t²·den).
        let accept = match exponent(abs, t, num, den) {
            Some((n, d)) => bernoulli_exp(rng, n, d)?,
            // Only for |y| so far out that the acceptance probability is
            // below exp(-2^15) (the parameters are bounded by
            // `Noise::gaussian`: 2^-20 ≤ σ² ≤ 2^56): rejecting is exact to
            // far below any measurable difference.
            None => false,
        };
        if accept {
            return Ok(y);
        }
    }
}

fn exponent(abs: u128, t: u128, num: u128, den: u128) -> Option<(u128, u128)> {
    let a = abs.checked_mul(t)?.checked_mul(den)?;
    let diff = a.abs_diff(num);
    let n = diff.checked_mul(diff)?;
    let d = num
        .checked_mul(2)?
        .checked_mul(t.checked_mul(t)?)?
        .checked_mul(den)?;
    Some((n, d))
}

/// floor(sqrt(n)) exactly.
pub fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    // Newton's method from an over-estimate.
    let mut x = 1u128 << (128 - n.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}
