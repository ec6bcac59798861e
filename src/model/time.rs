//! Time in the model and the store: `i64` microseconds since the Unix epoch, RFC 3339 at the edges.

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Unix seconds as microseconds (saturating, so absurd provider values cannot overflow).
pub fn secs_to_micros(secs: i64) -> i64 {
    secs.saturating_mul(1_000_000)
}

/// RFC 3339 UTC text for microseconds since the epoch (`None` when out of chrono's range).
pub fn micros_to_rfc3339(micros: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// RFC 3339 UTC text for Unix seconds (`None` when out of range).
pub fn secs_to_rfc3339(secs: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp(secs, 0).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Parses RFC 3339 text into microseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_through_micros() {
        let m = parse_rfc3339("2026-11-01T10:00:00Z").unwrap();
        assert_eq!(micros_to_rfc3339(m).unwrap(), "2026-11-01T10:00:00Z");
        assert_eq!(
            secs_to_rfc3339(m / 1_000_000).unwrap(),
            "2026-11-01T10:00:00Z"
        );
    }

    #[test]
    fn absurd_seconds_do_not_overflow() {
        assert_eq!(secs_to_micros(i64::MAX), i64::MAX);
        assert!(secs_to_rfc3339(i64::MAX).is_none());
    }
}
