//! Stripe's pull API: cursor lists (`limit`, `starting_after`, `has_more`, newest first) with
//! `created` windows, and its rate-limit answers.

use serde_json::Value;

use crate::model::ObjectType;
use crate::providers::info::ListQuery;
use crate::providers::json_answer::{self, after_last_id};
use crate::providers::subreads::item_pointer;
use crate::providers::{ApiRequest, ListPage, ParseError, SubPage, SubRead};

pub fn list_request(list: &ListQuery) -> ApiRequest {
    let mut query = vec![
        ("limit".to_owned(), list.page_size.clamp(1, 100).to_string()),
        ("created[gte]".to_owned(), list.window.0.to_string()),
        ("created[lt]".to_owned(), list.window.1.to_string()),
    ];
    if let Some(c) = list.cursor {
        query.push(("starting_after".to_owned(), c.to_owned()));
    }
    if list.stream == "subscriptions" {
        query.push(("status".to_owned(), "all".to_owned()));
    }
    query.extend(expansion(list.stream, true));
    ApiRequest {
        path: format!("/v1/{}", list.stream),
        query,
    }
}

/// The events API (last 30 days): everything that changed since `since`, newest first.
pub fn events_request(since: i64, cursor: Option<&str>) -> ApiRequest {
    let mut query = vec![
        ("limit".to_owned(), "100".to_owned()),
        ("created[gte]".to_owned(), since.to_string()),
    ];
    if let Some(c) = cursor {
        query.push(("starting_after".to_owned(), c.to_owned()));
    }
    ApiRequest {
        path: "/v1/events".into(),
        query,
    }
}

pub fn parse_list(body: &[u8]) -> Result<ListPage, ParseError> {
    let v = json_answer::parse(body, "list")?;
    if v.get("object").and_then(Value::as_str) != Some("list") {
        return Err(ParseError("answer is not a Stripe list".into()));
    }
    let objects = json_answer::array(&v, "data", "list has no `data`")?;
    let has_more = v.get("has_more").and_then(Value::as_bool).unwrap_or(false);
    let next_cursor = after_last_id(has_more, &objects, "object")?;
    Ok(ListPage {
        reached: objects
            .last()
            .and_then(|o| o.get("created"))
            .and_then(Value::as_i64),
        objects,
        next_cursor,
    })
}

/// An events page: a Stripe list of whole events.
pub fn parse_sweep(body: &[u8]) -> Result<(Vec<Vec<u8>>, Option<String>), ParseError> {
    let page = parse_list(body)?;
    Ok((json_answer::event_bodies(&page.objects)?, page.next_cursor))
}

/// A retrieve of one object; a transaction is a refund (`re_`) or a charge.
pub fn fetch_request(object_type: ObjectType, provider_id: &str) -> ApiRequest {
    let stream = match object_type {
        ObjectType::Customer => "customers",
        ObjectType::Invoice => "invoices",
        ObjectType::CreditNote => "credit_notes",
        ObjectType::Subscription => "subscriptions",
        ObjectType::Transaction if provider_id.starts_with("re_") => "refunds",
        ObjectType::Transaction => "charges",
    };
    retrieve_request(stream, provider_id)
}

/// A retrieved object: JSON with a string `id`.
pub fn parse_object(body: &[u8]) -> Result<Value, ParseError> {
    let v = json_answer::parse(body, "object")?;
    if v.get("id").and_then(Value::as_str).is_none() {
        return Err(ParseError("answer has no object `id`".into()));
    }
    Ok(v)
}

/// The expansion a read of `stream` asks for: customers' `tax_ids` are left out of customer
/// objects unless expanded (docs/providers/stripe.md, "Tax IDs").
fn expansion(stream: &str, list: bool) -> Option<(String, String)> {
    match (stream, list) {
        ("customers", true) => Some(("expand[]".into(), "data.tax_ids".into())),
        ("customers", false) => Some(("expand[]".into(), "tax_ids".into())),
        _ => None,
    }
}

/// A retrieve of one object of `stream`, with the expansions its mapping needs.
pub fn retrieve_request(stream: &str, id: &str) -> ApiRequest {
    ApiRequest {
        path: format!("/v1/{stream}/{id}"),
        query: expansion(stream, false).into_iter().collect(),
    }
}

/// The parts of the objects of an answer (a list page or one object) that it leaves out:
/// customers' tax IDs beyond the embedded page (or all of them when not expanded), and
/// invoice and credit note `lines` beyond the embedded page (docs/providers/stripe.md).
pub fn sub_reads(answer: &Value) -> Vec<SubRead> {
    let mut out = Vec::new();
    match answer.get("object").and_then(Value::as_str) {
        Some("list") => {
            for (i, object) in answer
                .get("data")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                object_sub_reads(object, item_pointer("data", i), &mut out);
            }
        }
        Some(_) => object_sub_reads(answer, String::new(), &mut out),
        None => {}
    }
    out
}

fn object_sub_reads(object: &Value, pointer: String, out: &mut Vec<SubRead>) {
    let Some(id) = object.get("id").and_then(Value::as_str) else {
        return;
    };
    if object.get("deleted").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let (part, path) = match object.get("object").and_then(Value::as_str) {
        Some("customer") => ("tax_ids", format!("/v1/customers/{id}/tax_ids")),
        Some("invoice") => ("lines", format!("/v1/invoices/{id}/lines")),
        Some("credit_note") => ("lines", format!("/v1/credit_notes/{id}/lines")),
        _ => return,
    };
    let embedded = object.get(part);
    let after = match embedded {
        // Not expanded: every item is still to read.
        None | Some(Value::Null) => None,
        Some(list) if list.get("has_more").and_then(Value::as_bool) == Some(true) => {
            let last = list
                .get("data")
                .and_then(Value::as_array)
                .and_then(|d| d.last())
                .and_then(|l| l.get("id"))
                .and_then(Value::as_str);
            last.map(str::to_owned)
        }
        Some(_) => return, // whole
    };
    out.push(SubRead {
        pointer,
        part,
        request: page_request(&path, after.as_deref()),
    });
}

fn page_request(path: &str, after: Option<&str>) -> ApiRequest {
    let mut query = vec![("limit".to_owned(), "100".to_owned())];
    if let Some(a) = after {
        query.push(("starting_after".to_owned(), a.to_owned()));
    }
    ApiRequest {
        path: path.to_owned(),
        query,
    }
}

/// A page of a sub-list: a Stripe list; the next page starts after its last item.
pub fn parse_sub_page(read: &SubRead, body: &[u8]) -> Result<SubPage, ParseError> {
    let page = parse_list(body)?;
    Ok(SubPage {
        next: page
            .next_cursor
            .map(|after| page_request(&read.request.path, Some(&after))),
        items: page.objects,
    })
}

/// The object's `part` list made whole: what it embedded, then the items read after it
/// (an item already embedded is not repeated).
pub fn merge_sub(object: &mut Value, part: &str, items: Vec<Value>) {
    let mut data: Vec<Value> = object
        .get(part)
        .and_then(|l| l.get("data"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for item in items {
        let id = item.get("id");
        if id.is_none() || !data.iter().any(|d| d.get("id") == id) {
            data.push(item);
        }
    }
    if let Some(o) = object.as_object_mut() {
        o.insert(
            part.to_owned(),
            serde_json::json!({"object": "list", "has_more": false, "data": data}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::INFO;
    use super::*;
    use crate::providers::field_checks::assert_request;
    use crate::providers::Provider;

    #[test]
    fn list_request_windows_and_continues() {
        let r = INFO.list_request("subscriptions", (10, 20), Some("sub_9"), 500);
        assert_request(
            &r,
            "/v1/subscriptions",
            "limit=100&created[gte]=10&created[lt]=20&starting_after=sub_9&status=all",
        );
    }

    #[test]
    fn parse_list_follows_has_more() {
        let page = parse_list(br#"{"object":"list","has_more":true,"data":[{"id":"in_2","created":9},{"id":"in_1","created":5}]}"#).unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("in_1"));
        assert_eq!(page.reached, Some(5));
        let last = parse_list(br#"{"object":"list","has_more":false,"data":[]}"#).unwrap();
        assert_eq!(last.next_cursor, None);
        assert!(parse_list(br#"{"error":{}}"#).is_err());
    }
}
