//! Times as the store keeps them: milliseconds since the Unix epoch.

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A time in milliseconds since the Unix epoch as RFC 3339 (UTC); the
/// number itself when it is out of jiff's range.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_utc_with_millisecond_precision() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_806_400_123), "2025-12-04T00:00:00.123Z");
        assert_eq!(rfc3339(i64::MAX), i64::MAX.to_string());
        assert!(now_ms() > 1_764_806_400_000);
    }
}
