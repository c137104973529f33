//! The IIR filters against SciPy, on real recordings.
//!
//! References come from `scripts/make_filter_references.py` (numpy + scipy,
//! not run in CI) under `tests/reference/filters/`:
//! - designs: our second-order sections and steady states equal
//!   `scipy.signal.butter(..., output='sos')`, `iirnotch` and `sosfilt_zi`
//!   to 1e-9;
//! - outputs: our operators on real EEG and ECG excerpts (read by our
//!   readers, as the script did) equal `scipy.signal.sosfilt` in float64 to
//!   a relative RMS error of at most 1e-5 per channel, with the SIMD kernel
//!   and with the portable fallback;
//! - framing: the output is bitwise the same whatever the frames (1, 7 and
//!   40 ms frames from the file source, the whole record, random cuts);
//! - stability: one hour of a 0.1 Hz high-pass at 1 kHz stays bounded and
//!   within 1e-5 of SciPy.

mod dsp_common;

use dsp_common::*;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;
use sigfab_engine::config::{DurationSpec, FileSourceSpec, Located, Pace};
use sigfab_engine::sources::file::FileSource;
use sigfab_engine::sources::FrameSource;
use sigfab_engine::{readers, shared_data};
use sigfab_operators::filters::design::{steady_state, Band};
use sigfab_operators::filters::sos::Kernel;
use sigfab_operators::filters::{ChannelSelection, IirDesign, IirFilter};
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Operator, Output};

/// Largest relative RMS error allowed against SciPy (f32 samples in and out).
const MAX_RELATIVE_RMS_ERROR: f64 = 1e-5;
/// Largest difference allowed between our coefficients and SciPy's, both
/// absolute and relative to SciPy's value.
const MAX_COEFFICIENT_ERROR: f64 = 1e-9;
const REFERENCES: References = References("filters");

/// A stage of the reference table as our design.
fn design_of(stage: &Value) -> IirDesign {
    match stage["type"].as_str() {
        Some("butterworth") => {
            let edges = numbers(&stage["cutoff_hz"]);
            let band = match stage["kind"].as_str() {
                Some("lowpass") => Band::Lowpass(edges[0]),
                Some("highpass") => Band::Highpass(edges[0]),
                Some("bandpass") => Band::Bandpass(edges[0], edges[1]),
                Some("bandstop") => Band::Bandstop(edges[0], edges[1]),
                other => panic!("unknown kind {other:?}"),
            };
            let order = stage["order"].as_u64().expect("order") as usize;
            IirDesign::Butterworth { order, band }
        }
        Some("notch") => IirDesign::Notch {
            frequency: number(&stage["frequency_hz"]),
            q: number(&stage["q"]),
            harmonics: stage["harmonics"].as_u64().expect("harmonics") as u32,
        },
        other => panic!("unknown stage type {other:?}"),
    }
}

#[test]
fn designs_equal_scipy_butter_iirnotch_and_sosfilt_zi() {
    let designs = REFERENCES.json("designs.json");
    let designs = designs.as_array().expect("a list of designs");
    assert!(designs.len() > 200);
    for entry in designs {
        let rate = number(&entry["sample_rate"]);
        let sections = design_of(entry).sections(rate).expect("a valid design");
        let sos = entry["sos"].as_array().expect("sos rows");
        assert_eq!(sections.len(), sos.len(), "section count of {entry}");
        for (section, row) in sections.iter().zip(sos) {
            for (ours, theirs) in section.as_sos_row().iter().zip(numbers(row)) {
                let error = (ours - theirs).abs();
                assert!(error <= MAX_COEFFICIENT_ERROR, "{ours} vs {theirs} in {entry}");
                // Tiny coefficients (1e-20 in a 0.1 Hz 8th-order low-pass)
                // must agree too, relatively (measured: 1.1e-14 at most).
                let relative = error / theirs.abs().max(f64::MIN_POSITIVE);
                assert!(
                    theirs == 0.0 || relative <= MAX_COEFFICIENT_ERROR,
                    "{ours} vs {theirs}"
                );
            }
        }
        let zi = steady_state(&sections).expect("steady state");
        for (ours, theirs) in zi.iter().zip(entry["zi"].as_array().expect("zi rows")) {
            for (a, b) in ours.iter().zip(numbers(theirs)) {
                assert!((a - b).abs() <= MAX_COEFFICIENT_ERROR, "zi {a} vs {b} in {entry}");
            }
        }
    }
}

/// The excerpt cut into frames of `sizes` samples (cycled), all channels.
fn frames(excerpt: &Excerpt, sizes: &[usize]) -> Vec<Frame> {
    let layout = Arc::new(ChannelLayout::new(excerpt.specs.clone()));
    let len = excerpt.channels[0].len();
    let mut frames = Vec::new();
    let mut start = 0;
    for &size in sizes.iter().cycle() {
        if start >= len {
            break;
        }
        let end = (start + size).min(len);
        let samples: Vec<f32> = excerpt
            .channels
            .iter()
            .flat_map(|c| c[start..end].to_vec())
            .collect();
        let counts = vec![(end - start) as u32; excerpt.channels.len()];
        let sequence = frames.len() as u64;
        let frame = Frame::new(
            "ref".into(),
            Modality::Other,
            layout.clone(),
            0,
            sequence,
            counts,
            samples,
        );
        frames.push(frame.expect("consistent frame"));
        start = end;
    }
    frames
}

/// Runs frames through a chain of operators and joins each channel's output.
fn run_chain(operators: &mut [IirFilter], frames: Vec<Frame>, channels: usize) -> Vec<Vec<f32>> {
    let mut joined = vec![Vec::new(); channels];
    let mut out = Output::default();
    for frame in frames {
        let mut item = Item::Frame(frame);
        for operator in operators.iter_mut() {
            operator
                .process(item, &mut out)
                .expect("the filter accepts the frame");
            item = out.drain().next().expect("one frame out");
        }
        let Item::Frame(frame) = item else {
            panic!("a frame")
        };
        for (c, samples) in joined.iter_mut().enumerate() {
            samples.extend_from_slice(frame.channel(c));
        }
    }
    joined
}

/// The stages as a chain of operators, one per stage, or (`fused`) as one
/// `iir` cascade.
fn chain(stages: &[Value], warm_start: bool, kernel: Kernel, fused: bool) -> Vec<IirFilter> {
    if fused {
        let designs = stages.iter().map(design_of).collect();
        return vec![IirFilter::cascade(
            designs,
            ChannelSelection::All,
            warm_start,
            kernel,
        )];
    }
    stages
        .iter()
        .map(|stage| IirFilter::with_kernel(design_of(stage), ChannelSelection::All, warm_start, kernel))
        .collect()
}

#[test]
fn outputs_equal_scipy_sosfilt_on_real_eeg_and_ecg() {
    let meta = REFERENCES.json("outputs.json");
    let all_outputs = REFERENCES.outputs();
    let excerpts: Vec<(String, Excerpt)> = meta["excerpts"]
        .as_object()
        .expect("excerpts")
        .iter()
        .map(|(name, m)| (name.clone(), read_excerpt(m)))
        .collect();
    let cases = meta["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let excerpt = &excerpts
            .iter()
            .find(|(n, _)| n == case["excerpt"].as_str().expect("excerpt"))
            .expect("excerpt")
            .1;
        let offset = case["offset"].as_u64().expect("offset") as usize;
        let len = excerpt.channels[0].len();
        let stages = case["stages"].as_array().expect("stages");
        let warm = case["warm_start"].as_bool().expect("warm_start");
        let shapes: &[bool] = if stages.len() > 1 {
            &[false, true]
        } else {
            &[false]
        };
        for (kernel, &fused) in [Kernel::detect(), Kernel::portable()]
            .into_iter()
            .flat_map(|k| shapes.iter().map(move |f| (k, f)))
        {
            // 40 ms frames at the excerpt's rate, as a live pipeline cuts them.
            let frame_len = (excerpt.specs[0].sample_rate * 0.040).round() as usize;
            let ours = run_chain(
                &mut chain(stages, warm, kernel, fused),
                frames(excerpt, &[frame_len]),
                excerpt.channels.len(),
            );
            let mut worst = 0.0f64;
            for (c, channel) in ours.iter().enumerate() {
                let reference = &all_outputs[offset + c * len..offset + (c + 1) * len];
                let error = relative_rms_error(channel, reference);
                worst = worst.max(error);
                assert!(
                    error <= MAX_RELATIVE_RMS_ERROR,
                    "{name}, channel {c}, {}, {}: relative RMS error {error:e}",
                    kernel.name(),
                    if fused {
                        "one iir cascade"
                    } else {
                        "one operator per stage"
                    }
                );
            }
            eprintln!(
                "{name}, {}, fused {fused}: worst relative RMS error {worst:.2e}",
                kernel.name()
            );
        }
    }
}

fn eeg_excerpt() -> Excerpt {
    read_excerpt(&REFERENCES.json("outputs.json")["excerpts"]["eeg"])
}

/// Band-pass then notch, and a warm-started high-pass, then all three again
/// as one warm-started cascade: the SIMD kernel, its scalar leftovers and
/// the gap path all take part.
fn framing_chain() -> Vec<IirFilter> {
    let bandpass = IirDesign::Butterworth {
        order: 4,
        band: Band::Bandpass(0.5, 45.0),
    };
    let notch = IirDesign::Notch {
        frequency: 50.0,
        q: 30.0,
        harmonics: 0,
    };
    let highpass = IirDesign::Butterworth {
        order: 2,
        band: Band::Highpass(1.0),
    };
    let kernel = Kernel::detect();
    vec![
        IirFilter::new(bandpass.clone(), ChannelSelection::All, false),
        IirFilter::new(notch.clone(), ChannelSelection::All, false),
        IirFilter::new(highpass.clone(), ChannelSelection::All, true),
        IirFilter::cascade(
            vec![highpass, bandpass, notch],
            ChannelSelection::All,
            true,
            kernel,
        ),
    ]
}

#[test]
fn output_is_bitwise_identical_for_1_7_40_ms_frames_and_the_whole_record() {
    let path = shared_data::require("edf/eegmmidb-style-64ch-128hz.edf");
    let whole_record = {
        let mut reader = readers::open(&path).expect("open");
        let specs = reader.header().signals.iter().map(|s| s.channel_spec()).collect();
        let channels = readers::read_to_end(reader.as_mut()).expect("read");
        let excerpt = Excerpt { specs, channels };
        let len = excerpt.channels[0].len();
        run_chain(
            &mut framing_chain(),
            frames(&excerpt, &[len]),
            excerpt.channels.len(),
        )
    };
    for frame_ms in [1, 7, 40] {
        let spec = FileSourceSpec {
            path: Located::new(path.to_string_lossy().into_owned(), Default::default()),
            frame: Located::new(DurationSpec(Duration::from_millis(frame_ms)), Default::default()),
            pace: Pace::Fast,
            stream_id: None,
            modality: None,
            metadata: Default::default(),
        };
        let mut source = FileSource::open(&path, &spec).expect("file source");
        let mut frames = Vec::new();
        while let Some(frame) = source.next_frame().expect("frame") {
            frames.push(frame);
        }
        let framed = run_chain(&mut framing_chain(), frames, whole_record.len());
        assert!(
            same_bits(&framed, &whole_record),
            "{frame_ms} ms frames change the output"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random frame sizes and a random gap (NaN) give the same bits as the
    /// whole excerpt in one frame with the same gap.
    #[test]
    fn output_is_bitwise_identical_for_random_cuts_and_gaps(
        sizes in prop::collection::vec(1usize..300, 1..40),
        gap in prop::option::of((0usize..4, 0usize..3840)),
    ) {
        let mut excerpt = eeg_excerpt();
        if let Some((channel, at)) = gap {
            excerpt.channels[channel][at] = f32::NAN;
        }
        let channels = excerpt.channels.len();
        let len = excerpt.channels[0].len();
        let whole = run_chain(&mut framing_chain(), frames(&excerpt, &[len]), channels);
        let cut = run_chain(&mut framing_chain(), frames(&excerpt, &sizes), channels);
        prop_assert!(same_bits(&cut, &whole));
        if let Some((channel, at)) = gap {
            prop_assert!(whole[channel][at].is_nan());
            prop_assert!(whole[channel].iter().filter(|y| y.is_nan()).count() == 1, "only the gap is NaN");
        }
    }
}

/// The same high-pass with f32 coefficients and state (the choice we did not
/// make), for comparison.
fn f32_state_highpass(sections: &[[f64; 6]], input: &[f32]) -> Vec<f32> {
    let mut state = vec![[0.0f32; 2]; sections.len()];
    input
        .iter()
        .map(|&x| {
            let mut x = x;
            for (s, z) in sections.iter().zip(state.iter_mut()) {
                let [b0, b1, b2, _, a1, a2] = s.map(|c| c as f32);
                let y = b0 * x + z[0];
                z[0] = b1 * x - a1 * y + z[1];
                z[1] = b2 * x - a2 * y;
                x = y;
            }
            x
        })
        .collect()
}

#[test]
fn one_hour_of_a_0_1_hz_high_pass_at_1_khz_stays_on_scipy() {
    let meta = REFERENCES.json("outputs.json");
    let case = &meta["stability"];
    let n = case["samples"].as_u64().expect("samples") as usize;
    let (offset, scale) = (number(&case["offset"]) as f32, number(&case["scale"]) as f32);
    let input: Vec<f32> = splitmix64(case["seed"].as_u64().expect("seed"), n)
        .into_iter()
        .map(|u| offset + scale * u)
        .collect();
    let sum: f64 = input.iter().map(|&x| f64::from(x)).sum();
    assert!(
        (sum - number(&case["input_sum"])).abs() <= 1e-9 * sum.abs(),
        "input differs from the script's"
    );
    let rate = number(&case["sample_rate"]);
    let layout = Arc::new(ChannelLayout::new(vec![ChannelSpec {
        name: "x".into(),
        unit: "uV".into(),
        sample_rate: rate,
    }]));
    let excerpt = Excerpt {
        specs: layout.channels.clone(),
        channels: vec![input.clone()],
    };
    let mut filter = vec![IirFilter::new(
        design_of(&case["stage"]),
        ChannelSelection::All,
        false,
    )];
    let ours = run_chain(&mut filter, frames(&excerpt, &[40]), 1).remove(0);

    let every = case["every"].as_u64().expect("every") as usize;
    let sampled: Vec<f32> = ours.iter().step_by(every).copied().collect();
    let expected_sampled: Vec<f32> = numbers(&case["sampled_outputs"])
        .iter()
        .map(|&y| y as f32)
        .collect();
    let error = relative_rms_error(&sampled, &expected_sampled);
    assert!(
        error <= MAX_RELATIVE_RMS_ERROR,
        "sampled outputs: relative RMS error {error:e}"
    );
    let expected_last: Vec<f32> = numbers(&case["last_outputs"]).iter().map(|&y| y as f32).collect();
    let last_error = relative_rms_error(&ours[n - 1000..], &expected_last);
    assert!(
        last_error <= MAX_RELATIVE_RMS_ERROR,
        "after one hour: relative RMS error {last_error:e}"
    );
    let max_abs = ours.iter().fold(0.0f32, |m, y| m.max(y.abs()));
    assert!(
        f64::from(max_abs) <= number(&case["max_abs_output"]) * (1.0 + 1e-4),
        "bounded"
    );

    // Why not plain f32: the same filter with f32 state in direct form II is
    // far off. (Ours runs it in the f32 delta form, shifted by the first
    // sample: see `operators/src/filters/sos.rs`.)
    let sections: Vec<[f64; 6]> = design_of(&case["stage"])
        .sections(rate)
        .expect("design")
        .iter()
        .map(|s| s.as_sos_row())
        .collect();
    let single = f32_state_highpass(&sections, &input);
    let single_error = relative_rms_error(&single[n - 1000..], &expected_last);
    eprintln!("ours: relative RMS error {last_error:e}; f32 direct form II: {single_error:e}");
    assert!(
        single_error > 100.0 * last_error.max(1e-9),
        "f32 state error {single_error:e}"
    );
}
