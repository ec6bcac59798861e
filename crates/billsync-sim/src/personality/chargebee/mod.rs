//! The Chargebee personality: resources in Chargebee's shapes (`shapes`), webhooks in its
//! `ev_` event envelope with the resources under `content`, sent with HTTP Basic credentials
//! (Chargebee signs nothing), and the v2 API under `/chargebee/api/v2` (`api`): offset lists
//! of wrapped resources, `updated_at`/`occurred_at` filters and sorts, `include_deleted`,
//! Chargebee's error bodies and 429s.

mod api;
mod shapes;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use super::{Failure, Personality};
use crate::provider::SimProvider;
use crate::scenario::Change;
use crate::Sim;

pub struct ChargebeePersonality;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Personality for ChargebeePersonality {
    fn provider(&self) -> SimProvider {
        SimProvider::Chargebee
    }

    /// A test site's API key (`test_...`) and the endpoint's Basic credentials.
    fn credentials(&self, tag: &str) -> (String, String) {
        (
            format!("test_sim{tag}cdR3Kz4WJ9cuYcdRmVZsDeqT5Yy"),
            format!("cbhook{tag}:pw{tag}Xk2mQ9"),
        )
    }

    /// HTTP Basic with the API key as user name and an empty password.
    fn api_key(&self, headers: &HeaderMap) -> Option<String> {
        let encoded = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())?
            .strip_prefix("Basic ")?;
        let decoded = String::from_utf8(B64.decode(encoded.trim()).ok()?).ok()?;
        decoded.split_once(':').map(|(user, _)| user.to_owned())
    }

    fn error(&self, failure: Failure) -> Response {
        match failure {
            Failure::Unauthorized => error(
                StatusCode::UNAUTHORIZED,
                None,
                "api_authentication_failed",
                "api_authentication_invalid_key",
                "Sorry, authentication failed. Invalid api key",
            ),
            Failure::RateLimited => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    None,
                    "api_request_limit_exceeded",
                    "api_request_limit_exceeded",
                    "Sorry, access has been blocked temporarily due to request count exceeding acceptable limits. Please try after some time.",
                );
                r.headers_mut()
                    .insert("Retry-After", axum::http::HeaderValue::from_static("1"));
                r
            }
            Failure::Outage => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "internal_error",
                "internal_error",
                "Sorry, Something went wrong when trying to process the request (simulated outage).",
            ),
            Failure::NotFound(what) => error(
                StatusCode::NOT_FOUND,
                Some("invalid_request"),
                "resource_not_found",
                "resource_not_found",
                &format!("Sorry, we couldn't find that resource: {what}"),
            ),
            Failure::BadRequest(message) => error(
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
                "invalid_request",
                "param_wrong_value",
                &message,
            ),
        }
    }

    fn translate(&self, change: Change, at_micros: i64) -> Option<Change> {
        shapes::translate(change, at_micros)
    }

    fn touch(&self, object: &mut Value, at_micros: i64) {
        shapes::stamp(object, at_micros);
    }

    fn edit_event(&self, stream: &str) -> &'static str {
        match stream {
            "customers" => "customer_changed",
            "subscriptions" => "subscription_changed",
            "credit_notes" => "credit_note_updated",
            "transactions" => "transaction_updated",
            _ => "invoice_updated",
        }
    }

    fn event_body(&self, event_id: &str, c: &Change, _at_micros: i64) -> String {
        let id = event_id
            .strip_prefix("evt_")
            .map_or_else(|| event_id.to_owned(), |rest| format!("ev_{rest}"));
        let resource = api::resource_name(c.stream).unwrap_or("invoice");
        json!({
            "id": id, "occurred_at": c.at, "source": "api", "object": "event",
            "api_version": "v2", "event_type": c.event_type,
            "webhook_status": "scheduled",
            "webhooks": [{"id": format!("whv2_{}", id.trim_start_matches("ev_")),
                "webhook_status": "scheduled", "object": "webhook"}],
            "content": {resource: c.object},
        })
        .to_string()
    }

    /// Basic credentials of the endpoint (`username:password`), as Chargebee sends them.
    fn delivery_headers(&self, secret: &str, _body: &str, _t: i64) -> Vec<(String, String)> {
        vec![
            (
                "Authorization".into(),
                format!("Basic {}", B64.encode(secret)),
            ),
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "ChargeBee".into()),
        ]
    }

    fn router(&self) -> Router<Sim> {
        api::router()
    }
}

/// Chargebee's error body: `message`, `type`, `api_error_code`, `error_code`, `error_msg`,
/// `http_status_code`.
fn error(
    status: StatusCode,
    kind: Option<&str>,
    api_code: &str,
    code: &str,
    message: &str,
) -> Response {
    let mut body = json!({
        "message": message, "api_error_code": api_code, "error_code": code,
        "error_msg": message, "http_status_code": status.as_u16(),
    });
    if let Some(k) = kind {
        body["type"] = json!(k);
    }
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::sample_lifecycle;
    use crate::SimProvider;

    fn changes() -> Vec<(Change, i64)> {
        sample_lifecycle(SimProvider::Chargebee, 3, 400)
    }

    #[test]
    fn webhook_carries_the_endpoints_basic_credentials_and_the_api_takes_basic_keys() {
        let (c, at) = changes().remove(0);
        let body = ChargebeePersonality.event_body("evt_1", &c, at);
        let mut headers = HeaderMap::new();
        for (k, v) in ChargebeePersonality.delivery_headers("hook:pa:ss", &body, 0) {
            headers.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        // That billsync's Basic check accepts them: tests/it/sim_signatures.rs.
        let expected = format!("Basic {}", B64.encode("hook:pa:ss"));
        assert_eq!(headers["authorization"], expected.as_str());
        assert_eq!(
            ChargebeePersonality.api_key(&{
                let mut h = HeaderMap::new();
                h.insert(
                    "authorization",
                    format!("Basic {}", B64.encode("test_key:"))
                        .parse()
                        .unwrap(),
                );
                h
            }),
            Some("test_key".to_owned())
        );
    }
}
