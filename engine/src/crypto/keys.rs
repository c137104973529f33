//! Secret key types and the system random number generator.
//!
//! Every secret lives in a type that zeroizes its bytes on drop and whose `Debug` prints
//! `[redacted]`, so a key can reach neither a log line nor an error message by accident.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a [`SymmetricKey`] in bytes.
pub const SYMMETRIC_KEY_LEN: usize = 32;

/// The operating system's random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// A key had the wrong length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key must be {expected} bytes, not {actual}")]
pub struct KeyLengthError {
    pub expected: usize,
    pub actual: usize,
}

/// Fills `out` from the operating system's CSPRNG.
pub fn fill_random(out: &mut [u8]) -> Result<(), RandomError> {
    SystemRandom::new().fill(out).map_err(|_| RandomError)
}

/// A 256-bit secret key: an AES-256 key, or a C2SP chunked-encryption input key (the per-file
/// data key of an envelope).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SymmetricKey([u8; SYMMETRIC_KEY_LEN]);

impl SymmetricKey {
    /// A fresh uniformly random key.
    pub fn generate() -> Result<SymmetricKey, RandomError> {
        let mut key = SymmetricKey([0; SYMMETRIC_KEY_LEN]);
        fill_random(&mut key.0)?;
        Ok(key)
    }

    /// Takes a copy of `bytes`; the caller should zeroize its own copy.
    pub fn from_slice(bytes: &[u8]) -> Result<SymmetricKey, KeyLengthError> {
        let array: [u8; SYMMETRIC_KEY_LEN] = bytes.try_into().map_err(|_| KeyLengthError {
            expected: SYMMETRIC_KEY_LEN,
            actual: bytes.len(),
        })?;
        Ok(SymmetricKey(array))
    }

    /// Copies the first 32 bytes of `bytes` (a derived key inside this module).
    pub(crate) fn copy_from(bytes: &[u8]) -> SymmetricKey {
        let mut key = SymmetricKey([0; SYMMETRIC_KEY_LEN]);
        key.0.copy_from_slice(&bytes[..SYMMETRIC_KEY_LEN]);
        key
    }

    /// The key bytes, for the primitives inside this module only.
    pub(crate) fn expose_secret(&self) -> &[u8; SYMMETRIC_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let key = SymmetricKey::from_slice(&[0xAB; 32]).expect("32 bytes");
        let shown = format!("{key:?}");
        assert_eq!(shown, "SymmetricKey([redacted])");
        assert!(!shown.to_lowercase().contains("ab"));
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        for len in [0, 16, 31, 33, 64] {
            let error = SymmetricKey::from_slice(&vec![1; len]).expect_err("wrong length");
            assert_eq!(error.actual, len);
        }
    }

    #[test]
    fn generated_keys_differ() {
        let a = SymmetricKey::generate().expect("rng");
        let b = SymmetricKey::generate().expect("rng");
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
