//! Recipient key files: the text form of X-Wing key pairs that `sigfab keygen` writes.
//!
//! ```text
//! identity  (secret, PREFIX.identity, mode 0600):
//!     sigfab-identity-v1:<64 hex digits: the 32-byte X-Wing seed>:<8 hex digits: checksum>
//! recipient (public, PREFIX.recipient):
//!     sigfab-recipient-v1:<2,432 hex digits: the 1,216-byte X-Wing public key>:<8 hex digits>
//! checksum  = first 4 bytes of SHA-256(type prefix ‖ ":" ‖ key bytes), lower-case hex
//! ```
//!
//! Lines starting with `#` and blank lines are comments; exactly one key line must remain. The
//! type prefix stops a public key being used where a secret is expected and the reverse; the
//! checksum catches a damaged copy (it is not a MAC). A recipient's **fingerprint** (what the
//! audit log records) is the first 16 bytes of SHA-256(public key bytes) in hex.

use std::path::Path;

use zeroize::Zeroizing;

use super::xwing::{DecapsulationKey, EncapsulationKey, XWingError, ENCAPSULATION_KEY_LEN, SEED_LEN};

pub const IDENTITY_PREFIX: &str = "sigfab-identity-v1";
pub const RECIPIENT_PREFIX: &str = "sigfab-recipient-v1";

/// Why a key file could not be read. Never quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a {expected} key file (expected one line starting with '{expected}:')")]
    WrongType { path: String, expected: &'static str },
    #[error("{path}: the key is malformed ({what})")]
    Malformed { path: String, what: &'static str },
    #[error("{path}: the checksum does not match: the key file is damaged")]
    Checksum { path: String },
    #[error("{path}: {source}")]
    Key {
        path: String,
        #[source]
        source: XWingError,
    },
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    text
}

/// Parses lower- or upper-case hex; `None` on odd length or a non-hex digit.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    digits
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

fn checksum(prefix: &str, key: &[u8]) -> String {
    hex(&sha256(&[prefix.as_bytes(), b":", key])[..4])
}

/// The fingerprint of a recipient: 32 hex digits of SHA-256 of the public key.
pub fn fingerprint(recipient: &EncapsulationKey) -> String {
    hex(&sha256(&[recipient.as_bytes()])[..16])
}

/// The identity file's text (a secret: the caller writes it with mode 0600 and drops it).
pub fn identity_text(identity: &DecapsulationKey) -> Zeroizing<String> {
    let seed = identity.expose_seed();
    Zeroizing::new(format!(
        "# sigfab X-Wing identity (ML-KEM-768 + X25519). SECRET: keep it, never share it.\n\
         # recipient fingerprint {}\n{IDENTITY_PREFIX}:{}:{}\n",
        fingerprint(identity.encapsulation_key()),
        Zeroizing::new(hex(seed)).as_str(),
        checksum(IDENTITY_PREFIX, seed)
    ))
}

/// The recipient file's text (public).
pub fn recipient_text(recipient: &EncapsulationKey) -> String {
    format!(
        "# sigfab X-Wing recipient (public key), fingerprint {}\n{RECIPIENT_PREFIX}:{}:{}\n",
        fingerprint(recipient),
        hex(recipient.as_bytes()),
        checksum(RECIPIENT_PREFIX, recipient.as_bytes())
    )
}

/// The one key line's payload bytes, checked against the prefix and checksum.
fn parse(text: &str, prefix: &'static str, path: &str) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let wrong_type = || KeyFileError::WrongType {
        path: path.to_string(),
        expected: prefix,
    };
    let line = lines.next().ok_or_else(wrong_type)?;
    if lines.next().is_some() {
        return Err(KeyFileError::Malformed {
            path: path.to_string(),
            what: "more than one key line",
        });
    }
    let mut fields = line.split(':');
    if fields.next() != Some(prefix) {
        return Err(wrong_type());
    }
    let malformed = |what| KeyFileError::Malformed {
        path: path.to_string(),
        what,
    };
    let (Some(body), Some(sum), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(malformed("expected TYPE:KEY:CHECKSUM"));
    };
    let bytes = Zeroizing::new(unhex(body).ok_or_else(|| malformed("the key is not hex"))?);
    let expected = checksum(prefix, &bytes);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        sum.to_ascii_lowercase().as_bytes(),
    )) {
        return Err(KeyFileError::Checksum {
            path: path.to_string(),
        });
    }
    Ok(bytes)
}

pub fn parse_identity(text: &str, path: &str) -> Result<DecapsulationKey, KeyFileError> {
    let seed = parse(text, IDENTITY_PREFIX, path)?;
    if seed.len() != SEED_LEN {
        return Err(KeyFileError::Malformed {
            path: path.to_string(),
            what: "an identity holds a 32-byte seed",
        });
    }
    DecapsulationKey::from_seed_slice(&seed).map_err(|source| KeyFileError::Key {
        path: path.to_string(),
        source,
    })
}

pub fn parse_recipient(text: &str, path: &str) -> Result<EncapsulationKey, KeyFileError> {
    let bytes = parse(text, RECIPIENT_PREFIX, path)?;
    if bytes.len() != ENCAPSULATION_KEY_LEN {
        return Err(KeyFileError::Malformed {
            path: path.to_string(),
            what: "a recipient holds a 1,216-byte X-Wing public key",
        });
    }
    EncapsulationKey::from_bytes(&bytes).map_err(|source| KeyFileError::Key {
        path: path.to_string(),
        source,
    })
}

fn read(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// Loads an identity file (the text buffer is zeroized after parsing).
pub fn load_identity(path: &Path) -> Result<DecapsulationKey, KeyFileError> {
    parse_identity(&read(path)?, &path.display().to_string())
}

pub fn load_recipient(path: &Path) -> Result<EncapsulationKey, KeyFileError> {
    parse_recipient(&read(path)?, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_recipients_round_trip_and_do_not_mix() {
        let identity = DecapsulationKey::generate().expect("rng");
        let secret = identity_text(&identity);
        let public = recipient_text(identity.encapsulation_key());
        let back = parse_identity(&secret, "id").expect("identity");
        assert_eq!(back.expose_seed(), identity.expose_seed());
        let recipient = parse_recipient(&public, "pub").expect("recipient");
        assert_eq!(recipient.as_bytes(), identity.encapsulation_key().as_bytes());
        assert!(matches!(
            parse_identity(&public, "pub"),
            Err(KeyFileError::WrongType { .. })
        ));
        assert!(matches!(
            parse_recipient(&secret, "id"),
            Err(KeyFileError::WrongType { .. })
        ));
    }

    #[test]
    fn a_damaged_key_fails_its_checksum_and_errors_hide_the_key() {
        let identity = DecapsulationKey::generate().expect("rng");
        let secret = identity_text(&identity);
        let line = secret.lines().last().expect("key line");
        let body_start = IDENTITY_PREFIX.len() + 1;
        let mut damaged = line.as_bytes().to_vec();
        damaged[body_start] = if damaged[body_start] == b'0' { b'1' } else { b'0' };
        let damaged = String::from_utf8(damaged).expect("ascii");
        let error = parse_identity(&damaged, "id").expect_err("damaged");
        assert!(matches!(error, KeyFileError::Checksum { .. }));
        let seed_hex = hex(identity.expose_seed());
        assert!(!error.to_string().contains(&seed_hex[..16]));
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).expect("hex"), bytes);
        assert_eq!(unhex("ABcd").expect("hex"), vec![0xab, 0xcd]);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
