//! WFDB annotation files in MIT format (annot-5): 16-bit little-endian words,
//! 6-bit type code A and 10-bit time increment I, with pseudo-codes SKIP,
//! NUM, SUB, CHN and AUX modifying the time or the current annotation.
//!
//! Choices: `text` is the AUX string without its NUL padding (wfdb-python
//! keeps a trailing NUL), or empty; `code` is the mnemonic; `channel` is the
//! CHN field (0 unless set); A = 0 with I > 0 only advances the time.
//! Not handled: the `## time resolution` NOTE of high-resolution annotation
//! files (times are taken at the record's frame rate).

use std::path::Path;

use crate::readers::{Annotation, ReadError};
use sigfab_operators::frame::samples_to_ns;

const SKIP: u16 = 59;
const NUM: u16 = 60;
const SUB: u16 = 61;
const CHN: u16 = 62;
const AUX: u16 = 63;

/// Mnemonics of codes 0..=41 (ecgcodes.h); "" where the code is unused.
const MNEMONICS: [&str; 42] = [
    "", "N", "L", "R", "a", "V", "F", "J", "A", "S", "E", "j", "/", "Q", "~", "", "|", "", "s", "T", "*",
    "D", "\"", "=", "p", "B", "^", "t", "+", "u", "?", "!", "[", "]", "e", "n", "@", "x", "f", "(", ")", "r",
];

fn mnemonic(code: u16) -> String {
    match MNEMONICS.get(usize::from(code)) {
        Some(m) if !m.is_empty() => (*m).to_string(),
        _ => format!("[{code}]"),
    }
}

/// Parses a whole annotation file; sample times become nanoseconds at the
/// record's frame rate `fs`.
pub(crate) fn parse(path: &Path, bytes: &[u8], fs: f64) -> Result<Vec<Annotation>, ReadError> {
    let err = |offset: usize, problem: &str| ReadError::Annotation {
        path: path.to_path_buf(),
        offset: offset as u64,
        problem: problem.to_string(),
    };
    let word_at = |pos: usize| bytes.get(pos..pos + 2).map(|w| u16::from_le_bytes([w[0], w[1]]));
    let to_ns = |sample: i64| samples_to_ns(sample as f64, fs);
    let (mut out, mut time, mut chan) = (Vec::<Annotation>::new(), 0i64, 0usize);
    let mut pos = 0;
    while let Some(word) = word_at(pos) {
        let (code, arg) = (word >> 10, word & 0x3FF);
        let at = pos;
        pos += 2;
        match code {
            0 if arg == 0 => break,
            0 => time += i64::from(arg),
            SKIP => {
                let (hi, lo) = word_at(pos)
                    .zip(word_at(pos + 2))
                    .ok_or_else(|| err(at, "SKIP without its interval"))?;
                time += i64::from(((u32::from(hi) << 16) | u32::from(lo)) as i32);
                pos += 4;
            }
            NUM | SUB => {}
            CHN => {
                chan = usize::from(arg);
                if let Some(last) = out.last_mut() {
                    last.channel = Some(chan);
                }
            }
            AUX => {
                let len = usize::from(arg);
                let text = bytes
                    .get(pos..pos + len)
                    .ok_or_else(|| err(at, "AUX string runs past the end"))?;
                pos += len + (len & 1);
                let last: &mut Annotation = out
                    .last_mut()
                    .ok_or_else(|| err(at, "AUX before any annotation"))?;
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                last.text = String::from_utf8_lossy(&text[..end]).into_owned();
            }
            _ => {
                time += i64::from(arg);
                out.push(Annotation {
                    onset_ns: to_ns(time),
                    duration_ns: None,
                    text: String::new(),
                    code: Some(mnemonic(code)),
                    channel: Some(chan),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(code: u16, arg: u16) -> [u8; 2] {
        ((code << 10) | arg).to_le_bytes()
    }

    #[test]
    fn beats_skip_aux_and_channel() {
        let mut b = Vec::new();
        b.extend(word(28, 18));
        b.extend(word(AUX, 3));
        b.extend(b"(N\0\0");
        b.extend(word(1, 59));
        b.extend(word(CHN, 1));
        b.extend(word(SKIP, 0));
        b.extend(1u16.to_le_bytes()); // high word
        b.extend(0u16.to_le_bytes()); // low word: +65536
        b.extend(word(5, 1));
        b.extend(word(0, 0));
        let anns = parse(Path::new("x.atr"), &b, 1000.0).expect("valid file");
        assert_eq!(anns.len(), 3);
        assert_eq!(
            (anns[0].code.as_deref(), anns[0].text.as_str()),
            (Some("+"), "(N")
        );
        assert_eq!((anns[1].onset_ns, anns[1].channel), (77_000_000, Some(1)));
        assert_eq!(anns[2].onset_ns, (77 + 65_536 + 1) * 1_000_000);
        assert_eq!((anns[2].code.as_deref(), anns[2].channel), (Some("V"), Some(1)));
    }

    #[test]
    fn truncated_files_are_errors() {
        let p = Path::new("x.atr");
        let mut b = word(1, 5).to_vec();
        b.extend(word(AUX, 10));
        b.extend(b"abc");
        assert!(matches!(
            parse(p, &b, 360.0),
            Err(ReadError::Annotation { offset: 2, .. })
        ));
        assert!(parse(p, &word(SKIP, 0), 360.0).is_err());
        assert!(parse(p, &[word(AUX, 1), [b'x', 0]].concat(), 360.0).is_err());
        assert_eq!(parse(p, &[1], 360.0).map(|a| a.len()).ok(), Some(0));
    }
}
