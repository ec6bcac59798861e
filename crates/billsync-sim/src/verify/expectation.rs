//! What `verify` expects billsync to store for a simulated object. Two sources, kept apart
//! (the crate's `lib.rs` says which checks rest on which, and why):
//!
//! - [`Expectation`]: billsync's own mapping of a provider object (collection, canonical id,
//!   canonical data), passed in by the caller, since this crate does not link billsync;
//! - [`independent`]: the simulator's own world, checked in addition: `deleted`, and the
//!   currency and minor-unit amount of invoices, credit notes and transactions
//!   ([`WorldFacts`]).

use serde_json::Value;

pub use crate::state::WorldFacts;

/// Where and how billsync should store one provider object, according to a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// The read API's collection (`customers`, `invoices`, `credit_notes`, `subscriptions`,
    /// `transactions`; docs/api.md).
    pub collection: String,
    /// The canonical id as the read API answers it (`stripe:in_123`).
    pub id: String,
    /// The canonical `data` of the object.
    pub data: Value,
}

/// A mapping from provider objects to what billsync stores. billsync implements it with its
/// providers' own mappings (`billsync::sim_expectation`).
pub trait Expectation: Send + Sync {
    /// What billsync should store for `provider_object` of `provider` (`"stripe"`, ...):
    /// `Ok(None)` when it stores nothing for it, `Err` when the object does not map.
    fn expect(&self, provider: &str, provider_object: &Value) -> Result<Option<Expected>, String>;
}

/// The simulator's own checks of a stored object `stored` (an object of the read API, with
/// `deleted` and `data`) found in `collection`, against the simulated object's `deleted` and
/// the world's `facts`: every disagreement, as sentences.
pub fn independent(
    collection: &str,
    stored: &Value,
    deleted: bool,
    facts: &WorldFacts,
) -> Vec<String> {
    let mut wrong = Vec::new();
    if stored["deleted"].as_bool() != Some(deleted) {
        wrong.push(format!(
            "deleted is {} in billsync, {deleted} at the provider",
            stored["deleted"]
        ));
    }
    if deleted || facts.collection.as_deref() != Some(collection) {
        return wrong;
    }
    let data = &stored["data"];
    if let Some(currency) = &facts.currency {
        let got = data["currency"].as_str().unwrap_or_default();
        if !got.eq_ignore_ascii_case(currency) {
            wrong.push(format!(
                "currency is {} in billsync, {currency} in the world",
                data["currency"]
            ));
        }
    }
    if let Some(minor) = facts.minor_units {
        let field = if collection == "transactions" {
            "amount"
        } else {
            "total"
        };
        if data[field].as_i64() != Some(minor) {
            wrong.push(format!(
                "{field} is {} minor units in billsync, {minor} in the world",
                data[field]
            ));
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn invoice_facts() -> WorldFacts {
        WorldFacts::of(
            "invoices",
            &json!({"id": "in_1", "currency": "jpy", "total": 1200}),
        )
    }

    #[test]
    fn agreeing_objects_pass_and_case_of_the_currency_code_does_not_matter() {
        let stored = json!({"deleted": false, "data": {"currency": "JPY", "total": 1200}});
        assert!(independent("invoices", &stored, false, &invoice_facts()).is_empty());
    }

    #[test]
    fn a_wrong_amount_currency_or_deletion_is_named() {
        let stored = json!({"deleted": false, "data": {"currency": "USD", "total": 12}});
        let wrong = independent("invoices", &stored, false, &invoice_facts());
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(wrong[0].starts_with("currency is \"USD\""), "{wrong:?}");
        assert!(wrong[1].starts_with("total is 12 minor units"), "{wrong:?}");
        let wrong = independent("invoices", &stored, true, &invoice_facts());
        assert_eq!(
            wrong,
            vec!["deleted is false in billsync, true at the provider"]
        );
    }

    #[test]
    fn transactions_compare_their_amount_and_other_collections_only_deletion() {
        let refund = WorldFacts::of("refunds", &json!({"currency": "eur", "amount": 5}));
        let stored = json!({"deleted": false, "data": {"currency": "eur", "amount": 5}});
        assert!(independent("transactions", &stored, false, &refund).is_empty());
        // A provider that files the world's refund elsewhere: no amount to compare there.
        let elsewhere = json!({"deleted": false, "data": {}});
        assert!(independent("credit_notes", &elsewhere, false, &refund).is_empty());
        let customer = WorldFacts::of("customers", &json!({"id": "cus_1"}));
        assert_eq!(customer, WorldFacts::default());
    }
}
