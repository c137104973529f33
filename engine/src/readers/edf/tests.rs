use std::io::Cursor;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

/// One signal of a synthetic file: label, unit, pmin, pmax, dmin, dmax, spr.
struct Sig(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u32,
);

fn pad(s: &str, width: usize) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.resize(width, b' ');
    b
}

/// A header for `sigs`, with patient and recording fields.
fn header(bdf: bool, reserved: &str, records: &str, duration: &str, sigs: &[Sig]) -> Vec<u8> {
    let mut h = if bdf { b"\xffBIOSEMI".to_vec() } else { pad("0", 8) };
    h.extend(pad("SECRET-PATIENT", 80));
    h.extend(pad("Startdate 02-MAR-2004 X X X", 80));
    h.extend(pad("02.03.04", 8));
    h.extend(pad("10.20.30", 8));
    h.extend(pad(&((sigs.len() + 1) * 256).to_string(), 8));
    h.extend(pad(reserved, 44));
    h.extend(pad(records, 8));
    h.extend(pad(duration, 8));
    h.extend(pad(&sigs.len().to_string(), 4));
    for (k, width) in [16, 80, 8, 8, 8, 8, 8, 80, 8, 32].into_iter().enumerate() {
        for sig in sigs {
            h.extend(pad(&column(sig, k), width));
        }
    }
    h
}

/// Per-signal header field `k` of a synthetic signal.
fn column(s: &Sig, k: usize) -> String {
    match k {
        0 => s.0.into(),
        2 => s.1.into(),
        3 => s.2.into(),
        4 => s.3.into(),
        5 => s.4.into(),
        6 => s.5.into(),
        8 => s.6.to_string(),
        _ => String::new(),
    }
}

fn reader(bytes: Vec<u8>) -> Result<EdfReader<Cursor<Vec<u8>>>, ReadError> {
    let len = bytes.len() as u64;
    EdfReader::new(PathBuf::from("t.edf"), Cursor::new(bytes), len)
}

fn i16s(values: &[i16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An annotation signal's bytes, NUL-padded to `len`.
fn tal(text: &[u8], len: usize) -> Vec<u8> {
    let mut b = text.to_vec();
    b.resize(len, 0);
    b
}

fn read_everything(r: &mut dyn RecordingReader) -> Result<Vec<Vec<f32>>, ReadError> {
    let mut out = vec![Vec::new(); r.header().signals.len()];
    while r.read_blocks(3, &mut out)? > 0 {}
    Ok(out)
}

#[test]
fn plain_edf_scaling_and_start_time() {
    let sigs = [
        Sig("A", "uV", "-100", "100", "-2048", "2047", 2),
        Sig("B", "mV", "0", "1", "0", "1000", 1),
    ];
    let mut bytes = header(false, "", "2", "0.5", &sigs);
    bytes.extend(i16s(&[-2048, 2047, 500, 0, 1, 1000]));
    let mut r = reader(bytes).expect("valid");
    let h = r.header().clone();
    assert_eq!(h.format, RecordingFormat::Edf);
    assert_eq!(
        (h.total_blocks, h.block_duration_s, h.samples_per_block.clone()),
        (2, 0.5, vec![2, 1])
    );
    assert_eq!(h.signals[0].sample_rate, 4.0);
    assert!((h.signals[0].resolution - 200.0 / 4095.0).abs() < 1e-12);
    assert_eq!(h.start_ns, civil_to_ns(2004, 3, 2, (10, 20, 30), 0));
    let out = read_everything(&mut r).expect("reads");
    let f = |d: f64| ((d + 2048.0) * 200.0 / 4095.0 - 100.0) as f32;
    assert_eq!(out[0], vec![-100.0, 100.0, f(0.0), f(1.0)]);
    assert_eq!(out[1], vec![0.5, 1.0]);
}

#[test]
fn bdf_24_bit_negative_values() {
    let sigs = [Sig("X", "uV", "-8388608", "8388607", "-8388608", "8388607", 2)];
    let mut bytes = header(true, "24BIT", "1", "1", &sigs);
    bytes.extend([0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x80]); // -1, -8388608
    let mut r = reader(bytes).expect("valid");
    assert_eq!(r.header().format, RecordingFormat::Bdf);
    assert_eq!(
        read_everything(&mut r).expect("reads")[0],
        vec![-1.0, -8_388_608.0]
    );
}

#[test]
fn edf_plus_d_gaps_become_nan_blocks_and_tals_annotations() {
    let sigs = [
        Sig("A", "uV", "0", "10", "0", "10", 2),
        Sig("EDF Annotations", "", "-1", "1", "-32768", "32767", 16),
    ];
    let mut bytes = header(false, "EDF+D", "2", "1", &sigs);
    bytes.extend(i16s(&[1, 2]));
    bytes.extend(tal(b"+0\x14\x14\0+0.5\x150.25\x14beat\x14\0", 32));
    bytes.extend(i16s(&[3, 4]));
    bytes.extend(tal(b"+3\x14\x14\0", 32));
    let mut r = reader(bytes).expect("valid");
    assert_eq!(r.header().format, RecordingFormat::EdfPlus);
    assert_eq!(r.header().signals.len(), 1, "annotation signal is not exposed");
    let out = read_everything(&mut r).expect("reads");
    assert_eq!(out[0][..2], [1.0, 2.0]);
    assert!(out[0][2..6].iter().all(|v| v.is_nan()));
    assert_eq!(out[0][6..], [3.0, 4.0]);
    let anns = r.take_annotations();
    assert_eq!(anns.len(), 1);
    assert_eq!(
        (anns[0].onset_ns, anns[0].duration_ns, anns[0].text.as_str()),
        (500_000_000, Some(250_000_000), "beat")
    );
    assert!(r.take_annotations().is_empty(), "drained");
}

#[test]
fn unknown_record_count_uses_file_size() {
    let sigs = [Sig("A", "uV", "0", "1", "0", "1", 1)];
    let mut bytes = header(false, "", "-1", "1", &sigs);
    bytes.extend(i16s(&[1, 0, 1]));
    bytes.push(7); // half a record: ignored
    assert_eq!(reader(bytes).expect("valid").header().total_blocks, 3);
}

fn expect_header_error(bytes: Vec<u8>, field: &str) {
    match reader(bytes) {
        Err(e @ ReadError::Header { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(field), "{msg}");
            assert!(msg.contains("t.edf"), "{msg}");
            assert!(!msg.contains("SECRET"), "{msg}");
        }
        Err(e) => panic!("expected a header error for {field}, got {e}"),
        Ok(_) => panic!("expected a header error for {field}"),
    }
}

#[test]
fn malformed_headers_are_typed_errors() {
    let sigs = [Sig("A", "uV", "0", "1", "0", "1", 1)];
    let good = header(false, "", "1", "1", &sigs);
    let patch = |at: usize, text: &str| {
        let mut b = good.clone();
        b[at..at + text.len()].copy_from_slice(text.as_bytes());
        b.extend(i16s(&[0]));
        b
    };
    expect_header_error(patch(252, "ab  "), "'number of signals' is not a number");
    expect_header_error(patch(252, "0   "), "number of signals");
    expect_header_error(patch(184, "999     "), "number of bytes in header record");
    expect_header_error(patch(244, "x       "), "duration of a data record");
    expect_header_error(patch(236, "-5      "), "number of data records");
    expect_header_error(patch(0, "1"), "version");
    // digital max (signal field 6) equal to digital min
    let sigs = [Sig("A", "uV", "0", "1", "5", "5", 1)];
    expect_header_error(
        [header(false, "", "1", "1", &sigs), i16s(&[0])].concat(),
        "signal 1 digital maximum",
    );
    let sigs = [Sig("A", "uV", "zz", "1", "0", "1", 1)];
    expect_header_error(
        [header(false, "", "1", "1", &sigs), i16s(&[0])].concat(),
        "signal 1 physical minimum",
    );
}

#[test]
fn truncation_is_a_typed_error() {
    let sigs = [Sig("A", "uV", "0", "1", "0", "1", 2)];
    let full = [header(false, "", "2", "1", &sigs), i16s(&[0, 1, 0, 1])].concat();
    assert!(matches!(
        reader(full[..100].to_vec()),
        Err(ReadError::Truncated { .. })
    ));
    assert!(matches!(
        reader(full[..300].to_vec()),
        Err(ReadError::Truncated { .. })
    ));
    let err = reader(full[..full.len() - 1].to_vec()).err().expect("short data");
    assert!(
        matches!(
            err,
            ReadError::Truncated {
                expected: 520,
                actual: 519,
                ..
            }
        ),
        "{err}"
    );
    // A source shorter than its announced length fails at read time.
    let len = full.len() as u64;
    let mut r =
        EdfReader::new(PathBuf::from("t.edf"), Cursor::new(full[..514].to_vec()), len).expect("header ok");
    assert!(matches!(
        read_everything(&mut r),
        Err(ReadError::Truncated { .. })
    ));
}

#[test]
fn wrong_output_count_is_an_error() {
    let sigs = [Sig("A", "uV", "0", "1", "0", "1", 1)];
    let mut r = reader([header(false, "", "1", "1", &sigs), i16s(&[0])].concat()).expect("valid");
    let mut out = vec![Vec::new(); 2];
    assert!(matches!(
        r.read_blocks(1, &mut out),
        Err(ReadError::OutputMismatch { expected: 1, got: 2 })
    ));
}

#[test]
fn malformed_tal_is_an_annotation_error() {
    let sigs = [Sig("EDF Annotations", "", "-1", "1", "-32768", "32767", 4)];
    let bytes = [
        header(false, "EDF+C", "1", "1", &sigs),
        tal(b"+0\x14\x14\0x\x14\0", 8),
    ]
    .concat();
    let mut r = reader(bytes).expect("valid header");
    let mut out: Vec<Vec<f32>> = Vec::new();
    assert!(matches!(
        r.read_blocks(1, &mut out),
        Err(ReadError::Annotation { offset: 517, .. })
    ));
}

/// The real EDF+ header with two data records, claiming two records.
fn real_prefix() -> Vec<u8> {
    let path = crate::shared_data::require("edf/eegmmidb-style-64ch-128hz.edf");
    let bytes = std::fs::read(path).expect("readable");
    let mut prefix = bytes[..16896 + 2 * 16512].to_vec();
    prefix[236..244].copy_from_slice(b"2       ");
    prefix
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random truncations and byte flips of a real header never panic.
    #[test]
    fn corrupted_real_header_never_panics(
        cut in 0usize..(16896 + 2 * 16512),
        flips in proptest::collection::vec((0usize..16896, any::<u8>()), 0..8),
    ) {
        let mut bytes = real_prefix();
        for (at, value) in flips {
            bytes[at] = value;
        }
        bytes.truncate(cut.max(1));
        if let Ok(mut r) = reader(bytes) {
            let _ = read_everything(&mut r);
            let _ = r.take_annotations();
        }
    }
}

#[test]
fn real_prefix_is_valid() {
    let mut r = reader(real_prefix()).expect("valid");
    let out = read_everything(&mut r).expect("reads");
    assert_eq!(out.len(), 64);
    assert_eq!(out[0].len(), 256);
    assert!(!r.take_annotations().is_empty());
}
