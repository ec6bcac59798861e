//! The Maxio Advanced Billing (formerly Chargify) personality: a Relationship Invoicing site.
//! Its event log holds Maxio's own event records; only the event keys Maxio offers as
//! webhooks go out, form-encoded and signed with `X-Chargify-Webhook-Signature-Hmac-Sha-256`.
//! Customer deletions show only in the Events API, and invoice payments, voids and credit
//! notes only in the invoice events API and the lists (Maxio has no webhook for them).

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
use crate::signing;
use crate::Sim;

pub use shapes::numeric;

pub struct MaxioPersonality;

/// Maxio's webhook subscriptions (official SDK `WebhookSubscription`) this simulator sends.
const WEBHOOKS: &[&str] = &[
    "customer_create",
    "customer_update",
    "signup_success",
    "subscription_state_change",
    "invoice_issued",
    "payment_success",
    "refund_success",
];

/// The invoice events API's type for an event key (official SDK `InvoiceEventType`).
fn invoice_event(key: &str) -> Option<&'static str> {
    match key {
        "invoice_issued" => Some("issue_invoice"),
        "apply_payment" => Some("apply_payment"),
        "void_invoice" => Some("void_invoice"),
        "change_invoice_status" => Some("change_invoice_status"),
        "create_credit_note" => Some("create_credit_note"),
        _ => None,
    }
}

/// Maxio's event key for a generator (Stripe) event type.
fn key(stripe: &str) -> &'static str {
    match stripe {
        "customer.created" => "customer_create",
        "customer.deleted" => "customer_delete",
        "customer.subscription.created" => "signup_success",
        "customer.subscription.deleted" | "customer.subscription.updated" => {
            "subscription_state_change"
        }
        "invoice.finalized" => "invoice_issued",
        "invoice.paid" => "apply_payment",
        "invoice.voided" => "void_invoice",
        "invoice.marked_uncollectible" => "change_invoice_status",
        "charge.succeeded" => "payment_success",
        "refund.created" => "refund_success",
        "credit_note.created" => "create_credit_note",
        _ => "customer_update",
    }
}

impl Personality for MaxioPersonality {
    fn provider(&self) -> SimProvider {
        SimProvider::Maxio
    }

    /// Maxio API keys and site Shared Keys are long random alphanumerics.
    fn credentials(&self, tag: &str) -> (String, String) {
        (
            format!("{:Z<43}", format!("mxSim{tag}ApiKey")),
            format!("{:k<20}", format!("mxSim{tag}Shared")),
        )
    }

    /// HTTP Basic: the API key as user name, `x` as password.
    fn api_key(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get("authorization")?.to_str().ok()?;
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        Some(
            text.split_once(':')
                .map_or(text.as_str(), |(u, _)| u)
                .to_owned(),
        )
    }

    fn error(&self, failure: Failure) -> Response {
        match failure {
            // Rails' own answer to failed HTTP Basic auth.
            Failure::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [
                    ("www-authenticate", "Basic realm=\"Application\""),
                    ("content-type", "text/html; charset=utf-8"),
                ],
                "HTTP Basic: Access denied.\n",
            )
                .into_response(),
            // No rate-limit headers: none are documented, and the one third-party account
            // of Maxio's limit says none are sent.
            Failure::RateLimited => errors(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            Failure::Outage => errors(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            Failure::NotFound(_) => errors(StatusCode::NOT_FOUND, "Resource not found"),
            Failure::BadRequest(message) => errors(StatusCode::UNPROCESSABLE_ENTITY, &message),
        }
    }

    fn translate(&self, change: Change, at_micros: i64) -> Option<Change> {
        let at = at_micros.div_euclid(1_000_000);
        let (stream, id, object) = shapes::object(&change, at)?;
        Some(Change {
            stream,
            id,
            object,
            event_type: key(change.event_type),
            ..change
        })
    }

    fn touch(&self, object: &mut Value, at_micros: i64) {
        shapes::touch(object, at_micros.div_euclid(1_000_000));
    }

    fn edit_event(&self, stream: &str) -> &'static str {
        match stream {
            "customers" => "customer_update",
            "subscriptions" => "subscription_state_change",
            "transactions" => "payment_success",
            _ => "change_invoice_status",
        }
    }

    /// The event log's record: the Events API fields, which APIs and webhooks show it, and the
    /// object as it was.
    fn event_body(&self, event_id: &str, c: &Change, at_micros: i64) -> String {
        let at = at_micros.div_euclid(1_000_000);
        let inner = shapes::inner(&c.object).map(|(_, m)| m);
        let field = |k: &str| inner.and_then(|m| m.get(k)).cloned().unwrap_or(Value::Null);
        let id = field("id");
        let (subscription_id, customer_id) = match c.stream {
            "customers" => (Value::Null, id.clone()),
            "subscriptions" => (id.clone(), field("customer")["id"].clone()),
            _ => (field("subscription_id"), field("customer_id")),
        };
        let specific = match c.event_type {
            "subscription_state_change" => json!({
                "previous_subscription_state": field("previous_state"),
                "new_subscription_state": field("state"),
            }),
            // No payment is taken at signup here (its invoice is paid later): no data.
            "signup_success" => Value::Null,
            // The official SDK requires integer product ids: the site's catalogue product.
            "payment_success" => {
                json!({"product_id": shapes::PRODUCT_ID, "account_transaction_id": id})
            }
            "refund_success" => {
                json!({"refund_id": id, "gateway_transaction_id": id, "product_id": shapes::PRODUCT_ID})
            }
            "invoice_issued" => json!({
                "uid": field("uid"), "number": field("number"), "role": field("role"),
                "due_date": field("due_date"), "issue_date": field("issue_date"),
                // A string in the official SDK's model even before payment.
                "paid_date": field("paid_date").as_str().unwrap_or_default(),
                "due_amount": field("due_amount"),
                "paid_amount": field("paid_amount"), "tax_amount": field("tax_amount"),
                "refund_amount": field("refund_amount"), "total_amount": field("total_amount"),
                "status_amount": field("total_amount"), "product_name": field("product_name"),
                "consolidation_level": field("consolidation_level"), "line_items": [],
            }),
            _ => Value::Null,
        };
        json!({
            "id": numeric(event_id), "key": c.event_type, "created_at": shapes::api_time(at),
            "message": format!("{} via the simulator", c.event_type.replace('_', " ")),
            "subscription_id": subscription_id, "customer_id": customer_id,
            "event_specific_data": specific,
            "webhook": WEBHOOKS.contains(&c.event_type),
            "events_api": WEBHOOKS.contains(&c.event_type) || c.event_type == "customer_delete",
            "invoice_event": invoice_event(c.event_type),
            "stream": c.stream, "object": shapes::present(c.object.clone()),
        })
        .to_string()
    }

    /// `id`, `event` and `payload[...]` form-encoded (Rails bracket keys), with the site and
    /// the Events API id (`payload[event_id]`); `None` for events Maxio sends no webhook for.
    fn webhook_body(&self, event_body: &str) -> Option<String> {
        let e: Value = serde_json::from_str(event_body).ok()?;
        if e["webhook"] != true {
            return None;
        }
        let mut pairs = vec![
            ("id".to_owned(), e["id"].to_string()),
            ("event".to_owned(), e["key"].as_str()?.to_owned()),
        ];
        if let Some((name, inner)) = shapes::inner(&e["object"]) {
            shapes::form_pairs(
                &format!("payload[{name}]"),
                &Value::Object(inner.clone()),
                &mut pairs,
            );
        }
        shapes::form_pairs(
            "payload[site]",
            &json!({"id": shapes::SITE_ID, "subdomain": "billsync-sim"}),
            &mut pairs,
        );
        pairs.push(("payload[event_id]".into(), e["id"].to_string()));
        Some(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish(),
        )
    }

    fn delivery_headers(&self, secret: &str, body: &str, _t: i64) -> Vec<(String, String)> {
        let webhook_id = url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        vec![
            (
                "X-Chargify-Webhook-Signature-Hmac-Sha-256".into(),
                signing::maxio(secret, body.as_bytes()),
            ),
            ("X-Chargify-Webhook-Id".into(), webhook_id),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
        ]
    }

    fn router(&self) -> Router<Sim> {
        api::router()
    }
}

/// Maxio's error body: `{"errors": [...]}`.
fn errors(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "errors": [message] }))).into_response()
}
