//! Envelope encryption: each file gets a fresh random 32-byte data key, wrapped for one or more
//! recipients with X-Wing (hybrid ML-KEM-768 + X25519: never post-quantum alone, never
//! classical alone), followed by the file's contents in C2SP chunked encryption under that key.
//!
//! ```text
//! envelope = "SFE1" ‖ suite 0x01 ‖ n (1 byte, 1..=255) ‖ n × slot
//! slot     = X-Wing ciphertext (1120) ‖ AES-256-GCM(kek, nonce 0^12, aad = envelope[0..6],
//!                                                   data key (32)) ‖ tag (16)
//! kek      = HKDF-SHA-256(salt = "", ikm = X-Wing shared secret,
//!                         info = "sigfab.envelope.v1 data key wrap" ‖ 0x00 ‖ context, 32)
//! file     = envelope ‖ C2SP chunked encryption (input key = data key, context)
//! ```
//!
//! Each slot's KEK comes from its own fresh encapsulation, so the fixed zero nonce is used once
//! per key. The shared secret already binds the recipient's public key and the ciphertext (the
//! X-Wing combiner); the AAD binds the slot count, so dropping slots fails every unwrap. The
//! `context` (e.g. a pseudonymous patient and epoch label) is never stored: the reader must
//! supply the same one. A reader tries each slot in turn (no recipient identifiers are stored,
//! so the file does not say who can read it).

use std::io::{Read, Write};

use zeroize::Zeroizing;

use super::aead::{Aes256Gcm, NONCE_LEN, TAG_LEN};
use super::chunked::{ChunkedError, ChunkedReader, ChunkedWriter};
use super::kdf::{hkdf_sha256, OutputTooLong};
use super::keys::{RandomError, SymmetricKey, SYMMETRIC_KEY_LEN};
use super::xwing::{self, DecapsulationKey, EncapsulationKey};
use crate::readers::read_full;

const MAGIC: &[u8; 4] = b"SFE1";
/// X-Wing, HKDF-SHA-256, AES-256-GCM.
const SUITE_XWING_HKDF_SHA256_AES_256_GCM: u8 = 0x01;
const PREFIX_LEN: usize = 6;
const WRAPPED_KEY_LEN: usize = SYMMETRIC_KEY_LEN + TAG_LEN;
/// Bytes per recipient.
pub const SLOT_LEN: usize = xwing::CIPHERTEXT_LEN + WRAPPED_KEY_LEN;
pub const MAX_RECIPIENTS: usize = 255;
const KEK_INFO: &[u8] = b"sigfab.envelope.v1 data key wrap";

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("an envelope needs 1 to {MAX_RECIPIENTS} recipients, not {0}")]
    RecipientCount(usize),
    #[error("not an encrypted Signal Fabric file (bad magic)")]
    Magic,
    #[error("unknown envelope suite {0:#04x}")]
    Suite(u8),
    #[error("the envelope is truncated")]
    Truncated,
    #[error("no recipient slot opens with this key: not a recipient, wrong context, or a modified envelope")]
    NotARecipient,
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Kdf(#[from] OutputTooLong),
    #[error("AES-GCM refused to wrap the data key")]
    Wrap,
    #[error(transparent)]
    Chunked(#[from] ChunkedError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The envelope that wraps `data_key` for every recipient.
pub fn seal_data_key(
    data_key: &SymmetricKey,
    recipients: &[EncapsulationKey],
    context: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let count = u8::try_from(recipients.len())
        .ok()
        .filter(|&n| n > 0)
        .ok_or(EnvelopeError::RecipientCount(recipients.len()))?;
    let prefix = [
        MAGIC[0],
        MAGIC[1],
        MAGIC[2],
        MAGIC[3],
        SUITE_XWING_HKDF_SHA256_AES_256_GCM,
        count,
    ];
    let mut envelope = Vec::with_capacity(PREFIX_LEN + recipients.len() * SLOT_LEN);
    envelope.extend_from_slice(&prefix);
    for recipient in recipients {
        let (ciphertext, shared) = recipient.encapsulate()?;
        let kek = key_encryption_key(&shared, context)?;
        let mut wrapped = Zeroizing::new(data_key.expose_secret().to_vec());
        let tag = kek
            .seal_in_place([0; NONCE_LEN], &prefix, &mut wrapped)
            .map_err(|_| EnvelopeError::Wrap)?;
        envelope.extend_from_slice(ciphertext.as_bytes());
        envelope.extend_from_slice(&wrapped);
        envelope.extend_from_slice(&tag);
    }
    Ok(envelope)
}

/// Recovers the data key from an envelope (exactly the envelope's bytes).
pub fn open_data_key(
    envelope: &[u8],
    recipient: &DecapsulationKey,
    context: &[u8],
) -> Result<SymmetricKey, EnvelopeError> {
    let count = parse_prefix(envelope)?;
    let (prefix, slots) = envelope.split_at(PREFIX_LEN);
    if slots.len() != count * SLOT_LEN {
        return Err(EnvelopeError::Truncated);
    }
    for slot in slots.chunks_exact(SLOT_LEN) {
        let (ciphertext, wrapped) = slot.split_at(xwing::CIPHERTEXT_LEN);
        let ciphertext = xwing::Ciphertext::from_bytes(ciphertext).map_err(|_| EnvelopeError::Truncated)?;
        let kek = key_encryption_key(&recipient.decapsulate(&ciphertext), context)?;
        let mut buffer = Zeroizing::new(wrapped.to_vec());
        if let Ok(data_key) = kek.open_in_place([0; NONCE_LEN], prefix, &mut buffer) {
            return Ok(SymmetricKey::copy_from(data_key));
        }
    }
    Err(EnvelopeError::NotARecipient)
}

/// Reads exactly one envelope from the start of a stream.
pub fn read_envelope<R: Read>(input: &mut R) -> Result<Vec<u8>, EnvelopeError> {
    let mut envelope = vec![0; PREFIX_LEN];
    if read_full(input, &mut envelope)? < PREFIX_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let count = parse_prefix(&envelope)?;
    envelope.resize(PREFIX_LEN + count * SLOT_LEN, 0);
    if read_full(input, &mut envelope[PREFIX_LEN..])? < count * SLOT_LEN {
        return Err(EnvelopeError::Truncated);
    }
    Ok(envelope)
}

/// Starts an encrypted file: a fresh data key, its envelope, then a chunked writer under it.
/// Call `finish()` on the writer to complete the file.
pub fn encrypt_file<W: Write>(
    mut output: W,
    recipients: &[EncapsulationKey],
    context: &[u8],
) -> Result<ChunkedWriter<W>, EnvelopeError> {
    let data_key = SymmetricKey::generate()?;
    output.write_all(&seal_data_key(&data_key, recipients, context)?)?;
    Ok(ChunkedWriter::new(output, &data_key, context)?)
}

/// Opens an encrypted file as `recipient`: unwraps the data key and returns the chunked
/// reader positioned after the envelope (commitment already checked).
pub fn decrypt_file<R: Read>(
    mut input: R,
    recipient: &DecapsulationKey,
    context: &[u8],
) -> Result<ChunkedReader<R>, EnvelopeError> {
    let envelope = read_envelope(&mut input)?;
    let data_key = open_data_key(&envelope, recipient, context)?;
    Ok(ChunkedReader::new(input, &data_key, context)?)
}

/// Checks magic and suite; returns the recipient count.
fn parse_prefix(envelope: &[u8]) -> Result<usize, EnvelopeError> {
    if envelope.len() < PREFIX_LEN {
        return Err(EnvelopeError::Truncated);
    }
    if envelope[..4] != MAGIC[..] {
        return Err(EnvelopeError::Magic);
    }
    if envelope[4] != SUITE_XWING_HKDF_SHA256_AES_256_GCM {
        return Err(EnvelopeError::Suite(envelope[4]));
    }
    match envelope[5] {
        0 => Err(EnvelopeError::RecipientCount(0)),
        n => Ok(usize::from(n)),
    }
}

fn key_encryption_key(shared: &xwing::SharedSecret, context: &[u8]) -> Result<Aes256Gcm, EnvelopeError> {
    let info = Zeroizing::new([KEK_INFO, &[0], context].concat());
    let mut kek = Zeroizing::new([0u8; SYMMETRIC_KEY_LEN]);
    hkdf_sha256(&[], shared.expose_secret(), &info, kek.as_mut_slice())?;
    Ok(Aes256Gcm::new(&SymmetricKey::copy_from(kek.as_slice())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_recipient_recovers_the_key_and_outsiders_cannot() {
        let alice = DecapsulationKey::generate().expect("rng");
        let bob = DecapsulationKey::generate().expect("rng");
        let eve = DecapsulationKey::generate().expect("rng");
        let data_key = SymmetricKey::generate().expect("rng");
        let recipients = [alice.encapsulation_key().clone(), bob.encapsulation_key().clone()];
        let envelope = seal_data_key(&data_key, &recipients, b"patient-7 epoch-3").expect("seal");
        assert_eq!(envelope.len(), PREFIX_LEN + 2 * SLOT_LEN);
        for reader in [&alice, &bob] {
            let opened = open_data_key(&envelope, reader, b"patient-7 epoch-3").expect("recipient");
            assert_eq!(opened.expose_secret(), data_key.expose_secret());
        }
        assert!(matches!(
            open_data_key(&envelope, &eve, b"patient-7 epoch-3"),
            Err(EnvelopeError::NotARecipient)
        ));
        assert!(matches!(
            open_data_key(&envelope, &alice, b"patient-7 epoch-4"),
            Err(EnvelopeError::NotARecipient)
        ));
    }

    #[test]
    fn recipient_count_is_bounded() {
        let key = SymmetricKey::generate().expect("rng");
        assert!(matches!(
            seal_data_key(&key, &[], b""),
            Err(EnvelopeError::RecipientCount(0))
        ));
    }
}
