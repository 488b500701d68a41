//! Durations as people write them (`500ms`, `30s`, `5m`, `1h30m`, `2d`),
//! read the same way by the CLI's flags and the API's fields.

use std::time::Duration;

use jiff::{SignedDuration, Span, SpanRelativeTo};

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all (a bare number, an unknown unit, garbage).
    #[error("`{0}` is not a duration like 500ms, 30s, 5m, 1h30m or 2d")]
    Malformed(String),
    /// Shorter than zero.
    #[error("`{0}` is negative")]
    Negative(String),
    /// Longer than can be represented, or in units without a fixed length
    /// (months, years).
    #[error("`{0}` is too long, or in months or years, which have no fixed length")]
    OutOfRange(String),
}

/// Reads a duration: units `ms`, `s`, `m`, `h`, `d` (24 hours) and `w`,
/// combined (`1h30m`, `1h 30m`, `1d12h`); a number without a unit is
/// refused, and so is a negative duration or one that overflows.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let span: Span = trimmed
        .parse()
        .map_err(|_| DurationError::Malformed(trimmed.to_owned()))?;
    let signed: SignedDuration = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| DurationError::OutOfRange(trimmed.to_owned()))?;
    if signed.is_negative() {
        return Err(DurationError::Negative(trimmed.to_owned()));
    }
    Duration::try_from(signed).map_err(|_| DurationError::OutOfRange(trimmed.to_owned()))
}

/// Writes a duration the way [`parse_duration`] reads it (`30s`, `4h`,
/// `1h 30m`).
pub fn format_duration(duration: Duration) -> String {
    match SignedDuration::try_from(duration) {
        Ok(signed) => format!("{signed:#}"),
        Err(_) => format!("{}s", duration.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<Duration, fn(String) -> DurationError>) {
        let expected = expected.map_err(|make| make(text.trim().to_owned()));
        assert_eq!(parse_duration(text), expected, "{text}");
    }

    #[test]
    fn reads_what_people_write() {
        let secs = |s| Ok(Duration::from_secs(s));
        check("500ms", Ok(Duration::from_millis(500)));
        check("30s", secs(30));
        check("5m", secs(300));
        check("4h", secs(4 * 3600));
        check("1h30m", secs(5400));
        check("1h 30m", secs(5400));
        check(" 2d ", secs(2 * 86_400));
        check("1d12h", secs(36 * 3600));
        check("1w", secs(7 * 86_400));
        check("0s", secs(0));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        check("30", Err(DurationError::Malformed));
        check("", Err(DurationError::Malformed));
        check("5 parsecs", Err(DurationError::Malformed));
        check("soon", Err(DurationError::Malformed));
        check("-5m", Err(DurationError::Negative));
        check("2mo", Err(DurationError::OutOfRange));
        check("1y", Err(DurationError::OutOfRange));
        check("999999999999999999999h", Err(DurationError::Malformed));
    }

    #[test]
    fn what_is_written_reads_back() {
        for text in ["30s", "4h", "1h 30m", "2d", "500ms"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(
                parse_duration(&format_duration(parsed)),
                Ok(parsed),
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
    }
}
