//! Stripe: `Stripe-Signature` webhooks, `evt_` envelopes with full snapshots, and the mapping
//! of customers, invoices, credit notes, subscriptions, charges and refunds.

mod mapping;
mod pull;
mod signature;

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use super::{ApiRequest, Envelope, ListPage, ParseError, Provider, ProviderKind, VerifyError};
use crate::model::{time::secs_to_micros, ObjectType, Observation};

pub use signature::{sign, verify_header};

/// The Stripe provider.
pub struct Stripe;

impl Provider for Stripe {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Stripe
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[String],
        now_secs: i64,
        tolerance_secs: i64,
    ) -> Result<(), VerifyError> {
        let header = headers
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or(VerifyError::InvalidSignature)?;
        verify_header(header, body, secrets, now_secs, tolerance_secs)
    }

    fn envelope(&self, body: &[u8]) -> Result<Envelope, ParseError> {
        parse_envelope(body)
    }

    fn observe(&self, body: &[u8]) -> Result<Option<Observation>, ParseError> {
        let event = parse_event(body)?;
        let Some(object) = event.object else {
            return Ok(None);
        };
        mapping::observe(&event.event_type, event.created, &object)
    }

    fn default_api_base(&self) -> &'static str {
        "https://api.stripe.com"
    }

    fn default_api_version(&self) -> &'static str {
        "2024-06-20"
    }

    /// Any dated version (`2024-06-20`, `2025-03-31.basil`): the mapping reads old and new
    /// snapshot shapes alike (README, "Configuration"); Stripe itself refuses unknown ones.
    fn api_version_known(&self, version: &str) -> bool {
        let date = version.split('.').next().unwrap_or_default();
        date.len() == 10
            && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
            && date >= "2011-01-01"
    }

    fn default_rate_limit(&self) -> u32 {
        // Stripe allows 25 req/s per account in test mode and 100 in live mode.
        25
    }

    fn api_lag_allowance(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        api_key: &str,
        api_version: &str,
    ) -> reqwest::RequestBuilder {
        request
            .bearer_auth(api_key)
            .header("Stripe-Version", api_version)
    }

    fn streams(&self) -> &'static [&'static str] {
        pull::STREAMS
    }

    fn stream_object_type(&self, stream: &str) -> ObjectType {
        match stream {
            "customers" => ObjectType::Customer,
            "invoices" => ObjectType::Invoice,
            "credit_notes" => ObjectType::CreditNote,
            "subscriptions" => ObjectType::Subscription,
            _ => ObjectType::Transaction,
        }
    }

    fn list_request(
        &self,
        stream: &str,
        window: (i64, i64),
        cursor: Option<&str>,
        page_size: u32,
    ) -> ApiRequest {
        pull::list_request(stream, window, cursor, page_size)
    }

    fn parse_list(&self, body: &[u8]) -> Result<ListPage, ParseError> {
        pull::parse_list(body)
    }

    fn sweep_request(&self, since: i64, cursor: Option<&str>) -> ApiRequest {
        pull::events_request(since, cursor)
    }

    fn parse_sweep(&self, body: &[u8]) -> Result<(Vec<Vec<u8>>, Option<String>), ParseError> {
        let page = pull::parse_list(body)?;
        let events = page
            .objects
            .iter()
            .map(|e| serde_json::to_vec(e).map_err(|e| ParseError(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok((events, page.next_cursor))
    }

    fn fetch_request(&self, object_type: ObjectType, provider_id: &str) -> ApiRequest {
        let stream = match object_type {
            ObjectType::Customer => "customers",
            ObjectType::Invoice => "invoices",
            ObjectType::CreditNote => "credit_notes",
            ObjectType::Subscription => "subscriptions",
            ObjectType::Transaction if provider_id.starts_with("re_") => "refunds",
            ObjectType::Transaction => "charges",
        };
        ApiRequest {
            path: format!("/v1/{stream}/{provider_id}"),
            query: Vec::new(),
        }
    }

    fn parse_object(&self, body: &[u8]) -> Result<Value, ParseError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ParseError(format!("object is not JSON: {e}")))?;
        if v.get("id").and_then(Value::as_str).is_none() {
            return Err(ParseError("answer has no object `id`".into()));
        }
        Ok(v)
    }

    fn earliest_confirming_read(&self, change_order_key: i64) -> Option<i64> {
        // `observe_object` orders a read at `read_at - lag`; a second's margin for clocks.
        let lag = self.api_lag_allowance().as_micros() as i64;
        Some(
            change_order_key
                .saturating_add(lag)
                .saturating_add(1_000_000),
        )
    }

    fn observe_object(
        &self,
        object: &Value,
        read_at: i64,
    ) -> Result<Option<Observation>, ParseError> {
        // The API shows the object as of the read; it may lag its webhooks by the allowance.
        let lag = self.api_lag_allowance().as_micros() as i64;
        let created = read_at.saturating_sub(lag) / 1_000_000;
        Ok(
            mapping::observe("api.read", created, object)?.map(|mut obs| {
                obs.order_key = read_at.saturating_sub(lag);
                obs.provider_updated_at = read_at;
                obs
            }),
        )
    }

    fn retry_after(&self, status: u16, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
        pull::retry_after(status, headers)
    }
}

/// The parts of a Stripe event billsync reads.
struct StripeEvent {
    event_type: String,
    created: i64,
    object: Option<Value>,
}

/// The top-level fields of an event; everything else (the snapshot) is skipped unparsed.
#[derive(serde::Deserialize)]
struct Head {
    id: Option<Value>,
    object: Option<Value>,
    #[serde(rename = "type")]
    event_type: Option<Value>,
    created: Option<Value>,
}

/// Checks an event's identifying fields: (id, type, created).
fn check_head<'a>(
    id: Option<&'a Value>,
    object: Option<&'a Value>,
    event_type: Option<&'a Value>,
    created: Option<&'a Value>,
) -> Result<(&'a str, &'a str, i64), ParseError> {
    let id = id
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| ParseError("event has no string `id`".into()))?;
    if object.and_then(Value::as_str) != Some("event") {
        return Err(ParseError("`object` is not \"event\"".into()));
    }
    let event_type = event_type
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| ParseError("event has no string `type`".into()))?;
    let created = created
        .and_then(Value::as_i64)
        .ok_or_else(|| ParseError("event has no integer `created`".into()))?;
    Ok((id, event_type, created))
}

/// The envelope alone, at intake: the snapshot is skipped rather than built as a tree (it is
/// parsed when the event is applied), which was most of the JSON work of answering a webhook.
fn parse_envelope(body: &[u8]) -> Result<Envelope, ParseError> {
    let head: Head = serde_json::from_slice(body).map_err(|e| match e.classify() {
        // serde's data errors quote the value they met (`invalid type: string "..."`), and
        // this message is a webhook's answer: it never echoes the payload (CONTRACT "Errors").
        serde_json::error::Category::Data => ParseError("body is not a JSON object".into()),
        _ => ParseError(format!("body is not JSON: {e}")),
    })?;
    if body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|b| *b != b'{')
    {
        return Err(ParseError("body is not a JSON object".into()));
    }
    let (id, event_type, created) = check_head(
        head.id.as_ref(),
        head.object.as_ref(),
        head.event_type.as_ref(),
        head.created.as_ref(),
    )?;
    Ok(Envelope {
        event_id: id.to_owned(),
        event_type: event_type.to_owned(),
        occurred_at: secs_to_micros(created),
    })
}

fn parse_event(body: &[u8]) -> Result<StripeEvent, ParseError> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("body is not JSON: {e}")))?;
    let (_, event_type, created) = check_head(
        value.get("id"),
        value.get("object"),
        value.get("type"),
        value.get("created"),
    )?;
    let event_type = event_type.to_owned();
    // The snapshot is moved out of the parsed body, not copied.
    let object = value
        .get_mut("data")
        .and_then(|d| d.get_mut("object"))
        .filter(|o| o.is_object())
        .map(Value::take);
    Ok(StripeEvent {
        event_type,
        created,
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_needs_id_type_created_and_event_object() {
        let ok =
            br#"{"id":"evt_1","object":"event","type":"x.y","created":5,"data":{"object":{}}}"#;
        let env = Stripe.envelope(ok).unwrap();
        assert_eq!(env.event_id, "evt_1");
        assert_eq!(env.occurred_at, 5_000_000);
        for bad in [
            &br#"{"object":"event","type":"x","created":5}"#[..],
            br#"{"id":"evt_1","object":"charge","type":"x","created":5}"#,
            br#"{"id":"evt_1","object":"event","created":5}"#,
            br#"{"id":"evt_1","object":"event","type":"x","created":"5"}"#,
            b"not json",
            b"[]",
        ] {
            assert!(Stripe.envelope(bad).is_err());
        }
    }

    #[test]
    fn unmapped_event_type_observes_nothing() {
        let body = br#"{"id":"evt_1","object":"event","type":"plan.created","created":5,"data":{"object":{"id":"plan_1","object":"plan"}}}"#;
        assert_eq!(Stripe.observe(body).unwrap(), None);
    }
}
