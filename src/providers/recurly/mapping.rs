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
//! instead; `super::thin_reference` reads the object by its handle and the answer
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
use crate::providers::{ParseError, Stream};

/// The lists a pull walks, in order, and the kind of canonical object each holds
/// (`ProviderInfo::streams`).
pub(super) const STREAMS: &[Stream] = &[
    Stream::windowed("accounts", ObjectType::Customer),
    Stream::windowed("invoices", ObjectType::Invoice),
    Stream::windowed("subscriptions", ObjectType::Subscription),
    Stream::windowed("transactions", ObjectType::Transaction),
];

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
mod tests;
