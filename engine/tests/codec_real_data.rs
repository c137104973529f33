//! The lossless codec on every real recording: read with our readers,
//! quantise to the file's integers, encode in blocks of 1, 5 and 10 s,
//! decode, dequantise, and compare the f32 bits with what the reader gave.

use sigfab_engine::readers::{self, RecordingReader};
use sigfab_engine::shared_data;
use sigfab_operators::codec::{block_len, BlockDecoder, BlockEncoder, ChannelBlock, ChannelData, SampleGrid};

const RECORDINGS: [&str; 4] = [
    "edf/eegmmidb-style-64ch-128hz.edf",
    "edf/19ch-125hz-annotations.bdf",
    "wfdb/100",
    "wfdb/03700181",
];

/// Every channel's physical samples and grid.
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

#[test]
fn real_recordings_round_trip_bit_exactly_in_blocks_of_1_5_and_10_s() {
    let mut encoder = BlockEncoder::default();
    let mut decoder = BlockDecoder::new();
    let (mut bytes, mut decoded, mut physical) = (Vec::new(), ChannelBlock::default(), Vec::new());
    for relative in RECORDINGS {
        let channels = read_all(relative);
        let quantised: Vec<ChannelData> = channels
            .iter()
            .map(|(samples, grid, _)| {
                let mut data = ChannelData::default();
                grid.quantise(samples, &mut data).unwrap();
                data
            })
            .collect();
        for seconds in [1, 5, 10] {
            let lens: Vec<usize> = channels
                .iter()
                .map(|c| block_len(c.2, seconds).unwrap())
                .collect();
            let blocks = quantised[0].samples.len().div_ceil(lens[0]);
            let mut coded = 0;
            for b in 0..blocks {
                let block = ChannelBlock {
                    channels: quantised
                        .iter()
                        .zip(&lens)
                        .map(|(data, &len)| slice(data, b * len, len))
                        .collect(),
                };
                bytes.clear();
                encoder.encode(&block, &mut bytes).unwrap();
                coded += bytes.len();
                decoder.decode_into(&bytes, &mut decoded).unwrap();
                assert_eq!(decoded, block, "{relative}, {seconds} s block {b}");
                for (c, data) in decoded.channels.iter().enumerate() {
                    physical.clear();
                    channels[c].1.dequantise(data, &mut physical);
                    let start = (b * lens[c]).min(channels[c].0.len());
                    let original = &channels[c].0[start..start + physical.len()];
                    let same_bits = original
                        .iter()
                        .zip(&physical)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same_bits,
                        "{relative}, {seconds} s block {b}, channel {c}: f32 bits differ"
                    );
                }
            }
            let total: usize = quantised.iter().map(|d| d.samples.len()).sum();
            assert!(total > 0 && coded > 0, "{relative}: nothing coded");
        }
    }
}

/// Samples `start..start + len` of a channel (clipped), gap runs rebased.
fn slice(data: &ChannelData, start: usize, len: usize) -> ChannelData {
    let end = (start + len).min(data.samples.len());
    let start = start.min(end);
    let mut out = ChannelData::default();
    for i in start..end {
        if data.is_gap(i) {
            out.push_gap();
        } else {
            out.samples.push(data.samples[i]);
        }
    }
    out
}

/// None of the four records marks invalid samples (03700181 included), so NaN runs are cut
/// into a real channel: at the start, in the middle, at the end, and a whole block.
#[test]
fn real_samples_with_nan_runs_round_trip_bit_exactly() {
    for relative in ["edf/19ch-125hz-annotations.bdf", "wfdb/100"] {
        let (mut samples, grid, rate) = read_all(relative).swap_remove(0);
        let len = block_len(rate, 10).unwrap();
        samples.truncate(3 * len);
        for run in [0..7, len / 2..len / 2 + 1, len - 3..len + 40, 2 * len..3 * len] {
            samples[run].fill(f32::NAN);
        }
        let mut encoder = BlockEncoder::default();
        let mut decoder = BlockDecoder::new();
        for chunk in samples.chunks(len) {
            let mut data = ChannelData::default();
            grid.quantise(chunk, &mut data).unwrap();
            assert!(!data.gaps.is_empty(), "{relative}: every block here has a gap");
            let block = ChannelBlock { channels: vec![data] };
            let mut bytes = Vec::new();
            encoder.encode(&block, &mut bytes).unwrap();
            let decoded = decoder.decode(&bytes).unwrap();
            assert_eq!(decoded, block);
            let mut physical = Vec::new();
            grid.dequantise(&decoded.channels[0], &mut physical);
            let same_bits = chunk
                .iter()
                .zip(&physical)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same_bits && physical.len() == chunk.len(),
                "{relative}: f32 bits differ"
            );
        }
    }
}

#[test]
fn reader_values_off_the_grid_are_refused() {
    let (samples, grid, _) = read_all("wfdb/100").swap_remove(0);
    let mut nudged: Vec<f32> = samples[..100].to_vec();
    nudged[50] = f32::from_bits(nudged[50].to_bits() + 1);
    let err = grid.quantise(&nudged, &mut ChannelData::default()).unwrap_err();
    assert_eq!(err, sigfab_operators::codec::CodecError::OffGrid { index: 50 });
}
