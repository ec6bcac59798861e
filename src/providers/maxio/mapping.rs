//! Maxio resources to canonical objects (docs/providers/maxio.md): customers
//! (their billing address from `billing_address`), subscriptions, relationship invoices and
//! credit notes (decimal-string money, exact in minor units) and transactions (payments and
//! refunds), ordered by their own `updated_at`, and the rank of an API read within the lag of
//! its second.

use serde_json::Value;

use super::billing_address;
use crate::model::canonical::{
    CanonicalData, CreditNote, Customer, Invoice, InvoiceLine, Subscription, SubscriptionItem,
    TaxId, Transaction, TransactionKind,
};
use crate::model::money::major_to_minor;
use crate::model::time::{micros_to_rfc3339, parse_rfc3339, secs_to_rfc3339};
use crate::model::{ObjectType, Observation};
use crate::providers::minor_units::{id_text, Obj};
use crate::providers::{ParseError, Stream};

/// The lists a pull walks, in order, and the kind of canonical object each holds
/// (`ProviderInfo::streams`).
pub(super) const STREAMS: &[Stream] = &[
    Stream::windowed("customers", ObjectType::Customer),
    Stream::windowed("subscriptions", ObjectType::Subscription),
    Stream::windowed("invoices", ObjectType::Invoice),
    // Paged by number with no time filter: read whole.
    Stream::whole("credit_notes", ObjectType::CreditNote),
    Stream::windowed("transactions", ObjectType::Transaction),
];

const P: &str = "maxio";

/// A currency with no minor unit: exact integral parsing of decimal text.
const NO_MINOR_UNIT: &str = "JPY";

/// The resource names billsync maps, in the order a payload is searched by default.
pub(super) const RESOURCES: &[(&str, ObjectType)] = &[
    ("invoice", ObjectType::Invoice),
    ("credit_note", ObjectType::CreditNote),
    ("transaction", ObjectType::Transaction),
    ("subscription", ObjectType::Subscription),
    ("customer", ObjectType::Customer),
];

/// A resource's change time: `updated_at`, else `created_at` (RFC 3339 with offset; webhook
/// payloads are in US Eastern time, API answers in the site's zone — the offset says which).
pub(super) fn change_time(o: &Obj) -> Option<i64> {
    o.micros("updated_at").or_else(|| o.micros("created_at"))
}

pub(super) fn observe_resource(
    resource: &str,
    object: &Value,
    deleted_event: bool,
    fallback: i64,
    context: Option<&Value>,
) -> Result<Option<Observation>, ParseError> {
    let Some(&(_, object_type)) = RESOURCES.iter().find(|(r, _)| *r == resource) else {
        return Ok(None);
    };
    let o = Obj(object);
    // Relationship invoices and credit notes are named by `uid`; the rest by numeric `id`.
    let id = match object_type {
        ObjectType::Invoice | ObjectType::CreditNote => {
            id_text(o.get("uid")).or_else(|| id_text(o.get("id")))
        }
        _ => id_text(o.get("id")),
    }
    .ok_or_else(|| ParseError(format!("{resource} has no id")))?;
    let (data, rank): (CanonicalData, i64) = match object_type {
        ObjectType::Customer => (customer(&o).into(), 0),
        ObjectType::Subscription => subscription(&o).map(|(d, r)| (d.into(), r))?,
        ObjectType::Invoice => invoice(&o).map(|(d, r)| (d.into(), r))?,
        ObjectType::Transaction => match transaction(&o, context)? {
            Some((d, r)) => (d.into(), r),
            None => return Ok(None),
        },
        ObjectType::CreditNote => credit_note(&o).map(|(d, r)| (d.into(), r))?,
    };
    let data = data.to_value();
    let time = change_time(&o).unwrap_or(fallback);
    Ok(Some(Observation {
        object_type,
        provider_id: id,
        data,
        deleted: deleted_event,
        order_key: time,
        // Doubled, so an API read can rank just below its lifecycle stage (`api_rank`).
        tie_rank: if deleted_event { i64::MAX } else { rank * 2 },
        provider_updated_at: time,
        carried: &[],
    }))
}

fn customer(o: &Obj) -> Customer {
    let name = o.full_name("organization");
    let exempt =
        matches!(o.get("tax_exempt"), Some(Value::Bool(true))) || o.s("tax_exempt") == Some("true");
    Customer {
        email: o.str("email"),
        name,
        address: Some(billing_address::address(o)),
        tax_ids: o.s("vat_number").map(TaxId::vat).into_iter().collect(),
        tax_exempt: if exempt { "exempt" } else { "none" }.to_owned(),
        status: None,
    }
}

fn subscription(o: &Obj) -> Result<(Subscription, i64), ParseError> {
    let status = o.s("state").unwrap_or("active");
    let rank = match status {
        "pending" | "awaiting_signup" | "assessing" => 0,
        "trialing" | "trial_ended" => 1,
        "active" => 2,
        "past_due" | "soft_failure" => 3,
        "unpaid" | "on_hold" | "paused" | "suspended" => 4,
        _ => 5, // canceled, expired, failed_to_create: final
    };
    let product = o.obj("product");
    let price_id = if o.get("product_price_point_id").is_some() {
        o.reference(P, "product_price_point_id")
    } else {
        product.and_then(|p| p.reference(P, "id"))
    };
    let items = product.map_or_else(Vec::new, |p| {
        vec![SubscriptionItem {
            id: id_text(p.get("id")),
            price_id,
            quantity: Some(1),
        }]
    });
    let customer_id = match o.obj("customer") {
        Some(c) => c.reference(P, "id"),
        None => o.reference(P, "customer_id"),
    };
    let cancel_at = o
        .rfc3339("scheduled_cancellation_at")
        .or_else(|| o.rfc3339("delayed_cancel_at"));
    Ok((
        Subscription {
            customer_id,
            status: status.to_owned(),
            currency: o.currency("currency")?,
            current_period_start: o.rfc3339("current_period_started_at"),
            current_period_end: o.rfc3339("current_period_ends_at"),
            cancel_at,
            canceled_at: o.rfc3339("canceled_at"),
            items,
        },
        rank,
    ))
}

/// A decimal-string amount in major units of `currency` as minor units; absent is 0.
fn major(o: &Obj, key: &str, currency: &str) -> Result<i64, ParseError> {
    match o.get(key) {
        None => Ok(0),
        Some(v) => crate::model::money::json_major_to_minor(v, currency)
            .map_err(|e| ParseError(format!("`{key}`: {e}"))),
    }
}

/// A date (`2024-01-15`) or RFC 3339 time as canonical UTC text.
fn date_or_time(o: &Obj, key: &str) -> Option<String> {
    let text = o.s(key)?;
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .and_then(|t| secs_to_rfc3339(t.and_utc().timestamp()));
    }
    parse_rfc3339(text).and_then(micros_to_rfc3339)
}

/// Invoice and credit-note line items (decimal-string money, decimal quantities).
fn lines(o: &Obj, currency: &str) -> Result<Vec<InvoiceLine>, ParseError> {
    o.list("line_items")
        .iter()
        .map(|l| {
            // Quantities are decimal strings ("1.0"): an integral one becomes an integer
            // (a currency with no minor unit reads "2.0" as exactly 2 and refuses "2.5").
            let quantity = l
                .s("quantity")
                .and_then(|q| major_to_minor(q, NO_MINOR_UNIT).ok());
            Ok(InvoiceLine {
                id: l.str("uid"),
                description: l.str("title").or_else(|| l.str("description")),
                quantity,
                amount: major(l, "subtotal_amount", currency)?,
                tax: major(l, "tax_amount", currency)?,
                period_start: Some(date_or_time(l, "period_range_start")),
                period_end: Some(date_or_time(l, "period_range_end")),
            })
        })
        .collect()
}

/// A credit note (`/credit_notes.json`, `create_credit_note` invoice events): decimal-string
/// money like relationship invoices. `open` (credit left to apply) and `applied` are both in
/// force (`issued`); the memo is the reason; the first origin invoice is the invoice.
fn credit_note(o: &Obj) -> Result<(CreditNote, i64), ParseError> {
    let currency = o
        .currency("currency")?
        .ok_or_else(|| ParseError("credit note has no `currency`".into()))?;
    let (status, rank) = match o.s("status").unwrap_or("open") {
        "open" => ("issued", 0),
        "applied" => ("issued", 1),
        "voided" => ("void", 2),
        other => return Err(ParseError(format!("unknown credit note status `{other}`"))),
    };
    let invoice_id = o
        .list("origin_invoices")
        .first()
        .and_then(|i| i.reference(P, "uid"));
    Ok((
        CreditNote {
            invoice_id,
            customer_id: o.reference(P, "customer_id"),
            status: status.to_owned(),
            subtotal: major(o, "subtotal_amount", &currency)?,
            tax: major(o, "tax_amount", &currency)?,
            total: major(o, "total_amount", &currency)?,
            issued_at: date_or_time(o, "issue_date"),
            reason: o.str("memo"),
            lines: lines(o, &currency)?,
            currency: Some(currency),
        },
        rank,
    ))
}

fn invoice(o: &Obj) -> Result<(Invoice, i64), ParseError> {
    let currency = o
        .currency("currency")?
        .ok_or_else(|| ParseError("invoice has no `currency`".into()))?;
    let (status, rank) = match o.s("status").unwrap_or("draft") {
        "draft" | "pending" => ("draft", 0),
        "open" | "processing" => ("open", 1),
        "paid" => ("paid", 2),
        "voided" | "canceled" => ("void", 3),
        other => return Err(ParseError(format!("unknown invoice status `{other}`"))),
    };
    let lines = lines(o, &currency)?;
    let customer_id = match o.get("customer_id") {
        Some(_) => o.reference(P, "customer_id"),
        None => o.obj("customer").and_then(|c| c.reference(P, "id")),
    };
    let items = o.list("line_items");
    let bound = |key: &str| items.first().and_then(|l| date_or_time(l, key));
    Ok((
        Invoice {
            customer_id,
            subscription_id: o.reference(P, "subscription_id"),
            status: status.to_owned(),
            subtotal: major(o, "subtotal_amount", &currency)?,
            discount: major(o, "discount_amount", &currency)?,
            tax: major(o, "tax_amount", &currency)?,
            total: major(o, "total_amount", &currency)?,
            amount_paid: major(o, "paid_amount", &currency)?,
            amount_due: major(o, "due_amount", &currency)?,
            issued_at: date_or_time(o, "issue_date"),
            period_start: bound("period_range_start"),
            period_end: bound("period_range_end"),
            lines,
            currency: Some(currency),
        },
        rank,
    ))
}

/// Payments and refunds move money; other transaction types (line charges, credits,
/// adjustments, info) are ledger entries billsync does not map. The currency comes from the
/// transaction, else from the webhook's subscription (Maxio transactions often carry none).
fn transaction(o: &Obj, context: Option<&Value>) -> Result<Option<(Transaction, i64)>, ParseError> {
    let kind = match o.s("transaction_type").or_else(|| o.s("type")) {
        Some("payment") => TransactionKind::Charge,
        Some("refund") => TransactionKind::Refund,
        _ => return Ok(None),
    };
    let currency = match o.currency("currency")? {
        None => context
            .and_then(|p| p.get("subscription"))
            .map(Obj)
            .map_or(Ok(None), |s| s.currency("currency"))?,
        c => c,
    };
    let success = match o.get("success") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => Some(s == "true"),
        _ => None,
    };
    let status = match success {
        Some(true) => "succeeded",
        Some(false) => "failed",
        None => "pending",
    };
    let invoice_id = match o.s("invoice_uid") {
        Some(_) => o.reference(P, "invoice_uid"),
        None => None,
    };
    Ok(Some((
        Transaction {
            kind,
            customer_id: o.reference(P, "customer_id"),
            invoice_id,
            currency,
            amount: o.minor("amount_in_cents")?,
            status: Some(status.to_owned()),
            occurred_at: o.rfc3339("created_at"),
            amount_refunded: None,
            charge_id: None,
        },
        i64::from(success.is_some()),
    )))
}

/// An API read's rank. `updated_at` is to the second, so a read within the lag allowance of
/// its object's last second may not show a later change of that same second: it ranks just
/// below the stored state of equal time and stage, and is asked again; once the allowance has
/// passed, an unequal read of equal time wins (the API decides).
pub(super) fn api_rank(mut o: Observation, read_at: i64, lag: i64) -> Observation {
    let second_done = o.order_key.div_euclid(1_000_000).saturating_add(1) * 1_000_000;
    if o.tie_rank != i64::MAX && read_at.saturating_sub(lag) < second_done {
        o.tie_rank -= 1;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::INFO;
    use super::*;
    use crate::providers::field_checks::assert_observed;
    use crate::providers::Provider;
    use serde_json::json;

    #[test]
    fn relationship_invoice_decimal_strings_become_minor_units() {
        let inv = json!({"invoices": [{"uid": "inv_b8j7zk5bsb9qc", "number": "112",
            "customer_id": 14714298, "subscription_id": 15236915, "status": "paid",
            "currency": "USD", "issue_date": "2024-06-20", "subtotal_amount": "10.00",
            "discount_amount": "0.0", "tax_amount": "0.99", "total_amount": "10.99",
            "paid_amount": "10.99", "due_amount": "0.0",
            "updated_at": "2024-06-20T12:00:05-04:00",
            "line_items": [{"uid": "li_b8j7zk5bsb9qd", "title": "Pro Plan", "quantity": "1.0",
                "subtotal_amount": "10.00", "tax_amount": "0.99",
                "period_range_start": "2024-06-20", "period_range_end": "2024-07-20"}]}]});
        let mut inv = inv;
        // Relationship invoices embed their customer (`InvoiceCustomer`): not a wrapper.
        inv["invoices"][0]["customer"] = json!({"chargify_id": 14714298, "first_name": "Ada"});
        let page = INFO.parse_list(inv.to_string().as_bytes()).unwrap();
        assert_eq!(page.objects.len(), 1);
        let one = INFO
            .parse_object(inv["invoices"][0].to_string().as_bytes())
            .unwrap();
        assert!(
            one.get("invoice").is_some(),
            "a read answers the invoice unwrapped"
        );
        assert_eq!(page.next_cursor.as_deref(), Some("t:1718899206"));
        let obs = INFO.observe_object(&page.objects[0], 0).unwrap().unwrap();
        assert_observed(
            &obs,
            ObjectType::Invoice,
            "inv_b8j7zk5bsb9qc",
            json!({"total": 1099, "tax": 99, "subtotal": 1000, "amount_due": 0,
                "customer_id": "maxio:14714298", "subscription_id": "maxio:15236915",
                "issued_at": "2024-06-20T00:00:00Z", "/lines/0/quantity": 1,
                "/lines/0/period_end": "2024-07-20T00:00:00Z"}),
        );
        assert_eq!(
            obs.order_key,
            parse_rfc3339("2024-06-20T16:00:05Z").unwrap()
        );
        let mut bad = inv["invoices"][0].clone();
        bad["total_amount"] = json!("10.999");
        assert!(INFO.observe_object(&json!({"invoice": bad}), 0).is_err());
    }

    #[test]
    fn credit_notes_map_decimal_strings_exactly_including_jpy() {
        let cn = json!({"credit_notes": [{"uid": "cn_8c8b5b8k4ccq", "site_id": 8401,
            "customer_id": 14714298, "subscription_id": null, "number": "77",
            "sequence_number": 77, "issue_date": "2024-06-21", "applied_date": null,
            "status": "open", "currency": "eur", "memo": "product_unsatisfactory",
            "subtotal_amount": "10.00", "discount_amount": "0.0", "tax_amount": "1.90",
            "total_amount": "11.90", "applied_amount": "0.0", "remaining_amount": "11.90",
            "line_items": [{"uid": "cnli_1", "title": "Goodwill", "quantity": "1.0",
                "subtotal_amount": "10.00", "tax_amount": "1.90"}],
            "origin_invoices": [{"uid": "inv_b8j7zk5bsb9qc", "number": "112"}]}]});
        let page = INFO.parse_list(cn.to_string().as_bytes()).unwrap();
        assert_eq!(page.next_cursor, None, "credit notes: one page per pull");
        let obs = INFO.observe_object(&page.objects[0], 0).unwrap().unwrap();
        assert_observed(
            &obs,
            ObjectType::CreditNote,
            "cn_8c8b5b8k4ccq",
            json!({"currency": "EUR", "subtotal": 1000, "tax": 190, "total": 1190,
                "status": "issued", "invoice_id": "maxio:inv_b8j7zk5bsb9qc",
                "customer_id": "maxio:14714298", "issued_at": "2024-06-21T00:00:00Z",
                "reason": "product_unsatisfactory", "/lines/0/amount": 1000,
                "/lines/0/quantity": 1}),
        );
        // A retrieve answers the credit note unwrapped; its `cn_` uid says what it is.
        let one = INFO
            .parse_object(cn["credit_notes"][0].to_string().as_bytes())
            .unwrap();
        assert!(one.get("credit_note").is_some());
        // JPY has no minor unit: "1000.0" is 1000 yen, and "0.5" yen is refused, never rounded.
        let mut yen = cn["credit_notes"][0].clone();
        yen["currency"] = json!("JPY");
        yen["subtotal_amount"] = json!("1000.0");
        yen["tax_amount"] = json!("190");
        yen["total_amount"] = json!("1190");
        yen["line_items"] = json!([]);
        let obs = INFO
            .observe_object(&json!({"credit_note": yen}), 0)
            .unwrap()
            .unwrap();
        assert_eq!(obs.data["subtotal"], 1000);
        assert_eq!(obs.data["total"], 1190);
        yen["tax_amount"] = json!("0.5");
        assert!(INFO
            .observe_object(&json!({"credit_note": yen}), 0)
            .is_err());
    }

    #[test]
    fn api_read_within_the_lag_of_its_second_ranks_below_an_equal_time_change() {
        let customer = json!({"customer": {"id": 9, "email": "a@b.c", "updated_at": "2024-06-20T12:00:00-04:00"}});
        let t = parse_rfc3339("2024-06-20T16:00:00Z").unwrap();
        let lag = INFO.api_lag_allowance().as_micros() as i64;
        let fresh = INFO
            .observe_object(&customer, t + 2_000_000)
            .unwrap()
            .unwrap();
        let later = INFO
            .observe_object(&customer, t + lag + 2_000_000)
            .unwrap()
            .unwrap();
        // A change of that second (customer webhooks are read whole: see below).
        let webhook = observe_resource("customer", &customer["customer"], false, 0, None)
            .unwrap()
            .unwrap();
        assert_eq!(webhook.order_key, fresh.order_key);
        assert!(
            fresh.tie_rank < webhook.tie_rank,
            "a recent read may predate a change of its second"
        );
        assert_eq!(
            later.tie_rank, webhook.tie_rank,
            "after the allowance the API decides"
        );
    }
}
