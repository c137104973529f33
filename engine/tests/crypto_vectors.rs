//! Wycheproof vectors for the symmetric primitives: C2SP chunked encryption (all 35), AES-GCM
//! (every 256-bit-key case), HKDF-SHA-256 and HMAC-SHA-256. Vector files are read from
//! `SIGFAB_SHARED_VECTORS` (default `../shared/vectors`); a missing file fails the test.

mod crypto_common;

use std::io::{Read, Write};

use crypto_common::{has_flag, hex, load, sha512, stream_decrypt, tc_id, wycheproof_tests};
use sigfab_engine::crypto::aead::{AeadError, Aes256Gcm, NONCE_LEN};
use sigfab_engine::crypto::chunked::{ChunkedReader, ChunkedWriter, HEADER_LEN, SALT_LEN};
use sigfab_engine::crypto::kdf::{hkdf_sha256, hmac_sha256};
use sigfab_engine::crypto::SymmetricKey;

fn zlib_decompress(compressed: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .read_to_end(&mut out)
        .expect("the vector's ct is a zlib stream");
    out
}

#[test]
fn c2sp_chunked_encryption_all_wycheproof_vectors() {
    let file = load("wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json");
    let tests = wycheproof_tests(&file);
    assert_eq!(tests.len(), 35);
    for (group, test) in tests {
        assert_eq!(group["aead"], "AEAD_AES_256_GCM");
        assert_eq!(group["sha"], "SHA-512");
        check_c2sp_vector(test);
    }
}

fn check_c2sp_vector(test: &serde_json::Value) {
    let id = tc_id(test);
    let valid = test["result"] == "valid";
    let ciphertext = zlib_decompress(&hex(&test["ct"]));
    let context = hex(&test["ctx"]);
    let key = match SymmetricKey::from_slice(&hex(&test["key"])) {
        Ok(key) => key,
        Err(_) => {
            assert!(has_flag(test, "InvalidKeySize") && !valid, "tc {id}: key refused");
            return;
        }
    };
    assert!(
        !has_flag(test, "InvalidKeySize"),
        "tc {id}: a key of the wrong size was accepted"
    );
    if has_flag(test, "HeaderFailure") {
        assert!(
            ChunkedReader::new(ciphertext.as_slice(), &key, &context).is_err(),
            "tc {id}: must fail on the header, before any chunk"
        );
    }
    let (released, outcome) = stream_decrypt(&ciphertext, &key, &context);
    let expected_len = test["msgLength"].as_u64().map(|n| n as usize);
    if valid {
        assert!(outcome.is_ok(), "tc {id}: {:?}", outcome.err());
        assert_eq!(Some(released.len()), expected_len, "tc {id}: length");
        assert_eq!(sha512(&released), hex(&test["msgSha512"]), "tc {id}: SHA-512");
        check_reencryption(id, &released, &key, &context, &ciphertext);
    } else {
        assert!(outcome.is_err(), "tc {id} must be rejected");
        // Only a prefix of validly encrypted chunks may come out before the error.
        let allowed = expected_len.unwrap_or(0);
        assert!(
            released.len() <= allowed,
            "tc {id}: released {} > {allowed}",
            released.len()
        );
        if released.len() == allowed && allowed > 0 {
            assert_eq!(sha512(&released), hex(&test["msgSha512"]), "tc {id}: prefix");
        }
    }
}

/// Re-encrypting the message with the vector's salt reproduces the ciphertext byte for byte.
fn check_reencryption(id: u64, message: &[u8], key: &SymmetricKey, context: &[u8], ciphertext: &[u8]) {
    let mut salt = [0; SALT_LEN];
    salt.copy_from_slice(&ciphertext[..SALT_LEN]);
    let mut writer = ChunkedWriter::with_salt(Vec::new(), key, context, salt).expect("writer");
    writer.write_all(message).expect("write");
    let sealed = writer.finish().expect("finish");
    assert_eq!(sealed.len(), ciphertext.len(), "tc {id}: length of re-encryption");
    assert!(
        sealed[..HEADER_LEN] == ciphertext[..HEADER_LEN],
        "tc {id}: header"
    );
    assert!(sealed == ciphertext, "tc {id}: re-encryption differs");
}

/// Wycheproof AES-GCM cases whose nonce is not 96 bits. Our AES-256-GCM takes a `[u8; 12]`
/// nonce by design (every construction here uses 96-bit nonces, SP 800-38D's recommendation),
/// so these cannot be expressed: listed here, counted, and checked against the file so that
/// none is skipped silently. 240–258 (128-bit), 263 (120), 264 (160), 273–276 (256, 512,
/// 1024, 2056), 299–310 (8 to 80 bits) are valid; 315 and 316 (empty nonce) are invalid.
const UNSUPPORTED_NONCE_SIZE: [u64; 39] = [
    240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255, 256, 257, 258, 263, 264,
    273, 274, 275, 276, 299, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 315, 316,
];

#[test]
fn aes_256_gcm_wycheproof_vectors() {
    let file = load("wycheproof/aes_gcm_test.json");
    let (mut ran, mut unsupported) = (0, Vec::new());
    for (group, test) in wycheproof_tests(&file) {
        if group["keySize"] != 256 {
            continue;
        }
        if group["ivSize"] != 96 {
            unsupported.push(tc_id(test));
            continue;
        }
        assert_eq!(group["tagSize"], 128);
        check_aes_gcm_vector(test);
        ran += 1;
    }
    eprintln!(
        "AES-256-GCM: {ran} cases run; {} with non-96-bit nonces unsupported by design: {unsupported:?}",
        unsupported.len()
    );
    assert_eq!(ran, 66);
    assert_eq!(unsupported, UNSUPPORTED_NONCE_SIZE);
}

fn check_aes_gcm_vector(test: &serde_json::Value) {
    let id = tc_id(test);
    let aead = Aes256Gcm::new(&SymmetricKey::from_slice(&hex(&test["key"])).expect("32-byte key"));
    let nonce: [u8; NONCE_LEN] = hex(&test["iv"]).try_into().expect("96-bit nonce");
    let (aad, message) = (hex(&test["aad"]), hex(&test["msg"]));
    let mut sealed = [hex(&test["ct"]), hex(&test["tag"])].concat();
    let opened = aead.open_in_place(nonce, &aad, &mut sealed).map(|p| p.to_vec());
    if test["result"] == "valid" {
        assert_eq!(opened.as_deref(), Ok(message.as_slice()), "tc {id}: open");
        let mut buffer = message.clone();
        let tag = aead.seal_in_place(nonce, &aad, &mut buffer).expect("seal");
        assert_eq!(
            [buffer, tag.to_vec()].concat(),
            [hex(&test["ct"]), hex(&test["tag"])].concat(),
            "tc {id}: seal"
        );
    } else {
        assert_eq!(opened, Err(AeadError::Authentication), "tc {id} must be rejected");
    }
}

#[test]
fn hkdf_sha256_wycheproof_vectors() {
    let file = load("wycheproof/hkdf_sha256_test.json");
    let tests = wycheproof_tests(&file);
    assert_eq!(tests.len(), 86);
    for (_, test) in tests {
        let id = tc_id(test);
        let size = test["size"].as_u64().expect("size") as usize;
        let mut okm = vec![0; size];
        let result = hkdf_sha256(
            &hex(&test["salt"]),
            &hex(&test["ikm"]),
            &hex(&test["info"]),
            &mut okm,
        );
        if test["result"] == "valid" {
            assert!(result.is_ok(), "tc {id}");
            assert_eq!(okm, hex(&test["okm"]), "tc {id}");
        } else {
            assert!(result.is_err(), "tc {id} must be rejected");
        }
    }
}

#[test]
fn hmac_sha256_wycheproof_vectors() {
    let file = load("wycheproof/hmac_sha256_test.json");
    let tests = wycheproof_tests(&file);
    assert_eq!(tests.len(), 174);
    for (group, test) in tests {
        let id = tc_id(test);
        let tag_len = group["tagSize"].as_u64().expect("tagSize") as usize / 8;
        let computed = hmac_sha256(&hex(&test["key"]), &hex(&test["msg"]));
        let matches = computed[..tag_len] == hex(&test["tag"])[..];
        assert_eq!(matches, test["result"] == "valid", "tc {id}");
    }
}

/// HKDF-SHA-512 (Extract by HMAC-SHA-512 here, then our Expand): checks the Expand that the
/// C2SP key derivation uses, including the output-size limit.
#[test]
fn hkdf_sha512_wycheproof_vectors_through_our_expand() {
    use sigfab_engine::crypto::kdf::hkdf_expand_sha512;
    let file = load("wycheproof/hkdf_sha512_test.json");
    let tests = wycheproof_tests(&file);
    assert_eq!(tests.len(), 83);
    for (_, test) in tests {
        let id = tc_id(test);
        let salt = ring::hmac::Key::new(ring::hmac::HMAC_SHA512, &hex(&test["salt"]));
        let prk = ring::hmac::sign(&salt, &hex(&test["ikm"]));
        let mut okm = vec![0; test["size"].as_u64().expect("size") as usize];
        let result = hkdf_expand_sha512(prk.as_ref(), &[&hex(&test["info"])], &mut okm);
        if test["result"] == "valid" {
            assert!(result.is_ok(), "tc {id}");
            assert_eq!(okm, hex(&test["okm"]), "tc {id}");
        } else {
            assert!(result.is_err(), "tc {id} must be rejected");
        }
    }
}
