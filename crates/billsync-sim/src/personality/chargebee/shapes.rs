//! Chargebee's resources made from the generator's (Stripe-shaped) changes: customers,
//! invoices (`pending` while Stripe's is a draft), credit notes, subscriptions (Product
//! Catalog 2.0 `subscription_items`) and transactions (`payment` for a charge, `refund` for a
//! refund). Money is integer minor units with an upper-case `currency_code`; times are unix
//! seconds; every change raises `resource_version`, the change time in milliseconds.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::super::Change;

/// Which customer each Stripe charge belonged to: a Chargebee refund transaction names its
/// customer, the generator's refund only its charge. Ids are unique per seed and account, so
/// one bounded table serves every simulator in the process.
static PAYERS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
const MAX_PAYERS: usize = 1_000_000;

/// `resource_version` for a change at `at_micros`: milliseconds of its second plus its rank
/// among the account's changes in that second (the simulator's change times rise by 1 µs
/// within a second), so versions rise with every change up to 1,000 changes a second.
pub fn resource_version(at_micros: i64) -> i64 {
    let secs = at_micros.div_euclid(1_000_000);
    secs.saturating_mul(1000) + at_micros.rem_euclid(1_000_000).min(999)
}

/// Sets the time fields every change of a resource moves.
pub fn stamp(object: &mut Value, at_micros: i64) {
    object["updated_at"] = json!(at_micros.div_euclid(1_000_000));
    object["resource_version"] = json!(resource_version(at_micros));
}

fn transaction_id(id: &str) -> String {
    let rest = id.split_once('_').map_or(id, |(_, r)| r);
    format!("txn_{rest}")
}

fn int(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or(0)
}

fn sum(list: &Value, key: &str) -> i64 {
    list.as_array()
        .map_or(0, |a| a.iter().map(|x| int(x, key)).sum())
}

fn currency(v: &Value) -> Value {
    json!(v["currency"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_uppercase())
}

/// The Chargebee resource, list and event type for one generator change.
pub fn translate(c: Change, at_micros: i64) -> Option<Change> {
    let o = &c.object;
    let (stream, id, mut object, event_type): (&'static str, String, Value, &'static str) =
        match c.stream {
            "customers" => {
                let event = match c.event_type {
                    "customer.created" => "customer_created",
                    "customer.deleted" => "customer_deleted",
                    _ => "customer_changed",
                };
                ("customers", c.id.clone(), customer(o, c.deleted), event)
            }
            "invoices" => {
                let event = match c.event_type {
                    // A Stripe draft is a Chargebee pending invoice until it is closed.
                    "invoice.created" => "pending_invoice_created",
                    "invoice.finalized" => "invoice_generated",
                    _ => "invoice_updated",
                };
                ("invoices", c.id.clone(), invoice(o), event)
            }
            "credit_notes" => (
                "credit_notes",
                c.id.clone(),
                credit_note(o),
                "credit_note_created",
            ),
            "subscriptions" => {
                let event = match c.event_type {
                    "customer.subscription.created" => "subscription_created",
                    "customer.subscription.deleted" => "subscription_cancelled",
                    _ => "subscription_changed",
                };
                ("subscriptions", c.id.clone(), subscription(o), event)
            }
            "charges" => {
                if let Some(customer) = o["customer"].as_str() {
                    let mut payers = PAYERS.lock().unwrap_or_else(|e| e.into_inner());
                    while payers.len() >= MAX_PAYERS {
                        payers.pop_first();
                    }
                    payers.insert(c.id.clone(), customer.to_owned());
                }
                let event = match c.event_type {
                    "charge.succeeded" => "payment_succeeded",
                    _ => "transaction_updated",
                };
                ("transactions", transaction_id(&c.id), payment(o), event)
            }
            "refunds" => {
                let customer = PAYERS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(o["charge"].as_str().unwrap_or_default())
                    .cloned();
                (
                    "transactions",
                    transaction_id(&c.id),
                    refund(o, customer),
                    "payment_refunded",
                )
            }
            _ => return None,
        };
    object["id"] = json!(id);
    stamp(&mut object, at_micros);
    Some(Change {
        stream,
        id,
        created: c.created,
        object,
        deleted: c.deleted,
        event_type,
        at: c.at,
    })
}

fn customer(o: &Value, deleted: bool) -> Value {
    if deleted {
        return json!({"object": "customer", "deleted": true});
    }
    let name = o["name"].as_str().unwrap_or_default();
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    let a = &o["address"];
    let vat = o["tax_ids"]["data"][0]["value"].clone();
    json!({
        "first_name": first, "last_name": last, "email": o["email"],
        "auto_collection": "on", "net_term_days": 0, "allow_direct_debit": false,
        "created_at": o["created"],
        "taxability": if o["tax_exempt"] == "exempt" { "exempt" } else { "taxable" },
        "pii_cleared": "active", "channel": "web", "deleted": false, "object": "customer",
        "billing_address": {"first_name": first, "last_name": last, "line1": a["line1"],
            "city": a["city"], "state": a["state"], "country": a["country"], "zip": a["postal_code"],
            "validation_status": "not_validated", "object": "billing_address"},
        "card_status": "no_card", "promotional_credits": 0, "refundable_credits": 0,
        "excess_payments": 0, "unbilled_charges": 0, "preferred_currency_code": "USD",
        "vat_number": vat,
    })
}

fn line_items(lines: &Value, entity_type: &str) -> Vec<Value> {
    lines
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let quantity = l["quantity"].as_i64().unwrap_or(1).max(1);
            json!({
                "id": l["id"], "date_from": l["period"]["start"], "date_to": l["period"]["end"],
                "unit_amount": int(l, "amount") / quantity, "quantity": quantity,
                "amount": l["amount"], "pricing_model": "flat_fee", "is_taxed": true,
                "tax_amount": sum(&l["taxes"], "amount"), "tax_rate": 19,
                "description": l["description"], "entity_type": entity_type,
                "discount_amount": 0, "item_level_discount_amount": 0, "object": "line_item",
            })
        })
        .collect()
}

fn invoice(inv: &Value) -> Value {
    let status = match inv["status"].as_str() {
        Some("open") => "payment_due",
        Some("paid") => "paid",
        Some("void") => "voided",
        Some("uncollectible") => "not_paid",
        _ => "pending",
    };
    let t = &inv["status_transitions"];
    let total = int(inv, "total");
    let (paid, due) = match status {
        "paid" => (total, 0),
        "voided" => (0, 0),
        _ => (0, total),
    };
    let tax = sum(&inv["total_taxes"], "amount");
    let discount = sum(&inv["total_discount_amounts"], "amount");
    let discounts = if discount > 0 {
        json!([{"amount": discount, "description": "10% off", "entity_type": "document_level_coupon",
            "entity_id": "SIM10", "object": "discount"}])
    } else {
        json!([])
    };
    let date = if t["finalized_at"].is_null() {
        inv["created"].clone()
    } else {
        t["finalized_at"].clone()
    };
    let entity = if inv["subscription"].is_null() {
        "adhoc"
    } else {
        "plan_item_price"
    };
    json!({
        "customer_id": inv["customer"], "subscription_id": inv["subscription"],
        "recurring": !inv["subscription"].is_null(), "status": status,
        "price_type": "tax_exclusive", "date": date, "due_date": date, "net_term_days": 0,
        "currency_code": currency(inv), "total": total, "amount_paid": paid,
        "amount_adjusted": 0, "write_off_amount": 0, "credits_applied": 0, "amount_due": due,
        "paid_at": t["paid_at"], "voided_at": t["voided_at"], "generated_at": date,
        "deleted": false, "object": "invoice", "first_invoice": false,
        "amount_to_collect": due, "round_off_amount": 0, "has_advance_charges": false,
        "base_currency_code": currency(inv), "is_gifted": false, "term_finalized": true,
        "channel": "web", "tax": tax, "sub_total": inv["subtotal"],
        "line_items": line_items(&inv["lines"]["data"], entity),
        "discounts": discounts,
        "taxes": [{"name": "VAT", "amount": tax, "description": "VAT @ 19%"}],
        "linked_payments": [], "dunning_attempts": [],
    })
}

fn credit_note(cn: &Value) -> Value {
    let tax = sum(&cn["total_taxes"], "amount");
    let total = int(cn, "total");
    // Stripe's reasons Chargebee has a `reason_code` for; the rest are `other`.
    let reason = cn["reason"]
        .as_str()
        .filter(|r| matches!(*r, "product_unsatisfactory" | "order_change" | "fraudulent"))
        .unwrap_or("other");
    json!({
        "customer_id": cn["customer"], "subscription_id": null,
        "reference_invoice_id": cn["invoice"], "type": "refundable", "reason_code": reason,
        "status": "refund_due", "date": cn["created"], "price_type": "tax_exclusive",
        "currency_code": currency(cn), "total": total, "amount_allocated": 0,
        "amount_refunded": 0, "amount_available": total, "generated_at": cn["created"],
        "sub_total": cn["subtotal"], "round_off_amount": 0, "fractional_correction": 0,
        "deleted": false, "object": "credit_note",
        "line_items": line_items(&cn["lines"]["data"], "adhoc"),
        "discounts": [], "taxes": [{"name": "VAT", "amount": tax, "description": "VAT @ 19%"}],
        "line_item_taxes": [], "linked_refunds": [], "allocations": [],
    })
}

fn subscription(s: &Value) -> Value {
    let cancelled = s["status"] == "canceled";
    let items: Vec<Value> = s["items"]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let unit = int(&i["price"], "unit_amount");
            json!({"item_price_id": i["price"]["id"], "item_type": "plan", "quantity": i["quantity"],
                "unit_price": unit, "amount": unit * i["quantity"].as_i64().unwrap_or(1),
                "free_quantity": 0, "object": "subscription_item"})
        })
        .collect();
    json!({
        "customer_id": s["customer"], "currency_code": currency(s),
        "status": if cancelled { "cancelled" } else { "active" },
        "current_term_start": s["current_period_start"], "current_term_end": s["current_period_end"],
        "next_billing_at": if cancelled { Value::Null } else { s["current_period_end"].clone() },
        "created_at": s["created"], "started_at": s["created"], "activated_at": s["created"],
        "cancelled_at": s["canceled_at"],
        "cancel_reason": if cancelled { json!("not_paid") } else { Value::Null },
        "billing_period": 1, "billing_period_unit": "month", "due_invoices_count": 0,
        "has_scheduled_changes": false, "channel": "web", "deleted": false,
        "object": "subscription", "subscription_items": items,
    })
}

fn payment(ch: &Value) -> Value {
    let linked = match ch["invoice"].as_str() {
        Some(invoice) => json!([{"invoice_id": invoice, "applied_amount": ch["amount"],
            "applied_at": ch["created"], "invoice_date": ch["created"], "invoice_total": ch["amount"],
            "invoice_status": "paid"}]),
        None => json!([]),
    };
    json!({
        "customer_id": ch["customer"], "payment_method": "card", "gateway": "stripe",
        "gateway_account_id": "gw_sim", "id_at_gateway": ch["id"], "type": "payment",
        "date": ch["created"], "settled_at": ch["created"], "currency_code": currency(ch),
        "base_currency_code": currency(ch), "amount": ch["amount"], "status": "success",
        "amount_unused": 0, "masked_card_number": "************4242",
        "deleted": false, "object": "transaction", "linked_invoices": linked,
        "linked_refunds": [], "linked_credit_notes": [],
    })
}

fn refund(re: &Value, customer: Option<String>) -> Value {
    json!({
        "customer_id": customer, "payment_method": "card", "gateway": "stripe",
        "gateway_account_id": "gw_sim", "id_at_gateway": re["id"], "type": "refund",
        "refunded_txn_id": re["charge"].as_str().map(transaction_id),
        "date": re["created"], "settled_at": re["created"], "currency_code": currency(re),
        "base_currency_code": currency(re), "amount": re["amount"], "status": "success",
        "deleted": false, "object": "transaction", "linked_invoices": [],
        "linked_credit_notes": [], "linked_refunds": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_version_rises_with_every_change_in_a_second_and_across_seconds() {
        let t = 1_700_000_000_000_000;
        let v: Vec<i64> = [t, t + 1, t + 2, t + 1_000_000]
            .into_iter()
            .map(resource_version)
            .collect();
        assert_eq!(
            v,
            [
                1_700_000_000_000,
                1_700_000_000_001,
                1_700_000_000_002,
                1_700_000_001_000
            ]
        );
    }
}
