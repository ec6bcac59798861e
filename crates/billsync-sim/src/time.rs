//! Time as the simulated providers write it: the wall clock in microseconds (change order,
//! delivery times) and RFC 3339 UTC text (Paddle, RecurlyPersonality and Zuora timestamps), with chrono.

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// `2025-06-15T15:06:40Z` for Unix seconds; `None` out of chrono's range.
pub fn secs_to_rfc3339(secs: i64) -> Option<String> {
    let t = DateTime::<Utc>::from_timestamp(secs, 0)?;
    Some(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Microseconds since the epoch of RFC 3339 text with any offset; `None` when it is not.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = DateTime::parse_from_rfc3339(text).ok()?;
    Some(t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_in_and_out() {
        assert_eq!(
            secs_to_rfc3339(1_750_000_000).unwrap(),
            "2025-06-15T15:06:40Z"
        );
        assert_eq!(
            parse_rfc3339("2025-06-15T17:06:40.5+02:00"),
            Some(1_750_000_000_500_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert!(secs_to_rfc3339(i64::MAX).is_none());
    }
}
