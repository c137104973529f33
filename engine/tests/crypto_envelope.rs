//! Envelope files end to end: a fresh data key per file wrapped for X-Wing recipients, then the
//! C2SP chunked body; tampering with the envelope locks every recipient out.

use std::io::{Read, Write};

use sigfab_engine::crypto::chunked::CHUNK_SIZE;
use sigfab_engine::crypto::envelope::{
    decrypt_file, encrypt_file, open_data_key, read_envelope, EnvelopeError, SLOT_LEN,
};
use sigfab_engine::crypto::xwing::DecapsulationKey;

const CONTEXT: &[u8] = b"pseudonym:7f3a epoch:2026-11";
const PREFIX_LEN: usize = 6;

fn recipients() -> (DecapsulationKey, DecapsulationKey) {
    (
        DecapsulationKey::from_seed(&[1; 32]),
        DecapsulationKey::from_seed(&[2; 32]),
    )
}

fn write_file(plaintext: &[u8], to: &[&DecapsulationKey]) -> Vec<u8> {
    let public: Vec<_> = to.iter().map(|key| key.encapsulation_key().clone()).collect();
    let mut writer = encrypt_file(Vec::new(), &public, CONTEXT).expect("encrypt");
    writer.write_all(plaintext).expect("write");
    writer.finish().expect("finish")
}

fn read_file(file: &[u8], as_recipient: &DecapsulationKey) -> Result<Vec<u8>, EnvelopeError> {
    let mut reader = decrypt_file(file, as_recipient, CONTEXT)?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn every_recipient_reads_the_file() {
    let (alice, bob) = recipients();
    let plaintext: Vec<u8> = (0..2 * CHUNK_SIZE + 77).map(|i| (i % 253) as u8).collect();
    let file = write_file(&plaintext, &[&alice, &bob]);
    assert_eq!(read_file(&file, &alice).expect("alice"), plaintext);
    assert_eq!(read_file(&file, &bob).expect("bob"), plaintext);

    let eve = DecapsulationKey::from_seed(&[3; 32]);
    assert!(matches!(
        read_file(&file, &eve),
        Err(EnvelopeError::NotARecipient)
    ));
    let wrong_context = decrypt_file(&file[..], &alice, b"pseudonym:7f3a epoch:2026-12");
    assert!(matches!(wrong_context, Err(EnvelopeError::NotARecipient)));
}

#[test]
fn each_file_gets_its_own_data_key() {
    let (alice, _) = recipients();
    let (first, second) = (write_file(b"same", &[&alice]), write_file(b"same", &[&alice]));
    let key_of = |file: &[u8]| {
        let envelope = read_envelope(&mut &file[..]).expect("envelope");
        open_data_key(&envelope, &alice, CONTEXT).expect("recipient")
    };
    // Compare the keys' effect, not their bytes (which are not exposed): the first file's
    // body does not open under the second file's key.
    let envelope_len = PREFIX_LEN + SLOT_LEN;
    let body = &first[envelope_len..];
    let second_key = key_of(&second);
    assert!(sigfab_engine::crypto::chunked::decrypt(body, &second_key, CONTEXT).is_err());
    assert!(sigfab_engine::crypto::chunked::decrypt(body, &key_of(&first), CONTEXT).is_ok());
}

#[test]
fn tampering_with_the_envelope_locks_recipients_out() {
    let (alice, bob) = recipients();
    let file = write_file(b"ICU bed 12: SpO2 97", &[&alice, &bob]);
    let envelope_len = PREFIX_LEN + 2 * SLOT_LEN;

    // Any change to the prefix, or to a slot's ciphertext or wrapped key, fails that slot; a
    // recipient whose own slot is intact still reads (their slot does not depend on others).
    let mut positions: Vec<usize> = (0..PREFIX_LEN).collect();
    positions.extend((PREFIX_LEN..envelope_len).step_by(61));
    positions.extend([PREFIX_LEN + SLOT_LEN - 1, envelope_len - 1]);
    for position in positions {
        let mut tampered = file.clone();
        tampered[position] ^= 0x01;
        let slot = position.checked_sub(PREFIX_LEN).map(|offset| offset / SLOT_LEN);
        for (index, reader) in [&alice, &bob].into_iter().enumerate() {
            let outcome = read_file(&tampered, reader);
            if slot.is_some_and(|slot| slot != index) {
                assert!(outcome.is_ok(), "byte {position} is in another recipient's slot");
            } else {
                assert!(
                    outcome.is_err(),
                    "byte {position} flipped, recipient {index} still read the file"
                );
            }
        }
    }

    // Dropping Bob's slot (and fixing the count) changes the AAD: Alice is locked out too.
    let mut dropped = file[..PREFIX_LEN + SLOT_LEN].to_vec();
    dropped[5] = 1;
    dropped.extend_from_slice(&file[envelope_len..]);
    assert!(matches!(
        read_file(&dropped, &alice),
        Err(EnvelopeError::NotARecipient)
    ));

    for cut in [0, 3, PREFIX_LEN, PREFIX_LEN + SLOT_LEN, envelope_len - 1] {
        assert!(
            matches!(read_file(&file[..cut], &alice), Err(EnvelopeError::Truncated)),
            "cut {cut}"
        );
    }
    assert!(
        read_file(&file[..file.len() - 1], &alice).is_err(),
        "body truncated"
    );
}

#[test]
fn errors_do_not_leak_key_material() {
    let (alice, _) = recipients();
    let file = write_file(b"x", &[&alice]);
    let eve = DecapsulationKey::from_seed(&[9; 32]);
    let error = read_file(&file, &eve).expect_err("outsider");
    let text = format!("{error} {error:?} {eve:?}");
    assert!(!text.contains("9, 9, 9"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}
