//! Tamper tests and round trips on files our `ChunkedWriter` produced: truncation at every
//! chunk boundary and inside chunks, swapped and spliced chunks, trailing bytes, every bit
//! flipped, a writer dropped without `finish`; each must be rejected without any plaintext of
//! the tampered chunk (or later ones) coming out first.

mod crypto_common;

use std::io::{Read, Write};

use proptest::prelude::*;
use sigfab_engine::crypto::aead::TAG_LEN;
use sigfab_engine::crypto::chunked::{
    self, ChunkedError, ChunkedReader, ChunkedWriter, CHUNK_SIZE, HEADER_LEN, SEALED_CHUNK_SIZE,
};
use sigfab_engine::crypto::SymmetricKey;

const CONTEXT: &[u8] = b"sigfab test patient 0001";

fn key() -> SymmetricKey {
    SymmetricKey::from_slice(&[0x5A; 32]).expect("32 bytes")
}

/// Recognisable plaintext: byte i is a function of i, so a misplaced chunk shows.
fn message(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / CHUNK_SIZE) as u8)
        .collect()
}

fn seal(plaintext: &[u8]) -> Vec<u8> {
    chunked::encrypt(plaintext, &key(), CONTEXT).expect("encrypt")
}

/// Plaintext released chunk by chunk before the outcome.
fn open_streaming(ciphertext: &[u8]) -> (Vec<u8>, Result<(), ChunkedError>) {
    crypto_common::stream_decrypt(ciphertext, &key(), CONTEXT)
}

/// The tampered file is rejected, and what came out first is exactly the plaintext of the
/// first `intact_chunks` chunks, or less.
fn assert_rejected(tampered: &[u8], plaintext: &[u8], intact_chunks: usize, what: &str) -> ChunkedError {
    let (released, outcome) = open_streaming(tampered);
    let error = match outcome {
        Ok(()) => panic!("{what}: accepted"),
        Err(error) => error,
    };
    let allowed = (intact_chunks * CHUNK_SIZE).min(plaintext.len());
    assert!(
        released.len() <= allowed,
        "{what}: released {} bytes, at most {allowed} allowed",
        released.len()
    );
    assert_eq!(
        released[..],
        plaintext[..released.len()],
        "{what}: released bytes are not the original"
    );
    error
}

fn chunk_range(index: usize, sealed_len: usize) -> std::ops::Range<usize> {
    let start = HEADER_LEN + index * SEALED_CHUNK_SIZE;
    start..(start + SEALED_CHUNK_SIZE).min(sealed_len)
}

#[test]
fn round_trips_at_the_chunk_edges() {
    for len in [
        0,
        1,
        100,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        2 * CHUNK_SIZE,
        2 * CHUNK_SIZE + 7,
    ] {
        let plaintext = message(len);
        let sealed = seal(&plaintext);
        assert_eq!(sealed.len(), chunked::sealed_len(len));
        let (released, outcome) = open_streaming(&sealed);
        assert!(outcome.is_ok(), "{len} bytes: {:?}", outcome.err());
        assert_eq!(released, plaintext, "{len} bytes");
    }
}

#[test]
fn truncation_at_every_chunk_boundary_and_inside_chunks_is_rejected() {
    let plaintext = message(3 * CHUNK_SIZE + 100);
    let sealed = seal(&plaintext);
    let mut cuts = vec![0, 1, HEADER_LEN - 1];
    for index in 0..=3 {
        let start = HEADER_LEN + index * SEALED_CHUNK_SIZE;
        // At the boundary, just after it, inside the body, and inside the tag.
        cuts.extend([
            start,
            start + 1,
            start + TAG_LEN - 1,
            start + TAG_LEN,
            start + 5000,
        ]);
        cuts.extend([start + SEALED_CHUNK_SIZE - TAG_LEN, start + SEALED_CHUNK_SIZE - 1]);
    }
    cuts.push(sealed.len() - 1);
    for cut in cuts.into_iter().filter(|&cut| cut < sealed.len()) {
        // Chunks wholly before the cut may come out; the cut one may not.
        let intact = cut.saturating_sub(HEADER_LEN) / SEALED_CHUNK_SIZE;
        let error = assert_rejected(&sealed[..cut], &plaintext, intact, &format!("cut at {cut}"));
        if cut < HEADER_LEN {
            assert!(
                matches!(error, ChunkedError::TruncatedHeader),
                "cut at {cut}: {error}"
            );
        }
        if cut >= HEADER_LEN && (cut - HEADER_LEN).is_multiple_of(SEALED_CHUNK_SIZE) {
            assert!(matches!(error, ChunkedError::Truncated), "cut at {cut}: {error}");
        }
    }
}

#[test]
fn swapped_and_duplicated_chunks_are_rejected() {
    let plaintext = message(3 * CHUNK_SIZE + 100);
    let sealed = seal(&plaintext);
    let chunk = |i| sealed[chunk_range(i, sealed.len())].to_vec();
    let header = &sealed[..HEADER_LEN];

    let swapped = [header, &chunk(1), &chunk(0), &chunk(2), &chunk(3)].concat();
    let error = assert_rejected(&swapped, &plaintext, 0, "chunks 0 and 1 swapped");
    assert!(
        matches!(error, ChunkedError::ChunkAuthentication { index: 0 }),
        "{error}"
    );

    let duplicated = [header, &chunk(0), &chunk(0), &chunk(2), &chunk(3)].concat();
    assert_rejected(&duplicated, &plaintext, 1, "chunk 0 repeated as chunk 1");

    let dropped = [header, &chunk(0), &chunk(2), &chunk(3)].concat();
    assert_rejected(&dropped, &plaintext, 1, "chunk 1 removed");

    let final_moved_up = [header, &chunk(0), &chunk(3)].concat();
    assert_rejected(&final_moved_up, &plaintext, 1, "final chunk moved up");
}

#[test]
fn a_chunk_spliced_from_another_file_under_the_same_key_is_rejected() {
    let plaintext = message(3 * CHUNK_SIZE + 100);
    let (first, second) = (seal(&plaintext), seal(&plaintext));
    assert_ne!(first[..HEADER_LEN], second[..HEADER_LEN], "fresh salt per file");
    for index in 0..4 {
        let mut spliced = first.clone();
        let range = chunk_range(index, first.len());
        spliced[range.clone()].copy_from_slice(&second[range]);
        let error = assert_rejected(&spliced, &plaintext, index, &format!("chunk {index} spliced"));
        assert!(matches!(error, ChunkedError::ChunkAuthentication { index: i } if i == index as u64));
    }
    let other_header = [&second[..HEADER_LEN], &first[HEADER_LEN..]].concat();
    assert_rejected(&other_header, &plaintext, 0, "header of the other file");
}

#[test]
fn trailing_bytes_are_rejected() {
    for len in [0, 100, CHUNK_SIZE, 2 * CHUNK_SIZE + 100] {
        let plaintext = message(len);
        let sealed = seal(&plaintext);
        let full_chunks = len / CHUNK_SIZE;
        let final_chunk = sealed[chunk_range(full_chunks, sealed.len())].to_vec();
        let extras: [&[u8]; 5] = [
            &[0],
            &[0; TAG_LEN],
            &[0xFF; 20],
            &final_chunk,
            &sealed[HEADER_LEN..],
        ];
        for extra in extras {
            let tampered = [&sealed[..], extra].concat();
            assert_rejected(
                &tampered,
                &plaintext,
                full_chunks,
                &format!("{len} bytes + {} trailing", extra.len()),
            );
        }
    }
}

#[test]
fn every_bit_flip_of_small_files_is_rejected() {
    for len in [0, 1, 100] {
        let plaintext = message(len);
        let sealed = seal(&plaintext);
        for bit in 0..sealed.len() * 8 {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_rejected(
                &flipped,
                &plaintext,
                0,
                &format!("{len}-byte file, bit {bit} flipped"),
            );
        }
    }
}

#[test]
fn bit_flips_across_a_multi_chunk_file_are_rejected() {
    let plaintext = message(2 * CHUNK_SIZE + 100);
    let sealed = seal(&plaintext);
    // Every bit of the header and of each tag, and one byte in 97 elsewhere.
    let mut bytes: Vec<usize> = (0..HEADER_LEN).collect();
    for index in 0..3 {
        let range = chunk_range(index, sealed.len());
        bytes.extend(range.end - TAG_LEN..range.end);
        bytes.extend(range.clone().step_by(97));
    }
    for byte in bytes {
        for bit in 0..8 {
            let mut flipped = sealed.clone();
            flipped[byte] ^= 1 << bit;
            let intact = byte.saturating_sub(HEADER_LEN) / SEALED_CHUNK_SIZE;
            let intact = if byte < HEADER_LEN { 0 } else { intact };
            assert_rejected(&flipped, &plaintext, intact, &format!("byte {byte} bit {bit}"));
        }
    }
}

#[test]
fn wrong_key_or_context_fails_on_the_commitment() {
    let sealed = seal(b"vitals");
    let other_key = SymmetricKey::from_slice(&[0x5B; 32]).expect("32 bytes");
    let wrong_key = ChunkedReader::new(&sealed[..], &other_key, CONTEXT).err();
    assert!(matches!(wrong_key, Some(ChunkedError::Commitment)));
    let wrong_context = ChunkedReader::new(&sealed[..], &key(), b"sigfab test patient 0002").err();
    assert!(matches!(wrong_context, Some(ChunkedError::Commitment)));
}

#[test]
fn a_writer_dropped_without_finish_leaves_an_invalid_file() {
    for len in [0, 10, CHUNK_SIZE, 2 * CHUNK_SIZE + 5] {
        let plaintext = message(len);
        let mut out = Vec::new();
        {
            let mut writer = ChunkedWriter::new(&mut out, &key(), CONTEXT).expect("writer");
            writer.write_all(&plaintext).expect("write");
        }
        let error = assert_rejected(
            &out,
            &plaintext,
            len / CHUNK_SIZE,
            &format!("{len} bytes, unfinished"),
        );
        assert!(matches!(error, ChunkedError::Truncated), "{len} bytes: {error}");
    }
}

#[test]
fn the_read_trait_reports_tampering_as_invalid_data_and_keeps_failing() {
    let plaintext = message(2 * CHUNK_SIZE + 3);
    let mut sealed = seal(&plaintext);
    let mut reader = ChunkedReader::new(&sealed[..], &key(), CONTEXT).expect("header");
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("intact file");
    assert_eq!(out, plaintext);

    let last = sealed.len() - 1;
    sealed[last] ^= 0x80;
    let mut reader = ChunkedReader::new(&sealed[..], &key(), CONTEXT).expect("header");
    let mut out = Vec::new();
    let error = reader.read_to_end(&mut out).expect_err("tampered final chunk");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    let inner = error.get_ref().and_then(|e| e.downcast_ref::<ChunkedError>());
    assert!(
        matches!(inner, Some(ChunkedError::ChunkAuthentication { index: 2 })),
        "{error}"
    );
    assert_eq!(
        out,
        plaintext[..2 * CHUNK_SIZE],
        "only the two authenticated chunks came out"
    );
    assert!(reader.read(&mut [0; 10]).is_err(), "keeps failing");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any length (weighted to the chunk edges), written in arbitrary pieces, read back in
    /// arbitrary pieces.
    #[test]
    fn round_trip_any_length_and_write_pattern(
        len in prop_oneof![
            Just(0usize), Just(1), Just(CHUNK_SIZE - 1), Just(CHUNK_SIZE), Just(CHUNK_SIZE + 1),
            Just(2 * CHUNK_SIZE), 0..3 * CHUNK_SIZE + 10,
        ],
        piece in 1usize..40_000,
        read_piece in 1usize..40_000,
    ) {
        let plaintext = message(len);
        let mut writer = ChunkedWriter::new(Vec::new(), &key(), CONTEXT).expect("writer");
        for part in plaintext.chunks(piece) {
            writer.write_all(part).expect("write");
        }
        let sealed = writer.finish().expect("finish");
        prop_assert_eq!(sealed.len(), chunked::sealed_len(len));
        let mut reader = ChunkedReader::new(&sealed[..], &key(), CONTEXT).expect("header");
        let mut out = Vec::new();
        let mut buffer = vec![0; read_piece];
        loop {
            let n = reader.read(&mut buffer).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buffer[..n]);
        }
        prop_assert_eq!(out, plaintext);
    }
}
