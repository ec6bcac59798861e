//! Zuora: intake authenticates callouts with HTTP Basic (RFC 7617) and stores them whatever
//! their template ([`webhook`]); the pair actor refetches the object each names
//! ([`super::Provider::thin_reference`]) and pulls the Object Query API (`/object-query/...`,
//! `updateddate` ordered) for backfills and sweeps, reading the items of long invoices
//! separately ([`items`]). docs/providers/zuora.md says which endpoint and which field each
//! canonical field comes from, and which Zuora documentation each choice relies on.
//!
//! # The callout body billsync documents
//!
//! Zuora callout bodies are whatever the tenant's callout template says. billsync reads any
//! template (JSON or XML) for the common merge-field names (`accountId`, `invoiceId`,
//! `paymentId`, ...; see [`webhook`]), and documents one shape that names the object
//! unambiguously (JSON, Basic auth with one of the connection's `username:password` entries):
//!
//! ```json
//! {
//!   "eventType": "InvoicePosted",
//!   "eventTime": "2026-11-01T10:00:00Z",
//!   "objectType": "Invoice",
//!   "objectId": "8a8aa0b27f3c1d2e017f3c5a6b7c0001"
//! }
//! ```
//!
//! - The dedupe key is the `Zuora-Notification-Id` header, which Zuora sends with every
//!   callout and keeps across retries (not `Zuora-Request-Id`, new per attempt). A body
//!   `notificationId` is the fallback; with neither, a digest of the body.
//! - `eventType`: stored as the event type (`unknown` when absent); `eventTime` (RFC 3339)
//!   is informational (the refetched object's `updatedDate` orders the change).
//! - `objectType` and `objectId`: the object to fetch. `objectType` is one of `Account`,
//!   `Invoice`, `CreditMemo`, `Subscription`, `Payment`, `Refund`; `objectId` is the object's
//!   id, except for `Subscription`, whose id changes with every amendment: send the
//!   subscription **number** (`Subscription.Name`), billsync's key for subscriptions.
//!
//! An authenticated callout that names no object billsync reads is stored and answered 200
//! like any unmapped event (the webhook route, docs/api-reference.md) and counted in
//! `billsync_webhooks_unmapped_total{provider="zuora"}`: a misconfigured template shows there.
//!
//! # API access
//!
//! Zuora's REST API takes an OAuth 2.0 bearer token: `POST /oauth/token` with the form fields
//! `client_id`, `client_secret` and `grant_type=client_credentials` answers `access_token` and
//! `expires_in` (about an hour). A connection's `api_key` is therefore `client_id:client_secret`
//! (the pair actor's fetcher obtains, caches and renews the token; see
//! [`super::Provider::token_request`]). An `api_key` without a colon is taken as a ready bearer token.
//!
//! Sweeps: Zuora has no events list. A sweep walks every Object Query list (accounts,
//! invoices, credit memos, subscriptions, payments, refunds) in turn by `updateddate` ascending
//! from `since` and wraps each object in a synthetic envelope
//! (`{"notificationId": "sweep:...", "eventType": "billsync_sweep.<kind>", "object": {...}}`)
//! that the provider's own `observe` maps. The sweep cursor is `<list>|<Object Query cursor>`.
//! Deleted objects are not listed; a callout naming one is refetched, and its 404 is a tombstone.

mod api;
mod items;
mod mapping;
mod webhook;

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use super::api_auth::{ApiAuth, Header, Tokens};
use super::info::{Api, Events, Fetches, Lists, SubReads, Sweeps};
use super::rate_limit::{Backoff, Hint};
use super::{Envelope, ParseError, ProviderInfo, ProviderKind, Timing, WebhookAuth};
use crate::model::Observation;

/// Zuora's facts (docs/providers/zuora.md).
pub const INFO: ProviderInfo = ProviderInfo {
    kind: ProviderKind::Zuora,
    api_base: "https://rest.zuora.com",
    // No `Zuora-Version` header is sent for the default.
    api_version: "v1",
    // The tenant limit is 50,000/min, shared by every integration; stay well under.
    default_rate_limit: 50,
    webhook_auth: WebhookAuth::Basic,
    // A callout's identity is in its headers (`Zuora-Notification-Id`).
    events: Events::new(stored_envelope, observe, observe_object)
        .with_headers(webhook::envelope)
        .thin(webhook::reference),
    // `RateLimit-Reset` gives the seconds until the window resets, preferred.
    timing: Timing::USUAL.backoff(Backoff {
        hints: &[Hint::Wait("ratelimit-reset"), Hint::Wait("retry-after")],
        default: Duration::from_secs(1),
    }),
    streams: mapping::STREAMS,
    // The bearer is the access token (see `token_request`); no `Zuora-Version` header for
    // the default version.
    api: Api {
        auth: ApiAuth::access_token(
            Tokens {
                request: api::token_request,
                parse: api::parse_token,
            },
            Some(Header::version_unless("Zuora-Version", &["", "v1"])),
        ),
        sub_reads: SubReads::new(items::sub_reads, items::parse_sub_page, items::merge_sub),
        lists: Lists::new(api::list_request, api::parse_list),
        sweeps: Sweeps::new(api::sweep_request, api::parse_sweep).by_page(api::parse_sweep_page),
        fetches: Fetches::new(api::fetch_request, api::parse_object),
    },
};

/// The envelope of a stored body, read without the headers it came with.
fn stored_envelope(body: &[u8]) -> Result<Envelope, ParseError> {
    webhook::envelope(&HeaderMap::new(), body)
}

/// Only swept envelopes carry an object; a callout is thin (or names nothing).
fn observe(body: &[u8]) -> Result<Option<Observation>, ParseError> {
    match webhook::swept(body)? {
        Some((envelope, kind, object)) => mapping::observe(kind, &object, envelope.occurred_at),
        None => Ok(None),
    }
}

fn observe_object(object: &Value, read_at: i64) -> Result<Option<Observation>, ParseError> {
    let fallback = INFO.lagged(read_at);
    match mapping::identify(object) {
        Some(object_type) => mapping::observe(object_type, object, fallback),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectType;
    use crate::providers::field_checks::assert_thin;
    use crate::providers::Provider;

    const CALLOUT: &[u8] = br#"{"notificationId":"2c92c0f8-0001","eventType":"InvoicePosted","eventTime":"2026-11-01T10:00:00Z","objectType":"Invoice","objectId":"8a8aa0b27f3c1d2e"}"#;

    /// Finding (issue 19): a callout whose body lacks `notificationId` was refused with 400,
    /// so Zuora retried and gave up. The id is the `Zuora-Notification-Id` header; any
    /// authenticated body is an envelope.
    #[test]
    fn callouts_are_keyed_by_the_notification_header_whatever_their_body() {
        let mut headers = HeaderMap::new();
        headers.insert("zuora-notification-id", "2c92c0f8-0001".parse().unwrap());
        headers.insert("zuora-request-id", "attempt-2".parse().unwrap());
        for body in [
            CALLOUT,
            br#"{"accountId":"8a8a0001"}"#,
            br#"<callout><parameter name="InvoiceID">8a8ainv1</parameter></callout>"#,
        ] {
            let env = INFO.envelope_with_headers(&headers, body).unwrap();
            assert_eq!(env.event_id, "2c92c0f8-0001");
        }
        // Without the header (a stored body read again): the body's id, or a digest.
        assert_eq!(INFO.envelope(CALLOUT).unwrap().event_id, "2c92c0f8-0001");
        assert_eq!(INFO.envelope(CALLOUT).unwrap().event_type, "InvoicePosted");
        assert!(INFO
            .envelope(br#"{"accountId":"8a8a0001"}"#)
            .unwrap()
            .event_id
            .starts_with("body:"));
    }

    #[test]
    fn unknown_templates_and_xml_map_nothing_and_name_what_they_can() {
        assert_eq!(INFO.observe(b"<callout/>").unwrap(), None);
        assert_eq!(INFO.observe(br#"{"hello":1}"#).unwrap(), None);
        assert_eq!(INFO.thin_reference(br#"{"hello":1}"#), None);
        assert_eq!(
            INFO.thin_reference(
                br#"<callout><parameter name="InvoiceID">8a8ainv1</parameter></callout>"#
            ),
            Some((ObjectType::Invoice, "8a8ainv1".into()))
        );
    }

    #[test]
    fn callouts_are_thin_and_name_the_object_to_fetch() {
        assert_thin(&INFO, CALLOUT, ObjectType::Invoice, "8a8aa0b27f3c1d2e");
        for (t, kind, id) in [
            ("Account", ObjectType::Customer, "A1"),
            ("CreditMemo", ObjectType::CreditNote, "A1"),
            ("Subscription", ObjectType::Subscription, "A1"),
            ("Payment", ObjectType::Transaction, "A1"),
            ("Refund", ObjectType::Transaction, "refund-A1"),
        ] {
            let body = format!(
                r#"{{"notificationId":"n","eventType":"E","eventTime":"2026-11-01T10:00:00Z","objectType":"{t}","objectId":"A1"}}"#
            );
            assert_eq!(
                INFO.thin_reference(body.as_bytes()),
                Some((kind, id.to_owned())),
                "{t}"
            );
        }
        let other = br#"{"notificationId":"n","eventType":"E","eventTime":"2026-11-01T10:00:00Z","objectType":"Usage","objectId":"u"}"#;
        assert_eq!(INFO.thin_reference(other), None);
    }

    #[test]
    fn rate_limit_answers_pause_for_ratelimit_reset() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(INFO.retry_after(200, &h), None);
        assert_eq!(INFO.retry_after(429, &h), Some(Duration::from_secs(1)));
        h.insert("ratelimit-reset", "12".parse().unwrap());
        assert_eq!(INFO.retry_after(429, &h), Some(Duration::from_secs(12)));
    }
}
