//! Reading a provider's JSON bodies (API answers, and webhook events in the `webhook`
//! modules) the way every provider does: the body as JSON (an error naming what the body was
//! meant to be), the array a list holds under a key, a non-empty text cursor, the cursor after
//! a page's last object, an event's id or type as intake stores it, and the events of a sweep page as raw event bodies (what
//! `Provider::parse_sweep` hands to intake). Pull, sweep and intake reach them through each
//! provider's `api` and `webhook` modules.

use serde_json::Value;

use super::ParseError;

/// `body` as JSON; else `"{what} is not JSON: …"` (`what`: `list`, `object`, `answer`, …).
pub fn parse(body: &[u8], what: &str) -> Result<Value, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError(format!("{what} is not JSON: {e}")))
}

/// The array under `key` (copied out); else the error `missing`.
pub fn array(answer: &Value, key: &str, missing: &str) -> Result<Vec<Value>, ParseError> {
    answer
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ParseError(missing.to_owned()))
}

/// The text under `key` as a cursor: `None` when absent, not a string, or empty (the last
/// page).
pub fn cursor(answer: &Value, key: &str) -> Option<String> {
    answer
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// For lists that continue after their last object: that object's `id` when the answer says
/// there is more (`has_more`), `None` on the last page. More with no last `id` is an answer
/// that cannot be continued (`noun` names the provider's objects in the error).
pub fn after_last_id(
    has_more: bool,
    objects: &[Value],
    noun: &str,
) -> Result<Option<String>, ParseError> {
    let last = objects
        .last()
        .and_then(|o| o.get("id"))
        .and_then(Value::as_str);
    match (has_more, last) {
        (true, Some(id)) => Ok(Some(id.to_owned())),
        (true, None) => Err(ParseError(format!("`has_more` with no last {noun} id"))),
        (false, _) => Ok(None),
    }
}

/// An event's identifying text (its id, its type) as intake stores it: a string of 1 to 255
/// bytes; `None` for anything else.
pub fn event_text(field: Option<&Value>) -> Option<&str> {
    field
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
}

/// Each event of a sweep page as its own raw body (its JSON text).
pub fn event_bodies(events: &[Value]) -> Result<Vec<Vec<u8>>, ParseError> {
    events
        .iter()
        .map(|e| serde_json::to_vec(e).map_err(|e| ParseError(e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn event_texts_are_strings_of_1_to_255_bytes() {
        let event = json!({"id": "evt_1", "empty": "", "long": "x".repeat(256), "n": 5,
            "max": "y".repeat(255)});
        assert_eq!(event_text(event.get("id")), Some("evt_1"));
        assert_eq!(event_text(event.get("max")).map(str::len), Some(255));
        for key in ["empty", "long", "n", "absent"] {
            assert_eq!(event_text(event.get(key)), None, "{key}");
        }
    }

    #[test]
    fn parse_names_what_the_body_should_have_been() {
        assert_eq!(parse(b"[1]", "list").unwrap(), json!([1]));
        let err = parse(b"<html>", "object").unwrap_err();
        assert!(err.0.starts_with("object is not JSON: "), "{err}");
    }

    #[test]
    fn arrays_and_cursors_are_read_by_key() {
        let answer = json!({"data": [{"id": "a"}], "next": "", "other": "c2", "n": 3});
        assert_eq!(array(&answer, "data", "no data").unwrap().len(), 1);
        assert_eq!(
            array(&answer, "next", "no data"),
            Err(ParseError("no data".into()))
        );
        assert_eq!(cursor(&answer, "next"), None, "empty is the last page");
        assert_eq!(cursor(&answer, "n"), None);
        assert_eq!(cursor(&answer, "other").as_deref(), Some("c2"));
    }

    #[test]
    fn more_continues_after_the_last_id_and_needs_one() {
        let objects = [json!({"id": "in_2"}), json!({"id": "in_1"})];
        assert_eq!(
            after_last_id(true, &objects, "object").unwrap().as_deref(),
            Some("in_1")
        );
        assert_eq!(after_last_id(false, &objects, "object").unwrap(), None);
        assert_eq!(
            after_last_id(true, &[json!({})], "entity"),
            Err(ParseError("`has_more` with no last entity id".into()))
        );
        assert_eq!(after_last_id(false, &[], "object").unwrap(), None);
    }

    #[test]
    fn events_become_their_json_text() {
        let bodies = event_bodies(&[json!({"id": "evt_1"}), json!({"id": 2})]).unwrap();
        assert_eq!(
            bodies,
            [br#"{"id":"evt_1"}"#.to_vec(), br#"{"id":2}"#.to_vec()]
        );
    }
}
