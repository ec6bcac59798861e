//! Maxio Advanced Billing (formerly Chargify): HMAC-signed form-encoded webhooks (intake's
//! authenticity check), their bracket-keyed payloads decoded after verification, the mapping of
//! customers, subscriptions, relationship invoices and transactions, and the pull API used by
//! backfill and reconciliation.
//!
//! Replay: Maxio signs no timestamp, so a captured webhook verifies forever. Protection rests on
//! deduplication by the webhook `id` (stable across Maxio's retries and replays) and on
//! ordering by the objects' own `updated_at`, so a replayed old state never wins.
//!
//! Ordering: `updated_at` is to the second, so two changes of one object in one second tie.
//! An API read within the lag allowance of such a second may predate the stored change, so
//! it ranks just below it (see [`mapping::api_rank`]); after the allowance the API decides.
//!
//! Files: `webhook.rs` (signature, form decoding, events), `mapping.rs` (payload objects to
//! canonical ones), `api.rs` (list, retrieve and sweep requests and answers) and
//! `billing_address.rs` (the customer's billing address, a sub-read of its payment profiles).

use std::time::Duration;

use serde_json::Value;

mod api;
mod billing_address;
mod mapping;
mod webhook;

use mapping::{api_rank, change_time, observe_resource};
use webhook::{customer_to_read, parse_event, primary_resource, SIGNATURE_HEADER};
pub use webhook::{decode_form, sign, verify_signature};

use super::api_auth::{ApiAuth, Header};
use super::info::{Api, Events, Fetches, Lists, SubReads, Sweeps};
use super::minor_units::{id_text, Obj};
use super::rate_limit::Backoff;
use super::signing::Scheme;
use super::{Envelope, ParseError, ProviderInfo, ProviderKind, Timing, WebhookAuth};
use crate::model::{ObjectType, Observation};

/// Maxio's facts (docs/providers/maxio.md).
pub const INFO: ProviderInfo = ProviderInfo {
    kind: ProviderKind::Maxio,
    api_base: "https://{subdomain}.chargify.com",
    // Maxio's API is unversioned.
    api_version: "v1",
    // No documented number; a third-party figure of 10,000 requests per hour is ~2.8/s.
    default_rate_limit: 2,
    // No timestamp is signed: no replay window (see the module doc on replay).
    webhook_auth: WebhookAuth::signed(SIGNATURE_HEADER, Scheme::Body(verify_signature)),
    events: Events::new(envelope, observe, observe_object).thin(thin_reference),
    // No rate-limit headers beyond an occasional `Retry-After`: back off for a while.
    timing: Timing::USUAL.backoff(Backoff::retry_after(Duration::from_secs(10))),
    streams: mapping::STREAMS,
    // HTTP Basic with the API key as user name and `x` as password; unversioned.
    api: Api {
        auth: ApiAuth::basic("x", Some(Header::fixed("Accept", "application/json"))),
        lists: Lists::new(api::list_request, api::parse_list).by_page(api::parse_list_page),
        sweeps: Sweeps::new(api::sweep_request, api::parse_sweep),
        fetches: Fetches::new(api::fetch_request, api::parse_object),
        // A customer's billing address: one page of its payment profiles.
        sub_reads: SubReads::new(
            billing_address::sub_reads,
            |_read, body| billing_address::parse_sub_page(body),
            |customer, _part, profiles| billing_address::merge_sub(customer, profiles),
        ),
    },
};

/// `occurred_at` is the primary payload object's `updated_at` (else `created_at`); with
/// neither (the receipt time is not known here) it is 0, the epoch.
fn envelope(body: &[u8]) -> Result<Envelope, ParseError> {
    let e = parse_event(body)?;
    let occurred_at = primary_resource(&e.event_type, &e.payload)
        .and_then(|r| e.payload.get(r))
        .and_then(|o| change_time(&Obj(o)))
        .or_else(|| change_time(&Obj(&e.payload)))
        .unwrap_or(0);
    Ok(Envelope {
        event_id: e.id,
        event_type: e.event_type,
        occurred_at,
    })
}

/// Webhooks and invoice events map their object. Events API deletions (no webhook
/// announces them) are the deletion itself, at the event's time; other Events API events
/// map nothing and name an object to refetch ([`super::Provider::thin_reference`]).
fn observe(body: &[u8]) -> Result<Option<Observation>, ParseError> {
    let e = parse_event(body)?;
    if e.id.starts_with("event:") {
        let gone = match e.event_type.as_str() {
            "customer_delete" => Some((ObjectType::Customer, "customer_id")),
            "subscription_deletion" => Some((ObjectType::Subscription, "subscription_id")),
            _ => None,
        };
        let Some((object_type, key)) = gone else {
            return Ok(None);
        };
        let Some(provider_id) = id_text(e.payload.get(key)) else {
            return Ok(None);
        };
        let at = change_time(&Obj(&e.payload)).unwrap_or(0);
        return Ok(Some(Observation {
            object_type,
            provider_id,
            // No fields: the last known data stays (docs/api.md).
            data: Value::Null,
            deleted: true,
            order_key: at,
            tie_rank: i64::MAX,
            provider_updated_at: at,
            carried: &[],
        }));
    }
    let Some(resource) = primary_resource(&e.event_type, &e.payload) else {
        return Ok(None);
    };
    let deleted = matches!(
        e.event_type.as_str(),
        "customer_delete" | "subscription_deletion"
    );
    // A customer's billing address is not in its payload: the customer is read whole
    // (`thin_reference`; docs/providers/maxio.md, "Addresses").
    if resource == "customer" && !deleted {
        return Ok(None);
    }
    // Credit notes carry no time of their own: the invoice event's time orders them.
    let fallback = change_time(&Obj(&e.payload)).unwrap_or(0);
    observe_resource(
        resource,
        &e.payload[resource],
        deleted,
        fallback,
        Some(&e.payload),
    )
}

/// An Events API event (from a sweep) names the object it is about without carrying it:
/// that object is refetched. Its `event_specific_data` names payments and refunds
/// (`account_transaction_id`, `refund_id`) and issued invoices (`uid`); customer events
/// name the customer; the rest their subscription. Webhooks and invoice events carry
/// their objects and name nothing.
fn thin_reference(body: &[u8]) -> Option<(ObjectType, String)> {
    if let Some(customer) = customer_to_read(body) {
        return Some(customer);
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("event_type").is_some() {
        return None;
    }
    let e = v.get("event").unwrap_or(&v);
    let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
    let specific = |k: &str| id_text(e.get("event_specific_data")?.get(k));
    let named = match key {
        "payment_success" | "payment_failure" | "renewal_success" | "renewal_failure" => {
            specific("account_transaction_id").map(|id| (ObjectType::Transaction, id))
        }
        "refund_success" => specific("refund_id").map(|id| (ObjectType::Transaction, id)),
        "invoice_issued" => specific("uid").map(|id| (ObjectType::Invoice, id)),
        k if k.starts_with("customer_") => {
            id_text(e.get("customer_id")).map(|id| (ObjectType::Customer, id))
        }
        _ => None,
    };
    named.or_else(|| {
        id_text(e.get("subscription_id"))
            .map(|id| (ObjectType::Subscription, id))
            .or_else(|| id_text(e.get("customer_id")).map(|id| (ObjectType::Customer, id)))
    })
}

/// `object` is a wrapped resource (`{"subscription": {...}}`), as lists and
/// [`super::Provider::parse_object`] return them.
fn observe_object(object: &Value, read_at: i64) -> Result<Option<Observation>, ParseError> {
    let Some((resource, inner)) = object.as_object().and_then(|m| m.iter().next()) else {
        return Ok(None);
    };
    let lag = INFO.timing.lag_allowance.as_micros() as i64;
    let observed = observe_resource(resource, inner, false, read_at.saturating_sub(lag), None)?;
    Ok(observed.map(|o| api_rank(o, read_at, lag)))
}
