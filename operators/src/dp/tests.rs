//! Statistical tests of the samplers: many draws from fixed seeds, compared
//! with the exact distribution. Every bound is 5 standard errors of the
//! statistic (or, for chi-square, its mean plus 5 standard deviations), so a
//! correct sampler fails with probability below ~1e-6 per check, and the
//! fixed seeds make the outcome reproducible.

use std::sync::Arc;

use super::mechanism::{MechanismKind, Noise};
use super::sample::{
    bernoulli_exp, discrete_gaussian, discrete_laplace, isqrt, OsRandom, RandomError, RandomSource,
};
use super::*;
use crate::privacy::PrivacyCounters;
use crate::{Item, Operator, Output, Record};

/// xoshiro256** seeded by SplitMix64: a fast, seedable generator for tests
/// only (production draws come from the OS CSPRNG).
pub(crate) struct TestRng([u64; 4]);

impl TestRng {
    pub(crate) fn new(seed: u64) -> TestRng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        TestRng([next(), next(), next(), next()])
    }
}

impl RandomSource for TestRng {
    fn next_u64(&mut self) -> Result<u64, RandomError> {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        Ok(result)
    }
}

const N: usize = 200_000;

/// Checks mean, variance and the pmf of `draws` against `noise`.
fn check_distribution(noise: &Noise, draws: &[i128]) {
    let n = draws.len() as f64;
    let var = noise.variance();
    // Fourth moment from the exact pmf (the tails beyond 60 scales are
    // below 1e-20).
    let reach = (noise.scale() * 60.0).ceil() as i64 + 5;
    let mu4: f64 = (-reach..=reach).map(|x| noise.pmf(x) * (x as f64).powi(4)).sum();
    let total: f64 = (-reach..=reach).map(|x| noise.pmf(x)).sum();
    assert!((total - 1.0).abs() < 1e-9, "pmf sums to {total}");

    let mean = draws.iter().map(|&x| x as f64).sum::<f64>() / n;
    let mean_bound = 5.0 * (var / n).sqrt();
    assert!(mean.abs() <= mean_bound, "mean {mean} beyond ±{mean_bound}");

    // Variance about the known mean 0; its standard error is
    // sqrt((μ4 - σ⁴)/n).
    let sample_var = draws.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n;
    let var_bound = 5.0 * ((mu4 - var * var) / n).sqrt();
    assert!(
        (sample_var - var).abs() <= var_bound,
        "variance {sample_var} vs {var} beyond ±{var_bound}"
    );

    // Chi-square over the values with expected count ≥ 20, the rest in two
    // tail bins.
    let mut observed: std::collections::BTreeMap<i64, f64> = Default::default();
    for &x in draws {
        *observed.entry(x as i64).or_default() += 1.0;
    }
    let mut bins: Vec<(f64, f64)> = Vec::new(); // (observed, expected)
    let edge = (0..=reach)
        .take_while(|&x| noise.pmf(x) * n >= 20.0)
        .last()
        .unwrap_or(0);
    for x in -edge..=edge {
        bins.push((observed.get(&x).copied().unwrap_or(0.0), noise.pmf(x) * n));
    }
    let tail_p: f64 = (edge + 1..=reach).map(|x| noise.pmf(x)).sum();
    let low_tail = observed.range(..-edge).map(|(_, c)| c).sum::<f64>();
    let high_tail = observed.range(edge + 1..).map(|(_, c)| c).sum::<f64>();
    if tail_p * n >= 5.0 {
        bins.push((low_tail, tail_p * n));
        bins.push((high_tail, tail_p * n));
    } else {
        assert!(low_tail + high_tail <= tail_p * n + 5.0 * (tail_p * n).sqrt() + 5.0);
    }
    let chi2: f64 = bins.iter().map(|(o, e)| (o - e) * (o - e) / e).sum();
    let df = (bins.len() - 1) as f64;
    let chi_bound = df + 5.0 * (2.0 * df).sqrt();
    assert!(
        chi2 <= chi_bound,
        "chi-square {chi2} with {df} dof beyond {chi_bound}"
    );

    // Total variation distance over the whole support seen.
    let tv: f64 = 0.5
        * (-reach..=reach)
            .map(|x| (observed.get(&x).copied().unwrap_or(0.0) / n - noise.pmf(x)).abs())
            .sum::<f64>();
    // E[TV] ≤ 0.5·Σ sqrt(p(1-p)/n); 3x that is a generous, still tight bound.
    let expected_tv: f64 = 0.5
        * (-reach..=reach)
            .map(|x| (noise.pmf(x) * (1.0 - noise.pmf(x)) / n).sqrt())
            .sum::<f64>();
    assert!(
        tv <= 3.0 * expected_tv,
        "TV distance {tv} beyond {}",
        3.0 * expected_tv
    );
}

fn draws(noise: &Noise, rng: &mut impl RandomSource, n: usize) -> Vec<i128> {
    (0..n).map(|_| noise.draw(rng).expect("test rng")).collect()
}

#[test]
fn discrete_laplace_matches_its_distribution() {
    for (epsilon, seed) in [(0.5, 1), (1.0, 2), (2.0, 3)] {
        let noise = Noise::laplace(epsilon, 1).expect("valid");
        let b = noise.scale();
        // The textbook variance 2e^{-1/b}/(1-e^{-1/b})² is what we compare to.
        let q = (-1.0 / b).exp();
        assert!((noise.variance() - 2.0 * q / (1.0 - q).powi(2)).abs() < 1e-12);
        let mut rng = TestRng::new(seed);
        check_distribution(&noise, &draws(&noise, &mut rng, N));
    }
}

#[test]
fn discrete_gaussian_matches_its_distribution() {
    for (sigma2_num, sigma2_den, seed) in [(1u128, 1u128, 10), (9, 1, 11), (1_000_001, 10_000, 12)] {
        let noise = Noise::Gaussian {
            num: sigma2_num,
            den: sigma2_den,
        };
        let sigma2 = sigma2_num as f64 / sigma2_den as f64;
        // For σ ≥ 1 the discrete Gaussian's variance is within 1e-3 of σ²
        // (CKS 2020, Cor. 9 bounds it above by σ² and the deficit is
        // tiny).
        assert!(
            (noise.variance() - sigma2).abs() / sigma2 < 1e-3,
            "{}",
            noise.variance()
        );
        let mut rng = TestRng::new(seed);
        check_distribution(&noise, &draws(&noise, &mut rng, N));
    }
}

#[test]
fn mechanisms_from_epsilon_delta_sample_correctly_from_the_os_generator() {
    let mut rng = OsRandom::default();
    let laplace = Noise::laplace(0.7, 2).expect("valid");
    check_distribution(&laplace, &draws(&laplace, &mut rng, 50_000));
    let gaussian = Noise::gaussian(1.0, 1e-6, 1).expect("valid");
    check_distribution(&gaussian, &draws(&gaussian, &mut rng, 50_000));
}

#[test]
fn bernoulli_exp_has_the_exact_probability() {
    let mut rng = TestRng::new(7);
    for (num, den) in [(0u128, 1u128), (1, 2), (1, 1), (23, 10), (7, 3)] {
        let p = (-(num as f64) / den as f64).exp();
        let hits = (0..N)
            .filter(|_| bernoulli_exp(&mut rng, num, den).expect("test rng"))
            .count() as f64;
        let bound = 5.0 * (p * (1.0 - p) / N as f64).sqrt() + 1e-12;
        assert!(
            (hits / N as f64 - p).abs() <= bound,
            "γ={num}/{den}: {} vs {p}",
            hits / N as f64
        );
    }
}

#[test]
fn samplers_are_symmetric_integers_with_scale_t_over_s() {
    let mut rng = TestRng::new(9);
    // Scale 3/2 (s=2, t=3): pmf ∝ exp(-2|x|/3).
    let noise = Noise::Laplace { s: 2, t: 3 };
    check_distribution(&noise, &draws(&noise, &mut rng, N));
    let x: Vec<i128> = (0..1000)
        .map(|_| discrete_laplace(&mut rng, 1, 1).expect("rng"))
        .collect();
    assert!(x.iter().any(|&v| v < 0) && x.iter().any(|&v| v > 0));
    let y = discrete_gaussian(&mut rng, 4, 1).expect("rng");
    assert!(y.abs() < 100);
    for n in [0u128, 1, 2, 3, 4, 15, 16, 17, u64::MAX as u128, u128::MAX] {
        let r = isqrt(n);
        assert!(
            r * r <= n && (r + 1).checked_mul(r + 1).is_none_or(|s| s > n),
            "{n}"
        );
    }
}

// ---------------------------------------------------------------- operator

fn record(stream: &str, t_s: i64, unit: &str, hr: f64) -> Item {
    Item::Record(Record {
        stream_id: stream.into(),
        sequence: 0,
        kind: "frame_stats".into(),
        start_ns: t_s * 1_000_000_000,
        end_ns: t_s * 1_000_000_000 + 1,
        values: vec![("hr".into(), hr)].into(),
        labels: vec![("unit".into(), unit.into())],
    })
}

fn config(statistic: Statistic, epsilon: f64) -> DpAggregateConfig {
    DpAggregateConfig {
        budget: "test".into(),
        statistic,
        value: Some("hr".into()),
        lower: 0.0,
        upper: 200.0,
        granularity: 1.0 / 16.0,
        mechanism: MechanismKind::Laplace,
        epsilon,
        delta: 0.0,
        group_by: "unit".into(),
        groups: vec!["A".into(), "B".into(), "C".into()],
        window_ns: 3_600_000_000_000,
        max_contributions: 1,
        stream_id: "dp".into(),
    }
}

fn run_op<R: RandomSource + Send, L: Ledger>(op: &mut DpAggregate<R, L>, items: Vec<Item>) -> Vec<Record> {
    let mut out = Output::default();
    for item in items {
        op.process(item, &mut out).expect("records");
    }
    op.finish(&mut out);
    out.drain()
        .map(|i| match i {
            Item::Record(r) => r,
            Item::Frame(_) => panic!("record expected"),
        })
        .collect()
}

#[test]
fn counts_every_listed_group_once_per_window_with_contribution_bounds() {
    let counters = Arc::new(PrivacyCounters::default());
    // ε so large the noise is 0 with probability 1 - 2e^-10^6: exact tallies.
    let ledger = MemoryLedger::new(Budget::total(1e7, 0.0));
    let mut op = DpAggregate::new(
        config(Statistic::Count, 1e6),
        TestRng::new(1),
        ledger,
        counters.clone(),
    )
    .expect("valid");
    let released = run_op(
        &mut op,
        vec![
            record("s1", 10, "A", 60.0),
            record("s1", 20, "A", 60.0), // over the bound of 1 per stream
            record("s2", 30, "A", 60.0),
            record("s3", 40, "B", 60.0),
            record("s4", 50, "Z", 60.0),     // not a listed group
            record("s5", 3700, "B", 60.0),   // next window
            record("s6", 100, "A", 60.0),    // late
            record("s7", 99_999, "Z", 60.0), // unusable: opens no window
        ],
    );
    let got: Vec<(i64, String, f64)> = released
        .iter()
        .map(|r| {
            (
                r.start_ns / 3_600_000_000_000,
                r.label("unit").unwrap_or("").to_string(),
                r.value("count").unwrap_or(f64::NAN),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "A".into(), 2.0),
            (0, "B".into(), 1.0),
            (0, "C".into(), 0.0),
            (1, "A".into(), 0.0),
            (1, "B".into(), 1.0),
            (1, "C".into(), 0.0),
        ]
    );
    assert_eq!(PrivacyCounters::get(&counters.dropped), 4);
    assert_eq!(PrivacyCounters::get(&counters.releases), 6);
    assert_eq!(
        op.ledger().spent,
        Budget::cost(1e6, 0.0).plus(Budget::cost(1e6, 0.0)).expect("fits")
    );
    assert!(released
        .iter()
        .all(|r| &*r.kind == aggregate::KIND && r.value("epsilon") == Some(1e6)));
}

#[test]
fn the_ledger_refuses_releases_past_the_budget() {
    let counters = Arc::new(PrivacyCounters::default());
    let ledger = MemoryLedger::new(Budget::total(1.0, 0.0));
    let mut op = DpAggregate::new(
        config(Statistic::Count, 0.4),
        TestRng::new(2),
        ledger,
        counters.clone(),
    )
    .expect("valid");
    let hours: Vec<Item> = (0..4).map(|h| record("s", h * 3600, "A", 1.0)).collect();
    let released = run_op(&mut op, hours);
    // 0.4 + 0.4 fits in 1.0; a third 0.4 would make 1.2.
    assert_eq!(released.len(), 2 * 3);
    assert_eq!(PrivacyCounters::get(&counters.refused), 2);
    assert_eq!(op.ledger().spent.nano_epsilon, 800_000_000);
}

#[test]
fn noisy_sums_are_unbiased_and_means_stay_in_bounds() {
    let counters = Arc::new(PrivacyCounters::default());
    let ledger = MemoryLedger::new(Budget::total(1e9, 0.0));
    let mut sum = DpAggregate::new(
        config(Statistic::Sum, 1.0),
        TestRng::new(3),
        ledger.clone(),
        counters.clone(),
    )
    .expect("valid");
    let (_, Some(noise)) = sum.noise() else {
        panic!("sum noise")
    };
    // Sensitivity: 200 / (1/16) = 3200 grid steps; scale 3200/ε.
    assert!((noise.scale() - 3200.0).abs() < 1e-2);
    // Many windows of the same data: the mean release is the true sum.
    let windows = 20_000;
    let items: Vec<Item> = (0..windows)
        .flat_map(|h| {
            [
                record("s1", h * 3600, "A", 80.0),
                record("s2", h * 3600, "A", 250.0), // clamped to 200
                record("s3", h * 3600, "A", 70.03125),
            ]
        })
        .collect();
    let released = run_op(&mut sum, items);
    let sums: Vec<f64> = released
        .iter()
        .filter(|r| r.label("unit") == Some("A"))
        .filter_map(|r| r.value("sum"))
        .collect();
    assert_eq!(sums.len(), windows as usize);
    let mean = sums.iter().sum::<f64>() / sums.len() as f64;
    // True sum on the grid: 80 + 200 + 70.0 (70.03125 snaps to 70.0).
    let truth = 350.0;
    let sd = (noise.variance() / sums.len() as f64).sqrt() / 16.0;
    assert!(
        (mean - truth).abs() <= 5.0 * sd,
        "{mean} vs {truth} ± {}",
        5.0 * sd
    );

    let mut op =
        DpAggregate::new(config(Statistic::Mean, 0.1), TestRng::new(4), ledger, counters).expect("valid");
    let released = run_op(
        &mut op,
        (0..50).map(|h| record("s", h * 3600, "B", 150.0)).collect(),
    );
    assert!(released
        .iter()
        .filter_map(|r| r.value("mean"))
        .all(|m| (0.0..=200.0).contains(&m)));
}

/// The checks have power: draws of scale 1/1.0 fail against scale 1/1.1.
#[test]
#[should_panic(expected = "beyond")]
fn the_distribution_checks_catch_a_ten_percent_scale_error() {
    let drawn = Noise::laplace(1.0, 1).expect("valid");
    let claimed = Noise::laplace(1.1, 1).expect("valid");
    let mut rng = TestRng::new(5);
    check_distribution(&claimed, &draws(&drawn, &mut rng, N));
}
