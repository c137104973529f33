//! Wire format tests: round trips, the documented example bytes, one
//! crafted input per error, and robustness against truncation, bit flips and
//! random bytes.

use std::sync::Arc;

use proptest::prelude::*;
use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, FrameError, Item, Modality, Record};

use super::*;

// ---------------------------------------------------------------- fixtures

fn spec(name: &str, unit: &str, sample_rate: f64) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        unit: unit.into(),
        sample_rate,
    }
}

fn frame(specs: Vec<ChannelSpec>, counts: Vec<u32>, samples: Vec<f32>) -> Frame {
    let layout = Arc::new(ChannelLayout::new(specs));
    Frame::new(
        "bed-1".into(),
        Modality::Ecg,
        layout,
        1_700_000_000_000_000_000,
        7,
        counts,
        samples,
    )
    .expect("valid test frame")
}

/// Multi-rate (WFDB-style non-integer rates), NaN gaps, unicode, metadata.
fn rich_frame() -> Frame {
    let mut f = frame(
        vec![
            spec("II", "mV", 249.89),
            spec("ABP µ", "mmHg", 124.945),
            spec("Fp1–F7 ✓", "µV", 256.0),
        ],
        vec![10, 5, 0],
        (0..15)
            .map(|i| {
                if i % 4 == 3 {
                    f32::NAN
                } else {
                    i as f32 * 0.1 - 0.7
                }
            })
            .collect(),
    );
    f.discontinuity = true;
    f.metadata = vec![
        ("site".into(), "icu-3".into()),
        ("note\n\"q\"".into(), "Zoë \u{1}\\".into()),
    ]
    .into();
    f
}

/// The frame shown in docs/wire-format.md.
fn doc_frame() -> Frame {
    let mut f = frame(
        vec![spec("II", "mV", 250.0), spec("ABP", "mmHg", 125.0)],
        vec![2, 1],
        vec![0.5, -1.0, f32::NAN],
    );
    f.discontinuity = true;
    f.metadata = vec![("site".into(), "icu-3".into())].into();
    f
}

fn record() -> Record {
    Record {
        stream_id: "bed-1".into(),
        sequence: 42,
        kind: "frame_stats".into(),
        start_ns: -5,
        end_ns: 40_000_000,
        values: vec![
            ("II.rms".into(), 0.25),
            ("ABP.mean".into(), f64::NAN),
            ("ñ".into(), -1e300),
        ]
        .into(),
        labels: Vec::new(),
    }
}

/// A record with quasi-identifier labels (flags bit 0, labels section).
fn labelled_record() -> Record {
    Record {
        labels: vec![
            ("age_band".into(), "60-69".into()),
            ("unit".into(), "ICU-é".into()),
            ("age_band".into(), "".into()),
        ],
        ..record()
    }
}

/// A one-channel frame with known offsets, for crafting corrupt inputs:
/// 12 stream id len, 14 "s", 15 modality, 16 start_ns, 24 sequence,
/// 32 channel count, 34 name len, 36 "c", 37 unit len, 39 "u", 40 rate,
/// 48 sample count, 52 sample, 56 metadata count, 58 CRC; 62 bytes in all.
fn tiny_binary() -> Vec<u8> {
    let layout = Arc::new(ChannelLayout::new(vec![spec("c", "u", 1.0)]));
    let f = Frame::new("s".into(), Modality::Ecg, layout, 0, 0, vec![1], vec![0.0]).expect("valid");
    let mut out = Vec::new();
    encode_frame_binary(&f, &mut out);
    assert_eq!(out.len(), 62);
    out
}

fn tiny_record_binary() -> Vec<u8> {
    let r = Record {
        stream_id: "s".into(),
        sequence: 0,
        kind: "k".into(),
        start_ns: 0,
        end_ns: 0,
        values: vec![("x".into(), 1.0)].into(),
        labels: Vec::new(),
    };
    let mut out = Vec::new();
    encode_record_binary(&r, &mut out);
    out
}

/// Rewrites the CRC after a deliberate edit, so the decoder gets past it.
fn reseal(bytes: &mut [u8]) {
    let end = bytes.len() - CRC_LEN;
    let crc = crc32c::crc32c(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
}

fn patch(mut bytes: Vec<u8>, offset: usize, new: &[u8]) -> Vec<u8> {
    bytes[offset..offset + new.len()].copy_from_slice(new);
    reseal(&mut bytes);
    bytes
}

fn to_vec(item: &Item, encoding: Encoding) -> Vec<u8> {
    let mut out = Vec::new();
    encode(item, encoding, &mut out);
    out
}

fn round_trip(item: &Item, encoding: Encoding) -> Item {
    decode(&to_vec(item, encoding), encoding).expect("round trip decodes")
}

fn json_err(text: &str) -> WireError {
    decode_json(text.as_bytes()).expect_err("must be rejected")
}

// ---------------------------------------------------------------- round trips

#[test]
fn binary_round_trip_keeps_every_bit() {
    for item in [
        Item::Frame(rich_frame()),
        Item::Frame(doc_frame()),
        Item::Record(record()),
        Item::Record(labelled_record()),
    ] {
        assert!(same_bits(&item, &round_trip(&item, Encoding::Binary)));
    }
}

#[test]
fn json_round_trip_keeps_every_bit() {
    for item in [
        Item::Frame(rich_frame()),
        Item::Frame(doc_frame()),
        Item::Record(record()),
        Item::Record(labelled_record()),
    ] {
        assert!(same_bits(&item, &round_trip(&item, Encoding::Json)));
    }
}

#[test]
fn empty_frames_round_trip() {
    let empty = Item::Frame(frame(vec![], vec![], vec![]));
    let silent = Item::Frame(frame(vec![spec("", "", 1e-3)], vec![0], vec![]));
    for item in [empty, silent] {
        for encoding in [Encoding::Binary, Encoding::Json] {
            assert!(same_bits(&item, &round_trip(&item, encoding)));
        }
    }
}

#[test]
fn nan_gaps_are_json_nulls() {
    let item = Item::Frame(frame(
        vec![spec("a", "mV", 1.0)],
        vec![3],
        vec![1.5, f32::NAN, -0.0],
    ));
    let text = String::from_utf8(to_vec(&item, Encoding::Json)).expect("utf-8");
    assert!(text.contains("\"samples\":[1.5,null,-0.0]"), "{text}");
    assert!(same_bits(&item, &round_trip(&item, Encoding::Json)));
}

#[test]
fn json_writes_infinity_as_null() {
    let item = Item::Frame(frame(vec![spec("a", "mV", 1.0)], vec![1], vec![f32::INFINITY]));
    let Item::Frame(back) = round_trip(&item, Encoding::Json) else {
        panic!("not a frame")
    };
    assert!(back.samples()[0].is_nan());
}

#[test]
fn extreme_floats_survive_json() {
    let samples = vec![f32::MAX, f32::MIN_POSITIVE, 1e-45, -3.4e-39, 0.1, 16_777_217.0];
    let n = samples.len() as u32;
    let item = Item::Frame(frame(vec![spec("a", "mV", 1e-300)], vec![n], samples));
    assert!(same_bits(&item, &round_trip(&item, Encoding::Json)));
}

#[test]
fn encode_appends() {
    let item = Item::Record(record());
    let mut out = b"prefix".to_vec();
    encode(&item, Encoding::Json, &mut out);
    assert!(out.starts_with(b"prefix{"));
    assert!(out.ends_with(b"}"), "no trailing newline");
    let mut out = b"xy".to_vec();
    encode(&item, Encoding::Binary, &mut out);
    assert!(same_bits(&item, &decode_binary(&out[2..]).expect("decodes")));
    assert_eq!(out.len() as u64 - 2, encoded_binary_len(&item));
}

// ---------------------------------------------------------------- the documented example

/// Hex dump lines `OOOO: xx xx ...`, 16 bytes a line, as in the doc.
fn hex_dump(bytes: &[u8]) -> String {
    let mut text = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&format!("{:04x}: {}\n", i * 16, hex.join(" ")));
    }
    text
}

/// The fenced block after `<!-- marker -->` in docs/wire-format.md.
fn doc_block(marker: &str) -> String {
    let doc = include_str!("../../../docs/wire-format.md");
    let start = doc.find(&format!("<!-- {marker} -->")).expect("marker in doc");
    let rest = &doc[start..];
    let open = rest.find("```").expect("opening fence");
    let body = &rest[open..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    body[..body.find("```").expect("closing fence")].to_string()
}

#[test]
fn doc_hex_example_is_what_the_encoder_writes() {
    let mut out = Vec::new();
    encode_frame_binary(&doc_frame(), &mut out);
    assert_eq!(
        doc_block("example:frame-hex"),
        hex_dump(&out),
        "regenerate the doc example"
    );
    assert_eq!(out.len(), 112);
    assert!(same_bits(
        &Item::Frame(doc_frame()),
        &decode_binary(&out).expect("decodes")
    ));
}

#[test]
fn doc_json_examples_are_what_the_encoder_writes() {
    let text = String::from_utf8(to_vec(&Item::Frame(doc_frame()), Encoding::Json)).expect("utf-8");
    assert_eq!(doc_block("example:frame-json").trim_end(), text);
    let mut r = record();
    r.values.truncate(2);
    let text = String::from_utf8(to_vec(&Item::Record(r), Encoding::Json)).expect("utf-8");
    assert_eq!(doc_block("example:record-json").trim_end(), text);
    let mut r = labelled_record();
    r.values.truncate(1);
    r.labels.truncate(2);
    let text = String::from_utf8(to_vec(&Item::Record(r), Encoding::Json)).expect("utf-8");
    assert_eq!(doc_block("example:labelled-record-json").trim_end(), text);
}

/// The labels section sits after the values and is there exactly when
/// flags bit 0 is set; a record without labels encodes as before.
#[test]
fn record_labels_section_layout_and_errors() {
    let plain = tiny_record_binary();
    let labelled = Record {
        labels: vec![("sex".into(), "F".into())],
        ..match decode_binary(&plain) {
            Ok(Item::Record(r)) => r,
            other => panic!("record expected, got {other:?}"),
        }
    };
    let bytes = to_vec(&Item::Record(labelled.clone()), Encoding::Binary);
    assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), 1, "flags bit 0");
    // Same bytes as the plain record up to its CRC, then count, key, value.
    let body_end = plain.len() - CRC_LEN;
    assert_eq!(&bytes[12..body_end], &plain[12..body_end]);
    assert_eq!(
        &bytes[body_end..bytes.len() - CRC_LEN],
        &[1, 0, 3, 0, b's', b'e', b'x', 1, 0, b'F']
    );
    assert_eq!(encoded_binary_len(&Item::Record(labelled)), bytes.len() as u64);
    // The flag with a zero count is refused (one encoding per record).
    let mut empty = plain[..body_end].to_vec();
    empty[6] = 1;
    empty.extend_from_slice(&[0, 0]);
    let len = (empty.len() + CRC_LEN) as u32;
    empty[8..12].copy_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c(&empty);
    empty.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        decode_binary(&empty).expect_err("empty labels"),
        WireError::EmptyLabels
    );
    // JSON: labels on a frame are refused; too many are refused.
    let frame_with_labels = json_with(r#""channels""#, r#""labels":{"a":"b"},"channels""#);
    assert!(decode_json(frame_with_labels.as_bytes()).is_err());
    let many: Vec<String> = (0..1025).map(|i| format!(r#""k{i}":"v""#)).collect();
    let text = format!(
        r#"{{"v":1,"type":"record","stream_id":"s","kind":"k","start_ns":0,"end_ns":0,"sequence":0,"values":{{}},"labels":{{{}}}}}"#,
        many.join(",")
    );
    assert_eq!(
        json_err(&text),
        WireError::TooManyLabels {
            count: 1025,
            max: 1024
        }
    );
}

#[test]
fn doc_string_timestamp_example_decodes() {
    let text = doc_block("example:js-frame-json");
    let Ok(Item::Frame(f)) = decode_json(text.as_bytes()) else {
        panic!("decodes")
    };
    assert_eq!(
        (f.start_ns, f.modality, f.samples()),
        (1_700_000_000_000_000_000, Modality::Spo2, &[97.0][..])
    );
}

#[test]
fn crc32c_check_value_matches_doc() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

// ---------------------------------------------------------------- binary errors, one crafted input each

#[test]
fn binary_errors() {
    use WireError::*;
    let tiny = tiny_binary();
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        (
            tiny[..5].to_vec(),
            Truncated {
                field: "message type",
                offset: 5,
                needed: 1,
                available: 0,
            },
        ),
        (
            tiny[..61].to_vec(),
            Truncated {
                field: "message",
                offset: 0,
                needed: 62,
                available: 61,
            },
        ),
        (patch(tiny.clone(), 0, b"SGFX"), BadMagic { found: *b"SGFX" }),
        (patch(tiny.clone(), 4, &[2]), UnsupportedVersion { version: 2 }),
        (patch(tiny.clone(), 5, &[3]), UnknownMessageType { code: 3 }),
        (patch(tiny.clone(), 6, &[2, 0]), UnknownFlags { flags: 2 }),
        (patch(tiny_record_binary(), 6, &[2, 0]), UnknownFlags { flags: 2 }),
        (
            patch(tiny.clone(), 8, &(64u32 << 20 | 1).to_le_bytes()),
            MessageTooLarge {
                len: (64 << 20) + 1,
                max: 64 << 20,
            },
        ),
        (
            patch(tiny.clone(), 8, &15u32.to_le_bytes()),
            MessageTooShort {
                declared: 15,
                min: 16,
            },
        ),
        ([tiny.clone(), vec![0]].concat(), TrailingBytes { count: 1 }),
        (
            patch(tiny.clone(), 14, &[0xff]),
            InvalidUtf8 { field: "stream id" },
        ),
        (patch(tiny.clone(), 15, &[99]), UnknownModality { code: 99 }),
        (
            patch(tiny.clone(), 12, &1025u16.to_le_bytes()),
            StringTooLong {
                field: "stream id",
                len: 1025,
                max: 1024,
            },
        ),
        (
            patch(tiny.clone(), 32, &4097u16.to_le_bytes()),
            TooManyChannels {
                count: 4097,
                max: 4096,
            },
        ),
        (
            patch(tiny.clone(), 56, &1025u16.to_le_bytes()),
            TooManyMetadata {
                count: 1025,
                max: 1024,
            },
        ),
        (
            patch(tiny.clone(), 40, &0f64.to_le_bytes()),
            BadSampleRate { channel: 0 },
        ),
        (
            patch(tiny.clone(), 40, &(-1f64).to_le_bytes()),
            BadSampleRate { channel: 0 },
        ),
        (
            patch(tiny.clone(), 40, &f64::NAN.to_le_bytes()),
            BadSampleRate { channel: 0 },
        ),
        (
            patch(tiny.clone(), 40, &f64::INFINITY.to_le_bytes()),
            BadSampleRate { channel: 0 },
        ),
        // One sample declared more than the body holds.
        (
            patch(tiny.clone(), 48, &2u32.to_le_bytes()),
            Truncated {
                field: "samples",
                offset: 52,
                needed: 8,
                available: 6,
            },
        ),
        // A huge sample count fails before anything is allocated.
        (
            patch(tiny.clone(), 48, &u32::MAX.to_le_bytes()),
            Truncated {
                field: "samples",
                offset: 52,
                needed: 4 * u32::MAX as usize,
                available: 6,
            },
        ),
        // One sample fewer: the last 4 body bytes are left over.
        (
            patch(tiny.clone(), 48, &0u32.to_le_bytes()),
            TrailingBytes { count: 4 },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode_binary(&bytes), Err(expected));
    }
}

#[test]
fn binary_checksum_and_value_count_errors() {
    let mut bytes = tiny_binary();
    bytes[20] ^= 1;
    assert!(matches!(
        decode_binary(&bytes),
        Err(WireError::ChecksumMismatch { .. })
    ));
    // Record value count at 12 + 3 + 3 + 24.
    let bytes = patch(tiny_record_binary(), 42, &65_537u32.to_le_bytes());
    assert_eq!(
        decode_binary(&bytes),
        Err(WireError::TooManyValues {
            count: 65_537,
            max: 65_536
        })
    );
}

#[test]
fn over_limit_items_encode_into_rejected_messages() {
    let mut long = doc_frame();
    long.stream_id = "x".repeat(70_000).into();
    let mut many = doc_frame();
    many.metadata = vec![("k".into(), "v".into()); 70_000].into();
    let cases = [
        (
            long,
            "stream id is 70000 bytes long; the limit is 1024",
            "stream id is 65535 bytes",
        ),
        (
            many,
            "70000 metadata entries; the limit is 1024",
            "65535 metadata entries",
        ),
    ];
    for (frame, check, decoded) in cases {
        let item = Item::Frame(frame);
        assert_eq!(
            check_limits(&item).map_err(|e| e.to_string()),
            Err(check.to_string())
        );
        let err = decode_binary(&to_vec(&item, Encoding::Binary)).expect_err("rejected");
        assert!(err.to_string().starts_with(decoded), "{err}");
    }
    assert_eq!(check_limits(&Item::Frame(rich_frame())), Ok(()));
    assert_eq!(check_limits(&Item::Record(record())), Ok(()));
}

#[test]
fn check_limits_reports_a_layout_that_does_not_match_the_counts() {
    let mut f = doc_frame();
    f.layout = Arc::new(ChannelLayout::new(vec![spec("a", "mV", 1.0)]));
    assert_eq!(
        check_limits(&Item::Frame(f)),
        Err(WireError::Frame(FrameError::CountsMismatch {
            counts: 2,
            channels: 1
        }))
    );
}

#[test]
fn a_layout_that_does_not_match_the_counts_still_encodes_well_formed() {
    let mut longer = doc_frame();
    let mut specs = longer.layout.channels.clone();
    specs.push(spec("extra", "mV", 1.0));
    longer.layout = Arc::new(ChannelLayout::new(specs));
    let mut shorter = doc_frame();
    shorter.layout = Arc::new(ChannelLayout::new(vec![spec("II", "mV", 250.0)]));
    for (f, counts) in [(longer, &[2, 1, 0][..]), (shorter, &[2][..])] {
        let item = Item::Frame(f);
        for encoding in [Encoding::Binary, Encoding::Json] {
            let bytes = to_vec(&item, encoding);
            let Ok(Item::Frame(back)) = decode(&bytes, encoding) else {
                panic!("decodes")
            };
            assert_eq!(back.counts(), counts);
            assert_eq!(
                encoding == Encoding::Binary,
                bytes.len() as u64 == encoded_binary_len(&item)
            );
        }
    }
}

#[test]
fn split_binary_walks_a_stream() {
    let items = [
        Item::Frame(rich_frame()),
        Item::Record(record()),
        Item::Frame(doc_frame()),
    ];
    let stream: Vec<u8> = items.iter().flat_map(|i| to_vec(i, Encoding::Binary)).collect();
    let mut rest = stream.as_slice();
    let mut decoded = Vec::new();
    while !rest.is_empty() {
        // A partial message asks for more bytes.
        assert_eq!(split_binary(&rest[..HEADER_LEN - 1]), Ok(None));
        assert_eq!(split_binary(&rest[..HEADER_LEN]), Ok(None));
        let len = split_binary(rest).expect("valid header").expect("whole message");
        decoded.push(decode_binary(&rest[..len]).expect("decodes"));
        rest = &rest[len..];
    }
    assert!(items.iter().zip(&decoded).all(|(a, b)| same_bits(a, b)));
    assert_eq!(
        split_binary(b"SGFX\x01\x01\0\0\x10\0\0\0"),
        Err(WireError::BadMagic { found: *b"SGFX" })
    );
}

// ---------------------------------------------------------------- JSON errors

const JSON_FRAME: &str = r#"{"v":1,"type":"frame","stream_id":"s","modality":"ecg","start_ns":0,"sequence":0,"channels":[{"name":"c","unit":"u","rate":1.0,"samples":[0.0]}]}"#;

/// `JSON_FRAME` with `from` replaced by `to`.
fn json_with(from: &str, to: &str) -> String {
    assert!(JSON_FRAME.contains(from), "{from}");
    JSON_FRAME.replacen(from, to, 1)
}

#[test]
fn json_optional_fields_default() {
    let Ok(Item::Frame(f)) = decode_json(JSON_FRAME.as_bytes()) else {
        panic!("decodes")
    };
    assert!(!f.discontinuity);
    assert!(f.metadata.is_empty());
    assert_eq!(f.counts(), &[1]);
}

#[test]
fn json_integers_may_be_strings() {
    let text = json_with(
        r#""start_ns":0,"sequence":0"#,
        r#""start_ns":"-1700000000000000001","sequence":"18446744073709551615""#,
    );
    let Ok(Item::Frame(f)) = decode_json(text.as_bytes()) else {
        panic!("decodes")
    };
    assert_eq!((f.start_ns, f.sequence), (-1_700_000_000_000_000_001, u64::MAX));
    let text = json_with(r#""sequence":0"#, r#""sequence":18446744073709551615"#);
    assert!(decode_json(text.as_bytes()).is_ok());
    for bad in [
        r#""+1""#,
        r#""1e3""#,
        r#""""#,
        "1.0",
        "-1",
        r#""18446744073709551616""#,
    ] {
        let text = json_with(r#""sequence":0"#, &format!(r#""sequence":{bad}"#));
        assert!(matches!(json_err(&text), WireError::Json { .. }), "{bad}");
    }
}

#[test]
fn json_errors() {
    use WireError::*;
    let cases: Vec<(String, WireError)> = vec![
        (json_with(r#""v":1"#, r#""v":2"#), UnsupportedVersion { version: 2 }),
        // A v2 message's new fields do not hide its version.
        (json_with(r#""v":1"#, r#""v":2,"novel":{}"#), UnsupportedVersion { version: 2 }),
        (json_with(r#""v":1,"#, ""), MissingField { field: "v" }),
        (json_with(r#""type":"frame","#, ""), MissingField { field: "type" }),
        (json_with(r#""frame""#, r#""blob""#), UnknownMessageTypeName),
        (json_with(r#""stream_id":"s","#, ""), MissingField { field: "stream_id" }),
        (json_with(r#","channels":[{"name":"c","unit":"u","rate":1.0,"samples":[0.0]}]"#, ""), MissingField { field: "channels" }),
        (json_with(r#""ecg""#, r#""eyes""#), UnknownModalityName),
        (json_with(r#""v":1"#, r#""v":1,"kind":"x""#), FieldNotAllowed { field: "kind", message_type: "frame" }),
        (json_with(r#""rate":1.0"#, r#""rate":0"#), BadSampleRate { channel: 0 }),
        (json_with(r#""rate":1.0"#, r#""rate":null"#), BadSampleRate { channel: 0 }),
        (json_with(r#""stream_id":"s""#, &format!(r#""stream_id":"{}""#, "s".repeat(1025))), StringTooLong { field: "stream id", len: 1025, max: 1024 }),
        (
            json_with(r#""channels":["#, &format!(r#""channels":[{}"#, r#"{"name":"c","unit":"u","rate":1,"samples":[]},"#.repeat(4096))),
            TooManyChannels { count: 4097, max: 4096 },
        ),
        (
            r#"{"v":1,"type":"record","stream_id":"s","kind":"k","start_ns":0,"end_ns":0,"sequence":0,"values":{},"channels":[]}"#.to_string(),
            FieldNotAllowed { field: "channels", message_type: "record" },
        ),
        (
            r#"{"v":1,"type":"record","stream_id":"s","kind":"k","start_ns":0,"sequence":0,"values":{}}"#.to_string(),
            MissingField { field: "end_ns" },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(json_err(&text), expected, "{text:.200}");
    }
}

#[test]
fn json_limits_on_metadata_and_values() {
    let entries: Vec<String> = (0..1025).map(|i| format!(r#""k{i}":"v""#)).collect();
    let text = json_with(
        r#""v":1"#,
        &format!(r#""v":1,"metadata":{{{}}}"#, entries.join(",")),
    );
    assert_eq!(
        json_err(&text),
        WireError::TooManyMetadata {
            count: 1025,
            max: 1024
        }
    );
    let values: Vec<String> = (0..65_537).map(|i| format!(r#""x{i}":1"#)).collect();
    let text = format!(
        r#"{{"v":1,"type":"record","stream_id":"s","kind":"k","start_ns":0,"end_ns":0,"sequence":0,"values":{{{}}}}}"#,
        values.join(",")
    );
    assert_eq!(
        json_err(&text),
        WireError::TooManyValues {
            count: 65_537,
            max: 65_536
        }
    );
}

#[test]
fn json_syntax_and_schema_errors() {
    let bad = [
        json_with(r#""v":1"#, r#""v":1,"extra":0"#), // unknown field
        json_with(r#""unit":"u""#, r#""unit":"u","gain":2"#), // unknown channel field
        json_with(r#"[0.0]"#, r#"[1e39]"#),          // not an f32
        json_with(r#"[0.0]"#, r#"["0.5"]"#),         // samples are numbers
        json_with(r#"[0.0]"#, r#"[true]"#),
        json_with(r#""rate":1.0"#, r#""rate":1e999"#),
        json_with(r#"{"name""#, r#"["c","u",1.0,[0.0]],{"name""#), // channel as array
        JSON_FRAME[..JSON_FRAME.len() - 1].to_string(),            // truncated
        format!("{JSON_FRAME} {{}}"),                              // trailing value
        String::from("[1,\"frame\"]"),                             // top level array
        String::from("\"frame\""),
        String::new(),
    ];
    for text in bad {
        assert!(matches!(json_err(&text), WireError::Json { .. }), "{text:.200}");
    }
    assert!(decode_json(format!(" \n{JSON_FRAME}\r\n").as_bytes()).is_ok());
}

#[test]
fn oversized_json_is_rejected_before_parsing() {
    let text = vec![b' '; MAX_MESSAGE_LEN + 1];
    assert_eq!(
        decode_json(&text),
        Err(WireError::MessageTooLarge {
            len: MAX_MESSAGE_LEN as u64 + 1,
            max: MAX_MESSAGE_LEN as u64
        })
    );
}

#[test]
fn errors_never_quote_message_content() {
    let canary = "CANARY-Jane-Doe";
    let texts = [
        json_with(r#""v":1"#, r#""v":1,"metadata":{"name":12345678}"#),
        json_with(
            r#""v":1"#,
            &format!(r#""v":1,"metadata":{{"name":["{canary}"]}}"#),
        ),
        json_with(r#""start_ns":0"#, &format!(r#""start_ns":"{canary}""#)),
        json_with(r#""rate":1.0"#, &format!(r#""rate":"{canary}""#)),
        json_with(r#""channels":[{"#, &format!(r#""channels":"{canary}","x":[{{"#)),
        json_with(r#""ecg""#, &format!(r#""{canary}""#)),
        json_with(r#""v":1"#, &format!(r#""v":"{canary}""#)),
    ];
    for text in texts {
        let message = json_err(&text).to_string();
        assert!(
            !message.contains("CANARY") && !message.contains("12345678"),
            "{message}"
        );
    }
}

// ---------------------------------------------------------------- robustness

#[test]
fn every_truncation_is_an_error() {
    for item in [Item::Frame(rich_frame()), Item::Record(record())] {
        for encoding in [Encoding::Binary, Encoding::Json] {
            let bytes = to_vec(&item, encoding);
            for len in 0..bytes.len() {
                assert!(
                    decode(&bytes[..len], encoding).is_err(),
                    "{encoding:?} prefix {len}"
                );
            }
        }
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    for item in [Item::Frame(doc_frame()), Item::Record(record())] {
        let bytes = to_vec(&item, Encoding::Binary);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_binary(&flipped).is_err(), "bit {bit}");
        }
    }
}

/// Wraps `body` in a valid header and CRC, so random bytes reach the body
/// parser instead of failing the checksum.
fn sealed(message_type: u8, flags: u16, body: &[u8]) -> Vec<u8> {
    let len = (HEADER_LEN + body.len() + CRC_LEN) as u32;
    let mut bytes = [
        &MAGIC[..],
        &[VERSION, message_type],
        &flags.to_le_bytes(),
        &len.to_le_bytes(),
        body,
    ]
    .concat();
    bytes.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut bytes);
    bytes
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9_.-]{1,12}",
        "\\PC{0,8}",
        "[\\x00-\\x1f\"\\\\é✓]{0,6}"
    ]
}

fn arb_f32() -> impl Strategy<Value = f32> {
    prop_oneof![any::<f32>(), Just(f32::NAN), (-1e3f32..1e3f32)]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let channel = (
        arb_string(),
        arb_string(),
        1e-6f64..1e6,
        proptest::collection::vec(arb_f32(), 0..24),
    );
    (
        arb_string(),
        proptest::sample::select(Modality::ALL.to_vec()),
        any::<i64>(),
        any::<u64>(),
        any::<bool>(),
        proptest::collection::vec(channel, 0..5),
        proptest::collection::vec((arb_string(), arb_string()), 0..4),
    )
        .prop_map(|(id, modality, start, seq, disc, channels, metadata)| {
            let mut specs = Vec::new();
            let mut counts = Vec::new();
            let mut samples = Vec::new();
            for (name, unit, sample_rate, data) in channels {
                specs.push(ChannelSpec {
                    name,
                    unit,
                    sample_rate,
                });
                counts.push(data.len() as u32);
                samples.extend(data);
            }
            let layout = Arc::new(ChannelLayout::new(specs));
            let mut f = Frame::new(id.into(), modality, layout, start, seq, counts, samples).expect("valid");
            f.discontinuity = disc;
            f.metadata = metadata.into();
            f
        })
}

fn arb_record() -> impl Strategy<Value = Record> {
    let value = prop_oneof![any::<f64>(), Just(f64::NAN)];
    (
        arb_string(),
        any::<u64>(),
        arb_string(),
        any::<i64>(),
        any::<i64>(),
        proptest::collection::vec((arb_string(), value), 0..6),
        proptest::collection::vec((arb_string(), arb_string()), 0..3),
    )
        .prop_map(|(id, sequence, kind, start_ns, end_ns, values, labels)| Record {
            stream_id: id.into(),
            sequence,
            kind: kind.into(),
            start_ns,
            end_ns,
            values: values.into_iter().map(|(n, v)| (Arc::from(n), v)).collect(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (Arc::from(k), Arc::from(v)))
                .collect(),
        })
}

/// JSON has one NaN and no infinities: what a JSON round trip should give.
fn json_canonical(item: &Item) -> Item {
    let fix32 = |x: f32| if x.is_finite() { x } else { f32::NAN };
    let fix64 = |x: f64| if x.is_finite() { x } else { f64::NAN };
    match item.clone() {
        Item::Frame(mut f) => {
            f.samples_mut().iter_mut().for_each(|x| *x = fix32(*x));
            Item::Frame(f)
        }
        Item::Record(mut r) => {
            r.values.numbers_mut().iter_mut().for_each(|v| *v = fix64(*v));
            Item::Record(r)
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_items_round_trip(item in prop_oneof![arb_frame().prop_map(Item::Frame), arb_record().prop_map(Item::Record)]) {
        prop_assert!(same_bits(&item, &round_trip(&item, Encoding::Binary)));
        prop_assert!(same_bits(&json_canonical(&item), &round_trip(&item, Encoding::Json)));
        prop_assert_eq!(encoded_binary_len(&item), to_vec(&item, Encoding::Binary).len() as u64);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_binary(&bytes);
        let _ = decode_json(&bytes);
        let _ = split_binary(&bytes);
    }

    /// Past the CRC, a body either fails or is canonical: re-encoding the
    /// decoded item gives back the very same bytes.
    #[test]
    fn random_sealed_bodies_fail_or_are_canonical(
        message_type in 0u8..4,
        flags in 0u16..3,
        body in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..128),
    ) {
        let bytes = sealed(message_type, flags, &body);
        if let Ok(item) = decode_binary(&bytes) {
            prop_assert_eq!(to_vec(&item, Encoding::Binary), bytes);
        }
    }

    #[test]
    fn random_json_never_panics(text in "[{}\\[\\],:\"a-z0-9.eE+-]{0,64}") {
        let _ = decode_json(text.as_bytes());
    }
}

/// Writes encoded examples for the fuzzer's starting corpus into the folder
/// named by `SIGFAB_FUZZ_SEEDS` (scripts/fuzz-wire.sh runs it).
#[test]
#[ignore = "writes files; run by scripts/fuzz-wire.sh"]
fn write_fuzz_seeds() {
    let dir = std::path::PathBuf::from(std::env::var("SIGFAB_FUZZ_SEEDS").expect("SIGFAB_FUZZ_SEEDS"));
    let items = [
        ("doc-frame", Item::Frame(doc_frame())),
        ("rich-frame", Item::Frame(rich_frame())),
        ("record", Item::Record(record())),
        ("labelled-record", Item::Record(labelled_record())),
        ("empty-frame", Item::Frame(frame(vec![], vec![], vec![]))),
    ];
    for (name, item) in &items {
        std::fs::write(dir.join(format!("{name}.sgfb")), to_vec(item, Encoding::Binary)).expect("write");
        std::fs::write(dir.join(format!("{name}.json")), to_vec(item, Encoding::Json)).expect("write");
    }
    std::fs::write(dir.join("minimal.json"), JSON_FRAME).expect("write");
    std::fs::write(dir.join("js-frame.json"), doc_block("example:js-frame-json")).expect("write");
}
