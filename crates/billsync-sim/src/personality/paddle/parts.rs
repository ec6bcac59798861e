//! A Paddle customer's addresses (`add_`) and businesses (`biz_`, whose `tax_identifier` is
//! the customer's tax ID) as Paddle keeps them: separate resources under
//! `/customers/{id}/addresses|businesses`, never inside the customer entity, announced by
//! their own `address.*` and `business.*` events that carry the part with its
//! `customer_id`. The ledger holds them in the customer (`addresses`, `businesses`) so that
//! the truth is whole; `present` takes them out of everything the API and webhooks show.
//! docs/providers/paddle.md, "Addresses and businesses".

use serde_json::{json, Value};

use super::shapes::paddle_id;

/// The customer fields that hold its parts in the ledger, and each part's event entity.
pub const PARTS: &[(&str, &str)] = &[("addresses", "address"), ("businesses", "business")];

/// A customer's address from the generator's (Stripe-shaped) one. One address a customer,
/// with the id the customer's transactions and subscriptions name (`add_` + its id).
pub fn address(customer: &str, a: &Value, created: &Value, updated: &Value) -> Value {
    json!({
        "id": paddle_id("add", customer), "customer_id": customer, "description": null,
        "first_line": a["line1"], "second_line": a["line2"], "city": a["city"],
        "postal_code": a["postal_code"], "region": a["state"], "country_code": a["country"],
        "custom_data": null, "status": "active", "created_at": created, "updated_at": updated,
        "import_meta": null,
    })
}

/// The `index`-th business of a customer, holding one of its tax IDs.
pub fn business(
    customer: &str,
    index: usize,
    name: &Value,
    tax_identifier: &Value,
    created: &Value,
    updated: &Value,
) -> Value {
    let suffix = char::from(b'a' + (index % 26) as u8);
    json!({
        "id": format!("{}{suffix}", paddle_id("biz", customer)), "customer_id": customer,
        "name": if name.is_string() { name.clone() } else { json!("Business") },
        "company_number": null, "tax_identifier": tax_identifier, "status": "active",
        "contacts": [], "created_at": created, "updated_at": updated,
        "custom_data": null, "import_meta": null,
    })
}

/// An entity as the API and webhooks show it: a customer without its parts.
pub fn present(entity: &Value) -> Value {
    let mut shown = entity.clone();
    if let Some(o) = shown.as_object_mut() {
        for (field, _) in PARTS {
            o.remove(*field);
        }
    }
    shown
}

/// The items of a customer's `field` (`addresses`, `businesses`) as held.
pub fn held<'a>(customer: &'a Value, field: &str) -> &'a [Value] {
    customer
        .get(field)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The `address.*` and `business.*` events announcing how a customer's parts changed from
/// `before` to `after`: new ones `created`, changed ones `updated`, and ones gone `updated`
/// as `archived` (Paddle archives, never deletes, an address or business).
pub fn part_events(before: Option<&Value>, after: &Value) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for (field, entity) in PARTS {
        let old = before.map_or(&[][..], |b| held(b, field));
        let new = held(after, field);
        for part in new {
            match old.iter().find(|o| o.get("id") == part.get("id")) {
                None => out.push((event_type(entity, "created"), part.clone())),
                Some(o) if o != part => out.push((event_type(entity, "updated"), part.clone())),
                Some(_) => {}
            }
        }
        for gone in old
            .iter()
            .filter(|o| !new.iter().any(|n| n.get("id") == o.get("id")))
        {
            let mut archived = gone.clone();
            archived["status"] = json!("archived");
            archived["updated_at"] = after["updated_at"].clone();
            out.push((event_type(entity, "updated"), archived));
        }
    }
    out
}

fn event_type(entity: &str, action: &str) -> &'static str {
    match (entity, action) {
        ("address", "created") => "address.created",
        ("address", _) => "address.updated",
        ("business", "created") => "business.created",
        _ => "business.updated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(tax_ids: &[&str], city: &str) -> Value {
        let (c, u) = (json!("2025-01-01T00:00:00Z"), json!("2025-01-02T00:00:00Z"));
        let a = json!({"line1": "1 Main St", "line2": null, "city": city, "state": null,
            "postal_code": "10115", "country": "DE"});
        let businesses: Vec<Value> = tax_ids
            .iter()
            .enumerate()
            .map(|(i, t)| business("ctm_1", i, &json!("A"), &json!(t), &c, &u))
            .collect();
        json!({"id": "ctm_1", "name": "A", "updated_at": u,
            "addresses": [address("ctm_1", &a, &c, &u)], "businesses": businesses})
    }

    #[test]
    fn customers_are_shown_without_their_parts() {
        let shown = present(&customer(&["DE1"], "Berlin"));
        assert!(shown.get("addresses").is_none() && shown.get("businesses").is_none());
        assert_eq!(shown["name"], "A");
        let held = customer(&["DE1"], "Berlin");
        assert_eq!(held["addresses"][0]["id"], "add_1");
        assert_eq!(held["addresses"][0]["country_code"], "DE");
        assert_eq!(held["businesses"][0]["tax_identifier"], "DE1");
    }

    #[test]
    fn part_changes_are_announced_one_event_each_and_removals_archive() {
        let types = |events: Vec<(&'static str, Value)>| -> Vec<&'static str> {
            events.iter().map(|(t, _)| *t).collect()
        };
        let first = customer(&["DE1", "GB2"], "Berlin");
        assert_eq!(
            types(part_events(None, &first)),
            ["address.created", "business.created", "business.created"]
        );
        assert!(part_events(Some(&first), &first).is_empty());
        let moved = customer(&["DE9"], "Paris");
        let events = part_events(Some(&first), &moved);
        assert_eq!(
            types(events.clone()),
            ["address.updated", "business.updated", "business.updated"]
        );
        assert_eq!(events[2].1["status"], "archived");
        assert_eq!(events[2].1["customer_id"], "ctm_1");
    }
}
