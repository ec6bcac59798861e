//! Paddle Billing's entities made from the generator's (Stripe-shaped) changes: customers
//! (`ctm_`), transactions (`txn_`, Paddle's billing document: Stripe's invoices, with the
//! payment inside), subscriptions (`sub_`) and adjustments (`adj_`: refunds of completed
//! transactions, which is what Stripe's credit notes and refunds of paid invoices are). Money
//! is a string of the currency's lowest denomination (`"1190"`; JPY has none below the yen,
//! so yen); times are RFC 3339 with microseconds; `updated_at` is the change's time.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::super::Change;
use super::parts;

/// Which transaction and customer each Stripe charge paid. Paddle has no charge entity (a
/// payment is part of its transaction), and a refund is an adjustment of that transaction,
/// but the generator's refund names only its charge. Ids are unique per seed and account,
/// so one table serves every simulator in the process; it is bounded.
static PAYMENTS: Mutex<BTreeMap<String, (String, String)>> = Mutex::new(BTreeMap::new());
const MAX_PAYMENTS: usize = 1_000_000;

/// A Paddle id for a generator id: its prefix (`cus`, `in`, ...) swapped for Paddle's.
pub fn paddle_id(prefix: &str, id: &str) -> String {
    let rest = id.split_once('_').map_or(id, |(_, r)| r);
    format!("{prefix}_{rest}")
}

/// An RFC 3339 time with microseconds, as Paddle writes them.
pub fn rfc3339(micros: i64) -> Value {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    })
}

fn secs(v: &Value) -> Value {
    v.as_i64()
        .map_or(Value::Null, |s| rfc3339(s.saturating_mul(1_000_000)))
}

/// An amount in the lowest denomination, as Paddle's string.
fn money(minor: i64) -> Value {
    Value::String(minor.to_string())
}

fn int(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or(0)
}

fn sum(list: &Value, key: &str) -> i64 {
    list.as_array()
        .map_or(0, |a| a.iter().map(|x| int(x, key)).sum())
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

fn currency(v: &Value) -> String {
    text(v, "currency").to_ascii_uppercase()
}

/// The Paddle entity, stream and event type for one generator change; `None` for what
/// Paddle has no entity of (charges, whose payments live in their transactions).
pub fn translate(c: Change, at_micros: i64) -> Option<Change> {
    let o = &c.object;
    let (stream, id, object, event_type): (&'static str, String, Value, &'static str) = match c
        .stream
    {
        "customers" => {
            let id = paddle_id("ctm", &c.id);
            let event = if c.event_type == "customer.created" {
                "customer.created"
            } else {
                // Paddle never deletes a customer: it archives it.
                "customer.updated"
            };
            (
                "customers",
                id.clone(),
                customer(&id, o, c.deleted, at_micros),
                event,
            )
        }
        "invoices" => {
            let id = paddle_id("txn", &c.id);
            let event = match c.event_type {
                "invoice.created" => "transaction.created",
                "invoice.finalized" => "transaction.billed",
                "invoice.paid" => "transaction.completed",
                "invoice.voided" => "transaction.canceled",
                "invoice.marked_uncollectible" => "transaction.past_due",
                _ => "transaction.updated",
            };
            (
                "transactions",
                id.clone(),
                transaction(&id, o, at_micros),
                event,
            )
        }
        "subscriptions" => {
            let id = paddle_id("sub", &c.id);
            let event = match c.event_type {
                "customer.subscription.created" => "subscription.created",
                "customer.subscription.deleted" => "subscription.canceled",
                _ => "subscription.updated",
            };
            (
                "subscriptions",
                id.clone(),
                subscription(&id, o, at_micros),
                event,
            )
        }
        "credit_notes" => {
            let id = paddle_id("adj", &c.id);
            let lines = &o["lines"]["data"];
            let refund = Refund {
                transaction: paddle_id("txn", &text(o, "invoice")),
                customer: paddle_id("ctm", &text(o, "customer")),
                currency: currency(o),
                subtotal: int(o, "subtotal"),
                tax: sum(&o["total_taxes"], "amount"),
                reason: text(o, "reason"),
                created: int(o, "created"),
                item: lines[0]["id"].as_str().map(|l| paddle_id("adjitm", l)),
            };
            (
                "adjustments",
                id.clone(),
                adjustment(&id, &refund, at_micros),
                "adjustment.created",
            )
        }
        "charges" => {
            if let (Some(invoice), Some(customer)) = (o["invoice"].as_str(), o["customer"].as_str())
            {
                let mut book = PAYMENTS.lock().unwrap_or_else(|e| e.into_inner());
                while book.len() >= MAX_PAYMENTS {
                    book.pop_first();
                }
                book.insert(
                    c.id.clone(),
                    (paddle_id("txn", invoice), paddle_id("ctm", customer)),
                );
            }
            return None;
        }
        "refunds" => {
            let (transaction, customer) = PAYMENTS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&text(o, "charge"))
                .cloned()?;
            let id = paddle_id("adj", &c.id);
            // A refund is tax-inclusive: its tax is the 19% inside the amount, exactly.
            let amount = int(o, "amount");
            let tax = amount * 19 / 119;
            let refund = Refund {
                transaction,
                customer,
                currency: currency(o),
                subtotal: amount - tax,
                tax,
                reason: text(o, "reason"),
                created: int(o, "created"),
                item: Some(paddle_id("adjitm", &c.id)),
            };
            (
                "adjustments",
                id.clone(),
                adjustment(&id, &refund, at_micros),
                "adjustment.created",
            )
        }
        _ => return None,
    };
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

fn customer(id: &str, o: &Value, archived: bool, at_micros: i64) -> Value {
    // Paddle keeps addresses and businesses (with tax ids) as their own entities: the ledger
    // holds them under `addresses` and `businesses` (the truth), the API shows them only at
    // their own endpoints (`parts`).
    let created = match secs(&o["created"]) {
        Value::Null => rfc3339(at_micros),
        t => t,
    };
    let updated = rfc3339(at_micros);
    let addresses: Vec<Value> = o
        .get("address")
        .filter(|a| a.is_object())
        .map(|a| parts::address(id, a, &created, &updated))
        .into_iter()
        .collect();
    let businesses: Vec<Value> = o["tax_ids"]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, t)| parts::business(id, i, &o["name"], &t["value"], &created, &updated))
        .collect();
    json!({
        "id": id, "name": o["name"], "email": o["email"], "marketing_consent": false,
        "status": if archived { "archived" } else { "active" },
        "custom_data": null, "locale": "en",
        "created_at": created, "updated_at": updated, "import_meta": null,
        "addresses": addresses, "businesses": businesses,
    })
}

fn product(line_id: &str, name: &Value, created: &Value) -> Value {
    json!({
        "id": paddle_id("pro", line_id), "name": name, "description": null, "type": "standard",
        "tax_category": "standard", "image_url": null, "custom_data": null, "status": "active",
        "import_meta": null, "created_at": created, "updated_at": created,
    })
}

fn price(price_id: &str, product_id: &str, unit: i64, currency: &str, created: &Value) -> Value {
    json!({
        "id": price_id, "product_id": product_id, "name": null, "description": "Monthly",
        "type": "standard", "billing_cycle": {"interval": "month", "frequency": 1},
        "trial_period": null, "tax_mode": "account_setting",
        "unit_price": {"amount": money(unit), "currency_code": currency},
        "unit_price_overrides": [], "quantity": {"minimum": 1, "maximum": 999},
        "status": "active", "custom_data": null, "import_meta": null,
        "created_at": created, "updated_at": created,
    })
}

fn transaction(id: &str, inv: &Value, at_micros: i64) -> Value {
    let status = match inv["status"].as_str() {
        Some("open") => "billed",
        Some("paid") => "completed",
        Some("void") => "canceled",
        Some("uncollectible") => "past_due",
        _ => "draft",
    };
    let currency = currency(inv);
    let created = secs(&inv["created"]);
    let (subtotal, total) = (int(inv, "subtotal"), int(inv, "total"));
    let discount = sum(&inv["total_discount_amounts"], "amount");
    let tax = sum(&inv["total_taxes"], "amount");
    let completed = status == "completed";
    let mut items = Vec::new();
    let mut line_items = Vec::new();
    for l in inv["lines"]["data"].as_array().into_iter().flatten() {
        let line_id = text(l, "id");
        let quantity = l["quantity"].as_i64().unwrap_or(1).max(1);
        let (amount, line_tax) = (int(l, "amount"), sum(&l["taxes"], "amount"));
        let price_id = paddle_id("pri", &line_id);
        let product = product(&line_id, &l["description"], &created);
        items.push(json!({
            "price": price(&price_id, &paddle_id("pro", &line_id), amount / quantity, &currency, &created),
            "quantity": quantity, "proration": null,
        }));
        let unit = |v: i64| money(v / quantity);
        line_items.push(json!({
            "id": paddle_id("txnitm", &line_id), "price_id": price_id, "quantity": quantity,
            "proration": null, "tax_rate": "0.19",
            "unit_totals": {"subtotal": unit(amount), "discount": "0", "tax": unit(line_tax), "total": unit(amount + line_tax)},
            "totals": {"subtotal": money(amount), "discount": "0", "tax": money(line_tax), "total": money(amount + line_tax)},
            "product": product,
        }));
    }
    let billed_at = match status {
        "draft" => Value::Null,
        _ => match secs(&inv["status_transitions"]["finalized_at"]) {
            Value::Null => created.clone(),
            t => t,
        },
    };
    let paid_at = match secs(&inv["status_transitions"]["paid_at"]) {
        Value::Null => billed_at.clone(),
        t => t,
    };
    let payments = if completed {
        let suffix = id.trim_start_matches("txn_");
        json!([{
            "payment_attempt_id": format!("{suffix}-0000-4000-8000-000000000001"),
            "stored_payment_method_id": format!("{suffix}-0000-4000-8000-000000000002"),
            "payment_method_id": format!("paymtd_{suffix}"), "amount": money(total),
            "status": "captured", "error_code": null,
            "method_details": {"type": "card", "card": {"type": "visa", "last4": "4242",
                "expiry_month": 12, "expiry_year": 2030, "cardholder_name": null}},
            "created_at": paid_at, "captured_at": paid_at,
        }])
    } else {
        json!([])
    };
    let totals = json!({
        "subtotal": money(subtotal), "discount": money(discount), "tax": money(tax),
        "total": money(total), "credit": "0", "credit_to_balance": "0",
        "balance": money(if completed { 0 } else { total }), "grand_total": money(total),
        "grand_total_tax": money(tax), "fee": null, "earnings": null, "currency_code": currency,
    });
    let customer = inv["customer"].as_str().map(|c| paddle_id("ctm", c));
    let subscription = inv["subscription"].as_str().map(|s| paddle_id("sub", s));
    json!({
        "id": id, "status": status, "customer_id": customer,
        "address_id": customer.as_deref().map(|c| paddle_id("add", c)),
        "business_id": null, "custom_data": null,
        "origin": if subscription.is_some() { "subscription_recurring" } else { "api" },
        "collection_mode": "automatic", "subscription_id": subscription,
        "invoice_id": null, "invoice_number": null, "billing_details": null,
        "billing_period": {"starts_at": secs(&inv["period_start"]), "ends_at": secs(&inv["period_end"])},
        "currency_code": currency, "discount_id": null,
        "created_at": created, "updated_at": rfc3339(at_micros), "billed_at": billed_at,
        "revised_at": null, "items": items,
        "details": {
            "tax_rates_used": [{"tax_rate": "0.19", "totals": {"subtotal": money(subtotal), "discount": money(discount),
                "tax": money(tax), "total": money(total)}}],
            "totals": totals, "adjusted_totals": null, "payout_totals": null,
            "adjusted_payout_totals": null, "line_items": line_items,
        },
        "payments": payments, "checkout": null,
    })
}

fn subscription(id: &str, s: &Value, at_micros: i64) -> Value {
    let canceled = s["status"] == "canceled";
    let currency = currency(s);
    let created = secs(&s["created"]);
    let period_end = secs(&s["current_period_end"]);
    let items: Vec<Value> = s["items"]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let price_id = text(&i["price"], "id");
            let product_id = paddle_id("pro", &price_id);
            json!({
                "status": "active", "quantity": i["quantity"], "recurring": true,
                "created_at": created, "updated_at": created,
                "previously_billed_at": created, "next_billed_at": if canceled { Value::Null } else { period_end.clone() },
                "trial_dates": null,
                "price": price(&price_id, &product_id, int(&i["price"], "unit_amount"), &currency, &created),
                "product": product(&price_id, &json!("Subscription"), &created),
            })
        })
        .collect();
    let customer = paddle_id("ctm", &text(s, "customer"));
    json!({
        "id": id, "status": if canceled { "canceled" } else { "active" },
        "customer_id": customer, "address_id": paddle_id("add", &customer), "business_id": null,
        "currency_code": currency, "created_at": created, "updated_at": rfc3339(at_micros),
        "started_at": created, "first_billed_at": created,
        "next_billed_at": if canceled { Value::Null } else { period_end.clone() },
        "paused_at": null, "canceled_at": secs(&s["canceled_at"]), "discount": null,
        "collection_mode": "automatic", "billing_details": null,
        // A canceled subscription has no current billing period any more.
        "current_billing_period": if canceled { Value::Null } else {
            json!({"starts_at": secs(&s["current_period_start"]), "ends_at": period_end})
        },
        "billing_cycle": {"interval": "month", "frequency": 1},
        "scheduled_change": null, "management_urls": null, "items": items,
        "custom_data": null, "import_meta": null,
    })
}

/// What an adjustment (a refund of part of a completed transaction) is made of.
struct Refund {
    transaction: String,
    customer: String,
    currency: String,
    subtotal: i64,
    tax: i64,
    reason: String,
    created: i64,
    item: Option<String>,
}

fn adjustment(id: &str, r: &Refund, at_micros: i64) -> Value {
    let total = r.subtotal + r.tax;
    let totals = json!({
        "subtotal": money(r.subtotal), "tax": money(r.tax), "total": money(total),
        "fee": "0", "earnings": "0", "retained_fee": "0", "currency_code": r.currency,
    });
    json!({
        "id": id, "action": "refund", "type": "partial", "transaction_id": r.transaction,
        "subscription_id": null, "customer_id": r.customer, "reason": r.reason.replace('_', " "),
        "credit_applied_to_balance": null, "currency_code": r.currency,
        // Paddle approves refunds itself; the simulator's are approved at once.
        "status": "approved",
        "items": [{"id": r.item, "item_id": r.transaction.replace("txn_", "txnitm_"), "type": "partial",
            "amount": money(total), "proration": null,
            "totals": {"subtotal": money(r.subtotal), "tax": money(r.tax), "total": money(total)}}],
        "totals": totals, "payout_totals": null,
        "tax_rates_used": [{"tax_rate": "0.19", "totals": totals}],
        "created_at": rfc3339(r.created.saturating_mul(1_000_000)), "updated_at": rfc3339(at_micros),
    })
}
