//! Cross-object data-quality checks: what one object's `data` claims about others of the same
//! connection. The per-object checks are [`super::quality`]; these need the referenced objects,
//! which `crate::actors::cross_check` reads from the store after each apply and hands here.
//!
//! Pure functions over canonical `data`; money is integer minor units.

use std::collections::HashMap;

use serde_json::Value;

use super::quality::Finding;
use super::ObjectType;

/// A reference (`customer_id`, …) that no stored object of the connection has.
pub const UNRESOLVED_REFERENCE: &str = "unresolved_reference";
/// A credit note whose `total` exceeds its invoice's `total`.
pub const CREDIT_EXCEEDS_INVOICE: &str = "credit_exceeds_invoice";
/// An invoice's `amount_paid` differs from the succeeded charges seen for it.
pub const AMOUNT_PAID_MISMATCH: &str = "amount_paid_mismatch";

/// Every cross-object code (these findings are re-checked and cleared; the per-object ones
/// belong to their version for good).
pub const CODES: [&str; 3] = [
    UNRESOLVED_REFERENCE,
    CREDIT_EXCEEDS_INVOICE,
    AMOUNT_PAID_MISMATCH,
];

/// The reference fields of canonical `data` and the kind each names.
const REFERENCE_FIELDS: [(&str, ObjectType); 3] = [
    ("customer_id", ObjectType::Customer),
    ("invoice_id", ObjectType::Invoice),
    ("subscription_id", ObjectType::Subscription),
];

/// One reference of an object: the field, the canonical id it holds, and the kind it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub field: &'static str,
    pub target_id: String,
    pub target_type: ObjectType,
}

/// The references `data` of this kind makes (a `null` or absent field makes none; an object
/// never references itself through these fields).
pub fn references(object_type: ObjectType, data: &Value) -> Vec<Reference> {
    REFERENCE_FIELDS
        .iter()
        .filter(|(_, kind)| *kind != object_type)
        .filter_map(|(field, kind)| {
            let id = data.get(*field)?.as_str()?;
            Some(Reference {
                field,
                target_id: id.to_owned(),
                target_type: *kind,
            })
        })
        .collect()
}

/// The provider object id a canonical id names within a connection of `provider`
/// (`stripe:cus_1` → `cus_1`); `None` for another provider's id.
pub fn local_id<'a>(provider: &str, canonical: &'a str) -> Option<&'a str> {
    canonical
        .strip_prefix(provider)
        .and_then(|rest| rest.strip_prefix(':'))
}

/// What the checks may look at: objects of one connection by (kind, provider id).
pub struct Neighbourhood<'a> {
    pub provider: &'a str,
    pub objects: &'a HashMap<(ObjectType, String), Value>,
}

impl Neighbourhood<'_> {
    fn get(&self, kind: ObjectType, canonical: &str) -> Option<&Value> {
        let local = local_id(self.provider, canonical)?;
        self.objects.get(&(kind, local.to_owned()))
    }
}

/// References of `data` that do not resolve in `n` (its targets must all have been looked up).
pub fn unresolved(object_type: ObjectType, data: &Value, n: &Neighbourhood) -> Vec<Finding> {
    references(object_type, data)
        .into_iter()
        .filter(|r| n.get(r.target_type, &r.target_id).is_none())
        .map(|r| Finding {
            code: UNRESOLVED_REFERENCE,
            message: format!(
                "{} {} is no {} of this connection",
                r.field,
                r.target_id,
                r.target_type.as_str()
            ),
        })
        .collect()
}

fn int(data: &Value, key: &str) -> Option<i64> {
    data.get(key).and_then(Value::as_i64)
}

fn same_currency(a: &Value, b: &Value) -> bool {
    let cur = |v: &Value| {
        v.get("currency")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
    };
    cur(a) == cur(b)
}

/// A credit note larger than its invoice (same currency; an unresolved invoice says nothing).
pub fn credit_exceeds_invoice(credit_note: &Value, n: &Neighbourhood) -> Option<Finding> {
    let invoice_id = credit_note.get("invoice_id")?.as_str()?;
    let invoice = n.get(ObjectType::Invoice, invoice_id)?;
    let (credit, total) = (int(credit_note, "total")?, int(invoice, "total")?);
    (same_currency(credit_note, invoice) && credit > total).then(|| Finding {
        code: CREDIT_EXCEEDS_INVOICE,
        message: format!("credit note total {credit} exceeds invoice {invoice_id} total {total}"),
    })
}

/// An invoice whose `amount_paid` is not the sum of the succeeded charges that reference it
/// (`transactions`: every transaction of the connection naming it). Refunds do not lower
/// `amount_paid` (it is what was paid). Silent when no charge references the invoice: a
/// provider that gives no transactions, or pays out of band, says nothing to compare.
pub fn amount_paid_mismatch(invoice: &Value, transactions: &[&Value]) -> Option<Finding> {
    let paid = int(invoice, "amount_paid")?;
    let charges: Vec<&Value> = transactions
        .iter()
        .copied()
        .filter(|t| t.get("kind").and_then(Value::as_str) == Some("charge"))
        .filter(|t| same_currency(t, invoice))
        .collect();
    if charges.is_empty() {
        return None;
    }
    let seen = charges
        .iter()
        .filter(|t| t.get("status").and_then(Value::as_str) == Some("succeeded"))
        .filter_map(|t| int(t, "amount"))
        .fold(0i64, i64::saturating_add);
    (seen != paid).then(|| Finding {
        code: AMOUNT_PAID_MISMATCH,
        message: format!("amount_paid is {paid}, succeeded charges for it sum to {seen}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hood(objects: &HashMap<(ObjectType, String), Value>) -> Neighbourhood<'_> {
        Neighbourhood {
            provider: "stripe",
            objects,
        }
    }

    #[test]
    fn references_resolve_only_within_the_provider_and_kind() {
        let mut objects = HashMap::new();
        objects.insert((ObjectType::Customer, "cus_1".to_owned()), json!({}));
        let n = hood(&objects);
        let ok = json!({"customer_id": "stripe:cus_1", "subscription_id": null});
        assert_eq!(unresolved(ObjectType::Invoice, &ok, &n), vec![]);
        let bad = json!({"customer_id": "paddle:cus_1", "invoice_id": "stripe:cus_1"});
        let found = unresolved(ObjectType::Transaction, &bad, &n);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].message.contains("customer_id paddle:cus_1"));
        assert_eq!(local_id("stripe", "stripe:in_1:x"), Some("in_1:x"));
        assert_eq!(local_id("stripe", "stripex:in_1"), None);
    }

    #[test]
    fn credit_note_larger_than_its_invoice_is_flagged() {
        let mut objects = HashMap::new();
        objects.insert(
            (ObjectType::Invoice, "in_1".to_owned()),
            json!({"currency": "EUR", "total": 1000}),
        );
        let n = hood(&objects);
        let note =
            |total: i64| json!({"invoice_id": "stripe:in_1", "currency": "EUR", "total": total});
        assert_eq!(credit_exceeds_invoice(&note(1000), &n), None);
        assert_eq!(
            credit_exceeds_invoice(&note(1001), &n).map(|f| f.code),
            Some(CREDIT_EXCEEDS_INVOICE)
        );
    }

    #[test]
    fn amount_paid_is_compared_with_succeeded_charges_only() {
        let invoice = json!({"currency": "USD", "amount_paid": 1000});
        let charge = |amount: i64, status: &str| json!({"kind": "charge", "currency": "USD", "amount": amount, "status": status});
        let refund =
            json!({"kind": "refund", "currency": "USD", "amount": 300, "status": "succeeded"});
        let (ok, failed) = (charge(1000, "succeeded"), charge(1000, "failed"));
        assert_eq!(amount_paid_mismatch(&invoice, &[]), None);
        assert_eq!(
            amount_paid_mismatch(&invoice, &[&ok, &failed, &refund]),
            None
        );
        let short = charge(400, "succeeded");
        assert_eq!(
            amount_paid_mismatch(&invoice, &[&short]).map(|f| f.code),
            Some(AMOUNT_PAID_MISMATCH)
        );
    }
}
