//! The Zuora personality: OAuth 2.0 client credentials (`POST /oauth/token` → a bearer token
//! valid for an hour), the Object Query API (`/object-query/{list}` with `pageSize` ≤ 50,
//! `cursor`/`nextPage`, `filter[]`, `sort[]`, `expand[]`; `/object-query/{list}/{id or
//! number}`), Zuora's `reasons` error bodies and 429s with `RateLimit-*` headers, and thin
//! callouts with preemptive HTTP Basic auth and `Zuora-Notification-Id` / `Zuora-Request-Id`
//! headers, in the body shape billsync documents for the tenant's callout template.

mod api;
mod shapes;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use super::recurly::shapes::hex_id;
use super::{Failure, Personality};
use crate::provider::SimProvider;
use crate::scenario::Change;
use crate::time::now_micros;
use crate::Sim;

pub struct ZuoraPersonality;

/// How long an access token is valid (Zuora: one hour; answered as `expires_in: 3599`).
const TOKEN_SECS: i64 = 3600;

impl Personality for ZuoraPersonality {
    fn provider(&self) -> SimProvider {
        SimProvider::Zuora
    }

    /// The API key is the OAuth client `client_id:client_secret` (a UUID-shaped id and a
    /// random secret); the callout secret is the Basic-auth `username:password` (docs/api.md).
    fn credentials(&self, tag: &str) -> (String, String) {
        let h = hex_id(&format!("zuora-client:{tag}"), 32);
        let client_id = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        );
        let secret = hex_id(&format!("zuora-client-secret:{tag}"), 40);
        let password = hex_id(&format!("zuora-callout:{tag}"), 24);
        (
            format!("{client_id}:{secret}"),
            format!("billsync-callout-{tag}:{password}"),
        )
    }

    /// The account a bearer token was issued to (tokens are self-describing here: the
    /// simulator keeps no token table), `None` when absent, forged or expired.
    fn api_key(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get("authorization")?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ")?.trim();
        let (client, rest) = token.split_once('.')?;
        let (expires, mac) = rest.split_once('.')?;
        let expires: i64 = expires.parse().ok()?;
        if expires <= now_micros() / 1_000_000 || mac != token_mac(client, expires) {
            return None;
        }
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(client)
            .ok()?;
        String::from_utf8(key).ok()
    }

    fn error(&self, failure: Failure) -> Response {
        let (status, code, message) = match failure {
            Failure::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "90000011",
                "Authentication error".to_owned(),
            ),
            Failure::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "70000070",
                "The total number of requests has exceeded the rate limit allowed by your subscription.".to_owned(),
            ),
            Failure::Outage => (
                StatusCode::SERVICE_UNAVAILABLE,
                "50000000",
                "Service temporarily unavailable (simulated outage).".to_owned(),
            ),
            Failure::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "50000040",
                format!("Cannot find entity by key: '{what}'."),
            ),
            Failure::BadRequest(message) => (StatusCode::BAD_REQUEST, "50000020", message),
        };
        reasons(status, code, &message)
    }

    fn translate(&self, change: Change, at_micros: i64) -> Option<Change> {
        shapes::translate(change, at_micros.div_euclid(1_000_000))
    }

    fn touch(&self, object: &mut Value, at_micros: i64) {
        shapes::touch(object, at_micros.div_euclid(1_000_000));
    }

    fn edit_event(&self, stream: &str) -> &'static str {
        match stream {
            "accounts" => "AccountUpdated",
            "credit-memos" => "CreditMemoUpdated",
            "subscriptions" => "SubscriptionUpdated",
            "payments" => "PaymentUpdated",
            "refunds" => "RefundUpdated",
            _ => "InvoiceUpdated",
        }
    }

    /// The thin callout body (billsync's documented template): the notification id (stable
    /// across retries; also sent as `Zuora-Notification-Id`), the event, its time in the
    /// tenant's zone, and the object to fetch (a subscription by its number).
    fn event_body(&self, event_id: &str, c: &Change, at_micros: i64) -> String {
        let object_type = match c.stream {
            "accounts" => "Account",
            "credit-memos" => "CreditMemo",
            "subscriptions" => "Subscription",
            "payments" => "Payment",
            "refunds" => "Refund",
            _ => "Invoice",
        };
        let object_id = c.id.strip_prefix(shapes::REFUND_PREFIX).unwrap_or(&c.id);
        json!({
            "notificationId": notification_id(event_id),
            "eventType": c.event_type,
            "eventTime": shapes::datetime(at_micros.div_euclid(1_000_000)),
            "objectType": object_type,
            "objectId": object_id,
        })
        .to_string()
    }

    /// Preemptive Basic auth (without it Zuora first sends no credentials and waits for a
    /// 401 challenge), the notification id, and a request id that is new per attempt.
    fn delivery_headers(&self, secret: &str, body: &str, t: i64) -> Vec<(String, String)> {
        let notification = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|b| b["notificationId"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let basic = base64::engine::general_purpose::STANDARD.encode(secret);
        let request_id = hex_id(&format!("{notification}:{t}:{}", now_micros()), 32);
        vec![
            ("authorization".into(), format!("Basic {basic}")),
            ("content-type".into(), "application/json".into()),
            ("zuora-notification-id".into(), notification),
            ("zuora-request-id".into(), request_id),
        ]
    }

    fn router(&self) -> Router<Sim> {
        api::router()
    }
}

/// A Zuora-style id for a generator event id (`2c92c0f8...`, 32 hex).
fn notification_id(event_id: &str) -> String {
    hex_id(&format!("notification:{event_id}"), 32)
}

/// The signature over a token's parts, so a client cannot forge one for another account.
fn token_mac(client: &str, expires: i64) -> String {
    hex_id(&format!("billsync-sim-zuora-token:{client}:{expires}"), 24)
}

/// A new access token for `api_key`, valid for [`TOKEN_SECS`] from now.
fn issue_token(api_key: &str) -> String {
    let client = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(api_key);
    let expires = now_micros() / 1_000_000 + TOKEN_SECS;
    format!("{client}.{expires}.{}", token_mac(&client, expires))
}

/// Zuora's error body: `{"success": false, "reasons": [{"code", "message"}], ...}`, with the
/// `RateLimit-*` headers on a 429.
fn reasons(status: StatusCode, code: &str, message: &str) -> Response {
    let now = now_micros();
    let request_id = hex_id(&format!("request:{now}"), 32);
    let body = json!({
        "success": false, "processId": hex_id(&format!("process:{now}"), 16).to_uppercase(),
        "reasons": [{"code": code, "message": message}], "requestId": request_id,
    });
    let mut r = (status, axum::Json(body)).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("zuora-request-id", v);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        for (name, value) in [
            ("ratelimit-limit", "50000;window=60"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "1"),
        ] {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    r
}
