//! Paddle Billing: `Paddle-Signature` webhooks, `evt_` envelopes whose `data` is the full
//! entity after the change, and the mapping of customers, transactions, adjustments and
//! subscriptions. Entities carry `updated_at` (microseconds), which orders them.
//!
//! Pull (`api`): a backfill lists every entity kind; only `/transactions` can be filtered by
//! time, so it is the one windowed stream and the others are read whole. Customers' addresses
//! and businesses (tax IDs) are separate resources, read on every customer read; `address.*`
//! and `business.*` events read their customer whole, `customer.*` events keep the stored
//! ones. Paddle's events list has no time filter (`after`, `order_by=id[ASC]`, `per_page` ≤
//! 200, 90 days kept): a sweep resumes after the last event id the previous one read.
//! Adjustments have no get operation: a confirmation reads them as a one-id list.
//! docs/providers/paddle.md cites the documentation for each rule.

mod api;
mod mapping;
mod webhook;

use std::time::Duration;

use serde_json::Value;

use super::api_auth::{ApiAuth, Header};
use super::info::{Api, Events, Fetches, Lists, SubReads, Sweeps};
use super::rate_limit::Backoff;
use super::{Envelope, ParseError, ProviderInfo, ProviderKind, Timing, WebhookAuth};
use crate::model::{ObjectType, Observation};

use webhook::parse_event;

/// Paddle's facts (docs/providers/paddle.md).
pub const INFO: ProviderInfo = ProviderInfo {
    kind: ProviderKind::Paddle,
    api_base: "https://api.paddle.com",
    api_version: "1",
    // 240 requests a minute per IP for most operations.
    default_rate_limit: 4,
    webhook_auth: WebhookAuth::signed("paddle-signature", SIGNATURE),
    events: Events::new(envelope, observe, observe_object).thin(thin_reference),
    // Entities carry their own update time, so a read is ordered by it, not by the lag
    // allowance. `Retry-After` in seconds; without it, wait out the minute the limit counts
    // over.
    timing: Timing::USUAL
        .lag_allowance(Duration::from_secs(30))
        .backoff(Backoff::retry_after(Duration::from_secs(60))),
    streams: mapping::STREAMS,
    api: Api {
        auth: ApiAuth::bearer(Some(Header::version("Paddle-Version"))),
        lists: Lists::new(api::list_request, api::parse_list),
        // The events list has no time filter: a sweep resumes after the last event read.
        sweeps: Sweeps::new(
            |_since, cursor| api::sweep_request(cursor),
            api::parse_sweep,
        )
        .resuming(api::last_event_id),
        fetches: Fetches::new(api::fetch_request, api::parse_object),
        sub_reads: SubReads::new(api::sub_reads, api::parse_sub_page, api::merge_sub),
    },
};

pub use webhook::{sign, SIGNATURE};

fn envelope(body: &[u8]) -> Result<Envelope, ParseError> {
    Ok(parse_event(body)?.envelope)
}

fn observe(body: &[u8]) -> Result<Option<Observation>, ParseError> {
    let e = parse_event(body)?;
    let at = e.envelope.occurred_at;
    e.object
        .map_or(Ok(None), |data| mapping::observe(&data, at))
}

/// `address.*` and `business.*` events carry the address or business, not its customer:
/// the customer is read whole (with every address and business).
fn thin_reference(body: &[u8]) -> Option<(ObjectType, String)> {
    let e = parse_event(body).ok()?;
    let (entity, _) = e.envelope.event_type.split_once('.')?;
    if !matches!(entity, "address" | "business") {
        return None;
    }
    let customer = e.object?.get("customer_id")?.as_str()?.to_owned();
    mapping::object_type(&customer)
        .filter(|t| *t == ObjectType::Customer)
        .map(|t| (t, customer))
}

fn observe_object(object: &Value, read_at: i64) -> Result<Option<Observation>, ParseError> {
    mapping::observe(object, INFO.lagged(read_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::parse_rfc3339;
    use crate::providers::field_checks::assert_envelopes;
    use crate::providers::Provider;

    const EVENT: &str = r#"{"event_id":"evt_01","event_type":"customer.updated","occurred_at":"2025-11-24T16:00:00.123456Z","notification_id":"ntf_01","data":{"id":"ctm_01","email":"a@example.com","name":"A","status":"active","updated_at":"2025-11-24T16:00:00.100000Z"}}"#;

    #[test]
    fn envelope_dedupes_on_event_id_not_notification_id() {
        let at = parse_rfc3339("2025-11-24T16:00:00.123456Z").unwrap();
        assert_envelopes(
            &INFO,
            EVENT.as_bytes(),
            ("evt_01", "customer.updated", at),
            &[
                br#"{"event_type":"x","occurred_at":"2025-01-01T00:00:00Z"}"#,
                br#"{"event_id":"e","event_type":"x","occurred_at":"yesterday"}"#,
                b"[]",
                b"not json",
            ],
        );
    }

    #[test]
    fn event_snapshot_is_ordered_by_the_entity_update_time() {
        let o = INFO.observe(EVENT.as_bytes()).unwrap().unwrap();
        assert_eq!(o.object_type, ObjectType::Customer);
        assert_eq!(
            o.order_key,
            parse_rfc3339("2025-11-24T16:00:00.1Z").unwrap()
        );
    }

    #[test]
    fn address_and_business_events_read_their_customer_whole() {
        let event = |t: &str, data: &str| {
            format!(
                r#"{{"event_id":"evt_2","event_type":"{t}","occurred_at":"2025-11-24T16:00:00Z","data":{data}}}"#
            )
        };
        for t in [
            "address.created",
            "address.updated",
            "business.created",
            "business.updated",
        ] {
            let body = event(
                t,
                r#"{"id":"add_1","customer_id":"ctm_7","status":"active"}"#,
            );
            assert_eq!(INFO.observe(body.as_bytes()).unwrap(), None, "{t}");
            assert_eq!(
                INFO.thin_reference(body.as_bytes()),
                Some((ObjectType::Customer, "ctm_7".into())),
                "{t}"
            );
        }
        let customer = event("customer.updated", r#"{"id":"ctm_7","status":"active"}"#);
        assert_eq!(INFO.thin_reference(customer.as_bytes()), None);
    }

    #[test]
    fn lists_page_by_last_id_and_fetches_unwrap_data() {
        let page = br#"{"data":[{"id":"txn_1","created_at":"2025-01-01T00:00:00Z"},{"id":"txn_2","created_at":"2025-01-02T00:00:00Z"}],"meta":{"pagination":{"per_page":2,"has_more":true}}}"#;
        let p = INFO.parse_list(page).unwrap();
        assert_eq!(p.next_cursor.as_deref(), Some("txn_2"));
        assert_eq!(p.reached, Some(1_735_776_000));
        let adj = INFO.fetch_request(ObjectType::CreditNote, "adj_1");
        assert_eq!(adj.path, "/adjustments");
        assert_eq!(adj.query, vec![("id".to_owned(), "adj_1".to_owned())]);
        let listed = INFO
            .parse_object(br#"{"data":[{"id":"adj_1"}],"meta":{}}"#)
            .unwrap();
        assert_eq!(listed["id"], "adj_1");
        assert!(INFO.parse_object(br#"{"data":[],"meta":{}}"#).is_err());
        let one = INFO
            .parse_object(br#"{"data":{"id":"ctm_1"},"meta":{}}"#)
            .unwrap();
        assert_eq!(one["id"], "ctm_1");
        assert!(INFO
            .parse_object(br#"{"error":{"code":"not_found"}}"#)
            .is_err());
    }
}
