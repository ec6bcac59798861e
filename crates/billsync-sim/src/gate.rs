//! The door of every simulated API: finds the account by its API key, counts the request,
//! and applies the rate limit and outage knobs before a personality answers.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::Response;

use super::knobs::{outage_active, OutageMode};
use super::personality::{Failure, Personality};
use super::Sim;

/// Auth, rate limit and outage for one API request of `personality`'s provider; the
/// account index when it may proceed, the provider's error answer otherwise.
pub async fn admit(
    sim: &Sim,
    personality: &dyn Personality,
    headers: &HeaderMap,
    path: &str,
) -> Result<usize, Response> {
    let key = personality.api_key(headers).unwrap_or_default();
    let (account, outage) = {
        let mut w = sim.world();
        w.stats.requests += 1;
        *w.stats.requests_by_path.entry(path.to_owned()).or_default() += 1;
        let account = match w.by_key.get(&key) {
            Some(&a) if w.accounts[a].account.provider == personality.provider() => a,
            _ => return Err(personality.error(Failure::Unauthorized)),
        };
        let outage = match (&w.knobs.outage, w.outage_since) {
            (Some(o), Some(since)) if outage_active(o, since) => Some(o.clone()),
            _ => None,
        };
        if outage.is_none() {
            if let Some(rate) = w.knobs.rate_limit_per_sec {
                let burst = w.knobs.rate_limit_burst;
                if !w.accounts[account].bucket.take(rate, burst) {
                    w.stats.rate_limited += 1;
                    return Err(personality.error(Failure::RateLimited));
                }
            }
        }
        (account, outage)
    };
    if let Some(o) = outage {
        match o.mode {
            OutageMode::Slow => tokio::time::sleep(Duration::from_millis(o.slow_ms)).await,
            mode => {
                if mode == OutageMode::Hang {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                sim.world().stats.outage_answers += 1;
                return Err(personality.error(Failure::Outage));
            }
        }
    }
    Ok(account)
}

/// A request's query parameters (the last value of a repeated key wins).
pub fn params(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}
