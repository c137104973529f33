//! C2SP chunked encryption (c2sp.org/chunked-encryption) instantiated with HKDF-SHA-512 and
//! AES-256-GCM ("Cobblestone-256"), streaming in both directions.
//!
//! ```text
//! key ‖ base nonce ‖ commitment = HKDF-Expand-SHA-512(prk = input key,
//!     info = "c2sp.org/chunked-encryption@v1+" ‖ "AEAD_AES_256_GCM" ‖ 0x00 ‖ salt ‖ context, 76)
//! file = salt (24) ‖ commitment (32) ‖ AES-256-GCM(key, base nonce ⊕ i, chunk i, aad = "")…
//! ```
//!
//! Chunks hold 16 KiB of plaintext except the last, which is always shorter (possibly empty):
//! that short chunk is the end-of-message signal, so a file cut at a chunk boundary (or
//! anywhere else) is detected as truncated, and the chunk index in the nonce binds each chunk
//! to its position. There is no explicit last-chunk flag: the spec needs none.

use std::io::{self, Read, Write};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::aead::{AeadError, Aes256Gcm, NONCE_LEN, TAG_LEN};
use super::kdf::{hkdf_expand_sha512, OutputTooLong};
use super::keys::{fill_random, RandomError, SymmetricKey, SYMMETRIC_KEY_LEN};
use crate::readers::read_full;

/// Plaintext bytes in every chunk but the last.
pub const CHUNK_SIZE: usize = 16 * 1024;
/// Ciphertext bytes of a full chunk.
pub const SEALED_CHUNK_SIZE: usize = CHUNK_SIZE + TAG_LEN;
pub const SALT_LEN: usize = 24;
pub const COMMITMENT_LEN: usize = 32;
/// Salt and commitment.
pub const HEADER_LEN: usize = SALT_LEN + COMMITMENT_LEN;
/// The spec's limit: a chunk index must stay below 2^38 (4 PiB).
pub const MAX_CHUNKS: u64 = 1 << 38;

const INFO_PREFIX: &[u8] = b"c2sp.org/chunked-encryption@v1+";
/// The AEAD's name in the IANA AEAD registry, as the spec puts it in the HKDF info.
const AEAD_NAME: &[u8] = b"AEAD_AES_256_GCM";
const DERIVED_LEN: usize = SYMMETRIC_KEY_LEN + NONCE_LEN + COMMITMENT_LEN;

/// Why a chunked message could not be written or read. Never carries key or plaintext bytes.
#[derive(Debug, thiserror::Error)]
pub enum ChunkedError {
    #[error("the encrypted file is shorter than its {HEADER_LEN}-byte header")]
    TruncatedHeader,
    #[error("the key commitment does not match: wrong key, wrong context, or a modified header")]
    Commitment,
    #[error("chunk {index} failed authentication: modified, reordered, spliced or followed by extra data")]
    ChunkAuthentication { index: u64 },
    #[error("the encrypted file is truncated: it ends without its final (short) chunk")]
    Truncated,
    #[error("the message reached the limit of 2^38 chunks")]
    TooManyChunks,
    #[error("an earlier error stopped this stream; it cannot continue")]
    AlreadyFailed,
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Kdf(#[from] OutputTooLong),
    #[error("AES-GCM refused to seal a chunk: {0}")]
    Seal(AeadError),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl ChunkedError {
    /// For the `std::io` traits: I/O errors pass through, the others become `InvalidData`
    /// errors that wrap this type (recover it with `get_ref()` and `downcast_ref`).
    fn into_io(self) -> io::Error {
        match self {
            ChunkedError::Io(error) => error,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Per-message key, base nonce and commitment derived from the input key.
struct MessageKeys {
    aead: Aes256Gcm,
    base_nonce: [u8; NONCE_LEN],
    commitment: [u8; COMMITMENT_LEN],
}

impl MessageKeys {
    fn derive(input_key: &SymmetricKey, salt: &[u8; SALT_LEN], context: &[u8]) -> Result<Self, ChunkedError> {
        let mut derived = Zeroizing::new([0u8; DERIVED_LEN]);
        let info: [&[u8]; 5] = [INFO_PREFIX, AEAD_NAME, &[0], salt, context];
        hkdf_expand_sha512(input_key.expose_secret(), &info, derived.as_mut_slice())?;
        let (key, rest) = derived.split_at(SYMMETRIC_KEY_LEN);
        let (base_nonce, commitment) = rest.split_at(NONCE_LEN);
        let mut keys = MessageKeys {
            aead: Aes256Gcm::new(&SymmetricKey::copy_from(key)),
            base_nonce: [0; NONCE_LEN],
            commitment: [0; COMMITMENT_LEN],
        };
        keys.base_nonce.copy_from_slice(base_nonce);
        keys.commitment.copy_from_slice(commitment);
        Ok(keys)
    }

    /// The base nonce XOR the chunk index as a 96-bit big-endian integer.
    fn chunk_nonce(&self, index: u64) -> [u8; NONCE_LEN] {
        let mut nonce = self.base_nonce;
        for (byte, counter) in nonce[NONCE_LEN - 8..].iter_mut().zip(index.to_be_bytes()) {
            *byte ^= counter;
        }
        nonce
    }
}

/// Streaming encryption into `W`: `write` whole or partial data, then [`finish`] writes the
/// final short chunk. Full chunks go out as soon as they fill; plaintext waits in a zeroized
/// buffer of at most 16 KiB. A writer dropped without `finish` leaves a file that every
/// reader rejects as truncated.
///
/// [`finish`]: ChunkedWriter::finish
pub struct ChunkedWriter<W: Write> {
    inner: W,
    keys: MessageKeys,
    /// Plaintext of the chunk being filled, then its ciphertext and tag.
    buffer: Zeroizing<Vec<u8>>,
    next_index: u64,
    failed: bool,
}

impl<W: Write> ChunkedWriter<W> {
    /// Starts a message under `input_key` (uniformly random, e.g. [`SymmetricKey::generate`])
    /// with a fresh random salt, and writes the header.
    pub fn new(inner: W, input_key: &SymmetricKey, context: &[u8]) -> Result<Self, ChunkedError> {
        let mut salt = [0; SALT_LEN];
        fill_random(&mut salt)?;
        Self::with_salt(inner, input_key, context, salt)
    }

    /// Like [`new`](ChunkedWriter::new) with a caller-chosen salt, for known-answer tests only:
    /// a salt repeated under one input key repeats the AES-GCM key and nonces.
    #[doc(hidden)]
    pub fn with_salt(
        mut inner: W,
        input_key: &SymmetricKey,
        context: &[u8],
        salt: [u8; SALT_LEN],
    ) -> Result<Self, ChunkedError> {
        let keys = MessageKeys::derive(input_key, &salt, context)?;
        inner.write_all(&salt)?;
        inner.write_all(&keys.commitment)?;
        Ok(ChunkedWriter {
            inner,
            keys,
            buffer: Zeroizing::new(Vec::with_capacity(SEALED_CHUNK_SIZE)),
            next_index: 0,
            failed: false,
        })
    }

    /// Writes the final chunk (what is buffered, possibly nothing), flushes, and returns the
    /// inner writer.
    pub fn finish(mut self) -> Result<W, ChunkedError> {
        if self.failed {
            return Err(ChunkedError::AlreadyFailed);
        }
        self.seal_buffered_chunk()?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// Encrypts the buffered plaintext as the next chunk and writes it out.
    fn seal_buffered_chunk(&mut self) -> Result<(), ChunkedError> {
        self.failed = true;
        if self.next_index >= MAX_CHUNKS {
            return Err(ChunkedError::TooManyChunks);
        }
        let nonce = self.keys.chunk_nonce(self.next_index);
        let tag = self
            .keys
            .aead
            .seal_in_place(nonce, &[], &mut self.buffer)
            .map_err(ChunkedError::Seal)?;
        self.buffer.extend_from_slice(&tag);
        self.inner.write_all(&self.buffer)?;
        self.buffer.clear();
        self.next_index += 1;
        self.failed = false;
        Ok(())
    }
}

impl<W: Write> Write for ChunkedWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(ChunkedError::AlreadyFailed.into_io());
        }
        let taken = data.len().min(CHUNK_SIZE - self.buffer.len());
        self.buffer.extend_from_slice(&data[..taken]);
        // A full chunk is never the last one (the last is always short): seal it now.
        if self.buffer.len() == CHUNK_SIZE {
            self.seal_buffered_chunk().map_err(ChunkedError::into_io)?;
        }
        Ok(taken)
    }

    /// Flushes the chunks sealed so far; the partial chunk stays buffered until it fills or
    /// [`finish`](ChunkedWriter::finish).
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streaming decryption of `R`. The commitment is checked before any chunk is decrypted, and
/// only plaintext of chunks that authenticated is ever returned. Once an error is returned,
/// every later read fails too.
pub struct ChunkedReader<R: Read> {
    inner: R,
    keys: MessageKeys,
    /// One sealed chunk, decrypted in place; `plaintext` is its authenticated, unread part.
    buffer: Zeroizing<Vec<u8>>,
    plaintext: std::ops::Range<usize>,
    next_index: u64,
    state: ReadState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Chunks,
    Finished,
    Failed,
}

impl<R: Read> ChunkedReader<R> {
    /// Reads the header and checks the key commitment.
    pub fn new(mut inner: R, input_key: &SymmetricKey, context: &[u8]) -> Result<Self, ChunkedError> {
        let mut header = [0; HEADER_LEN];
        if read_full(&mut inner, &mut header)? < HEADER_LEN {
            return Err(ChunkedError::TruncatedHeader);
        }
        let (salt, commitment) = header.split_at(SALT_LEN);
        let mut salt_array = [0; SALT_LEN];
        salt_array.copy_from_slice(salt);
        let keys = MessageKeys::derive(input_key, &salt_array, context)?;
        if !bool::from(keys.commitment.ct_eq(commitment)) {
            return Err(ChunkedError::Commitment);
        }
        Ok(ChunkedReader {
            inner,
            keys,
            buffer: Zeroizing::new(vec![0; SEALED_CHUNK_SIZE]),
            plaintext: 0..0,
            next_index: 0,
            state: ReadState::Chunks,
        })
    }

    /// The plaintext of the next chunk, authenticated, or `None` after the final chunk.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, ChunkedError> {
        match self.state {
            ReadState::Finished => return Ok(None),
            ReadState::Failed => return Err(ChunkedError::AlreadyFailed),
            ReadState::Chunks => {}
        }
        self.plaintext = 0..0;
        self.state = ReadState::Failed;
        let length = self.open_next_chunk()?;
        self.plaintext = 0..length;
        self.state = if length < CHUNK_SIZE {
            ReadState::Finished
        } else {
            ReadState::Chunks
        };
        Ok(Some(&self.buffer[..length]))
    }

    /// Reads and opens chunk `next_index`; returns its plaintext length.
    fn open_next_chunk(&mut self) -> Result<usize, ChunkedError> {
        let sealed_len = read_full(&mut self.inner, &mut self.buffer[..])?;
        // Fewer than a tag's bytes: the end came before the final chunk.
        if sealed_len < TAG_LEN {
            return Err(ChunkedError::Truncated);
        }
        if self.next_index >= MAX_CHUNKS {
            return Err(ChunkedError::TooManyChunks);
        }
        // A short read means the end of the file: this chunk must be the final one, and a
        // final chunk is short by construction, so extra bytes after it fail its tag.
        let index = self.next_index;
        let nonce = self.keys.chunk_nonce(index);
        let plaintext = self
            .keys
            .aead
            .open_in_place(nonce, &[], &mut self.buffer[..sealed_len])
            .map_err(|_| ChunkedError::ChunkAuthentication { index })?;
        self.next_index += 1;
        Ok(plaintext.len())
    }
}

impl<R: Read> Read for ChunkedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.plaintext.is_empty() {
            if self.next_chunk().map_err(ChunkedError::into_io)?.is_none() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.plaintext.len());
        let start = self.plaintext.start;
        out[..n].copy_from_slice(&self.buffer[start..start + n]);
        self.plaintext.start += n;
        Ok(n)
    }
}

/// Encrypts a whole message in memory (for small messages and tests).
pub fn encrypt(plaintext: &[u8], input_key: &SymmetricKey, context: &[u8]) -> Result<Vec<u8>, ChunkedError> {
    let mut writer = ChunkedWriter::new(
        Vec::with_capacity(sealed_len(plaintext.len())),
        input_key,
        context,
    )?;
    writer.write_all(plaintext)?;
    writer.finish()
}

/// Decrypts a whole message in memory; fails unless the entire message authenticates.
pub fn decrypt(
    ciphertext: &[u8],
    input_key: &SymmetricKey,
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ChunkedError> {
    let mut reader = ChunkedReader::new(ciphertext, input_key, context)?;
    let mut plaintext = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    while let Some(chunk) = reader.next_chunk()? {
        plaintext.extend_from_slice(chunk);
    }
    Ok(plaintext)
}

/// Length of the encryption of a `plaintext_len`-byte message.
pub fn sealed_len(plaintext_len: usize) -> usize {
    HEADER_LEN + plaintext_len + (plaintext_len / CHUNK_SIZE + 1) * TAG_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SymmetricKey {
        SymmetricKey::from_slice(&[3; 32]).expect("32 bytes")
    }

    #[test]
    fn nonce_xors_the_index_big_endian() {
        let keys = MessageKeys::derive(&key(), &[0; SALT_LEN], b"").expect("derive");
        assert_eq!(keys.chunk_nonce(0), keys.base_nonce);
        let n = keys.chunk_nonce(0x01_02);
        assert_eq!(n[..10], keys.base_nonce[..10]);
        assert_eq!(n[10], keys.base_nonce[10] ^ 0x01);
        assert_eq!(n[11], keys.base_nonce[11] ^ 0x02);
    }

    #[test]
    fn lengths_follow_the_chunking() {
        for len in [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE] {
            let sealed = encrypt(&vec![5; len], &key(), b"ctx").expect("encrypt");
            assert_eq!(sealed.len(), sealed_len(len), "plaintext of {len} bytes");
        }
    }

    #[test]
    fn the_chunk_limit_is_enforced_on_both_sides() {
        let mut writer = ChunkedWriter::new(Vec::new(), &key(), b"").expect("writer");
        writer.next_index = MAX_CHUNKS - 1;
        writer
            .write_all(&[1; CHUNK_SIZE])
            .expect("chunk 2^38 - 1 is the last allowed");
        assert!(matches!(writer.finish(), Err(ChunkedError::TooManyChunks)));

        let sealed = encrypt(b"x", &key(), b"").expect("encrypt");
        let mut reader = ChunkedReader::new(&sealed[..], &key(), b"").expect("header");
        reader.next_index = MAX_CHUNKS;
        assert!(matches!(reader.next_chunk(), Err(ChunkedError::TooManyChunks)));
    }

    #[test]
    fn errors_never_show_secrets() {
        let sealed = encrypt(b"secret plaintext", &key(), b"").expect("encrypt");
        let wrong = SymmetricKey::from_slice(&[4; 32]).expect("32 bytes");
        let error = decrypt(&sealed, &wrong, b"").expect_err("wrong key");
        let text = format!("{error} {error:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("3, 3, 3") && !text.contains("4, 4, 4"), "{text}");
    }
}
