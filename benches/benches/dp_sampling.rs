//! Draws/s of the exact discrete samplers (CKS 2020) from the OS CSPRNG, on
//! one core. The peer, in the same run, is NumPy's vectorised
//! floating-point `Generator.laplace` / `Generator.normal` (PCG64, not a
//! CSPRNG, and open to Mironov's 2012 attack): what exactness and a secure
//! generator cost against the textbook way. Draws per release are few (one
//! or two per group per window), so any rate above ~10^4/s is plenty.
//!
//!     cargo bench -p sigfab-benches --bench dp_sampling

use sigfab_benches::{median_and_best_time, pin_to_one_core, python_median_and_best};
use sigfab_operators::dp::{Noise, OsRandom};

const DRAWS: usize = 100_000;
const RUNS: usize = 7;

fn numpy(call: &str) -> Option<(f64, f64)> {
    let script = format!(
        "import time\nimport numpy as np\nrng = np.random.default_rng(1)\n\
         rng.{call}\nts = []\n\
         for _ in range({RUNS}):\n    t = time.perf_counter(); rng.{call}; ts.append(time.perf_counter() - t)\n\
         ts.sort(); print(ts[len(ts) // 2], ts[0])"
    );
    python_median_and_best(&script)
}

fn main() {
    let pinned = pin_to_one_core();
    let cases: [(&str, Noise); 4] = [
        (
            "discrete Laplace, count (Δ=1, ε=1: scale 1)",
            Noise::laplace(1.0, 1).expect("valid"),
        ),
        (
            "discrete Laplace, sum (Δ=3200 grid steps, ε=1)",
            Noise::laplace(1.0, 3200).expect("valid"),
        ),
        (
            "discrete Gaussian, count (Δ=1, ε=1, δ=1e-6)",
            Noise::gaussian(1.0, 1e-6, 1).expect("valid"),
        ),
        (
            "discrete Gaussian, sum (Δ=3200, ε=1, δ=1e-6)",
            Noise::gaussian(1.0, 1e-6, 3200).expect("valid"),
        ),
    ];
    println!(
        "\nexact DP noise, {DRAWS} draws per run, median of {RUNS} runs, OS CSPRNG, {}",
        if pinned {
            "pinned to one core"
        } else {
            "NOT pinned"
        }
    );
    println!("| sampler | scale / σ | M draws/s (median) | (best) | numpy float peer M draws/s (median) | ours vs peer (median) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, noise) in &cases {
        let mut rng = OsRandom::default();
        let mut sink = 0i128;
        let (median, best) = median_and_best_time(RUNS, || {
            for _ in 0..DRAWS {
                sink = sink.wrapping_add(noise.draw(&mut rng).expect("OS generator"));
            }
        });
        std::hint::black_box(sink);
        let ours = DRAWS as f64 / median.as_secs_f64();
        let call = match noise {
            Noise::Laplace { .. } => format!("laplace(0, {}, {DRAWS})", noise.scale()),
            Noise::Gaussian { .. } => format!("normal(0, {}, {DRAWS})", noise.scale()),
        };
        let peer = numpy(&call).map(|(m, _)| DRAWS as f64 / m);
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {} | {} |",
            noise.scale(),
            ours / 1e6,
            DRAWS as f64 / best.as_secs_f64() / 1e6,
            peer.map_or("n/a".into(), |p| format!("{:.1}", p / 1e6)),
            peer.map_or("n/a".into(), |p| format!("{:.3}x", ours / p)),
        );
    }
}
