//! Helpers shared by the crypto test files: Wycheproof JSON, hex, SHA-512.

#![allow(dead_code)]

use serde_json::Value;
use sigfab_engine::crypto::chunked::{ChunkedError, ChunkedReader};
use sigfab_engine::crypto::SymmetricKey;

/// Loads a vector file under `SIGFAB_SHARED_VECTORS` (fails loudly when missing).
pub fn load(relative: &str) -> Value {
    let path = sigfab_engine::shared_vectors::require(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every test of a Wycheproof file with its group.
pub fn wycheproof_tests(file: &Value) -> Vec<(&Value, &Value)> {
    let groups = file["testGroups"].as_array().expect("testGroups");
    groups
        .iter()
        .flat_map(|group| {
            group["tests"]
                .as_array()
                .expect("tests")
                .iter()
                .map(move |test| (group, test))
        })
        .collect()
}

pub fn hex(value: &Value) -> Vec<u8> {
    hex_str(value.as_str().expect("a hex string"))
}

pub fn hex_str(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha512(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA512, bytes)
        .as_ref()
        .to_vec()
}

pub fn has_flag(test: &Value, flag: &str) -> bool {
    test["flags"]
        .as_array()
        .is_some_and(|flags| flags.iter().any(|f| f == flag))
}

pub fn tc_id(test: &Value) -> u64 {
    test["tcId"].as_u64().expect("tcId")
}

/// Decrypts chunk by chunk and returns the plaintext released before the outcome.
pub fn stream_decrypt(
    ciphertext: &[u8],
    key: &SymmetricKey,
    context: &[u8],
) -> (Vec<u8>, Result<(), ChunkedError>) {
    let mut released = Vec::new();
    let mut reader = match ChunkedReader::new(ciphertext, key, context) {
        Ok(reader) => reader,
        Err(error) => return (released, Err(error)),
    };
    loop {
        match reader.next_chunk() {
            Ok(Some(chunk)) => released.extend_from_slice(chunk),
            Ok(None) => return (released, Ok(())),
            Err(error) => {
                assert!(
                    matches!(reader.next_chunk(), Err(ChunkedError::AlreadyFailed)),
                    "a failed stream keeps failing"
                );
                return (released, Err(error));
            }
        }
    }
}
