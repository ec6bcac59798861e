//! The Paddle Billing personality: entities in Paddle's shapes (`shapes`), webhooks in Paddle's
//! envelope (`event_id`, `event_type`, `occurred_at`, `notification_id`, the entity after the
//! change as `data`) signed with `Paddle-Signature: ts=..;h1=..`, and Paddle's API under
//! `/paddle` (`api`): `after`-cursor lists ordered by id, `meta.pagination.next` links,
//! Paddle's error bodies and 429s with `Retry-After`. Customers' addresses and businesses are
//! their own resources with their own events (`parts`).

mod api;
mod parts;
mod shapes;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{Failure, Personality};
use crate::provider::SimProvider;
use crate::scenario::Change;
use crate::signing;
use crate::Sim;

pub struct PaddlePersonality;

impl Personality for PaddlePersonality {
    fn provider(&self) -> SimProvider {
        SimProvider::Paddle
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
            // Paddle answers a wrong or missing key with 403, not 401.
            Failure::Unauthorized => error(
                StatusCode::FORBIDDEN,
                "request_error",
                "invalid_token",
                "Invalid or revoked API key.",
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

    fn companion_events(&self, before: Option<&Value>, c: &Change) -> Vec<(&'static str, Value)> {
        if c.stream == "customers" {
            parts::part_events(before, &c.object)
        } else {
            Vec::new()
        }
    }

    fn event_body(&self, event_id: &str, c: &Change, at_micros: i64) -> String {
        // Customer events carry no addresses or businesses (docs/providers/paddle.md).
        let data = parts::present(&c.object);
        json!({
            "event_id": event_id, "event_type": c.event_type,
            "occurred_at": shapes::rfc3339(at_micros),
            // One notification per destination; the simulator has one destination.
            "notification_id": shapes::paddle_id("ntf", event_id),
            "data": data,
        })
        .to_string()
    }

    fn delivery_headers(&self, secret: &str, body: &str, t: i64) -> Vec<(String, String)> {
        vec![
            (
                "Paddle-Signature".into(),
                signing::paddle(secret, t, body.as_bytes()),
            ),
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
            "documentation_url": format!("https://developer.paddle.com/errors/shared/{code}")},
        "meta": {"request_id": api::request_id()},
    });
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::sample_lifecycle;
    use crate::SimProvider;

    /// Every translated change of a long lifecycle, in order.
    fn changes() -> Vec<Change> {
        let all = sample_lifecycle(SimProvider::Paddle, 3, 400);
        all.into_iter().map(|(c, _)| c).collect()
    }

    #[test]
    fn amounts_are_minor_unit_strings_and_updates_carry_the_change_time() {
        for c in changes().iter().filter(|c| c.stream == "transactions") {
            let totals = &c.object["details"]["totals"];
            for k in ["subtotal", "discount", "tax", "total", "grand_total"] {
                let v = totals[k].as_str().unwrap();
                assert!(v.bytes().all(|b| b.is_ascii_digit()), "{k} = {v}");
            }
            assert!(c.object["updated_at"].as_str().unwrap().ends_with('Z'));
        }
        let mut edited = json!({"id": "ctm_1"});
        PaddlePersonality.touch(&mut edited, 1_750_000_000_123_456);
        assert_eq!(edited["updated_at"], "2025-06-15T15:06:40.123456Z");
    }
    // The cross-checks with billsync's Paddle mapping and signature verifier are on billsync's
    // side (tests/it/sim_signatures.rs): this crate does not link billsync.
}
