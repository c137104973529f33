//! What the DSP reference tests (filters, FIR and resampling, montages)
//! share: the committed reference files, the real excerpts they were
//! computed on, the error measure and the test-signal generator.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use serde_json::Value;
use sigfab_engine::{readers, shared_data};
use sigfab_operators::ChannelSpec;

/// The reference files under `tests/reference/FOLDER/`.
pub struct References(pub &'static str);

impl References {
    fn path(&self, name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/reference")
            .join(self.0)
            .join(name)
    }

    /// A JSON reference file, parsed.
    pub fn json(&self, name: &str) -> Value {
        let path = self.path(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("reference JSON")
    }

    /// `outputs.f32`: the reference outputs, little-endian f32.
    pub fn outputs(&self) -> Vec<f32> {
        let bytes = std::fs::read(self.path("outputs.f32")).expect("outputs.f32");
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

pub fn number(value: &Value) -> f64 {
    value.as_f64().expect("a number")
}

pub fn numbers(value: &Value) -> Vec<f64> {
    value.as_array().expect("an array").iter().map(number).collect()
}

/// A real excerpt: named channels from the start of a recording.
pub struct Excerpt {
    pub specs: Vec<ChannelSpec>,
    pub channels: Vec<Vec<f32>>,
}

/// Reads the excerpt with our readers and checks it is what the reference
/// script was fed.
pub fn read_excerpt(meta: &Value) -> Excerpt {
    let path = shared_data::require(meta["recording"].as_str().expect("recording"));
    let mut reader = readers::open(&path).expect("open recording");
    let header = reader.header().clone();
    let all = readers::read_to_end(reader.as_mut()).expect("read");
    let len = meta["samples_per_channel"].as_u64().expect("length") as usize;
    let mut specs = Vec::new();
    let mut channels = Vec::new();
    for name in meta["channels"].as_array().expect("channels") {
        let name = name.as_str().expect("channel name");
        let index = header
            .signals
            .iter()
            .position(|s| s.name == name)
            .expect("channel");
        specs.push(header.signals[index].channel_spec());
        channels.push(all[index][..len].to_vec());
    }
    for (channel, first) in channels
        .iter()
        .zip(meta["first_samples"].as_array().expect("first"))
    {
        let expected: Vec<f32> = numbers(first).iter().map(|&x| x as f32).collect();
        assert_eq!(
            channel[..expected.len()],
            expected[..],
            "input differs from the script's"
        );
    }
    let sum: f64 = channels.iter().flatten().map(|&x| f64::from(x)).sum();
    let expected_sum = number(&meta["sum"]);
    assert!((sum - expected_sum).abs() <= 1e-9 * expected_sum.abs().max(1.0));
    Excerpt { specs, channels }
}

/// sqrt(Σ(ours − reference)² / Σ reference²).
pub fn relative_rms_error(ours: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(ours.len(), reference.len());
    let (error, power) = ours.iter().zip(reference).fold((0.0, 0.0), |(e, p), (&y, &r)| {
        let (y, r) = (f64::from(y), f64::from(r));
        (e + (y - r) * (y - r), p + r * r)
    });
    (error / power).sqrt()
}

/// The generator of the reference scripts: uniform in [-0.5, 0.5), as f32.
pub fn splitmix64(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E3779B97F4A7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
            z ^= z >> 31;
            ((z >> 40) as f64 / (1u64 << 24) as f64 - 0.5) as f32
        })
        .collect()
}

/// Channel by channel, the same f32 bits (NaN included).
pub fn same_bits(a: &[Vec<f32>], b: &[Vec<f32>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()))
}
