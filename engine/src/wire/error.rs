//! Why a message could not be decoded.
//!
//! Messages come from devices and files we do not control, and a message may
//! carry PHI in its metadata. So no variant holds a metadata key's value, a
//! string field's contents or a number copied from the message body: only
//! field names, offsets, lengths, limits and header codes.

use sigfab_operators::FrameError;

/// A message was rejected. See the module documentation for what a variant
/// may and may not contain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("message truncated: {field} needs {needed} bytes at offset {offset}, {available} left")]
    Truncated {
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("bad magic {found:02x?}: not a Signal Fabric binary message")]
    BadMagic { found: [u8; 4] },
    #[error("unsupported wire format version {version} (this decoder reads version 1)")]
    UnsupportedVersion { version: u64 },
    #[error("unknown message type code {code} (1 = frame, 2 = record)")]
    UnknownMessageType { code: u8 },
    #[error("unknown message type name (expected \"frame\" or \"record\")")]
    UnknownMessageTypeName,
    #[error("flag bits {flags:#06x} are not defined for this message type")]
    UnknownFlags { flags: u16 },
    #[error("message of {len} bytes is over the {max}-byte limit")]
    MessageTooLarge { len: u64, max: u64 },
    #[error("header declares {declared} bytes, below the {min}-byte minimum")]
    MessageTooShort { declared: u64, min: u64 },
    #[error("{count} trailing bytes after the message")]
    TrailingBytes { count: usize },
    #[error("checksum mismatch: message says {stored:#010x}, content gives {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("{field} is {len} bytes long; the limit is {max}")]
    StringTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{count} channels; the limit is {max}")]
    TooManyChannels { count: usize, max: usize },
    #[error("{count} metadata entries; the limit is {max}")]
    TooManyMetadata { count: usize, max: usize },
    #[error("{count} record values; the limit is {max}")]
    TooManyValues { count: usize, max: usize },
    #[error("{count} record labels; the limit is {max}")]
    TooManyLabels { count: usize, max: usize },
    #[error("the record's labels flag is set but it has no labels")]
    EmptyLabels,
    #[error("channel {channel} has a sample rate that is not finite and positive")]
    BadSampleRate { channel: usize },
    #[error("unknown modality code {code}")]
    UnknownModality { code: u8 },
    #[error("unknown modality name (expected one of eeg, ecg, abp, ppg, spo2, resp, audio, other)")]
    UnknownModalityName,
    #[error("missing required field `{field}`")]
    MissingField { field: &'static str },
    #[error("field `{field}` is not allowed in a {message_type} message")]
    FieldNotAllowed {
        field: &'static str,
        message_type: &'static str,
    },
    #[error("invalid JSON at line {line} column {column}: {reason}")]
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("decoded fields do not form a valid frame: {0}")]
    Frame(#[from] FrameError),
}

impl WireError {
    /// Converts a serde_json error without letting message content through:
    /// serde's "invalid type" and "invalid value" messages quote the offending
    /// value, which may be PHI, so only its kind (string, integer, ...) is kept.
    pub(crate) fn from_json(err: &serde_json::Error) -> WireError {
        let text = err.to_string();
        // serde_json appends " at line L column C"; we report those separately.
        let text = match text.rfind(" at line ") {
            Some(cut) => &text[..cut],
            None => text.as_str(),
        };
        WireError::Json {
            line: err.line(),
            column: err.column(),
            reason: redact_serde_message(text),
        }
    }
}

/// Turns `invalid type: string "Jane", expected u64` into
/// `invalid type: string, expected u64`; other messages pass unchanged.
fn redact_serde_message(text: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let expected = rest.rfind(", expected ").map_or("", |i| &rest[i..]);
            let kind = rest.split([' ', ',']).next().unwrap_or("value");
            return format!("{prefix}{kind}{expected}");
        }
    }
    // Our own visitors' messages and serde's structural ones (unknown or
    // missing field, syntax) name fields, never values.
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_their_values() {
        assert_eq!(
            redact_serde_message("invalid type: string \"Jane, Doe\", expected u64"),
            "invalid type: string, expected u64"
        );
        assert_eq!(
            redact_serde_message("invalid type: integer `12345678`, expected a string"),
            "invalid type: integer, expected a string"
        );
        assert_eq!(redact_serde_message("unknown field `x`"), "unknown field `x`");
    }
}
