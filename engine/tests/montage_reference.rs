//! The montage operator against numpy on the real 64-channel EEG.
//!
//! References come from `scripts/make_montage_references.py` under
//! `tests/reference/montage/`: common average, linked reference (T9, T10),
//! the double banana and a matrix montage with gain, offset and DC removal,
//! all computed in float64. Ours (f32 sums of f32 samples, f64 DC state)
//! must be within a relative RMS error of 1e-5 per channel, and bitwise the
//! same for frames of 1, 7 and 5 (40 ms) samples and the whole excerpt.

mod dsp_common;

use dsp_common::*;

use std::sync::Arc;

use serde_json::Value;
use sigfab_engine::{readers, shared_data};
use sigfab_operators::montage::{Montage, MontageConfig, MontageKind};
use sigfab_operators::{ChannelLayout, Frame, Item, Modality, Operator, Output};

const MAX_RELATIVE_RMS_ERROR: f64 = 1e-5;
const REFERENCES: References = References("montage");

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

fn table(value: &Value) -> Vec<(String, f64)> {
    value
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().expect("number")))
        .collect()
}

/// The excerpt's layout and channels, checked against the script's input.
fn excerpt(meta: &Value) -> (Arc<ChannelLayout>, Vec<Vec<f32>>) {
    let path = shared_data::require(meta["recording"].as_str().expect("recording"));
    let mut reader = readers::open(&path).expect("open");
    let specs = reader
        .header()
        .signals
        .iter()
        .map(|s| s.channel_spec())
        .collect::<Vec<_>>();
    let len = meta["samples_per_channel"].as_u64().expect("length") as usize;
    let channels: Vec<Vec<f32>> = readers::read_to_end(reader.as_mut())
        .expect("read")
        .into_iter()
        .map(|c| c[..len].to_vec())
        .collect();
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, strings(&meta["channels"]));
    let first: Vec<f32> = channels.iter().map(|c| c[0]).collect();
    let expected: Vec<f32> = meta["first_samples"]
        .as_array()
        .expect("first")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect();
    assert_eq!(first, expected, "input differs from the script's");
    let sum: f64 = channels.iter().flatten().map(|&x| f64::from(x)).sum();
    let expected_sum = meta["sum"].as_f64().expect("sum");
    assert!((sum - expected_sum).abs() <= 1e-9 * expected_sum.abs().max(1.0));
    (Arc::new(ChannelLayout::new(specs)), channels)
}

fn config(meta: &Value, case: &str) -> MontageConfig {
    let plain = |kind| MontageConfig {
        kind,
        gain: vec![],
        offset: vec![],
        dc_time_constant_s: None,
    };
    match case {
        "common_average" => plain(MontageKind::CommonAverage(None)),
        "linked_T9_T10" => plain(MontageKind::Linked(vec!["T9..".into(), "T10.".into()])),
        "double_banana" => plain(MontageKind::DoubleBanana),
        "matrix_dc_gain_offset" => MontageConfig {
            kind: MontageKind::Matrix(
                meta["matrix"]
                    .as_array()
                    .expect("matrix")
                    .iter()
                    .map(|row| {
                        (
                            row["name"].as_str().expect("name").to_string(),
                            table(&row["weights"]),
                        )
                    })
                    .collect(),
            ),
            gain: table(&meta["gain"]),
            offset: table(&meta["offset"]),
            dc_time_constant_s: meta["dc_time_constant_s"].as_f64(),
        },
        other => panic!("unknown case {other}"),
    }
}

/// Runs the excerpt in frames of `size` samples; each output channel joined.
fn run(
    config: MontageConfig,
    layout: &Arc<ChannelLayout>,
    channels: &[Vec<f32>],
    size: usize,
) -> Vec<(String, Vec<f32>)> {
    let mut montage = Montage::new(config);
    let mut out = Output::default();
    let len = channels[0].len();
    let mut joined: Vec<(String, Vec<f32>)> = Vec::new();
    for (sequence, start) in (0..len).step_by(size).enumerate() {
        let end = (start + size).min(len);
        let samples = channels.iter().flat_map(|c| c[start..end].to_vec()).collect();
        let counts = vec![(end - start) as u32; channels.len()];
        let frame = Frame::new(
            "ref".into(),
            Modality::Eeg,
            layout.clone(),
            0,
            sequence as u64,
            counts,
            samples,
        )
        .expect("frame");
        montage.process(Item::Frame(frame), &mut out).expect("accepted");
        for item in out.drain() {
            let Item::Frame(frame) = item else {
                panic!("a frame")
            };
            if joined.is_empty() {
                joined = frame
                    .layout
                    .channels
                    .iter()
                    .map(|c| (c.name.clone(), Vec::new()))
                    .collect();
            }
            for (c, (_, samples)) in joined.iter_mut().enumerate() {
                samples.extend_from_slice(frame.channel(c));
            }
        }
    }
    joined
}

#[test]
fn montages_equal_numpy_on_real_eeg_for_any_framing() {
    let meta = REFERENCES.json("outputs.json");
    let all = REFERENCES.outputs();
    let (layout, channels) = excerpt(&meta);
    let len = channels[0].len();
    let cases = meta["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let stored = strings(&case["channels"]);
        let offset = case["offset"].as_u64().expect("offset") as usize;
        let whole = run(config(&meta, name), &layout, &channels, len);
        for size in [1, 7, 5] {
            let framed = run(config(&meta, name), &layout, &channels, size);
            assert!(
                framed.len() == whole.len()
                    && framed.iter().zip(&whole).all(|(a, b)| a.0 == b.0
                        && a.1
                            .iter()
                            .map(|x| x.to_bits())
                            .eq(b.1.iter().map(|x| x.to_bits()))),
                "{name}: frames of {size} change the output"
            );
        }
        for (k, channel) in stored.iter().enumerate() {
            let ours = &whole
                .iter()
                .find(|(n, _)| n == channel)
                .unwrap_or_else(|| panic!("{name} lacks output {channel}"))
                .1;
            let reference = &all[offset + k * len..offset + (k + 1) * len];
            let error = relative_rms_error(ours, reference);
            eprintln!("{name} {channel}: relative RMS error {error:e}");
            assert!(error <= MAX_RELATIVE_RMS_ERROR, "{name} {channel}: {error:e}");
        }
    }
}
