//! Maps Recurly v3 (`v2021-02-25`) API objects — accounts, invoices, subscriptions and
//! transactions — to canonical objects. The pair actor gets here through `observe_object`
//! (API reads, pages, confirmations) and through swept objects. Every rule here is one of
//! `docs/providers/recurly.md` (sections named below); reviewers check the two against each other.
//!
//! Why this file passes 600 lines: about 330 are the mapping, the rest its tests, kept beside
//! the rules they pin.
//!
//! Provider ids (the part after `recurly:`) are each object's API `id`, for every kind, as
//! the API promises (docs/api.md) and as Recurly's own references name objects (`account.id`,
//! `subscription_ids`, `previous_invoice_id`, `invoice.id`). Thin webhooks carry handles
//! instead; `super::Recurly::thin_reference` reads the object by its handle and the answer
//! is mapped here by its `id` (docs page, "Ids and handles"):
//!
//! | canonical | Recurly object | provider id | webhook handle, read as |
//! |---|---|---|---|
//! | `customer` | account | `id` | `account_code` → `/accounts/code-{code}` |
//! | `invoice` | invoice with `type` `charge` (or `legacy`) | `id` | `invoice_number` → `/invoices/number-{n}` |
//! | `credit_note` | invoice with `type` `credit` | `id` | `invoice_number` → `/invoices/number-{n}` |
//! | `subscription` | subscription | `id` | `uuid` → `/subscriptions/uuid-{uuid}` |
//! | `transaction` | transaction | `id` | `uuid` → `/transactions/uuid-{uuid}` |
//!
//! Invoice `state` → canonical `status` (Recurly has no drafts; `pending` is "not yet
//! collected"):
//!
//! | Recurly state | charge invoice | credit invoice |
//! |---|---|---|
//! | `pending`, `processing`, `past_due`, `open` | `open` | `issued` |
//! | `paid`, `closed` | `paid` | `issued` |
//! | `failed` | `uncollectible` | `issued` |
//! | `voided` | `void` | `void` |
//!
//! What is owed is the invoice's `balance` (docs page, "Owed amount"); a credit invoice names
//! the invoice it credits by `previous_invoice_id`; credit invoice amounts are stored as
//! positive magnitudes, as credit notes are elsewhere. A customer's VAT numbers and address
//! come from `billing_info` first, then the account (docs page, "Tax IDs and addresses").

use serde_json::Value;

use crate::model::canonical::{
    Address, CanonicalData, CreditNote, Customer, Invoice, InvoiceLine, Subscription,
    SubscriptionItem, TaxId, Transaction, TransactionKind,
};
use crate::model::{ObjectType, Observation};
use crate::providers::major_units::{id_text, reference, span, Fields};
use crate::providers::ParseError;

/// Lifecycle rank of a deletion: nothing at the same provider time comes after it.
pub const DELETED_RANK: i64 = i64::MAX;

fn r(id: Option<String>) -> Option<String> {
    reference("recurly", id)
}

/// Which canonical object a Recurly API object is (by its `object` field), with its provider id.
pub fn identify(object: &Value) -> Result<Option<(ObjectType, String)>, ParseError> {
    let o = Fields(object);
    let object_type = match o.s("object") {
        Some("account") => ObjectType::Customer,
        Some("invoice") if o.s("type") == Some("credit") => ObjectType::CreditNote,
        Some("invoice") => ObjectType::Invoice,
        Some("subscription") => ObjectType::Subscription,
        Some("transaction") if o.s("type") == Some("verify") => return Ok(None),
        Some("transaction") => ObjectType::Transaction,
        _ => return Ok(None),
    };
    // Docs page, "Ids and handles": the API `id`, never `code`, `number` or `uuid`.
    let id = o
        .id("id")
        .ok_or_else(|| ParseError(format!("Recurly {} has no `id`", object_type.as_str())))?;
    Ok(Some((object_type, id)))
}

/// Maps one API object. `fallback_time` (microseconds) orders it when it has no `updated_at`.
pub fn observe(object: &Value, fallback_time: i64) -> Result<Option<Observation>, ParseError> {
    let Some((object_type, provider_id)) = identify(object)? else {
        return Ok(None);
    };
    let o = Fields(object);
    let (data, rank, deleted) = match object_type {
        ObjectType::Customer => account(&o),
        ObjectType::Invoice => invoice(&o)?,
        ObjectType::CreditNote => credit_invoice(&o)?,
        ObjectType::Subscription => subscription(&o)?,
        ObjectType::Transaction => transaction(&o)?,
    };
    let data = data.to_value();
    let updated = o.micros(&["updated_at"]).unwrap_or(fallback_time);
    Ok(Some(Observation {
        object_type,
        provider_id,
        data,
        deleted,
        order_key: updated,
        tie_rank: if deleted { DELETED_RANK } else { rank },
        provider_updated_at: updated,
        carried: &[],
    }))
}

/// The account an object belongs to, by the `id` of its embedded account mini.
fn account_ref(o: &Fields) -> Option<String> {
    r(o.obj("account").and_then(|a| a.id("id")))
}

/// An `Address` with at least one place field; Recurly answers an all-null address object for
/// an account that has none.
fn address(a: Option<Fields>) -> Option<Address> {
    let a = a?;
    const PLACE: [&str; 6] = [
        "street1",
        "street2",
        "city",
        "region",
        "postal_code",
        "country",
    ];
    PLACE.iter().any(|k| a.s(k).is_some()).then(|| Address {
        line1: a.str("street1"),
        city: a.str("city"),
        state: a.str("region"),
        postal_code: a.str("postal_code"),
        country: a.str("country"),
    })
}

/// Docs page, "Tax IDs and addresses": the VAT numbers of `billing_info` (automatically
/// collected invoices) and of the account (manually collected ones), in that order, once
/// each; the address of `billing_info` (Recurly's default taxable address), else the
/// account's.
fn account(o: &Fields) -> (CanonicalData, i64, bool) {
    let billing = o.obj("billing_info");
    let address =
        address(billing.and_then(|b| b.obj("address"))).or_else(|| address(o.obj("address")));
    let name = match (o.s("first_name"), o.s("last_name")) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(n), None) | (None, Some(n)) => Some(n.to_owned()),
        (None, None) => o.str("company"),
    };
    let mut vat_numbers: Vec<&str> = Vec::with_capacity(2);
    for v in [billing.and_then(|b| b.s("vat_number")), o.s("vat_number")]
        .into_iter()
        .flatten()
    {
        if !vat_numbers.contains(&v) {
            vat_numbers.push(v);
        }
    }
    let tax_ids = vat_numbers.into_iter().map(TaxId::vat).collect();
    let exempt = o.get("tax_exempt").and_then(Value::as_bool) == Some(true);
    // Closing ("deactivating") an account sets `deleted_at`; it can be reactivated later,
    // which clears it and is a later `updated_at`.
    let deleted = o.get("deleted_at").is_some();
    let data = Customer {
        email: o.str("email"),
        name,
        address,
        tax_ids,
        tax_exempt: if exempt { "exempt" } else { "none" }.to_owned(),
        status: None,
    };
    (data.into(), 0, deleted)
}

/// The first id of a list of ids (`subscription_ids`).
fn first_id(o: &Fields, key: &str) -> Option<String> {
    o.get(key)
        .and_then(Value::as_array)
        .and_then(|ids| ids.iter().find_map(|v| id_text(Some(v))))
}

fn required_currency(o: &Fields, what: &str) -> Result<String, ParseError> {
    o.currency("currency")?
        .ok_or_else(|| ParseError(format!("Recurly {what} has no `currency`")))
}

/// Line items; `amount` is the line's `subtotal` (quantity × unit amount, before discount and
/// tax), falling back to `amount`. `sign` turns credit amounts into magnitudes. `line_items`
/// is whole here: an invoice with `has_more_line_items` was completed from
/// `/invoices/{id}/line_items` before it was mapped (docs page, "Line items").
type Lines = (Vec<InvoiceLine>, Option<String>, Option<String>);

fn lines(o: &Fields, currency: &str, sign: i64) -> Result<Lines, ParseError> {
    let items = o.list("line_items");
    let lines = items
        .iter()
        .map(|l| {
            let amount = if l.get("subtotal").is_some() {
                l.money("subtotal", currency)?
            } else {
                l.money("amount", currency)?
            };
            Ok(InvoiceLine {
                id: l.str("id"),
                description: l.str("description"),
                quantity: l.count("quantity"),
                amount: amount.saturating_mul(sign),
                tax: l.money("tax", currency)?.saturating_mul(sign),
                period_start: Some(l.time(&["start_date"])),
                period_end: Some(l.time(&["end_date"])),
            })
        })
        .collect::<Result<Vec<_>, ParseError>>()?;
    let (start, end) = span(&items, &["start_date"], &["end_date"]);
    Ok((lines, start, end))
}

fn invoice(o: &Fields) -> Result<(CanonicalData, i64, bool), ParseError> {
    let currency = required_currency(o, "invoice")?;
    let (status, rank) = match o.s("state").unwrap_or("pending") {
        "paid" | "closed" => ("paid", 3),
        "voided" => ("void", 3),
        "failed" => ("uncollectible", 2),
        _ => ("open", 1),
    };
    let (lines, period_start, period_end) = lines(o, &currency, 1)?;
    let data = Invoice {
        customer_id: account_ref(o),
        // Docs page, "Invoice and credit note references": subscriptions by their `id`.
        subscription_id: r(first_id(o, "subscription_ids")),
        status: status.to_owned(),
        subtotal: o.money("subtotal", &currency)?,
        discount: o.money("discount", &currency)?,
        tax: o.money("tax", &currency)?,
        total: o.money("total", &currency)?,
        amount_paid: o.money("paid", &currency)?,
        // Docs page, "Owed amount": `balance`, 0 once paid or voided; never the total.
        amount_due: o.money("balance", &currency)?,
        issued_at: o.time(&["created_at"]),
        period_start,
        period_end,
        lines,
        currency: Some(currency),
    };
    Ok((data.into(), rank, false))
}

fn credit_invoice(o: &Fields) -> Result<(CanonicalData, i64, bool), ParseError> {
    let currency = required_currency(o, "credit invoice")?;
    let voided = o.s("state") == Some("voided");
    // Recurly writes credit invoice amounts as negative numbers.
    let sign = if o.money("total", &currency)? < 0 {
        -1
    } else {
        1
    };
    let (lines, _, _) = lines(o, &currency, sign)?;
    let data = CreditNote {
        // Docs page, "Invoice and credit note references": the charge invoice refunded.
        invoice_id: r(o.id("previous_invoice_id")),
        customer_id: account_ref(o),
        status: if voided { "void" } else { "issued" }.to_owned(),
        subtotal: o.money("subtotal", &currency)?.saturating_mul(sign),
        tax: o.money("tax", &currency)?.saturating_mul(sign),
        total: o.money("total", &currency)?.saturating_mul(sign),
        issued_at: o.time(&["created_at"]),
        reason: o.str("origin"),
        lines,
        currency: Some(currency),
    };
    Ok((data.into(), i64::from(voided), false))
}

/// Subscription `state` → canonical `status` and rank: `future` → `incomplete`, `active`,
/// `paused`, `canceled` (still running until `expires_at`, which becomes `cancel_at`),
/// `expired`/`failed` → `ended`.
fn subscription(o: &Fields) -> Result<(CanonicalData, i64, bool), ParseError> {
    let (status, rank) = match o.s("state").unwrap_or("active") {
        "future" => ("incomplete", 0),
        "paused" => ("paused", 2),
        "canceled" => ("canceled", 3),
        "expired" | "failed" => ("ended", 4),
        _ => ("active", 1),
    };
    let currency = o.currency("currency")?;
    let mut items = vec![SubscriptionItem {
        id: o.str("id"),
        price_id: o.obj("plan").and_then(|p| p.str("code")),
        quantity: o.count("quantity"),
    }];
    items.extend(o.list("add_ons").iter().map(|a| SubscriptionItem {
        id: a.str("id"),
        price_id: a.obj("add_on").and_then(|x| x.str("code")),
        quantity: a.count("quantity"),
    }));
    let cancel_at = if o.get("canceled_at").is_some() {
        o.time(&["expires_at"])
    } else {
        None
    };
    let data = Subscription {
        customer_id: account_ref(o),
        status: status.to_owned(),
        currency,
        current_period_start: o.time(&["current_period_started_at"]),
        current_period_end: o.time(&["current_period_ends_at"]),
        cancel_at,
        canceled_at: o.time(&["canceled_at"]),
        items,
    };
    Ok((data.into(), rank, false))
}

/// Transactions: `type` `refund` → `refund`, others (`purchase`, `capture`, `authorization`)
/// → `charge`; `verify` (card checks) is not mapped. `status` is Recurly's
/// (`pending`, `processing`, `scheduled`, `success`, `declined`, `error`, `void`, `chargeback`).
fn transaction(o: &Fields) -> Result<(CanonicalData, i64, bool), ParseError> {
    let currency = required_currency(o, "transaction")?;
    let status = o.s("status").unwrap_or("pending");
    let rank = match status {
        "pending" | "scheduled" => 0,
        "processing" => 1,
        "void" | "chargeback" => 3,
        _ => 2,
    };
    let kind = if o.s("type") == Some("refund") {
        TransactionKind::Refund
    } else {
        TransactionKind::Charge
    };
    let data = Transaction {
        kind,
        customer_id: account_ref(o),
        invoice_id: r(o.obj("invoice").and_then(|i| i.id("id"))),
        amount: o.money("amount", &currency)?,
        status: Some(status.to_owned()),
        occurred_at: o.time(&["collected_at", "created_at"]),
        currency: Some(currency),
        amount_refunded: None,
        charge_id: None,
    };
    Ok((data.into(), rank, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::field_checks::{assert_fields, assert_observed};
    use serde_json::json;

    fn account_json() -> Value {
        json!({
            "id": "o1xyzabc", "object": "account", "code": "acct-42", "state": "active",
            "email": "verena@example.com", "first_name": "Verena", "last_name": "Example",
            "company": "Example GmbH", "vat_number": "DE123456789", "tax_exempt": false,
            "address": {"street1": "1 Main St", "city": "Berlin", "region": "BE",
                        "postal_code": "10115", "country": "DE"},
            "created_at": "2026-10-01T09:00:00Z", "updated_at": "2026-11-01T10:00:00.123456Z"
        })
    }

    #[test]
    fn account_maps_to_customer_keyed_by_api_id() {
        let obs = observe(&account_json(), 0).unwrap().unwrap();
        // The API `id`, not the code.
        assert_observed(
            &obs,
            ObjectType::Customer,
            "o1xyzabc",
            json!({"name": "Verena Example", "/address/state": "BE",
                "/address/line1": "1 Main St", "tax_exempt": "none",
                "tax_ids": [{"type": "vat", "value": "DE123456789"}]}),
        );
        assert_eq!(obs.order_key, 1_793_527_200_123_456);
        assert_eq!(obs.provider_updated_at, obs.order_key);
        assert!(!obs.deleted);
    }

    #[test]
    fn closed_account_is_deleted_and_outranks_everything() {
        let mut a = account_json();
        a["state"] = json!("inactive");
        a["deleted_at"] = json!("2026-11-01T10:00:00Z");
        let obs = observe(&a, 0).unwrap().unwrap();
        assert!(obs.deleted);
        assert_eq!(obs.tie_rank, DELETED_RANK);
    }

    fn charge_invoice() -> Value {
        json!({
            "id": "rxinv1", "object": "invoice", "type": "charge", "number": "1042",
            "state": "paid", "origin": "purchase", "currency": "usd",
            "account": {"id": "o1xyzabc", "object": "account", "code": "acct-42"},
            "subscription_ids": ["sub1"],
            "subtotal": 10.99, "discount": 1.0, "tax": 0.8, "total": 10.79, "paid": 10.79,
            "balance": 0.0,
            "line_items": [{"id": "li1", "object": "line_item", "type": "charge",
                "description": "Gold plan", "quantity": 1, "unit_amount": 10.99,
                "subtotal": 10.99, "discount": 1.0, "tax": 0.8, "amount": 10.79,
                "start_date": "2026-11-01T00:00:00Z", "end_date": "2026-12-01T00:00:00Z"}],
            "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:05:00Z"
        })
    }

    #[test]
    fn charge_invoice_maps_decimal_major_units_to_minor() {
        let obs = observe(&charge_invoice(), 0).unwrap().unwrap();
        // The API `id`, not the number.
        assert_observed(
            &obs,
            ObjectType::Invoice,
            "rxinv1",
            json!({"currency": "USD", "customer_id": "recurly:o1xyzabc",
                "subscription_id": "recurly:sub1", "status": "paid", "subtotal": 1099,
                "discount": 100, "tax": 80, "total": 1079, "amount_paid": 1079,
                "issued_at": "2026-11-01T10:00:00Z", "period_start": "2026-11-01T00:00:00Z",
                "period_end": "2026-12-01T00:00:00Z", "/lines/0/amount": 1099,
                "/lines/0/quantity": 1}),
        );
        assert_eq!(obs.tie_rank, 3);
    }

    #[test]
    fn jpy_invoice_has_no_minor_digits() {
        let mut inv = charge_invoice();
        inv["currency"] = json!("JPY");
        inv["subtotal"] = json!(1200);
        inv["total"] = json!(1200);
        inv["discount"] = json!(0);
        inv["tax"] = json!(0);
        inv["paid"] = json!(0);
        inv["line_items"] = json!([]);
        inv["state"] = json!("past_due");
        let obs = observe(&inv, 0).unwrap().unwrap();
        assert_eq!(obs.data["total"], 1200);
        assert_eq!(obs.data["status"], "open");
        assert_eq!(obs.tie_rank, 1);
    }

    #[test]
    fn over_precise_amount_is_a_parse_error_not_rounding() {
        let mut inv = charge_invoice();
        inv["total"] = json!(10.999);
        assert!(observe(&inv, 0).is_err());
        let mut inv = charge_invoice();
        inv["currency"] = json!("US");
        assert!(observe(&inv, 0).is_err());
    }

    #[test]
    fn credit_invoice_maps_to_credit_note_with_positive_amounts() {
        let mut inv = charge_invoice();
        inv["type"] = json!("credit");
        inv["number"] = json!(1043);
        inv["state"] = json!("closed");
        inv["origin"] = json!("refund");
        for k in ["subtotal", "total"] {
            inv[k] = json!(-5.5);
        }
        inv["tax"] = json!(-0.5);
        inv["line_items"] = json!([{"id": "li2", "subtotal": -5.5, "tax": -0.5}]);
        let obs = observe(&inv, 0).unwrap().unwrap();
        // No previous invoice named: no invoice.
        assert_observed(
            &obs,
            ObjectType::CreditNote,
            "rxinv1",
            json!({"invoice_id": null, "total": 550, "tax": 50, "status": "issued",
                "reason": "refund", "/lines/0/amount": 550}),
        );
    }

    #[test]
    fn subscription_maps_plan_and_add_ons_keyed_by_api_id() {
        let sub = json!({
            "id": "sub1", "uuid": "63ab531e1d5b1d47eaf1ef44eeb853c3", "object": "subscription",
            "state": "canceled", "currency": "EUR", "quantity": 2,
            "account": {"id": "o1xyzabc", "code": "acct-42"}, "plan": {"id": "p1", "code": "gold"},
            "add_ons": [{"id": "ao1", "add_on": {"code": "seats"}, "quantity": 5}],
            "current_period_started_at": "2026-11-01T00:00:00Z",
            "current_period_ends_at": "2026-12-01T00:00:00Z",
            "canceled_at": "2026-11-10T00:00:00Z", "expires_at": "2026-12-01T00:00:00Z",
            "updated_at": "2026-11-10T00:00:00Z"
        });
        let obs = observe(&sub, 0).unwrap().unwrap();
        assert_observed(
            &obs,
            ObjectType::Subscription,
            "sub1",
            json!({"status": "canceled", "cancel_at": "2026-12-01T00:00:00Z",
                "customer_id": "recurly:o1xyzabc", "/items/0/price_id": "gold",
                "/items/0/quantity": 2, "/items/1/price_id": "seats"}),
        );
        assert_eq!(obs.tie_rank, 3);
    }

    #[test]
    fn transactions_map_charges_and_refunds_and_skip_verifications() {
        let t = json!({
            "id": "tx1", "uuid": "62bd4a0a7c2b7f1e0a6f9c2f3e4d5b6a", "object": "transaction",
            "type": "refund", "status": "success", "currency": "usd", "amount": 5.5,
            "account": {"id": "o1xyzabc", "code": "acct-42"}, "invoice": {"id": "rxinv2", "number": "1043"},
            "collected_at": "2026-11-02T00:00:00Z", "updated_at": "2026-11-02T00:00:01Z"
        });
        let obs = observe(&t, 0).unwrap().unwrap();
        assert_observed(
            &obs,
            ObjectType::Transaction,
            "tx1",
            json!({"kind": "refund", "amount": 550, "invoice_id": "recurly:rxinv2",
                "customer_id": "recurly:o1xyzabc", "occurred_at": "2026-11-02T00:00:00Z"}),
        );
        let mut v = t.clone();
        v["type"] = json!("verify");
        assert_eq!(observe(&v, 0).unwrap(), None);
        let mut p = t;
        p["type"] = json!("purchase");
        assert_eq!(observe(&p, 0).unwrap().unwrap().data["kind"], "charge");
    }

    #[test]
    fn amount_due_is_the_balance_not_the_total() {
        // Paid: nothing owed although the total is 10.79.
        let obs = observe(&charge_invoice(), 0).unwrap().unwrap();
        assert_eq!(obs.data["amount_due"], 0);
        // Partly paid and past due: the balance.
        let mut inv = charge_invoice();
        inv["state"] = json!("past_due");
        inv["paid"] = json!(4.0);
        inv["balance"] = json!(6.79);
        assert_eq!(observe(&inv, 0).unwrap().unwrap().data["amount_due"], 679);
        // Voided: Recurly zeroes the balance.
        inv["state"] = json!("voided");
        inv["balance"] = json!(0.0);
        let void = observe(&inv, 0).unwrap().unwrap();
        assert_eq!(void.data["amount_due"], 0);
        assert_eq!(void.data["status"], "void");
    }

    #[test]
    fn credit_invoice_names_the_invoice_it_credits_by_previous_invoice_id() {
        let mut inv = charge_invoice();
        inv["id"] = json!("rxcred1");
        inv["type"] = json!("credit");
        inv["origin"] = json!("refund");
        inv["previous_invoice_id"] = json!("rxinv1");
        inv["subscription_ids"] = json!([]);
        let obs = observe(&inv, 0).unwrap().unwrap();
        assert_observed(
            &obs,
            ObjectType::CreditNote,
            "rxcred1",
            json!({"invoice_id": "recurly:rxinv1", "customer_id": "recurly:o1xyzabc"}),
        );
    }

    #[test]
    fn invoice_without_subscriptions_names_none() {
        let mut inv = charge_invoice();
        inv["subscription_ids"] = json!([]);
        let obs = observe(&inv, 0).unwrap().unwrap();
        assert_eq!(obs.data["subscription_id"], Value::Null);
    }

    #[test]
    fn billing_info_vat_number_and_address_are_the_customers() {
        // Automatically collected: the VAT number and address live on `billing_info` only.
        let mut a = account_json();
        a["vat_number"] = Value::Null;
        a["address"] = json!({"street1": null, "city": null, "region": null,
                              "postal_code": null, "country": null, "phone": null});
        a["billing_info"] = json!({
            "id": "bi1", "object": "billing_info", "account_id": "o1xyzabc",
            "vat_number": "FR40303265045",
            "address": {"street1": "2 Rue X", "city": "Paris", "postal_code": "75001",
                        "country": "FR", "region": null}
        });
        let obs = observe(&a, 0).unwrap().unwrap();
        assert_fields(
            &obs.data,
            json!({"tax_ids": [{"type": "vat", "value": "FR40303265045"}],
                "/address/line1": "2 Rue X", "/address/country": "FR"}),
        );
        // Both present: billing info first, then the account's own, each once.
        a["vat_number"] = json!("DE123456789");
        a["address"] = account_json()["address"].clone();
        let obs = observe(&a, 0).unwrap().unwrap();
        assert_eq!(
            obs.data["tax_ids"],
            json!([{"type": "vat", "value": "FR40303265045"},
                   {"type": "vat", "value": "DE123456789"}])
        );
        assert_eq!(
            obs.data["address"]["city"], "Paris",
            "billing address first"
        );
        a["vat_number"] = json!("FR40303265045");
        let obs = observe(&a, 0).unwrap().unwrap();
        assert_eq!(obs.data["tax_ids"].as_array().unwrap().len(), 1);
        // No billing info, an all-null address: no address at all.
        let mut none = account_json();
        none["billing_info"] = Value::Null;
        none["address"] = json!({"street1": null, "city": null, "country": null});
        assert_eq!(
            observe(&none, 0).unwrap().unwrap().data["address"],
            Value::Null
        );
    }

    #[test]
    fn missing_updated_at_orders_by_fallback_and_unknown_objects_map_nothing() {
        let mut a = account_json();
        a.as_object_mut().unwrap().remove("updated_at");
        assert_eq!(observe(&a, 77).unwrap().unwrap().order_key, 77);
        assert_eq!(
            observe(&json!({"object": "plan", "id": "p"}), 0).unwrap(),
            None
        );
        assert!(observe(&json!({"object": "account"}), 0).is_err());
    }
}
