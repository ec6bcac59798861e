//! Recurly's v3 API: list requests of a pull (`updated_at` ascending in a window) and their
//! `{has_more, next, data}` pages, `next` links as cursors, retrieve requests by id or handle,
//! the sub-reads of invoices' line items, and the sweep, which walks every list in turn and
//! wraps each object in a synthetic envelope (see `super`). The provider delegates here.

use serde_json::{json, Value};

use super::{mapping, INFO};
use crate::model::time::{micros_to_rfc3339, parse_rfc3339, secs_to_rfc3339};
use crate::model::ObjectType;
use crate::providers::info::{ListQuery, SweepPage};
use crate::providers::json_answer;
use crate::providers::major_units::Fields;
use crate::providers::subreads::item_pointer;
use crate::providers::{content_tag, ApiRequest, ListPage, ParseError, SubPage, SubRead};

/// The synthetic `object_type` of swept objects (see the module doc of `super`).
pub(super) const SWEEP_OBJECT_TYPE: &str = "billsync_sweep";

/// A sweep cursor that starts the named list.
pub(super) const SWEEP_START: &str = "start:";

/// The sub-read part: an invoice's line items past the embedded ones.
pub(super) const LINE_ITEMS: &str = "line_items";

pub(super) fn list_request(list: &ListQuery) -> ApiRequest {
    if let Some(next) = list.cursor {
        return next_request(next);
    }
    let mut query = vec![
        ("limit".to_owned(), list.page_size.clamp(1, 200).to_string()),
        ("sort".to_owned(), "updated_at".to_owned()),
        ("order".to_owned(), "asc".to_owned()),
    ];
    if let Some(t) = secs_to_rfc3339(list.window.0) {
        query.push(("begin_time".to_owned(), t));
    }
    // `end_time` is inclusive; the window's end is not.
    if let Some(t) = micros_to_rfc3339(list.window.1.saturating_mul(1_000_000).saturating_sub(1)) {
        query.push(("end_time".to_owned(), t));
    }
    ApiRequest {
        path: format!("/{}", list.stream),
        query,
    }
}

pub(super) fn sweep_request(since: i64, cursor: Option<&str>) -> ApiRequest {
    let stream = match cursor {
        None => INFO.streams[0].name,
        Some(c) => match c.strip_prefix(SWEEP_START) {
            Some(s) if INFO.stream(s).is_some() => s,
            Some(_) => INFO.streams[0].name,
            None => return next_request(c),
        },
    };
    let mut query = vec![
        ("limit".to_owned(), "200".to_owned()),
        ("sort".to_owned(), "updated_at".to_owned()),
        ("order".to_owned(), "asc".to_owned()),
    ];
    if let Some(t) = secs_to_rfc3339(since) {
        query.push(("begin_time".to_owned(), t));
    }
    ApiRequest {
        path: format!("/{stream}"),
        query,
    }
}

/// A sweep page read without its request: taken as a page of invoices.
pub(super) fn parse_sweep(body: &[u8]) -> Result<SweepPage, ParseError> {
    let invoices = sweep_request(0, Some(&format!("{SWEEP_START}invoices")));
    parse_sweep_page(&invoices, body)
}

pub(super) fn parse_sweep_page(request: &ApiRequest, body: &[u8]) -> Result<SweepPage, ParseError> {
    let (stream, (events, cursor)) = INFO.swept_page(request, "/", body, sweep_event)?;
    let next = cursor.or_else(|| {
        INFO.stream_name(stream + 1)
            .map(|s| format!("{SWEEP_START}{s}"))
    });
    Ok((events, next))
}

/// A swept object in its synthetic envelope; `None` for an object billsync does not map.
fn sweep_event(object: Value) -> Result<Option<Value>, ParseError> {
    let Some((_, id)) = mapping::identify(&object)? else {
        return Ok(None);
    };
    let o = Fields(&object);
    let updated = o
        .s("updated_at")
        .ok_or_else(|| ParseError("swept object has no `updated_at`".into()))?;
    let kind = o.s("object").unwrap_or("object").to_owned();
    let updated = updated.to_owned();
    // `updated_at` has whole seconds: two states of one object can share it (and a
    // lagging API shows the older one first), so the id names the content too, or the
    // newer state would be dropped as a duplicate of the older one.
    Ok(Some(json!({
        "id": format!("sweep:{kind}:{id}:{updated}:{}", content_tag(&object)),
        "object_type": SWEEP_OBJECT_TYPE,
        "event_type": kind,
        "event_time": updated,
        "object": object,
    })))
}

pub(super) fn fetch_request(object_type: ObjectType, provider_id: &str) -> ApiRequest {
    // An `id`, or a webhook's handle (`code-…`): Recurly's API takes either.
    let resource = match object_type {
        ObjectType::Customer => "accounts",
        ObjectType::Invoice | ObjectType::CreditNote => "invoices",
        ObjectType::Subscription => "subscriptions",
        ObjectType::Transaction => "transactions",
    };
    ApiRequest {
        path: format!("/{resource}/{}", urlencoding_path(provider_id)),
        query: Vec::new(),
    }
}

/// Invoices with `has_more_line_items` (docs page, "Line items"), in a list page or as
/// one retrieved invoice.
pub(super) fn sub_reads(answer: &Value) -> Vec<SubRead> {
    match answer.get("data").and_then(Value::as_array) {
        Some(objects) => objects
            .iter()
            .enumerate()
            .filter_map(|(i, o)| line_items_read(item_pointer("data", i), o))
            .collect(),
        None => line_items_read(String::new(), answer).into_iter().collect(),
    }
}

pub(super) fn parse_sub_page(read: &SubRead, body: &[u8]) -> Result<SubPage, ParseError> {
    if read.part != LINE_ITEMS {
        return Err(ParseError(format!("no sub-read `{}` here", read.part)));
    }
    let page = parse_list(body)?;
    Ok(SubPage {
        items: page.objects,
        next: page.next_cursor.as_deref().map(next_request),
    })
}

pub(super) fn merge_sub(object: &mut Value, part: &str, items: Vec<Value>) {
    if part != LINE_ITEMS {
        return;
    }
    if let Some(o) = object.as_object_mut() {
        o.insert(LINE_ITEMS.into(), Value::Array(items));
        o.insert("has_more_line_items".into(), Value::Bool(false));
    }
}

pub(super) fn parse_object(body: &[u8]) -> Result<Value, ParseError> {
    let v = json_answer::parse(body, "object")?;
    if v.get("object").and_then(Value::as_str).is_none() || v.get("error").is_some() {
        return Err(ParseError("answer is not a Recurly object".into()));
    }
    Ok(v)
}

/// `{has_more, next, data}`; the cursor is the `next` path itself.
pub(super) fn parse_list(body: &[u8]) -> Result<ListPage, ParseError> {
    let v = json_answer::parse(body, "list")?;
    let objects = json_answer::array(&v, "data", "answer is not a Recurly list (no `data`)")?;
    let has_more = v.get("has_more").and_then(Value::as_bool).unwrap_or(false);
    let next_cursor = match (has_more, v.get("next").and_then(Value::as_str)) {
        (true, Some(next)) if !next.is_empty() => Some(next.to_owned()),
        (true, _) => return Err(ParseError("`has_more` without a `next` link".into())),
        (false, _) => None,
    };
    let reached = objects
        .last()
        .and_then(|o| o.get("updated_at"))
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .map(|m| m.div_euclid(1_000_000));
    Ok(ListPage {
        objects,
        next_cursor,
        reached,
    })
}

/// The read of every line item of `object` when it is an invoice that embeds only some
/// (`has_more_line_items`): `GET /invoices/{id}/line_items`, oldest first, 200 a page.
fn line_items_read(pointer: String, object: &Value) -> Option<SubRead> {
    let o = Fields(object);
    if o.s("object") != Some("invoice") || o.get("has_more_line_items") != Some(&Value::Bool(true))
    {
        return None;
    }
    let id = o.id("id")?;
    Some(SubRead {
        pointer,
        part: LINE_ITEMS,
        request: ApiRequest {
            path: format!("/invoices/{}/line_items", urlencoding_path(&id)),
            query: vec![
                ("limit".to_owned(), "200".to_owned()),
                ("order".to_owned(), "asc".to_owned()),
            ],
        },
    })
}

/// A request for a `next` link (`/invoices?cursor=...&limit=...`), relative to the API base.
pub(super) fn next_request(next: &str) -> ApiRequest {
    // Absolute links keep only their path and query: the base URL is the connection's.
    let relative = match next.find("://") {
        Some(i) => next[i + 3..].find('/').map_or("/", |j| &next[i + 3 + j..]),
        None => next,
    };
    let (path, query) = relative.split_once('?').unwrap_or((relative, ""));
    ApiRequest {
        path: path.to_owned(),
        query: url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
    }
}

/// Percent-encodes a provider id for one path segment.
fn urlencoding_path(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::super::INFO;
    use super::*;
    use crate::providers::field_checks::{assert_query, assert_request};
    use crate::providers::subreads::assert_one_read;
    use crate::providers::Provider;

    #[test]
    fn fetch_paths_take_ids_and_handles() {
        let path = |t, id| INFO.fetch_request(t, id).path;
        assert_eq!(path(ObjectType::Customer, "o1xyzabc"), "/accounts/o1xyzabc");
        assert_eq!(
            path(ObjectType::Customer, "code-acct-42"),
            "/accounts/code-acct-42"
        );
        assert_eq!(
            path(ObjectType::Invoice, "number-1042"),
            "/invoices/number-1042"
        );
        assert_eq!(path(ObjectType::CreditNote, "rxcred1"), "/invoices/rxcred1");
        assert_eq!(
            path(ObjectType::Subscription, "uuid-63ab"),
            "/subscriptions/uuid-63ab"
        );
        assert_eq!(path(ObjectType::Transaction, "tx1"), "/transactions/tx1");
        assert_eq!(
            path(ObjectType::Customer, "code-a b/c"),
            "/accounts/code-a%20b%2Fc"
        );
    }

    #[test]
    fn invoices_with_more_line_items_are_completed_from_the_line_items_list() {
        let page = json!({"object": "list", "has_more": false, "next": null, "data": [
            {"object": "invoice", "id": "inv1", "has_more_line_items": false, "line_items": []},
            {"object": "invoice", "id": "inv2", "has_more_line_items": true,
             "line_items": [{"id": "l1"}]},
            {"object": "account", "id": "a1", "has_more_line_items": true},
        ]});
        let reads = INFO.sub_reads(&page);
        let path = "/invoices/inv2/line_items";
        assert_one_read(&reads, "/data/1", "line_items", path, "order=asc");
        // One retrieved invoice.
        let one = INFO.sub_reads(&page["data"][1]);
        assert_eq!(one[0].pointer, "");
        // Pages follow `next`; the last has none.
        let first = INFO
            .parse_sub_page(
                &reads[0],
                br#"{"object":"list","has_more":true,"next":"/invoices/inv2/line_items?cursor=c2&limit=200","data":[{"id":"l1"},{"id":"l2"}]}"#,
            )
            .unwrap();
        assert_eq!(first.items.len(), 2);
        let next = first.next.unwrap();
        assert_request(&next, "/invoices/inv2/line_items", "cursor=c2");
        let last = INFO
            .parse_sub_page(
                &reads[0],
                br#"{"object":"list","has_more":false,"next":null,"data":[{"id":"l3"}]}"#,
            )
            .unwrap();
        assert_eq!(last.next, None);
        let mut invoice = page["data"][1].clone();
        let all = [first.items, last.items].concat();
        INFO.merge_sub(&mut invoice, "line_items", all);
        assert_eq!(invoice["line_items"].as_array().unwrap().len(), 3);
        assert_eq!(invoice["has_more_line_items"], false);
        assert!(INFO.sub_reads(&invoice).is_empty(), "whole now");
    }

    #[test]
    fn list_request_sorts_by_updated_at_ascending_in_the_window() {
        let r = INFO.list_request("invoices", (1_793_527_200, 1_793_530_800), None, 500);
        assert_request(
            &r,
            "/invoices",
            "limit=200&sort=updated_at&order=asc&begin_time=2026-11-01T10:00:00Z&end_time=2026-11-01T10:59:59.999999Z",
        );
        let next = INFO.list_request(
            "invoices",
            (0, 1),
            Some("/invoices?cursor=abc%3D&limit=200&sort=updated_at"),
            10,
        );
        assert_request(&next, "/invoices", "cursor=abc=");
        let abs = next_request("https://v3.recurly.com/accounts?cursor=x");
        assert_eq!(abs.path, "/accounts");
    }

    #[test]
    fn parse_list_follows_next_links() {
        let page = INFO
            .parse_list(br#"{"object":"list","has_more":true,"next":"/invoices?cursor=c2","data":[{"object":"invoice","updated_at":"1970-01-01T00:00:09Z"}]}"#)
            .unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("/invoices?cursor=c2"));
        assert_eq!(page.reached, Some(9));
        let last = INFO
            .parse_list(br#"{"object":"list","has_more":false,"next":null,"data":[]}"#)
            .unwrap();
        assert_eq!(last.next_cursor, None);
        assert!(INFO.parse_list(br#"{"has_more":true,"data":[]}"#).is_err());
        assert!(INFO
            .parse_list(br#"{"error":{"type":"not_found"}}"#)
            .is_err());
    }

    #[test]
    fn swept_invoices_become_envelopes_that_observe_maps() {
        let list = br#"{"object":"list","has_more":false,"next":null,"data":[{"object":"invoice","id":"inv7","type":"charge","number":"7","state":"paid","currency":"USD","total":1.5,"account":{"id":"a1","code":"c1"},"updated_at":"2026-11-01T10:00:00Z"}]}"#;
        let (events, next) = INFO.parse_sweep(list).unwrap();
        assert_eq!(
            next.as_deref(),
            Some("start:subscriptions"),
            "then the next list"
        );
        assert_eq!(events.len(), 1);
        let env = INFO.envelope(&events[0]).unwrap();
        assert!(env
            .event_id
            .starts_with("sweep:invoice:inv7:2026-11-01T10:00:00Z:"));
        // Another state in the same second is another event.
        let paid = String::from_utf8(list.to_vec())
            .unwrap()
            .replace("paid", "failed");
        let (other, _) = INFO.parse_sweep(paid.as_bytes()).unwrap();
        assert_ne!(INFO.envelope(&other[0]).unwrap().event_id, env.event_id);
        assert_eq!(env.event_type, "billsync_sweep.invoice");
        let obs = INFO.observe(&events[0]).unwrap().unwrap();
        assert_eq!(obs.provider_id, "inv7");
        assert_eq!(obs.data["total"], 150);
        assert_eq!(INFO.thin_reference(&events[0]), None);
        let req = INFO.sweep_request(1_793_527_200, None);
        assert_eq!(req.path, "/accounts");
        let req = INFO.sweep_request(1_793_527_200, Some("start:invoices"));
        assert_eq!(req.path, "/invoices");
        let more = br#"{"object":"list","has_more":true,"next":"/invoices?cursor=c2&begin_time=x","data":[]}"#;
        let (_, next) = INFO.parse_sweep_page(&req, more).unwrap();
        assert_eq!(next.as_deref(), Some("/invoices?cursor=c2&begin_time=x"));
        let last = INFO.sweep_request(0, Some("start:transactions"));
        let done = br#"{"object":"list","has_more":false,"next":null,"data":[]}"#;
        assert_eq!(INFO.parse_sweep_page(&last, done).unwrap().1, None);
        assert_query(&req, "begin_time=2026-11-01T10:00:00Z");
    }
}
