//! The FIR filters and the resampler against SciPy, on real recordings.
//!
//! References come from `scripts/make_fir_references.py` under
//! `tests/reference/fir/`:
//! - designs: our taps equal `scipy.signal.firwin` (all kinds, windows
//!   hamming/hann/blackman/kaiser), `kaiserord` (tap count and beta) to
//!   1e-12, and `minimum_phase(method='homomorphic')` to 1e-9 (a different
//!   FFT over 2^15+ points; measured worst below);
//! - outputs: the `fir` operator on real EEG and ECG excerpts equals
//!   `scipy.signal.lfilter` (float64) to a relative RMS error of at most
//!   1e-5 per channel, with direct convolution and with overlap-save
//!   (shifted by its block latency);
//! - resampling: the `resample` operator equals `scipy.signal.resample_poly`
//!   shifted by the reported group delay, to 1e-5 relative RMS, on real
//!   excerpts and on 500 -> 256 Hz and 44.1 -> 16 kHz noise; output rates and
//!   start times follow the output sample clock;
//! - framing: both give bitwise the same output for 1, 7 and 40 ms frames
//!   from the file source and for the whole record.

mod dsp_common;

use dsp_common::*;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sigfab_engine::config::{DurationSpec, FileSourceSpec, Located, Pace};
use sigfab_engine::sources::file::FileSource;
use sigfab_engine::sources::FrameSource;
use sigfab_engine::{readers, shared_data};
use sigfab_operators::filters::design::Band;
use sigfab_operators::filters::fir::{kaiserord, minimum_phase, FirDesign, FirLength, FirWindow};
use sigfab_operators::filters::{ChannelSelection, FirFilter, FirMethod, Resample, ResampleFactors};
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Operator, Output};

const MAX_RELATIVE_RMS_ERROR: f64 = 1e-5;
const MAX_TAP_ERROR: f64 = 1e-12;
const MAX_MINIMUM_PHASE_ERROR: f64 = 1e-9;
const REFERENCES: References = References("fir");

fn band_of(entry: &Value) -> Band {
    let edges = numbers(&entry["cutoff_hz"]);
    match entry["kind"].as_str() {
        Some("lowpass") => Band::Lowpass(edges[0]),
        Some("highpass") => Band::Highpass(edges[0]),
        Some("bandpass") => Band::Bandpass(edges[0], edges[1]),
        Some("bandstop") => Band::Bandstop(edges[0], edges[1]),
        other => panic!("unknown kind {other:?}"),
    }
}

fn window_of(name: &str) -> FirWindow {
    match name {
        "hamming" => FirWindow::Hamming,
        "hann" => FirWindow::Hann,
        "blackman" => FirWindow::Blackman,
        "kaiser_6" => FirWindow::Kaiser(6.0),
        other => panic!("unknown window {other}"),
    }
}

fn design_of(entry: &Value, minimum_phase: bool) -> FirDesign {
    let length = match entry.get("attenuation_db") {
        Some(attenuation) => FirLength::Kaiser {
            attenuation_db: number(attenuation),
            transition_hz: number(&entry["transition_hz"]),
        },
        None => FirLength::Taps(
            entry["taps"].as_u64().expect("taps") as usize,
            window_of(entry["window"].as_str().expect("window")),
        ),
    };
    FirDesign {
        band: band_of(entry),
        length,
        minimum_phase,
    }
}

fn worst_difference(ours: &[f64], theirs: &[f64]) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "tap count");
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn designs_equal_scipy_firwin_kaiserord_and_minimum_phase() {
    let designs = REFERENCES.json("designs.json");
    let firwin = designs["firwin"].as_array().expect("firwin");
    assert!(firwin.len() > 100);
    for entry in firwin {
        let taps = design_of(entry, false)
            .taps(number(&entry["sample_rate"]))
            .expect("a valid design");
        let error = worst_difference(&taps.taps, &numbers(&entry["h"]));
        assert!(error <= MAX_TAP_ERROR, "{error:e} in {entry}");
        assert_eq!(taps.delay_samples, Some((taps.taps.len() as f64 - 1.0) / 2.0));
    }
    for entry in designs["kaiser"].as_array().expect("kaiser") {
        let rate = number(&entry["sample_rate"]);
        let (raw_taps, beta) = kaiserord(
            number(&entry["attenuation_db"]),
            number(&entry["transition_hz"]) / (rate / 2.0),
        );
        assert!(
            (beta - number(&entry["beta"])).abs() <= MAX_TAP_ERROR,
            "beta of {entry}"
        );
        let expected_taps = entry["taps"].as_u64().expect("taps") as usize;
        assert!(raw_taps == expected_taps || raw_taps + 1 == expected_taps);
        let taps = design_of(entry, false).taps(rate).expect("a valid design");
        let error = worst_difference(&taps.taps, &numbers(&entry["h"]));
        assert!(error <= MAX_TAP_ERROR, "{error:e} in {entry}");
    }
    let mut worst: f64 = 0.0;
    for entry in designs["minimum_phase"].as_array().expect("minimum_phase") {
        let rate = number(&entry["sample_rate"]);
        let linear = design_of(entry, false).taps(rate).expect("design").taps;
        let ours = design_of(entry, true).taps(rate).expect("design");
        assert_eq!(ours.taps, minimum_phase(&linear));
        assert_eq!(ours.delay_samples, None);
        let error = worst_difference(&ours.taps, &numbers(&entry["h"]));
        worst = worst.max(error);
        assert!(error <= MAX_MINIMUM_PHASE_ERROR, "{error:e} in {entry}");
    }
    eprintln!("minimum_phase: worst tap difference from SciPy {worst:e}");
}

fn frames(excerpt: &Excerpt, size: usize) -> Vec<Frame> {
    let layout = Arc::new(ChannelLayout::new(excerpt.specs.clone()));
    let len = excerpt.channels[0].len();
    (0..len)
        .step_by(size)
        .enumerate()
        .map(|(sequence, start)| {
            let end = (start + size).min(len);
            let samples = excerpt
                .channels
                .iter()
                .flat_map(|c| c[start..end].to_vec())
                .collect();
            let start_ns = (start as f64 * 1e9 / excerpt.specs[0].sample_rate).round() as i64;
            let counts = vec![(end - start) as u32; excerpt.channels.len()];
            Frame::new(
                "ref".into(),
                Modality::Other,
                layout.clone(),
                start_ns,
                sequence as u64,
                counts,
                samples,
            )
            .expect("consistent frame")
        })
        .collect()
}

/// Runs frames through one operator; every frame out, in order.
fn run(operator: &mut dyn Operator, frames: Vec<Frame>) -> Vec<Frame> {
    let mut out = Output::default();
    let mut produced = Vec::new();
    for frame in frames {
        operator.process(Item::Frame(frame), &mut out).expect("accepted");
        for item in out.drain() {
            let Item::Frame(frame) = item else {
                panic!("a frame")
            };
            produced.push(frame);
        }
    }
    produced
}

fn joined(frames: &[Frame], channels: usize) -> Vec<Vec<f32>> {
    let mut joined = vec![Vec::new(); channels];
    for frame in frames {
        for (c, samples) in joined.iter_mut().enumerate() {
            samples.extend_from_slice(frame.channel(c));
        }
    }
    joined
}

fn excerpts(meta: &Value) -> Vec<(String, Excerpt)> {
    meta["excerpts"]
        .as_object()
        .expect("excerpts")
        .iter()
        .map(|(name, m)| (name.clone(), read_excerpt(m)))
        .collect()
}

fn find<'a>(excerpts: &'a [(String, Excerpt)], case: &Value) -> &'a Excerpt {
    let name = case["excerpt"].as_str().expect("excerpt");
    &excerpts.iter().find(|(n, _)| n == name).expect("excerpt").1
}

#[test]
fn fir_outputs_equal_scipy_lfilter_on_real_eeg_and_ecg() {
    let meta = REFERENCES.json("outputs.json");
    let all = REFERENCES.outputs();
    let excerpts = excerpts(&meta);
    let cases = meta["fir"].as_array().expect("fir cases");
    assert!(cases.len() >= 6);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let excerpt = find(&excerpts, case);
        let rate = excerpt.specs[0].sample_rate;
        let design = design_of(case, case["minimum_phase"].as_bool().expect("minimum_phase"));
        let offset = case["offset"].as_u64().expect("offset") as usize;
        let len = excerpt.channels[0].len();
        let frame_len = (rate * 0.040).round() as usize;
        for method in [FirMethod::Direct, FirMethod::Fft] {
            let mut filter = FirFilter::new(design, ChannelSelection::All, method);
            let report = filter.report(rate).expect("design");
            assert_eq!(report.taps as u64, case["taps_designed"].as_u64().expect("taps"));
            let latency = report.block_latency;
            // Zeros after the excerpt flush the overlap-save blocks.
            let flushed = Excerpt {
                specs: excerpt.specs.clone(),
                channels: excerpt
                    .channels
                    .iter()
                    .map(|c| {
                        c.iter()
                            .copied()
                            .chain(std::iter::repeat_n(0.0, latency))
                            .collect()
                    })
                    .collect(),
            };
            let ours = joined(
                &run(&mut filter, frames(&flushed, frame_len)),
                excerpt.channels.len(),
            );
            for (c, channel) in ours.iter().enumerate() {
                assert!(channel[..latency].iter().all(|&y| y == 0.0));
                let reference = &all[offset + c * len..offset + (c + 1) * len];
                let error = relative_rms_error(&channel[latency..], reference);
                eprintln!("{name} {method:?} channel {c}: relative RMS error {error:e}");
                assert!(
                    error <= MAX_RELATIVE_RMS_ERROR,
                    "{name} {method:?} channel {c}: {error:e}"
                );
            }
        }
    }
}

/// Checks resampled frames against `resample_poly`'s output
/// (`reference[channel]`), shifted by the reported delay, and their clock.
fn check_resampled(name: &str, frames: &[Frame], reference: &[&[f32]], rate_in: f64, up: u64, down: u64) {
    let rate_out = rate_in * up as f64 / down as f64;
    let mut resample = Resample::new(ResampleFactors::Ratio {
        up: up as u32,
        down: down as u32,
    });
    let (_, _, planned_rate, delay) = resample.plan(rate_in).expect("plan");
    assert_eq!(planned_rate, rate_out);
    let outputs = run(&mut resample, frames.to_vec());
    let mut next = 0u64;
    for frame in &outputs {
        assert!(frame.layout.channels.iter().all(|c| c.sample_rate == rate_out));
        assert_eq!(
            frame.start_ns,
            (next as f64 * 1e9 / rate_out).round() as i64,
            "{name}: start_ns"
        );
        next += u64::from(frame.counts()[0]);
    }
    let ours = joined(&outputs, reference.len());
    let delay = delay as usize;
    for (c, (channel, expected)) in ours.iter().zip(reference).enumerate() {
        // Ours at m is theirs at m - delay; ours stops where the input
        // stops, theirs runs on over SciPy's zero padding.
        assert!(channel.len() > delay && expected.len() >= channel.len() - delay);
        let compared = channel.len() - delay;
        let error = relative_rms_error(&channel[delay..], &expected[..compared]);
        eprintln!("{name} channel {c}: {compared} samples, delay {delay}, relative RMS error {error:e}");
        assert!(error <= MAX_RELATIVE_RMS_ERROR, "{name} channel {c}: {error:e}");
    }
}

#[test]
fn resampled_outputs_equal_scipy_resample_poly_shifted_by_the_delay() {
    let meta = REFERENCES.json("outputs.json");
    let all = REFERENCES.outputs();
    let excerpts = excerpts(&meta);
    for case in meta["resample"].as_array().expect("resample cases") {
        let excerpt = find(&excerpts, case);
        let rate = excerpt.specs[0].sample_rate;
        let per_channel = case["per_channel"].as_u64().expect("length") as usize;
        let offset = case["offset"].as_u64().expect("offset") as usize;
        let reference: Vec<&[f32]> = (0..excerpt.channels.len())
            .map(|c| &all[offset + c * per_channel..offset + (c + 1) * per_channel])
            .collect();
        let (up, down) = (
            case["up"].as_u64().expect("up"),
            case["down"].as_u64().expect("down"),
        );
        let frame_len = (rate * 0.040).round() as usize;
        let name = case["name"].as_str().expect("name");
        check_resampled(name, &frames(excerpt, frame_len), &reference, rate, up, down);
    }
    for case in meta["resample_noise"].as_array().expect("noise cases") {
        let n = case["samples"].as_u64().expect("samples") as usize;
        let input = splitmix64(case["seed"].as_u64().expect("seed"), n);
        let sum: f64 = input.iter().map(|&x| f64::from(x)).sum();
        assert!((sum - number(&case["input_sum"])).abs() <= 1e-9 * sum.abs().max(1.0));
        let rate = number(&case["sample_rate"]);
        let excerpt = Excerpt {
            specs: vec![ChannelSpec {
                name: "x".into(),
                unit: "au".into(),
                sample_rate: rate,
            }],
            channels: vec![input],
        };
        let per_channel = case["per_channel"].as_u64().expect("length") as usize;
        let offset = case["offset"].as_u64().expect("offset") as usize;
        let (up, down) = (
            case["up"].as_u64().expect("up"),
            case["down"].as_u64().expect("down"),
        );
        let frame_len = (rate * 0.040).round() as usize;
        let name = case["name"].as_str().expect("name");
        check_resampled(
            name,
            &frames(&excerpt, frame_len),
            &[&all[offset..offset + per_channel]],
            rate,
            up,
            down,
        );
    }
}

#[test]
fn to_hz_picks_the_factors_of_common_conversions() {
    let mut resample = Resample::new(ResampleFactors::ToHz(256.0));
    assert_eq!(resample.plan(500.0).expect("plan"), (64, 125, 256.0, 10));
    let mut resample = Resample::new(ResampleFactors::ToHz(16_000.0));
    let (up, down, rate, delay) = resample.plan(44_100.0).expect("plan");
    assert_eq!((up, down, rate, delay), (160, 441, 16_000.0, 10));
}

/// A direct FIR, an overlap-save FIR and a 128 -> 100 Hz resampler in a chain.
fn framing_chain() -> Vec<Box<dyn Operator>> {
    let bandpass = FirDesign {
        band: Band::Bandpass(1.0, 40.0),
        length: FirLength::Taps(65, FirWindow::Hamming),
        minimum_phase: false,
    };
    let highpass = FirDesign {
        band: Band::Highpass(0.5),
        length: FirLength::Kaiser {
            attenuation_db: 60.0,
            transition_hz: 1.0,
        },
        minimum_phase: false,
    };
    vec![
        Box::new(FirFilter::new(bandpass, ChannelSelection::All, FirMethod::Direct)),
        Box::new(FirFilter::new(highpass, ChannelSelection::All, FirMethod::Fft)),
        Box::new(Resample::new(ResampleFactors::ToHz(100.0))),
    ]
}

fn run_chain(frames: Vec<Frame>) -> (Vec<Vec<f32>>, Vec<i64>) {
    let mut chain = framing_chain();
    let mut items = frames;
    for operator in chain.iter_mut() {
        items = run(operator.as_mut(), items);
    }
    let channels = items.first().map_or(0, |f| f.channel_count());
    let starts = items.iter().map(|f| f.start_ns).collect();
    (joined(&items, channels), starts)
}

#[test]
fn output_is_bitwise_identical_for_1_7_40_ms_frames_and_the_whole_record() {
    let path = shared_data::require("edf/eegmmidb-style-64ch-128hz.edf");
    let (whole, _) = {
        let mut reader = readers::open(&path).expect("open");
        let specs: Vec<ChannelSpec> = reader.header().signals.iter().map(|s| s.channel_spec()).collect();
        // Eight channels keep the debug-build test short.
        let channels: Vec<Vec<f32>> = readers::read_to_end(reader.as_mut()).expect("read")[..8].to_vec();
        let excerpt = Excerpt {
            specs: specs[..8].to_vec(),
            channels,
        };
        let len = excerpt.channels[0].len();
        run_chain(frames(&excerpt, len))
    };
    assert!(whole[0].len() > 1000);
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
            frames.push(keep_channels(frame, 8));
        }
        let origin = frames[0].start_ns;
        let (framed, starts) = run_chain(frames);
        assert!(
            same_bits(&framed, &whole),
            "{frame_ms} ms frames change the output"
        );
        // Output frames start on the 100 Hz output clock from the origin.
        assert!(starts.iter().all(|&s| ((s - origin) as f64 * 100.0 / 1e9
            - ((s - origin) as f64 * 100.0 / 1e9).round())
        .abs()
            < 1e-6));
    }
}

/// The frame's first `n` channels.
fn keep_channels(frame: Frame, n: usize) -> Frame {
    let layout = Arc::new(ChannelLayout::new(frame.layout.channels[..n].to_vec()));
    let counts = frame.counts()[..n].to_vec();
    let total: usize = counts.iter().map(|&c| c as usize).sum();
    let samples = frame.samples()[..total].to_vec();
    let mut kept = Frame::new(
        frame.stream_id.clone(),
        frame.modality,
        layout,
        frame.start_ns,
        frame.sequence,
        counts,
        samples,
    )
    .expect("consistent");
    kept.discontinuity = frame.discontinuity;
    kept
}

/// A real excerpt cut into frames of the given sizes (cycled).
fn frames_cut(excerpt: &Excerpt, sizes: &[usize]) -> Vec<Frame> {
    let layout = Arc::new(ChannelLayout::new(excerpt.specs.clone()));
    let len = excerpt.channels[0].len();
    let mut frames = Vec::new();
    let mut start = 0;
    for &size in sizes.iter().cycle() {
        if start >= len {
            break;
        }
        let end = (start + size).min(len);
        let samples = excerpt
            .channels
            .iter()
            .flat_map(|c| c[start..end].to_vec())
            .collect();
        let start_ns = (start as f64 * 1e9 / excerpt.specs[0].sample_rate).round() as i64;
        let counts = vec![(end - start) as u32; excerpt.channels.len()];
        let sequence = frames.len() as u64;
        frames.push(
            Frame::new(
                "ref".into(),
                Modality::Other,
                layout.clone(),
                start_ns,
                sequence,
                counts,
                samples,
            )
            .expect("consistent frame"),
        );
        start = end;
    }
    frames
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    /// Random frame sizes give the same bits and the same output clock as
    /// the whole excerpt in one frame.
    #[test]
    fn output_is_bitwise_identical_for_random_cuts(sizes in proptest::collection::vec(1usize..300, 1..40)) {
        let meta = REFERENCES.json("outputs.json");
        let excerpt = read_excerpt(&meta["excerpts"]["eeg"]);
        let len = excerpt.channels[0].len();
        let (whole, _) = run_chain(frames_cut(&excerpt, &[len]));
        let (cut, starts) = run_chain(frames_cut(&excerpt, &sizes));
        proptest::prop_assert!(same_bits(&cut, &whole));
        let mut next = 0u64;
        for (start, count) in starts.iter().zip(frame_counts(&excerpt, &sizes)) {
            proptest::prop_assert_eq!(*start, (next as f64 * 1e9 / 100.0).round() as i64);
            next += count;
        }
    }
}

/// Sample counts of the first channel in each resampled frame of a cut.
fn frame_counts(excerpt: &Excerpt, sizes: &[usize]) -> Vec<u64> {
    let mut chain = framing_chain();
    let mut items = frames_cut(excerpt, sizes);
    for operator in chain.iter_mut() {
        items = run(operator.as_mut(), items);
    }
    items.iter().map(|f| u64::from(f.counts()[0])).collect()
}
