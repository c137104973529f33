//! AES-256-GCM behind one small interface, so that the backend can be swapped by editing this
//! file alone.
//!
//! Backend: ring. Measured on this machine (one core, 16 KiB messages) it is the fastest of
//! ring, aws-lc-rs and RustCrypto `aes-gcm` and faster than OpenSSL (`benches/benches/crypto.rs`
//! measures ring, `aes-gcm` and `openssl speed` in one run), with runtime CPU feature detection,
//! so no `-C target-cpu` is needed. Only 96-bit nonces are supported: that is what every
//! construction here uses, and what NIST SP 800-38D recommends.
//!
//! Limitation: ring's expanded AES key schedule is not zeroized when dropped (ring offers no
//! way to); our own copies of key bytes are.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use super::keys::SymmetricKey;

/// Nonce length: 96 bits.
pub const NONCE_LEN: usize = 12;
/// Authentication tag length: 128 bits.
pub const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    #[error("AES-GCM authentication failed: wrong key, nonce or associated data, or a modified ciphertext")]
    Authentication,
    #[error("the ciphertext is shorter than an authentication tag")]
    MissingTag,
    #[error("the message is too long for one AES-GCM encryption")]
    TooLong,
}

/// An AES-256-GCM key ready to seal and open.
pub struct Aes256Gcm {
    key: LessSafeKey,
}

impl Aes256Gcm {
    pub fn new(key: &SymmetricKey) -> Aes256Gcm {
        Aes256Gcm {
            key: LessSafeKey::new(unbound_key(key)),
        }
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub fn seal_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map_err(|_| AeadError::TooLong)?;
        let mut out = [0; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Authenticates and decrypts `in_out` (ciphertext followed by the tag) in place and
    /// returns the plaintext, a prefix of `in_out`. On failure `in_out` is zeroed, so no
    /// unauthenticated plaintext survives.
    pub fn open_in_place<'a>(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &'a mut [u8],
    ) -> Result<&'a mut [u8], AeadError> {
        if in_out.len() < TAG_LEN {
            return Err(AeadError::MissingTag);
        }
        let opened = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut *in_out)
            .map(|plaintext| plaintext.len());
        match opened {
            Ok(len) => Ok(&mut in_out[..len]),
            Err(_) => {
                in_out.fill(0);
                Err(AeadError::Authentication)
            }
        }
    }
}

/// A 32-byte key is always accepted by AES-256-GCM; the length is fixed by the key's type.
fn unbound_key(key: &SymmetricKey) -> UnboundKey {
    match UnboundKey::new(&AES_256_GCM, key.expose_secret()) {
        Ok(unbound) => unbound,
        Err(_) => unreachable!("AES-256-GCM accepts every 32-byte key"),
    }
}

impl fmt::Debug for Aes256Gcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Aes256Gcm([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Aes256Gcm {
        Aes256Gcm::new(&SymmetricKey::from_slice(&[7; 32]).expect("32 bytes"))
    }

    #[test]
    fn round_trip_and_tamper() {
        let aead = cipher();
        let mut buffer = b"patient 42: ABP 120/80".to_vec();
        let tag = aead.seal_in_place([1; 12], b"ctx", &mut buffer).expect("seal");
        buffer.extend_from_slice(&tag);
        let mut copy = buffer.clone();
        assert_eq!(
            aead.open_in_place([1; 12], b"ctx", &mut copy).expect("open"),
            b"patient 42: ABP 120/80"
        );

        let mut flipped = buffer.clone();
        flipped[3] ^= 1;
        assert_eq!(
            aead.open_in_place([1; 12], b"ctx", &mut flipped),
            Err(AeadError::Authentication)
        );
        assert!(
            flipped.iter().all(|&b| b == 0),
            "a failed open leaves no plaintext behind"
        );

        let mut wrong_aad = buffer.clone();
        assert_eq!(
            aead.open_in_place([1; 12], b"cty", &mut wrong_aad),
            Err(AeadError::Authentication)
        );
        assert_eq!(
            aead.open_in_place([1; 12], b"", &mut [0; 15]),
            Err(AeadError::MissingTag)
        );
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", cipher()), "Aes256Gcm([redacted])");
    }
}
