//! Keyed pseudonyms and per-patient date offsets: HMAC-SHA-256 under a
//! secret key, one domain-separated input per use, so the same value gives
//! the same pseudonym on every run and instance holding the key, and nobody
//! without the key can recompute (or brute-force) it.

use std::fmt;

use ring::hmac;
use zeroize::Zeroizing;

/// Shortest secret accepted: 256 bits, the HMAC-SHA-256 output size.
pub const MIN_KEY_LEN: usize = 32;
/// Bytes of the HMAC kept in a pseudonym (128 bits).
const PSEUDONYM_BYTES: usize = 16;
const PSEUDONYM_DOMAIN: &[u8] = b"sigfab/pseudonym/v1\0";
const DATE_SHIFT_DOMAIN: &[u8] = b"sigfab/date-shift/v1\0";

/// A key was too short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a pseudonymisation key must hold at least {MIN_KEY_LEN} bytes, not {actual}")]
pub struct ShortKey {
    pub actual: usize,
}

/// The secret and its version. The bytes are zeroized when the caller's
/// copy is dropped; `Debug` never prints them.
pub struct PseudonymKey {
    key: hmac::Key,
    version: u32,
}

impl PseudonymKey {
    /// Takes the secret bytes (zeroized on return) and the version embedded
    /// in every pseudonym, so that keys can rotate.
    pub fn new(secret: Zeroizing<Vec<u8>>, version: u32) -> Result<PseudonymKey, ShortKey> {
        if secret.len() < MIN_KEY_LEN {
            return Err(ShortKey { actual: secret.len() });
        }
        Ok(PseudonymKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            version,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    fn tag(&self, domain: &[u8], kind: &str, value: &str) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(domain);
        context.update(kind.as_bytes());
        context.update(b"\0");
        context.update(value.as_bytes());
        context.sign()
    }

    /// `p<version>-<32 hex digits>`: 128 bits of HMAC-SHA-256 over the
    /// domain, the kind of identifier (so a patient id and a stream id with
    /// the same text get different pseudonyms) and the value.
    pub fn pseudonym(&self, kind: &str, value: &str) -> String {
        let tag = self.tag(PSEUDONYM_DOMAIN, kind, value);
        let mut text = format!("p{}-", self.version);
        for byte in &tag.as_ref()[..PSEUDONYM_BYTES] {
            text.push_str(&format!("{byte:02x}"));
        }
        text
    }

    /// A uniform draw in `0..n` (n > 0) from a separate HMAC domain, for the
    /// date offset of one patient.
    pub fn draw(&self, kind: &str, identity: &str, n: u64) -> u64 {
        let tag = self.tag(DATE_SHIFT_DOMAIN, kind, identity);
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        // 64 random bits modulo n < 2^20: the bias is below 2^-44.
        u64::from_be_bytes(first) % n.max(1)
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PseudonymKey {{ version: {}, key: [redacted] }}", self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn key(byte: u8, version: u32) -> PseudonymKey {
        PseudonymKey::new(Zeroizing::new(vec![byte; 32]), version).unwrap()
    }

    #[test]
    fn pseudonyms_are_stable_keyed_versioned_and_kind_separated() {
        let a = key(1, 3);
        assert_eq!(
            a.pseudonym("patient", "1234567"),
            key(1, 3).pseudonym("patient", "1234567")
        );
        assert_ne!(
            a.pseudonym("patient", "1234567"),
            key(2, 3).pseudonym("patient", "1234567")
        );
        assert_ne!(
            a.pseudonym("patient", "1234567"),
            a.pseudonym("stream", "1234567")
        );
        let p = a.pseudonym("patient", "1234567");
        assert!(p.starts_with("p3-"));
        assert_eq!(p.len(), 3 + 32);
    }

    #[test]
    fn short_keys_are_refused_and_debug_is_redacted() {
        let err = PseudonymKey::new(Zeroizing::new(vec![7; 31]), 1).unwrap_err();
        assert_eq!(err.actual, 31);
        let text = format!("{:?}", key(0x41, 1));
        assert!(text.contains("[redacted]") && !text.contains("65") && !text.contains("AAAA"));
    }

    #[test]
    fn draws_stay_in_range_and_depend_on_the_key() {
        let (a, b) = (key(1, 1), key(2, 1));
        assert!((0..200).all(|i| a.draw("patient", &i.to_string(), 105) < 105));
        let differ = (0..50)
            .filter(|i| a.draw("patient", &i.to_string(), 1000) != b.draw("patient", &i.to_string(), 1000));
        assert!(differ.count() > 40);
    }
}
