//! The Welch band-power features against SciPy, on real EEG.
//!
//! References come from `scripts/make_feature_references.py` (numpy + scipy,
//! not run in CI) under `tests/reference/features/`: every 2 s / 250 ms
//! window of four channels of the 64-channel EEG, read by our readers as the
//! script read them, with `scipy.signal.welch` + the integration rule of
//! docs/features.md. Checked here:
//! - accuracy: every value of every record within 1e-4 relative of SciPy's;
//! - framing: records identical for 1, 7 and 40 ms frames from the file
//!   source and for the whole excerpt in one frame;
//! - gaps: no record's window contains a NaN sample.

mod features_common;

use features_common::{assert_framing_invariant, names, number, reference, run, whole_excerpt};
use serde_json::Value;
use sigfab_operators::features::{Band, BandPowers, BandPowersConfig};
use sigfab_operators::Record;

/// Largest relative difference allowed against SciPy.
const MAX_RELATIVE_ERROR: f64 = 1e-4;
const REFERENCE: &str = "band_powers.json";

/// The operator configured as the script computed.
fn operator(meta: &Value) -> BandPowers {
    let bands = meta["bands"]
        .as_array()
        .expect("bands")
        .iter()
        .map(|b| {
            Band::new(
                b["name"].as_str().expect("band name"),
                number(&b["hz"][0]),
                number(&b["hz"][1]),
            )
        })
        .collect();
    BandPowers::new(BandPowersConfig {
        window_s: number(&meta["window_s"]),
        hop_s: number(&meta["hop_s"]),
        segment_s: number(&meta["segment_s"]),
        bands,
        edge_range_hz: None,
        channels: Some(names(&meta["channels"])),
    })
}

#[test]
fn band_powers_equal_scipy_welch_on_real_eeg() {
    let meta = reference(REFERENCE);
    let records = run(&mut operator(&meta), [whole_excerpt(&meta)]);
    let channels = names(&meta["channels"]);
    let value_names = names(&meta["names"]);
    let windows = meta["window_starts"].as_array().expect("starts").len();
    assert_eq!(records.len(), channels.len() * windows);
    let mut worst: f64 = 0.0;
    for (c, channel) in channels.iter().enumerate() {
        // Channel names end in dots ("Cz.."), so match on the full prefix.
        let ours: Vec<&Record> = records
            .iter()
            .filter(|r| r.values.name(0).starts_with(&format!("{channel}.")))
            .collect();
        assert_eq!(ours.len(), windows, "{channel}");
        for (w, record) in ours.iter().enumerate() {
            let start =
                meta["window_starts"][w].as_u64().expect("start") as f64 / number(&meta["sample_rate"]);
            assert_eq!(record.start_ns, (start * 1e9).round() as i64);
            assert_eq!(record.end_ns - record.start_ns, 2_000_000_000);
            for (v, name) in value_names.iter().enumerate() {
                let (ours_name, ours) = record.values.get(v).expect("value");
                assert_eq!(&**ours_name, format!("{channel}.{name}"));
                let theirs = number(&meta["values"][c][w][v]);
                let error = (ours - theirs).abs() / theirs.abs().max(1e-300);
                worst = worst.max(error);
                assert!(
                    error <= MAX_RELATIVE_ERROR,
                    "{channel} window {w} {name}: {ours} vs {theirs}"
                );
            }
            assert_eq!(
                record.values.last().map(|(n, v)| (n.ends_with(".latency_s"), v)),
                Some((true, 2.0))
            );
        }
    }
    eprintln!("worst relative error against SciPy: {worst:.2e}");
}

#[test]
fn records_are_the_same_for_any_framing() {
    assert_framing_invariant(&reference(REFERENCE), |meta| Box::new(operator(meta)));
}

#[test]
fn no_window_contains_a_nan() {
    let meta = reference(REFERENCE);
    let mut frame = whole_excerpt(&meta);
    let len = frame.counts()[0] as usize;
    // Gaps in channel 1 at 3.1 s and channel 2 at 5 s and 5.5 s.
    let rate = frame.layout.channels[0].sample_rate;
    let gaps = [
        (1, (3.1 * rate) as usize),
        (2, (5.0 * rate) as usize),
        (2, (5.5 * rate) as usize),
    ];
    for &(c, i) in &gaps {
        frame.channel_mut(c)[i] = f32::NAN;
    }
    let records = run(&mut operator(&meta), [frame.clone()]);
    let names = names(&meta["channels"]);
    for record in &records {
        let c = names
            .iter()
            .position(|n| record.values.name(0).starts_with(&format!("{n}.")))
            .expect("channel");
        let first = (record.start_ns as f64 * rate / 1e9).round() as usize;
        let last = (record.end_ns as f64 * rate / 1e9).round() as usize;
        assert!(last <= len);
        assert!(
            frame.channel(c)[first..last].iter().all(|x| !x.is_nan()),
            "window spans a gap"
        );
        assert!(record.values.iter().all(|(_, v)| v.is_finite()));
    }
    let per_channel = |c: usize| {
        records
            .iter()
            .filter(|r| r.values.name(0).starts_with(&format!("{}.", names[c])))
            .count()
    };
    assert!(per_channel(1) < per_channel(0) && per_channel(2) < per_channel(1));
}
