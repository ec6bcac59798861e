//! Zuora's Object Query shapes (camelCase, as the official `zuora-sdk` models them) built from
//! the generator's Stripe-shaped changes: Account (with `billTo`), Invoice (with
//! `invoiceItems`; discounts are negative charge items, Zuora has no invoice discount),
//! CreditMemo (with `creditMemoItems`), Subscription keyed by its number (`name`, as the
//! subscription's `id` changes with every version) with `ratePlans[].ratePlanCharges[]`,
//! Payment and Refund. Ids are 32 hex; money is decimal major units; dates are `YYYY-MM-DD`;
//! `createdDate`/`updatedDate` are whole seconds in the tenant's time zone (here US Pacific
//! standard time, `-08:00`). A closed customer is a canceled account (`status: Canceled`),
//! which Zuora keeps: it is not deleted. The ledger holds each object whole (every item,
//! every payment application); `api` cuts and omits as Zuora's API does
//! (docs/providers/zuora.md).

use chrono::{FixedOffset, TimeZone};
use serde_json::{json, Value};

use crate::personality::recurly::shapes::{hex_id, major, sequence};
use crate::scenario::Change;

/// The prefix billsync puts on refund ids to tell them from payment ids.
pub const REFUND_PREFIX: &str = "refund-";

/// The tenant's time zone offset, seconds east of UTC.
const TENANT_OFFSET: i32 = -8 * 3600;

/// A Zuora datetime (`2026-11-01T02:00:00-08:00`) for unix seconds.
pub fn datetime(secs: i64) -> Value {
    let Some(zone) = FixedOffset::east_opt(TENANT_OFFSET) else {
        return Value::Null;
    };
    zone.timestamp_opt(secs, 0)
        .single()
        .map_or(Value::Null, |t| {
            Value::String(t.format("%Y-%m-%dT%H:%M:%S%:z").to_string())
        })
}

/// A Zuora date (`YYYY-MM-DD`, UTC) for unix seconds.
fn date(secs: Option<i64>) -> Value {
    secs.and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or(Value::Null, |t| {
            Value::String(t.format("%Y-%m-%d").to_string())
        })
}

/// The 32-hex Zuora id of a generator object.
pub fn zid(stripe_id: &str) -> String {
    hex_id(&format!("zuora:{stripe_id}"), 32)
}

/// The subscription number (`A-S00000042`), billsync's key for subscriptions.
pub fn subscription_number(stripe_id: &str) -> String {
    format!("A-S{:08}", sequence(stripe_id))
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn i(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn t(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

fn currency(v: &Value) -> String {
    s(v, "currency").unwrap_or("usd").to_ascii_uppercase()
}

/// The translated change, or `None` where Zuora has no such object or change.
pub fn translate(c: Change, at: i64) -> Option<Change> {
    let o = &c.object;
    let (stream, id, object, event_type) = match c.stream {
        // Closing a customer cancels the account: it stays queryable with `status: Canceled`
        // (deleting is only possible for accounts without transactions). The generator's
        // deletion names only the id, so the details are not carried over.
        "customers" if c.deleted => {
            let id = zid(&c.id);
            let object = json!({
                "id": id, "accountNumber": format!("A{:08}", sequence(&c.id)), "name": null,
                "currency": "USD", "status": "Canceled", "balance": 0,
                "createdDate": datetime(c.created), "updatedDate": datetime(at),
            });
            // Zuora keeps a canceled account (docs/providers/zuora.md, "Cancels and
            // deletes"): it is not deleted.
            return Some(Change {
                stream: "accounts",
                id,
                created: c.created,
                object,
                deleted: false,
                event_type: "AccountCanceled",
                at: c.at,
            });
        }
        "customers" => {
            let event = if c.event_type == "customer.created" {
                "AccountCreated"
            } else {
                "AccountUpdated"
            };
            ("accounts", zid(&c.id), account(o, at), event)
        }
        "invoices" => {
            let event = match s(o, "status")? {
                "draft" => "InvoiceCreated",
                "open" => "InvoicePosted",
                "paid" => "InvoicePaid",
                "void" => "InvoiceCanceled",
                _ => "InvoiceUpdated",
            };
            ("invoices", zid(&c.id), invoice(o, at), event)
        }
        "credit_notes" => (
            "credit-memos",
            zid(&c.id),
            credit_memo(o, at),
            "CreditMemoPosted",
        ),
        "subscriptions" => {
            let canceled = s(o, "status") == Some("canceled");
            let event = match (canceled, c.event_type) {
                (true, _) => "SubscriptionCancelled",
                (false, "customer.subscription.created") => "SubscriptionCreated",
                _ => "SubscriptionUpdated",
            };
            (
                "subscriptions",
                subscription_number(&c.id),
                subscription(o, at),
                event,
            )
        }
        // The refund is its own object; the payment's own fields billsync reads stay.
        "charges" if c.event_type == "charge.refunded" => return None,
        "charges" => ("payments", zid(&c.id), payment(o, at), "PaymentProcessed"),
        "refunds" => (
            "refunds",
            format!("{REFUND_PREFIX}{}", zid(&c.id)),
            refund(o, at),
            "RefundProcessed",
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

/// Sets `updatedDate` (an edit at `at`, unix seconds).
pub fn touch(object: &mut Value, at: i64) {
    if let Some(o) = object.as_object_mut() {
        o.insert("updatedDate".into(), datetime(at));
    }
}

fn stamps(o: &Value, at: i64) -> (Value, Value) {
    (datetime(t(o, "created").unwrap_or(at)), datetime(at))
}

fn account(o: &Value, at: i64) -> Value {
    let id = s(o, "id").unwrap_or_default();
    let name = s(o, "name").unwrap_or_default();
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    let a = o.get("address").cloned().unwrap_or(Value::Null);
    let contact = zid(&format!("contact:{id}"));
    let vat = o["tax_ids"]["data"].get(0).and_then(|t| s(t, "value"));
    let (created, updated) = stamps(o, at);
    json!({
        "id": zid(id), "accountNumber": format!("A{:08}", sequence(id)), "name": name,
        "currency": "USD", "status": "Active", "balance": 0, "autoPay": false,
        "billCycleDay": 1, "paymentTerm": "Due Upon Receipt", "billToId": contact, "soldToId": contact,
        "taxExemptStatus": if s(o, "tax_exempt") == Some("exempt") { "Yes" } else { "No" },
        "vATId": vat, "createdDate": created, "updatedDate": updated,
        "billTo": {"id": contact, "accountId": zid(id), "firstName": first, "lastName": last,
            "workEmail": s(o, "email"), "address1": s(&a, "line1"), "address2": s(&a, "line2"),
            "city": s(&a, "city"), "state": s(&a, "state"), "postalCode": s(&a, "postal_code"),
            "country": s(&a, "country")},
    })
}

fn invoice(o: &Value, at: i64) -> Value {
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
    let (status, balance) = match s(o, "status") {
        Some("draft") => ("Draft", total),
        Some("void") => ("Canceled", 0),
        _ => ("Posted", total - i(o, "amount_paid")),
    };
    let sub = s(o, "subscription");
    let created = t(o, "created");
    let mut items: Vec<Value> = o["lines"]["data"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    let lid = s(l, "id").unwrap_or_default();
                    json!({
                        "id": zid(lid), "chargeName": s(l, "description"), "processingType": "Charge",
                        "chargeAmount": major(i(l, "amount"), &cur),
                        "taxAmount": major(l["taxes"].get(0).map_or(0, |x| i(x, "amount")), &cur),
                        "quantity": l.get("quantity").and_then(Value::as_i64).unwrap_or(1),
                        "serviceStartDate": date(l["period"].get("start").and_then(Value::as_i64)),
                        "serviceEndDate": date(l["period"].get("end").and_then(Value::as_i64)),
                        "subscriptionNumber": sub.map(subscription_number),
                        "subscriptionId": sub.map(zid), "invoiceId": zid(id),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if discount > 0 {
        items.push(json!({
            "id": zid(&format!("discount:{id}")), "invoiceId": zid(id), "chargeName": "Discount",
            "processingType": "Discount", "chargeAmount": major(-discount, &cur),
            "taxAmount": major(0, &cur), "quantity": 1,
            "subscriptionNumber": sub.map(subscription_number), "subscriptionId": sub.map(zid),
        }));
    }
    let (created_date, updated) = stamps(o, at);
    json!({
        "id": zid(id), "invoiceNumber": format!("INV{:08}", sequence(id)),
        "accountId": s(o, "customer").map(zid), "status": status, "currency": cur,
        "amount": major(total, &cur), "amountWithoutTax": major(subtotal - discount, &cur),
        "taxAmount": major(tax, &cur), "balance": major(balance, &cur),
        // Payments applied: 0 for a canceled invoice, whose balance is 0 too.
        "paymentAmount": major(if status == "Posted" { i(o, "amount_paid") } else { 0 }, &cur),
        "invoiceDate": date(created), "dueDate": date(created.map(|c| c + 30 * 86_400)),
        "postedDate": if status == "Draft" { Value::Null } else { date(Some(at)) },
        "createdDate": created_date, "updatedDate": updated, "invoiceItems": items,
    })
}

fn credit_memo(o: &Value, at: i64) -> Value {
    let cur = currency(o);
    let id = s(o, "id").unwrap_or_default();
    let tax: i64 = o["total_taxes"]
        .as_array()
        .map_or(0, |t| t.iter().map(|x| i(x, "amount")).sum());
    let total = i(o, "total");
    let items: Vec<Value> = o["lines"]["data"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    let amount = i(l, "amount");
                    let line_tax = l["taxes"].get(0).map_or(0, |x| i(x, "amount"));
                    json!({
                        "id": zid(s(l, "id").unwrap_or_default()), "creditMemoId": zid(id),
                        "description": s(l, "description"),
                        "quantity": l.get("quantity").and_then(Value::as_i64).unwrap_or(1),
                        "amountWithoutTax": major(amount, &cur), "taxAmount": major(line_tax, &cur),
                        "amount": major(amount + line_tax, &cur),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let (created, updated) = stamps(o, at);
    json!({
        "id": zid(id), "memoNumber": format!("CM{:08}", sequence(id)),
        "accountId": s(o, "customer").map(zid), "invoiceId": s(o, "invoice").map(zid),
        "status": if s(o, "status") == Some("void") { "Canceled" } else { "Posted" },
        "currency": cur, "totalAmount": major(total, &cur),
        "totalAmountWithoutTax": major(i(o, "subtotal"), &cur), "taxAmount": major(tax, &cur),
        "balance": major(total, &cur), "memoDate": date(t(o, "created")),
        "reasonCode": "Correcting invoice error", "source": "AdhocFromInvoice",
        "createdDate": created, "updatedDate": updated, "creditMemoItems": items,
    })
}

fn subscription(o: &Value, at: i64) -> Value {
    let id = s(o, "id").unwrap_or_default();
    let canceled = s(o, "status") == Some("canceled");
    // Every amendment is a new subscription version with a new id; the number stays.
    let version = if canceled { 2 } else { 1 };
    let plans: Vec<Value> = o["items"]["data"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    let iid = s(item, "id").unwrap_or_default();
                    let price = s(&item["price"], "id").unwrap_or_default();
                    json!({
                        "id": zid(&format!("rateplan:{iid}")), "name": "Standard",
                        "productRatePlanId": zid(&format!("product-rate-plan:{price}")),
                        "ratePlanCharges": [{"id": zid(&format!("charge:{iid}")), "name": "Standard",
                            "chargeType": "Recurring", "chargeModel": "Per Unit Pricing",
                            "quantity": item.get("quantity").and_then(Value::as_i64).unwrap_or(1)}],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let (created, updated) = stamps(o, at);
    let end = if canceled {
        t(o, "canceled_at")
    } else {
        t(o, "current_period_end")
    };
    json!({
        "id": zid(&format!("{id}:v{version}")), "name": subscription_number(id),
        "accountId": s(o, "customer").map(zid), "invoiceOwnerId": s(o, "customer").map(zid),
        "status": if canceled { "Cancelled" } else { "Active" }, "version": version,
        "isLatestVersion": true, "termType": "TERMED", "autoRenew": true,
        "currency": currency(o),
        "termStartDate": date(t(o, "current_period_start")),
        "termEndDate": date(t(o, "current_period_end")),
        "subscriptionStartDate": date(t(o, "current_period_start")),
        "subscriptionEndDate": date(end), "cancelledDate": date(t(o, "canceled_at")),
        "createdDate": created, "updatedDate": updated, "ratePlans": plans,
    })
}

/// A payment and its applications: the invoice it paid is named only there (Zuora's
/// Payment has no invoice field; docs/providers/zuora.md, "Payments and their invoice").
fn payment(o: &Value, at: i64) -> Value {
    let cur = currency(o);
    let id = s(o, "id").unwrap_or_default();
    let (created, updated) = stamps(o, at);
    let amount = i(o, "amount");
    let applications: Vec<Value> = s(o, "invoice")
        .map(|invoice| {
            json!({
                "id": zid(&format!("application:{id}")), "paymentId": zid(id),
                "invoiceId": zid(invoice), "accountId": s(o, "customer").map(zid),
                "applyAmount": major(amount, &cur), "effectiveDate": date(t(o, "created")),
                "paymentApplicationStatus": "Effective", "createdDate": created.clone(),
                "updatedDate": updated.clone(),
            })
        })
        .into_iter()
        .collect();
    let applied = if applications.is_empty() { 0 } else { amount };
    json!({
        "id": zid(id), "paymentNumber": format!("P-{:08}", sequence(id)),
        "accountId": s(o, "customer").map(zid), "amount": major(amount, &cur),
        "appliedAmount": major(applied, &cur), "unappliedAmount": major(amount - applied, &cur),
        "currency": cur, "status": "Processed", "type": "Electronic",
        "effectiveDate": date(t(o, "created")), "createdDate": created, "updatedDate": updated,
        "paymentApplications": applications,
    })
}

fn refund(o: &Value, at: i64) -> Value {
    let cur = currency(o);
    let id = s(o, "id").unwrap_or_default();
    let (created, updated) = stamps(o, at);
    json!({
        "id": zid(id), "refundNumber": format!("R-{:08}", sequence(id)),
        "accountId": s(o, "customer").map(zid), "amount": major(i(o, "amount"), &cur),
        "currency": cur, "status": "Processed", "type": "Electronic", "methodType": "CreditCard",
        "reasonCode": "Standard Refund", "refundDate": date(t(o, "created")),
        "createdDate": created, "updatedDate": updated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_whole_seconds_in_the_tenant_zone_and_dates_are_plain() {
        assert_eq!(datetime(1_793_527_200), json!("2026-11-01T02:00:00-08:00"));
        assert_eq!(date(Some(1_793_527_200)), json!("2026-11-01"));
        assert_eq!(subscription_number("sub_7b10000000042"), "A-S00000042");
    }
}
