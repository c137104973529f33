//! Calendar and decimal-seconds helpers shared by the readers.

const NS_PER_S: i64 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A validated wall-clock date and time, as nanoseconds since the epoch
/// (the time is taken to be UTC). `None` when out of range.
pub(crate) fn civil_to_ns(
    year: i64,
    month: u32,
    day: u32,
    hms: (u32, u32, u32),
    frac_ns: i64,
) -> Option<i64> {
    let (h, m, s) = hms;
    let valid = (1..=12).contains(&month) && (1..=31).contains(&day) && h < 24 && m < 60 && s < 61;
    if !valid || !(1..=9999).contains(&year) {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + i64::from(h * 3600 + m * 60 + s);
    secs.checked_mul(NS_PER_S)?.checked_add(frac_ns)
}

/// Parses `[+-]digits[.digits]` seconds into nanoseconds without going through
/// floating point (digits beyond nanoseconds are truncated).
pub(crate) fn parse_seconds_ns(text: &str, allow_sign: bool) -> Option<i64> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'+') if allow_sign => (false, &text[1..]),
        Some(b'-') if allow_sign => (true, &text[1..]),
        _ => (false, text),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !all_digits(frac_part) {
        return None;
    }
    let whole: i64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut frac: i64 = 0;
    for (i, b) in frac_part.bytes().take(9).enumerate() {
        frac += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    let ns = whole.checked_mul(NS_PER_S)?.checked_add(frac)?;
    Some(if negative { -ns } else { ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(civil_to_ns(1970, 1, 1, (0, 0, 0), 0), Some(0));
        // 2009-08-12 16:15:00 UTC
        assert_eq!(
            civil_to_ns(2009, 8, 12, (16, 15, 0), 0),
            Some(1_250_093_700 * NS_PER_S)
        );
        assert_eq!(
            civil_to_ns(2000, 2, 29, (0, 0, 0), 0),
            Some(951_782_400 * NS_PER_S)
        );
        assert_eq!(civil_to_ns(2000, 13, 1, (0, 0, 0), 0), None);
    }

    #[test]
    fn decimal_seconds() {
        assert_eq!(parse_seconds_ns("+0", true), Some(0));
        assert_eq!(parse_seconds_ns("+1.5", true), Some(1_500_000_000));
        assert_eq!(parse_seconds_ns("-0.000000001", true), Some(-1));
        assert_eq!(parse_seconds_ns("12", false), Some(12 * NS_PER_S));
        assert_eq!(parse_seconds_ns("+1", false), None);
        assert_eq!(parse_seconds_ns("1e3", true), None);
        assert_eq!(parse_seconds_ns(".", true), None);
        assert_eq!(parse_seconds_ns("99999999999999999999", true), None);
    }
}
