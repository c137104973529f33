//! HMAC-SHA-256 and HKDF (RFC 5869) on ring's HMAC.
//!
//! HKDF-Expand is written here on HMAC because C2SP chunked encryption expands a 32-byte input
//! key with HKDF-SHA-512 used as a PRK directly (no Extract step), which the `hkdf` crate's
//! `from_prk` rejects (it requires a PRK of at least the hash length).

use ring::hmac;
use zeroize::Zeroizing;

/// Requested more output than HKDF can produce (255 hash blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("HKDF can produce at most {max} bytes, {requested} were requested")]
pub struct OutputTooLong {
    pub requested: usize,
    pub max: usize,
}

/// HMAC-SHA-256 of `message` under `key` (any length).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    let mut out = [0; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// HKDF-SHA-256: Extract with `salt` (empty means HashLen zero bytes, which HMAC treats the
/// same), then Expand into `out`.
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), OutputTooLong> {
    let prk = Zeroizing::new(hmac_sha256(salt, ikm));
    hkdf_expand(hmac::HMAC_SHA256, prk.as_slice(), &[info], out)
}

/// HKDF-Expand-SHA-512 of a PRK (any length), with `info` given as parts to concatenate.
pub fn hkdf_expand_sha512(prk: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), OutputTooLong> {
    hkdf_expand(hmac::HMAC_SHA512, prk, info, out)
}

/// RFC 5869 §2.3: T(i) = HMAC(PRK, T(i-1) || info || i), output T(1) || T(2) || … truncated.
fn hkdf_expand(
    algorithm: hmac::Algorithm,
    prk: &[u8],
    info: &[&[u8]],
    out: &mut [u8],
) -> Result<(), OutputTooLong> {
    let hash_len = algorithm.digest_algorithm().output_len();
    let max = 255 * hash_len;
    if out.len() > max {
        return Err(OutputTooLong {
            requested: out.len(),
            max,
        });
    }
    let key = hmac::Key::new(algorithm, prk);
    let mut previous = Zeroizing::new([0u8; 64]);
    let mut previous_len = 0;
    for (index, block) in out.chunks_mut(hash_len).enumerate() {
        let mut context = hmac::Context::with_key(&key);
        context.update(&previous[..previous_len]);
        for part in info {
            context.update(part);
        }
        // index < 255, checked above.
        context.update(&[index as u8 + 1]);
        let t = context.sign();
        previous[..hash_len].copy_from_slice(t.as_ref());
        previous_len = hash_len;
        block.copy_from_slice(&previous[..block.len()]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// RFC 5869 test case 1.
    #[test]
    fn rfc5869_case_1() {
        let mut okm = [0; 42];
        hkdf_sha256(
            &hex("000102030405060708090a0b0c"),
            &[0x0b; 22],
            &hex("f0f1f2f3f4f5f6f7f8f9"),
            &mut okm,
        )
        .expect("42 bytes");
        assert_eq!(
            okm.to_vec(),
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
    }

    #[test]
    fn info_parts_concatenate() {
        let (mut whole, mut parts) = ([0; 100], [0; 100]);
        hkdf_expand_sha512(&[9; 32], &[b"abcdef"], &mut whole).expect("fits");
        hkdf_expand_sha512(&[9; 32], &[b"ab", b"", b"cdef"], &mut parts).expect("fits");
        assert_eq!(whole, parts);
    }

    #[test]
    fn too_long_output_is_refused() {
        let mut out = vec![0; 255 * 64 + 1];
        assert!(hkdf_expand_sha512(&[1; 32], &[], &mut out).is_err());
        assert!(hkdf_expand_sha512(&[1; 32], &[], &mut out[..255 * 64]).is_ok());
    }
}
