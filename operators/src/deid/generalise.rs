//! Coarsening of values Safe Harbor lets through in a reduced form: ages
//! (over 89 become "90+"), dates (year only), ZIP codes (first three
//! digits, or "000" for sparsely populated areas). A value that cannot be
//! coarsened safely gives `None` and is dropped.

/// 3-digit ZIP prefixes with 20,000 people or fewer (2000 census, as listed
/// by HHS for Safe Harbor): they must become "000".
const SPARSE_ZIP3: &[&str] = &[
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884",
    "890", "893",
];
/// Oldest age reported as itself.
const MAX_AGE: u32 = 89;
pub const AGE_90_PLUS: &str = "90+";

/// What kind of coarsening a key gets, chosen by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generaliser {
    Age,
    BirthDate,
    Date,
    Zip,
    /// No rule is known for this key: the value is dropped.
    None,
}

impl Generaliser {
    pub fn for_key(key: &str) -> Generaliser {
        let key = key.to_ascii_lowercase();
        if key == "age" {
            Generaliser::Age
        } else if key.contains("birth") || key == "dob" {
            Generaliser::BirthDate
        } else if key.contains("date") {
            Generaliser::Date
        } else if key.starts_with("zip") || key == "postcode" {
            Generaliser::Zip
        } else {
            Generaliser::None
        }
    }

    /// The coarse value; `reference_year` is the (unshifted) year of the
    /// data, against which a birth year gives an age.
    pub fn apply(self, value: &str, reference_year: i64) -> Option<String> {
        match self {
            Generaliser::Age => age(value),
            Generaliser::BirthDate => {
                let year = year_in(value)?;
                Some(if reference_year - year > i64::from(MAX_AGE) {
                    AGE_90_PLUS.to_string()
                } else {
                    year.to_string()
                })
            }
            Generaliser::Date => year_in(value).map(|y| y.to_string()),
            Generaliser::Zip => zip3(value),
            Generaliser::None => None,
        }
    }
}

fn age(value: &str) -> Option<String> {
    let years: f64 = value.trim().trim_end_matches(['y', 'Y']).trim().parse().ok()?;
    if !(years.is_finite() && years >= 0.0) {
        return None;
    }
    Some(if years > f64::from(MAX_AGE) {
        AGE_90_PLUS.to_string()
    } else {
        (years.floor() as u32).to_string()
    })
}

/// The one 4-digit run in 1800..=2200 in a date such as 1951-05-02,
/// 02-MAY-1951 or 02.05.1951; ambiguous or absent → None.
fn year_in(value: &str) -> Option<i64> {
    let mut years = value
        .split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == 4)
        .filter_map(|run| run.parse::<i64>().ok())
        .filter(|y| (1800..=2200).contains(y));
    let year = years.next()?;
    years.next().is_none().then_some(year)
}

fn zip3(value: &str) -> Option<String> {
    let digits: String = value.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() != 5 && digits.len() != 9 {
        return None;
    }
    let prefix = &digits[..3];
    Some(if SPARSE_ZIP3.contains(&prefix) {
        "000".to_string()
    } else {
        prefix.to_string()
    })
}

/// The UTC calendar year of a time in ns since the Unix epoch.
pub fn year_of(ns: i64) -> i64 {
    let days = ns.div_euclid(86_400_000_000_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_over_89_are_aggregated() {
        assert_eq!(Generaliser::Age.apply("89", 2020).as_deref(), Some("89"));
        assert_eq!(Generaliser::Age.apply("90", 2020).as_deref(), Some("90+"));
        assert_eq!(Generaliser::Age.apply("104y", 2020).as_deref(), Some("90+"));
        assert_eq!(Generaliser::Age.apply("unknown", 2020), None);
    }

    #[test]
    fn dates_keep_only_a_year_and_old_birth_years_become_90_plus() {
        assert_eq!(Generaliser::for_key("birth_date"), Generaliser::BirthDate);
        assert_eq!(
            Generaliser::BirthDate.apply("02-MAY-1951", 2020).as_deref(),
            Some("1951")
        );
        assert_eq!(
            Generaliser::BirthDate.apply("1921-01-30", 2020).as_deref(),
            Some("90+")
        );
        assert_eq!(
            Generaliser::Date.apply("2019-03-04T10:00", 2020).as_deref(),
            Some("2019")
        );
        assert_eq!(Generaliser::Date.apply("1999 to 2001", 2020), None);
        assert_eq!(Generaliser::Date.apply("yesterday", 2020), None);
    }

    #[test]
    fn zip_codes_keep_three_digits_unless_sparse() {
        assert_eq!(Generaliser::Zip.apply("02139", 0).as_deref(), Some("021"));
        assert_eq!(Generaliser::Zip.apply("03601-1234", 0).as_deref(), Some("000"));
        assert_eq!(Generaliser::Zip.apply("SW1A 1AA", 0), None);
        assert_eq!(Generaliser::for_key("bed"), Generaliser::None);
    }

    #[test]
    fn years_of_instants() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(-1), 1969);
        assert_eq!(year_of(951_782_400_000_000_000), 2000); // 2000-02-29
        assert_eq!(year_of(1_704_067_199_000_000_000), 2023);
    }
}
