//! Durations on the command line: `500ms`, `30s`, `5m`, `2h`, `30d`.

use std::time::Duration;

/// Parses `<number><unit>` with unit ms, s, m, h or d.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30s, 5m or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        "h" => Ok(Duration::from_secs(value * 3600)),
        "d" => Ok(Duration::from_secs(value * 86_400)),
        _ => Err(format!("`{text}` has no unit: write e.g. 30s, 5m or 500ms")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_bare_numbers() {
        let check = |text: &str, expected: Result<Duration, ()>| {
            assert_eq!(parse_duration(text).map_err(|_| ()), expected, "{text}");
        };
        check("500ms", Ok(Duration::from_millis(500)));
        check("30s", Ok(Duration::from_secs(30)));
        check("5m", Ok(Duration::from_secs(300)));
        check("2h", Ok(Duration::from_secs(7200)));
        check("30", Err(()));
        check("s", Err(()));
        check("30d", Ok(Duration::from_secs(30 * 86_400)));
        check("1w", Err(()));
    }
}
