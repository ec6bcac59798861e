//! Maxio customers' billing address: the customer object's own address fields are its
//! *shipping* address; the billing address is on its payment profiles, a separate resource
//! (`/payment_profiles.json?customer_id=`, docs/providers/maxio.md "Addresses"). Every customer
//! read names that list as a sub-read (`crate::providers::subreads`), the profiles are held with the
//! customer under `payment_profiles`, and the mapping takes the newest profile's billing
//! address, or the shipping address of a customer without one.

use serde_json::Value;

use crate::model::canonical::Address;
use crate::providers::json_answer;
use crate::providers::minor_units::Obj;
use crate::providers::subreads::SubRead;
use crate::providers::{ApiRequest, ParseError, SubPage};

/// The part name of the sub-read, and where the profiles are held in the customer.
pub const PART: &str = "payment_profiles";

/// One page holds every profile a customer has in practice; Maxio clamps `per_page` at 200.
const PER_PAGE: usize = 200;

/// The sub-reads of an answer: each customer (a wrapped `{"customer": {...}}`, alone or in a
/// list) whose payment profiles are not held yet.
pub fn sub_reads(answer: &Value) -> Vec<SubRead> {
    let wrapped: Vec<(String, &Value)> = match answer {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("/{i}/customer"), w))
            .collect(),
        other => vec![("/customer".to_owned(), other)],
    };
    wrapped
        .into_iter()
        .filter_map(|(pointer, w)| {
            let customer = w.get("customer")?;
            if customer.get(PART).is_some() {
                return None;
            }
            let id = crate::providers::minor_units::id_text(customer.get("id"))?;
            Some(SubRead {
                pointer,
                part: PART,
                request: ApiRequest {
                    path: "/payment_profiles.json".into(),
                    query: vec![
                        ("customer_id".into(), id),
                        ("page".into(), "1".into()),
                        ("per_page".into(), PER_PAGE.to_string()),
                    ],
                },
            })
        })
        .collect()
}

/// A page of profiles (`[{"payment_profile": {...}}]`). Pages are numbered and an answer does
/// not say which it was, so one page is read: 200 profiles of one customer.
pub fn parse_sub_page(body: &[u8]) -> Result<SubPage, ParseError> {
    let v = json_answer::parse(body, "payment profiles")?;
    let items = v
        .as_array()
        .ok_or_else(|| ParseError("payment profiles are not a list".into()))?
        .iter()
        .map(|w| {
            w.get("payment_profile")
                .cloned()
                .unwrap_or_else(|| w.clone())
        })
        .collect();
    Ok(SubPage { items, next: None })
}

/// Holds the profiles with the customer (`object` is the customer, unwrapped).
pub fn merge_sub(object: &mut Value, items: Vec<Value>) {
    if let Some(o) = object.as_object_mut() {
        o.insert(PART.to_owned(), Value::Array(items));
    }
}

/// The canonical address: the billing address of the newest payment profile that has one,
/// else the customer's own (shipping) address.
pub fn address(customer: &Obj) -> Address {
    let newest = customer
        .list(PART)
        .into_iter()
        .filter(|p| p.s("billing_address").is_some() || p.s("billing_country").is_some())
        .max_by_key(|p| p.int("id").unwrap_or(0));
    match newest {
        Some(p) => Address {
            line1: p.str("billing_address"),
            city: p.str("billing_city"),
            state: p.str("billing_state"),
            postal_code: p.str("billing_zip"),
            country: p.str("billing_country"),
        },
        None => Address {
            line1: customer.str("address"),
            city: customer.str("city"),
            state: customer.str("state"),
            postal_code: customer.str("zip"),
            country: customer.str("country"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::subreads::assert_one_read;
    use serde_json::json;

    #[test]
    fn the_newest_profile_billing_address_wins_over_the_shipping_address() {
        let customer = json!({"id": 7, "address": "1 Warehouse Way", "country": "NL",
        "payment_profiles": [
            {"id": 70, "billing_address": "Old St 1", "billing_country": "DE"},
            {"id": 71, "billing_address": "New St 2", "billing_city": "Paris",
             "billing_zip": "75001", "billing_country": "FR"},
        ]});
        let a = address(&Obj(&customer));
        assert_eq!(a.line1.as_deref(), Some("New St 2"));
        assert_eq!(a.country.as_deref(), Some("FR"));
        let no_profile = json!({"id": 8, "address": "1 Warehouse Way", "country": "NL",
            "payment_profiles": []});
        assert_eq!(
            address(&Obj(&no_profile)).line1.as_deref(),
            Some("1 Warehouse Way")
        );
    }

    #[test]
    fn customers_without_profiles_held_are_sub_read_once() {
        let list =
            json!([{"customer": {"id": 1}}, {"customer": {"id": 2, "payment_profiles": []}}]);
        let reads = sub_reads(&list);
        let path = "/payment_profiles.json";
        assert_one_read(&reads, "/0/customer", PART, path, "customer_id=1");
        assert_eq!(
            sub_reads(&json!({"customer": {"id": 3}}))[0].pointer,
            "/customer"
        );
        assert!(sub_reads(&json!({"subscription": {"id": 3}})).is_empty());
        let page = parse_sub_page(br#"[{"payment_profile": {"id": 9, "billing_country": "FR"}}]"#)
            .unwrap();
        assert_eq!(page.items, vec![json!({"id": 9, "billing_country": "FR"})]);
        let mut customer = json!({"id": 1});
        merge_sub(&mut customer, page.items);
        assert!(sub_reads(&json!({"customer": customer})).is_empty());
    }
}
