//! The Recurly mapping's tests: provider objects in, canonical fields out.

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
