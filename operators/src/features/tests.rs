//! Synthetic tests of the windowed operators: quality flags, the quality
//! gate, windows across channels, time features and audio features, and
//! framing invariance of each.

use std::f64::consts::PI;
use std::sync::Arc;

use super::audio::{hz_to_mel, mel_to_hz};
use super::quality::{self, QualityConfig, SignalQuality};
use super::*;
use crate::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Operator, Output, Record, Values};

/// Deterministic noise in [-1, 1).
fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// EEG-like µV: 6, 10 and 20 Hz sines plus broadband noise.
fn eeg(n: usize, rate: f64, seed: u64) -> Vec<f32> {
    noise(n, seed)
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let t = i as f64 / rate;
            (12.0 * (2.0 * PI * 6.0 * t).sin()
                + 20.0 * (2.0 * PI * 10.0 * t + 0.3).sin()
                + 6.0 * (2.0 * PI * 20.0 * t).sin()
                + 8.0 * e) as f32
        })
        .collect()
}

fn layout(channels: usize, rate: f64, unit: &str) -> Arc<ChannelLayout> {
    Arc::new(ChannelLayout::new(
        (0..channels)
            .map(|i| ChannelSpec {
                name: format!("C{i}"),
                unit: unit.into(),
                sample_rate: rate,
            })
            .collect(),
    ))
}

/// Runs `data` (one vector per channel) in frames of `frame` samples;
/// records with sequence zeroed.
fn run(
    op: &mut dyn Operator,
    data: &[Vec<f32>],
    rate: f64,
    frame: usize,
    modality: Modality,
    unit: &str,
) -> Vec<Record> {
    let layout = layout(data.len(), rate, unit);
    let mut out = Output::default();
    let mut records = Vec::new();
    let len = data[0].len();
    for (seq, start) in (0..len).step_by(frame).enumerate() {
        let end = (start + frame).min(len);
        let counts = vec![(end - start) as u32; data.len()];
        let samples = data.iter().flat_map(|c| c[start..end].iter().copied()).collect();
        let start_ns = 5_000_000_000 + (start as f64 * 1e9 / rate).round() as i64;
        let f = Frame::new(
            "s".into(),
            modality,
            layout.clone(),
            start_ns,
            seq as u64,
            counts,
            samples,
        )
        .expect("frame");
        op.process(Item::Frame(f), &mut out).expect("processed");
        records.extend(out.drain().map(|i| match i {
            Item::Record(r) => Record { sequence: 0, ..r },
            Item::Frame(_) => panic!("expected records"),
        }));
    }
    records
}

fn value(record: &Record, name: &str) -> f64 {
    record
        .values
        .iter()
        .find(|(n, _)| n.ends_with(&format!(".{name}")))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name}"))
}

const RATE: f64 = 256.0;

fn quality_records(data: &[f32], config: QualityConfig) -> Vec<Record> {
    let mut op = SignalQuality::new(WindowConfig::new(2.0, 0.25), config);
    run(&mut op, &[data.to_vec()], RATE, 10, Modality::Eeg, "uV")
}

/// Reasons of the window that starts at `t` s.
fn reasons_at(records: &[Record], t: f64) -> u32 {
    let start = 5_000_000_000 + (t * 1e9) as i64;
    let r = records.iter().find(|r| r.start_ns == start).expect("window at t");
    value(r, "reasons") as u32
}

#[test]
fn clean_eeg_raises_no_quality_flag() {
    let records = quality_records(&eeg(256 * 10, RATE, 1), QualityConfig::default());
    assert_eq!(records.len(), 33);
    for r in &records {
        assert_eq!(value(r, "reasons"), 0.0, "{r:?}");
        assert_eq!(value(r, "ok"), 1.0);
        assert_eq!(value(r, "flat_fraction"), 0.0);
        assert_eq!(value(r, "nan_fraction"), 0.0);
        assert!(value(r, "line_noise_ratio") < 0.05);
    }
}

#[test]
fn each_quality_flag_fires_on_its_fault_only() {
    let clean = eeg(256 * 10, RATE, 2);
    let at = |s: f64| (s * RATE) as usize;
    // Flat: 1 s held at one value, from 4 s.
    let mut flat = clean.clone();
    let held = flat[at(4.0)];
    flat[at(4.0)..at(5.0)].iter_mut().for_each(|x| *x = held);
    // Clipped: the amplifier saturates at ±25 µV.
    let clipped: Vec<f32> = clean.iter().map(|x| x.clamp(-25.0, 25.0)).collect();
    // 0.5 s of NaN from 4 s.
    let mut nan = clean.clone();
    nan[at(4.0)..at(4.5)].iter_mut().for_each(|x| *x = f32::NAN);
    // 50 Hz hum of 30 µV.
    let hum: Vec<f32> = clean
        .iter()
        .enumerate()
        .map(|(i, x)| x + (30.0 * (2.0 * PI * 50.0 * i as f64 / RATE).sin()) as f32)
        .collect();
    // Electrode pop: 1 s offset of 800 µV, outside the EEG default ±500 µV.
    let mut pop = clean.clone();
    pop[at(4.0)..at(5.0)].iter_mut().for_each(|x| *x += 800.0);
    for (data, bit) in [
        (&flat, quality::FLAT),
        (&clipped, quality::CLIPPING),
        (&nan, quality::NAN),
        (&hum, quality::LINE_NOISE),
        (&pop, quality::OUT_OF_RANGE),
    ] {
        let records = quality_records(data, QualityConfig::default());
        // The window 3.5-5.5 s holds each local fault; 0-2 s holds none
        // (the whole-signal faults, clipping and hum, are everywhere).
        assert_eq!(reasons_at(&records, 3.5), bit, "fault {bit}");
        let whole = bit == quality::CLIPPING || bit == quality::LINE_NOISE;
        assert_eq!(
            reasons_at(&records, 0.0),
            if whole { bit } else { 0 },
            "fault {bit} at 0 s"
        );
        let flagged = records
            .iter()
            .find(|r| r.start_ns == 5_000_000_000 + 3_500_000_000);
        assert_eq!(flagged.map(|r| value(r, "ok")), Some(0.0));
    }
    // The values themselves: 1 s flat in a 2 s window is half of it.
    let records = quality_records(&flat, QualityConfig::default());
    let r = records
        .iter()
        .find(|r| r.start_ns == 5_000_000_000 + 3_500_000_000);
    assert_eq!(r.map(|r| value(r, "flat_fraction")), Some(0.5));
    let records = quality_records(&nan, QualityConfig::default());
    let r = records
        .iter()
        .find(|r| r.start_ns == 5_000_000_000 + 3_500_000_000);
    assert_eq!(r.map(|r| value(r, "nan_fraction")), Some(0.25));
    assert!(r.is_some_and(|r| value(r, "line_noise_ratio").is_nan()));
}

#[test]
fn a_yaml_clip_range_counts_samples_at_the_rails() {
    let x: Vec<f64> = vec![-100.0, -99.5, 0.0, 3.0, 99.0, 100.0, 100.0, 7.0];
    assert_eq!(quality::clipped_samples(&x, Some((-100.0, 100.0)), 0.5), 4);
    assert_eq!(quality::clipped_samples(&x, None, 0.0), 1);
    assert_eq!(quality::flat_samples(&[1.0, 1.0, 1.0, 2.0, 2.0, 3.0], 0.0, 3), 3);
    assert_eq!(quality::flat_samples(&[1.0, 1.0, 1.0, 2.0, 2.0, 3.0], 0.0, 2), 5);
}

#[test]
fn quality_records_do_not_depend_on_frame_size() {
    let mut data = eeg(256 * 6, RATE, 3);
    data[700..760].iter_mut().for_each(|x| *x = f32::NAN);
    let whole = {
        let mut op = SignalQuality::new(WindowConfig::new(2.0, 0.25), QualityConfig::default());
        run(
            &mut op,
            std::slice::from_ref(&data),
            RATE,
            data.len(),
            Modality::Eeg,
            "uV",
        )
    };
    assert_eq!(whole.len(), 17);
    for frame in [1, 7, 10] {
        let mut op = SignalQuality::new(WindowConfig::new(2.0, 0.25), QualityConfig::default());
        let framed = run(
            &mut op,
            std::slice::from_ref(&data),
            RATE,
            frame,
            Modality::Eeg,
            "uV",
        );
        assert_eq!(format!("{framed:?}"), format!("{whole:?}"), "frame {frame}");
    }
}

#[test]
fn the_quality_gate_drops_flagged_windows_only() {
    let clean = eeg(256 * 10, RATE, 4);
    let mut flat = clean.clone();
    flat[1024..1280].iter_mut().for_each(|x| *x = 1.0);
    let data = vec![clean, flat];
    let windows = WindowConfig {
        quality_gate: Some(QualityConfig::default()),
        ..WindowConfig::new(2.0, 0.25)
    };
    let mut gated = TimeFeatures::new(windows, TimeFeaturesConfig::default());
    let records = run(&mut gated, &data, RATE, 10, Modality::Eeg, "uV");
    let mut ungated = TimeFeatures::new(WindowConfig::new(2.0, 0.25), TimeFeaturesConfig::default());
    let all = run(&mut ungated, &data, RATE, 10, Modality::Eeg, "uV");
    assert_eq!(all.len(), 66);
    // Channel 1's windows overlapping the flat second (4-5 s), at least
    // 0.2 s of it (flat_fraction > 0.1), are gone: starts 2.25..=4.75 s.
    let c1 = |r: &&Record| r.values.name(0).starts_with("C1.");
    let dropped: Vec<i64> = all
        .iter()
        .filter(c1)
        .filter(|r| !records.contains(r))
        .map(|r| (r.start_ns - 5_000_000_000) / 250_000_000)
        .collect();
    assert_eq!(dropped, (9..=19).collect::<Vec<i64>>());
    assert_eq!(
        records
            .iter()
            .filter(|r| r.values.name(0).starts_with("C0."))
            .count(),
        33
    );
    assert!(records.iter().all(|r| all.contains(r)));
}

#[test]
fn across_channels_merges_each_window_into_one_record() {
    let data = vec![
        eeg(256 * 4, RATE, 5),
        eeg(256 * 4, RATE, 6),
        eeg(256 * 4, RATE, 7),
    ];
    let per_channel = {
        let mut op = TimeFeatures::new(WindowConfig::new(2.0, 0.25), TimeFeaturesConfig::default());
        run(&mut op, &data, RATE, 7, Modality::Eeg, "uV")
    };
    for frame in [1, 7, data[0].len()] {
        let windows = WindowConfig {
            across_channels: true,
            ..WindowConfig::new(2.0, 0.25)
        };
        let mut op = TimeFeatures::new(windows, TimeFeaturesConfig::default());
        let merged = run(&mut op, &data, RATE, frame, Modality::Eeg, "uV");
        assert_eq!(merged.len(), 9, "frame {frame}");
        for (w, m) in merged.iter().enumerate() {
            let expected: Values = per_channel[w * 3..w * 3 + 3]
                .iter()
                .flat_map(|r| r.values.iter().map(|(n, v)| (n.clone(), v)))
                .collect();
            assert_eq!(m.values, expected);
        }
    }
}

#[test]
fn time_features_of_known_signals() {
    // 10 Hz sine of amplitude 10 at 256 Hz over 2 s.
    let sine: Vec<f32> = (0..512)
        .map(|i| (10.0 * (2.0 * PI * 10.0 * i as f64 / RATE).sin()) as f32)
        .collect();
    let mut op = TimeFeatures::new(WindowConfig::new(2.0, 0.25), TimeFeaturesConfig::default());
    let r = &run(&mut op, &[sine], RATE, 512, Modality::Eeg, "uV")[0];
    assert!((value(r, "rms") - 10.0 / 2f64.sqrt()).abs() < 1e-3);
    assert!((value(r, "activity") - 50.0).abs() < 0.1);
    // Hjorth mobility of a sine: 2 sin(πf/fs) ≈ ω/fs per sample.
    let mobility = 2.0 * (PI * 10.0 / RATE).sin();
    assert!(
        (value(r, "mobility") - mobility).abs() < 1e-3,
        "{}",
        value(r, "mobility")
    );
    // 1 for an infinite sine; the differenced sequences (511 and 510
    // samples) are not whole periods, which costs about 0.4 % here. The
    // exact values are checked against numpy in engine/tests.
    assert!(
        (value(r, "complexity") - 1.0).abs() < 1e-2,
        "complexity {}",
        value(r, "complexity")
    );
    // 20 periods: 40 sign changes (the first sample is 0, the mean ≈ 0).
    assert!((value(r, "zero_crossings") - 40.0).abs() <= 1.0);
    assert_eq!(value(r, "bsr"), 0.0);

    // Burst suppression: 1 s of 2 µV noise between bursts; a 0.3 s quiet
    // stretch is too short to count.
    let mut x: Vec<f32> = eeg(512, RATE, 8).iter().map(|v| v * 3.0).collect();
    let quiet = noise(512, 9);
    for i in 64..320 {
        x[i] = (2.0 * quiet[i]) as f32;
    }
    for i in 400..477 {
        x[i] = (2.0 * quiet[i]) as f32;
    }
    let mut op = TimeFeatures::new(WindowConfig::new(2.0, 0.25), TimeFeaturesConfig::default());
    let r = &run(&mut op, &[x], RATE, 512, Modality::Eeg, "uV")[0];
    let bsr = value(r, "bsr");
    assert!((0.5..0.53).contains(&bsr), "bsr {bsr}");
}

#[test]
fn time_features_do_not_depend_on_frame_size() {
    let data = vec![eeg(256 * 5, RATE, 10), eeg(256 * 5, RATE, 11)];
    let mut op = TimeFeatures::new(WindowConfig::new(2.0, 0.25), TimeFeaturesConfig::default());
    let whole = run(&mut op, &data, RATE, data[0].len(), Modality::Eeg, "uV");
    assert_eq!(whole.len(), 26);
    for frame in [1, 7, 10] {
        let mut op = TimeFeatures::new(WindowConfig::new(2.0, 0.25), TimeFeaturesConfig::default());
        assert_eq!(
            run(&mut op, &data, RATE, frame, Modality::Eeg, "uV"),
            whole,
            "frame {frame}"
        );
    }
}

const AUDIO_RATE: f64 = 16_000.0;

fn audio(x: &[f32], frame: usize) -> Vec<Record> {
    let mut op = AudioFeatures::new(AudioFeatures::default_windows(), AudioConfig::default());
    run(&mut op, &[x.to_vec()], AUDIO_RATE, frame, Modality::Audio, "")
}

fn tone(freq: f64, amplitude: f64, seconds: f64) -> Vec<f32> {
    (0..(seconds * AUDIO_RATE) as usize)
        .map(|i| (amplitude * (2.0 * PI * freq * i as f64 / AUDIO_RATE).sin()) as f32)
        .collect()
}

#[test]
fn a_tone_has_its_centroid_level_and_mel_band() {
    for freq in [440.0, 1000.0, 3000.0] {
        let records = audio(&tone(freq, 0.5, 0.2), 160);
        // 25 ms windows every 10 ms over 200 ms: 1 + 17.
        assert_eq!(records.len(), 18);
        for r in &records {
            let centroid = value(r, "centroid_hz");
            assert!(
                (centroid - freq).abs() < 0.05 * freq,
                "{freq} Hz: centroid {centroid}"
            );
            // A 0.5 sine: RMS 0.354, -9.03 dBFS.
            assert!((value(r, "dbfs") - (-9.03)).abs() < 0.05, "{}", value(r, "dbfs"));
            let mels: Vec<f64> = (0..40).map(|b| value(r, &format!("mel{b:02}"))).collect();
            let peak = mels
                .iter()
                .enumerate()
                .fold(0, |best, (b, &v)| if v > mels[best] { b } else { best });
            // The peak band's triangle spans the tone.
            let step = hz_to_mel(8000.0) / 41.0;
            let (lo, hi) = (mel_to_hz(step * peak as f64), mel_to_hz(step * (peak + 2) as f64));
            assert!(
                lo <= freq && freq <= hi,
                "{freq} Hz peaks in band {peak} ({lo}-{hi} Hz)"
            );
        }
    }
    let silent = audio(&vec![0.0; 1600], 1600);
    assert!(silent
        .iter()
        .all(|r| value(r, "dbfs") == -200.0 && value(r, "centroid_hz").is_nan()));
}

#[test]
fn audio_records_do_not_depend_on_frame_size() {
    let x: Vec<f32> = noise(8000, 12).iter().map(|v| (0.3 * v) as f32).collect();
    let whole = audio(&x, x.len());
    assert_eq!(whole.len(), 48);
    for frame in [1, 7, 640] {
        assert_eq!(
            format!("{:?}", audio(&x, frame)),
            format!("{whole:?}"),
            "frame {frame}"
        );
    }
}

#[test]
fn the_gate_forgets_its_spectra_at_a_discontinuity() {
    // 2 s with 50 Hz hum (one gated window), then a discontinuity and 2 s
    // of clean EEG: sample indices restart at 0, so the gate's Welch cache
    // must not serve the hum's segments for the clean window.
    let clean = eeg(512, RATE, 13);
    let hum: Vec<f32> = clean
        .iter()
        .enumerate()
        .map(|(i, x)| x + (40.0 * (2.0 * PI * 50.0 * i as f64 / RATE).sin()) as f32)
        .collect();
    let windows = WindowConfig {
        quality_gate: Some(QualityConfig::default()),
        ..WindowConfig::new(2.0, 0.25)
    };
    let mut op = BandPowers::with_windows(BandPowersConfig::eeg_default(), false, windows.quality_gate);
    let layout = layout(1, RATE, "uV");
    let mut out = Output::default();
    for (seq, (data, start_ns, gap)) in [(&hum, 0, false), (&clean, 60_000_000_000, true)]
        .into_iter()
        .enumerate()
    {
        let mut f = Frame::new(
            "s".into(),
            Modality::Eeg,
            layout.clone(),
            start_ns,
            seq as u64,
            vec![512],
            data.clone(),
        )
        .expect("frame");
        f.discontinuity = gap;
        op.process(Item::Frame(f), &mut out).expect("processed");
    }
    let records: Vec<Item> = out.drain().collect();
    assert_eq!(records.len(), 1, "the hum window is gated, the clean one is not");
    assert!(matches!(&records[0], Item::Record(r) if r.start_ns == 60_000_000_000));
}
