//! X-Wing known-answer vectors (xwing/test-vectors.json), and the Wycheproof vectors of the
//! primitives under it: ML-KEM-768 decapsulation and encapsulation (RustCrypto `ml-kem`) and
//! X25519 (`x25519-dalek`).

mod crypto_common;

use crypto_common::{hex, load, tc_id, wycheproof_tests};
use ml_kem::kem::{Decapsulate, KeyExport};
use ml_kem::ml_kem_768;
use sigfab_engine::crypto::xwing::{Ciphertext, DecapsulationKey, EncapsulationKey};

#[test]
fn xwing_draft_vectors() {
    let vectors = load("xwing/test-vectors.json");
    let vectors = vectors.as_array().expect("a list of vectors");
    assert_eq!(vectors.len(), 3);
    for (i, vector) in vectors.iter().enumerate() {
        let seed = hex(&vector["seed"]);
        assert_eq!(
            hex(&vector["sk"]),
            seed,
            "vector {i}: the private key is the seed"
        );
        let recipient = DecapsulationKey::from_seed_slice(&seed).expect("32-byte seed");
        let public = recipient.encapsulation_key();
        assert_eq!(public.as_bytes(), hex(&vector["pk"]), "vector {i}: pk");

        let sender_view = EncapsulationKey::from_bytes(&hex(&vector["pk"])).expect("valid pk");
        let eseed: [u8; 64] = hex(&vector["eseed"]).try_into().expect("64-byte eseed");
        let (ciphertext, sent) = sender_view.encapsulate_derand(&eseed);
        assert_eq!(ciphertext.as_bytes(), hex(&vector["ct"]), "vector {i}: ct");
        assert_eq!(
            sent.expose_secret().to_vec(),
            hex(&vector["ss"]),
            "vector {i}: ss (encapsulate)"
        );

        let received =
            recipient.decapsulate(&Ciphertext::from_bytes(&hex(&vector["ct"])).expect("1120 bytes"));
        assert_eq!(
            received.expose_secret().to_vec(),
            hex(&vector["ss"]),
            "vector {i}: ss (decapsulate)"
        );
    }
}

/// Decapsulation vectors: a 64-byte seed gives `ek`, and `c` decapsulates to `K`. The invalid
/// ones are seeds or ciphertexts of the wrong length, which the typed API refuses.
#[test]
fn ml_kem_768_wycheproof_decapsulation() {
    let file = load("wycheproof/mlkem_768_test.json");
    let tests = wycheproof_tests(&file);
    assert_eq!(tests.len(), 193);
    let mut valid = 0;
    for (_, test) in tests {
        let id = tc_id(test);
        let seed = ml_kem::Seed::try_from(hex(&test["seed"]).as_slice());
        let ciphertext = ml_kem_768::Ciphertext::try_from(hex(&test["c"]).as_slice());
        let (Ok(seed), Ok(ciphertext)) = (seed, ciphertext) else {
            assert_eq!(test["result"], "invalid", "tc {id}: lengths refused");
            continue;
        };
        assert_eq!(
            test["result"], "valid",
            "tc {id}: an invalid vector passed the length checks"
        );
        let key = ml_kem_768::DecapsulationKey::from_seed(seed);
        assert_eq!(
            key.encapsulation_key().to_bytes().to_vec(),
            hex(&test["ek"]),
            "tc {id}: ek"
        );
        assert_eq!(
            key.decapsulate(&ciphertext).to_vec(),
            hex(&test["K"]),
            "tc {id}: K"
        );
        valid += 1;
    }
    assert_eq!(valid, 153);
}

/// Encapsulation vectors: valid keys encapsulate `m` to (`c`, `K`); keys of the wrong length
/// or with coefficients not reduced mod q must be refused (FIPS 203 §7.2).
#[test]
fn ml_kem_768_wycheproof_encapsulation() {
    let file = load("wycheproof/mlkem_768_encaps_test.json");
    let tests = wycheproof_tests(&file);
    assert_eq!(tests.len(), 265);
    let (mut valid, mut refused) = (0, 0);
    for (_, test) in tests {
        let id = tc_id(test);
        let key = ml_kem::Key::<ml_kem_768::EncapsulationKey>::try_from(hex(&test["ek"]).as_slice())
            .ok()
            .and_then(|encoded| ml_kem_768::EncapsulationKey::new(&encoded).ok());
        let Some(key) = key else {
            assert_eq!(test["result"], "invalid", "tc {id}: a valid key was refused");
            refused += 1;
            continue;
        };
        assert_eq!(test["result"], "valid", "tc {id}: an invalid key was accepted");
        let m = ml_kem::B32::try_from(hex(&test["m"]).as_slice()).expect("32-byte m");
        let (ciphertext, shared) = key.encapsulate_deterministic(&m);
        assert_eq!(ciphertext.to_vec(), hex(&test["c"]), "tc {id}: c");
        assert_eq!(shared.to_vec(), hex(&test["K"]), "tc {id}: K");
        valid += 1;
    }
    assert_eq!((valid, refused), (133, 132));
}

/// Our X-Wing refuses the same unreduced ML-KEM keys when they come inside an X-Wing key.
#[test]
fn xwing_refuses_unreduced_ml_kem_keys() {
    let file = load("wycheproof/mlkem_768_encaps_test.json");
    let mut checked = 0;
    for (_, test) in wycheproof_tests(&file) {
        let ek = hex(&test["ek"]);
        if ek.len() != 1184 || test["result"] != "invalid" {
            continue;
        }
        let xwing_key = [ek, vec![9; 32]].concat();
        assert!(
            EncapsulationKey::from_bytes(&xwing_key).is_err(),
            "tc {}",
            tc_id(test)
        );
        checked += 1;
    }
    assert_eq!(checked, 112);
}

/// Every X25519 vector, including low-order and non-canonical public keys ("acceptable"),
/// gives the listed shared secret. X-Wing needs no all-zero check: the ML-KEM half and the
/// combiner's hash of ct_X and pk_X carry the security when X25519 degenerates.
#[test]
fn x25519_wycheproof() {
    let file = load("wycheproof/x25519_test.json");
    let tests = wycheproof_tests(&file);
    assert_eq!(tests.len(), 518);
    for (_, test) in tests {
        let id = tc_id(test);
        assert_ne!(
            test["result"], "invalid",
            "tc {id}: this file has no invalid X25519 cases"
        );
        let private: [u8; 32] = hex(&test["private"]).try_into().expect("32-byte scalar");
        let public: [u8; 32] = hex(&test["public"]).try_into().expect("32-byte point");
        let secret = x25519_dalek::StaticSecret::from(private);
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(public));
        assert_eq!(shared.as_bytes().to_vec(), hex(&test["shared"]), "tc {id}");
    }
}
