//! Round trips on adversarial blocks, and a decoder that never panics.

use proptest::prelude::*;

use super::*;

fn channel(samples: Vec<i32>) -> ChannelData {
    ChannelData {
        samples,
        gaps: Vec::new(),
    }
}

/// A channel from optional samples: `None` is a gap.
fn with_gaps(values: &[Option<i32>]) -> ChannelData {
    let mut data = ChannelData::default();
    for v in values {
        match v {
            Some(v) => data.samples.push(*v),
            None => data.push_gap(),
        }
    }
    data
}

fn round_trip_with(config: CodecConfig, block: &ChannelBlock) -> usize {
    let mut bytes = Vec::new();
    BlockEncoder::new(config).encode(block, &mut bytes).unwrap();
    let decoded = BlockDecoder::new().decode(&bytes).unwrap();
    assert_eq!(&decoded, block);
    bytes.len()
}

fn round_trip(block: &ChannelBlock) -> usize {
    round_trip_with(CodecConfig::default(), block)
}

fn one(data: ChannelData) -> ChannelBlock {
    ChannelBlock { channels: vec![data] }
}

/// A deterministic xorshift stream of full-range values.
fn noise(len: usize, bits: u32, mut state: u64) -> Vec<i32> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let half = 1i64 << (bits - 1);
            ((state % (2 * half as u64)) as i64 - half) as i32
        })
        .collect()
}

#[test]
fn constant_blocks_cost_a_few_bytes() {
    let bytes = round_trip(&one(channel(vec![-1234; 5000])));
    assert!(bytes < 32, "constant block took {bytes} bytes");
    round_trip(&one(channel(vec![0; 1280])));
    round_trip(&one(channel(vec![i32::MIN; 100])));
}

#[test]
fn full_scale_noise_round_trips_and_barely_grows() {
    for bits in [16, 24] {
        let samples = noise(10_000, bits, 0x9E37_79B9_7F4A_7C15);
        let bytes = round_trip(&one(channel(samples)));
        let raw = 10_000 * bits as usize / 8;
        assert!(
            bytes < raw + raw / 20,
            "{bits}-bit noise: {bytes} bytes for {raw} raw"
        );
    }
    round_trip(&one(channel(noise(3000, 32, 7))));
}

#[test]
fn steps_and_alternating_extremes_round_trip() {
    let steps: Vec<i32> = (0..4000)
        .map(|i| if (i / 500) % 2 == 0 { -32768 } else { 32767 })
        .collect();
    round_trip(&one(channel(steps)));
    for (low, high) in [(-32768, 32767), (-(1 << 23), (1 << 23) - 1), (i32::MIN, i32::MAX)] {
        let alternating: Vec<i32> = (0..2001).map(|i| if i % 2 == 0 { low } else { high }).collect();
        round_trip(&one(channel(alternating)));
    }
}

/// A walk on a grid of ~21.9 costs about what the same walk in steps of one
/// does (its ranks), plus the value table: the value map is used.
#[test]
fn sparse_channels_are_coded_as_ranks() {
    let mut rank = 0i32;
    let ranks: Vec<i32> = noise(5000, 3, 17)
        .iter()
        .map(|&s| {
            rank += i32::from(s == 3) - i32::from(s == -4); // ±1 a quarter of the time
            rank
        })
        .collect();
    let on_grid: Vec<i32> = ranks
        .iter()
        .map(|&k| (f64::from(k) * 21.9).round() as i32)
        .collect();
    let dense = round_trip(&one(channel(ranks)));
    let sparse = round_trip(&one(channel(on_grid)));
    assert!(
        sparse < dense + 100,
        "{sparse} bytes on the grid, {dense} as ranks"
    );
}

#[test]
fn extreme_values_survive_every_predictor() {
    let ramp: Vec<i32> = (0..1000).map(|i| i32::MAX - (i % 3) * (i32::MAX / 2)).collect();
    for max_lpc_order in [0, 1, 8, 32] {
        let config = CodecConfig {
            max_lpc_order,
            ..CodecConfig::default()
        };
        round_trip_with(config, &one(channel(ramp.clone())));
        round_trip_with(config, &one(channel(noise(500, 32, 99))));
    }
}

#[test]
fn nan_runs_at_start_middle_and_end_round_trip() {
    let sine = |i: usize| Some((3000.0 * (i as f64 * 0.07).sin()) as i32);
    let mut values: Vec<Option<i32>> = (0..3000).map(sine).collect();
    values[..100].fill(None);
    values[1000..1003].fill(None);
    values[1500..1501].fill(None);
    values[2990..].fill(None);
    let block = one(with_gaps(&values));
    assert_eq!(block.channels[0].gaps.len(), 4);
    round_trip(&block);
}

#[test]
fn degenerate_blocks_round_trip() {
    round_trip(&ChannelBlock::default());
    round_trip(&one(ChannelData::default()));
    round_trip(&one(channel(vec![42])));
    round_trip(&one(channel(vec![i32::MIN, i32::MAX])));
    round_trip(&one(with_gaps(&[None; 1280])));
    round_trip(&one(with_gaps(&[None, Some(5), None, Some(-5), None])));
}

#[test]
fn multi_rate_channels_round_trip() {
    let fast: Vec<i32> = (0..5000).map(|i| ((i * 37) % 2048) - 1024).collect();
    let slow: Vec<i32> = (0..1250).map(|i| (i % 100) * 3).collect();
    round_trip(&ChannelBlock {
        channels: vec![channel(fast), channel(slow), channel(vec![])],
    });
}

#[test]
fn invalid_inputs_are_refused() {
    let mut encoder = BlockEncoder::default();
    let mut out = Vec::new();
    let overlapping = ChannelData {
        samples: vec![0; 10],
        gaps: vec![GapRun { start: 2, len: 4 }, GapRun { start: 5, len: 1 }],
    };
    let past_end = ChannelData {
        samples: vec![0; 10],
        gaps: vec![GapRun { start: 8, len: 3 }],
    };
    let empty_run = ChannelData {
        samples: vec![0; 10],
        gaps: vec![GapRun { start: 1, len: 0 }],
    };
    for bad in [overlapping, past_end, empty_run] {
        let err = encoder.encode(&one(bad), &mut out).unwrap_err();
        assert_eq!(err, CodecError::InvalidGaps { channel: 0 });
    }
    let mut value_in_gap = with_gaps(&[Some(1), None, None]);
    value_in_gap.samples[2] = 7;
    let err = encoder.encode(&one(value_in_gap), &mut out).unwrap_err();
    assert_eq!(err, CodecError::ValueInGap { channel: 0, index: 2 });
    assert!(out.is_empty(), "a refused block writes nothing");
    assert_eq!(block_len(128.0, 0), Err(CodecError::BlockLength));
    assert_eq!(block_len(128.0, 11), Err(CodecError::BlockLength));
    assert_eq!(block_len(249.89, 10), Ok(2499));
}

#[test]
fn corruption_is_a_typed_error() {
    let block = one(channel(noise(1000, 12, 3)));
    let mut bytes = Vec::new();
    BlockEncoder::default().encode(&block, &mut bytes).unwrap();
    let mut decoder = BlockDecoder::new();
    for cut in [0, 5, 15, bytes.len() - 1] {
        assert!(decoder.decode(&bytes[..cut]).is_err());
    }
    let mut flipped = bytes.clone();
    flipped[40] ^= 0x10;
    assert_eq!(decoder.decode(&flipped), Err(CodecError::ChecksumMismatch));
    let mut wrong_magic = bytes.clone();
    wrong_magic[0] = b'X';
    assert_eq!(decoder.decode(&wrong_magic), Err(CodecError::BadMagic));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decoder.decode(&longer).is_err());
}

#[test]
fn blocks_concatenate_in_one_buffer() {
    let mut encoder = BlockEncoder::default();
    let mut out = Vec::new();
    let a = one(channel(noise(300, 16, 1)));
    let b = one(channel(noise(700, 16, 2)));
    encoder.encode(&a, &mut out).unwrap();
    let split = out.len();
    encoder.encode(&b, &mut out).unwrap();
    let mut decoder = BlockDecoder::new();
    assert_eq!(decoder.decode(&out[..split]).unwrap(), a);
    assert_eq!(decoder.decode(&out[split..]).unwrap(), b);
}

#[test]
fn grid_refuses_off_grid_values_and_maps_nan_to_gaps() {
    let grid = SampleGrid::affine(0.5, 0.0).unwrap();
    let mut data = ChannelData::default();
    grid.quantise(&[1.0, f32::NAN, -2.5], &mut data).unwrap();
    assert_eq!(data, with_gaps(&[Some(2), None, Some(-5)]));
    assert_eq!(
        grid.quantise(&[1.0, 0.3], &mut data),
        Err(CodecError::OffGrid { index: 1 })
    );
    assert_eq!(
        grid.quantise(&[f32::INFINITY], &mut data),
        Err(CodecError::OffGrid { index: 0 })
    );
    assert!(SampleGrid::affine(0.0, 1.0).is_err());
    assert!(SampleGrid::wfdb(f64::NAN, 0).is_err());
    let mut physical = Vec::new();
    grid.dequantise(&with_gaps(&[Some(2), None, Some(-5)]), &mut physical);
    assert_eq!(physical[0], 1.0);
    assert!(physical[1].is_nan());
    assert_eq!(physical[2], -2.5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_blocks_round_trip(
        channels in prop::collection::vec(
            prop::collection::vec(prop::option::weighted(0.95, any::<i32>().prop_map(|v| v >> 8)), 0..600),
            0..4,
        ),
        max_lpc_order in 0u8..=32,
    ) {
        let block = ChannelBlock { channels: channels.iter().map(|c| with_gaps(c)).collect() };
        let config = CodecConfig { max_lpc_order, ..CodecConfig::default() };
        round_trip_with(config, &block);
    }

    #[test]
    fn smooth_random_walks_round_trip(steps in prop::collection::vec(-300i32..300, 1..3000)) {
        let samples: Vec<i32> = steps.iter().scan(0i32, |acc, s| { *acc += s; Some(*acc) }).collect();
        round_trip(&one(channel(samples)));
    }

    /// Values on a coarse, irregular grid (as MIMIC's resampled MCL1) take the value-map path.
    #[test]
    fn sparse_values_round_trip(
        steps in prop::collection::vec(-1i32..=1, 300..3000),
        step in 2.0f64..400.0,
        offset in -100_000i32..100_000,
        gap_at in any::<prop::sample::Index>(),
    ) {
        let ranks: Vec<i32> = steps.iter().scan(0i32, |acc, s| { *acc += s; Some(*acc) }).collect();
        let values: Vec<Option<i32>> = ranks
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let gap = (gap_at.index(ranks.len())..gap_at.index(ranks.len()) + 20).contains(&i);
                (!gap).then_some((f64::from(k) * step).round() as i32 + offset)
            })
            .collect();
        round_trip(&one(with_gaps(&values)));
    }

    #[test]
    fn decoder_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = BlockDecoder::new().decode(&bytes);
    }

    /// Mutations behind a recomputed checksum reach the inner parsers.
    #[test]
    fn decoder_never_panics_on_mutated_blocks(
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let samples = noise(400, 14, seed | 1);
        // A sparse channel, so the value table's parser is reached too.
        let sparse = (0..600).map(|i| ((i / 4 + (seed % 7) as usize) % 11) as i32 * 37).collect();
        let block = ChannelBlock {
            channels: vec![channel(samples), with_gaps(&[None, Some(3), None, Some(4)]), channel(sparse)],
        };
        let mut bytes = Vec::new();
        BlockEncoder::default().encode(&block, &mut bytes).unwrap();
        let crc_at = bytes.len() - 4;
        for (at, value) in edits {
            let at = at.index(crc_at);
            bytes[at] = value;
        }
        if truncate {
            let new_len = 12 + cut.index(crc_at - 12);
            bytes.truncate(new_len);
            let payload = (new_len - 12) as u32;
            bytes[8..12].copy_from_slice(&payload.to_le_bytes());
        } else {
            bytes.truncate(crc_at);
        }
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let _ = BlockDecoder::new().decode(&bytes);
    }

    #[test]
    fn grid_round_trips_every_digital_value(
        digital in any::<i32>().prop_map(|v| v >> 8),
        scale_exp in -12i32..4,
        offset in -1000.0f64..1000.0,
        gain in 1.0f64..5000.0,
        baseline in -40_000i64..40_000,
    ) {
        let affine = SampleGrid::affine(1.37 * 2f64.powi(scale_exp), offset).unwrap();
        let wfdb = SampleGrid::wfdb(gain, baseline).unwrap();
        for grid in [affine, wfdb] {
            let x = grid.to_physical(digital);
            let back = grid.to_digital(x).unwrap();
            prop_assert_eq!(grid.to_physical(back).to_bits(), x.to_bits());
        }
    }
}

/// Fixed inputs that exercise every predictor path (fixed orders, LPC at
/// several orders and precisions, 16- and 24-bit and full i32 range, gaps,
/// and a sparse channel coded through its value table).
fn golden_blocks() -> Vec<(CodecConfig, ChannelBlock)> {
    let sine = |len: usize, amp: f64, step: f64, bits: u32, seed: u64| -> Vec<i32> {
        let jitter = noise(len, bits, seed);
        (0..len)
            .map(|i| (amp * (i as f64 * step).sin()).round() as i32 + jitter[i])
            .collect()
    };
    let mut walk = 0i32;
    let steps = noise(3000, 6, 7);
    let random_walk: Vec<i32> = steps
        .iter()
        .map(|s| {
            walk += s;
            walk
        })
        .collect();
    let mut extremes = noise(700, 32, 11);
    extremes.iter_mut().step_by(3).for_each(|v| *v = i32::MIN);
    extremes.iter_mut().step_by(5).for_each(|v| *v = i32::MAX);
    let gappy: Vec<Option<i32>> = sine(2500, 3000.0, 0.03, 4, 5)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (!(100..140).contains(&i) && i % 700 != 3).then_some(v))
        .collect();
    // Values on a grid of ~21.9 with gaps: the value-map path.
    let sparse: Vec<Option<i32>> = sine(2000, 40.0, 0.02, 1, 6)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (!(500..530).contains(&i)).then_some((f64::from(v) * 21.9).round() as i32 - 130))
        .collect();
    let eeg = ChannelBlock {
        channels: vec![
            channel(sine(1280, 20000.0, 0.07, 5, 1)),
            channel(sine(1280, 4_000_000.0, 0.011, 9, 2)),
            channel(random_walk),
            channel(noise(1000, 16, 3)),
            channel(extremes),
            with_gaps(&gappy),
            channel(sine(125, 900.0, 0.2, 3, 4)),
            with_gaps(&sparse),
        ],
    };
    let config = |max_lpc_order: u8, lpc_precision: u8| CodecConfig {
        max_lpc_order,
        lpc_precision,
    };
    vec![
        (CodecConfig::default(), eeg.clone()),
        (config(32, 15), eeg.clone()),
        (config(8, 12), eeg.clone()),
        (config(0, 15), eeg.clone()),
        (config(32, 16), eeg.clone()),
        (config(3, 2), eeg),
    ]
}

/// The AVX2 build of the encoder writes the same bytes as the portable one
/// (same integer results, same f64 operations in the same order).
#[test]
fn avx2_and_portable_encoders_agree() {
    for (config, block) in golden_blocks() {
        let mut fast = Vec::new();
        BlockEncoder::new(config).encode(&block, &mut fast).unwrap();
        let mut portable = Vec::new();
        let mut encoder = BlockEncoder::new(config);
        encoder.portable_only = true;
        encoder.encode(&block, &mut portable).unwrap();
        assert_eq!(fast, portable, "{config:?}");
    }
}

#[test]
fn avx512_and_avx2_encoders_agree() {
    for (config, block) in golden_blocks() {
        let mut wide = Vec::new();
        BlockEncoder::new(config).encode(&block, &mut wide).unwrap();
        let mut narrow = Vec::new();
        let mut encoder = BlockEncoder::new(config);
        encoder.no_avx512 = true;
        encoder.encode(&block, &mut narrow).unwrap();
        assert_eq!(wide, narrow, "{config:?}");
    }
}

/// Pins the encoded bytes (length and CRC-32C per configuration): any
/// change to the format or to the encoder's choices fails here.
#[test]
fn encoded_bytes_are_pinned() {
    let expected: Vec<(usize, u32)> = vec![
        (12489, 0x98cc_e582),
        (12430, 0xa850_4ea4),
        (12445, 0x41a3_638a),
        (12954, 0xb385_b9bd),
        (12440, 0x17fc_2897),
        (12915, 0x5f44_d3c8),
    ];
    let mut encoder_out = Vec::new();
    let mut actual = Vec::new();
    for (config, block) in golden_blocks() {
        encoder_out.clear();
        BlockEncoder::new(config)
            .encode(&block, &mut encoder_out)
            .unwrap();
        assert_eq!(BlockDecoder::new().decode(&encoder_out).unwrap(), block);
        // The stored CRC covers every byte before it.
        let stored = u32::from_le_bytes(encoder_out[encoder_out.len() - 4..].try_into().unwrap());
        actual.push((encoder_out.len(), stored));
    }
    // All configurations at once, so a deliberate re-pin sees every new value.
    let printed: Vec<String> = actual
        .iter()
        .map(|(len, crc)| format!("({len}, {crc:#010x})"))
        .collect();
    assert_eq!(actual, expected, "now: [{}]", printed.join(", "));
}
