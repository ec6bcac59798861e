//! A round-robin HTTP load balancer on loopback for the cluster tests and the cluster bench:
//! it spreads requests over the nodes it was given and, like an ALB with health checks,
//! tries the next node when one refuses the connection, resets it, answers 502/503 or does
//! not answer in time (a frozen process), skipping a failed node for a while. It records
//! every webhook it acknowledged to its sender, so a test can check that each was applied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::Value;

/// A backend of the balancer and when it last failed.
struct Upstream {
    port: u16,
    failed_at: Option<Instant>,
}

struct LbState {
    backends: Mutex<Vec<Upstream>>,
    next: AtomicUsize,
    client: reqwest::Client,
    /// (connection id, event id) of every webhook answered 2xx to its sender.
    acked: Mutex<Vec<(String, String)>>,
    /// When a webhook whose object's email is a test marker (`mk...`) was first acknowledged.
    markers: Mutex<HashMap<String, Instant>>,
    retries: AtomicUsize,
}

/// A round-robin HTTP balancer on loopback. A node that refuses, resets or does not answer
/// within [`Lb::ATTEMPT`] is skipped for [`Lb::SKIP`] and the request goes to the next one.
#[derive(Clone)]
pub struct Lb {
    pub url: String,
    state: Arc<LbState>,
}

impl Lb {
    const ATTEMPT: Duration = Duration::from_secs(2);
    const SKIP: Duration = Duration::from_secs(3);

    pub async fn start() -> Lb {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the balancer");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let state = Arc::new(LbState {
            backends: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_millis(300))
                .timeout(Self::ATTEMPT)
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .expect("the balancer's client"),
            acked: Mutex::new(Vec::new()),
            markers: Mutex::new(HashMap::new()),
            retries: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Lb { url, state }
    }

    /// Adds (or brings back) the node on `port`.
    pub fn add(&self, port: u16) {
        let mut backends = self.state.backends.lock().unwrap();
        match backends.iter_mut().find(|b| b.port == port) {
            Some(b) => b.failed_at = None,
            None => backends.push(Upstream {
                port,
                failed_at: None,
            }),
        }
    }

    /// Every (connection, event id) acknowledged with a 2xx so far.
    pub fn acked(&self) -> Vec<(String, String)> {
        self.state.acked.lock().unwrap().clone()
    }

    /// When the webhook carrying marker `email` was first acknowledged.
    pub fn acked_at(&self, email: &str) -> Option<Instant> {
        self.state.markers.lock().unwrap().get(email).copied()
    }

    /// Requests that went to another node after one failed.
    pub fn retries(&self) -> usize {
        self.state.retries.load(Ordering::Relaxed)
    }
}

/// The order to try the backends in: round-robin, recently failed ones last.
fn attempt_order(state: &LbState) -> Vec<u16> {
    let backends = state.backends.lock().unwrap();
    if backends.is_empty() {
        return Vec::new();
    }
    let start = state.next.fetch_add(1, Ordering::Relaxed);
    let mut order: Vec<(bool, u16)> = (0..backends.len())
        .map(|i| {
            let b = &backends[(start + i) % backends.len()];
            let suspect = b.failed_at.is_some_and(|t| t.elapsed() < Lb::SKIP);
            (suspect, b.port)
        })
        .collect();
    order.sort_by_key(|(suspect, _)| *suspect); // stable: keeps the round-robin order
    order.into_iter().map(|(_, p)| p).collect()
}

async fn forward(State(state): State<Arc<LbState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return status_only(400);
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    for (n, port) in attempt_order(&state).into_iter().enumerate() {
        if n > 0 {
            state.retries.fetch_add(1, Ordering::Relaxed);
        }
        let mut headers = parts.headers.clone();
        headers.remove(reqwest::header::HOST);
        headers.remove(reqwest::header::CONTENT_LENGTH);
        let answer = state
            .client
            .request(
                parts.method.clone(),
                format!("http://127.0.0.1:{port}{path}"),
            )
            .headers(headers)
            .body(body.clone())
            .send()
            .await;
        let answer = match answer {
            // A node draining for shutdown may answer 503: as a health check would, move on.
            Ok(r) if r.status() != 502 && r.status() != 503 => r,
            _ => {
                mark_failed(&state, port);
                continue;
            }
        };
        let status = answer.status();
        let headers = answer.headers().clone();
        let Ok(bytes) = answer.bytes().await else {
            mark_failed(&state, port);
            continue;
        };
        if status.is_success() && path.starts_with("/webhooks/") {
            record_ack(&state, &path, &body);
        }
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        if let Some(ct) = headers.get(reqwest::header::CONTENT_TYPE) {
            response
                .headers_mut()
                .insert(reqwest::header::CONTENT_TYPE, ct.clone());
        }
        return response;
    }
    status_only(502)
}

/// Notes an acknowledged webhook: its event id, and when it carries a marker, the time.
fn record_ack(state: &LbState, path: &str, body: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if let Some(id) = event["id"].as_str() {
        let conn = path.rsplit('/').next().unwrap_or_default().to_owned();
        state.acked.lock().unwrap().push((conn, id.to_owned()));
    }
    if let Some(email) = event["data"]["object"]["email"].as_str() {
        if email.starts_with("mk") {
            let mut markers = state.markers.lock().unwrap();
            markers.entry(email.to_owned()).or_insert_with(Instant::now);
        }
    }
}

fn mark_failed(state: &LbState, port: u16) {
    if let Some(b) = state
        .backends
        .lock()
        .unwrap()
        .iter_mut()
        .find(|b| b.port == port)
    {
        b.failed_at = Some(Instant::now());
    }
}

fn status_only(status: u16) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = axum::http::StatusCode::from_u16(status).expect("a valid status");
    r
}
