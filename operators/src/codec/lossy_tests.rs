//! The lossy codec on synthetic blocks: the PRD bound, full-rank reconstruction,
//! determinism, typed errors and no panics on corrupt input.

use ndarray::Array2;
use proptest::prelude::*;

use super::*;

/// `channels` mixtures of three sinusoids plus a small deterministic noise,
/// with channel offsets (so PRD and PRDN differ).
fn mixture(channels: usize, samples: usize, noise: f32) -> Array2<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    Array2::from_shape_fn((channels, samples), |(c, t)| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let e = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let t = t as f32 / 100.0;
        let c1 = c as f32;
        (1.0 + c1) * (7.0 * t).sin()
            + (2.0 - 0.1 * c1) * (23.0 * t).cos()
            + 0.5 * c1.sin() * (3.0 * t).sin()
            + 10.0 * c1
            + noise * e
    })
}

fn encode(block: &Array2<f32>, config: LossyConfig) -> Result<(Vec<u8>, LossyReport), LossyError> {
    let mut bytes = Vec::new();
    let report = LossyEncoder::new(config).encode(block.view(), &mut bytes)?;
    Ok((bytes, report))
}

fn bound(prd_bound: f64) -> LossyConfig {
    LossyConfig {
        prd_bound,
        ..LossyConfig::default()
    }
}

#[test]
fn decoded_blocks_meet_the_bound_and_report_what_the_decoder_gives() {
    let block = mixture(8, 1000, 0.05);
    for b in [0.5, 1.0, 5.0, 10.0, 30.0] {
        let (bytes, report) = encode(&block, bound(b)).unwrap();
        let decoded = LossyDecoder::new().decode(&bytes).unwrap();
        let (p, pn) = prd(block.view(), decoded.view());
        assert!(pn <= b, "bound {b}: PRDN {pn}");
        assert!(p <= pn, "PRD {p} > PRDN {pn}");
        assert_eq!((p, pn, bytes.len()), (report.prd, report.prdn, report.bytes));
        assert!(report.components <= 8);
    }
    // Three sources: a 10 % bound needs at most three components, 0.5 % more than one.
    assert!(encode(&block, bound(10.0)).unwrap().1.components <= 3);
    assert!(encode(&block, bound(0.5)).unwrap().1.components > 1);
}

#[test]
fn looser_bounds_never_cost_more_components() {
    let block = mixture(6, 700, 0.2);
    let k: Vec<usize> = [0.1, 1.0, 5.0, 20.0]
        .iter()
        .map(|&b| encode(&block, bound(b)).unwrap().1.components)
        .collect();
    assert!(k.windows(2).all(|w| w[0] >= w[1]), "{k:?}");
}

#[test]
fn all_components_reconstruct_within_float_rounding() {
    let block = mixture(5, 400, 1.0);
    let config = LossyConfig {
        prd_bound: 1e-4,
        max_components: Some(5),
        ..LossyConfig::default()
    };
    let (bytes, report) = encode(&block, config).unwrap();
    assert_eq!(report.components, 5);
    let decoded = LossyDecoder::new().decode(&bytes).unwrap();
    for (x, y) in block.iter().zip(decoded.iter()) {
        // f32 parameters and a 2^-28 step: a few f32 ulps of the block's scale.
        assert!((x - y).abs() <= 1e-4 * 60.0, "{x} vs {y}");
    }
}

#[test]
fn refuses_a_bound_it_cannot_meet_and_blocks_with_gaps() {
    let block = mixture(4, 300, 1.0);
    let config = LossyConfig {
        prd_bound: 1.0,
        max_components: Some(1),
        ..LossyConfig::default()
    };
    let mut out = vec![7u8];
    let err = LossyEncoder::new(config)
        .encode(block.view(), &mut out)
        .unwrap_err();
    assert!(
        matches!(err, LossyError::PrdBound { best_prdn, .. } if best_prdn > 1.0),
        "{err}"
    );
    assert_eq!(out, [7], "nothing written on refusal");
    let mut gappy = block.clone();
    gappy[[2, 17]] = f32::NAN;
    assert_eq!(
        encode(&gappy, bound(5.0)).unwrap_err(),
        LossyError::Gap {
            channel: 2,
            index: 17
        }
    );
    gappy[[2, 17]] = f32::INFINITY;
    assert_eq!(
        encode(&gappy, bound(5.0)).unwrap_err(),
        LossyError::Infinite {
            channel: 2,
            index: 17
        }
    );
    assert!(matches!(
        encode(&block, bound(f64::NAN)),
        Err(LossyError::InvalidBound(_))
    ));
    assert!(matches!(
        encode(&block, bound(-1.0)),
        Err(LossyError::InvalidBound(_))
    ));
    assert_eq!(
        encode(&Array2::zeros((0, 5)), bound(5.0)).unwrap_err(),
        LossyError::Shape
    );
}

#[test]
fn constant_and_single_channel_blocks() {
    let constant = Array2::from_elem((3, 50), 4.25f32);
    let (bytes, report) = encode(&constant, bound(0.0)).unwrap();
    assert_eq!((report.components, report.prd, report.prdn), (0, 0.0, 0.0));
    assert_eq!(LossyDecoder::new().decode(&bytes).unwrap(), constant);
    let single = mixture(1, 200, 0.5);
    let (bytes, report) = encode(&single, bound(2.0)).unwrap();
    let decoded = LossyDecoder::new().decode(&bytes).unwrap();
    assert!(prd(single.view(), decoded.view()).1 <= 2.0 && report.components == 1);
}

#[test]
fn format_is_checked() {
    let (bytes, _) = encode(&mixture(4, 300, 0.1), bound(5.0)).unwrap();
    let mut d = LossyDecoder::new();
    let err = |b: &[u8]| LossyDecoder::new().decode(b).unwrap_err();
    assert_eq!(err(&bytes[..10]), LossyError::Codec(CodecError::Truncated));
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(err(&bad), LossyError::Codec(CodecError::BadMagic));
    let mut bad = bytes.clone();
    bad[4] = 2;
    assert_eq!(err(&bad), LossyError::Codec(CodecError::UnsupportedVersion(2)));
    let mut bad = bytes.clone();
    let last = bad.len() - 10;
    bad[last] ^= 1;
    assert_eq!(err(&bad), LossyError::Codec(CodecError::ChecksumMismatch));
    assert!(d.decode(&bytes).is_ok());
}

/// Recomputes the CRC so a mutation reaches the inner parsers.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len();
    if n >= 24 {
        let crc = crc32c::crc32c(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decoding_is_deterministic_and_meets_the_bound(
        channels in 1usize..6,
        samples in 1usize..300,
        noise in 0.0f32..3.0,
        prd_bound in 0.5f64..40.0,
    ) {
        let block = mixture(channels, samples, noise);
        let (bytes, report) = encode(&block, bound(prd_bound)).unwrap();
        let again = encode(&block, bound(prd_bound)).unwrap();
        prop_assert_eq!(&bytes, &again.0, "encoding is deterministic");
        let a = LossyDecoder::new().decode(&bytes).unwrap();
        let b = LossyDecoder::new().decode(&bytes).unwrap();
        prop_assert!(a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits()));
        prop_assert!(prd(block.view(), a.view()).1 <= prd_bound);
        prop_assert_eq!(report.prdn, prd(block.view(), a.view()).1);
    }

    #[test]
    fn decoder_never_panics_on_random_bytes(mut bytes in prop::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        if magic && bytes.len() >= 24 {
            bytes[..5].copy_from_slice(b"SFCL\x01");
            reseal(&mut bytes);
        }
        let _ = LossyDecoder::new().decode(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_mutated_blocks(
        index in any::<prop::sample::Index>(),
        value in any::<u8>(),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (mut bytes, _) = encode(&mixture(3, 120, 0.3), bound(3.0)).unwrap();
        let i = index.index(bytes.len() - 4);
        bytes[i] = value;
        if truncate {
            let n = 24 + cut.index(bytes.len() - 24);
            bytes.truncate(n);
            let payload = (n - 24) as u32;
            bytes[16..20].copy_from_slice(&payload.to_le_bytes());
        }
        reseal(&mut bytes);
        let _ = LossyDecoder::new().decode(&bytes);
    }
}
