//! Encryption at rest: the building blocks of the encrypted file sink.
//!
//! - [`keys`]: secret key types (zeroized on drop, `Debug` prints `[redacted]`) and the system RNG.
//! - [`aead`]: AES-256-GCM behind one small interface (backend: ring).
//! - [`kdf`]: HMAC-SHA-256 and HKDF (RFC 5869), written on HMAC.
//! - [`chunked`]: the C2SP chunked-encryption format (c2sp.org/chunked-encryption), streaming.
//! - [`xwing`]: the X-Wing hybrid KEM (ML-KEM-768 + X25519), draft-connolly-cfrg-xwing-kem.
//! - [`envelope`]: a per-file data key wrapped to one or more X-Wing recipients.
//! - [`keyfile`]: the text form of recipient key pairs (`sigfab keygen`).
//! - [`archive`]: the per-patient keystore and archive segments (crypto-shredding).
//! - [`records`]: per-stream sealing of Kafka records (not wired into Kafka yet).
//!
//! Pure functions and `std::io` types, no tokio. Formats byte by byte, key handling and the
//! threat model: `docs/security.md`.

pub mod aead;
pub mod archive;
pub mod chunked;
pub mod envelope;
pub mod kdf;
pub mod keyfile;
pub mod keys;
pub mod records;
pub mod xwing;

pub use keys::{RandomError, SymmetricKey};
