//! Recurly's object shapes (API v3, `v2021-02-25`) built from the generator's Stripe-shaped
//! changes, as `docs/providers/recurly.md` describes them. The ledger keys objects by the
//! handles Recurly's thin webhooks carry (account `code`, invoice `number`, subscription and
//! transaction `uuid`); every object also has its API `id`, which is what references name
//! (`account.id`, `subscription_ids`, `previous_invoice_id`, `invoice.id`) and billsync keys
//! by. The truth holds each object whole: every line item (`api` embeds only the first
//! ones) and the account's `billing_info` (docs page, "Tax IDs and addresses": automatically
//! collected accounts keep their VAT number and address there). Money is decimal major units
//! (JPY has none), times are RFC 3339 in whole seconds (what the official Python client
//! parses: `%Y-%m-%dT%H:%M:%S%z`). Also the helpers the Zuora personality shares: derived
//! ids and exact decimal amounts.

use serde_json::{json, Number, Value};
use sha2::{Digest, Sha256};

use crate::currency::exponent;
use crate::scenario::Change;
use crate::time::secs_to_rfc3339;

/// A minor-unit amount as the decimal major-unit JSON number a provider writes, built from
/// its exact decimal text (`1099` USD → `10.99`, `1200` JPY → `1200`); never float arithmetic.
pub fn major(minor: i64, currency: &str) -> Value {
    let exp = exponent(currency);
    if exp == 0 {
        return Value::from(minor);
    }
    let scale = 10u64.pow(exp);
    let abs = minor.unsigned_abs();
    let sign = if minor < 0 { "-" } else { "" };
    let text = format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = exp as usize
    );
    // Decimal text with at most 19 digits is always a JSON number.
    text.parse::<Number>().map_or(Value::Null, Value::Number)
}

/// Lowercase hex of SHA-256 over `seed`, `len` characters (at most 64): stable derived ids.
pub fn hex_id(seed: &str, len: usize) -> String {
    let mut h = hex::encode(Sha256::digest(seed.as_bytes()));
    h.truncate(len.min(64));
    h
}

/// A lowercase base-36 id of `len` characters derived from `seed` (Recurly's `id` style).
pub fn alnum_id(seed: &str, len: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    Sha256::digest(seed.as_bytes())
        .iter()
        .take(len)
        .map(|b| DIGITS[usize::from(*b) % DIGITS.len()] as char)
        .collect()
}

/// The per-account sequence number inside a generator id (`in_<tag><10 digits>`): unique
/// among all ids of one account and rising with creation, like Recurly invoice numbers.
pub fn sequence(id: &str) -> u64 {
    let digits = id.len().saturating_sub(10);
    id.get(digits..)
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| u64::from_str_radix(&hex_id(id, 12), 16).unwrap_or(0))
}

/// Unix seconds as RFC 3339 UTC text (null when out of range).
pub fn time(secs: Option<i64>) -> Value {
    secs.and_then(secs_to_rfc3339)
        .map_or(Value::Null, Value::String)
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn i(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn currency(v: &Value) -> String {
    s(v, "currency").unwrap_or("usd").to_ascii_uppercase()
}

/// The `account` reference objects carry ("account mini").
fn account_mini(code: Option<&str>) -> Value {
    match code {
        Some(code) => {
            json!({"id": alnum_id(&format!("account:{code}"), 13), "object": "account", "code": code})
        }
        None => Value::Null,
    }
}

/// A Recurly invoice number for a generator invoice id.
pub fn invoice_number(stripe_id: &str) -> String {
    sequence(stripe_id).to_string()
}

/// A Recurly `uuid` (32 hex) for a generator subscription or charge/refund id.
pub fn uuid(stripe_id: &str) -> String {
    hex_id(&format!("uuid:{stripe_id}"), 32)
}

/// The translated change, or `None` where Recurly has no such object or change.
pub fn translate(c: Change, at: i64) -> Option<Change> {
    let o = &c.object;
    let (stream, id, object, event_type) = match c.stream {
        "customers" if c.deleted => {
            let (id, object) = closed_account(&c.id, c.created, at);
            ("accounts", id, object, "account.deactivated")
        }
        "customers" => {
            // Docs page, "Tax IDs and addresses": a change of billing info is announced as
            // `billing_info.updated`, not `account.updated`.
            let event = match (c.event_type, collection(&c.id)) {
                ("customer.created", _) => "account.created",
                (_, Collection::Manual) => "account.updated",
                _ => "billing_info.updated",
            };
            ("accounts", c.id.clone(), account(o, at), event)
        }
        "invoices" => {
            let (state, event) = match s(o, "status")? {
                // Recurly has no draft invoices: the invoice appears when it is issued.
                "draft" => return None,
                "open" => ("pending", "charge_invoice.created"),
                "paid" => ("paid", "charge_invoice.paid"),
                "void" => ("voided", "charge_invoice.updated"),
                _ => ("failed", "charge_invoice.failed"),
            };
            let event = if c.event_type == "invoice.updated" {
                "charge_invoice.updated"
            } else {
                event
            };
            (
                "invoices",
                invoice_number(&c.id),
                charge_invoice(o, state, at),
                event,
            )
        }
        "credit_notes" => (
            "invoices",
            invoice_number(&c.id),
            credit_invoice(o, at),
            "credit_invoice.created",
        ),
        "subscriptions" => {
            let ended = s(o, "status") == Some("canceled");
            let event = match (ended, c.event_type) {
                (true, _) => "subscription.expired",
                (false, "customer.subscription.created") => "subscription.created",
                _ => "subscription.updated",
            };
            ("subscriptions", uuid(&c.id), subscription(o, at), event)
        }
        // A refund is its own transaction; the purchase transaction does not change.
        "charges" if c.event_type == "charge.refunded" => return None,
        "charges" => (
            "transactions",
            uuid(&c.id),
            transaction(o, "purchase", at),
            "payment.succeeded",
        ),
        "refunds" => (
            "transactions",
            uuid(&c.id),
            transaction(o, "refund", at),
            "payment.refunded",
        ),
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

/// Sets `updated_at` (an edit at `at`, unix seconds).
pub fn touch(object: &mut Value, at: i64) {
    if let Some(o) = object.as_object_mut() {
        o.insert("updated_at".into(), time(Some(at)));
    }
}

/// Where an account keeps its VAT number and address (docs page, "Tax IDs and addresses").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// Manually collected: on the account itself, no billing info.
    Manual,
    /// Automatically collected, billing info only: the account's own address is empty.
    BillingInfoOnly,
    /// Automatically collected with an account address too (and a second VAT number there).
    Both,
}

/// The account's collection style, fixed per account code.
pub fn collection(code: &str) -> Collection {
    match u64::from_str_radix(&hex_id(&format!("collection:{code}"), 8), 16).unwrap_or(0) % 3 {
        0 => Collection::Manual,
        1 => Collection::BillingInfoOnly,
        _ => Collection::Both,
    }
}

fn address(a: &Value) -> Value {
    json!({"street1": s(a, "line1"), "street2": s(a, "line2"), "city": s(a, "city"),
           "region": s(a, "state"), "postal_code": s(a, "postal_code"),
           "country": s(a, "country"), "phone": null})
}

fn account(o: &Value, at: i64) -> Value {
    let code = s(o, "id").unwrap_or_default();
    let id = alnum_id(&format!("account:{code}"), 13);
    let name = s(o, "name").unwrap_or_default();
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    let last = if last.is_empty() {
        Value::Null
    } else {
        json!(last)
    };
    let a = o.get("address").cloned().unwrap_or(Value::Null);
    let vat = |i: usize| o["tax_ids"]["data"].get(i).and_then(|t| s(t, "value"));
    let created = time(o.get("created").and_then(Value::as_i64));
    let billing_info = |vat_number: Option<&str>| {
        json!({
            "id": alnum_id(&format!("billing_info:{code}"), 13), "object": "billing_info",
            "account_id": id, "first_name": first, "last_name": last, "company": null,
            "address": address(&a), "vat_number": vat_number, "valid": true,
            "primary_payment_method": true, "backup_payment_method": false,
            "created_at": created, "updated_at": time(Some(at)),
        })
    };
    let (account_address, account_vat, billing) = match collection(code) {
        Collection::Manual => (address(&a), vat(0), Value::Null),
        Collection::BillingInfoOnly => (address(&Value::Null), vat(1), billing_info(vat(0))),
        Collection::Both => (address(&a), vat(1), billing_info(vat(0))),
    };
    json!({
        "id": id, "object": "account", "code": code,
        "state": "active", "username": null, "email": s(o, "email"),
        "first_name": first, "last_name": last,
        "company": null, "vat_number": account_vat,
        "tax_exempt": s(o, "tax_exempt") == Some("exempt"),
        "preferred_locale": null, "bill_to": "self",
        "address": account_address, "billing_info": billing,
        "created_at": created, "updated_at": time(Some(at)), "deleted_at": null,
    })
}

/// A closed ("deactivated") account: Recurly keeps it, with `state: inactive` and `deleted_at`.
/// The generator's deletion names only the id, so the details are not carried over.
fn closed_account(code: &str, created: i64, at: i64) -> (String, Value) {
    let object = json!({
        "id": alnum_id(&format!("account:{code}"), 13), "object": "account", "code": code,
        "state": "inactive", "email": null, "first_name": null, "last_name": null,
        "company": null, "vat_number": null, "tax_exempt": false, "address": null,
        "billing_info": null, "created_at": time(Some(created)), "updated_at": time(Some(at)),
        "deleted_at": time(Some(at)),
    });
    (code.to_owned(), object)
}

fn line_items(o: &Value, cur: &str, sign: i64, at: i64) -> Vec<Value> {
    o["lines"]["data"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    let amount = i(l, "amount");
                    let tax = l["taxes"].get(0).map_or(0, |t| i(t, "amount"));
                    let quantity = l.get("quantity").and_then(Value::as_i64).unwrap_or(1);
                    let lid = s(l, "id").unwrap_or_default();
                    json!({
                        "id": alnum_id(&format!("line:{lid}"), 13), "object": "line_item",
                        "uuid": hex_id(&format!("line:{lid}"), 32), "type": if sign < 0 { "credit" } else { "charge" },
                        "state": "invoiced", "description": s(l, "description"), "quantity": quantity,
                        "currency": cur, "unit_amount": major(amount / quantity.max(1), cur),
                        "subtotal": major(sign * amount, cur), "discount": major(0, cur),
                        "tax": major(sign * tax, cur), "amount": major(sign * (amount + tax), cur),
                        "start_date": time(l["period"].get("start").and_then(Value::as_i64)),
                        "end_date": time(l["period"].get("end").and_then(Value::as_i64)),
                        "created_at": time(o.get("created").and_then(Value::as_i64)),
                        "updated_at": time(Some(at)),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn charge_invoice(o: &Value, state: &str, at: i64) -> Value {
    let cur = currency(o);
    let id = s(o, "id").unwrap_or_default();
    let subtotal = i(o, "subtotal");
    let discount: i64 = o["total_discount_amounts"]
        .as_array()
        .map_or(0, |d| d.iter().map(|x| i(x, "amount")).sum());
    let tax: i64 = o["total_taxes"]
        .as_array()
        .map_or(0, |t| t.iter().map(|x| i(x, "amount")).sum());
    let total = i(o, "total");
    let paid = i(o, "amount_paid");
    let created = o.get("created").and_then(Value::as_i64);
    let finished = matches!(state, "paid" | "voided" | "failed");
    let subscription_ids: Vec<String> = s(o, "subscription")
        .map(|sub| alnum_id(&format!("subscription:{sub}"), 13))
        .into_iter()
        .collect();
    json!({
        "id": alnum_id(&format!("invoice:{id}"), 13), "object": "invoice", "type": "charge",
        "origin": if subscription_ids.is_empty() { "purchase" } else { "new_subscription" },
        "state": state, "account": account_mini(s(o, "customer")),
        "subscription_ids": subscription_ids, "number": invoice_number(id),
        "collection_method": "automatic", "net_terms": 0, "currency": cur,
        "subtotal": major(subtotal, &cur), "discount": major(discount, &cur),
        "tax": major(tax, &cur), "total": major(total, &cur), "paid": major(paid, &cur),
        "balance": major(if state == "voided" { 0 } else { total - paid }, &cur),
        "refundable_amount": major(paid, &cur),
        "tax_info": {"type": "vat", "region": null, "rate": 0.19},
        "previous_invoice_id": null,
        // Whole here; `api` embeds the first ones (docs page, "Line items").
        "line_items": line_items(o, &cur, 1, at), "has_more_line_items": false,
        "created_at": time(created), "updated_at": time(Some(at)),
        "due_at": time(created.map(|c| c + 30 * 86_400)),
        "closed_at": if finished { time(Some(at)) } else { Value::Null },
    })
}

/// Credit invoices: Recurly writes their amounts as negative numbers.
fn credit_invoice(o: &Value, at: i64) -> Value {
    let cur = currency(o);
    let id = s(o, "id").unwrap_or_default();
    let subtotal = i(o, "subtotal");
    let tax: i64 = o["total_taxes"]
        .as_array()
        .map_or(0, |t| t.iter().map(|x| i(x, "amount")).sum());
    let total = i(o, "total");
    let voided = s(o, "status") == Some("void");
    // Docs page, "Invoice and credit note references": a refund invoice names the invoice
    // it refunds by that invoice's `id`.
    let previous = s(o, "invoice").map(|inv| alnum_id(&format!("invoice:{inv}"), 13));
    json!({
        "id": alnum_id(&format!("invoice:{id}"), 13), "object": "invoice", "type": "credit",
        "origin": if previous.is_some() { "refund" } else { "credit" },
        "state": if voided { "voided" } else { "open" },
        "previous_invoice_id": previous,
        "account": account_mini(s(o, "customer")), "subscription_ids": [],
        "number": invoice_number(id), "collection_method": "automatic", "currency": cur,
        "subtotal": major(-subtotal, &cur), "discount": major(0, &cur), "tax": major(-tax, &cur),
        "total": major(-total, &cur), "paid": major(0, &cur), "balance": major(-total, &cur),
        "line_items": line_items(o, &cur, -1, at), "has_more_line_items": false,
        "created_at": time(o.get("created").and_then(Value::as_i64)),
        "updated_at": time(Some(at)), "closed_at": null,
    })
}

fn subscription(o: &Value, at: i64) -> Value {
    let cur = currency(o);
    let id = s(o, "id").unwrap_or_default();
    let item = o["items"]["data"].get(0).cloned().unwrap_or(Value::Null);
    let quantity = item.get("quantity").and_then(Value::as_i64).unwrap_or(1);
    let unit = item["price"].get("unit_amount").and_then(Value::as_i64);
    let ended = s(o, "status") == Some("canceled");
    let canceled_at = o.get("canceled_at").and_then(Value::as_i64);
    let created = o.get("created").and_then(Value::as_i64);
    json!({
        "id": alnum_id(&format!("subscription:{id}"), 13), "object": "subscription",
        "uuid": uuid(id), "account": account_mini(s(o, "customer")),
        "plan": {"id": alnum_id("plan:standard", 13), "object": "plan", "code": "standard", "name": "Standard"},
        "state": if ended { "expired" } else { "active" }, "currency": cur,
        "unit_amount": unit.map_or(Value::Null, |u| major(u, &cur)), "quantity": quantity,
        "add_ons": [], "collection_method": "automatic", "auto_renew": true,
        "current_period_started_at": time(o.get("current_period_start").and_then(Value::as_i64)),
        "current_period_ends_at": time(o.get("current_period_end").and_then(Value::as_i64)),
        "activated_at": time(created), "canceled_at": time(canceled_at),
        "expires_at": if ended { time(canceled_at) } else { Value::Null },
        "created_at": time(created), "updated_at": time(Some(at)),
    })
}

fn transaction(o: &Value, kind: &str, at: i64) -> Value {
    let cur = currency(o);
    let id = s(o, "id").unwrap_or_default();
    let invoice = s(o, "invoice").map_or(Value::Null, |inv| {
        json!({"id": alnum_id(&format!("invoice:{inv}"), 13), "object": "invoice",
               "number": invoice_number(inv), "type": "charge"})
    });
    let created = o.get("created").and_then(Value::as_i64);
    let original = s(o, "charge").map(|ch| alnum_id(&format!("transaction:{ch}"), 13));
    json!({
        "id": alnum_id(&format!("transaction:{id}"), 13), "object": "transaction",
        "uuid": uuid(id), "original_transaction_id": original,
        "account": account_mini(s(o, "customer")), "invoice": invoice, "type": kind,
        "origin": if kind == "refund" { "refund" } else { "api" }, "currency": cur,
        "amount": major(i(o, "amount"), &cur), "status": "success", "success": true,
        "refunded": false, "collected_at": time(created), "created_at": time(created),
        "updated_at": time(Some(at)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimal_major_units() {
        assert_eq!(major(1099, "USD").to_string(), "10.99");
        assert_eq!(major(-5, "EUR").to_string(), "-0.05");
        assert_eq!(major(1200, "JPY").to_string(), "1200");
        assert_eq!(major(100, "USD").to_string(), "1.0");
        assert_eq!(major(1234, "KWD").to_string(), "1.234");
    }

    #[test]
    fn sequence_reads_the_generator_counter() {
        assert_eq!(sequence("in_7b10000000042"), 42);
        assert_eq!(invoice_number("cn_7b10000000107"), "107");
    }
}
