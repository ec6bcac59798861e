//! Recurly (API v3, `v2021-02-25`): intake verifies `recurly-signature` webhooks and stores
//! their thin JSON envelopes; the pair actor refetches the object each names
//! ([`super::Provider::thin_reference`]) and pulls `updated_at`-ordered lists for backfills and sweeps.
//!
//! Webhook body: `{"id", "object_type", "site_id", "event_type", "event_time", <handle>}` —
//! `account_code` (accounts, and `billing_info` changes, which `account.updated` does not
//! announce), `invoice_number` (`charge_invoice`, `credit_invoice`, legacy `invoice`), `uuid`
//! (subscriptions, payments). The event id is `id`, the type `{object_type}.{event_type}`.
//! Only JSON webhooks are signed; XML ones are refused. Objects are keyed by their API `id`;
//! a webhook's handle is read as `code-…`/`number-…`/`uuid-…` and the answer mapped by its
//! `id` (`docs/providers/recurly.md`, "Ids and handles").
//!
//! Invoices embed a first part of their `line_items`; one with `has_more_line_items` is
//! completed from `/invoices/{id}/line_items` through the shared sub-reads before it is
//! mapped (docs page, "Line items").
//!
//! Sweeps: Recurly v3 has no events API. A sweep walks every list (`/accounts`, `/invoices` —
//! charge and credit —, `/subscriptions`, `/transactions`) in turn, sorted by `updated_at`
//! ascending from `since`, and wraps each object in a synthetic envelope
//! (`{"id": "sweep:{object}:{id}:{updated_at}", "object_type": "billsync_sweep",
//! "event_type": "{object}", "event_time": updated_at, "object": {...}}`) that the provider's own
//! `observe` maps. The sweep cursor is a list's `next` link, or `start:{list}` between lists.

mod api;
mod mapping;
mod webhook;

use std::time::Duration;

use serde_json::Value;

use super::api_auth::{ApiAuth, Header};
use super::info::{Api, Events, Fetches, Lists, SubReads, Sweeps};
use super::major_units::Fields;
use super::rate_limit::{Backoff, Hint};
use super::{Envelope, ParseError, ProviderInfo, ProviderKind, Timing, WebhookAuth};
use crate::model::{ObjectType, Observation};
use webhook::parse_event;

/// Recurly's facts (docs/providers/recurly.md).
pub const INFO: ProviderInfo = ProviderInfo {
    kind: ProviderKind::Recurly,
    api_base: "https://v3.recurly.com",
    api_version: "v2021-02-25",
    // Production: 1,000 GET/min over a sliding 5-minute window (sandbox 400/min).
    default_rate_limit: 16,
    webhook_auth: WebhookAuth::signed("recurly-signature", SIGNATURE),
    events: Events::new(envelope, observe, observe_object)
        .thin(thin_reference)
        .handles(is_handle),
    // `Retry-After` when sent, else `X-RateLimit-Reset`, the Unix time the window resets.
    timing: Timing::USUAL.backoff(Backoff {
        hints: &[
            Hint::Wait("retry-after"),
            Hint::ResetsAt("x-ratelimit-reset"),
        ],
        default: Duration::from_secs(1),
    }),
    streams: mapping::STREAMS,
    api: Api {
        auth: ApiAuth::basic("", Some(RECURLY_ACCEPT)),
        lists: Lists::new(api::list_request, api::parse_list),
        sweeps: Sweeps::new(api::sweep_request, api::parse_sweep).by_page(api::parse_sweep_page),
        fetches: Fetches::new(api::fetch_request, api::parse_object),
        sub_reads: SubReads::new(api::sub_reads, api::parse_sub_page, api::merge_sub),
    },
};

pub use webhook::{sign, SIGNATURE};

/// Recurly's API version is a media type: `Accept: application/vnd.recurly.<version>`.
const RECURLY_ACCEPT: Header = Header::prefixed_version("Accept", "application/vnd.recurly.");

/// The handle prefixes Recurly's API accepts in place of an `id` (`/accounts/code-{code}`).
const HANDLES: &[&str] = &["code-", "number-", "uuid-"];

fn envelope(body: &[u8]) -> Result<Envelope, ParseError> {
    Ok(parse_event(body)?.envelope)
}

fn observe(body: &[u8]) -> Result<Option<Observation>, ParseError> {
    let event = parse_event(body)?;
    match event.object {
        // A swept object: mapped like any API read of it.
        Some(object) => mapping::observe(&object, event.envelope.occurred_at),
        // Webhooks are thin: the object is fetched (see `thin_reference`).
        None => Ok(None),
    }
}

fn thin_reference(body: &[u8]) -> Option<(ObjectType, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let e = Fields(&value);
    // The handle, read as Recurly's API takes it in place of an id; the answer is
    // mapped by its `id` (docs page, "Ids and handles").
    let (object_type, key, prefix) = match e.s("object_type")? {
        "account" | "billing_info" => (ObjectType::Customer, "account_code", "code-"),
        "charge_invoice" | "invoice" => (ObjectType::Invoice, "invoice_number", "number-"),
        "credit_invoice" => (ObjectType::CreditNote, "invoice_number", "number-"),
        "subscription" => (ObjectType::Subscription, "uuid", "uuid-"),
        "payment" => (ObjectType::Transaction, "uuid", "uuid-"),
        _ => return None,
    };
    Some((object_type, format!("{prefix}{}", e.id(key)?)))
}

fn is_handle(provider_id: &str) -> bool {
    // Recurly ids are lower-case letters and digits: a prefixed handle is never one.
    HANDLES.iter().any(|h| provider_id.starts_with(h))
}

fn observe_object(object: &Value, read_at: i64) -> Result<Option<Observation>, ParseError> {
    // Objects carry `updated_at`; an object without one is as old as the API may lag.
    mapping::observe(object, INFO.lagged(read_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::field_checks::assert_thin;
    use crate::providers::Provider;
    use crate::providers::VerifyError;
    use axum::http::HeaderMap;

    pub(super) const OFFICIAL_BODY: &[u8] = br#"{"id":"rjxwmwedwqug","object_type":"account","site_id":"qc326l1hl8k9","event_type":"created","event_time":"2022-09-13T21:18:40Z","account_code":"adfas23zzz14123"}"#;

    #[test]
    fn thin_webhooks_observe_nothing_and_name_the_object_by_its_handle() {
        assert_thin(
            &INFO,
            OFFICIAL_BODY,
            ObjectType::Customer,
            "code-adfas23zzz14123",
        );
        let cases = [
            (
                r#""object_type":"charge_invoice","invoice_number":1042"#,
                Some((ObjectType::Invoice, "number-1042")),
            ),
            (
                r#""object_type":"credit_invoice","invoice_number":"1043""#,
                Some((ObjectType::CreditNote, "number-1043")),
            ),
            (
                r#""object_type":"subscription","uuid":"63ab""#,
                Some((ObjectType::Subscription, "uuid-63ab")),
            ),
            (
                r#""object_type":"payment","uuid":"62bd""#,
                Some((ObjectType::Transaction, "uuid-62bd")),
            ),
            // Billing info changes are not `account.updated`: the account is read again.
            (
                r#""object_type":"billing_info","account_code":"acct-42""#,
                Some((ObjectType::Customer, "code-acct-42")),
            ),
            (r#""object_type":"gift_card","id2":"g""#, None),
        ];
        for (fields, expected) in cases {
            let body = format!(
                r#"{{"id":"e1","event_type":"paid","event_time":"2026-11-01T10:00:00Z",{fields}}}"#
            );
            let reference = INFO.thin_reference(body.as_bytes());
            assert_eq!(
                reference,
                expected.map(|(t, id)| (t, id.to_owned())),
                "{fields}"
            );
            if let Some((_, handle)) = reference {
                assert!(INFO.is_handle(&handle), "{handle}");
            }
        }
        assert!(!INFO.is_handle("o1xyzabc"), "an API id is no handle");
    }

    #[test]
    fn rate_limit_answers_pause_until_reset() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(INFO.retry_after(200, &h), None);
        assert_eq!(INFO.retry_after(429, &h), Some(Duration::from_secs(1)));
        let reset = crate::model::time::now_micros() / 1_000_000 + 30;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let pause = INFO.retry_after(429, &h).unwrap();
        assert!((Duration::from_secs(29)..=Duration::from_secs(30)).contains(&pause));
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(INFO.retry_after(429, &h), Some(Duration::from_secs(3)));
    }

    #[test]
    fn verify_reads_the_recurly_signature_header() {
        let secret = "354fab5bd35f5a0d50845ee7e30165244468b13c2c343f104e4e730a59326d9d".to_owned();
        let mut h = HeaderMap::new();
        assert_eq!(
            INFO.verify(
                &h,
                OFFICIAL_BODY,
                std::slice::from_ref(&secret),
                1663103925,
                300
            ),
            Err(VerifyError::InvalidSignature)
        );
        h.insert(
            "recurly-signature",
            "1663103925004,ad24699f3beaa24c9af2cc7ada3ce4c835da0090194241b9d3add83d27f14bc3"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            INFO.verify(&h, OFFICIAL_BODY, &[secret], 1663103925, 300),
            Ok(())
        );
    }
}
