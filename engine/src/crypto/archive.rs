//! The encrypted archive: a keystore of per-patient keys (wrapped for X-Wing recipients) and
//! archive segments encrypted under keys derived from them, so that deleting a patient's
//! keystore entries (crypto-shredding) makes that patient's segments unreadable to everyone,
//! recipients included, while every other patient's still decrypt.
//!
//! ```text
//! keystore entry  KEYSTORE/<patient>/<key id hex>.key  =  envelope (crypto/envelope.rs) of the
//!                 32-byte patient key, context = "sigfab.keystore.v1" ‖ 0x00 ‖ patient ‖ 0x00 ‖ key id
//! segment         "SFA1" ‖ 0x01 ‖ n ‖ patient (n bytes) ‖ key id (16) ‖ sequence (u64 BE) ‖ salt (32)
//!                 ‖ C2SP chunked(input key = segment key, context = the header above)
//! segment key     HKDF-SHA-256(salt = segment salt, IKM = patient key,
//!                              info = "sigfab.archive.v1 segment key" ‖ 0x00 ‖ header[..6+n+24], L = 32)
//! ```
//!
//! A segment holds no recipient-wrapped key: only the keystore entry can produce its key. That
//! is the point (`docs/security.md`, "Crypto-shredding").

use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::chunked::{self, ChunkedError, ChunkedWriter};
use super::envelope::{self, EnvelopeError};
use super::kdf::hkdf_sha256;
use super::keyfile::{hex, unhex};
use super::keys::{fill_random, RandomError, SymmetricKey, SYMMETRIC_KEY_LEN};
use super::xwing::{DecapsulationKey, EncapsulationKey};

const SEGMENT_MAGIC: &[u8; 4] = b"SFA1";
const SEGMENT_VERSION: u8 = 1;
pub const KEY_ID_LEN: usize = 16;
pub const SEGMENT_SALT_LEN: usize = 32;
pub const MAX_PATIENT_ID_LEN: usize = 128;
const KEYSTORE_CONTEXT: &[u8] = b"sigfab.keystore.v1";
const SEGMENT_KEY_INFO: &[u8] = b"sigfab.archive.v1 segment key";
/// File name extension of a finished segment.
pub const SEGMENT_EXTENSION: &str = "sfa";
/// Extension of a keystore entry.
const ENTRY_EXTENSION: &str = "key";

/// Why an archive or keystore operation failed. Names files and pseudonyms, never key bytes
/// or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("this stream id cannot name a keystore entry or archive folder (not shown: it may identify a patient): use 1 to {MAX_PATIENT_ID_LEN} characters of A-Z a-z 0-9 . _ - (not starting with '.'); pseudonymise stream ids first (deidentify)")]
    PatientId,
    #[error("this stream id is not a deidentify pseudonym (not shown: it may identify a patient); put a deidentify operator before the archive, or set pseudonyms_only: false if stream ids are already pseudonyms")]
    NotAPseudonym,
    #[error("no key for patient {patient} (key id {key_id}) in the keystore: it was shredded, or this is the wrong keystore")]
    KeyNotFound { patient: String, key_id: String },
    #[error(
        "no keystore entries for patient {0}: nothing to shred (already shredded, or the wrong keystore)"
    )]
    NothingToShred(String),
    #[error("keystore entry {path}: {source}")]
    Entry {
        path: String,
        #[source]
        source: EnvelopeError,
    },
    #[error("not an archive segment (bad magic or version)")]
    SegmentMagic,
    #[error("the segment header is truncated or malformed")]
    SegmentHeader,
    #[error("segment {0}: authentication failed: {1}")]
    Segment(String, #[source] ChunkedError),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Chunked(#[from] ChunkedError),
    #[error("key derivation failed")]
    Kdf,
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Whether `id` may name a keystore folder and appear in file names and segment headers.
pub fn check_patient_id(id: &str) -> Result<(), ArchiveError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_PATIENT_ID_LEN
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        // The id may be a raw identifier: never echo it.
        Err(ArchiveError::PatientId)
    }
}

/// Whether `id` has the shape of a `deidentify` output: a stream pseudonym `p<version>-<32 hex
/// digits>`, or the operator's audit stream `deid-audit-<16 hex digits>`.
pub fn looks_like_pseudonym(id: &str) -> bool {
    let hex_of = |text: &str, n: usize| {
        text.len() == n
            && text
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if let Some(rest) = id.strip_prefix("deid-audit-") {
        return hex_of(rest, 16);
    }
    let Some(rest) = id.strip_prefix('p') else {
        return false;
    };
    let Some((version, digest)) = rest.split_once('-') else {
        return false;
    };
    !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) && hex_of(digest, 32)
}

/// One patient's key of one epoch (one sink run): 32 random bytes, zeroized on drop.
pub struct PatientKey {
    patient: String,
    id: [u8; KEY_ID_LEN],
    key: SymmetricKey,
}

impl std::fmt::Debug for PatientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PatientKey {{ patient: {}, id: {}, key: [redacted] }}",
            self.patient,
            hex(&self.id)
        )
    }
}

impl PatientKey {
    pub fn patient(&self) -> &str {
        &self.patient
    }

    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }
}

fn entry_context(patient: &str, key_id: &[u8; KEY_ID_LEN]) -> Vec<u8> {
    [KEYSTORE_CONTEXT, &[0], patient.as_bytes(), &[0], key_id].concat()
}

/// The keystore folder: one subfolder per patient pseudonym, one entry per patient key.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    pub fn new(dir: &Path) -> Keystore {
        Keystore {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn patient_dir(&self, patient: &str) -> PathBuf {
        self.dir.join(patient)
    }

    fn entry_path(&self, patient: &str, key_id: &[u8; KEY_ID_LEN]) -> PathBuf {
        self.patient_dir(patient)
            .join(format!("{}.{ENTRY_EXTENSION}", hex(key_id)))
    }

    /// A fresh patient key, wrapped for `recipients` and stored durably (written to a `.part`
    /// file, fsynced, renamed, folder fsynced) before it is returned.
    pub fn create_patient_key(
        &self,
        patient: &str,
        recipients: &[EncapsulationKey],
    ) -> Result<PatientKey, ArchiveError> {
        check_patient_id(patient)?;
        let mut id = [0u8; KEY_ID_LEN];
        fill_random(&mut id)?;
        let key = SymmetricKey::generate()?;
        let path = self.entry_path(patient, &id);
        let entry =
            envelope::seal_data_key(&key, recipients, &entry_context(patient, &id)).map_err(|source| {
                ArchiveError::Entry {
                    path: path.display().to_string(),
                    source,
                }
            })?;
        write_durably(&path, &entry)?;
        Ok(PatientKey {
            patient: patient.to_string(),
            id,
            key,
        })
    }

    /// Unwraps the patient key a segment names, as `identity`.
    pub fn open_patient_key(
        &self,
        patient: &str,
        key_id: &[u8; KEY_ID_LEN],
        identity: &DecapsulationKey,
    ) -> Result<PatientKey, ArchiveError> {
        check_patient_id(patient)?;
        let path = self.entry_path(patient, key_id);
        let entry = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArchiveError::KeyNotFound {
                    patient: patient.to_string(),
                    key_id: hex(key_id),
                })
            }
            Err(e) => return Err(io_error(&path)(e)),
        };
        let key =
            envelope::open_data_key(&entry, identity, &entry_context(patient, key_id)).map_err(|source| {
                ArchiveError::Entry {
                    path: path.display().to_string(),
                    source,
                }
            })?;
        Ok(PatientKey {
            patient: patient.to_string(),
            id: *key_id,
            key,
        })
    }

    /// Crypto-shreds a patient: overwrites each of the patient's entries with zeros, fsyncs,
    /// unlinks it, then removes the folder and fsyncs the keystore folder. Returns how many
    /// entries were removed. Overwriting is best effort (SSDs and copy-on-write file systems
    /// may keep old blocks); what makes the shredding hold is that no copy of an entry
    /// survives anywhere (backups included) — `docs/security.md`.
    pub fn shred(&self, patient: &str) -> Result<usize, ArchiveError> {
        check_patient_id(patient)?;
        let dir = self.patient_dir(patient);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArchiveError::NothingToShred(patient.to_string()))
            }
            Err(e) => return Err(io_error(&dir)(e)),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry.map_err(io_error(&dir))?.path();
            let len = std::fs::metadata(&path).map_err(io_error(&path))?.len();
            {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_error(&path))?;
                let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
                file.write_all(&zeros).map_err(io_error(&path))?;
                file.sync_all().map_err(io_error(&path))?;
            }
            std::fs::remove_file(&path).map_err(io_error(&path))?;
            removed += 1;
        }
        sync_dir(&dir)?;
        std::fs::remove_dir(&dir).map_err(io_error(&dir))?;
        sync_dir(&self.dir)?;
        Ok(removed)
    }
}

/// Writes `bytes` to `path` so that it survives a crash once this returns: `path.part`,
/// fsync, rename, fsync of the folder. Creates the folder.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let part = part_path(path);
    {
        let mut file = std::fs::File::create(&part).map_err(io_error(&part))?;
        file.write_all(bytes).map_err(io_error(&part))?;
        file.sync_all().map_err(io_error(&part))?;
    }
    std::fs::rename(&part, path).map_err(io_error(path))?;
    sync_dir(dir)
}

/// `NAME.part` next to `NAME`.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// fsyncs a folder, so that renames and unlinks in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// A segment's clear header: which patient key it is under, and its place in that key's
/// sequence. It is the chunked encryption's context, so any change to it fails the commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    pub patient: String,
    pub key_id: [u8; KEY_ID_LEN],
    pub sequence: u64,
    pub salt: [u8; SEGMENT_SALT_LEN],
}

impl SegmentHeader {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.patient.len() + KEY_ID_LEN + 8 + SEGMENT_SALT_LEN);
        out.extend_from_slice(SEGMENT_MAGIC);
        out.push(SEGMENT_VERSION);
        out.push(self.patient.len() as u8);
        out.extend_from_slice(self.patient.as_bytes());
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.salt);
        out
    }

    /// Parses the header at the start of `bytes`; returns it and its length.
    pub fn parse(bytes: &[u8]) -> Result<(SegmentHeader, usize), ArchiveError> {
        if bytes.len() < 6 {
            return Err(ArchiveError::SegmentHeader);
        }
        if bytes[..4] != SEGMENT_MAGIC[..] || bytes[4] != SEGMENT_VERSION {
            return Err(ArchiveError::SegmentMagic);
        }
        let n = usize::from(bytes[5]);
        let len = 6 + n + KEY_ID_LEN + 8 + SEGMENT_SALT_LEN;
        if bytes.len() < len {
            return Err(ArchiveError::SegmentHeader);
        }
        let patient = std::str::from_utf8(&bytes[6..6 + n])
            .map_err(|_| ArchiveError::SegmentHeader)?
            .to_string();
        check_patient_id(&patient).map_err(|_| ArchiveError::SegmentHeader)?;
        let mut at = 6 + n;
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&bytes[at..at + KEY_ID_LEN]);
        at += KEY_ID_LEN;
        let mut sequence = [0u8; 8];
        sequence.copy_from_slice(&bytes[at..at + 8]);
        at += 8;
        let mut salt = [0u8; SEGMENT_SALT_LEN];
        salt.copy_from_slice(&bytes[at..at + SEGMENT_SALT_LEN]);
        Ok((
            SegmentHeader {
                patient,
                key_id,
                sequence: u64::from_be_bytes(sequence),
                salt,
            },
            len,
        ))
    }

    /// The segment's file name: `<key id hex>-<sequence, 10 digits>.sfa`, inside the archive's
    /// `<patient>/` folder.
    pub fn file_name(&self) -> String {
        segment_file_name(&hex(&self.key_id), self.sequence)
    }

    /// Relative path inside the archive folder.
    pub fn relative_path(&self) -> PathBuf {
        Path::new(&self.patient).join(self.file_name())
    }

    fn segment_key(&self, patient_key: &PatientKey) -> Result<SymmetricKey, ArchiveError> {
        let header = self.to_bytes();
        let info = [SEGMENT_KEY_INFO, &[0], &header[..header.len() - SEGMENT_SALT_LEN]].concat();
        let mut key = Zeroizing::new([0u8; SYMMETRIC_KEY_LEN]);
        hkdf_sha256(
            &self.salt,
            patient_key.key.expose_secret(),
            &info,
            key.as_mut_slice(),
        )
        .map_err(|_| ArchiveError::Kdf)?;
        Ok(SymmetricKey::copy_from(key.as_slice()))
    }
}

/// `<key id hex>-<sequence, 10 digits>.sfa`.
pub fn segment_file_name(key_id_hex: &str, sequence: u64) -> String {
    format!("{key_id_hex}-{sequence:010}.{SEGMENT_EXTENSION}")
}

/// Parses a key id written in hex (from a file name).
pub fn parse_key_id(text: &str) -> Option<[u8; KEY_ID_LEN]> {
    unhex(text)?.try_into().ok()
}

/// Starts segment `sequence` under `patient_key`: writes the header and returns the chunked
/// writer (call `finish()` to end the segment) and the header.
pub fn start_segment<W: Write>(
    mut out: W,
    patient_key: &PatientKey,
    sequence: u64,
) -> Result<(ChunkedWriter<W>, SegmentHeader), ArchiveError> {
    let mut salt = [0u8; SEGMENT_SALT_LEN];
    fill_random(&mut salt)?;
    let header = SegmentHeader {
        patient: patient_key.patient.clone(),
        key_id: patient_key.id,
        sequence,
        salt,
    };
    let bytes = header.to_bytes();
    out.write_all(&bytes).map_err(ChunkedError::Io)?;
    let key = header.segment_key(patient_key)?;
    Ok((ChunkedWriter::new(out, &key, &bytes)?, header))
}

/// Decrypts a whole segment held in memory: nothing is returned unless every chunk, the
/// final one included, authenticates. `open_key` supplies the patient key the header names.
pub fn open_segment(
    bytes: &[u8],
    name: &str,
    open_key: impl FnOnce(&SegmentHeader) -> Result<std::rc::Rc<PatientKey>, ArchiveError>,
) -> Result<(SegmentHeader, Zeroizing<Vec<u8>>), ArchiveError> {
    let (header, len) = SegmentHeader::parse(bytes)?;
    let patient_key = open_key(&header)?;
    let key = header.segment_key(&patient_key)?;
    let plaintext = chunked::decrypt(&bytes[len..], &key, &bytes[..len])
        .map_err(|e| ArchiveError::Segment(name.to_string(), e))?;
    Ok((header, plaintext))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sigfab-archive-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn segments_round_trip_and_shredding_locks_them() {
        let dir = temp("roundtrip");
        let store = Keystore::new(&dir);
        let alice = DecapsulationKey::generate().expect("rng");
        let recipients = [alice.encapsulation_key().clone()];
        let key = store.create_patient_key("p1-abc", &recipients).expect("key");
        let (mut writer, header) = start_segment(Vec::new(), &key, 7).expect("start");
        writer.write_all(b"frames").expect("write");
        let file = writer.finish().expect("finish");
        let open = |h: &SegmentHeader| {
            store
                .open_patient_key(&h.patient, &h.key_id, &alice)
                .map(std::rc::Rc::new)
        };
        let (back, plain) = open_segment(&file, "s", open).expect("open");
        assert_eq!(back, header);
        assert_eq!(plain.as_slice(), b"frames");
        // Any header change fails before a chunk is decrypted.
        let mut changed = file.clone();
        changed[6 + 6 + KEY_ID_LEN + 7] ^= 1; // the sequence's last byte
        assert!(open_segment(&changed, "s", open).is_err());
        assert_eq!(store.shred("p1-abc").expect("shred"), 1);
        assert!(matches!(
            open_segment(&file, "s", open),
            Err(ArchiveError::KeyNotFound { .. })
        ));
        assert!(matches!(
            store.shred("p1-abc"),
            Err(ArchiveError::NothingToShred(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_entry_copied_under_another_patient_or_key_id_does_not_open() {
        let dir = temp("moved-entry");
        let store = Keystore::new(&dir);
        let alice = DecapsulationKey::generate().expect("rng");
        let recipients = [alice.encapsulation_key().clone()];
        let a = store.create_patient_key("p1-aaaa", &recipients).expect("key");
        let b = store.create_patient_key("p1-bbbb", &recipients).expect("key");
        // Overwrite B's entry with A's: B's key id and patient are in the context.
        std::fs::copy(
            store.entry_path("p1-aaaa", &a.id),
            store.entry_path("p1-bbbb", &b.id),
        )
        .expect("copy");
        assert!(matches!(
            store.open_patient_key("p1-bbbb", &b.id, &alice),
            Err(ArchiveError::Entry { .. })
        ));
        let opened = store
            .open_patient_key("p1-aaaa", &a.id, &alice)
            .expect("A still opens");
        assert_eq!(opened.key.expose_secret(), a.key.expose_secret());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn raw_ids_are_refused_and_not_echoed() {
        for id in ["", ".hidden", "Jane Doe", "a/b", "../x", &"x".repeat(129)] {
            let error = check_patient_id(id).expect_err(id);
            if !id.is_empty() {
                assert!(!error.to_string().contains(id), "{error}");
            }
        }
        check_patient_id("p1-0123456789abcdef0123456789abcdef").expect("pseudonym");
        assert!(looks_like_pseudonym("p1-0123456789abcdef0123456789abcdef"));
        assert!(looks_like_pseudonym("deid-audit-0123456789abcdef"));
        for id in [
            "p1-0123",
            "px-0123456789abcdef0123456789abcdef",
            "Canary-Jane-Doe-1",
            "p1-0123456789ABCDEF0123456789abcdef",
        ] {
            assert!(!looks_like_pseudonym(id), "{id}");
        }
    }
}
