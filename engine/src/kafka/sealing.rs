//! Encrypted Kafka records in the Kafka sink and source (docs/security.md, "Encrypted Kafka
//! records"): the master key from a file or variable, the sink's per-stream record counter
//! (the nonce's sequence), and the source's position check, which accepts the re-reads that
//! at-least-once implies and refuses copies of a record at another position.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::config::{LoadedPipeline, RecordKeySpec};
use crate::crypto::keyfile::unhex;
use crate::crypto::keys::SymmetricKey;
use crate::crypto::records::{RecordError, RecordOpener, RecordSealer, EPOCH_LEN, HEADER_LEN};

/// Schema version in every record: the wire format's.
const SCHEMA_VERSION: u8 = 1;

/// Why the master key could not be had. Names the file or variable, never the key.
#[derive(Debug, thiserror::Error)]
pub enum RecordKeyError {
    #[error("cannot read the kafka record key file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("the kafka record key variable {name} is not set")]
    EnvMissing { name: String },
    #[error("the kafka record key from {origin} is not 64 hex digits (32 bytes)")]
    Malformed { origin: String },
    #[error("kafka.encrypt has no key source (key_file or key_env)")]
    NoSource,
}

/// Reads the master key: 64 hex digits, surrounding white space ignored.
pub fn read_master(pipeline: &LoadedPipeline, spec: &RecordKeySpec) -> Result<SymmetricKey, RecordKeyError> {
    let mut text = Zeroizing::new(Vec::new());
    let origin = match (&spec.key_file, &spec.key_env) {
        (Some(file), _) => {
            let path = pipeline.resolve(&file.value);
            let read = std::fs::File::open(&path).and_then(|mut file| {
                // Room for the whole file up front: a reallocation would leave a copy behind.
                let len = file.metadata()?.len();
                text.reserve(usize::try_from(len).unwrap_or(0).saturating_add(64));
                file.read_to_end(&mut text)
            });
            read.map_err(|source| RecordKeyError::File {
                path: path.clone(),
                source,
            })?;
            format!("file {}", path.display())
        }
        (None, Some(env)) => {
            let name = env.value.clone();
            let value =
                std::env::var_os(&name).ok_or_else(|| RecordKeyError::EnvMissing { name: name.clone() })?;
            text.extend_from_slice(value.as_encoded_bytes());
            drop(value);
            format!("variable {name}")
        }
        (None, None) => return Err(RecordKeyError::NoSource),
    };
    let malformed = || RecordKeyError::Malformed {
        origin: origin.clone(),
    };
    let trimmed = std::str::from_utf8(&text).map_err(|_| malformed())?.trim();
    let bytes = Zeroizing::new(unhex(trimmed).ok_or_else(malformed)?);
    SymmetricKey::from_slice(&bytes).map_err(|_| malformed())
}

/// The sink's sealing: one sealer (one fresh epoch per stream and run) and a per-stream record
/// counter. Items on one stream id are not one sequence (a stream's frames and the records
/// computed from them share the id and their sequence numbers), so the counter, not the
/// item's sequence, is the record sequence: 0, 1, 2, … per stream and sink run, taken before
/// sealing so that no number is used twice, even after a refused send.
pub struct Sealing {
    sealer: RecordSealer,
    next: HashMap<String, u64>,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealing {{ {:?}, streams: {} }}", self.sealer, self.next.len())
    }
}

impl Sealing {
    pub fn new(master: SymmetricKey, key_version: u32) -> Sealing {
        Sealing {
            sealer: RecordSealer::new(master, key_version, SCHEMA_VERSION),
            next: HashMap::new(),
        }
    }

    /// Seals one wire message of `stream` as its next record.
    pub fn seal(&mut self, stream: &str, message: &[u8]) -> Result<Vec<u8>, RecordError> {
        let sequence = match self.next.get_mut(stream) {
            Some(next) => next,
            None => self.next.entry(stream.to_string()).or_insert(0),
        };
        let this = *sequence;
        *sequence = this.checked_add(1).ok_or(RecordError::Crypto)?;
        self.sealer.seal(stream, this, message)
    }
}

/// Why an encrypted record was not accepted (the dead-letter reason). Never names the stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("encrypted record without a UTF-8 stream id as its key")]
    NoStreamKey,
    #[error("encrypted record: {0}")]
    Record(#[from] RecordError),
    #[error(
        "encrypted record replayed: sequence {sequence} of its stream key is not after {last}, \
         already accepted at an earlier offset (a copy or a moved record)"
    )]
    Replayed { sequence: u64, last: u64 },
    #[error(
        "encrypted record moved: its stream key's records are on partition {expected} of \
         '{topic}', this one is on partition {found}"
    )]
    OtherPartition {
        topic: String,
        expected: i32,
        found: i32,
    },
    #[error("encrypted record refused before at this offset")]
    RefusedBefore,
}

/// Where one stream key's records have been read, in this consumer run.
struct Position {
    topic: String,
    partition: i32,
    last_offset: i64,
    last_sequence: u64,
}

/// The source's opening. Per stream key (stream id, key version, epoch), records must come from
/// one topic partition with sequences strictly increasing in offset order. A record at an offset
/// at or below the highest accepted one of its stream key is a re-read of the append-only log
/// (after a rebalance or restart rewinds to the committed offset) and is accepted again, unless
/// it was refused the first time. Anyone who can produce to the topic can only append, so a copy
/// lands at a higher offset with a sequence already seen, or on another partition: refused.
pub struct Opening {
    opener: RecordOpener,
    positions: HashMap<(String, u32, [u8; EPOCH_LEN]), Position>,
    refused: HashSet<(String, i32, i64)>,
}

impl std::fmt::Debug for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Opening {{ {:?}, stream keys: {} }}",
            self.opener,
            self.positions.len()
        )
    }
}

impl Opening {
    pub fn new(master: SymmetricKey, key_version: u32) -> Opening {
        let mut opener = RecordOpener::new(SCHEMA_VERSION);
        opener.add_master(key_version, master);
        Opening {
            opener,
            positions: HashMap::new(),
            refused: HashSet::new(),
        }
    }

    /// Opens the record at `offset` of `topic`/`partition` whose Kafka key is `key`; returns
    /// the wire message inside.
    pub fn open(
        &mut self,
        key: Option<&[u8]>,
        topic: &str,
        partition: i32,
        offset: i64,
        record: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let stream = key
            .and_then(|k| std::str::from_utf8(k).ok())
            .ok_or(OpenError::NoStreamKey)?;
        let place = (topic.to_string(), partition, offset);
        if self.refused.contains(&place) {
            return Err(OpenError::RefusedBefore);
        }
        let opened = self.opener.open(stream, record)?;
        let mut epoch = [0u8; EPOCH_LEN];
        // The opener checked the length and authenticated the header.
        epoch.copy_from_slice(&record[9..9 + EPOCH_LEN]);
        debug_assert!(record.len() >= HEADER_LEN);
        let slot = (stream.to_string(), opened.key_version, epoch);
        let Some(position) = self.positions.get_mut(&slot) else {
            self.positions.insert(
                slot,
                Position {
                    topic: topic.to_string(),
                    partition,
                    last_offset: offset,
                    last_sequence: opened.sequence,
                },
            );
            return Ok(opened.plaintext);
        };
        let verdict = if position.topic != topic || position.partition != partition {
            Err(OpenError::OtherPartition {
                topic: position.topic.clone(),
                expected: position.partition,
                found: partition,
            })
        } else if offset <= position.last_offset {
            // A re-read of a record accepted before.
            Ok(())
        } else if opened.sequence > position.last_sequence {
            position.last_offset = offset;
            position.last_sequence = opened.sequence;
            Ok(())
        } else {
            Err(OpenError::Replayed {
                sequence: opened.sequence,
                last: position.last_sequence,
            })
        };
        match verdict {
            Ok(()) => Ok(opened.plaintext),
            Err(error) => {
                self.refused.insert(place);
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> SymmetricKey {
        SymmetricKey::from_slice(&[9; 32]).expect("32 bytes")
    }

    #[test]
    fn the_sink_counts_per_stream_and_the_source_opens_in_order() {
        let mut sealing = Sealing::new(master(), 1);
        let a0 = sealing.seal("a", b"a zero").expect("seal");
        let b0 = sealing.seal("b", b"b zero").expect("seal");
        let a1 = sealing.seal("a", b"a one").expect("seal");
        // The record sequence is the sink's own per-stream counter.
        assert_eq!(a0[25..33], 0u64.to_be_bytes());
        assert_eq!(b0[25..33], 0u64.to_be_bytes());
        assert_eq!(a1[25..33], 1u64.to_be_bytes());
        let mut opening = Opening::new(master(), 1);
        let open =
            |o: &mut Opening, key: &[u8], p: i32, off: i64, r: &[u8]| o.open(Some(key), "t", p, off, r);
        assert_eq!(
            open(&mut opening, b"a", 0, 0, &a0).expect("a0").as_slice(),
            b"a zero"
        );
        assert_eq!(
            open(&mut opening, b"b", 0, 1, &b0).expect("b0").as_slice(),
            b"b zero"
        );
        assert_eq!(
            open(&mut opening, b"a", 0, 2, &a1).expect("a1").as_slice(),
            b"a one"
        );
        // Under another stream's key: authentication fails.
        assert_eq!(
            open(&mut opening, b"b", 0, 3, &a1),
            Err(OpenError::Record(RecordError::Authentication))
        );
        // A copy appended later on the same partition: a replay.
        assert_eq!(
            open(&mut opening, b"a", 0, 4, &a0),
            Err(OpenError::Replayed { sequence: 0, last: 1 })
        );
        // A copy on another partition.
        assert!(matches!(
            open(&mut opening, b"a", 1, 0, &a1),
            Err(OpenError::OtherPartition {
                expected: 0,
                found: 1,
                ..
            })
        ));
        // A rewind re-reads offsets 0 to 4: the accepted ones again, the refused one refused.
        assert!(open(&mut opening, b"a", 0, 0, &a0).is_ok());
        assert!(open(&mut opening, b"b", 0, 1, &b0).is_ok());
        assert!(open(&mut opening, b"a", 0, 2, &a1).is_ok());
        assert_eq!(open(&mut opening, b"a", 0, 4, &a0), Err(OpenError::RefusedBefore));
        // Without a key, or under another key version.
        assert_eq!(opening.open(None, "t", 0, 5, &a1), Err(OpenError::NoStreamKey));
        let mut other = Sealing::new(master(), 2);
        let v2 = other.seal("a", b"x").expect("seal");
        assert_eq!(
            open(&mut opening, b"a", 0, 6, &v2),
            Err(OpenError::Record(RecordError::KeyVersion(2)))
        );
    }

    #[test]
    fn a_restarted_sink_starts_a_new_stream_key() {
        let mut first = Sealing::new(master(), 1);
        let mut second = Sealing::new(master(), 1);
        let r1 = first.seal("a", b"one").expect("seal");
        let r2 = second.seal("a", b"one").expect("seal");
        assert_ne!(r1[9..25], r2[9..25], "a fresh epoch per run");
        let mut opening = Opening::new(master(), 1);
        assert!(opening.open(Some(b"a"), "t", 0, 0, &r1).is_ok());
        // Sequence 0 again, but under the new run's stream key: accepted.
        assert!(opening.open(Some(b"a"), "t", 0, 1, &r2).is_ok());
    }
}
