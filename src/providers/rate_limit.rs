//! How long a connection pauses after a provider answers 429 (the fetcher, `actors/fetch.rs`,
//! asks `Provider::retry_after`): one policy for every provider, written and tested once here.
//! A provider only names where it says when to come back ([`Hint`], in the order it prefers)
//! and what to assume when it says nothing; `docs/providers/<name>.md` cites the headers.
//!
//! The policy: only a 429 pauses; the first hint present with a usable value wins (seconds,
//! fractions allowed, or an HTTP date for `Retry-After`, or a reset time in Unix seconds);
//! otherwise the provider's default; the pause is kept between one second and one minute, so
//! a wrong header can neither spin a connection nor park it for long (a longer limit is met
//! again and paused again).

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::model::time::now_micros;

/// Shortest pause: a 429 is never retried at once.
pub const MIN_PAUSE: Duration = Duration::from_secs(1);

/// Longest pause for one 429.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// A response header that says when to try again.
#[derive(Debug, Clone, Copy)]
pub enum Hint {
    /// Seconds to wait, or an HTTP date (`Retry-After`, RFC 9110 §10.2.3; Zuora's
    /// `RateLimit-Reset`).
    Wait(&'static str),
    /// The Unix time, in seconds, at which the limit resets (Recurly's `X-RateLimit-Reset`).
    ResetsAt(&'static str),
}

/// A provider's 429 policy: where it says when to come back, and what to assume otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub hints: &'static [Hint],
    pub default: Duration,
}

impl Backoff {
    /// `Retry-After` when the provider sends it, else `default`: what most providers document.
    pub const fn retry_after(default: Duration) -> Backoff {
        Backoff {
            hints: &[Hint::Wait("retry-after")],
            default,
        }
    }

    /// The pause after an answer with `status` and `headers`; `None` when it asks for none.
    pub fn pause(&self, status: u16, headers: &HeaderMap) -> Option<Duration> {
        self.pause_at(status, headers, now_micros())
    }

    fn pause_at(&self, status: u16, headers: &HeaderMap, now_micros: i64) -> Option<Duration> {
        if status != 429 {
            return None;
        }
        let wait = self
            .hints
            .iter()
            .find_map(|hint| read(hint, headers, now_micros))
            .unwrap_or(self.default);
        Some(wait.clamp(MIN_PAUSE, MAX_PAUSE))
    }
}

/// What one hint says, when its header is present and readable.
fn read(hint: &Hint, headers: &HeaderMap, now_micros: i64) -> Option<Duration> {
    let (Hint::Wait(name) | Hint::ResetsAt(name)) = *hint;
    let value = headers.get(name)?.to_str().ok()?.trim();
    let until = |at_micros: i64| {
        Duration::from_micros(u64::try_from(at_micros.saturating_sub(now_micros)).unwrap_or(0))
    };
    match hint {
        Hint::Wait(_) => match value.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs >= 0.0 => {
                Some(Duration::from_secs_f64(secs.min(MAX_PAUSE.as_secs_f64())))
            }
            Ok(_) => None,
            Err(_) => chrono::DateTime::parse_from_rfc2822(value)
                .ok()
                .map(|at| until(at.timestamp_micros())),
        },
        Hint::ResetsAt(_) => value
            .parse::<i64>()
            .ok()
            .map(|secs| until(secs.saturating_mul(1_000_000))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000 * 1_000_000;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().unwrap());
        }
        h
    }

    const POLICY: Backoff = Backoff {
        hints: &[
            Hint::Wait("retry-after"),
            Hint::ResetsAt("x-ratelimit-reset"),
        ],
        default: Duration::from_secs(5),
    };

    fn pause(pairs: &[(&'static str, &str)]) -> Option<Duration> {
        POLICY.pause_at(429, &headers(pairs), NOW)
    }

    /// Each 429's headers give the pause next to them.
    #[track_caller]
    fn pauses(cases: &[(&[(&'static str, &str)], Duration)]) {
        for (pairs, want) in cases {
            assert_eq!(pause(pairs), Some(*want), "{pairs:?}");
        }
    }

    #[test]
    fn only_a_429_pauses_and_silence_means_the_default() {
        assert_eq!(POLICY.pause_at(200, &headers(&[]), NOW), None);
        assert_eq!(
            POLICY.pause_at(503, &headers(&[("retry-after", "3")]), NOW),
            None
        );
        assert_eq!(pause(&[]), Some(Duration::from_secs(5)));
    }

    #[test]
    fn the_first_usable_hint_wins_in_the_providers_order() {
        let reset = (NOW / 1_000_000 + 30).to_string();
        let reset = reset.as_str();
        pauses(&[
            (
                &[("retry-after", "3"), ("x-ratelimit-reset", reset)],
                Duration::from_secs(3),
            ),
            (&[("x-ratelimit-reset", reset)], Duration::from_secs(30)),
            // Unreadable or negative: skipped for the next hint, then the default.
            (
                &[("retry-after", "soon"), ("x-ratelimit-reset", reset)],
                Duration::from_secs(30),
            ),
            (&[("retry-after", "-4")], Duration::from_secs(5)),
            (&[("retry-after", "NaN")], Duration::from_secs(5)),
        ]);
    }

    #[test]
    fn seconds_fractions_and_http_dates_are_read() {
        pauses(&[
            (&[("retry-after", "2.5")], Duration::from_millis(2_500)),
            // 1_800_000_000 is Fri, 15 Jan 2027 08:00:00 GMT.
            (
                &[("retry-after", "Fri, 15 Jan 2027 08:00:12 GMT")],
                Duration::from_secs(12),
            ),
        ]);
    }

    #[test]
    fn pauses_stay_between_a_second_and_a_minute() {
        let past = (NOW / 1_000_000 - 10).to_string();
        let far = (NOW / 1_000_000 + 3_600).to_string();
        pauses(&[
            (&[("retry-after", "0")], MIN_PAUSE),
            (&[("retry-after", "0.2")], MIN_PAUSE),
            (&[("retry-after", "86400")], MAX_PAUSE),
            (&[("x-ratelimit-reset", &past)], MIN_PAUSE),
            (&[("x-ratelimit-reset", &far)], MAX_PAUSE),
            (
                &[("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT")],
                MIN_PAUSE,
            ),
        ]);
    }

    #[test]
    fn most_providers_wait_as_retry_after_says() {
        let policy = Backoff::retry_after(Duration::from_secs(15));
        let at = |pairs: &[(&'static str, &str)]| policy.pause_at(429, &headers(pairs), NOW);
        assert_eq!(at(&[]), Some(Duration::from_secs(15)));
        assert_eq!(at(&[("retry-after", "4")]), Some(Duration::from_secs(4)));
        assert_eq!(
            at(&[("x-ratelimit-reset", "1")]),
            Some(Duration::from_secs(15))
        );
    }
}
