//! The Zuora mapping's tests: provider objects in, canonical fields out.

use super::*;
use crate::providers::field_checks::{assert_fields, assert_observed};
use serde_json::json;

fn map(object: Value) -> Observation {
    let kind = identify(&object).expect("kind");
    observe(kind, &object, 0).unwrap().unwrap()
}

#[test]
fn account_maps_bill_to_contact() {
    let obs = map(json!({
        "id": "8a8a0001", "accountNumber": "A00000001", "name": "Acme Corp",
        "currency": "USD", "status": "Active", "taxExemptStatus": "Yes", "vatId": "GB123",
        "billTo": {"workEmail": "ap@acme.test", "address1": "1 Road", "city": "London",
                   "state": "LDN", "postalCode": "N1", "country": "United Kingdom"},
        "updatedDate": "2026-11-01T02:00:00-08:00"
    }));
    assert_observed(
        &obs,
        ObjectType::Customer,
        "8a8a0001",
        json!({"email": "ap@acme.test", "name": "Acme Corp", "/address/postal_code": "N1",
            "tax_exempt": "exempt", "/tax_ids/0/value": "GB123"}),
    );
    assert_eq!(
        obs.order_key, 1_793_527_200_000_000,
        "offset -08:00 read as UTC 10:00"
    );
}

fn invoice_json() -> Value {
    json!({
        "id": "8a8ainv1", "invoiceNumber": "INV00000042", "accountId": "8a8a0001",
        "status": "Posted", "currency": "usd", "amount": 10.99, "amountWithoutTax": 10.0,
        "taxAmount": 0.99, "balance": 4.99, "paymentAmount": 6.0, "invoiceDate": "2026-11-01",
        "invoiceItems": [{"id": "item1", "chargeName": "Gold monthly", "quantity": 1,
            "chargeAmount": 10.0, "taxAmount": 0.99, "subscriptionNumber": "A-S00000007",
            "serviceStartDate": "2026-11-01", "serviceEndDate": "2026-11-30"}],
        "updatedDate": "2026-11-01T10:00:00Z"
    })
}

#[test]
fn posted_invoice_with_balance_is_open_with_exact_minor_units() {
    let obs = map(invoice_json());
    assert_observed(
        &obs,
        ObjectType::Invoice,
        "8a8ainv1",
        json!({"status": "open", "currency": "USD", "total": 1099, "subtotal": 1000,
            "tax": 99, "amount_paid": 600, "amount_due": 1099,
            "customer_id": "zuora:8a8a0001", "subscription_id": "zuora:A-S00000007",
            "issued_at": "2026-11-01T00:00:00Z", "period_end": "2026-11-30T00:00:00Z",
            "/lines/0/description": "Gold monthly", "/lines/0/amount": 1000}),
    );
    assert_eq!(obs.tie_rank, 1);
}

#[test]
fn settled_and_canceled_invoices_are_paid_and_void() {
    let mut inv = invoice_json();
    inv["balance"] = json!(0);
    inv["paymentAmount"] = json!(10.99);
    assert_eq!(map(inv.clone()).data["status"], "paid");
    assert_eq!(map(inv.clone()).data["amount_paid"], 1099);
    inv["status"] = json!("Canceled");
    inv["paymentAmount"] = json!(0);
    assert_eq!(map(inv).data["status"], "void");
}

/// Finding (issue 19): a canceled invoice (balance 0) came out fully paid from
/// `amount - balance`. What was paid is `paymentAmount`.
#[test]
fn a_canceled_invoice_is_not_paid() {
    let mut inv = invoice_json();
    inv["status"] = json!("Canceled");
    inv["balance"] = json!(0);
    inv["paymentAmount"] = json!(0);
    let d = map(inv.clone()).data;
    assert_eq!(d["status"], "void");
    assert_eq!(d["amount_paid"], 0);
    // Read without `paymentAmount`: still not paid.
    inv.as_object_mut().unwrap().remove("paymentAmount");
    assert_eq!(map(inv).data["amount_paid"], 0);
    // A posted invoice read without it: its settled part.
    let mut posted = invoice_json();
    posted.as_object_mut().unwrap().remove("paymentAmount");
    assert_eq!(map(posted).data["amount_paid"], 600);
}

#[test]
fn jpy_invoice_and_bad_money_are_exact_or_errors() {
    let mut inv = invoice_json();
    inv["currency"] = json!("JPY");
    inv["amount"] = json!(1200);
    inv["amountWithoutTax"] = json!(1100);
    inv["taxAmount"] = json!(100);
    inv["balance"] = json!(0);
    inv["invoiceItems"] = json!([]);
    assert_eq!(map(inv.clone()).data["total"], 1200);
    inv["amount"] = json!(12.5);
    assert!(
        observe(Kind::Invoice, &inv, 0).is_err(),
        "JPY has no fraction digits"
    );
    let mut no_currency = invoice_json();
    no_currency.as_object_mut().unwrap().remove("currency");
    assert!(observe(Kind::Invoice, &no_currency, 0).is_err());
}

#[test]
fn credit_memo_maps_to_credit_note() {
    let obs = map(json!({
        "id": "8a8acm1", "memoNumber": "CM00000001", "accountId": "8a8a0001",
        "invoiceId": "8a8ainv1", "status": "Posted", "currency": "EUR", "amount": 5.5,
        "amountWithoutTax": 5.0, "taxAmount": 0.5, "memoDate": "2026-11-02",
        "reasonCode": "Correcting invoice error", "updatedDate": "2026-11-02T00:00:00Z"
    }));
    assert_observed(
        &obs,
        ObjectType::CreditNote,
        "8a8acm1",
        json!({"invoice_id": "zuora:8a8ainv1", "total": 550, "status": "issued",
            "reason": "Correcting invoice error"}),
    );
}

#[test]
fn subscription_is_keyed_by_number_and_maps_rate_plans() {
    let obs = map(json!({
        "id": "8a8asubv3", "subscriptionNumber": "A-S00000007", "accountId": "8a8a0001",
        "status": "Cancelled", "termStartDate": "2026-01-01", "termEndDate": "2027-01-01",
        "subscriptionEndDate": "2026-12-01", "cancelledDate": "2026-11-10",
        "ratePlans": [{"id": "rp1", "productRatePlanId": "prp_gold",
            "ratePlanCharges": [{"quantity": 3}]}],
        "updatedDate": "2026-11-10T00:00:00Z"
    }));
    assert_observed(
        &obs,
        ObjectType::Subscription,
        "A-S00000007",
        json!({"status": "canceled", "cancel_at": "2026-12-01T00:00:00Z",
            "canceled_at": "2026-11-10T00:00:00Z",
            "items": [{"id": "rp1", "price_id": "prp_gold", "quantity": 3}]}),
    );
    assert_eq!(obs.tie_rank, 3);
}

#[test]
fn payments_and_refunds_are_transactions_with_distinct_ids() {
    let pay = map(json!({
        "id": "8a8apay1", "paymentNumber": "P-00000001", "accountId": "8a8a0001",
        "currency": "USD", "amount": 10.99, "status": "Processed",
        "effectiveDate": "2026-11-01", "updatedDate": "2026-11-01T10:00:00Z"
    }));
    assert_observed(
        &pay,
        ObjectType::Transaction,
        "8a8apay1",
        json!({"kind": "charge", "amount": 1099}),
    );
    let refund = map(json!({
        "id": "8a8aref1", "refundNumber": "R-00000001", "accountId": "8a8a0001",
        "currency": "USD", "amount": 1.0, "status": "Processed",
        "refundDate": "2026-11-03", "updatedDate": "2026-11-03T10:00:00Z"
    }));
    assert_observed(
        &refund,
        ObjectType::Transaction,
        "refund-8a8aref1",
        json!({"kind": "refund", "amount": 100, "occurred_at": "2026-11-03T00:00:00Z"}),
    );
}

/// Finding (issue 19): canceled accounts became `deleted: true`, but Zuora keeps them: a
/// canceled account is a customer with a status (deleted only on a 404).
#[test]
fn a_canceled_account_is_a_customer_with_a_status_that_outranks_its_second() {
    let obs = map(
        json!({"id": "8a8a0002", "accountNumber": "A2", "name": "Acme", "status": "Canceled",
        "currency": "USD", "updatedDate": "2026-11-01T10:00:00Z"}),
    );
    assert!(!obs.deleted);
    // Its data stays.
    assert_fields(&obs.data, json!({"status": "canceled", "name": "Acme"}));
    let live = map(json!({"id": "8a8a0002", "accountNumber": "A2", "status": "Active"}));
    assert!(!live.deleted);
    assert_eq!(live.data["status"], "active");
    assert!(obs.tie_rank > live.tie_rank, "canceling wins a tie");
}

/// Finding (issue 19): payments lost their invoice (a top-level `invoiceId` was read;
/// Zuora payments carry it only in `paymentApplications[].invoiceId`).
#[test]
fn a_payment_names_the_invoice_of_its_application() {
    let pay = map(json!({
        "id": "8a8apay2", "paymentNumber": "P-00000002", "accountId": "8a8a0001",
        "currency": "USD", "amount": 10.99, "status": "Processed",
        "paymentApplications": [
            {"id": "pa0", "paymentId": "8a8apay2", "debitMemoId": "dm1", "applyAmount": 1.0},
            {"id": "pa1", "paymentId": "8a8apay2", "invoiceId": "8a8ainv1", "applyAmount": 9.99}
        ],
        "updatedDate": "2026-11-01T10:00:00Z"
    }));
    assert_eq!(pay.data["invoice_id"], "zuora:8a8ainv1");
    let unapplied = map(json!({
        "id": "8a8apay3", "paymentNumber": "P-00000003", "currency": "USD", "amount": 1,
        "paymentApplications": []
    }));
    assert_eq!(unapplied.data["invoice_id"], Value::Null);
    assert_eq!(
        expand("payments"),
        vec![("expand[]".to_owned(), "paymentapplications".to_owned())]
    );
}

#[test]
fn unknown_objects_are_not_identified() {
    assert_eq!(identify(&json!({"id": "u1", "quantity": 4})), None);
}
