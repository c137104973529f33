//! EDF+ time-stamped annotation lists (TALs), the content of an
//! "EDF Annotations" signal: `+onset[\x15duration]\x14text\x14…\x14\0`.

use super::time::parse_seconds_ns;
use super::Annotation;

const TAL_END: u8 = 0x00;
const TEXT_END: u8 = 0x14;
const DURATION_MARK: u8 = 0x15;

/// A TAL that does not follow the grammar; `offset` is relative to the
/// annotation signal's bytes.
#[derive(Debug, PartialEq)]
pub(crate) struct TalError {
    pub offset: usize,
    pub problem: &'static str,
}

/// Parses one annotation signal's bytes of one data record, appending its
/// annotations. When `keeps_time` (the first annotation signal), the first
/// TAL is the record's timestamp: its onset is returned, not emitted, and
/// its first (empty) text is skipped.
pub(crate) fn parse_record(
    bytes: &[u8],
    keeps_time: bool,
    out: &mut Vec<Annotation>,
) -> Result<Option<i64>, TalError> {
    let mut record_time = None;
    let mut start = 0;
    for chunk in bytes.split(|&b| b == TAL_END) {
        let offset = start;
        start += chunk.len() + 1;
        if chunk.is_empty() {
            continue;
        }
        let Tal {
            onset_ns,
            duration_ns,
            texts,
        } = parse_tal(chunk, offset)?;
        let mut texts = texts.into_iter().flat_map(|b| b.split(|&c| c == TEXT_END));
        if keeps_time && record_time.is_none() {
            record_time = Some(onset_ns);
            texts.next();
        }
        for text in texts.filter(|t| !t.is_empty()) {
            let text = String::from_utf8_lossy(text).into_owned();
            out.push(Annotation {
                onset_ns,
                duration_ns,
                text,
                code: None,
                channel: None,
            });
        }
    }
    Ok(record_time)
}

/// One TAL: onset, duration and the texts' bytes (`None` when the TAL has
/// no text field at all).
struct Tal<'a> {
    onset_ns: i64,
    duration_ns: Option<i64>,
    texts: Option<&'a [u8]>,
}

/// Splits one TAL (without its final `\0`) into onset, duration and the
/// texts' bytes (`None` when the TAL has no text field at all).
fn parse_tal(chunk: &[u8], offset: usize) -> Result<Tal<'_>, TalError> {
    let err = |problem| TalError { offset, problem };
    let stamp_len = chunk
        .iter()
        .position(|&b| b == TEXT_END)
        .ok_or(err("TAL without a 0x14 after its onset"))?;
    if chunk.last() != Some(&TEXT_END) {
        return Err(err("TAL text not terminated by 0x14"));
    }
    let stamp = std::str::from_utf8(&chunk[..stamp_len]).map_err(|_| err("onset is not ASCII"))?;
    let (onset, duration) = match stamp.split_once(char::from(DURATION_MARK)) {
        Some((onset, duration)) => (onset, Some(duration)),
        None => (stamp, None),
    };
    if !onset.starts_with(['+', '-']) {
        return Err(err("onset does not start with '+' or '-'"));
    }
    let onset_ns = parse_seconds_ns(onset, true).ok_or(err("onset is not a decimal number"))?;
    let duration_ns = match duration {
        None | Some("") => None,
        Some(d) => Some(parse_seconds_ns(d, false).ok_or(err("duration is not a decimal number"))?),
    };
    // Texts sit between the stamp's 0x14 and the final 0x14.
    let texts = chunk.get(stamp_len + 1..chunk.len() - 1);
    Ok(Tal {
        onset_ns,
        duration_ns,
        texts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], keeps_time: bool) -> (Option<i64>, Vec<Annotation>) {
        let mut out = Vec::new();
        let time = parse_record(bytes, keeps_time, &mut out).expect("valid TALs");
        (time, out)
    }

    #[test]
    fn timekeeping_tal_is_kept_internal() {
        let (time, anns) = parse(b"+12.5\x14\x14\0+13\x151.25\x14T0\x14T1\x14\0\0\0", true);
        assert_eq!(time, Some(12_500_000_000));
        assert_eq!(anns.len(), 2);
        assert_eq!(anns[0].onset_ns, 13_000_000_000);
        assert_eq!(anns[0].duration_ns, Some(1_250_000_000));
        assert_eq!(anns[1].text, "T1");
    }

    #[test]
    fn annotation_in_timekeeping_tal_and_utf8() {
        let (time, anns) = parse("+0\x14\x14start é\x14\0".as_bytes(), true);
        assert_eq!(time, Some(0));
        assert_eq!(anns.len(), 1);
        assert_eq!(anns[0].text, "start é");
        let (time, anns) = parse(b"+1\x14x\x14\0", false);
        assert_eq!((time, anns.len()), (None, 1));
    }

    #[test]
    fn malformed_tals_are_errors() {
        let mut out = Vec::new();
        assert!(parse_record(b"+1\0", true, &mut out).is_err());
        assert!(parse_record(b"1\x14\x14\0", true, &mut out).is_err());
        assert!(parse_record(b"+1\x14abc\0", true, &mut out).is_err());
        assert!(parse_record(b"+x\x14\x14\0", true, &mut out).is_err());
        assert!(parse_record(b"+1\x15-2\x14\x14\0", true, &mut out).is_err());
    }
}
