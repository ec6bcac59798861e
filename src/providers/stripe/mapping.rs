//! Maps Stripe objects (any API version from 2020 on: old `tax`/`tax_amounts` and newer
//! `total_taxes`/`taxes` fields alike) to canonical objects.

use serde_json::Value;

use crate::model::canonical::{
    Address, CanonicalData, CreditNote, Customer, Invoice, InvoiceLine, Subscription,
    SubscriptionItem, TaxId, Transaction, TransactionKind,
};
use crate::model::time::{secs_to_micros, secs_to_rfc3339};
use crate::model::{ObjectType, Observation};
use crate::providers::{ParseError, Stream};

/// The lists a pull walks, in order, and the kind of canonical object each holds
/// (`ProviderInfo::streams`).
pub(super) const STREAMS: &[Stream] = &[
    Stream::windowed("customers", ObjectType::Customer),
    Stream::windowed("invoices", ObjectType::Invoice),
    Stream::windowed("credit_notes", ObjectType::CreditNote),
    Stream::windowed("subscriptions", ObjectType::Subscription),
    Stream::windowed("charges", ObjectType::Transaction),
    Stream::windowed("refunds", ObjectType::Transaction),
];

/// Lifecycle rank of a deletion: nothing at the same provider time comes after it.
const DELETED_RANK: i64 = i64::MAX;

/// Maps the object of an event. `Ok(None)` for objects billsync does not map.
pub fn observe(
    event_type: &str,
    created: i64,
    object: &Value,
) -> Result<Option<Observation>, ParseError> {
    let kind = object.get("object").and_then(Value::as_str).unwrap_or("");
    let object_type = match kind {
        "customer" => ObjectType::Customer,
        "invoice" => ObjectType::Invoice,
        "credit_note" => ObjectType::CreditNote,
        "subscription" => ObjectType::Subscription,
        "charge" | "refund" => ObjectType::Transaction,
        _ => return Ok(None),
    };
    let id = object
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ParseError(format!("{kind} has no `id`")))?;
    // A deleted object: `customer.deleted` / `invoice.deleted` events, or the stub the API
    // returns for a deleted object (`{"id", "object", "deleted": true}`).
    let stub = object.get("deleted").and_then(Value::as_bool) == Some(true);
    let deleted = stub || matches!(event_type, "customer.deleted" | "invoice.deleted");
    let o = Obj(object);
    let (data, rank) = if stub {
        // No fields to map: the actor keeps the last known data (docs/api.md).
        (Value::Null, DELETED_RANK)
    } else {
        let (data, rank): (CanonicalData, i64) = match kind {
            "customer" => (customer(&o).into(), 0),
            "invoice" => invoice(&o).map(|(d, r)| (d.into(), r))?,
            "credit_note" => credit_note(&o).map(|(d, r)| (d.into(), r))?,
            "subscription" => subscription(&o).map(|(d, r)| (d.into(), r))?,
            "charge" => charge(&o).map(|(d, r)| (d.into(), r))?,
            _ => refund(&o).map(|(d, r)| (d.into(), r))?,
        };
        (data.to_value(), rank)
    };
    let order_key = secs_to_micros(created);
    Ok(Some(Observation {
        object_type,
        provider_id: id.to_owned(),
        data,
        deleted,
        order_key,
        tie_rank: if deleted { DELETED_RANK } else { rank },
        provider_updated_at: order_key,
        carried: &[],
    }))
}

/// Read access to a Stripe object's fields with Stripe's conventions.
struct Obj<'a>(&'a Value);

impl<'a> Obj<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn str(&self, key: &str) -> Option<String> {
        self.get(key).and_then(Value::as_str).map(str::to_owned)
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    fn amount(&self, key: &str) -> Result<i64, ParseError> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| ParseError(format!("`{key}` is not an integer amount"))),
        }
    }

    fn time(&self, key: &str) -> Option<String> {
        self.int(key).and_then(secs_to_rfc3339)
    }

    /// A reference to another object: its id string, or the id of an expanded object.
    fn reference(&self, key: &str) -> Option<String> {
        let id = match self.get(key) {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(Value::Object(m)) => m.get("id").and_then(Value::as_str),
            _ => None,
        };
        id.map(|id| format!("stripe:{id}"))
    }

    /// The upper-case ISO 4217 currency; one that is not a code is a parse error.
    fn currency(&self) -> Result<Option<String>, ParseError> {
        match self.get("currency") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(c)) => crate::model::money::currency_code(c)
                .map(Some)
                .map_err(|e| ParseError(format!("`currency`: {e}"))),
            Some(_) => Err(ParseError("`currency` is not a string".into())),
        }
    }

    fn list(&self, key: &str) -> Vec<Obj<'a>> {
        let items = match self.get(key) {
            Some(Value::Array(a)) => Some(a),
            Some(Value::Object(m)) => m.get("data").and_then(Value::as_array),
            _ => None,
        };
        items.map_or_else(Vec::new, |a| a.iter().map(Obj).collect())
    }

    /// Sums `amount` over a list field (e.g. `total_taxes`, `tax_amounts`).
    fn sum_amounts(&self, key: &str) -> Result<i64, ParseError> {
        self.list(key).iter().try_fold(0i64, |acc, item| {
            Ok(acc.saturating_add(item.amount("amount")?))
        })
    }

    /// Tax: newer API versions list `total_taxes`/`taxes`, older ones `tax`/`tax_amounts`.
    fn tax(&self, scalar: Option<&str>, lists: &[&str]) -> Result<i64, ParseError> {
        if let Some(key) = scalar {
            if let Some(v) = self.int(key) {
                return Ok(v);
            }
        }
        for key in lists {
            if self.get(key).is_some() {
                return self.sum_amounts(key);
            }
        }
        Ok(0)
    }
}

fn customer(o: &Obj) -> Customer {
    let address = o.get("address").map(Obj).map(|a| Address {
        line1: a.str("line1"),
        city: a.str("city"),
        state: a.str("state"),
        postal_code: a.str("postal_code"),
        country: a.str("country"),
    });
    let tax_ids = o
        .list("tax_ids")
        .iter()
        .map(|t| TaxId {
            kind: t.str("type"),
            value: t.str("value"),
        })
        .collect();
    Customer {
        email: o.str("email"),
        name: o.str("name"),
        address,
        tax_ids,
        tax_exempt: o
            .get("tax_exempt")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_owned(),
        status: None,
    }
}

fn lines(o: &Obj) -> Result<Vec<InvoiceLine>, ParseError> {
    o.list("lines")
        .iter()
        .map(|l| {
            let period = l.get("period").map(Obj);
            Ok(InvoiceLine {
                id: l.str("id"),
                description: l.str("description"),
                quantity: l.int("quantity"),
                amount: l.amount("amount")?,
                tax: l.tax(None, &["taxes", "tax_amounts"])?,
                period_start: Some(period.as_ref().and_then(|p| p.time("start"))),
                period_end: Some(period.as_ref().and_then(|p| p.time("end"))),
            })
        })
        .collect()
}

fn invoice(o: &Obj) -> Result<(Invoice, i64), ParseError> {
    let status = o.get("status").and_then(Value::as_str).unwrap_or("draft");
    let rank = match status {
        "draft" => 0,
        "open" => 1,
        "uncollectible" => 2,
        _ => 3, // paid, void: final
    };
    // Since the 2025 API versions the subscription moved under `parent`.
    let subscription_id = o.reference("subscription").or_else(|| {
        o.get("parent")
            .and_then(|p| p.get("subscription_details"))
            .map(Obj)
            .and_then(|s| s.reference("subscription"))
    });
    let issued_at = o
        .get("status_transitions")
        .map(Obj)
        .and_then(|t| t.time("finalized_at"));
    let data = Invoice {
        customer_id: o.reference("customer"),
        subscription_id,
        status: status.to_owned(),
        currency: o.currency()?,
        subtotal: o.amount("subtotal")?,
        discount: o.sum_amounts("total_discount_amounts")?,
        tax: o.tax(Some("tax"), &["total_taxes", "total_tax_amounts"])?,
        total: o.amount("total")?,
        amount_paid: o.amount("amount_paid")?,
        amount_due: o.amount("amount_due")?,
        issued_at,
        period_start: o.time("period_start"),
        period_end: o.time("period_end"),
        lines: lines(o)?,
    };
    Ok((data, rank))
}

fn credit_note(o: &Obj) -> Result<(CreditNote, i64), ParseError> {
    let status = o.get("status").and_then(Value::as_str).unwrap_or("issued");
    let data = CreditNote {
        invoice_id: o.reference("invoice"),
        customer_id: o.reference("customer"),
        status: status.to_owned(),
        currency: o.currency()?,
        subtotal: o.amount("subtotal")?,
        tax: o.tax(None, &["total_taxes", "tax_amounts"])?,
        total: o.amount("total")?,
        issued_at: o.time("created"),
        reason: o.str("reason"),
        lines: lines(o)?,
    };
    Ok((data, i64::from(status == "void")))
}

fn subscription(o: &Obj) -> Result<(Subscription, i64), ParseError> {
    let status = o.get("status").and_then(Value::as_str).unwrap_or("active");
    let rank = match status {
        "incomplete" => 0,
        "trialing" => 1,
        "active" => 2,
        "past_due" => 3,
        "unpaid" | "paused" => 4,
        _ => 5, // canceled, incomplete_expired: final
    };
    let items = o.list("items");
    // Since the 2025 API versions the billing period lives on each item.
    let period = |key: &str| {
        o.time(key)
            .or_else(|| items.first().and_then(|i| i.time(key)))
    };
    let currency = match o.currency()? {
        None => match items.first().and_then(|i| i.get("price")).map(Obj) {
            Some(price) => price.currency()?,
            None => None,
        },
        c => c,
    };
    let data = Subscription {
        customer_id: o.reference("customer"),
        status: status.to_owned(),
        currency,
        current_period_start: period("current_period_start"),
        current_period_end: period("current_period_end"),
        cancel_at: o.time("cancel_at"),
        canceled_at: o.time("canceled_at"),
        items: items
            .iter()
            .map(|i| SubscriptionItem {
                id: i.str("id"),
                price_id: i.get("price").map(Obj).and_then(|p| p.str("id")),
                quantity: i.int("quantity"),
            })
            .collect(),
    };
    Ok((data, rank))
}

fn transaction(o: &Obj, kind: TransactionKind) -> Result<Transaction, ParseError> {
    Ok(Transaction {
        kind,
        customer_id: o.reference("customer"),
        invoice_id: o.reference("invoice"),
        currency: o.currency()?,
        amount: o.amount("amount")?,
        status: o.str("status"),
        occurred_at: o.time("created"),
        amount_refunded: None,
        charge_id: None,
    })
}

fn charge(o: &Obj) -> Result<(Transaction, i64), ParseError> {
    let refunded = o.amount("amount_refunded")?;
    let settled = !matches!(o.get("status").and_then(Value::as_str), Some("pending"));
    // Later lifecycle: settled beats pending, more refunded beats less.
    let rank = (i64::from(settled) << 40) | refunded.clamp(0, (1 << 40) - 1);
    let data = Transaction {
        amount_refunded: Some(refunded),
        ..transaction(o, TransactionKind::Charge)?
    };
    Ok((data, rank))
}

fn refund(o: &Obj) -> Result<(Transaction, i64), ParseError> {
    let rank = match o.get("status").and_then(Value::as_str) {
        Some("pending") | Some("requires_action") => 0,
        _ => 1,
    };
    let data = Transaction {
        charge_id: Some(o.reference("charge")),
        ..transaction(o, TransactionKind::Refund)?
    };
    Ok((data, rank))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let text = include_str!("../../../tests/data/stripe-openapi-fixtures3.json");
        let all: Value = serde_json::from_str(text).unwrap();
        all["resources"][name].clone()
    }

    #[test]
    fn every_mapped_fixture_resource_maps() {
        for (name, kind) in [
            ("customer", ObjectType::Customer),
            ("invoice", ObjectType::Invoice),
            ("credit_note", ObjectType::CreditNote),
            ("subscription", ObjectType::Subscription),
            ("charge", ObjectType::Transaction),
            ("refund", ObjectType::Transaction),
        ] {
            let obs = observe("x.updated", 100, &fixture(name)).unwrap().unwrap();
            assert_eq!(obs.object_type, kind, "{name}");
            assert!(obs.data.is_object(), "{name}");
            assert_eq!(obs.order_key, 100_000_000);
        }
    }

    #[test]
    fn invoice_maps_money_currency_and_references() {
        let inv = json!({
            "id": "in_1", "object": "invoice", "customer": "cus_1", "status": "paid",
            "currency": "eur", "subtotal": 1000, "total": 1190, "amount_paid": 1190,
            "amount_due": 1190, "total_taxes": [{"amount": 190}],
            "total_discount_amounts": [{"amount": 0}],
            "lines": {"object": "list", "data": [{"id": "il_1", "amount": 1000, "quantity": 1,
                "taxes": [{"amount": 190}], "period": {"start": 0, "end": 60}}]}
        });
        let obs = observe("invoice.paid", 7, &inv).unwrap().unwrap();
        assert_eq!(obs.data["currency"], "EUR");
        assert_eq!(obs.data["customer_id"], "stripe:cus_1");
        assert_eq!(obs.data["tax"], 190);
        assert_eq!(obs.data["lines"][0]["tax"], 190);
        assert_eq!(obs.data["lines"][0]["period_end"], "1970-01-01T00:01:00Z");
        assert_eq!(obs.tie_rank, 3);
    }

    #[test]
    fn deleted_stub_keeps_no_data_and_outranks_everything() {
        let stub = json!({"id": "cus_1", "object": "customer", "deleted": true});
        let obs = observe("customer.deleted", 7, &stub).unwrap().unwrap();
        assert!(obs.deleted);
        assert!(obs.data.is_null());
        assert_eq!(obs.tie_rank, DELETED_RANK);
    }

    #[test]
    fn non_integer_amount_is_a_parse_error() {
        let inv = json!({"id": "in_1", "object": "invoice", "total": "12.00"});
        assert!(observe("invoice.updated", 7, &inv).is_err());
    }
}
