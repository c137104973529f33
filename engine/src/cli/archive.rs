//! `sigfab keygen`, `sigfab decrypt` and `sigfab keys shred`: the encrypted archive's key
//! pairs, its reader, and crypto-shredding (`docs/security.md`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::Context;

use super::recording::format_utc;
use crate::crypto::archive::{self, ArchiveError, Keystore, PatientKey, SegmentHeader, KEY_ID_LEN};
use crate::crypto::keyfile;
use crate::crypto::xwing::DecapsulationKey;
use crate::sinks::archive_codec;
use crate::wire::{self, Encoding};

/// Output formats of `sigfab decrypt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DecryptFormat {
    /// One wire-format JSON object per line.
    Jsonl,
    /// Concatenated binary wire-format messages (the messages the sink received, byte for byte;
    /// from a lossy segment, the same frames with the decoded samples).
    Binary,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Writes PREFIX.identity (secret, mode 0600) and PREFIX.recipient (public); refuses to
    /// overwrite either.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct DecryptArgs {
    /// Archive segments (.sfa), or folders searched for them (sorted by path).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Identity file (sigfab keygen) of a recipient of the keystore.
    #[arg(long, value_name = "KEYFILE")]
    pub identity: PathBuf,
    /// Keystore folder holding the patient keys.
    #[arg(long, value_name = "DIR")]
    pub keystore: PathBuf,
    /// Output file (default: standard output).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DecryptFormat::Jsonl)]
    pub format: DecryptFormat,
    /// Audit log, appended one JSON line per segment (default: DIR/audit.jsonl in the keystore).
    #[arg(long, value_name = "PATH")]
    pub audit: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Crypto-shred a patient: delete every keystore entry of PSEUDONYM, so that its archive
    /// segments can never be decrypted again (keystore backups must go too).
    Shred {
        /// The patient pseudonym (the archive's folder name, the stream id after deidentify).
        pseudonym: String,
        #[arg(long, value_name = "DIR")]
        keystore: PathBuf,
        /// Audit log (default: DIR/audit.jsonl in the keystore).
        #[arg(long, value_name = "PATH")]
        audit: Option<PathBuf>,
    },
}

fn now_utc() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    format_utc(ns)
}

/// Appends one JSON line to the audit log and fsyncs it.
fn audit(path: &Path, mut line: serde_json::Value) -> anyhow::Result<()> {
    line["time"] = serde_json::Value::from(now_utc());
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("audit log folder {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the audit log {}", path.display()))?;
    file.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot write the audit log {}", path.display()))
}

/// Creates a new file (never overwriting), with `mode` on Unix.
fn create_new(path: &Path, mode: u32) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let identity_path = with_suffix(&args.out, ".identity");
    let recipient_path = with_suffix(&args.out, ".recipient");
    for path in [&identity_path, &recipient_path] {
        anyhow::ensure!(
            !path.exists(),
            "{} exists; an existing key file is never overwritten",
            path.display()
        );
    }
    if let Some(parent) = identity_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let identity = DecapsulationKey::generate()?;
    {
        let text = keyfile::identity_text(&identity);
        let mut file = create_new(&identity_path, 0o600)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", identity_path.display()))?;
    }
    let mut file = create_new(&recipient_path, 0o644)?;
    file.write_all(keyfile::recipient_text(identity.encapsulation_key()).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", recipient_path.display()))?;
    println!(
        "identity (secret): {}\nrecipient (public): {}\nfingerprint: {}",
        identity_path.display(),
        recipient_path.display(),
        keyfile::fingerprint(identity.encapsulation_key())
    );
    Ok(ExitCode::SUCCESS)
}

/// The segments named by `inputs`: files as given, folders searched recursively for `.sfa`
/// files in path order.
fn segment_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == archive::SEGMENT_EXTENSION) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut files)?;
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// A decrypted, fully checked segment.
struct Opened {
    header: SegmentHeader,
    /// Its binary wire messages: the plaintext itself, or decoded from a coded plaintext.
    messages: zeroize::Zeroizing<Vec<u8>>,
    items: Vec<sigfab_operators::Item>,
}

#[derive(Debug, thiserror::Error)]
enum SegmentError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("the file name does not match the segment header ({expected}): a renamed or moved segment")]
    Name { expected: String },
    #[error("message {index} of the segment is invalid: {error}")]
    Wire { index: usize, error: wire::WireError },
    #[error("message {index} of the segment is cut short")]
    TruncatedMessage { index: usize },
    #[error("message {index} belongs to another stream than the segment's patient")]
    Stream { index: usize },
    #[error("cannot read the segment: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Codec(#[from] archive_codec::SegmentCodecError),
}

type KeyCache = HashMap<(String, [u8; KEY_ID_LEN]), Rc<PatientKey>>;

fn open_one(
    bytes: &[u8],
    name: &str,
    keystore: &Keystore,
    identity: &DecapsulationKey,
    cache: &mut KeyCache,
) -> Result<Opened, SegmentError> {
    let (header, _) = SegmentHeader::parse(bytes)?;
    if header.file_name() != name {
        return Err(SegmentError::Name {
            expected: header.relative_path().display().to_string(),
        });
    }
    let (header, plaintext) = archive::open_segment(bytes, name, |h| {
        let slot = (h.patient.clone(), h.key_id);
        if let Some(key) = cache.get(&slot) {
            return Ok(key.clone());
        }
        let key = Rc::new(keystore.open_patient_key(&h.patient, &h.key_id, identity)?);
        cache.insert(slot, key.clone());
        Ok(key)
    })?;
    let messages = if archive_codec::is_coded(&plaintext) {
        let mut messages = zeroize::Zeroizing::new(Vec::new());
        archive_codec::decode(&plaintext, &mut messages)?;
        messages
    } else {
        plaintext
    };
    // Every message must decode (length, CRC, fields) and belong to the segment's stream
    // before anything is released.
    let mut items = Vec::new();
    let mut rest: &[u8] = &messages;
    while !rest.is_empty() {
        let index = items.len();
        let wire_error = |error| SegmentError::Wire { index, error };
        let len = wire::split_binary(rest)
            .map_err(wire_error)?
            .ok_or(SegmentError::TruncatedMessage { index })?;
        let item = wire::decode_binary(&rest[..len]).map_err(wire_error)?;
        if item.stream_id() != header.patient {
            return Err(SegmentError::Stream { index });
        }
        items.push(item);
        rest = &rest[len..];
    }
    Ok(Opened {
        header,
        messages,
        items,
    })
}

pub fn decrypt(args: &DecryptArgs) -> anyhow::Result<ExitCode> {
    let identity = keyfile::load_identity(&args.identity)?;
    let fingerprint = keyfile::fingerprint(identity.encapsulation_key());
    let keystore = Keystore::new(&args.keystore);
    let audit_path = args
        .audit
        .clone()
        .unwrap_or_else(|| args.keystore.join("audit.jsonl"));
    let files = segment_files(&args.files)?;
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut cache = KeyCache::new();
    let mut failed = 0usize;
    let mut frames_total = 0usize;
    let mut buffer = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(path);
        let digest = bytes
            .as_ref()
            .map(|b| keyfile::hex(&keyfile::sha256(&[b])))
            .unwrap_or_default();
        let opened = bytes
            .map_err(SegmentError::from)
            .and_then(|b| open_one(&b, &name, &keystore, &identity, &mut cache));
        let mut line = serde_json::json!({
            "event": "decrypt",
            "identity": fingerprint,
            "segment": name,
            "segment_sha256": digest,
        });
        match opened {
            Ok(opened) => {
                match args.format {
                    DecryptFormat::Binary => out.write_all(&opened.messages)?,
                    DecryptFormat::Jsonl => {
                        for item in &opened.items {
                            buffer.clear();
                            wire::encode(item, Encoding::Json, &mut buffer);
                            buffer.push(b'\n');
                            out.write_all(&buffer)?;
                        }
                    }
                }
                frames_total += opened.items.len();
                line["patient"] = serde_json::Value::from(opened.header.patient.as_str());
                line["key_id"] = serde_json::Value::from(keyfile::hex(&opened.header.key_id));
                line["sequence"] = serde_json::Value::from(opened.header.sequence);
                line["items"] = serde_json::Value::from(opened.items.len());
                line["outcome"] = serde_json::Value::from("ok");
            }
            Err(error) => {
                failed += 1;
                eprintln!("sigfab: {}: {error:#}", path.display());
                line["items"] = serde_json::Value::from(0);
                line["outcome"] = serde_json::Value::from("failed");
                line["error"] = serde_json::Value::from(error.to_string());
            }
        }
        audit(&audit_path, line)?;
    }
    out.flush()?;
    eprintln!(
        "sigfab decrypt: {} of {} segments decrypted, {frames_total} items; audit: {}",
        files.len() - failed,
        files.len(),
        audit_path.display()
    );
    Ok(if failed > 0 || files.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn keys(command: &KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Shred {
            pseudonym,
            keystore,
            audit: audit_path,
        } => {
            let audit_path = audit_path.clone().unwrap_or_else(|| keystore.join("audit.jsonl"));
            let result = Keystore::new(keystore).shred(pseudonym);
            let mut line = serde_json::json!({ "event": "shred" });
            // A refused id may be a raw identifier: it is not recorded.
            if archive::check_patient_id(pseudonym).is_ok() {
                line["patient"] = serde_json::Value::from(pseudonym.as_str());
            }
            match &result {
                Ok(entries) => {
                    line["entries"] = serde_json::Value::from(*entries);
                    line["outcome"] = serde_json::Value::from("ok");
                }
                Err(error) => {
                    line["outcome"] = serde_json::Value::from("failed");
                    line["error"] = serde_json::Value::from(error.to_string());
                }
            }
            audit(&audit_path, line)?;
            let entries = result?;
            tracing::info!(entries, "patient keys shredded");
            println!(
                "shredded {entries} keystore entr{} of {pseudonym}; its archive segments can no longer be decrypted \
                 (delete every backup of the keystore entries too)",
                if entries == 1 { "y" } else { "ies" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
