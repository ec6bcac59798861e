//! The Paddle Billing personality: entities in Paddle's shapes (`shapes`), webhooks in Paddle's
//! envelope (`event_id`, `event_type`, `occurred_at`, `notification_id`, the entity after the
//! change as `data`) signed with `Paddle-Signature: ts=..;h1=..`, and Paddle's API under
//! `/paddle` (`api`): `after`-cursor lists ordered by id, `meta.pagination.next` links,
//! Paddle's error bodies and 429s with `Retry-After`.

mod api;
mod shapes;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{Failure, Personality};
use crate::providers::paddle::sign;
use crate::providers::ProviderKind;
use crate::simulator::scenario::Change;
use crate::simulator::Sim;

pub struct Paddle;

impl Personality for Paddle {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Paddle
    }

    /// A sandbox API key (`pdl_sdbx_apikey_...`) and a notification destination's secret
    /// (`pdl_ntfset_...`), the forms Paddle issues since 2025.
    fn credentials(&self, tag: &str) -> (String, String) {
        (
            format!("pdl_sdbx_apikey_01sim{tag}_simulatedkey{tag}"),
            format!("pdl_ntfset_01sim{tag}_simulatedsecret{tag}"),
        )
    }

    fn api_key(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
    }

    fn error(&self, failure: Failure) -> Response {
        match failure {
            Failure::Unauthorized => error(
                StatusCode::FORBIDDEN,
                "request_error",
                "invalid_token",
                "Authentication token passed is invalid.",
            ),
            Failure::RateLimited => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "request_error",
                    "too_many_requests",
                    "IP address exceeded the allowed rate limit. Retry after the number of seconds in the Retry-After header.",
                );
                r.headers_mut()
                    .insert("Retry-After", axum::http::HeaderValue::from_static("1"));
                r
            }
            Failure::Outage => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal_error",
                "An internal error has occurred (simulated outage).",
            ),
            Failure::NotFound(what) => error(
                StatusCode::NOT_FOUND,
                "request_error",
                "not_found",
                &format!("Entity {what} not found"),
            ),
            Failure::BadRequest(message) => error(
                StatusCode::BAD_REQUEST,
                "request_error",
                "invalid_field",
                &message,
            ),
        }
    }

    fn translate(&self, change: Change, at_micros: i64) -> Option<Change> {
        shapes::translate(change, at_micros)
    }

    fn touch(&self, object: &mut Value, at_micros: i64) {
        object["updated_at"] = shapes::rfc3339(at_micros);
    }

    fn edit_event(&self, stream: &str) -> &'static str {
        match stream {
            "customers" => "customer.updated",
            "subscriptions" => "subscription.updated",
            "adjustments" => "adjustment.updated",
            _ => "transaction.updated",
        }
    }

    fn event_body(&self, event_id: &str, c: &Change, at_micros: i64) -> String {
        json!({
            "event_id": event_id, "event_type": c.event_type,
            "occurred_at": shapes::rfc3339(at_micros),
            // One notification per destination; the simulator has one destination.
            "notification_id": shapes::paddle_id("ntf", event_id),
            "data": c.object,
        })
        .to_string()
    }

    fn delivery_headers(&self, secret: &str, body: &str, t: i64) -> Vec<(String, String)> {
        vec![
            ("Paddle-Signature".into(), sign(secret, t, body.as_bytes())),
            ("content-type".into(), "application/json".into()),
        ]
    }

    fn router(&self) -> Router<Sim> {
        api::router()
    }
}

/// Paddle's error body: `{"error": {type, code, detail, documentation_url}, "meta": {...}}`.
fn error(status: StatusCode, kind: &str, code: &str, detail: &str) -> Response {
    let body = json!({
        "error": {"type": kind, "code": code, "detail": detail,
            "documentation_url": format!("https://developer.paddle.com/v1/errors/shared/{code}")},
        "meta": {"request_id": api::request_id()},
    });
    (status, Json(body)).into_response()
}
