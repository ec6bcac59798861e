//! Chargebee's v2 API answers: lists of wrapped resources with an offset cursor, and the
//! primary resource of a retrieve answer. The requests are built by the provider itself
//! (`super`), from the `INFO` streams.

use serde_json::Value;

use super::mapping::RESOURCES;
use crate::providers::ParseError;

/// A Chargebee list answer: `{"list": [{"<resource>": {...}}, ...], "next_offset": "..."}`.
/// Each entry's resource comes out unwrapped, with `object` set to its resource name.
pub(super) fn parse_wrapped_list(body: &[u8]) -> Result<(Vec<Value>, Option<String>), ParseError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("list is not JSON: {e}")))?;
    let list = v
        .get("list")
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError("answer has no `list` array".into()))?;
    let objects = list
        .iter()
        .map(|entry| primary(entry).ok_or_else(|| ParseError("list entry has no resource".into())))
        .collect::<Result<Vec<_>, _>>()?;
    let next = v
        .get("next_offset")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok((objects, next))
}

/// The primary resource of a list entry or retrieve answer, unwrapped and labelled.
pub(super) fn primary(wrapper: &Value) -> Option<Value> {
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
