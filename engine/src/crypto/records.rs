//! Encrypted Kafka records (issue 7 item 4): one AES-256-GCM message per record, under a
//! per-stream key derived from a master key, with a nonce made from the record's sequence
//! number, and associated data that binds stream id, sequence, key version and schema version,
//! so that a record moved to another stream or position fails to decrypt.
//!
//! ```text
//! record     = "SFR1" ‖ schema version (1) ‖ key version (u32 BE) ‖ epoch (16) ‖ sequence (u64 BE)
//!              ‖ AES-256-GCM ciphertext ‖ tag (16)                       header: 33 bytes
//! stream key = HKDF-SHA-256(salt = epoch, IKM = master key,
//!                           info = "sigfab.records.v1 stream key" ‖ 0x00 ‖ key version (u32 BE)
//!                                  ‖ stream id, L = 32)
//! nonce      = 0x00000000 ‖ sequence (u64 BE)
//! aad        = "sigfab.records.v1" ‖ 0x00 ‖ len(stream id) (u16 BE) ‖ stream id ‖ header (33)
//! ```
//!
//! The stream id is not stored in the record (it is the Kafka key); the reader supplies it, so
//! a record presented under another stream fails. The **epoch** is 16 random bytes drawn by each
//! [`RecordSealer`] (each producer run): keys differ between runs, so a sequence that restarts
//! after a crash never repeats a nonce under a key. Within one sealer a stream's sequence must
//! strictly increase (checked: a repeat or step back is refused), and at most
//! [`MAX_RECORDS_PER_KEY`] records are sealed under one stream key; after that the sealer draws a
//! new epoch (rotation) by itself. Bumping `key version` rotates the master key.
//! Pure functions, not wired into the Kafka sink or source yet.

use std::collections::HashMap;

use zeroize::Zeroizing;

use super::aead::{Aes256Gcm, NONCE_LEN, TAG_LEN};
use super::kdf::hkdf_sha256;
use super::keys::{fill_random, RandomError, SymmetricKey, SYMMETRIC_KEY_LEN};

const MAGIC: &[u8; 4] = b"SFR1";
pub const EPOCH_LEN: usize = 16;
/// magic, schema version, key version, epoch, sequence.
pub const HEADER_LEN: usize = 4 + 1 + 4 + EPOCH_LEN + 8;
/// Records sealed under one stream key (one epoch) before the sealer rotates to a new epoch.
pub const MAX_RECORDS_PER_KEY: u64 = 1 << 32;
const KEY_INFO: &[u8] = b"sigfab.records.v1 stream key";
const AAD_LABEL: &[u8] = b"sigfab.records.v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("not an encrypted record (bad magic or too short)")]
    Format,
    #[error("record schema version {0} is not supported")]
    Schema(u8),
    #[error("record key version {0} is unknown here")]
    KeyVersion(u32),
    #[error("the record failed authentication: wrong stream, position, key or a modified record")]
    Authentication,
    #[error("record sequence {sequence} is not after {last} on this stream: a nonce would repeat")]
    SequenceNotIncreasing { sequence: u64, last: u64 },
    #[error("record sequence {found} where {expected} was expected")]
    Position { expected: u64, found: u64 },
    #[error("the stream id is longer than 65,535 bytes")]
    StreamIdTooLong,
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("key derivation or encryption failed")]
    Crypto,
}

fn stream_key(
    master: &SymmetricKey,
    key_version: u32,
    epoch: &[u8; EPOCH_LEN],
    stream: &str,
) -> Result<Aes256Gcm, RecordError> {
    let info = [KEY_INFO, &[0], &key_version.to_be_bytes(), stream.as_bytes()].concat();
    let mut key = Zeroizing::new([0u8; SYMMETRIC_KEY_LEN]);
    hkdf_sha256(epoch, master.expose_secret(), &info, key.as_mut_slice()).map_err(|_| RecordError::Crypto)?;
    Ok(Aes256Gcm::new(&SymmetricKey::copy_from(key.as_slice())))
}

fn nonce(sequence: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[4..].copy_from_slice(&sequence.to_be_bytes());
    nonce
}

fn aad(stream: &str, header: &[u8]) -> Result<Vec<u8>, RecordError> {
    let len = u16::try_from(stream.len()).map_err(|_| RecordError::StreamIdTooLong)?;
    Ok([AAD_LABEL, &[0], &len.to_be_bytes(), stream.as_bytes(), header].concat())
}

fn header(schema: u8, key_version: u32, epoch: &[u8; EPOCH_LEN], sequence: u64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..4].copy_from_slice(MAGIC);
    out[4] = schema;
    out[5..9].copy_from_slice(&key_version.to_be_bytes());
    out[9..9 + EPOCH_LEN].copy_from_slice(epoch);
    out[9 + EPOCH_LEN..].copy_from_slice(&sequence.to_be_bytes());
    out
}

struct SealState {
    epoch: [u8; EPOCH_LEN],
    key: Aes256Gcm,
    last: Option<u64>,
    sealed: u64,
}

/// Seals records for any number of streams under one master key version.
pub struct RecordSealer {
    master: SymmetricKey,
    key_version: u32,
    schema: u8,
    streams: HashMap<String, SealState>,
    limit: u64,
}

impl std::fmt::Debug for RecordSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecordSealer {{ key_version: {}, master: [redacted] }}",
            self.key_version
        )
    }
}

impl RecordSealer {
    pub fn new(master: SymmetricKey, key_version: u32, schema: u8) -> RecordSealer {
        RecordSealer {
            master,
            key_version,
            schema,
            streams: HashMap::new(),
            limit: MAX_RECORDS_PER_KEY,
        }
    }

    /// A lower rotation limit, for tests of the rotation.
    #[doc(hidden)]
    pub fn with_rotation_limit(mut self, limit: u64) -> RecordSealer {
        self.limit = limit.max(1);
        self
    }

    fn fresh_state(&self, stream: &str) -> Result<SealState, RecordError> {
        let mut epoch = [0u8; EPOCH_LEN];
        fill_random(&mut epoch)?;
        Ok(SealState {
            key: stream_key(&self.master, self.key_version, &epoch, stream)?,
            epoch,
            last: None,
            sealed: 0,
        })
    }

    /// Seals `plaintext` as record `sequence` of `stream`. Sequences must strictly increase
    /// per stream.
    pub fn seal(&mut self, stream: &str, sequence: u64, plaintext: &[u8]) -> Result<Vec<u8>, RecordError> {
        // A new stream, or one at its record limit (rotation), gets a fresh key; a rotated
        // stream keeps its last sequence so numbers still only increase.
        let current = self.streams.get(stream);
        if current.is_none_or(|s| s.sealed >= self.limit) {
            let last = current.and_then(|s| s.last);
            let mut state = self.fresh_state(stream)?;
            state.last = last;
            self.streams.insert(stream.to_string(), state);
        }
        let (schema, key_version) = (self.schema, self.key_version);
        let state = self.streams.get_mut(stream).ok_or(RecordError::Crypto)?;
        if let Some(last) = state.last {
            if sequence <= last {
                return Err(RecordError::SequenceNotIncreasing { sequence, last });
            }
        }
        let head = header(schema, key_version, &state.epoch, sequence);
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&head);
        out.extend_from_slice(plaintext);
        let tag = state
            .key
            .seal_in_place(nonce(sequence), &aad(stream, &head)?, &mut out[HEADER_LEN..])
            .map_err(|_| RecordError::Crypto)?;
        out.extend_from_slice(&tag);
        state.last = Some(sequence);
        state.sealed += 1;
        Ok(out)
    }
}

/// Opens records; holds master keys by version (for rotation) and caches stream keys.
pub struct RecordOpener {
    masters: HashMap<u32, SymmetricKey>,
    schema: u8,
    keys: HashMap<(String, u32, [u8; EPOCH_LEN]), Aes256Gcm>,
}

impl std::fmt::Debug for RecordOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordOpener { masters: [redacted] }")
    }
}

/// An opened record.
pub struct Opened {
    pub sequence: u64,
    pub key_version: u32,
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl RecordOpener {
    pub fn new(schema: u8) -> RecordOpener {
        RecordOpener {
            masters: HashMap::new(),
            schema,
            keys: HashMap::new(),
        }
    }

    pub fn add_master(&mut self, key_version: u32, master: SymmetricKey) {
        self.masters.insert(key_version, master);
    }

    /// Opens `record` as a record of `stream`; nothing is returned unless it authenticates.
    pub fn open(&mut self, stream: &str, record: &[u8]) -> Result<Opened, RecordError> {
        if record.len() < HEADER_LEN + TAG_LEN || record[..4] != MAGIC[..] {
            return Err(RecordError::Format);
        }
        let head = &record[..HEADER_LEN];
        if head[4] != self.schema {
            return Err(RecordError::Schema(head[4]));
        }
        let key_version = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
        let mut epoch = [0u8; EPOCH_LEN];
        epoch.copy_from_slice(&head[9..9 + EPOCH_LEN]);
        let mut sequence = [0u8; 8];
        sequence.copy_from_slice(&head[9 + EPOCH_LEN..]);
        let sequence = u64::from_be_bytes(sequence);
        let slot = (stream.to_string(), key_version, epoch);
        if !self.keys.contains_key(&slot) {
            let master = self
                .masters
                .get(&key_version)
                .ok_or(RecordError::KeyVersion(key_version))?;
            let key = stream_key(master, key_version, &epoch, stream)?;
            self.keys.insert(slot.clone(), key);
        }
        let Some(key) = self.keys.get(&slot) else {
            unreachable!("inserted above")
        };
        let mut buffer = Zeroizing::new(record[HEADER_LEN..].to_vec());
        let len = key
            .open_in_place(nonce(sequence), &aad(stream, head)?, &mut buffer)
            .map_err(|_| RecordError::Authentication)?
            .len();
        buffer.truncate(len);
        Ok(Opened {
            sequence,
            key_version,
            plaintext: buffer,
        })
    }

    /// Opens `record` and requires it to be record `expected` of the stream (its position).
    pub fn open_at(&mut self, stream: &str, expected: u64, record: &[u8]) -> Result<Opened, RecordError> {
        let opened = self.open(stream, record)?;
        if opened.sequence != expected {
            return Err(RecordError::Position {
                expected,
                found: opened.sequence,
            });
        }
        Ok(opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(byte: u8) -> SymmetricKey {
        SymmetricKey::from_slice(&[byte; 32]).expect("32 bytes")
    }

    fn opener() -> RecordOpener {
        let mut opener = RecordOpener::new(1);
        opener.add_master(1, master(7));
        opener
    }

    #[test]
    fn records_round_trip_and_bind_stream_and_position() {
        let mut sealer = RecordSealer::new(master(7), 1, 1);
        let r0 = sealer.seal("p1-aa", 0, b"frame zero").expect("seal");
        let r1 = sealer.seal("p1-aa", 1, b"frame one").expect("seal");
        let other = sealer.seal("p1-bb", 0, b"frame zero").expect("seal");
        let mut opener = opener();
        assert_eq!(
            opener
                .open_at("p1-aa", 0, &r0)
                .expect("open")
                .plaintext
                .as_slice(),
            b"frame zero"
        );
        assert_eq!(
            opener
                .open_at("p1-aa", 1, &r1)
                .expect("open")
                .plaintext
                .as_slice(),
            b"frame one"
        );
        // Moved to another stream: the key and the AAD differ.
        assert_eq!(opener.open("p1-bb", &r0).err(), Some(RecordError::Authentication));
        // Moved to another position: the reader expects another sequence ...
        assert!(matches!(
            opener.open_at("p1-aa", 1, &r0),
            Err(RecordError::Position { .. })
        ));
        // ... and rewriting the sequence in the header fails the tag.
        let mut moved = r0.clone();
        moved[HEADER_LEN - 1] = 1;
        assert_eq!(
            opener.open("p1-aa", &moved).err(),
            Some(RecordError::Authentication)
        );
        // Another stream's record 0 spliced into this stream's record 0 slot.
        assert_eq!(
            opener.open_at("p1-aa", 0, &other).err(),
            Some(RecordError::Authentication)
        );
        // Key version and schema version are bound too.
        let mut version = r0.clone();
        version[8] = 2;
        assert_eq!(
            opener.open("p1-aa", &version).err(),
            Some(RecordError::KeyVersion(2))
        );
        opener.add_master(2, master(7));
        assert_eq!(
            opener.open("p1-aa", &version).err(),
            Some(RecordError::Authentication)
        );
        let mut schema = r0.clone();
        schema[4] = 2;
        assert_eq!(opener.open("p1-aa", &schema).err(), Some(RecordError::Schema(2)));
        // Every single bit flip fails.
        for bit in 0..r1.len() * 8 {
            let mut flipped = r1.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(opener.open("p1-aa", &flipped).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn a_sequence_never_repeats_under_a_key_and_keys_rotate() {
        let mut sealer = RecordSealer::new(master(7), 1, 1).with_rotation_limit(2);
        sealer.seal("s", 5, b"a").expect("seal");
        assert_eq!(
            sealer.seal("s", 5, b"b").err(),
            Some(RecordError::SequenceNotIncreasing { sequence: 5, last: 5 })
        );
        assert!(sealer.seal("s", 4, b"b").is_err());
        let second = sealer.seal("s", 6, b"b").expect("seal");
        let third = sealer.seal("s", 7, b"c").expect("seal, after rotation");
        // The third record is under a new epoch, hence a new key.
        assert_ne!(second[9..9 + EPOCH_LEN], third[9..9 + EPOCH_LEN]);
        let mut opener = opener();
        assert_eq!(
            opener.open_at("s", 7, &third).expect("open").plaintext.as_slice(),
            b"c"
        );
        // A restarted producer (new sealer) that reuses sequence 5 gets another key.
        let mut restarted = RecordSealer::new(master(7), 1, 1);
        let again = restarted.seal("s", 6, b"b").expect("seal");
        assert_ne!(again[9..9 + EPOCH_LEN], second[9..9 + EPOCH_LEN]);
        assert_ne!(again[HEADER_LEN..], second[HEADER_LEN..]);
    }
}
