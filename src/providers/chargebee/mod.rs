//! Chargebee: HTTP Basic authenticated webhooks (intake's authenticity check; Chargebee signs
//! nothing, so the body's integrity rests on TLS and the credentials), `ev_` envelopes with the
//! event's resources under `content`, the mapping of customers, invoices, credit notes,
//! subscriptions and transactions, and the v2 pull API used by backfill and reconciliation.
//!
//! Ordering uses `resource_version`, which Chargebee raises on every change of a resource: the
//! same key whether the state came by webhook or by API read.

use std::time::Duration;

use serde_json::Value;

mod api;
mod mapping;
mod webhook;

use mapping::observe_resource;
use webhook::{parse_event, primary_resource};

use super::api_auth::ApiAuth;
use super::info::{Api, Events, Fetches, Lists, SubReads, Sweeps};
use super::rate_limit::Backoff;
use super::{Envelope, ParseError, ProviderInfo, ProviderKind, Timing, WebhookAuth};
use crate::model::Observation;

/// Chargebee's facts (docs/providers/chargebee.md).
pub const INFO: ProviderInfo = ProviderInfo {
    kind: ProviderKind::Chargebee,
    api_base: "https://{site}.chargebee.com",
    // The version is in the path (`/api/v2/`), not a header.
    api_version: "v2",
    // 150 requests per minute on Starter and test sites, the lowest plan ("Rate limits").
    default_rate_limit: 2,
    webhook_auth: WebhookAuth::Basic,
    events: Events::new(envelope, observe, observe_object),
    // The limit resets each minute; without `Retry-After`, wait a good share of it.
    timing: Timing::USUAL.backoff(Backoff::retry_after(Duration::from_secs(15))),
    streams: mapping::STREAMS,
    // HTTP Basic with the API key as user name and an empty password; the version is in the
    // path.
    api: Api {
        auth: ApiAuth::basic("", None),
        lists: Lists::new(api::list_request, api::parse_list),
        sweeps: Sweeps::new(api::sweep_request, api::parse_sweep),
        fetches: Fetches::new(api::fetch_request, api::parse_object),
        sub_reads: SubReads::NONE,
    },
};

fn envelope(body: &[u8]) -> Result<Envelope, ParseError> {
    Ok(parse_event(body)?.envelope)
}

fn observe(body: &[u8]) -> Result<Option<Observation>, ParseError> {
    let event = parse_event(body)?;
    let e = event.envelope;
    let (Some(content), Some(resource)) = (event.object, primary_resource(&e.event_type)) else {
        return Ok(None);
    };
    let Some(object) = content.get(resource).filter(|o| o.is_object()) else {
        return Ok(None);
    };
    let deleted = e.event_type.ends_with("_deleted");
    observe_resource(resource, object, deleted, e.occurred_at)
}

fn observe_object(object: &Value, read_at: i64) -> Result<Option<Observation>, ParseError> {
    let resource = object.get("object").and_then(Value::as_str).unwrap_or("");
    observe_resource(resource, object, false, INFO.lagged(read_at))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::mapping::DELETED_RANK;
    use super::*;
    use crate::model::ObjectType;
    use crate::providers::field_checks::{assert_fields, assert_observed, assert_request};
    use crate::providers::Provider;

    fn invoice_event(resource_version: i64, status: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": "ev_16BPgETyVrQbiGhA", "occurred_at": 1718899200, "source": "scheduled_job",
            "object": "event", "api_version": "v2", "event_type": "invoice_updated",
            "content": {"invoice": {
                "id": "inv_0001", "customer_id": "16CQtCTrgrYwi9n2E", "subscription_id": "16CQtCTrgrYwi9n2E",
                "recurring": true, "status": status, "price_type": "tax_exclusive", "date": 1718899100,
                "currency_code": "usd", "total": 5390, "amount_paid": 5390, "amount_due": 0,
                "sub_total": 5000, "tax": 490, "updated_at": 1718899150,
                "resource_version": resource_version, "deleted": false, "object": "invoice",
                "discounts": [{"amount": 100, "entity_type": "document_level_coupon"}],
                "line_items": [{"id": "li_16CQtCTrgrYwi9n2T", "date_from": 1718899100, "date_to": 1721491100,
                    "unit_amount": 5000, "quantity": 1, "amount": 5000, "tax_amount": 490,
                    "description": "Basic Plan", "entity_type": "plan_item_price", "object": "line_item"}]
            }, "customer": {"id": "16CQtCTrgrYwi9n2E", "object": "customer"}}
        }))
        .unwrap()
    }

    /// What the invoice event with `status` maps to when its type is `event_type`.
    fn observe_invoice_as(event_type: &str, status: &str) -> Option<Observation> {
        let mut v: Value = serde_json::from_slice(&invoice_event(5, status)).unwrap();
        v["event_type"] = json!(event_type);
        INFO.observe(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn invoice_event_maps_exactly_and_orders_by_resource_version() {
        let body = invoice_event(1_718_899_150_123, "paid");
        let env = INFO.envelope(&body).unwrap();
        assert_eq!(env.event_id, "ev_16BPgETyVrQbiGhA");
        assert_eq!(env.occurred_at, 1_718_899_200_000_000);
        let obs = INFO.observe(&body).unwrap().unwrap();
        assert_observed(
            &obs,
            ObjectType::Invoice,
            "inv_0001",
            json!({"currency": "USD", "total": 5390, "subtotal": 5000, "tax": 490,
                "discount": 100, "status": "paid", "customer_id": "chargebee:16CQtCTrgrYwi9n2E",
                "issued_at": "2024-06-20T15:58:20Z", "period_end": "2024-07-20T15:58:20Z",
                "/lines/0/tax": 490}),
        );
        assert_eq!(obs.order_key, 1_718_899_150_123_000);
        assert_eq!(obs.provider_updated_at, 1_718_899_150_000_000);
        // A later resource_version orders after, whatever the arrival order.
        let newer = INFO
            .observe(&invoice_event(1_718_899_150_124, "posted"))
            .unwrap()
            .unwrap();
        assert!(newer.order_key > obs.order_key);
        assert_eq!(newer.data["status"], "open");
    }

    #[test]
    fn deleted_event_is_a_tombstone_and_unmapped_types_observe_nothing() {
        let obs = observe_invoice_as("invoice_deleted", "voided").unwrap();
        assert!(obs.deleted);
        assert_eq!(obs.tie_rank, DELETED_RANK);
        assert_eq!(observe_invoice_as("plan_created", "voided"), None);
    }

    #[test]
    fn payment_event_maps_its_transaction() {
        let body = serde_json::to_vec(&json!({
            "id": "ev_2", "occurred_at": 1718899200, "event_type": "payment_succeeded",
            "content": {"transaction": {"id": "txn_16CQtCTrgrYwi9n2U", "customer_id": "cus_1",
                "type": "payment", "status": "success", "amount": 5390, "currency_code": "EUR",
                "date": 1718899190, "updated_at": 1718899191, "resource_version": 1_718_899_191_000_i64,
                "linked_invoices": [{"invoice_id": "inv_0001", "applied_amount": 5390}]},
                "invoice": {"id": "inv_0001"}}
        }))
        .unwrap();
        let obs = INFO.observe(&body).unwrap().unwrap();
        assert_observed(
            &obs,
            ObjectType::Transaction,
            "txn_16CQtCTrgrYwi9n2U",
            json!({"kind": "charge", "amount": 5390, "invoice_id": "chargebee:inv_0001",
                "occurred_at": "2024-06-20T15:59:50Z"}),
        );
    }

    #[test]
    fn subscription_customer_and_credit_note_map() {
        let sub = json!({"id": "sub_1", "object": "subscription", "customer_id": "cus_1",
            "status": "non_renewing", "currency_code": "GBP", "current_term_start": 1718899200,
            "current_term_end": 1721491200, "cancelled_at": 1721491200, "resource_version": 7,
            "subscription_items": [{"item_price_id": "basic-GBP-monthly", "quantity": 3, "item_type": "plan"}]});
        let obs = INFO.observe_object(&sub, 0).unwrap().unwrap();
        assert_fields(
            &obs.data,
            json!({"status": "active", "cancel_at": "2024-07-20T16:00:00Z", "canceled_at": null,
                "/items/0/quantity": 3}),
        );
        assert_eq!(obs.order_key, 7_000);
        let cus = json!({"id": "cus_1", "object": "customer", "first_name": "Ada", "last_name": "Lovelace",
            "email": "ada@example.com", "taxability": "exempt", "vat_number": "DE123456789",
            "billing_address": {"line1": "1 Main St", "city": "Berlin", "zip": "10115", "country": "DE"}});
        let obs = INFO.observe_object(&cus, 0).unwrap().unwrap();
        assert_fields(
            &obs.data,
            json!({"name": "Ada Lovelace", "tax_exempt": "exempt",
                "/address/postal_code": "10115"}),
        );
        let cn = json!({"id": "CN-1", "object": "credit_note", "customer_id": "cus_1",
            "reference_invoice_id": "inv_0001", "status": "refunded", "currency_code": "USD",
            "total": 1100, "sub_total": 1000, "taxes": [{"name": "VAT", "amount": 100}],
            "reason_code": "product_unsatisfactory", "date": 1718899200, "line_items": []});
        let obs = INFO.observe_object(&cn, 0).unwrap().unwrap();
        assert_fields(
            &obs.data,
            json!({"invoice_id": "chargebee:inv_0001", "tax": 100, "status": "issued"}),
        );
    }

    #[test]
    fn pending_invoice_events_map_their_invoice_as_a_draft() {
        let obs = observe_invoice_as("pending_invoice_created", "pending").unwrap();
        assert_observed(
            &obs,
            ObjectType::Invoice,
            "inv_0001",
            json!({"status": "draft"}),
        );
    }

    #[test]
    fn order_keys_are_microseconds_so_a_lagged_404_does_not_outrank_a_fresh_change() {
        // A change made now, and the tombstone of a 404 read now (ordered at the read time
        // less the lag allowance, in microseconds, by the confirmer).
        let now = 1_750_000_000_000_000_i64;
        let obs = INFO
            .observe(&invoice_event(now / 1000, "posted"))
            .unwrap()
            .unwrap();
        let tombstone = now - INFO.api_lag_allowance().as_micros() as i64;
        assert!(obs.order_key > tombstone);
        let stale = INFO
            .observe(&invoice_event(now / 1000 - 61_000, "posted"))
            .unwrap()
            .unwrap();
        assert!(stale.order_key < tombstone);
    }

    #[test]
    fn non_integer_amount_is_a_parse_error() {
        let inv = json!({"id": "inv_1", "object": "invoice", "status": "paid", "total": 53.9});
        assert!(INFO.observe_object(&inv, 0).is_err());
    }

    #[test]
    fn lists_unwrap_resources_and_follow_next_offset() {
        let page = INFO
            .parse_list(br#"{"list":[{"invoice":{"id":"inv_1","updated_at":99}}],"next_offset":"[\"1\",\"2\"]"}"#)
            .unwrap();
        assert_eq!(page.objects[0]["object"], "invoice");
        assert_eq!(page.next_cursor.as_deref(), Some("[\"1\",\"2\"]"));
        assert_eq!(page.reached, Some(99));
        assert_eq!(
            INFO.parse_list(br#"{"list":[]}"#).unwrap().next_cursor,
            None
        );
        let r = INFO.list_request("invoices", (100, 200), Some("tok"), 500);
        assert_request(
            &r,
            "/api/v2/invoices",
            "limit=100&updated_at[after]=99&include_deleted=true&offset=tok",
        );
        let sub = INFO
            .parse_object(br#"{"subscription":{"id":"sub_1"},"customer":{"id":"cus_1"}}"#)
            .unwrap();
        assert_eq!(sub["object"], "subscription");
    }
}
