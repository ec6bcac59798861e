//! Maps Zuora Object Query objects (camelCase; legacy PascalCase `UpdatedDate`-style names are
//! read too) to canonical objects, for API reads, pages, confirmations and swept objects.
//! docs/providers/zuora.md ("Field by field") is the reference this file follows; each
//! choice below names its section there.
//!
//! Why this file passes 600 lines: about 410 are the mapping, the rest its tests, kept
//! beside the rules they pin.
//!
//! | canonical | Zuora object | provider id | status mapping |
//! |---|---|---|---|
//! | `customer` | Account (`expand[]=billto`) | `id` | `status`: `Draft`/`Active`/`Canceled` as `draft`/`active`/`canceled`; never deleted by a status (a deleted account answers 404: a tombstone) |
//! | `invoice` | Invoice (`expand[]=invoiceitems`; more items: `items`) | `id` | `Draft`/`Error` → `draft`; `Posted` with `balance` > 0 → `open`, else `paid`; `Canceled` → `void` |
//! | `credit_note` | CreditMemo (`expand[]=creditmemoitems`) | `id` | `Draft`/`Error` → `draft`; `Posted` → `issued`; `Canceled` → `void` |
//! | `subscription` | Subscription (`expand[]=rateplans`, `rateplans.rateplancharges`) | `subscriptionNumber` (ids change with every amendment) | `Draft`/`Pending*` → `incomplete`; `Active` → `active`; `Suspended` → `paused`; `Cancelled` → `canceled`; `Expired` → `ended` |
//! | `transaction` | Payment (`expand[]=paymentapplications`) / Refund | payment `id` / `refund-{id}` | Zuora's own status text |
//!
//! Money is decimal major units in the object's `currency`. Zuora has no invoice-level
//! discount (discounts are charges), so `discount` is 0; `amount_due` is the invoice `amount`
//! and `amount_paid` its `paymentAmount` (not `amount - balance`: a canceled invoice has
//! balance 0 and was not paid). Subscription periods are the current term
//! (`termStartDate`/`termEndDate`).

use serde_json::Value;

use crate::model::canonical::{
    Address, CanonicalData, CreditNote, Customer, Invoice, InvoiceLine, Subscription,
    SubscriptionItem, TaxId, Transaction, TransactionKind,
};
use crate::model::{ObjectType, Observation};
use crate::providers::major_units::{reference, span, Fields};
use crate::providers::{ParseError, Stream};

/// The lists a pull walks, in order, and the kind of canonical object each holds
/// (`ProviderInfo::streams`).
pub(super) const STREAMS: &[Stream] = &[
    Stream::windowed("accounts", ObjectType::Customer),
    Stream::windowed("invoices", ObjectType::Invoice),
    Stream::windowed("credit-memos", ObjectType::CreditNote),
    Stream::windowed("subscriptions", ObjectType::Subscription),
    Stream::windowed("payments", ObjectType::Transaction),
    Stream::windowed("refunds", ObjectType::Transaction),
];

/// The Zuora objects billsync maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Account,
    Invoice,
    CreditMemo,
    Subscription,
    Payment,
    Refund,
}

impl Kind {
    /// A callout `objectType` name.
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "Account" => Kind::Account,
            "Invoice" => Kind::Invoice,
            "CreditMemo" => Kind::CreditMemo,
            "Subscription" => Kind::Subscription,
            "Payment" => Kind::Payment,
            "Refund" => Kind::Refund,
            _ => return None,
        })
    }

    /// The callout `objectType` name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Account => "Account",
            Kind::Invoice => "Invoice",
            Kind::CreditMemo => "CreditMemo",
            Kind::Subscription => "Subscription",
            Kind::Payment => "Payment",
            Kind::Refund => "Refund",
        }
    }
}

/// Prefix that tells refunds from payments among transaction ids (both are 32-hex ids).
const REFUND_PREFIX: &str = "refund-";

pub fn refund_id(id: &str) -> String {
    format!("{REFUND_PREFIX}{id}")
}

pub fn strip_refund_id(provider_id: &str) -> Option<&str> {
    provider_id.strip_prefix(REFUND_PREFIX)
}

/// The `expand[]` parameters that bring the nested parts a mapping reads.
pub fn expand(stream: &str) -> Vec<(String, String)> {
    let part = match stream {
        "accounts" => "billto",
        "invoices" => "invoiceitems",
        "credit-memos" => "creditmemoitems",
        // A payment names its invoice only in its applications (docs/providers/zuora.md,
        // "Payments and their invoice").
        "payments" => "paymentapplications",
        // Rate plans carry their charges (and so the quantity) only when expanded too.
        "subscriptions" => {
            return vec![
                ("expand[]".to_owned(), "rateplans".to_owned()),
                (
                    "expand[]".to_owned(),
                    "rateplans.rateplancharges".to_owned(),
                ),
            ]
        }
        _ => return Vec::new(),
    };
    vec![("expand[]".to_owned(), part.to_owned())]
}

/// Whether a list's objects expand an item list that Zuora cuts at the page size
/// (`super::items` reads the rest).
pub fn expands_items(stream: &str) -> bool {
    matches!(stream, "invoices" | "credit-memos")
}

/// Which object an Object Query answer is: Object Query objects carry no type field, so
/// the kind is read from the number field each kind has.
pub fn identify(object: &Value) -> Option<Kind> {
    let o = Fields(object);
    let has = |keys: &[&str]| o.any(keys).is_some();
    Some(if has(&["invoiceNumber", "InvoiceNumber"]) {
        Kind::Invoice
    } else if has(&["memoNumber", "MemoNumber"]) {
        Kind::CreditMemo
    } else if has(&["refundNumber", "RefundNumber"]) {
        Kind::Refund
    } else if has(&["paymentNumber", "PaymentNumber"]) {
        Kind::Payment
    } else if has(&["subscriptionNumber", "termStartDate", "TermStartDate"]) {
        Kind::Subscription
    } else if has(&["accountNumber", "AccountNumber"]) {
        Kind::Account
    } else {
        return None;
    })
}

fn z(id: Option<String>) -> Option<String> {
    reference("zuora", id)
}

/// One of several spellings of a field.
fn id_of(o: &Fields, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| o.id(k))
}

fn money(o: &Fields, keys: &[&str], currency: &str) -> Result<i64, ParseError> {
    match keys.iter().find(|k| o.get(k).is_some()) {
        Some(k) => o.money(k, currency),
        None => Ok(0),
    }
}

fn text<'a>(o: &Fields<'a>, keys: &[&str]) -> Option<&'a str> {
    o.any(keys).and_then(Value::as_str)
}

fn required_currency(o: &Fields, what: &str) -> Result<String, ParseError> {
    match ["currency", "Currency"].iter().find(|k| o.get(k).is_some()) {
        Some(k) => o
            .currency(k)?
            .ok_or_else(|| ParseError(format!("Zuora {what} has no `currency`"))),
        None => Err(ParseError(format!("Zuora {what} has no `currency`"))),
    }
}

/// Maps one object of a known kind. `fallback_time` orders it when it has no `updatedDate`.
pub fn observe(
    kind: Kind,
    object: &Value,
    fallback_time: i64,
) -> Result<Option<Observation>, ParseError> {
    let o = Fields(object);
    let id = id_of(&o, &["id", "Id"]).ok_or_else(|| ParseError("Zuora object has no `id`".into()));
    let (object_type, provider_id, data, rank): (_, _, CanonicalData, _) = match kind {
        Kind::Account => {
            let (d, r) = account(&o);
            (ObjectType::Customer, id?, d.into(), r)
        }
        Kind::Invoice => {
            let (d, r) = invoice(&o)?;
            (ObjectType::Invoice, id?, d.into(), r)
        }
        Kind::CreditMemo => {
            let (d, r) = credit_memo(&o)?;
            (ObjectType::CreditNote, id?, d.into(), r)
        }
        Kind::Subscription => {
            let number = id_of(&o, &["subscriptionNumber", "name", "Name"]).ok_or_else(|| {
                ParseError("Zuora subscription has no `subscriptionNumber`".into())
            })?;
            let (d, r) = subscription(&o)?;
            (ObjectType::Subscription, number, d.into(), r)
        }
        Kind::Payment => {
            let (d, r) = transaction(&o, TransactionKind::Charge)?;
            (ObjectType::Transaction, id?, d.into(), r)
        }
        Kind::Refund => {
            let (d, r) = transaction(&o, TransactionKind::Refund)?;
            (ObjectType::Transaction, refund_id(&id?), d.into(), r)
        }
    };
    let data = data.to_value();
    let updated = o
        .micros(&["updatedDate", "UpdatedDate"])
        .unwrap_or(fallback_time);
    // No status deletes anything: a canceled account stays queryable and is a customer with
    // `status: canceled` (docs/providers/zuora.md, "Cancels and deletes"); a deleted object
    // answers 404, which the confirmation read stores as a tombstone.
    Ok(Some(Observation {
        object_type,
        provider_id,
        data,
        deleted: false,
        order_key: updated,
        tie_rank: rank,
        provider_updated_at: updated,
        carried: &[],
    }))
}

fn account(o: &Fields) -> (Customer, i64) {
    let bill_to = o.obj("billTo").or_else(|| o.obj("BillToContact"));
    let address = bill_to.map(|c| Address {
        line1: c.str("address1"),
        city: c.str("city"),
        state: c.str("state"),
        postal_code: c.str("postalCode"),
        country: c.str("country"),
    });
    let email = bill_to
        .and_then(|c| text(&c, &["workEmail", "personalEmail"]))
        .map(str::to_owned);
    // Object Query lower-cases the first letter of `VATId`: `vATId` (official zuora-sdk).
    let vat = text(o, &["vATId", "vatId", "VATId"])
        .or_else(|| bill_to.and_then(|c| text(&c, &["vatId"])));
    let tax_ids = vat.map(TaxId::vat).into_iter().collect();
    let exempt = text(o, &["taxExemptStatus", "TaxExemptStatus"]) == Some("Yes");
    let (status, rank) = match text(o, &["status", "Status"]) {
        Some("Canceled" | "Cancelled") => (Some("canceled".to_owned()), 2),
        Some("Active") => (Some("active".to_owned()), 1),
        Some("Draft") => (Some("draft".to_owned()), 0),
        Some(other) => (Some(other.to_ascii_lowercase()), 0),
        None => (None, 0),
    };
    let data = Customer {
        email,
        name: text(o, &["name", "Name"]).map(str::to_owned),
        address,
        tax_ids,
        tax_exempt: if exempt { "exempt" } else { "none" }.to_owned(),
        // Zuora's accounts have a status of their own (`null` when not read).
        status: Some(status),
    };
    (data, rank)
}

/// Items with `amount` = the pre-tax charge amount.
fn lines(items: &[Fields], currency: &str) -> Result<Vec<InvoiceLine>, ParseError> {
    items
        .iter()
        .map(|l| {
            Ok(InvoiceLine {
                id: l.str("id"),
                description: text(
                    l,
                    &["chargeDescription", "description", "chargeName", "comment"],
                )
                .map(str::to_owned),
                quantity: l.count("quantity"),
                amount: money(l, &["chargeAmount", "amountWithoutTax", "amount"], currency)?,
                tax: money(l, &["taxAmount"], currency)?,
                period_start: Some(l.time(&["serviceStartDate"])),
                period_end: Some(l.time(&["serviceEndDate"])),
            })
        })
        .collect()
}

fn invoice(o: &Fields) -> Result<(Invoice, i64), ParseError> {
    let currency = required_currency(o, "invoice")?;
    let total = money(o, &["amount", "Amount"], &currency)?;
    let balance = money(o, &["balance", "Balance"], &currency)?;
    let (status, rank) = match text(o, &["status", "Status"]).unwrap_or("Draft") {
        "Posted" if balance > 0 => ("open", 1),
        "Posted" => ("paid", 3),
        "Canceled" | "Cancelled" => ("void", 3),
        _ => ("draft", 0),
    };
    // What was paid is the payments applied (`paymentAmount`), not what is no longer owed:
    // a canceled invoice has balance 0 and was not paid (docs/providers/zuora.md, "Amounts").
    // Without the field (a `fields[]`-restricted read), only a posted invoice's settled part
    // can stand in for it.
    let amount_paid = match ["paymentAmount", "PaymentAmount"]
        .iter()
        .find(|k| o.get(k).is_some())
    {
        Some(k) => o.money(k, &currency)?,
        None if status == "open" || status == "paid" => total.saturating_sub(balance),
        None => 0,
    };
    let items = o.list("invoiceItems");
    let (period_start, period_end) = span(&items, &["serviceStartDate"], &["serviceEndDate"]);
    let subscription = items
        .iter()
        .find_map(|i| i.id("subscriptionNumber"))
        .or_else(|| o.id("subscriptionNumber"));
    let data = Invoice {
        customer_id: z(id_of(o, &["accountId", "AccountId"])),
        subscription_id: z(subscription),
        status: status.to_owned(),
        subtotal: money(o, &["amountWithoutTax", "AmountWithoutTax"], &currency)?,
        discount: 0,
        tax: money(o, &["taxAmount", "TaxAmount"], &currency)?,
        total,
        amount_paid,
        amount_due: total,
        issued_at: o.time(&["invoiceDate", "InvoiceDate"]),
        period_start,
        period_end,
        lines: lines(&items, &currency)?,
        currency: Some(currency),
    };
    Ok((data, rank))
}

fn credit_memo(o: &Fields) -> Result<(CreditNote, i64), ParseError> {
    let currency = required_currency(o, "credit memo")?;
    let (status, rank) = match text(o, &["status", "Status"]).unwrap_or("Draft") {
        "Posted" => ("issued", 1),
        "Canceled" | "Cancelled" => ("void", 2),
        _ => ("draft", 0),
    };
    let items = o.list("creditMemoItems");
    let data = CreditNote {
        invoice_id: z(id_of(o, &["invoiceId", "InvoiceId"])),
        customer_id: z(id_of(o, &["accountId", "AccountId"])),
        status: status.to_owned(),
        // Object Query credit memos carry `totalAmount`/`totalAmountWithoutTax` (official
        // zuora-sdk `ExpandedCreditMemo`); `amount`/`amountWithoutTax` are older spellings.
        subtotal: money(
            o,
            &[
                "totalAmountWithoutTax",
                "amountWithoutTax",
                "AmountWithoutTax",
            ],
            &currency,
        )?,
        tax: money(o, &["taxAmount", "TaxAmount"], &currency)?,
        total: money(o, &["totalAmount", "amount", "Amount"], &currency)?,
        issued_at: o.time(&["memoDate", "MemoDate"]),
        reason: text(o, &["reasonCode", "ReasonCode"]).map(str::to_owned),
        lines: lines(&items, &currency)?,
        currency: Some(currency),
    };
    Ok((data, rank))
}

fn subscription(o: &Fields) -> Result<(Subscription, i64), ParseError> {
    let raw = text(o, &["status", "Status"]).unwrap_or("Active");
    let (status, rank) = match raw {
        "Active" => ("active", 1),
        "Suspended" => ("paused", 2),
        "Cancelled" | "Canceled" => ("canceled", 3),
        "Expired" => ("ended", 4),
        _ => ("incomplete", 0),
    };
    let currency = match ["currency", "Currency"].iter().find(|k| o.get(k).is_some()) {
        Some(k) => o.currency(k)?,
        None => None,
    };
    let items = o
        .list("ratePlans")
        .iter()
        .map(|p| SubscriptionItem {
            id: p.str("id"),
            price_id: p.str("productRatePlanId"),
            quantity: p
                .list("ratePlanCharges")
                .first()
                .and_then(|c| c.count("quantity")),
        })
        .collect();
    let cancel_at = if status == "canceled" {
        o.time(&["subscriptionEndDate", "SubscriptionEndDate"])
    } else {
        None
    };
    let data = Subscription {
        customer_id: z(id_of(o, &["accountId", "AccountId"])),
        status: status.to_owned(),
        currency,
        current_period_start: o.time(&["termStartDate", "TermStartDate"]),
        current_period_end: o.time(&["termEndDate", "TermEndDate"]),
        cancel_at,
        canceled_at: o.time(&["cancelledDate", "CancelledDate"]),
        items,
    };
    Ok((data, rank))
}

fn transaction(o: &Fields, kind: TransactionKind) -> Result<(Transaction, i64), ParseError> {
    let what = match kind {
        TransactionKind::Charge => "charge",
        TransactionKind::Refund => "refund",
    };
    let currency = required_currency(o, what)?;
    let status = text(o, &["status", "Status"]).unwrap_or("Processing");
    let rank = match status {
        "Draft" => 0,
        "Processing" => 1,
        "Processed" => 2,
        _ => 3, // Error, Canceled: final
    };
    // Zuora payments have no invoice field: the invoice is in the payment's applications
    // (`expand[]=paymentapplications`; docs/providers/zuora.md, "Payments and their
    // invoice"). The first application to an invoice names it; a top-level `invoiceId` (a
    // legacy read) is taken when there is none.
    let applied = o
        .list("paymentApplications")
        .iter()
        .find_map(|a| a.id("invoiceId"));
    let data = Transaction {
        kind,
        customer_id: z(id_of(o, &["accountId", "AccountId"])),
        invoice_id: z(applied.or_else(|| id_of(o, &["invoiceId", "InvoiceId"]))),
        amount: money(o, &["amount", "Amount"], &currency)?,
        status: Some(status.to_owned()),
        occurred_at: o.time(&[
            "effectiveDate",
            "refundDate",
            "EffectiveDate",
            "RefundDate",
            "createdDate",
        ]),
        currency: Some(currency),
        amount_refunded: None,
        charge_id: None,
    };
    Ok((data, rank))
}

#[cfg(test)]
mod tests;
