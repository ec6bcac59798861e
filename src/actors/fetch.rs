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
use crate::outbound::{classify, Failure, FailureKind};
use crate::providers::subreads::MAX_SUB_PAGES;
use crate::providers::{ApiRequest, Provider};
use crate::store::Store;

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
    Exhausted { attempts: u32, last: Failure },
    /// The answer was read but a part of one of its objects could not be: the whole read
    /// fails (never a 404 of the object itself), so nothing is mapped half-read.
    #[error("reading `{part}` of an object: {message}")]
    SubRead { part: &'static str, message: String },
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
    pub faults: FaultLog,
}

/// The last failure of a connection's provider API, kept on its row for the admin view and
/// `billsync doctor`, and logged. The same failure is written and logged once a minute at most.
pub struct FaultLog {
    /// Where failures are written; `None` logs them only (`billsync doctor`).
    store: Option<Arc<dyn Store>>,
    connection_id: String,
    last: std::sync::Mutex<Option<(String, Instant)>>,
}

/// How often the same failure is written again.
const FAULT_REPEAT: Duration = Duration::from_secs(60);

impl FaultLog {
    pub fn new(store: Option<Arc<dyn Store>>, connection_id: String) -> Self {
        FaultLog {
            store,
            connection_id,
            last: std::sync::Mutex::new(None),
        }
    }

    fn record(&self, failure: &Failure) {
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((message, at)) = last.as_ref() {
                if *message == failure.message && at.elapsed() < FAULT_REPEAT {
                    return;
                }
            }
            *last = Some((failure.message.clone(), Instant::now()));
        }
        tracing::warn!(connection_id = %self.connection_id, kind = failure.kind.as_str(),
            error = %failure.message.escape_debug(), "provider API request failed");
        let Some(store) = self.store.clone() else {
            return;
        };
        let (id, failure) = (self.connection_id.clone(), failure.clone());
        tokio::spawn(async move {
            if let Err(e) = store
                .record_provider_error(&id, failure.kind.as_str(), &failure.message, now_micros())
                .await
            {
                tracing::warn!(connection_id = %id, error = %e, "cannot record a provider failure");
            }
        });
    }
}

impl Fetcher {
    /// GETs `request` and every sub-read its objects need ([`crate::providers::subreads`]),
    /// and gives back the answer with each object whole. Returns the attempts of all reads.
    pub async fn get_whole(
        &self,
        request: &ApiRequest,
        priority: Priority,
    ) -> (Result<Fetched, FetchError>, u32) {
        let (read, mut attempts) = self.get(request, priority).await;
        let mut fetched = match read {
            Ok(f) => f,
            Err(e) => return (Err(e), attempts),
        };
        // An answer that is not JSON is left to the provider's parser to refuse.
        let Ok(mut answer) = serde_json::from_slice::<serde_json::Value>(&fetched.body) else {
            return (Ok(fetched), attempts);
        };
        let reads = self.provider.sub_reads(&answer);
        if reads.is_empty() {
            return (Ok(fetched), attempts);
        }
        let mut requests = 0usize;
        for read in &reads {
            let mut items = Vec::new();
            let mut next = Some(read.request.clone());
            let mut pages = 0;
            while let Some(page_request) = next.take() {
                pages += 1;
                if pages > MAX_SUB_PAGES {
                    let message = format!("more than {MAX_SUB_PAGES} pages");
                    return (
                        Err(FetchError::SubRead {
                            part: read.part,
                            message,
                        }),
                        attempts,
                    );
                }
                let (page, n) = self.get(&page_request, priority).await;
                attempts += n;
                requests += 1;
                let page = page.map_err(|e| e.to_string()).and_then(|f| {
                    self.provider
                        .parse_sub_page(read, &f.body)
                        .map_err(|e| e.to_string())
                });
                match page {
                    Ok(mut page) => {
                        items.append(&mut page.items);
                        next = page.next;
                    }
                    Err(message) => {
                        return (
                            Err(FetchError::SubRead {
                                part: read.part,
                                message,
                            }),
                            attempts,
                        )
                    }
                }
            }
            if let Some(object) = answer.pointer_mut(&read.pointer) {
                self.provider.merge_sub(object, read.part, items);
            }
        }
        match serde_json::to_vec(&answer) {
            Ok(body) => {
                fetched.body = body;
                fetched.request = format!("{} (+{requests} sub-reads)", fetched.request);
                (Ok(fetched), attempts)
            }
            Err(e) => {
                let message = e.to_string();
                (
                    Err(FetchError::SubRead {
                        part: reads[0].part,
                        message,
                    }),
                    attempts,
                )
            }
        }
    }

    /// GETs `request` with retries. Returns the outcome and how many attempts it took.
    pub async fn get(
        &self,
        request: &ApiRequest,
        priority: Priority,
    ) -> (Result<Fetched, FetchError>, u32) {
        let provider = self.provider.kind().as_str();
        let url = format!("{}{}", self.base_url.trim_end_matches('/'), request.path);
        let mut last = status_failure("not attempted");
        let max_attempts = attempts(priority);
        for attempt in 1..=max_attempts {
            let credential = match self.credential(priority).await {
                Ok(c) => c,
                Err(e) => {
                    self.faults.record(&e);
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
                        last =
                            status_failure(&format!("{provider} answered {status}: rate limited"));
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
                                let f = classify(&e);
                                last = Failure {
                                    message: format!("reading the body: {}", f.message),
                                    ..f
                                };
                                "error"
                            }
                        }
                    } else if status == 401 && self.provider.token_request(&self.api_key).is_some()
                    {
                        // The token expired or was revoked early: get a new one and try again.
                        self.token.clear().await;
                        last = status_failure("401 with a cached access token");
                        "unauthorized"
                    } else if status >= 500 || status == 408 || status == 409 {
                        last = status_failure(&format!("{provider} answered {status}"));
                        self.faults.record(&last);
                        "server_error"
                    } else {
                        metrics::counter!("billsync_provider_requests_total", "provider" => provider,
                            "kind" => priority.as_str(), "outcome" => "refused")
                        .increment(1);
                        // A missing object is an answer, not a fault of the connection.
                        if status != 404 {
                            self.faults
                                .record(&status_failure(&refusal(provider, status)));
                        }
                        return (Err(FetchError::Refused { provider, status }), attempt);
                    }
                }
                Err(e) => {
                    let failure = classify(&e);
                    self.faults.record(&failure);
                    let outcome = match failure.kind {
                        FailureKind::Timeout => "timeout",
                        FailureKind::Certificate | FailureKind::Tls => "tls_error",
                        _ => "error",
                    };
                    last = failure;
                    outcome
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
    async fn credential(&self, priority: Priority) -> Result<String, Failure> {
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
            .map_err(|e| {
                let f = classify(&e);
                Failure {
                    message: format!("token request: {}", f.message),
                    ..f
                }
            })?;
        let status = response.status().as_u16();
        if let Some(pause) = self.provider.retry_after(status, response.headers()) {
            self.limiter.pause_for(pause);
            return Err(status_failure(&format!(
                "token request: {status} rate limited"
            )));
        }
        if !response.status().is_success() {
            return Err(status_failure(&format!(
                "token request: {}",
                refusal(self.provider.kind().as_str(), status)
            )));
        }
        let body = response.bytes().await.map_err(|e| {
            let f = classify(&e);
            Failure {
                message: format!("token request: reading the body: {}", f.message),
                ..f
            }
        })?;
        let token = self
            .provider
            .parse_token(&body)
            .map_err(|e| status_failure(&format!("token request: {}", e.0)))?;
        let expires = Instant::now() + token.expires_in;
        *cached = Some((token.token.clone(), expires));
        Ok(token.token)
    }
}

fn status_failure(message: &str) -> Failure {
    Failure {
        kind: FailureKind::Status,
        message: message.to_owned(),
    }
}

/// A refusal in words an operator acts on.
pub fn refusal(provider: &str, status: u16) -> String {
    match status {
        401 => format!("{provider} answered 401: the API key was not accepted"),
        403 => format!("{provider} answered 403: the API key lacks a permission"),
        _ => format!("{provider} answered {status}"),
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
