//! Reading Kubernetes timestamps (RFC 3339) without a clock.

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp such as
/// `2024-05-01T12:00:00Z` or `2024-05-01T14:00:00.5+02:00`; `None` when the
/// text is not one.
pub(crate) fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = text.get(from..to)?;
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().ok()
        } else {
            None
        }
    };
    let separator =
        |at: usize, allowed: &[u8]| text.as_bytes().get(at).is_some_and(|b| allowed.contains(b));
    if !(separator(4, b"-")
        && separator(7, b"-")
        && separator(10, b"Tt ")
        && separator(13, b":")
        && separator(16, b":"))
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, b) in fraction.bytes().take(3).enumerate().take(digits) {
            millis += i64::from(b - b'0') * [100, 10, 1][i];
        }
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = &rest[1..];
            if zone.len() != 5 || zone.as_bytes()[2] != b':' {
                return None;
            }
            let hours: i64 = zone[..2].parse().ok()?;
            let minutes: i64 = zone[3..].parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<i64>) {
        assert_eq!(parse_rfc3339_ms(text), expected, "{text}");
    }

    #[test]
    fn timestamps() {
        check("1970-01-01T00:00:00Z", Some(0));
        check("2024-05-01T12:00:00Z", Some(1_714_564_800_000));
        check("2024-05-01T14:00:00+02:00", Some(1_714_564_800_000));
        check("2024-05-01T11:30:00-00:30", Some(1_714_564_800_000));
        check("2024-05-01T12:00:00.5Z", Some(1_714_564_800_500));
        check("2024-05-01T12:00:00.123456Z", Some(1_714_564_800_123));
        check("2000-02-29T00:00:00Z", Some(951_782_400_000));
        check("1969-12-31T23:59:59Z", Some(-1000));
        check("2024-05-01T12:00:00", None);
        check("2024-05-01 12:00", None);
        check("2024-13-01T12:00:00Z", None);
        check("2024-05-01T12:00:00.Z", None);
        check("", None);
    }
}
