//! Stripe: `Stripe-Signature` webhooks, `evt_` envelopes with full snapshots, and the mapping
//! of customers, invoices, credit notes, subscriptions, charges and refunds.

mod api;
mod mapping;
mod webhook;

use serde_json::Value;

use super::api_auth::{ApiAuth, Header};
use super::info::{Api, Events, Fetches, Lists, SubReads, Sweeps};
use super::{ParseError, ProviderInfo, ProviderKind, Timing, WebhookAuth};
use crate::model::{ObjectType, Observation};

use webhook::{parse_envelope, parse_event};

/// Stripe's facts (docs/providers/stripe.md).
pub const INFO: ProviderInfo = ProviderInfo {
    kind: ProviderKind::Stripe,
    api_base: "https://api.stripe.com",
    api_version: "2024-06-20",
    // 25 requests/s per account in a sandbox, 100 live ("Rate limits").
    default_rate_limit: 25,
    webhook_auth: WebhookAuth::signed("stripe-signature", SIGNATURE),
    events: Events::new(parse_envelope, observe, observe_object)
        .thin(thin_reference)
        .read_ordered(earliest_confirming_read)
        .versions(api_version_known),
    // Objects carry no update time: a read counts as of its time minus the lag allowance.
    // Stripe sends no `Retry-After` as a rule: a short pause, or the header's.
    timing: Timing::USUAL,
    streams: mapping::STREAMS,
    api: Api {
        auth: ApiAuth::bearer(Some(Header::version("Stripe-Version"))),
        lists: Lists::new(api::list_request, api::parse_list),
        sweeps: Sweeps::new(api::events_request, api::parse_sweep),
        fetches: Fetches::new(api::fetch_request, api::parse_object),
        sub_reads: SubReads::new(api::sub_reads, api::parse_sub_page, api::merge_sub),
    },
};

pub use webhook::{sign, SIGNATURE};

fn observe(body: &[u8]) -> Result<Option<Observation>, ParseError> {
    let event = parse_event(body)?;
    let Some(object) = event.object else {
        return Ok(None);
    };
    // An object the event shows only in part is read whole instead (`thin_reference`).
    if incomplete_in_event(&object).is_some() {
        return Ok(None);
    }
    let mut observation = mapping::observe(&event.event_type, event.created, &object)?;
    if let Some(o) = observation.as_mut() {
        // Events never expand a customer's tax IDs: they keep their stored value, and
        // `customer.tax_id.*` events announce their changes (docs/providers/stripe.md).
        if o.object_type == ObjectType::Customer && object.get("tax_ids").is_none() {
            o.carried = &["tax_ids"];
        }
    }
    Ok(observation)
}

fn thin_reference(body: &[u8]) -> Option<(ObjectType, String)> {
    let event = parse_event(body).ok()?;
    incomplete_in_event(&event.object?)
}

/// Any dated version (`2024-06-20`, `2025-03-31.basil`): the mapping reads old and new
/// snapshot shapes alike (README, "Configuration"); Stripe itself refuses unknown ones.
fn api_version_known(version: &str) -> bool {
    let date = version.split('.').next().unwrap_or_default();
    date.len() == 10
        && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
        && date >= "2011-01-01"
}

fn earliest_confirming_read(change_order_key: i64) -> Option<i64> {
    // `observe_object` orders a read at `read_at - lag`; a second's margin for clocks.
    let lag = INFO.timing.lag_allowance.as_micros() as i64;
    Some(
        change_order_key
            .saturating_add(lag)
            .saturating_add(1_000_000),
    )
}

fn observe_object(object: &Value, read_at: i64) -> Result<Option<Observation>, ParseError> {
    // The API shows the object as of the read; it may lag its webhooks by the allowance.
    let at = INFO.lagged(read_at);
    Ok(
        mapping::observe("api.read", at / 1_000_000, object)?.map(|mut obs| {
            obs.order_key = at;
            obs.provider_updated_at = read_at;
            obs
        }),
    )
}

/// The object to read whole for an event object that shows it only in part: the customer of
/// a `tax_id` (`customer.tax_id.created|updated|deleted`), or an invoice or credit note whose
/// `lines` go beyond the embedded page (docs/providers/stripe.md, "Events").
fn incomplete_in_event(object: &Value) -> Option<(ObjectType, String)> {
    let id = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    match object.get("object").and_then(Value::as_str)? {
        "tax_id" => Some((ObjectType::Customer, id(object.get("customer"))?)),
        kind @ ("invoice" | "credit_note") => {
            let more = object
                .get("lines")
                .and_then(|l| l.get("has_more"))
                .and_then(Value::as_bool)
                == Some(true);
            let object_type = if kind == "invoice" {
                ObjectType::Invoice
            } else {
                ObjectType::CreditNote
            };
            more.then(|| id(object.get("id")))
                .flatten()
                .map(|i| (object_type, i))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::field_checks::assert_query;
    use crate::providers::field_checks::assert_thin;
    use crate::providers::subreads::assert_one_read;
    use crate::providers::Provider;

    fn event(event_type: &str, object: Value) -> Vec<u8> {
        serde_json::json!({"id": "evt_1", "object": "event", "type": event_type, "created": 5,
            "data": {"object": object}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_tax_id_event_reads_its_customer_whole() {
        let body = event(
            "customer.tax_id.created",
            serde_json::json!({"id": "txi_1", "object": "tax_id", "customer": "cus_1",
                "type": "eu_vat", "value": "DE123"}),
        );
        assert_thin(&INFO, &body, ObjectType::Customer, "cus_1");
    }

    #[test]
    fn a_customer_event_without_tax_ids_carries_the_stored_ones() {
        let plain = event(
            "customer.updated",
            serde_json::json!({"id": "cus_1", "object": "customer", "name": "A"}),
        );
        let obs = INFO.observe(&plain).unwrap().unwrap();
        assert_eq!(obs.carried, &["tax_ids"]);
        let expanded = event(
            "customer.updated",
            serde_json::json!({"id": "cus_1", "object": "customer",
                "tax_ids": {"object": "list", "has_more": false, "data": []}}),
        );
        assert!(INFO.observe(&expanded).unwrap().unwrap().carried.is_empty());
    }

    #[test]
    fn an_event_invoice_with_more_lines_than_embedded_is_read_whole() {
        let cut = serde_json::json!({"id": "in_1", "object": "invoice",
            "lines": {"object": "list", "has_more": true, "data": [{"id": "il_1"}]}});
        let body = event("invoice.finalized", cut.clone());
        assert_thin(&INFO, &body, ObjectType::Invoice, "in_1");
        let mut whole = cut;
        whole["lines"]["has_more"] = serde_json::json!(false);
        assert!(INFO
            .observe(&event("invoice.finalized", whole))
            .unwrap()
            .is_some());
    }

    #[test]
    fn sub_reads_page_long_lines_and_unexpanded_tax_ids_then_merge_them_whole() {
        let page = serde_json::json!({"object": "list", "has_more": false, "data": [
            {"id": "cus_1", "object": "customer"},
            {"id": "cus_2", "object": "customer", "tax_ids": {"object": "list", "has_more": false, "data": []}},
            {"id": "cus_3", "object": "customer", "deleted": true},
        ]});
        let reads = INFO.sub_reads(&page);
        let tax_ids = "/v1/customers/cus_1/tax_ids";
        assert_one_read(&reads, "/data/0", "tax_ids", tax_ids, "");
        let mut invoice = serde_json::json!({"id": "in_1", "object": "invoice",
            "lines": {"object": "list", "has_more": true, "data": [{"id": "il_1"}, {"id": "il_2"}]}});
        let reads = INFO.sub_reads(&invoice);
        let lines = "/v1/invoices/in_1/lines";
        assert_one_read(&reads, "", "lines", lines, "starting_after=il_2");
        let answer = br#"{"object":"list","has_more":true,"data":[{"id":"il_3"}]}"#;
        let sub = INFO.parse_sub_page(&reads[0], answer).unwrap();
        let next = sub.next.expect("another page");
        assert_query(&next, "starting_after=il_3");
        INFO.merge_sub(
            &mut invoice,
            "lines",
            vec![
                serde_json::json!({"id": "il_2"}),
                serde_json::json!({"id": "il_3"}),
            ],
        );
        let ids: Vec<&str> = invoice["lines"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["il_1", "il_2", "il_3"]);
        assert_eq!(invoice["lines"]["has_more"], false);
        assert!(INFO.sub_reads(&invoice).is_empty());
    }

    #[test]
    fn customers_are_read_with_their_tax_ids_expanded() {
        let list = INFO.list_request("customers", (0, 10), None, 100);
        assert_query(&list, "expand[]=data.tax_ids");
        let one = INFO.fetch_request(ObjectType::Customer, "cus_1");
        assert_eq!(
            one.query,
            vec![("expand[]".to_owned(), "tax_ids".to_owned())]
        );
    }

    #[test]
    fn unmapped_event_type_observes_nothing() {
        let body = br#"{"id":"evt_1","object":"event","type":"plan.created","created":5,"data":{"object":{"id":"plan_1","object":"plan"}}}"#;
        assert_eq!(INFO.observe(body).unwrap(), None);
    }
}
