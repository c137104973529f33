//! Noise mechanisms over integers: the noise scale from (ε, δ, Δ), rounded
//! to exact rationals in the conservative direction (more noise, never
//! less), and the draw.

use super::sample::{discrete_gaussian, discrete_laplace, RandomError, RandomSource};

/// Denominator of the Laplace scale: the scale Δ/ε is rounded **up** to a
/// multiple of 2^-20.
const LAPLACE_DENOMINATOR: u128 = 1 << 20;
/// σ² is rounded up to a rational with about 40 bits of precision.
const GAUSSIAN_PRECISION_BITS: i32 = 40;
/// Largest σ² accepted, so that the sampler's integer arithmetic (u128)
/// cannot overflow.
pub const MAX_GAUSSIAN_VARIANCE: f64 = (1u64 << 56) as f64;
/// Smallest σ² used (smaller ones are raised to it).
const MIN_GAUSSIAN_VARIANCE: f64 = 1.0 / (1u64 << 20) as f64;
/// Largest Laplace scale accepted (in grid units).
pub const MAX_LAPLACE_SCALE: f64 = (1u64 << 56) as f64;

/// Which noise distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MechanismKind {
    /// Discrete Laplace (two-sided geometric): pure ε-DP.
    Laplace,
    /// Discrete Gaussian: (ε, δ)-DP through zero-concentrated DP.
    Gaussian,
}

/// Parameters out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MechanismError {
    #[error("epsilon must be finite and greater than 0")]
    BadEpsilon,
    #[error("delta must be greater than 0 and less than 1 for the Gaussian mechanism (and 0 for Laplace)")]
    BadDelta,
    #[error("the sensitivity must be a positive integer number of grid steps")]
    BadSensitivity,
    #[error(
        "the noise scale is too large for exact sampling; use a coarser granularity or a larger epsilon"
    )]
    ScaleTooLarge,
}

/// A mechanism ready to draw: exact rational parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noise {
    /// Discrete Laplace with scale `t/s`.
    Laplace { s: u128, t: u128 },
    /// Discrete Gaussian with σ² = `num/den`.
    Gaussian { num: u128, den: u128 },
}

impl Noise {
    /// Pure ε-DP for an integer query of sensitivity Δ (L1): scale Δ/ε,
    /// rounded up to a multiple of 2^-20.
    pub fn laplace(epsilon: f64, sensitivity: u64) -> Result<Noise, MechanismError> {
        check_epsilon(epsilon)?;
        if sensitivity == 0 {
            return Err(MechanismError::BadSensitivity);
        }
        let scale = sensitivity as f64 / epsilon;
        if scale.is_nan() || scale > MAX_LAPLACE_SCALE {
            return Err(MechanismError::ScaleTooLarge);
        }
        // Rounded up after a relative margin of 1e-12 for the float division.
        let t = (scale * (1.0 + 1e-12) * LAPLACE_DENOMINATOR as f64).ceil() as u128;
        Ok(Noise::Laplace {
            s: LAPLACE_DENOMINATOR,
            t: t.max(1),
        })
    }

    /// (ε, δ)-DP for an integer query of sensitivity Δ (L2 = L1 for one
    /// value): the discrete Gaussian with σ² = Δ²/(2ρ) is ρ-zCDP (CKS 2020,
    /// Thm 4), and ρ-zCDP implies (ρ + 2·sqrt(ρ·ln(1/δ)), δ)-DP (Bun and
    /// Steinke 2016, Prop. 1.3); ρ is the largest that gives ε:
    /// ρ = (sqrt(ln(1/δ) + ε) - sqrt(ln(1/δ)))².
    pub fn gaussian(epsilon: f64, delta: f64, sensitivity: u64) -> Result<Noise, MechanismError> {
        check_epsilon(epsilon)?;
        if !(delta > 0.0 && delta < 1.0) {
            return Err(MechanismError::BadDelta);
        }
        if sensitivity == 0 {
            return Err(MechanismError::BadSensitivity);
        }
        let rho = zcdp_rho(epsilon, delta);
        let delta_sens = sensitivity as f64;
        let variance = delta_sens * delta_sens / (2.0 * rho) * (1.0 + 1e-9);
        if variance.is_nan() || variance > MAX_GAUSSIAN_VARIANCE {
            return Err(MechanismError::ScaleTooLarge);
        }
        // A tinier σ² (an enormous ε) is raised: more noise is always
        // allowed, and it keeps the sampler's products within 128 bits.
        let (num, den) = rational_up(variance.max(MIN_GAUSSIAN_VARIANCE));
        Ok(Noise::Gaussian { num, den })
    }

    /// One draw.
    pub fn draw(&self, rng: &mut impl RandomSource) -> Result<i128, RandomError> {
        match *self {
            Noise::Laplace { s, t } => discrete_laplace(rng, s, t),
            Noise::Gaussian { num, den } => discrete_gaussian(rng, num, den),
        }
    }

    /// The variance of the noise: 2q/(1-q)² with q = exp(-1/b) for the
    /// discrete Laplace of scale b; for the discrete Gaussian, the exact sum
    /// Σ x²·p(x) (it is slightly below σ² and approaches it for σ ≥ 1).
    pub fn variance(&self) -> f64 {
        match *self {
            Noise::Laplace { s, t } => {
                let q = (-(s as f64) / t as f64).exp();
                2.0 * q / ((1.0 - q) * (1.0 - q))
            }
            Noise::Gaussian { .. } => {
                let (mass, second) = self.gaussian_sums();
                second / mass
            }
        }
    }

    /// The exact probability of `x` (normalised numerically).
    pub fn pmf(&self, x: i64) -> f64 {
        match *self {
            Noise::Laplace { s, t } => {
                let q = (-(s as f64) / t as f64).exp();
                (1.0 - q) / (1.0 + q) * q.powf(x.unsigned_abs() as f64)
            }
            Noise::Gaussian { .. } => {
                let (mass, _) = self.gaussian_sums();
                self.gaussian_weight(x) / mass
            }
        }
    }

    /// The noise's standard deviation parameter σ (Gaussian) or scale b
    /// (Laplace), as a float for documentation and tests.
    pub fn scale(&self) -> f64 {
        match *self {
            Noise::Laplace { s, t } => t as f64 / s as f64,
            Noise::Gaussian { num, den } => (num as f64 / den as f64).sqrt(),
        }
    }

    fn gaussian_weight(&self, x: i64) -> f64 {
        let sigma2 = self.scale().powi(2);
        (-(x as f64).powi(2) / (2.0 * sigma2)).exp()
    }

    fn gaussian_sums(&self) -> (f64, f64) {
        let reach = (self.scale() * 40.0).ceil() as i64 + 1;
        let mut mass = 0.0;
        let mut second = 0.0;
        for x in -reach..=reach {
            let w = self.gaussian_weight(x);
            mass += w;
            second += w * (x as f64).powi(2);
        }
        (mass, second)
    }
}

fn check_epsilon(epsilon: f64) -> Result<(), MechanismError> {
    if epsilon.is_finite() && epsilon > 0.0 {
        Ok(())
    } else {
        Err(MechanismError::BadEpsilon)
    }
}

/// The largest ρ with ρ + 2·sqrt(ρ·ln(1/δ)) ≤ ε.
pub fn zcdp_rho(epsilon: f64, delta: f64) -> f64 {
    let l = (1.0 / delta).ln();
    let root = (l + epsilon).sqrt() - l.sqrt();
    // Rounded down slightly: less ρ is more noise.
    root * root * (1.0 - 1e-9)
}

/// `x > 0` as num/den ≥ x with den a power of two giving ~40 bits.
fn rational_up(x: f64) -> (u128, u128) {
    let exponent = x.log2().floor() as i32;
    let shift = (GAUSSIAN_PRECISION_BITS - exponent).clamp(0, 100);
    let den = 1u128 << shift;
    let num = (x * den as f64).ceil() as u128;
    (num.max(1), den)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_towards_more_noise() {
        let Noise::Laplace { s, t } = Noise::laplace(0.3, 1).expect("valid") else {
            panic!("laplace")
        };
        assert!(t as f64 / s as f64 >= 1.0 / 0.3);
        assert!(t as f64 / s as f64 - 1.0 / 0.3 < 1e-5);
        let g = Noise::gaussian(1.0, 1e-6, 1).expect("valid");
        let rho = zcdp_rho(1.0, 1e-6);
        assert!(rho + 2.0 * (rho * (1e6f64).ln()).sqrt() <= 1.0);
        assert!(g.scale().powi(2) >= 1.0 / (2.0 * rho));
        assert_eq!(Noise::laplace(0.0, 1), Err(MechanismError::BadEpsilon));
        assert_eq!(Noise::gaussian(1.0, 0.0, 1), Err(MechanismError::BadDelta));
        assert_eq!(Noise::laplace(1e-30, 1), Err(MechanismError::ScaleTooLarge));
        // An enormous ε gives the smallest σ² allowed, and draws terminate.
        let tiny = Noise::gaussian(1e12, 0.5, 1).expect("valid");
        assert!(tiny.scale().powi(2) >= MIN_GAUSSIAN_VARIANCE);
        let mut rng = crate::dp::tests::TestRng::new(1);
        assert_eq!(tiny.draw(&mut rng), Ok(0));
    }
}
