//! Hostility knobs: rate limits with 429s, API lag, outages, and webhook drops, duplicates,
//! reordering, retries and replays. Settable at start and at run time (`POST /_sim/knobs`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How an outage answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// 500 with Stripe's `api_error` body.
    Error,
    /// Holds the request for a minute (past any sane client timeout), then 500.
    Hang,
    /// Answers normally after `slow_ms`.
    Slow,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outage {
    pub mode: OutageMode,
    /// How long from when it is set.
    pub secs: f64,
    #[serde(default)]
    pub slow_ms: u64,
}

/// Every knob; absent fields in a `POST /_sim/knobs` body keep their value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Knobs {
    /// API requests per second per account (`None`: unlimited).
    pub rate_limit_per_sec: Option<f64>,
    /// Requests the bucket may hold (burst).
    pub rate_limit_burst: f64,
    /// For this long after a change, reads return the previous state.
    pub api_lag_ms: u64,
    pub outage: Option<Outage>,
    /// Probability a webhook is never sent.
    pub webhook_drop: f64,
    /// Probability a webhook is sent twice.
    pub webhook_duplicate: f64,
    /// Webhooks are held in windows of this many and sent shuffled (0: in order).
    pub webhook_reorder_window: usize,
    /// Probability that an old delivery is sent again with its original timestamp.
    pub webhook_replay: f64,
    /// Stripe retries a failed delivery after ~1 h, 2 h, 4 h...; scaled by this (time compression).
    pub retry_time_scale: f64,
    /// Delivery attempts per webhook.
    pub max_delivery_attempts: u32,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            rate_limit_per_sec: None,
            rate_limit_burst: 10.0,
            api_lag_ms: 0,
            outage: None,
            webhook_drop: 0.0,
            webhook_duplicate: 0.0,
            webhook_reorder_window: 0,
            webhook_replay: 0.0,
            retry_time_scale: 0.001,
            max_delivery_attempts: 8,
        }
    }
}

impl Knobs {
    /// Overlays the fields present in `patch` (a JSON object).
    pub fn merge(&mut self, patch: &serde_json::Value) -> Result<(), serde_json::Error> {
        let mut current = serde_json::to_value(&*self)?;
        if let (Some(c), Some(p)) = (current.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                c.insert(k.clone(), v.clone());
            }
        }
        *self = serde_json::from_value(current)?;
        Ok(())
    }
}

/// A token bucket for one account's API requests.
#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            tokens: f64::MAX,
            last: Instant::now(),
        }
    }
}

impl Bucket {
    /// Takes a token at `rate`/s with `burst` capacity; false when the account is over.
    pub fn take(&mut self, rate: f64, burst: f64) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * rate;
        self.tokens = (self.tokens.min(burst) + refill).min(burst.max(1.0));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// When an outage set at `since` ends.
pub fn outage_active(outage: &Outage, since: Instant) -> bool {
    since.elapsed() < Duration::from_secs_f64(outage.secs.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_is_not_named() {
        let mut k = Knobs::default();
        k.merge(&serde_json::json!({"webhook_drop": 0.5, "rate_limit_per_sec": 10.0}))
            .unwrap();
        assert_eq!(k.webhook_drop, 0.5);
        assert_eq!(k.rate_limit_per_sec, Some(10.0));
        assert_eq!(k.max_delivery_attempts, 8);
        assert!(k
            .merge(&serde_json::json!({"webhook_drop": "lots"}))
            .is_err());
    }

    #[test]
    fn bucket_holds_the_rate() {
        let mut b = Bucket::default();
        let taken = (0..100).filter(|_| b.take(10.0, 5.0)).count();
        assert_eq!(taken, 5, "only the burst is available at once");
    }
}
