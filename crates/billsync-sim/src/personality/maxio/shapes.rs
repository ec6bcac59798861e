//! Maxio shapes for the generator's changes (which come in Stripe's): numeric ids and `inv_`
//! / `cn_` uids, decimal-string money on relationship invoices and credit notes, integer cents
//! on transactions, times in the site's zone (US Eastern) to the second, and the webhook form
//! body with Ruby-style bracket keys and Eastern times.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Offset, Utc};
use serde_json::{json, Map, Value};

use crate::currency::exponent;
use crate::scenario::Change;

/// The simulated site's id (every account is one Maxio site).
pub const SITE_ID: i64 = 8_401;

/// The site's catalogue product, named by payment events.
pub const PRODUCT_ID: i64 = 6_042;

/// A Maxio numeric id for a generator id `{prefix}_{tag}{counter:010}`: the account tag
/// hashed into the high digits and the counter below, so ids are unique across sites and
/// stay under 2^53 (JavaScript clients read them exactly).
pub fn numeric(id: &str) -> i64 {
    let rest = id.split_once('_').map_or(id, |(_, r)| r);
    let split = rest.len().saturating_sub(10);
    let (tag, counter) = rest.split_at(split);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let high = (hash % 9_000_000 + 1_000_000) as i64;
    let low = counter.parse::<i64>().unwrap_or((hash >> 20) as i64) % 100_000_000;
    high * 100_000_000 + low
}

/// A Maxio uid (`inv_…`, `cn_…`, `li_…`): the prefix and 13 base-36 characters.
pub fn uid(prefix: &str, id: &str) -> String {
    let mut n = numeric(id) as u64;
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    while digits.len() < 13 {
        digits.push(b'0');
    }
    digits.reverse();
    format!("{prefix}_{}", String::from_utf8_lossy(&digits))
}

/// US Eastern's offset at a UTC instant (DST from the second Sunday of March, 2:00 local, to
/// the first Sunday of November, 2:00 local: the US rule since 2007).
fn eastern(secs: i64) -> FixedOffset {
    let standard = FixedOffset::west_opt(5 * 3600).unwrap_or_else(|| Utc.fix());
    let daylight = FixedOffset::west_opt(4 * 3600).unwrap_or_else(|| Utc.fix());
    let Some(t) = DateTime::from_timestamp(secs, 0) else {
        return standard;
    };
    let nth_sunday = |month: u32, n: u32| {
        let first = NaiveDate::from_ymd_opt(t.year(), month, 1)?;
        let offset = (7 - first.weekday().num_days_from_sunday()) % 7;
        first.checked_add_days(chrono::Days::new(u64::from(offset + 7 * (n - 1))))
    };
    let (Some(start), Some(end)) = (nth_sunday(3, 2), nth_sunday(11, 1)) else {
        return standard;
    };
    // 2:00 EST = 07:00 UTC; 2:00 EDT = 06:00 UTC.
    let start = start.and_hms_opt(7, 0, 0).map(|d| d.and_utc().timestamp());
    let end = end.and_hms_opt(6, 0, 0).map(|d| d.and_utc().timestamp());
    match (start, end) {
        (Some(s), Some(e)) if secs >= s && secs < e => daylight,
        _ => standard,
    }
}

fn local(secs: i64) -> Option<DateTime<FixedOffset>> {
    DateTime::from_timestamp(secs, 0).map(|t| t.with_timezone(&eastern(secs)))
}

/// An API time: RFC 3339 in the site's zone, to the second (`2024-06-20T12:00:00-04:00`).
pub fn api_time(secs: i64) -> Value {
    local(secs).map_or(Value::Null, |t| {
        Value::String(t.format("%Y-%m-%dT%H:%M:%S%:z").to_string())
    })
}

/// A date in the site's zone (`2024-06-20`).
pub fn api_date(secs: i64) -> Value {
    local(secs).map_or(Value::Null, |t| {
        Value::String(t.format("%Y-%m-%d").to_string())
    })
}

/// A webhook time: Ruby's `Time#to_s` in US Eastern (`2024-06-20 12:00:00 -0400`).
fn webhook_time(text: &str) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(text).ok()?;
    let secs = t.timestamp();
    local(secs).map(|l| l.format("%Y-%m-%d %H:%M:%S %z").to_string())
}

/// Parses a time the API accepts in filters: RFC 3339, `YYYY-MM-DD HH:MM:SS` with or without
/// a zone (the site's zone when none), or a bare date (midnight in the site's zone).
pub fn parse_filter_time(text: &str, end_of_day: bool) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    for format in ["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.timestamp());
        }
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .or_else(|| {
            let d = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            if end_of_day {
                d.and_hms_opt(23, 59, 59)
            } else {
                d.and_hms_opt(0, 0, 0)
            }
        })?;
    // Local time in the site's zone: the offset of that wall time (close to the UTC guess).
    let guess = naive.and_utc().timestamp();
    let offset = eastern(guess + 5 * 3600).local_minus_utc();
    Some(guess - i64::from(offset))
}

/// Minor units as Maxio's decimal text: two digits for most currencies, `"1000.0"` for one
/// without a minor unit (JPY), exactly (integer arithmetic only).
pub fn decimal(minor: i64, currency: &str) -> Value {
    let exp = exponent(currency);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let text = if exp == 0 {
        format!("{sign}{abs}.0")
    } else {
        let scale = 10u64.pow(exp);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exp as usize
        )
    };
    Value::String(text)
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn id_of(v: &Value) -> Value {
    v.as_str().map_or(Value::Null, |s| json!(numeric(s)))
}

/// The Maxio object for a generator change, wrapped by its resource name, and its stream.
/// `None` where Maxio holds no such thing (drafts, a refund's effect on its payment).
pub fn object(c: &Change, at: i64) -> Option<(&'static str, String, Value)> {
    let o = &c.object;
    match c.stream {
        "customers" => {
            let id = numeric(&c.id);
            if c.deleted {
                return Some(("customers", id.to_string(), json!({"customer": {"id": id}})));
            }
            Some(("customers", id.to_string(), customer(o, id, c.created, at)))
        }
        "subscriptions" => {
            let id = numeric(&c.id);
            Some((
                "subscriptions",
                id.to_string(),
                subscription(o, id, c.created, at),
            ))
        }
        "invoices" => {
            let status = match text(&o["status"]) {
                "open" => "open",
                "paid" => "paid",
                "void" => "voided",
                // Maxio has no `uncollectible`: dunning that gives up cancels the invoice.
                "uncollectible" => "canceled",
                _ => return None, // drafts: no event announces them at Maxio
            };
            let uid = uid("inv", &c.id);
            Some((
                "invoices",
                uid.clone(),
                invoice(o, &uid, status, c.created, at),
            ))
        }
        "credit_notes" => {
            let uid = uid("cn", &c.id);
            Some(("credit_notes", uid.clone(), credit_note(o, &uid, c.created)))
        }
        "charges" if c.event_type == "charge.succeeded" => {
            let id = numeric(&c.id);
            Some(("transactions", id.to_string(), payment(o, id, c.created)))
        }
        "refunds" => {
            let id = numeric(&c.id);
            Some(("transactions", id.to_string(), refund(o, id, c.created)))
        }
        // A refund is its own transaction; the payment it refunds does not change.
        _ => None,
    }
}

fn customer(o: &Value, id: i64, created: i64, at: i64) -> Value {
    let name = text(&o["name"]);
    let (first, last) = match name.split_once(' ') {
        Some((f, l)) => (json!(f), json!(l)),
        None => (json!(name), Value::Null),
    };
    let vat = o["tax_ids"]["data"][0]["value"].clone();
    let a = &o["address"];
    // The customer's own address fields are its shipping address (docs/providers/maxio.md,
    // "Addresses"): a warehouse here. The billing address is on its payment profile, a
    // separate resource (`/payment_profiles.json?customer_id=`), held here under
    // `payment_profiles` for the truth and never shown on a customer read. One customer in
    // five has no payment profile: its shipping address is all there is.
    let profiles = if id % 5 == 0 {
        json!([])
    } else {
        json!([{
            "id": id * 10 + 1, "customer_id": id, "payment_type": "credit_card",
            "first_name": first, "last_name": last, "card_type": "visa",
            "masked_card_number": "XXXX-XXXX-XXXX-4242", "expiration_month": 12, "expiration_year": 2030,
            "billing_address": a["line1"], "billing_address_2": a["line2"], "billing_city": a["city"],
            "billing_state": a["state"], "billing_zip": a["postal_code"], "billing_country": a["country"],
            "vault_token": format!("tok_{id}"), "current_vault": "bogus", "disabled": false,
        }])
    };
    json!({"customer": {
        "id": id, "first_name": first, "last_name": last, "email": o["email"], "cc_emails": null,
        "organization": null, "reference": null, "address": "1 Warehouse Way", "address_2": null,
        "city": "Rotterdam", "state": null, "zip": "3011 AA", "country": "NL",
        "payment_profiles": profiles,
        "phone": null, "verified": false, "portal_customer_created_at": null,
        "portal_invite_last_sent_at": null, "portal_invite_last_accepted_at": null,
        "tax_exempt": o["tax_exempt"] == "exempt", "vat_number": vat, "parent_id": null,
        "locale": null, "default_subscription_group_uid": null,
        "created_at": api_time(created), "updated_at": api_time(at),
    }})
}

fn subscription(o: &Value, id: i64, created: i64, at: i64) -> Value {
    let item = &o["items"]["data"][0];
    let currency = text(&o["currency"]).to_ascii_uppercase();
    let (product, price_point, unit) = if item.is_object() {
        let unit = int(&item["price"]["unit_amount"]) * int(&item["quantity"]).max(1);
        let product = numeric(text(&item["id"]));
        (
            json!({"id": product, "name": "Plan", "handle": format!("plan-{product}"),
                "price_in_cents": unit, "interval": 1, "interval_unit": "month"}),
            id_of(&item["price"]["id"]),
            unit,
        )
    } else {
        // Canceled without a catalog product (the generator drops the items).
        (Value::Null, Value::Null, 0)
    };
    let canceled = o["status"] == "canceled";
    let time = |k: &str| o[k].as_i64().map_or(Value::Null, api_time);
    json!({"subscription": {
        "id": id, "state": if canceled { "canceled" } else { "active" },
        "previous_state": "active",
        "balance_in_cents": 0, "total_revenue_in_cents": 0, "product_price_in_cents": unit,
        "product_version_number": 1, "currency": currency,
        "current_period_started_at": time("current_period_start"),
        "current_period_ends_at": time("current_period_end"),
        "next_assessment_at": time("current_period_end"),
        "trial_started_at": null, "trial_ended_at": null, "activated_at": api_time(created),
        "expires_at": null, "created_at": api_time(created), "updated_at": api_time(at),
        "cancellation_message": null, "cancellation_method": if canceled { json!("merchant_api") } else { Value::Null },
        "cancel_at_end_of_period": false, "canceled_at": time("canceled_at"),
        "delayed_cancel_at": null, "scheduled_cancellation_at": time("cancel_at"),
        "coupon_code": null, "payment_collection_method": "automatic", "snap_day": null,
        "reason_code": null, "customer": {"id": id_of(&o["customer"])},
        "product": product, "product_price_point_id": price_point,
        "product_price_point_type": if price_point.is_null() { Value::Null } else { json!("catalog") },
    }})
}

fn sum(list: &Value) -> i64 {
    list.as_array()
        .map_or(0, |a| a.iter().map(|x| int(&x["amount"])).sum())
}

fn invoice(o: &Value, uid: &str, status: &str, created: i64, at: i64) -> Value {
    let cur = text(&o["currency"]).to_ascii_uppercase();
    let d = |minor: i64| decimal(minor, &cur);
    let lines: Vec<Value> = o["lines"]["data"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    let amount = int(&l["amount"]);
                    let tax = sum(&l["taxes"]);
                    json!({
                        "uid": uid_from(&l["id"], "li"), "title": l["description"], "description": "",
                        "quantity": format!("{}.0", int(&l["quantity"]).max(1)),
                        "unit_price": d(amount), "subtotal_amount": d(amount),
                        "discount_amount": d(0), "tax_amount": d(tax), "total_amount": d(amount + tax),
                        "tiered_unit_price": false,
                        "period_range_start": api_date(int(&l["period"]["start"])),
                        "period_range_end": api_date(int(&l["period"]["end"])),
                        "product_id": null, "product_version": null, "component_id": null,
                        "price_point_id": null, "custom_item": false,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let (subtotal, discount, tax, total) = (
        int(&o["subtotal"]),
        sum(&o["total_discount_amounts"]),
        sum(&o["total_taxes"]),
        int(&o["total"]),
    );
    let paid = int(&o["amount_paid"]);
    let transitions = &o["status_transitions"];
    let issued = transitions["finalized_at"].as_i64().unwrap_or(created);
    let paid_date = transitions["paid_at"]
        .as_i64()
        .map_or(Value::Null, api_date);
    let mut invoice = json!({
        "uid": uid, "site_id": SITE_ID, "customer_id": id_of(&o["customer"]),
        "subscription_id": id_of(&o["subscription"]), "number": numeric(text(&o["id"])).to_string(),
        "sequence_number": numeric(text(&o["id"])) % 100_000_000,
        "transaction_time": api_time(issued), "created_at": api_time(created), "updated_at": api_time(at),
        "issue_date": api_date(issued), "due_date": api_date(issued), "paid_date": paid_date,
        "status": status, "role": if o["subscription"].is_string() { "signup" } else { "adhoc" },
        "collection_method": "automatic", "payment_instructions": "", "currency": cur,
        "consolidation_level": "none", "parent_invoice_uid": null, "parent_invoice_number": null,
        "group_primary_subscription_id": null, "product_name": "Plan", "product_family_name": "Plans",
        "seller": {"name": "Simulated Seller Inc."}, "customer": {"chargify_id": id_of(&o["customer"])},
        "memo": "", "billing_address": {}, "shipping_address": {},
    });
    let money = json!({
        "subtotal_amount": d(subtotal), "discount_amount": d(discount), "tax_amount": d(tax),
        "total_amount": d(total), "credit_amount": d(0), "refund_amount": d(0),
        "paid_amount": d(paid), "due_amount": d(total - paid),
        "line_items": lines, "discounts": [],
        "taxes": [{"uid": uid_from(&o["id"], "tax"), "title": "VAT", "source_type": "Tax",
            "percentage": "19.0", "taxable_amount": d(subtotal - discount), "tax_amount": d(tax)}],
        "credits": [], "refunds": [], "payments": [], "custom_fields": [],
        "public_url": format!("https://sim.chargifypay.com/invoice/{uid}"),
    });
    if let (Some(i), Value::Object(m)) = (invoice.as_object_mut(), money) {
        i.extend(m);
    }
    json!({ "invoice": invoice })
}

fn uid_from(id: &Value, prefix: &str) -> String {
    uid(prefix, text(id))
}

fn credit_note(o: &Value, uid: &str, created: i64) -> Value {
    let cur = text(&o["currency"]).to_ascii_uppercase();
    let d = |minor: i64| decimal(minor, &cur);
    let (subtotal, tax, total) = (
        int(&o["subtotal"]),
        sum(&o["total_taxes"]),
        int(&o["total"]),
    );
    let lines: Vec<Value> = o["lines"]["data"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    let amount = int(&l["amount"]);
                    let tax = sum(&l["taxes"]);
                    json!({"uid": uid_from(&l["id"], "cnli"), "title": l["description"], "description": "",
                        "quantity": format!("{}.0", int(&l["quantity"]).max(1)), "unit_price": d(amount),
                        "subtotal_amount": d(amount), "discount_amount": d(0), "tax_amount": d(tax),
                        "tax_included": false, "total_amount": d(amount + tax), "tiered_unit_price": false,
                        "period_range_start": null, "period_range_end": null, "product_id": null,
                        "product_version": null, "component_id": null, "price_point_id": null,
                        "billing_schedule_item_id": null, "custom_item": false})
                })
                .collect()
        })
        .unwrap_or_default();
    let origin = uid_from(&o["invoice"], "inv");
    json!({"credit_note": {
        "uid": uid, "site_id": SITE_ID, "customer_id": id_of(&o["customer"]), "subscription_id": null,
        "number": format!("CN-{}", numeric(text(&o["id"])) % 100_000_000),
        "sequence_number": numeric(text(&o["id"])) % 100_000_000,
        "issue_date": api_date(created), "applied_date": null, "status": "open", "currency": cur,
        "memo": o["reason"], "seller": {"name": "Simulated Seller Inc."},
        "customer": {"chargify_id": id_of(&o["customer"])}, "billing_address": {}, "shipping_address": {},
        "subtotal_amount": d(subtotal), "discount_amount": d(0), "tax_amount": d(tax),
        "total_amount": d(total), "applied_amount": d(0), "remaining_amount": d(total),
        "line_items": lines, "discounts": [], "taxes": [], "applications": [], "refunds": [],
        "origin_invoices": [{"uid": origin, "number": numeric(text(&o["invoice"])).to_string()}],
    }})
}

fn payment(o: &Value, id: i64, created: i64) -> Value {
    let amount = int(&o["amount"]);
    let invoice = o["invoice"]
        .as_str()
        .map_or(Value::Null, |i| json!(uid("inv", i)));
    json!({"transaction": {
        "id": id, "transaction_type": "payment", "type": "Payment", "kind": null,
        "amount_in_cents": amount, "success": o["status"] == "succeeded", "memo": "",
        "created_at": api_time(created), "starting_balance_in_cents": amount,
        "ending_balance_in_cents": 0, "gateway_used": "bogus",
        "gateway_transaction_id": format!("sim{id}"), "gateway_order_id": null, "payment_id": null,
        "product_id": null, "tax_id": null, "component_id": null, "statement_id": null,
        "customer_id": id_of(&o["customer"]), "subscription_id": null,
        "card_number": "XXXX-XXXX-XXXX-1", "card_expiration": "12/2030", "card_type": "bogus",
        "refunded_amount_in_cents": 0, "invoice_uid": invoice,
        "currency": text(&o["currency"]).to_ascii_uppercase(),
        "original_amount_in_cents": amount, "remaining_amount_in_cents": 0,
    }})
}

fn refund(o: &Value, id: i64, created: i64) -> Value {
    let amount = int(&o["amount"]);
    json!({"transaction": {
        "id": id, "transaction_type": "refund", "type": "Refund", "kind": null,
        "amount_in_cents": amount, "success": o["status"] == "succeeded", "memo": o["reason"],
        "created_at": api_time(created), "starting_balance_in_cents": 0,
        "ending_balance_in_cents": 0, "gateway_used": "bogus",
        "gateway_transaction_id": format!("sim{id}"), "gateway_order_id": null,
        "payment_id": id_of(&o["charge"]), "product_id": null, "tax_id": null, "component_id": null,
        "statement_id": null, "customer_id": null, "subscription_id": null,
        "refunded_amount_in_cents": 0, "invoice_uid": null,
        "currency": text(&o["currency"]).to_ascii_uppercase(),
    }})
}

/// Sets `updated_at` on a wrapped resource (an edit).
pub fn touch(object: &mut Value, at: i64) {
    if let Some(inner) = object
        .as_object_mut()
        .and_then(|m| m.values_mut().next())
        .and_then(Value::as_object_mut)
    {
        if inner.contains_key("updated_at") {
            inner.insert("updated_at".into(), api_time(at));
        }
    }
}

/// Flattens JSON into Rails form pairs: `a[b]=v`, arrays as `a[][k]=v` (Rack), nulls as empty
/// values, booleans as `true`/`false`, RFC 3339 times in Ruby's US Eastern form.
pub fn form_pairs(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                form_pairs(&format!("{prefix}[{k}]"), x, out);
            }
        }
        Value::Array(items) => {
            for x in items {
                form_pairs(&format!("{prefix}[]"), x, out);
            }
        }
        Value::Null => out.push((prefix.to_owned(), String::new())),
        Value::Bool(b) => out.push((prefix.to_owned(), b.to_string())),
        Value::Number(n) => out.push((prefix.to_owned(), n.to_string())),
        Value::String(s) => {
            let value = if s.len() > 19 && s.as_bytes().get(10) == Some(&b'T') {
                webhook_time(s).unwrap_or_else(|| s.clone())
            } else {
                s.clone()
            };
            out.push((prefix.to_owned(), value));
        }
    }
}

/// The unwrapped resource of a wrapped object.
/// A held object as Maxio shows it: without the payment profiles held with a customer
/// (a separate resource, served by `/payment_profiles.json`).
pub fn present(mut object: Value) -> Value {
    if let Some(customer) = object.get_mut("customer").and_then(Value::as_object_mut) {
        customer.remove("payment_profiles");
    }
    object
}

pub fn inner(object: &Value) -> Option<(&str, &Map<String, Value>)> {
    let (name, v) = object.as_object()?.iter().next()?;
    Some((name.as_str(), v.as_object()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_and_jpy_has_no_minor_unit() {
        assert_eq!(decimal(1099, "USD"), "10.99");
        assert_eq!(decimal(5, "EUR"), "0.05");
        assert_eq!(decimal(-250, "GBP"), "-2.50");
        assert_eq!(decimal(1000, "JPY"), "1000.0");
        assert_eq!(decimal(1234, "KWD"), "1.234");
    }

    #[test]
    fn times_are_eastern_with_daylight_saving() {
        // 2024-06-20 16:00 UTC is 12:00 EDT; 2024-01-15 17:00 UTC is 12:00 EST.
        assert_eq!(api_time(1_718_899_200), "2024-06-20T12:00:00-04:00");
        assert_eq!(api_time(1_705_338_000), "2024-01-15T12:00:00-05:00");
        assert_eq!(
            webhook_time("2024-06-20T12:00:00-04:00").as_deref(),
            Some("2024-06-20 12:00:00 -0400")
        );
        assert_eq!(
            parse_filter_time("2024-06-20 12:00:00", false),
            Some(1_718_899_200)
        );
        assert_eq!(
            parse_filter_time("2024-06-20T16:00:00Z", false),
            Some(1_718_899_200)
        );
        assert_eq!(
            parse_filter_time("2024-06-20", true),
            Some(1_718_899_200 + 12 * 3600 - 1)
        );
    }

    #[test]
    fn ids_are_numeric_unique_per_site_and_below_2_pow_53() {
        let a = numeric("cus_b00000000042");
        let b = numeric("cus_b10000000042");
        assert_ne!(a, b);
        assert_eq!(a % 100_000_000, 42);
        assert!(a < 1 << 53);
        assert_eq!(numeric("in_b00000000042"), a, "the counter is shared");
        assert!(uid("inv", "in_b00000000042").starts_with("inv_"));
        assert_eq!(uid("inv", "in_b00000000042").len(), 17);
    }
}
