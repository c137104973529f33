//! X-Wing, the hybrid KEM of ML-KEM-768 and X25519 (draft-connolly-cfrg-xwing-kem): a shared
//! secret stays safe while either ML-KEM-768 or X25519 stands. Built on RustCrypto `ml-kem`
//! (FIPS 203), `x25519-dalek`, `sha3` and `shake`.
//!
//! ```text
//! expanded       = SHAKE256(seed, 96)
//! (pk_M, sk_M)   = ML-KEM-768.KeyGen_internal(expanded[0..32], expanded[32..64])
//! sk_X           = expanded[64..96];  pk_X = X25519(sk_X, 9)
//! pk             = pk_M (1184) ‖ pk_X (32)            ct = ct_M (1088) ‖ ct_X (32)
//! ss             = SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ "\.//^\")
//! ```
//!
//! The decapsulation key is its 32-byte seed; the expanded keys are cached in memory only and
//! never serialised (the draft forbids transmitting them).

use std::fmt;

use ml_kem::kem::{Decapsulate, KeyExport};
use ml_kem::ml_kem_768;
use sha3::{Digest, Sha3_256};
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::keys::{fill_random, RandomError};

pub const SEED_LEN: usize = 32;
pub const ENCAPSULATION_KEY_LEN: usize = ML_KEM_EK_LEN + X25519_LEN;
pub const CIPHERTEXT_LEN: usize = ML_KEM_CT_LEN + X25519_LEN;
pub const SHARED_SECRET_LEN: usize = 32;
/// Randomness consumed by one encapsulation: ML-KEM's m, then the X25519 ephemeral key.
pub const ENCAPSULATION_SEED_LEN: usize = 64;

const ML_KEM_EK_LEN: usize = 1184;
const ML_KEM_CT_LEN: usize = 1088;
const X25519_LEN: usize = 32;
/// XWingLabel: the ASCII bytes `\./` `/^\`.
const LABEL: &[u8; 6] = b"\\.//^\\";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum XWingError {
    #[error("an X-Wing decapsulation key seed is {SEED_LEN} bytes, not {0}")]
    SeedLength(usize),
    #[error("an X-Wing encapsulation key is {ENCAPSULATION_KEY_LEN} bytes, not {0}")]
    EncapsulationKeyLength(usize),
    #[error("the ML-KEM-768 encapsulation key fails the FIPS 203 modulus check")]
    InvalidEncapsulationKey,
    #[error("an X-Wing ciphertext is {CIPHERTEXT_LEN} bytes, not {0}")]
    CiphertextLength(usize),
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A recipient's public key: 1216 bytes, validated.
#[derive(Clone)]
pub struct EncapsulationKey {
    bytes: Vec<u8>,
    ml_kem: ml_kem_768::EncapsulationKey,
    x25519: PublicKey,
}

/// A recipient's private key: the 32-byte seed and what it expands to. Zeroized on drop.
pub struct DecapsulationKey {
    seed: Zeroizing<[u8; SEED_LEN]>,
    ml_kem: ml_kem_768::DecapsulationKey,
    x25519: StaticSecret,
    public: EncapsulationKey,
}

/// An encapsulation: 1120 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext(Vec<u8>);

/// The 32-byte shared secret. Zeroized on drop; `Debug` prints `[redacted]`.
pub struct SharedSecret(Zeroizing<[u8; SHARED_SECRET_LEN]>);

impl DecapsulationKey {
    /// A fresh key pair.
    pub fn generate() -> Result<DecapsulationKey, RandomError> {
        let mut seed = Zeroizing::new([0; SEED_LEN]);
        fill_random(seed.as_mut_slice())?;
        Ok(DecapsulationKey::from_seed(&seed))
    }

    /// The key pair of a seed (the draft's `GenerateKeyPairDerand`).
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> DecapsulationKey {
        let mut expanded = Zeroizing::new([0u8; 96]);
        let mut shake = Shake256::default();
        shake.update(seed);
        shake.finalize_xof().read(expanded.as_mut_slice());

        let mut ml_kem_seed = ml_kem::Seed::from([0u8; 64]);
        ml_kem_seed.copy_from_slice(&expanded[..64]);
        let ml_kem = ml_kem_768::DecapsulationKey::from_seed(ml_kem_seed);
        ml_kem_seed.as_mut_slice().zeroize();

        let mut x25519_secret = [0u8; X25519_LEN];
        x25519_secret.copy_from_slice(&expanded[64..]);
        let x25519 = StaticSecret::from(x25519_secret);
        x25519_secret.zeroize();

        let public =
            EncapsulationKey::from_parts(ml_kem.encapsulation_key().clone(), PublicKey::from(&x25519));
        DecapsulationKey {
            seed: Zeroizing::new(*seed),
            ml_kem,
            x25519,
            public,
        }
    }

    pub fn from_seed_slice(seed: &[u8]) -> Result<DecapsulationKey, XWingError> {
        let seed: Zeroizing<[u8; SEED_LEN]> =
            Zeroizing::new(seed.try_into().map_err(|_| XWingError::SeedLength(seed.len()))?);
        Ok(DecapsulationKey::from_seed(&seed))
    }

    /// The 32-byte seed: the whole private key, for storing it (a secret).
    pub fn expose_seed(&self) -> &[u8; SEED_LEN] {
        &self.seed
    }

    pub fn encapsulation_key(&self) -> &EncapsulationKey {
        &self.public
    }

    /// The shared secret of `ciphertext`. ML-KEM rejects implicitly: a modified ciphertext
    /// yields an unrelated secret, and the AEAD that uses it fails.
    pub fn decapsulate(&self, ciphertext: &Ciphertext) -> SharedSecret {
        let (ct_m, ct_x) = ciphertext.0.split_at(ML_KEM_CT_LEN);
        let mut ml_kem_ct = ml_kem_768::Ciphertext::from([0u8; ML_KEM_CT_LEN]);
        ml_kem_ct.copy_from_slice(ct_m);
        let mut ss_m = self.ml_kem.decapsulate(&ml_kem_ct);
        let ct_x = x25519_point(ct_x);
        let ss_x = self.x25519.diffie_hellman(&PublicKey::from(ct_x));
        let secret = combine(&ss_m, ss_x.as_bytes(), &ct_x, self.public.x25519.as_bytes());
        ss_m.as_mut_slice().zeroize();
        secret
    }
}

impl EncapsulationKey {
    /// Parses and validates (FIPS 203 §7.2 modulus check) a 1216-byte encapsulation key.
    pub fn from_bytes(bytes: &[u8]) -> Result<EncapsulationKey, XWingError> {
        if bytes.len() != ENCAPSULATION_KEY_LEN {
            return Err(XWingError::EncapsulationKeyLength(bytes.len()));
        }
        let (pk_m, pk_x) = bytes.split_at(ML_KEM_EK_LEN);
        let mut encoded = ml_kem::Key::<ml_kem_768::EncapsulationKey>::from([0u8; ML_KEM_EK_LEN]);
        encoded.copy_from_slice(pk_m);
        let ml_kem =
            ml_kem_768::EncapsulationKey::new(&encoded).map_err(|_| XWingError::InvalidEncapsulationKey)?;
        Ok(EncapsulationKey::from_parts(
            ml_kem,
            PublicKey::from(x25519_point(pk_x)),
        ))
    }

    fn from_parts(ml_kem: ml_kem_768::EncapsulationKey, x25519: PublicKey) -> EncapsulationKey {
        let mut bytes = Vec::with_capacity(ENCAPSULATION_KEY_LEN);
        bytes.extend_from_slice(&ml_kem.to_bytes());
        bytes.extend_from_slice(x25519.as_bytes());
        EncapsulationKey {
            bytes,
            ml_kem,
            x25519,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A fresh shared secret and its encapsulation for this key's holder.
    pub fn encapsulate(&self) -> Result<(Ciphertext, SharedSecret), RandomError> {
        let mut eseed = Zeroizing::new([0u8; ENCAPSULATION_SEED_LEN]);
        fill_random(eseed.as_mut_slice())?;
        Ok(self.encapsulate_derand(&eseed))
    }

    /// The draft's `EncapsulateDerand`: deterministic in `eseed`, for known-answer tests.
    /// `eseed` must be uniformly random and used once.
    pub fn encapsulate_derand(&self, eseed: &[u8; ENCAPSULATION_SEED_LEN]) -> (Ciphertext, SharedSecret) {
        let mut m = ml_kem::B32::from([0u8; 32]);
        m.copy_from_slice(&eseed[..32]);
        let (ct_m, mut ss_m) = self.ml_kem.encapsulate_deterministic(&m);
        m.as_mut_slice().zeroize();

        let mut ephemeral_bytes = [0u8; X25519_LEN];
        ephemeral_bytes.copy_from_slice(&eseed[32..]);
        let ephemeral = StaticSecret::from(ephemeral_bytes);
        ephemeral_bytes.zeroize();
        let ct_x = PublicKey::from(&ephemeral);
        let ss_x = ephemeral.diffie_hellman(&self.x25519);

        let secret = combine(&ss_m, ss_x.as_bytes(), ct_x.as_bytes(), self.x25519.as_bytes());
        ss_m.as_mut_slice().zeroize();
        let mut ciphertext = Vec::with_capacity(CIPHERTEXT_LEN);
        ciphertext.extend_from_slice(&ct_m);
        ciphertext.extend_from_slice(ct_x.as_bytes());
        (Ciphertext(ciphertext), secret)
    }
}

impl Ciphertext {
    pub fn from_bytes(bytes: &[u8]) -> Result<Ciphertext, XWingError> {
        if bytes.len() != CIPHERTEXT_LEN {
            return Err(XWingError::CiphertextLength(bytes.len()));
        }
        Ok(Ciphertext(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl SharedSecret {
    /// The secret bytes, to feed a KDF.
    pub fn expose_secret(&self) -> &[u8; SHARED_SECRET_LEN] {
        &self.0
    }
}

/// The X-Wing combiner: SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ XWingLabel).
fn combine(ss_m: &[u8], ss_x: &[u8; 32], ct_x: &[u8; 32], pk_x: &[u8; 32]) -> SharedSecret {
    let digest = Sha3_256::new()
        .chain_update(ss_m)
        .chain_update(ss_x)
        .chain_update(ct_x)
        .chain_update(pk_x)
        .chain_update(LABEL)
        .finalize();
    let mut secret = Zeroizing::new([0u8; SHARED_SECRET_LEN]);
    secret.copy_from_slice(&digest);
    SharedSecret(secret)
}

/// A 32-byte X25519 u-coordinate from a slice whose length the caller fixed.
fn x25519_point(bytes: &[u8]) -> [u8; X25519_LEN] {
    let mut point = [0u8; X25519_LEN];
    point.copy_from_slice(bytes);
    point
}

impl fmt::Debug for DecapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("xwing::DecapsulationKey([redacted])")
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("xwing::SharedSecret([redacted])")
    }
}

impl fmt::Debug for EncapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xwing::EncapsulationKey({} bytes)", self.bytes.len())
    }
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xwing::Ciphertext({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_implicit_rejection() {
        let recipient = DecapsulationKey::generate().expect("rng");
        let (ciphertext, sent) = recipient.encapsulation_key().encapsulate().expect("rng");
        assert_eq!(
            recipient.decapsulate(&ciphertext).expose_secret(),
            sent.expose_secret()
        );

        for byte in [0, ML_KEM_CT_LEN - 1, ML_KEM_CT_LEN, CIPHERTEXT_LEN - 1] {
            let mut bytes = ciphertext.as_bytes().to_vec();
            bytes[byte] ^= 1;
            let modified = Ciphertext::from_bytes(&bytes).expect("length");
            assert_ne!(
                recipient.decapsulate(&modified).expose_secret(),
                sent.expose_secret(),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn public_key_round_trips_and_lengths_are_checked() {
        let recipient = DecapsulationKey::from_seed(&[9; 32]);
        let bytes = recipient.encapsulation_key().as_bytes();
        assert_eq!(bytes.len(), ENCAPSULATION_KEY_LEN);
        assert_eq!(
            EncapsulationKey::from_bytes(bytes).expect("valid").as_bytes(),
            bytes
        );
        assert_eq!(
            EncapsulationKey::from_bytes(&bytes[1..]).err(),
            Some(XWingError::EncapsulationKeyLength(1215))
        );
        assert_eq!(
            Ciphertext::from_bytes(&[0; 1119]).err(),
            Some(XWingError::CiphertextLength(1119))
        );
        assert_eq!(
            DecapsulationKey::from_seed_slice(&[0; 31])
                .err()
                .map(|e| e.to_string()),
            Some(XWingError::SeedLength(31).to_string())
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let recipient = DecapsulationKey::from_seed(&[0xEE; 32]);
        let (_, secret) = recipient.encapsulation_key().encapsulate_derand(&[1; 64]);
        assert_eq!(format!("{recipient:?}"), "xwing::DecapsulationKey([redacted])");
        assert_eq!(format!("{secret:?}"), "xwing::SharedSecret([redacted])");
    }
}
