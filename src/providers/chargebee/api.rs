//! Chargebee's v2 API (`/api/v2/...`): the list requests of a pull (`updated_at` ascending in a
//! window, deleted resources included) and the events list of a sweep, both continued by an
//! offset cursor; their answers, lists of wrapped resources; and retrieves and the primary
//! resource of their answers. The provider (`super`) names these in its `INFO`.

use serde_json::Value;

use super::mapping::RESOURCES;
use crate::model::ObjectType;
use crate::providers::info::ListQuery;
use crate::providers::json_answer;
use crate::providers::{ApiRequest, ListPage, ParseError};

/// Objects changed in `[start, end)`, oldest change first, deleted ones included.
/// (`updated_at[after]`/`[before]` are exclusive.) Windows by update time still cover
/// every object exactly once: by its latest change.
pub(super) fn list_request(list: &ListQuery) -> ApiRequest {
    let query = vec![
        ("limit".to_owned(), list.page_size.clamp(1, 100).to_string()),
        (
            "updated_at[after]".to_owned(),
            list.window.0.saturating_sub(1).to_string(),
        ),
        ("updated_at[before]".to_owned(), list.window.1.to_string()),
        ("sort_by[asc]".to_owned(), "updated_at".to_owned()),
        ("include_deleted".to_owned(), "true".to_owned()),
    ];
    at_offset(format!("/api/v2/{}", list.stream), query, list.cursor)
}

/// A list page: resources unwrapped; reached as far as the last one's `updated_at`.
pub(super) fn parse_list(body: &[u8]) -> Result<ListPage, ParseError> {
    let (objects, next_cursor) = parse_wrapped_list(body)?;
    let reached = objects
        .last()
        .and_then(|o| o.get("updated_at"))
        .and_then(Value::as_i64);
    Ok(ListPage {
        objects,
        next_cursor,
        reached,
    })
}

/// Events that occurred from `since` on, oldest first.
pub(super) fn sweep_request(since: i64, cursor: Option<&str>) -> ApiRequest {
    let query = vec![
        ("limit".to_owned(), "100".to_owned()),
        (
            "occurred_at[after]".to_owned(),
            since.saturating_sub(1).to_string(),
        ),
        ("sort_by[asc]".to_owned(), "occurred_at".to_owned()),
    ];
    at_offset("/api/v2/events".into(), query, cursor)
}

/// A request for `path` with `query`, continued at the offset `cursor` when there is one.
fn at_offset(path: String, mut query: Vec<(String, String)>, cursor: Option<&str>) -> ApiRequest {
    if let Some(c) = cursor {
        query.push(("offset".to_owned(), c.to_owned()));
    }
    ApiRequest { path, query }
}

/// An events page: each event (unwrapped) as a raw event body.
pub(super) fn parse_sweep(body: &[u8]) -> Result<(Vec<Vec<u8>>, Option<String>), ParseError> {
    let (events, next) = parse_wrapped_list(body)?;
    Ok((json_answer::event_bodies(&events)?, next))
}

pub(super) fn fetch_request(object_type: ObjectType, provider_id: &str) -> ApiRequest {
    ApiRequest {
        path: format!("/api/v2/{}/{provider_id}", object_type.collection()),
        query: Vec::new(),
    }
}

/// A retrieve answer's primary resource, which must have an `id`.
pub(super) fn parse_object(body: &[u8]) -> Result<Value, ParseError> {
    let v = json_answer::parse(body, "object")?;
    primary(&v)
        .filter(|o| o.get("id").and_then(Value::as_str).is_some())
        .ok_or_else(|| ParseError("answer has no resource with an `id`".into()))
}

/// A Chargebee list answer: `{"list": [{"<resource>": {...}}, ...], "next_offset": "..."}`.
/// Each entry's resource comes out unwrapped, with `object` set to its resource name.
fn parse_wrapped_list(body: &[u8]) -> Result<(Vec<Value>, Option<String>), ParseError> {
    let v = json_answer::parse(body, "list")?;
    let list = v
        .get("list")
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError("answer has no `list` array".into()))?;
    let objects = list
        .iter()
        .map(|entry| primary(entry).ok_or_else(|| ParseError("list entry has no resource".into())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((objects, json_answer::cursor(&v, "next_offset")))
}

/// The primary resource of a list entry or retrieve answer, unwrapped and labelled.
fn primary(wrapper: &Value) -> Option<Value> {
    let names = RESOURCES.iter().map(|(r, _)| *r).chain(["event"]);
    for name in names {
        if let Some(Value::Object(m)) = wrapper.get(name) {
            let mut m = m.clone();
            m.entry("object")
                .or_insert_with(|| Value::String(name.to_owned()));
            return Some(Value::Object(m));
        }
    }
    None
}
