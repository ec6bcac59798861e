//! Chargebee webhooks: the `ev_` envelope (event id, type, `occurred_at` in seconds, the
//! resources under `content`) and which resource an event type is about. Authenticity is HTTP
//! Basic (`crate::providers::basic_auth`); Chargebee signs nothing.

use serde_json::Value;

use crate::model::time::secs_to_micros;
use crate::providers::json_answer;
use crate::providers::minor_units::id_text;
use crate::providers::{CarriedEvent, Envelope, ParseError};

/// A Chargebee event: its envelope, and its resources (`content`).
pub(super) fn parse_event(body: &[u8]) -> Result<CarriedEvent, ParseError> {
    let v = json_answer::parse(body, "body")?;
    let id = id_text(v.get("id")).ok_or_else(|| ParseError("event has no string `id`".into()))?;
    let event_type = json_answer::event_text(v.get("event_type"))
        .ok_or_else(|| ParseError("event has no string `event_type`".into()))?;
    let occurred_at = v
        .get("occurred_at")
        .and_then(Value::as_i64)
        .ok_or_else(|| ParseError("event has no integer `occurred_at`".into()))?;
    let envelope = Envelope {
        event_id: id,
        event_type: event_type.to_owned(),
        occurred_at: secs_to_micros(occurred_at),
    };
    let content = v.get("content").filter(|c| c.is_object()).cloned();
    Ok(CarriedEvent {
        envelope,
        object: content,
    })
}

/// The resource an event type is about: `invoice_*` and `pending_invoice_*` (an invoice not
/// yet closed), `credit_note_*`, `subscription_*`, `customer_*`; `transaction_*`, `payment_*`
/// and `refund_*` are about a transaction.
pub(super) fn primary_resource(event_type: &str) -> Option<&'static str> {
    let prefixes: &[(&str, &str)] = &[
        ("invoice_", "invoice"),
        ("pending_invoice_", "invoice"),
        ("credit_note_", "credit_note"),
        ("subscription_", "subscription"),
        ("customer_", "customer"),
        ("transaction_", "transaction"),
        ("payment_", "transaction"),
        ("refund_", "transaction"),
    ];
    prefixes
        .iter()
        .find(|(p, _)| event_type.starts_with(p))
        .map(|(_, r)| *r)
}
