//! The Recurly personality (API v3, `application/vnd.recurly.v2021-02-25`): thin JSON
//! webhooks signed with `recurly-signature` (`<unix ms>,<hex HMAC-SHA256 of "{ms}.{body}">`),
//! HTTP-Basic API keys, `updated_at`-sortable cursor lists with `next` links and `has_more`,
//! lookups by `code-`/`number-`/`uuid-` handles, Recurly's error bodies and `X-RateLimit-*`
//! 429s. Objects are built from the generator's changes in `shapes`; the API is in `api`.
//! Both follow `docs/providers/recurly.md`: billing-info changes come as
//! `billing_info.updated` webhooks naming the `account_code`, invoices embed only their first
//! line items.

mod api;
pub mod shapes;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use super::{Failure, Personality};
use crate::provider::SimProvider;
use crate::scenario::Change;
use crate::signing;
use crate::time::{now_micros, secs_to_rfc3339};
use crate::Sim;

pub struct RecurlyPersonality;

/// The API version the simulator speaks (and echoes in `Recurly-Version`).
const API_VERSION: &str = "v2021-02-25";

impl Personality for RecurlyPersonality {
    fn provider(&self) -> SimProvider {
        SimProvider::Recurly
    }

    /// Recurly private API keys are 32 hex characters; endpoint signing secrets 64.
    fn credentials(&self, tag: &str) -> (String, String) {
        (
            shapes::hex_id(&format!("recurly-api-key:{tag}"), 32),
            shapes::hex_id(&format!("recurly-webhook-secret:{tag}"), 64),
        )
    }

    /// HTTP Basic with the API key as the user name and an empty password.
    fn api_key(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get("authorization")?.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, _password) = text.split_once(':').unwrap_or((&text, ""));
        Some(user.to_owned())
    }

    fn error(&self, failure: Failure) -> Response {
        let (status, kind, message) = match failure {
            Failure::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Invalid API key. Please use a valid private API key.".to_owned(),
            ),
            Failure::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "You have made too many API requests in the last five minutes.".to_owned(),
            ),
            Failure::Outage => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "The service is temporarily unavailable (simulated outage).".to_owned(),
            ),
            Failure::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("Couldn't find {what}"),
            ),
            Failure::BadRequest(message) => (StatusCode::BAD_REQUEST, "bad_request", message),
        };
        let rate_limited = status == StatusCode::TOO_MANY_REQUESTS;
        let mut r = (
            status,
            axum::Json(json!({"error": {"type": kind, "message": message}})),
        )
            .into_response();
        decorate(r.headers_mut(), rate_limited);
        r
    }

    fn translate(&self, change: Change, at_micros: i64) -> Option<Change> {
        shapes::translate(change, at_micros.div_euclid(1_000_000))
    }

    fn touch(&self, object: &mut Value, at_micros: i64) {
        shapes::touch(object, at_micros.div_euclid(1_000_000));
    }

    fn edit_event(&self, stream: &str) -> &'static str {
        match stream {
            "accounts" => "account.updated",
            "subscriptions" => "subscription.updated",
            "transactions" => "payment.succeeded",
            _ => "charge_invoice.updated",
        }
    }

    /// Recurly's JSON webhooks are thin: `{id, object_type, site_id, event_type, event_time}`
    /// and the handle of the object (`account_code`, `invoice_number` or `uuid`).
    fn event_body(&self, event_id: &str, c: &Change, at_micros: i64) -> String {
        let (object_type, event_type) = c
            .event_type
            .split_once('.')
            .unwrap_or(("account", "updated"));
        // A credit invoice's events are `credit_invoice.*`, whatever the edit said.
        let object_type = match (object_type, c.object.get("type").and_then(Value::as_str)) {
            ("charge_invoice", Some("credit")) => "credit_invoice",
            (t, _) => t,
        };
        let handle = match object_type {
            "account" | "billing_info" => "account_code",
            "charge_invoice" | "credit_invoice" => "invoice_number",
            _ => "uuid",
        };
        // The site is the account's: its tag is the event id without its 10-digit counter.
        let site = event_id
            .get(..event_id.len().saturating_sub(10))
            .unwrap_or(event_id);
        let mut body = serde_json::Map::new();
        body.insert("id".into(), json!(shapes::alnum_id(event_id, 12)));
        body.insert("object_type".into(), json!(object_type));
        body.insert(
            "site_id".into(),
            json!(shapes::alnum_id(&format!("site:{site}"), 12)),
        );
        body.insert("event_type".into(), json!(event_type));
        body.insert(
            "event_time".into(),
            json!(secs_to_rfc3339(at_micros.div_euclid(1_000_000))),
        );
        body.insert(handle.into(), json!(c.id));
        Value::Object(body).to_string()
    }

    /// `recurly-signature: <unix ms>,<hex>`; the timestamp is milliseconds.
    fn delivery_headers(&self, secret: &str, body: &str, t: i64) -> Vec<(String, String)> {
        vec![
            (
                "recurly-signature".into(),
                signing::recurly(secret, t.saturating_mul(1000), body.as_bytes()),
            ),
            ("content-type".into(), "application/json".into()),
        ]
    }

    fn router(&self) -> Router<Sim> {
        api::router()
    }
}

/// Headers on every Recurly answer: `Recurly-Version`, `X-Request-Id` (the official Python
/// client appends it to every error message) and the `X-RateLimit-*` trio (reset in epoch
/// seconds).
fn decorate(headers: &mut HeaderMap, exhausted: bool) {
    let now = now_micros();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("recurly-version", format!("recurly.{API_VERSION}"));
    put(
        "x-request-id",
        shapes::alnum_id(&format!("request:{now}"), 20),
    );
    put("x-ratelimit-limit", "2000".into());
    put(
        "x-ratelimit-remaining",
        if exhausted { "0" } else { "1999" }.into(),
    );
    put("x-ratelimit-reset", (now / 1_000_000 + 1).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_info_changes_are_announced_as_billing_info_updated_naming_the_account_code() {
        // An account whose VAT number and address Recurly keeps on its billing info.
        let code = (0..)
            .map(|i| format!("cus_test{i:010}"))
            .find(|c| shapes::collection(c) == shapes::Collection::BillingInfoOnly)
            .expect("one code in three");
        let change = Change {
            stream: "customers",
            id: code.clone(),
            created: 1,
            object: json!({"id": code, "name": "Ada B", "tax_ids": {"data": [{"value": "DE1"}]},
                           "address": {"line1": "1 Main St", "country": "DE"}}),
            deleted: false,
            event_type: "customer.updated",
            at: 2,
        };
        let c = shapes::translate(change, 2).expect("an account change");
        assert_eq!(c.event_type, "billing_info.updated");
        assert_eq!(c.object["billing_info"]["vat_number"], "DE1");
        assert_eq!(c.object["billing_info"]["address"]["country"], "DE");
        assert_eq!(c.object["vat_number"], Value::Null);
        assert_eq!(c.object["address"]["country"], Value::Null);
        let body = RecurlyPersonality.event_body("evt_x0000000001", &c, 2_000_000);
        let event: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(event["object_type"], "billing_info");
        assert_eq!(event["event_type"], "updated");
        assert_eq!(event["account_code"], code.as_str());
        // That billsync reads the account again for it: tests/it/sim_signatures.rs.
    }
}
