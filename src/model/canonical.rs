//! The canonical objects every provider mapping builds (`providers::<name>::mapping`) and the
//! store keeps as an observation's `data`: one struct per kind with the fields of docs/api.md
//! ("What `data` holds"), money in integer minor units. A mapping fills these structs; the
//! observation turns them into JSON once, at [`CanonicalData::to_value`], so the stored text
//! and its content hash ([`super::content_hash`]) depend only on these definitions.
//!
//! `null` and absent are different stored content: a field every provider has is always
//! written (`null` when the provider does not know it); a field only some providers have
//! (Zuora's customer `status`, a Stripe charge's `amount_refunded`) is `Option`al and left
//! out elsewhere; where such a field can itself be `null` it is `Option<Option<_>>`: `None`
//! leaves it out, `Some(None)` writes `null`.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A postal address. Every field is `null` when the provider does not have it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Address {
    #[schema(required)]
    pub line1: Option<String>,
    #[schema(required)]
    pub city: Option<String>,
    #[schema(required)]
    pub state: Option<String>,
    #[schema(required)]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, as the provider sends it.
    #[schema(required)]
    pub country: Option<String>,
}

/// A tax identification number (VAT, GST, EIN...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TaxId {
    /// The kind of number: the provider's own name (`eu_vat`, `vat`, ...).
    #[serde(rename = "type")]
    #[schema(required)]
    pub kind: Option<String>,
    #[schema(required)]
    pub value: Option<String>,
}

impl TaxId {
    /// A VAT number, the only kind several providers have.
    pub fn vat(value: impl Into<String>) -> TaxId {
        TaxId {
            kind: Some("vat".to_owned()),
            value: Some(value.into()),
        }
    }
}

/// `customer`: who is billed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Customer {
    #[schema(required)]
    pub email: Option<String>,
    #[schema(required)]
    pub name: Option<String>,
    #[schema(required)]
    pub address: Option<Address>,
    pub tax_ids: Vec<TaxId>,
    /// `none`, `exempt` or `reverse`.
    pub tax_exempt: String,
    /// The account's own status (Zuora only: `draft`, `active`, `canceled`); absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub status: Option<Option<String>>,
}

/// One line of an invoice or a credit note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InvoiceLine {
    #[schema(required)]
    pub id: Option<String>,
    #[schema(required)]
    pub description: Option<String>,
    #[schema(required)]
    pub quantity: Option<i64>,
    /// Minor units, before tax.
    pub amount: i64,
    /// Minor units.
    pub tax: i64,
    /// RFC 3339. Absent on Paddle credit-note lines, which have no period.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub period_start: Option<Option<String>>,
    /// RFC 3339. Absent where `period_start` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub period_end: Option<Option<String>>,
}

/// `invoice`: what a customer is billed. Money in integer minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Invoice {
    /// `{provider}:{id}` of the customer.
    #[schema(required)]
    pub customer_id: Option<String>,
    /// `{provider}:{id}` of the subscription it bills, if any.
    #[schema(required)]
    pub subscription_id: Option<String>,
    /// `draft`, `open`, `paid`, `void` or `uncollectible`.
    pub status: String,
    /// Upper-case ISO 4217.
    #[schema(required)]
    pub currency: Option<String>,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    pub amount_paid: i64,
    pub amount_due: i64,
    /// RFC 3339 (also `period_start`, `period_end`).
    #[schema(required)]
    pub issued_at: Option<String>,
    #[schema(required)]
    pub period_start: Option<String>,
    #[schema(required)]
    pub period_end: Option<String>,
    pub lines: Vec<InvoiceLine>,
}

/// `credit_note`: money given back against an invoice, amounts as positive magnitudes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CreditNote {
    #[schema(required)]
    pub invoice_id: Option<String>,
    #[schema(required)]
    pub customer_id: Option<String>,
    /// `issued`, `void` (and the provider's own in-between states, e.g. Zuora's `draft`).
    pub status: String,
    #[schema(required)]
    pub currency: Option<String>,
    pub subtotal: i64,
    pub tax: i64,
    pub total: i64,
    /// RFC 3339.
    #[schema(required)]
    pub issued_at: Option<String>,
    #[schema(required)]
    pub reason: Option<String>,
    pub lines: Vec<InvoiceLine>,
}

/// One priced item of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SubscriptionItem {
    #[schema(required)]
    pub id: Option<String>,
    #[schema(required)]
    pub price_id: Option<String>,
    #[schema(required)]
    pub quantity: Option<i64>,
}

/// `subscription`: a recurring agreement to bill a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Subscription {
    #[schema(required)]
    pub customer_id: Option<String>,
    /// `active`, `trialing`, `past_due`, `paused`, `canceled`, ... (docs/providers/<name>.md).
    pub status: String,
    #[schema(required)]
    pub currency: Option<String>,
    /// RFC 3339 (also the three times below).
    #[schema(required)]
    pub current_period_start: Option<String>,
    #[schema(required)]
    pub current_period_end: Option<String>,
    #[schema(required)]
    pub cancel_at: Option<String>,
    #[schema(required)]
    pub canceled_at: Option<String>,
    pub items: Vec<SubscriptionItem>,
}

/// Which way a transaction moves money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    Charge,
    Refund,
}

/// `transaction`: a charge or a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Transaction {
    pub kind: TransactionKind,
    #[schema(required)]
    pub customer_id: Option<String>,
    #[schema(required)]
    pub invoice_id: Option<String>,
    #[schema(required)]
    pub currency: Option<String>,
    /// Minor units, a positive magnitude for refunds too.
    pub amount: i64,
    /// The provider's own status text.
    #[schema(required)]
    pub status: Option<String>,
    /// RFC 3339.
    #[schema(required)]
    pub occurred_at: Option<String>,
    /// Minor units refunded of a charge (Stripe charges only; absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_refunded: Option<i64>,
    /// `{provider}:{id}` of the charge a refund returns (Stripe refunds only; absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub charge_id: Option<Option<String>>,
}

/// The `data` of one observation: one canonical object of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanonicalData {
    Customer(Customer),
    Invoice(Invoice),
    CreditNote(CreditNote),
    Subscription(Subscription),
    Transaction(Transaction),
}

impl CanonicalData {
    /// The kind of object this is.
    pub fn object_type(&self) -> super::ObjectType {
        use super::ObjectType as T;
        match self {
            CanonicalData::Customer(_) => T::Customer,
            CanonicalData::Invoice(_) => T::Invoice,
            CanonicalData::CreditNote(_) => T::CreditNote,
            CanonicalData::Subscription(_) => T::Subscription,
            CanonicalData::Transaction(_) => T::Transaction,
        }
    }

    /// The stored JSON: the one place canonical objects become `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        let v = match self {
            CanonicalData::Customer(x) => serde_json::to_value(x),
            CanonicalData::Invoice(x) => serde_json::to_value(x),
            CanonicalData::CreditNote(x) => serde_json::to_value(x),
            CanonicalData::Subscription(x) => serde_json::to_value(x),
            CanonicalData::Transaction(x) => serde_json::to_value(x),
        };
        // These structs have string keys, integers, strings and nulls only: nothing that
        // serde_json cannot represent.
        v.expect("canonical structs always serialize to JSON")
    }
}

macro_rules! from_kind {
    ($($kind:ident),*) => {$(
        impl From<$kind> for CanonicalData {
            fn from(x: $kind) -> Self {
                CanonicalData::$kind(x)
            }
        }
    )*};
}
from_kind!(Customer, Invoice, CreditNote, Subscription, Transaction);

impl From<CanonicalData> for Value {
    fn from(d: CanonicalData) -> Value {
        d.to_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_and_absent_stay_apart() {
        let line = InvoiceLine {
            id: None,
            description: Some("Seat".into()),
            quantity: Some(2),
            amount: 1000,
            tax: 0,
            period_start: None,
            period_end: Some(None),
        };
        assert_eq!(
            serde_json::to_value(&line).unwrap(),
            json!({"id": null, "description": "Seat", "quantity": 2, "amount": 1000,
                   "tax": 0, "period_end": null})
        );
        let t = CanonicalData::from(Transaction {
            kind: TransactionKind::Refund,
            customer_id: None,
            invoice_id: None,
            currency: Some("EUR".into()),
            amount: 5,
            status: None,
            occurred_at: None,
            amount_refunded: None,
            charge_id: Some(None),
        });
        assert_eq!(t.object_type(), super::super::ObjectType::Transaction);
        let v = t.to_value();
        assert_eq!(v["kind"], "refund");
        assert!(v.get("amount_refunded").is_none());
        assert_eq!(v.get("charge_id"), Some(&Value::Null));
        let c = CanonicalData::from(Customer {
            email: None,
            name: None,
            address: None,
            tax_ids: vec![TaxId::vat("DE1")],
            tax_exempt: "none".into(),
            status: None,
        })
        .to_value();
        assert_eq!(c["tax_ids"], json!([{"type": "vat", "value": "DE1"}]));
        assert!(c.get("status").is_none());
    }
}
