//! WFDB header files (header-5): record line, signal lines or segment lines,
//! `#` comment lines and blank lines anywhere.

use std::path::Path;

use crate::readers::time::{civil_to_ns, parse_seconds_ns};
use crate::readers::ReadError;

/// WFDB's defaults when a header leaves a field out.
const DEFAULT_FS: f64 = 250.0;
const DEFAULT_GAIN: f64 = 200.0;
const DEFAULT_UNITS: &str = "mV";
/// More samples per frame than this is a corrupt header, not a recording.
const MAX_SPF: u32 = 1 << 16;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    pub nsig: usize,
    /// Frame rate in Hz.
    pub fs: f64,
    /// Frames in the record (`None`: not given, or 0).
    pub nsamp: Option<u64>,
    pub start_ns: Option<i64>,
    pub signals: Vec<SignalSpec>,
    /// Present for multi-segment records.
    pub segments: Option<Vec<Segment>>,
    pub comments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SignalSpec {
    pub file: String,
    pub format: u16,
    pub spf: u32,
    pub skew: u32,
    pub offset: u64,
    /// Digital units per physical unit (never 0).
    pub gain: f64,
    pub baseline: i64,
    pub units: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    /// Record name of the segment, or `~` for a gap.
    pub name: String,
    pub nsamp: u64,
}

/// Parses a header's text; `path` only names the file in errors.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Header, ReadError> {
    let mut comments = Vec::new();
    let mut lines = text.lines().enumerate().filter_map(|(n, line)| {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            comments.push(comment.trim().to_string());
            None
        } else {
            (!line.is_empty()).then_some((n + 1, line))
        }
    });
    let (_, record_line) = lines
        .next()
        .ok_or_else(|| ReadError::header(path, "record line", "is missing"))?;
    let (mut header, nseg) = parse_record_line(path, record_line)?;
    if let Some(count) = nseg {
        let mut segments = Vec::with_capacity(count.min(1 << 16));
        for k in 0..count {
            let (n, line) = lines
                .next()
                .ok_or_else(|| ReadError::header(path, format!("segment {}", k + 1), "is missing"))?;
            segments.push(parse_segment_line(path, n, line)?);
        }
        header.segments = Some(segments);
    } else {
        for k in 0..header.nsig {
            let (n, line) = lines
                .next()
                .ok_or_else(|| ReadError::header(path, format!("signal {}", k + 1), "is missing"))?;
            header.signals.push(parse_signal_line(path, n, line)?);
        }
    }
    // Comment lines may follow the last signal line.
    lines.for_each(drop);
    header.comments = comments;
    Ok(header)
}

/// Splits off the next whitespace-separated token.
fn next_token<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start();
    if s.is_empty() {
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    *rest = &s[end..];
    Some(&s[..end])
}

fn num<T: std::str::FromStr>(path: &Path, token: &str, field: impl Into<String>) -> Result<T, ReadError> {
    token
        .parse()
        .map_err(|_| ReadError::header(path, field, "is not a number"))
}

/// `name[/segments] signals [fs[/counter[(base)]] [frames [time [date]]]]`
fn parse_record_line(path: &Path, line: &str) -> Result<(Header, Option<usize>), ReadError> {
    let mut rest = line;
    let name = next_token(&mut rest).unwrap_or_default();
    let nseg = match name.split_once('/') {
        Some((_, count)) => Some(num::<usize>(path, count, "record line: number of segments")?),
        None => None,
    };
    let nsig_token = next_token(&mut rest)
        .ok_or_else(|| ReadError::header(path, "record line: number of signals", "is missing"))?;
    let nsig: usize = num(path, nsig_token, "record line: number of signals")?;
    let fs = match next_token(&mut rest) {
        None => DEFAULT_FS,
        Some(token) => {
            let fs_text = token.split(['/', '(']).next().unwrap_or(token);
            let fs: f64 = num(path, fs_text, "record line: sampling frequency")?;
            if !(fs.is_finite() && fs > 0.0) {
                return Err(ReadError::header(
                    path,
                    "record line: sampling frequency",
                    "is not positive",
                ));
            }
            fs
        }
    };
    let nsamp = match next_token(&mut rest) {
        None => None,
        Some(t) => Some(num::<u64>(path, t, "record line: number of samples per signal")?).filter(|&n| n > 0),
    };
    let time = next_token(&mut rest).map(|t| parse_time(path, t)).transpose()?;
    let date = next_token(&mut rest).map(|t| parse_date(path, t)).transpose()?;
    let start_ns = match (time, date) {
        (Some((hms, frac)), Some((y, m, d))) => civil_to_ns(y, m, d, hms, frac),
        _ => None,
    };
    let signals = Vec::with_capacity(nsig.min(4096));
    Ok((
        Header {
            nsig,
            fs,
            nsamp,
            start_ns,
            signals,
            segments: None,
            comments: Vec::new(),
        },
        nseg,
    ))
}

/// `hh:mm:ss[.sss]` (also `mm:ss` and `ss`).
fn parse_time(path: &Path, token: &str) -> Result<((u32, u32, u32), i64), ReadError> {
    let field = "record line: base time";
    let bad = || ReadError::header(path, field, "is not hh:mm:ss");
    let parts: Vec<&str> = token.split(':').collect();
    if parts.len() > 3 {
        return Err(bad());
    }
    let seconds = parse_seconds_ns(parts[parts.len() - 1], false).ok_or_else(bad)?;
    let mut hm = [0u32; 2];
    for (slot, part) in hm[2 - (parts.len() - 1)..]
        .iter_mut()
        .zip(&parts[..parts.len() - 1])
    {
        *slot = part.parse().map_err(|_| bad())?;
    }
    let whole = u32::try_from(seconds / 1_000_000_000).map_err(|_| bad())?;
    Ok(((hm[0], hm[1], whole), seconds % 1_000_000_000))
}

/// `dd/mm/yyyy`
fn parse_date(path: &Path, token: &str) -> Result<(i64, u32, u32), ReadError> {
    let bad = || ReadError::header(path, "record line: base date", "is not dd/mm/yyyy");
    let mut parts = token.split('/');
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok()).ok_or_else(bad);
    let (d, m, y) = (next()?, next()?, next()?);
    Ok((i64::from(y), m, d))
}

/// `name frames`
fn parse_segment_line(path: &Path, n: usize, line: &str) -> Result<Segment, ReadError> {
    let mut rest = line;
    let name = next_token(&mut rest).unwrap_or_default().to_string();
    let field = format!("line {n}: segment length");
    let nsamp = num(path, next_token(&mut rest).unwrap_or_default(), field)?;
    if name.contains(['/', '\\']) || name == ".." {
        return Err(ReadError::header(
            path,
            format!("line {n}: segment name"),
            "is not a plain record name",
        ));
    }
    Ok(Segment { name, nsamp })
}

/// `file format[xspf][:skew][+offset] [gain[(baseline)][/units] [adcres
/// [adczero [initval [checksum [blocksize [description]]]]]]]`
fn parse_signal_line(path: &Path, n: usize, line: &str) -> Result<SignalSpec, ReadError> {
    let mut rest = line;
    let file = next_token(&mut rest).unwrap_or_default().to_string();
    let format_token = next_token(&mut rest)
        .ok_or_else(|| ReadError::header(path, format!("line {n}: format"), "is missing"))?;
    let (format, spf, skew, offset) = parse_format(path, n, format_token)?;
    let gain_token = next_token(&mut rest);
    let mut numbers = [None::<i64>; 5]; // adcres, adczero, initval, checksum, blocksize
    for (k, slot) in numbers.iter_mut().enumerate() {
        const NAMES: [&str; 5] = [
            "ADC resolution",
            "ADC zero",
            "initial value",
            "checksum",
            "block size",
        ];
        if let Some(t) = next_token(&mut rest) {
            *slot = Some(num(path, t, format!("line {n}: {}", NAMES[k]))?);
        }
    }
    let adc_zero = numbers[1].unwrap_or(0);
    let (gain, baseline, units) = match gain_token {
        Some(t) => parse_gain(path, n, t, adc_zero)?,
        None => (DEFAULT_GAIN, adc_zero, DEFAULT_UNITS.to_string()),
    };
    let description = rest.trim().to_string();
    Ok(SignalSpec {
        file,
        format,
        spf,
        skew,
        offset,
        gain,
        baseline,
        units,
        description,
    })
}

fn parse_format(path: &Path, n: usize, token: &str) -> Result<(u16, u32, u32, u64), ReadError> {
    let bad = |what: &str| ReadError::header(path, format!("line {n}: {what}"), "is not a number");
    let split = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let end = split(token);
    let format: u16 = token[..end].parse().map_err(|_| bad("format"))?;
    let (mut spf, mut skew, mut offset) = (1u32, 0u32, 0u64);
    let mut rest = &token[end..];
    while let Some(mark) = rest.chars().next() {
        let digits = &rest[mark.len_utf8()..];
        let end = split(digits);
        let value = &digits[..end];
        match mark {
            'x' => spf = value.parse().map_err(|_| bad("samples per frame"))?,
            ':' => skew = value.parse().map_err(|_| bad("skew"))?,
            '+' => offset = value.parse().map_err(|_| bad("byte offset"))?,
            _ => {
                return Err(ReadError::header(
                    path,
                    format!("line {n}: format"),
                    "has an unknown modifier",
                ))
            }
        }
        rest = &digits[end..];
    }
    if spf == 0 || spf > MAX_SPF {
        return Err(ReadError::header(
            path,
            format!("line {n}: samples per frame"),
            "is zero or implausibly large",
        ));
    }
    Ok((format, spf, skew, offset))
}

/// `gain[(baseline)][/units]`; gain 0 means the default 200.
fn parse_gain(path: &Path, n: usize, token: &str, adc_zero: i64) -> Result<(f64, i64, String), ReadError> {
    let (value, units) = match token.split_once('/') {
        Some((v, u)) if !u.is_empty() => (v, u.to_string()),
        Some((v, _)) => (v, DEFAULT_UNITS.to_string()),
        None => (token, DEFAULT_UNITS.to_string()),
    };
    let (gain_text, baseline) = match value.split_once('(') {
        Some((g, b)) => {
            let b = b.strip_suffix(')').unwrap_or(b);
            (g, num(path, b, format!("line {n}: baseline"))?)
        }
        None => (value, adc_zero),
    };
    let gain: f64 = num(path, gain_text, format!("line {n}: gain"))?;
    if !gain.is_finite() {
        return Err(ReadError::header(
            path,
            format!("line {n}: gain"),
            "is not finite",
        ));
    }
    Ok((if gain == 0.0 { DEFAULT_GAIN } else { gain }, baseline, units))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x.hea")
    }

    #[test]
    fn mimic_header() {
        let text = "03700181 3 125 75000 17:27:45 15/08/1994\n\
            03700181.dat 212x4 2963.77/mV 12 0 67 -11266 0 MCL1 \n\
            03700181.dat 212 12.84(-1605)/mmHg 12 0 -943 -23651 0 ABP \n\
            03700181.dat 212:4 2000 12 0 -304 6310 0 RESP \n# unnecessary comment\n";
        let h = parse(p(), text).expect("valid header");
        assert_eq!((h.nsig, h.fs, h.nsamp), (3, 125.0, Some(75000)));
        assert_eq!(h.start_ns, civil_to_ns(1994, 8, 15, (17, 27, 45), 0));
        assert_eq!(h.signals[0].spf, 4);
        assert_eq!(
            (
                h.signals[1].gain,
                h.signals[1].baseline,
                h.signals[1].units.as_str()
            ),
            (12.84, -1605, "mmHg")
        );
        assert_eq!((h.signals[2].skew, h.signals[2].units.as_str()), (4, "mV"));
        assert_eq!(h.signals[2].description, "RESP");
        assert_eq!(h.comments, vec!["unnecessary comment"]);
    }

    #[test]
    fn defaults_offsets_and_multisegment() {
        let h = parse(p(), "r 1\nr.dat 16+24 0 12 5\n").expect("valid header");
        assert_eq!((h.fs, h.nsamp), (250.0, None));
        let s = &h.signals[0];
        assert_eq!(
            (s.offset, s.gain, s.baseline, s.units.as_str()),
            (24, 200.0, 5, "mV")
        );
        let h = parse(p(), "m/3 2 360 30\n\nm_layout 0\n# c\nm_1 10\n~ 20\n").expect("valid header");
        let segs = h.segments.expect("segments");
        assert_eq!(segs.len(), 3);
        assert_eq!(
            segs[2],
            Segment {
                name: "~".into(),
                nsamp: 20
            }
        );
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        for text in [
            "",
            "r x",
            "r 2\nr.dat 16\n",
            "r 1 abc",
            "r 1\nr.dat 16y",
            "r 1\nr.dat 16 1/mV 12 z",
            "r/2 1\ns 1\n",
        ] {
            let err = parse(p(), text).expect_err(text);
            assert!(matches!(err, ReadError::Header { .. }), "{text:?}: {err}");
        }
        let err = parse(p(), "SECRET-NAME 1 nan-ish").expect_err("bad fs");
        assert!(!err.to_string().contains("SECRET"));
    }
}
