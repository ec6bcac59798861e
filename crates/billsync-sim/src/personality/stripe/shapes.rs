//! How Stripe shows its objects, which is less than the simulator holds: customers' `tax_ids`
//! only when expanded, and embedded lists (`lines`, expanded `tax_ids`) cut at ten items with
//! `has_more`, the rest paged from their own endpoints. Events never expand anything. Each rule
//! is a section of docs/providers/stripe.md; billsync's reads must get past every one of them.

use serde_json::{json, Value};

/// The size of a list embedded in an object (docs/providers/stripe.md, "Sub-lists").
pub const EMBEDDED_LIST: usize = 10;

/// The `expand[]` values of a request's query, in any of Stripe's spellings
/// (`expand[]=a`, `expand[0]=a`).
pub fn expansions(query: Option<&str>) -> Vec<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "expand[]" || (k.starts_with("expand[") && k.ends_with(']')))
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// `object` as Stripe answers it, with `expand` (paths relative to the object) applied.
pub fn present(mut object: Value, expand: &[&str]) -> Value {
    let kind = object
        .get("object")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let id = object
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if object.get("deleted").and_then(Value::as_bool) == Some(true) {
        return object;
    }
    let Some(o) = object.as_object_mut() else {
        return object;
    };
    match kind.as_str() {
        "customer" => {
            // `tax_ids` is includable: absent unless expanded ("Tax IDs").
            let tax_ids = o.remove("tax_ids");
            if expand.contains(&"tax_ids") {
                let items = tax_ids
                    .as_ref()
                    .and_then(|l| l.get("data"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                o.insert(
                    "tax_ids".into(),
                    cut(&items, &format!("/v1/customers/{id}/tax_ids")),
                );
            }
        }
        "invoice" | "credit_note" => {
            let items = o
                .get("lines")
                .and_then(|l| l.get("data"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let url = format!("/v1/{}s/{id}/lines", kind);
            o.insert("lines".into(), cut(&items, &url));
        }
        _ => {}
    }
    object
}

/// An embedded list: the first page of `items`, saying whether there is more.
fn cut(items: &[Value], url: &str) -> Value {
    json!({
        "object": "list",
        "url": url,
        "has_more": items.len() > EMBEDDED_LIST,
        "data": items.iter().take(EMBEDDED_LIST).cloned().collect::<Vec<_>>(),
        "total_count": items.len(),
    })
}

/// The items of the sub-list `sub` (`tax_ids`, `lines`) of an object as held (whole).
pub fn sub_list<'a>(object: &'a Value, sub: &str) -> Option<&'a [Value]> {
    object
        .get(sub)
        .and_then(|l| l.get("data"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
}

/// The `customer.tax_id.*` events that announce how a customer's tax IDs changed from
/// `before` to `after` (either may be absent): (event type, tax_id object) pairs.
pub fn tax_id_events(before: Option<&Value>, after: &Value) -> Vec<(&'static str, Value)> {
    let items = |v: Option<&Value>| -> Vec<Value> {
        v.filter(|o| o.get("deleted").and_then(Value::as_bool) != Some(true))
            .and_then(|o| sub_list(o, "tax_ids"))
            .map(<[Value]>::to_vec)
            .unwrap_or_default()
    };
    let (old, new) = (items(before), items(Some(after)));
    let mut out = Vec::new();
    for t in &old {
        if !new.iter().any(|n| n.get("id") == t.get("id")) {
            out.push(("customer.tax_id.deleted", t.clone()));
        }
    }
    for t in &new {
        match old.iter().find(|o| o.get("id") == t.get("id")) {
            None => out.push(("customer.tax_id.created", t.clone())),
            Some(o) if o != t => out.push(("customer.tax_id.updated", t.clone())),
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> Value {
        json!({"id": "cus_1", "object": "customer", "name": "A",
            "tax_ids": {"object": "list", "has_more": false, "data": [
                {"id": "txi_1", "object": "tax_id", "type": "eu_vat", "value": "DE1", "customer": "cus_1"}]}})
    }

    #[test]
    fn customers_show_tax_ids_only_when_expanded() {
        assert!(present(customer(), &[]).get("tax_ids").is_none());
        let expanded = present(customer(), &["tax_ids"]);
        assert_eq!(expanded["tax_ids"]["data"][0]["value"], "DE1");
    }

    #[test]
    fn embedded_lines_stop_at_ten_and_say_there_is_more() {
        let lines: Vec<Value> = (0..25).map(|i| json!({"id": format!("il_{i}")})).collect();
        let inv =
            json!({"id": "in_1", "object": "invoice", "lines": {"object": "list", "data": lines}});
        let shown = present(inv, &[]);
        assert_eq!(shown["lines"]["data"].as_array().unwrap().len(), 10);
        assert_eq!(shown["lines"]["has_more"], true);
        assert_eq!(shown["lines"]["url"], "/v1/invoices/in_1/lines");
    }

    #[test]
    fn tax_id_changes_are_announced_one_event_each() {
        let mut after = customer();
        after["tax_ids"]["data"] = json!([{"id": "txi_2", "object": "tax_id", "value": "FR2"}]);
        let events = tax_id_events(Some(&customer()), &after);
        let types: Vec<&str> = events.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            types,
            ["customer.tax_id.deleted", "customer.tax_id.created"]
        );
        assert_eq!(tax_id_events(None, &customer()).len(), 1);
        assert!(tax_id_events(Some(&customer()), &customer()).is_empty());
    }
}
