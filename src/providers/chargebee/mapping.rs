//! Chargebee resources to canonical objects (docs/providers/chargebee.md, "Field sources"):
//! customers, invoices, credit notes, subscriptions and transactions, amounts in minor units
//! as Chargebee sends them, ordered by `resource_version`.

use serde_json::Value;

use crate::model::canonical::{
    Address, CanonicalData, CreditNote, Customer, Invoice, InvoiceLine, Subscription,
    SubscriptionItem, TaxId, Transaction, TransactionKind,
};
use crate::model::time::secs_to_micros;
use crate::model::{ObjectType, Observation};
use crate::providers::minor_units::Obj;
use crate::providers::{ParseError, Stream};

/// The lists a pull walks, in order, and the kind of canonical object each holds
/// (`ProviderInfo::streams`).
pub(super) const STREAMS: &[Stream] = &[
    Stream::windowed("customers", ObjectType::Customer),
    Stream::windowed("invoices", ObjectType::Invoice),
    Stream::windowed("credit_notes", ObjectType::CreditNote),
    Stream::windowed("subscriptions", ObjectType::Subscription),
    Stream::windowed("transactions", ObjectType::Transaction),
];

pub(super) const P: &str = "chargebee";

/// Lifecycle rank of a deletion: nothing at the same version comes after it.
pub(super) const DELETED_RANK: i64 = i64::MAX;

impl Obj<'_> {
    /// A unix-seconds time (Chargebee's only time form) as canonical UTC text.
    fn unix(&self, key: &str) -> Option<String> {
        self.int(key).and_then(crate::model::time::secs_to_rfc3339)
    }
}

/// The resources billsync maps, by Chargebee's resource name, in the order a retrieve answer
/// is searched for its primary resource (a subscription answer also carries its customer).
pub(super) const RESOURCES: &[(&str, ObjectType)] = &[
    ("invoice", ObjectType::Invoice),
    ("credit_note", ObjectType::CreditNote),
    ("transaction", ObjectType::Transaction),
    ("subscription", ObjectType::Subscription),
    ("customer", ObjectType::Customer),
];

/// Maps one resource. `deleted_event` marks a `*_deleted` event's snapshot as a tombstone;
/// `fallback` (µs) orders a resource that has neither `resource_version` nor `updated_at`.
pub(super) fn observe_resource(
    resource: &str,
    object: &Value,
    deleted_event: bool,
    fallback: i64,
) -> Result<Option<Observation>, ParseError> {
    let Some(&(_, object_type)) = RESOURCES.iter().find(|(r, _)| *r == resource) else {
        return Ok(None);
    };
    let o = Obj(object);
    let id = o
        .s("id")
        .ok_or_else(|| ParseError(format!("{resource} has no `id`")))?;
    let deleted = deleted_event || object.get("deleted").and_then(Value::as_bool) == Some(true);
    let (data, rank): (CanonicalData, i64) = match object_type {
        ObjectType::Customer => (customer(&o).into(), 0),
        ObjectType::Invoice => invoice(&o).map(|(d, r)| (d.into(), r))?,
        ObjectType::CreditNote => credit_note(&o).map(|(d, r)| (d.into(), r))?,
        ObjectType::Subscription => subscription(&o).map(|(d, r)| (d.into(), r))?,
        ObjectType::Transaction => transaction(&o).map(|(d, r)| (d.into(), r))?,
    };
    let data = data.to_value();
    let updated = o.int("updated_at").map(secs_to_micros);
    // `resource_version` is in practice the change time in milliseconds; a resource without
    // one (changed before 2016-09-28) orders by `updated_at`. Keys are microseconds, the
    // scale of every other order key (an API 404's tombstone is ordered at its read time,
    // less the lag allowance: on a millisecond scale it would outrank every real change).
    let order_key = o
        .int("resource_version")
        .map(|ms| ms.saturating_mul(1000))
        .or(updated)
        .unwrap_or(fallback);
    Ok(Some(Observation {
        object_type,
        provider_id: id.to_owned(),
        data,
        deleted,
        order_key,
        tie_rank: if deleted { DELETED_RANK } else { rank },
        provider_updated_at: updated.unwrap_or(fallback),
        carried: &[],
    }))
}

fn customer(o: &Obj) -> Customer {
    let name = o.full_name("company");
    let address = o.obj("billing_address").map(|a| Address {
        line1: a.str("line1"),
        city: a.str("city"),
        state: a.str("state_code").or_else(|| a.str("state")),
        postal_code: a.str("zip"),
        country: a.str("country"),
    });
    let tax_ids = o.s("vat_number").map(TaxId::vat).into_iter().collect();
    let tax_exempt = match o.s("taxability") {
        Some("exempt") => "exempt",
        _ => "none",
    };
    Customer {
        email: o.str("email"),
        name,
        address,
        tax_ids,
        tax_exempt: tax_exempt.to_owned(),
        status: None,
    }
}

fn lines(o: &Obj) -> Result<Vec<InvoiceLine>, ParseError> {
    o.list("line_items")
        .iter()
        .map(|l| {
            Ok(InvoiceLine {
                id: l.str("id"),
                description: l.str("description"),
                quantity: l.int("quantity"),
                amount: l.minor("amount")?,
                tax: l.minor("tax_amount")?,
                period_start: Some(l.unix("date_from")),
                period_end: Some(l.unix("date_to")),
            })
        })
        .collect()
}

fn sum(o: &Obj, list: &str, key: &str) -> Result<i64, ParseError> {
    o.list(list)
        .iter()
        .try_fold(0i64, |acc, i| Ok(acc.saturating_add(i.minor(key)?)))
}

fn invoice(o: &Obj) -> Result<(Invoice, i64), ParseError> {
    let (status, rank) = match o.s("status").unwrap_or("pending") {
        "pending" => ("draft", 0),
        "posted" => ("open", 1),
        "payment_due" => ("open", 2),
        "not_paid" => ("uncollectible", 3),
        "paid" => ("paid", 4),
        "voided" => ("void", 4),
        other => return Err(ParseError(format!("unknown invoice status `{other}`"))),
    };
    let items = o.list("line_items");
    let period = |key: &str, min: bool| {
        let times = items.iter().filter_map(|l| l.int(key));
        let t = if min { times.min() } else { times.max() };
        t.and_then(crate::model::time::secs_to_rfc3339)
    };
    let tax = match o.get("tax") {
        Some(_) => o.minor("tax")?,
        None => sum(o, "line_items", "tax_amount")?,
    };
    Ok((
        Invoice {
            customer_id: o.reference(P, "customer_id"),
            subscription_id: o.reference(P, "subscription_id"),
            status: status.to_owned(),
            currency: o.currency("currency_code")?,
            subtotal: o.minor("sub_total")?,
            discount: sum(o, "discounts", "amount")?,
            tax,
            total: o.minor("total")?,
            amount_paid: o.minor("amount_paid")?,
            amount_due: o.minor("amount_due")?,
            issued_at: o.unix("date"),
            period_start: period("date_from", true),
            period_end: period("date_to", false),
            lines: lines(o)?,
        },
        rank,
    ))
}

fn credit_note(o: &Obj) -> Result<(CreditNote, i64), ParseError> {
    let voided = o.s("status") == Some("voided");
    let tax = match o.get("taxes") {
        Some(_) => sum(o, "taxes", "amount")?,
        None => sum(o, "line_items", "tax_amount")?,
    };
    Ok((
        CreditNote {
            invoice_id: o.reference(P, "reference_invoice_id"),
            customer_id: o.reference(P, "customer_id"),
            status: if voided { "void" } else { "issued" }.to_owned(),
            currency: o.currency("currency_code")?,
            subtotal: o.minor("sub_total")?,
            tax,
            total: o.minor("total")?,
            issued_at: o.unix("date"),
            reason: o.str("reason_code").or_else(|| o.str("create_reason_code")),
            lines: lines(o)?,
        },
        i64::from(voided),
    ))
}

fn subscription(o: &Obj) -> Result<(Subscription, i64), ParseError> {
    let raw = o.s("status").unwrap_or("active");
    let (status, rank) = match raw {
        "future" => ("future", 0),
        "in_trial" => ("trialing", 1),
        "active" => ("active", 2),
        "non_renewing" => ("active", 3),
        "paused" => ("paused", 4),
        "cancelled" => ("canceled", 5),
        "transferred" => ("transferred", 5),
        other => return Err(ParseError(format!("unknown subscription status `{other}`"))),
    };
    // `cancelled_at` is when it was cancelled, or for a non-renewing one when it will be.
    let (cancel_at, canceled_at) = match raw {
        "cancelled" => (None, o.unix("cancelled_at")),
        _ => (o.unix("cancelled_at"), None),
    };
    // Product Catalog 2.0 lists `subscription_items` (keyed by item price); 1.0 has one plan.
    let mut items: Vec<SubscriptionItem> = o
        .list("subscription_items")
        .iter()
        .map(|i| SubscriptionItem {
            id: i.str("item_price_id"),
            price_id: i.str("item_price_id"),
            quantity: i.int("quantity"),
        })
        .collect();
    if items.is_empty() && o.s("plan_id").is_some() {
        items.push(SubscriptionItem {
            id: o.str("plan_id"),
            price_id: o.str("plan_id"),
            quantity: o.int("plan_quantity"),
        });
    }
    Ok((
        Subscription {
            customer_id: o.reference(P, "customer_id"),
            status: status.to_owned(),
            currency: o.currency("currency_code")?,
            current_period_start: o.unix("current_term_start"),
            current_period_end: o.unix("current_term_end"),
            cancel_at,
            canceled_at,
            items,
        },
        rank,
    ))
}

fn transaction(o: &Obj) -> Result<(Transaction, i64), ParseError> {
    let kind = match o.s("type") {
        Some("refund") => TransactionKind::Refund,
        _ => TransactionKind::Charge,
    };
    let status = o.s("status").unwrap_or("in_progress");
    let rank = match status {
        "in_progress" | "needs_attention" => 0,
        "late_failure" | "voided" => 2,
        _ => 1, // success, failure, timeout
    };
    let invoice_id = o
        .list("linked_invoices")
        .first()
        .and_then(|l| l.reference(P, "invoice_id"));
    Ok((
        Transaction {
            kind,
            customer_id: o.reference(P, "customer_id"),
            invoice_id,
            currency: o.currency("currency_code")?,
            amount: o.minor("amount")?,
            status: Some(status.to_owned()),
            occurred_at: o.unix("date"),
            amount_refunded: None,
            charge_id: None,
        },
        rank,
    ))
}
