//! Maps Paddle Billing entities to canonical objects: customers, transactions (Paddle's billing
//! document, so canonical invoices), adjustments (refunds and credits, so credit notes) and
//! subscriptions. Paddle amounts are strings in the currency's lowest denomination.
//! Customers' addresses and businesses are separate Paddle resources: a customer read from
//! the API holds them (`addresses`, `businesses`, merged by the sub-reads of `api`); one an
//! event carries does not, and keeps the stored `address` and `tax_ids` (carried).

use serde_json::Value;

use crate::model::canonical::{
    Address, CanonicalData, CreditNote, Customer, Invoice, InvoiceLine, Subscription,
    SubscriptionItem, TaxId,
};
use crate::model::money::{currency_code, json_minor};
use crate::model::time::{micros_to_rfc3339, parse_rfc3339};
use crate::model::{ObjectType, Observation};
use crate::providers::{ParseError, Stream};

/// The lists a pull walks, in order, and the kind of canonical object each holds
/// (`ProviderInfo::streams`).
///
/// Only `/transactions` takes a time filter (`created_at[GTE|LT]`); the other lists are
/// read whole, once per pull.
pub(super) const STREAMS: &[Stream] = &[
    Stream::whole("customers", ObjectType::Customer),
    Stream::whole("subscriptions", ObjectType::Subscription),
    Stream::windowed("transactions", ObjectType::Invoice),
    Stream::whole("adjustments", ObjectType::CreditNote),
];

/// Lifecycle rank of a deletion or archival: nothing at the same time comes after it.
const FINAL_RANK: i64 = i64::MAX;

/// The canonical type of a Paddle entity, by its id prefix (`ctm_`, `txn_`, `adj_`, `sub_`).
pub fn object_type(id: &str) -> Option<ObjectType> {
    match id.split_once('_').map(|(p, _)| p) {
        Some("ctm") => Some(ObjectType::Customer),
        Some("txn") => Some(ObjectType::Invoice),
        Some("adj") => Some(ObjectType::CreditNote),
        Some("sub") => Some(ObjectType::Subscription),
        _ => None,
    }
}

/// Maps one entity. Its `updated_at` orders it (Paddle has no version counter); `fallback`
/// (microseconds) stands in when the entity carries none. `Ok(None)` for entities billsync
/// does not map.
pub fn observe(entity: &Value, fallback: i64) -> Result<Option<Observation>, ParseError> {
    let Some(id) = entity.get("id").and_then(Value::as_str) else {
        return Ok(None);
    };
    let Some(object_type) = object_type(id) else {
        return Ok(None);
    };
    let e = Entity(entity);
    let status = e.text("status").unwrap_or_default();
    let mut carried: &'static [&'static str] = &[];
    let (data, rank): (CanonicalData, i64) = match object_type {
        ObjectType::Customer => {
            carried = customer_carried(entity);
            (customer(&e).into(), 0)
        }
        ObjectType::Invoice => invoice(&e, &status).map(|(d, r)| (d.into(), r))?,
        ObjectType::CreditNote => credit_note(&e, &status).map(|(d, r)| (d.into(), r))?,
        _ => subscription(&e, &status).map(|(d, r)| (d.into(), r))?,
    };
    let data = data.to_value();
    let deleted = status == "archived";
    let own = e
        .text("updated_at")
        .and_then(|t| parse_rfc3339(&t))
        .unwrap_or(fallback);
    // A customer read whole is as new as the newest of its parts: an address or business
    // changes without changing the customer's `updated_at`.
    let updated = e
        .list(&["addresses"])
        .iter()
        .chain(e.list(&["businesses"]).iter())
        .filter_map(|p| p.text("updated_at").and_then(|t| parse_rfc3339(&t)))
        .fold(own, i64::max);
    // The customer and its parts are separate reads, not one snapshot: a customer record
    // older than its newest part may have been read before a change of that same time (the
    // parts read after it). Such a read ranks below an event of its time, so the event's
    // content stays and the read is asked again, instead of tying and winning.
    let rank = if updated > own { rank - 1 } else { rank };
    Ok(Some(Observation {
        object_type,
        provider_id: id.to_owned(),
        data,
        deleted,
        order_key: updated,
        tie_rank: if deleted { FINAL_RANK } else { rank },
        provider_updated_at: updated,
        carried,
    }))
}

struct Entity<'a>(&'a Value);

impl<'a> Entity<'a> {
    fn at(&self, path: &[&str]) -> Option<&'a Value> {
        let mut v = self.0;
        for key in path {
            v = v.get(key)?;
        }
        Some(v).filter(|v| !v.is_null())
    }

    fn text(&self, key: &str) -> Option<String> {
        self.0.get(key).and_then(Value::as_str).map(str::to_owned)
    }

    fn str(&self, path: &[&str]) -> Option<String> {
        self.at(path).and_then(Value::as_str).map(str::to_owned)
    }

    /// A reference to another Paddle entity as a canonical id.
    fn reference(&self, key: &str) -> Option<String> {
        self.0
            .get(key)
            .and_then(Value::as_str)
            .map(|id| format!("paddle:{id}"))
    }

    /// An RFC 3339 time, normalised to UTC.
    fn time(&self, path: &[&str]) -> Option<String> {
        self.at(path)
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .and_then(micros_to_rfc3339)
    }

    /// A minor-unit amount (`"1190"`); absent is zero.
    fn amount(&self, path: &[&str]) -> Result<i64, ParseError> {
        match self.at(path) {
            None => Ok(0),
            Some(v) => json_minor(v).map_err(|e| ParseError(format!("`{}`: {e}", path.join(".")))),
        }
    }

    fn currency(&self) -> Result<Option<String>, ParseError> {
        match self.0.get("currency_code").and_then(Value::as_str) {
            None => Ok(None),
            Some(c) => currency_code(c)
                .map(Some)
                .map_err(|e| ParseError(e.to_string())),
        }
    }

    fn list(&self, path: &[&str]) -> Vec<Entity<'a>> {
        self.at(path)
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |a| a.iter().map(Entity).collect())
    }
}

/// The canonical fields a customer entity cannot show when it holds no `addresses` or
/// `businesses` (an event's entity): they keep their stored value.
fn customer_carried(entity: &Value) -> &'static [&'static str] {
    match (
        entity.get("addresses").is_some(),
        entity.get("businesses").is_some(),
    ) {
        (true, true) => &[],
        (false, true) => &["address"],
        (true, false) => &["tax_ids"],
        (false, false) => &["address", "tax_ids"],
    }
}

fn active(part: &Entity) -> bool {
    part.text("status").as_deref() == Some("active")
}

fn customer(e: &Entity) -> Customer {
    // The canonical address is the customer's first active address in id order (Paddle ids
    // grow with creation time, so the oldest); Paddle marks none as primary.
    let address = e
        .list(&["addresses"])
        .into_iter()
        .filter(active)
        .min_by_key(|a| a.text("id"))
        .map(|a| Address {
            line1: a.str(&["first_line"]),
            city: a.str(&["city"]),
            state: a.str(&["region"]),
            postal_code: a.str(&["postal_code"]),
            country: a.str(&["country_code"]),
        });
    // Every active business's `tax_identifier`; Paddle does not say which kind of number it
    // is (VAT, GST, EIN...), so the type names where it came from.
    let mut businesses = e.list(&["businesses"]);
    businesses.sort_by_key(|b| b.text("id"));
    let tax_ids = businesses
        .iter()
        .filter(|b| active(b))
        .filter_map(|b| b.text("tax_identifier").filter(|t| !t.is_empty()))
        .map(|value| TaxId {
            kind: Some(TAX_ID_TYPE.to_owned()),
            value: Some(value),
        })
        .collect();
    Customer {
        email: e.str(&["email"]),
        name: e.str(&["name"]),
        address,
        tax_ids,
        tax_exempt: "none".to_owned(),
        status: None,
    }
}

/// The canonical `tax_ids[].type` of a Paddle business's `tax_identifier`.
pub const TAX_ID_TYPE: &str = "paddle_tax_identifier";

/// Transaction status → canonical invoice status and lifecycle rank.
fn invoice_status(status: &str) -> (&'static str, i64) {
    match status {
        "draft" => ("draft", 0),
        "ready" => ("draft", 1),
        "billed" => ("open", 2),
        "past_due" => ("open", 3),
        "paid" => ("paid", 4),
        "completed" => ("paid", 5),
        "canceled" => ("void", 6),
        _ => ("open", 2),
    }
}

fn invoice(e: &Entity, status: &str) -> Result<(Invoice, i64), ParseError> {
    let (canonical, rank) = invoice_status(status);
    // `grand_total` is what the customer owes after credits; older payloads only had `total`.
    let total = match e.at(&["details", "totals", "grand_total"]) {
        Some(_) => e.amount(&["details", "totals", "grand_total"])?,
        None => e.amount(&["details", "totals", "total"])?,
    };
    let paid = if canonical == "paid" { total } else { 0 };
    let mut lines = Vec::new();
    for l in e.list(&["details", "line_items"]) {
        lines.push(InvoiceLine {
            id: l.str(&["id"]),
            description: l.str(&["product", "name"]),
            quantity: l.at(&["quantity"]).and_then(Value::as_i64),
            amount: l.amount(&["totals", "subtotal"])?,
            tax: l.amount(&["totals", "tax"])?,
            period_start: Some(e.time(&["billing_period", "starts_at"])),
            period_end: Some(e.time(&["billing_period", "ends_at"])),
        });
    }
    Ok((
        Invoice {
            customer_id: e.reference("customer_id"),
            subscription_id: e.reference("subscription_id"),
            status: canonical.to_owned(),
            currency: e.currency()?,
            subtotal: e.amount(&["details", "totals", "subtotal"])?,
            discount: e.amount(&["details", "totals", "discount"])?,
            tax: e.amount(&["details", "totals", "tax"])?,
            total,
            amount_paid: paid,
            amount_due: total - paid,
            issued_at: e.time(&["billed_at"]),
            period_start: e.time(&["billing_period", "starts_at"]),
            period_end: e.time(&["billing_period", "ends_at"]),
            lines,
        },
        rank,
    ))
}

fn credit_note(e: &Entity, status: &str) -> Result<(CreditNote, i64), ParseError> {
    let rank = match status {
        "pending_approval" => 0,
        "approved" => 1,
        "rejected" => 2,
        _ => 3,
    };
    let mut lines = Vec::new();
    for l in e.list(&["items"]) {
        // Adjustment items have no period: the line leaves `period_*` out.
        lines.push(InvoiceLine {
            id: l.str(&["id"]),
            description: l.str(&["type"]),
            quantity: None,
            amount: l.amount(&["totals", "subtotal"])?,
            tax: l.amount(&["totals", "tax"])?,
            period_start: None,
            period_end: None,
        });
    }
    Ok((
        CreditNote {
            invoice_id: e.reference("transaction_id"),
            customer_id: e.reference("customer_id"),
            status: status.to_owned(),
            currency: e.currency()?,
            subtotal: e.amount(&["totals", "subtotal"])?,
            tax: e.amount(&["totals", "tax"])?,
            total: e.amount(&["totals", "total"])?,
            issued_at: e.time(&["created_at"]),
            reason: e.str(&["reason"]),
            lines,
        },
        rank,
    ))
}

fn subscription(e: &Entity, status: &str) -> Result<(Subscription, i64), ParseError> {
    let rank = match status {
        "trialing" => 0,
        "active" => 1,
        "past_due" => 2,
        "paused" => 3,
        _ => 4,
    };
    let cancel_at = match e
        .at(&["scheduled_change", "action"])
        .and_then(Value::as_str)
    {
        Some("cancel") => e.time(&["scheduled_change", "effective_at"]),
        _ => None,
    };
    let items = e
        .list(&["items"])
        .iter()
        .map(|i| SubscriptionItem {
            id: i.str(&["price", "id"]),
            price_id: i.str(&["price", "id"]),
            quantity: i.at(&["quantity"]).and_then(Value::as_i64),
        })
        .collect();
    Ok((
        Subscription {
            customer_id: e.reference("customer_id"),
            status: status.to_owned(),
            currency: e.currency()?,
            current_period_start: e.time(&["current_billing_period", "starts_at"]),
            current_period_end: e.time(&["current_billing_period", "ends_at"]),
            cancel_at,
            canceled_at: e.time(&["canceled_at"]),
            items,
        },
        rank,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn transaction(status: &str, updated: &str) -> Value {
        json!({
            "id": "txn_01jd5v0g1x", "status": status, "customer_id": "ctm_01", "subscription_id": null,
            "currency_code": "eur", "billed_at": "2025-11-24T16:00:00.5+01:00",
            "updated_at": updated,
            "billing_period": {"starts_at": "2025-11-01T00:00:00Z", "ends_at": "2025-12-01T00:00:00Z"},
            "details": {
                "totals": {"subtotal": "1000", "discount": "0", "tax": "190", "total": "1190", "grand_total": "1190"},
                "line_items": [{"id": "txnitm_1", "quantity": 2, "product": {"name": "Seat"},
                                "totals": {"subtotal": "1000", "tax": "190", "total": "1190"}}]
            }
        })
    }

    #[test]
    fn completed_transaction_is_a_paid_invoice_in_minor_units() {
        let obs = observe(&transaction("completed", "2025-11-24T16:00:01.123456Z"), 0)
            .unwrap()
            .unwrap();
        assert_eq!(obs.object_type, ObjectType::Invoice);
        assert_eq!(obs.provider_id, "txn_01jd5v0g1x");
        let d = &obs.data;
        assert_eq!(d["status"], "paid");
        assert_eq!(d["currency"], "EUR");
        assert_eq!(
            (
                d["subtotal"].as_i64(),
                d["tax"].as_i64(),
                d["total"].as_i64()
            ),
            (Some(1000), Some(190), Some(1190))
        );
        assert_eq!(d["amount_paid"], 1190);
        assert_eq!(d["amount_due"], 0);
        assert_eq!(d["customer_id"], "paddle:ctm_01");
        assert_eq!(d["issued_at"], "2025-11-24T15:00:00.500Z");
        assert_eq!(d["lines"][0]["amount"], 1000);
        assert_eq!(d["lines"][0]["quantity"], 2);
        assert_eq!(
            obs.order_key,
            parse_rfc3339("2025-11-24T16:00:01.123456Z").unwrap()
        );
    }

    #[test]
    fn later_lifecycle_ranks_higher_at_the_same_update_time() {
        let t = "2025-11-24T16:00:01Z";
        let billed = observe(&transaction("billed", t), 0).unwrap().unwrap();
        let paid = observe(&transaction("paid", t), 0).unwrap().unwrap();
        assert!(paid.tie_rank > billed.tie_rank);
        assert_eq!(billed.data["status"], "open");
    }

    #[test]
    fn decimal_or_garbage_amounts_are_parse_errors_not_panics() {
        let mut t = transaction("billed", "2025-11-24T16:00:01Z");
        t["details"]["totals"]["tax"] = json!("1.90");
        assert!(observe(&t, 0).is_err());
        t["details"]["totals"]["tax"] = json!({"x": 1});
        assert!(observe(&t, 0).is_err());
    }

    #[test]
    fn adjustment_subscription_and_customer_map_by_id_prefix() {
        let adj = json!({"id": "adj_01", "action": "refund", "transaction_id": "txn_01", "customer_id": "ctm_01",
            "status": "approved", "currency_code": "USD", "reason": "duplicate",
            "totals": {"subtotal": "500", "tax": "50", "total": "550"}, "items": [], "updated_at": "2025-01-01T00:00:00Z"});
        let o = observe(&adj, 0).unwrap().unwrap();
        assert_eq!(o.object_type, ObjectType::CreditNote);
        assert_eq!(o.data["invoice_id"], "paddle:txn_01");
        assert_eq!(o.data["total"], 550);
        let sub = json!({"id": "sub_01", "status": "active", "customer_id": "ctm_01", "currency_code": "JPY",
            "current_billing_period": {"starts_at": "2025-01-01T00:00:00Z", "ends_at": "2025-02-01T00:00:00Z"},
            "scheduled_change": {"action": "cancel", "effective_at": "2025-02-01T00:00:00Z"},
            "items": [{"price": {"id": "pri_01"}, "quantity": 3}], "updated_at": "2025-01-01T00:00:00Z"});
        let o = observe(&sub, 0).unwrap().unwrap();
        assert_eq!(o.data["cancel_at"], "2025-02-01T00:00:00Z");
        assert_eq!(o.data["items"][0]["price_id"], "pri_01");
        assert_eq!(o.data["currency"], "JPY");
        let ctm = json!({"id": "ctm_01", "email": "ada@example.com", "name": "Ada", "status": "archived",
            "updated_at": "2025-01-01T00:00:00Z"});
        let o = observe(&ctm, 0).unwrap().unwrap();
        assert!(o.deleted);
        assert_eq!(o.data["email"], "ada@example.com");
        assert!(observe(&json!({"id": "pri_01"}), 0).unwrap().is_none());
    }

    fn part(id: &str, status: &str, updated: &str, extra: Value) -> Value {
        let mut p =
            json!({"id": id, "customer_id": "ctm_01", "status": status, "updated_at": updated});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    }

    #[test]
    fn a_customer_read_whole_has_its_first_active_address_and_active_businesses_tax_ids() {
        let t = "2025-01-01T00:00:00Z";
        let ctm = json!({"id": "ctm_01", "email": "a@example.com", "name": "A", "status": "active",
        "updated_at": t,
        "addresses": [
            part("add_03", "active", t, json!({"first_line": "3 Rue", "city": "Paris",
                "region": null, "postal_code": "75001", "country_code": "FR"})),
            part("add_01", "archived", t, json!({"first_line": "1 Old St", "country_code": "GB"})),
            part("add_02", "active", "2025-03-01T00:00:00Z", json!({"first_line": "2 Main St",
                "city": "Berlin", "region": "BE", "postal_code": "10115", "country_code": "DE"})),
        ],
        "businesses": [
            part("biz_02", "active", t, json!({"tax_identifier": "DE123"})),
            part("biz_01", "archived", t, json!({"tax_identifier": "FR999"})),
            part("biz_03", "active", t, json!({"tax_identifier": null})),
        ]});
        let o = observe(&ctm, 0).unwrap().unwrap();
        assert!(o.carried.is_empty());
        assert_eq!(
            o.data["address"],
            json!({"line1": "2 Main St", "city": "Berlin", "state": "BE",
                "postal_code": "10115", "country": "DE"})
        );
        assert_eq!(
            o.data["tax_ids"],
            json!([{"type": TAX_ID_TYPE, "value": "DE123"}])
        );
        // The newest part orders the customer read whole.
        assert_eq!(o.order_key, parse_rfc3339("2025-03-01T00:00:00Z").unwrap());
        // Its customer record is older than that part: the read may predate a change of the
        // customer at the part's time, so an event of that time outranks it.
        let event = observe(
            &json!({"id": "ctm_01", "status": "active", "updated_at": "2025-03-01T00:00:00Z"}),
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(event.order_key, o.order_key);
        assert!(o.tie_rank < event.tie_rank);
    }

    #[test]
    fn a_customer_an_event_carries_keeps_its_stored_address_and_tax_ids() {
        let ctm = json!({"id": "ctm_01", "email": "a@example.com", "status": "active",
            "updated_at": "2025-01-01T00:00:00Z"});
        let o = observe(&ctm, 0).unwrap().unwrap();
        assert_eq!(o.carried, &["address", "tax_ids"]);
        let mut none = ctm.clone();
        none["addresses"] = json!([]);
        none["businesses"] = json!([]);
        let o = observe(&none, 0).unwrap().unwrap();
        assert!(o.carried.is_empty());
        assert_eq!(o.data["address"], Value::Null);
        assert_eq!(o.data["tax_ids"], json!([]));
    }
}
