//! The lossy codec on real recordings: every block's decoded PRDN is within
//! the bound, bytes are compared with the lossless codec on the same blocks,
//! and the SVD's singular values match numpy's (tests/reference/codec/lossy_svd.json,
//! made by scripts/make_lossy_references.py).

use ndarray::Array2;
use sigfab_engine::readers::{self, RecordingReader};
use sigfab_engine::shared_data;
use sigfab_operators::codec::{
    block_len, prd, singular_values, BlockEncoder, ChannelBlock, ChannelData, LossyConfig, LossyDecoder,
    LossyEncoder, LossyError, SampleGrid,
};

/// Every channel's physical samples, grid and rate.
fn read_all(relative: &str) -> Vec<(Vec<f32>, SampleGrid, f64)> {
    let mut reader: Box<dyn RecordingReader> = readers::open(&shared_data::require(relative)).unwrap();
    let signals = reader.header().signals.clone();
    let mut out = vec![Vec::new(); signals.len()];
    while reader.read_blocks(64, &mut out).unwrap() > 0 {}
    signals
        .iter()
        .zip(out)
        .map(|(s, samples)| {
            (
                samples,
                s.grid.expect("single-file recordings have a grid"),
                s.sample_rate,
            )
        })
        .collect()
}

/// Samples `start..start + len` of every channel as a channels × samples block
/// (all channels of these records share one rate).
fn block(channels: &[(Vec<f32>, SampleGrid, f64)], start: usize, len: usize) -> Array2<f32> {
    Array2::from_shape_fn((channels.len(), len), |(c, t)| channels[c].0[start + t])
}

/// Bytes of the same block coded losslessly.
fn lossless_bytes(
    encoder: &mut BlockEncoder,
    channels: &[(Vec<f32>, SampleGrid, f64)],
    start: usize,
    len: usize,
) -> usize {
    let block = ChannelBlock {
        channels: channels
            .iter()
            .map(|(samples, grid, _)| {
                let mut data = ChannelData::default();
                grid.quantise(&samples[start..start + len], &mut data).unwrap();
                data
            })
            .collect(),
    };
    let mut bytes = Vec::new();
    encoder.encode(&block, &mut bytes).unwrap();
    bytes.len()
}

#[test]
fn every_decoded_block_meets_its_prd_bound_on_real_recordings() {
    let mut lossless = BlockEncoder::default();
    let mut decoder = LossyDecoder::new();
    let mut decoded = Array2::zeros((0, 0));
    let mut table = String::new();
    for relative in ["edf/eegmmidb-style-64ch-128hz.edf", "wfdb/100", "wfdb/03700181"] {
        // A lossy block holds one rate: 03700181's ECG (500 Hz) and ABP + RESP (125 Hz)
        // are coded as separate blocks, like any multi-rate record.
        let all = read_all(relative);
        let mut rates: Vec<f64> = all.iter().map(|c| c.2).collect();
        rates.dedup();
        for rate in rates {
            let channels: Vec<_> = all.iter().filter(|c| c.2 == rate).cloned().collect();
            let len = block_len(rate, 10).unwrap();
            let blocks = channels[0].0.len() / len;
            assert!(blocks >= 3, "{relative}: {blocks} blocks");
            let raw = blocks * len * channels.len() * 2;
            let lossless_total: usize = (0..blocks)
                .map(|b| lossless_bytes(&mut lossless, &channels, b * len, len))
                .sum();
            for bound in [1.0, 5.0, 10.0] {
                let mut encoder = LossyEncoder::new(LossyConfig {
                    prd_bound: bound,
                    ..LossyConfig::default()
                });
                let (mut total, mut refused, mut gaps, mut worst, mut components) =
                    (0usize, 0usize, 0usize, 0.0f64, 0usize);
                for b in 0..blocks {
                    let original = block(&channels, b * len, len);
                    let mut bytes = Vec::new();
                    match encoder.encode(original.view(), &mut bytes) {
                        Ok(report) => {
                            decoder.decode_into(&bytes, &mut decoded).unwrap();
                            let (p, pn) = prd(original.view(), decoded.view());
                            assert!(pn <= bound, "{relative} block {b}: PRDN {pn} > {bound}");
                            assert!(p <= pn);
                            assert_eq!((report.prdn, report.bytes), (pn, bytes.len()));
                            worst = worst.max(pn);
                            components += report.components;
                            total += bytes.len();
                        }
                        // Refused, or a block with NaN (03700181's ABP has some): the
                        // caller codes the block losslessly.
                        Err(LossyError::PrdBound { .. }) => {
                            refused += 1;
                            total += lossless_bytes(&mut lossless, &channels, b * len, len);
                        }
                        Err(LossyError::Gap { .. }) => {
                            gaps += 1;
                            total += lossless_bytes(&mut lossless, &channels, b * len, len);
                        }
                        Err(e) => panic!("{relative} block {b}: {e}"),
                    }
                }
                table += &format!(
                "| {relative} | {} ch at {rate} Hz | {bound} % | {:.2} | {refused}/{gaps}/{blocks} | {worst:.3} | {:.3} | {:.3} | {:.2} |\n",
                channels.len(),
                components as f64 / (blocks - refused - gaps).max(1) as f64,
                raw as f64 / lossless_total as f64,
                raw as f64 / total as f64,
                lossless_total as f64 / total as f64,
            );
                // With PRDN up to 5 % allowed, a block never costs more than lossless.
                if bound >= 5.0 {
                    assert!(
                        total < lossless_total,
                        "{relative} at {bound} %: {total} ≥ {lossless_total} bytes"
                    );
                }
            }
        }
    }
    eprintln!("| record | channels | PRDN bound | mean k | refused/gaps/blocks | worst PRDN % | lossless ratio | lossy ratio | lossy vs lossless |\n|---|---|---|---|---|---|---|---|---|\n{table}");
}

#[test]
fn singular_values_match_numpy() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/codec/lossy_svd.json");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let entries = reference.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for entry in entries {
        let relative = entry["recording"].as_str().unwrap();
        let seconds = entry["seconds"].as_u64().unwrap() as u32;
        let expected: Vec<f64> = entry["singular_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mut channels = read_all(relative);
        if let Some(keep) = entry.get("channels").and_then(|c| c.as_array()) {
            let keep: Vec<usize> = keep.iter().map(|i| i.as_u64().unwrap() as usize).collect();
            channels = keep.iter().map(|&i| channels[i].clone()).collect();
        }
        let len = block_len(channels[0].2, seconds).unwrap();
        let ours = singular_values(block(&channels, 0, len).view()).unwrap();
        assert_eq!(ours.len(), expected.len(), "{relative}");
        // Tolerance: 1e-9 of the largest singular value (both are f64 SVDs of the same
        // f32 samples; they differ only by f64 rounding).
        let scale = expected[0];
        for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
            assert!((a - b).abs() <= 1e-9 * scale, "{relative} σ{i}: {a} vs numpy {b}");
        }
    }
}
