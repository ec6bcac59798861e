//! Provider API calls made by a pair actor's child tasks: every attempt passes the
//! connection's limiter, each has a timeout, failures back off with jitter, a 429 pauses the
//! whole connection. The reqwest client's own retries are off, so nothing bypasses the limiter.
//! For providers that authorize with short-lived tokens (Zuora OAuth), a token is obtained with
//! the connection's credentials, cached until shortly before it expires, and dropped on a 401.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use thiserror::Error;

use super::limiter::{ConnectionLimiter, Priority};
use crate::model::time::now_micros;
use crate::providers::{ApiRequest, Provider};

/// A token is renewed this long before the provider says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// The access token of one connection, shared by its child tasks.
#[derive(Debug, Default)]
pub struct TokenCache(tokio::sync::Mutex<Option<(String, Instant)>>);

/// Attempts per request before it is given back as failed.
const MAX_ATTEMPTS: u32 = 6;

/// Attempts of a confirmation read: a failed one is rescheduled with its own backoff
/// (`confirm.rs`), so six attempts inside the call spent three times the provider-wide
/// budget against an API that is down (48,000 pending reads: 288,000 requests, not 96,000).
const REFETCH_ATTEMPTS: u32 = 2;

fn attempts(priority: Priority) -> u32 {
    match priority {
        Priority::Refetch => REFETCH_ATTEMPTS,
        _ => MAX_ATTEMPTS,
    }
}

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("{provider} answered {status}: not retried")]
    Refused { provider: &'static str, status: u16 },
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: String },
}

/// A successful answer.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// When the answer was read, microseconds.
    pub read_at: i64,
    /// The request as sent (path and query), kept with the raw observation.
    pub request: String,
}

/// Everything a child task needs to call one connection's provider API.
pub struct Fetcher {
    pub client: reqwest::Client,
    pub limiter: Arc<ConnectionLimiter>,
    pub provider: &'static dyn Provider,
    pub base_url: String,
    pub api_key: String,
    pub api_version: String,
    pub timeout: Duration,
    pub token: TokenCache,
}

impl Fetcher {
    /// GETs `request` with retries. Returns the outcome and how many attempts it took.
    pub async fn get(
        &self,
        request: &ApiRequest,
        priority: Priority,
    ) -> (Result<Fetched, FetchError>, u32) {
        let provider = self.provider.kind().as_str();
        let url = format!("{}{}", self.base_url.trim_end_matches('/'), request.path);
        let mut last = String::new();
        let max_attempts = attempts(priority);
        for attempt in 1..=max_attempts {
            let credential = match self.credential(priority).await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    if attempt < max_attempts {
                        backoff(attempt).await;
                    }
                    continue;
                }
            };
            self.limiter.acquire(priority).await;
            let sent = self
                .provider
                .authorize(self.client.get(&url), &credential, &self.api_version)
                .query(&request.query)
                .timeout(self.timeout)
                .send()
                .await;
            let outcome = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if let Some(pause) = self.provider.retry_after(status, response.headers()) {
                        let jitter = rand::thread_rng().gen_range(0.0..0.25);
                        self.limiter.pause_for(pause.mul_f64(1.0 + jitter));
                        last = format!("{status} rate limited");
                        "rate_limited"
                    } else if response.status().is_success() {
                        match response.bytes().await {
                            Ok(body) => {
                                metrics::counter!("billsync_provider_requests_total", "provider" => provider,
                                    "kind" => priority.as_str(), "outcome" => "ok")
                                .increment(1);
                                let query: Vec<String> = request
                                    .query
                                    .iter()
                                    .map(|(k, v)| format!("{k}={v}"))
                                    .collect();
                                return (
                                    Ok(Fetched {
                                        body: body.to_vec(),
                                        read_at: now_micros(),
                                        request: format!(
                                            "GET {}?{}",
                                            request.path,
                                            query.join("&")
                                        ),
                                    }),
                                    attempt,
                                );
                            }
                            Err(e) => {
                                last = format!("reading the body: {e}");
                                "error"
                            }
                        }
                    } else if status == 401 && self.provider.token_request(&self.api_key).is_some()
                    {
                        // The token expired or was revoked early: get a new one and try again.
                        self.token.clear().await;
                        last = "401 with a cached access token".into();
                        "unauthorized"
                    } else if status >= 500 || status == 408 || status == 409 {
                        last = format!("{status}");
                        "server_error"
                    } else {
                        metrics::counter!("billsync_provider_requests_total", "provider" => provider,
                            "kind" => priority.as_str(), "outcome" => "refused")
                        .increment(1);
                        return (Err(FetchError::Refused { provider, status }), attempt);
                    }
                }
                Err(e) if e.is_timeout() => {
                    last = "timed out".into();
                    "timeout"
                }
                Err(e) => {
                    last = e.to_string();
                    "error"
                }
            };
            metrics::counter!("billsync_provider_requests_total", "provider" => provider,
                "kind" => priority.as_str(), "outcome" => outcome)
            .increment(1);
            // No wait after the last attempt: the caller decides what comes next.
            if outcome != "rate_limited" && outcome != "unauthorized" && attempt < max_attempts {
                backoff(attempt).await;
            }
        }
        (
            Err(FetchError::Exhausted {
                attempts: max_attempts,
                last,
            }),
            max_attempts,
        )
    }

    /// What authorizes a request: the API key, or for token providers a cached access token
    /// (obtained first when there is none or it is about to expire; the token request passes
    /// the limiter too, and a 429 to it pauses the connection).
    async fn credential(&self, priority: Priority) -> Result<String, String> {
        let Some(request) = self.provider.token_request(&self.api_key) else {
            return Ok(self.api_key.clone());
        };
        let mut cached = self.token.0.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if Instant::now() + TOKEN_MARGIN < *expires {
                return Ok(token.clone());
            }
        }
        self.limiter.acquire(priority).await;
        let url = format!("{}{}", self.base_url.trim_end_matches('/'), request.path);
        let response = self
            .client
            .post(&url)
            .form(&request.form)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| format!("token request: {e}"))?;
        let status = response.status().as_u16();
        if let Some(pause) = self.provider.retry_after(status, response.headers()) {
            self.limiter.pause_for(pause);
            return Err(format!("token request: {status} rate limited"));
        }
        if !response.status().is_success() {
            return Err(format!("token request answered {status}"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("token request: reading the body: {e}"))?;
        let token = self.provider.parse_token(&body).map_err(|e| e.0)?;
        let expires = Instant::now() + token.expires_in;
        *cached = Some((token.token.clone(), expires));
        Ok(token.token)
    }
}

impl TokenCache {
    async fn clear(&self) {
        *self.0.lock().await = None;
    }
}

/// Jittered exponential backoff before attempt `attempt + 1`: 0.25 s, 0.5 s, ... capped at 8 s.
async fn backoff(attempt: u32) {
    let base = 0.25 * f64::from(1u32 << (attempt - 1).min(5));
    let delay = base.min(8.0) * rand::thread_rng().gen_range(0.5..1.0);
    tokio::time::sleep(Duration::from_secs_f64(delay)).await;
}
