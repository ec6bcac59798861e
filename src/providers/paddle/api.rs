//! What billsync asks Paddle's API for: the backfill lists (every entity kind, since only
//! transactions take a time filter), the `/events` sweep resumed after the last event read,
//! and the customer parts Paddle keeps as their own resources (addresses, businesses), read
//! with the shared sub-read mechanism on every customer read. docs/providers/paddle.md
//! cites the Paddle documentation for each rule.

use serde_json::Value;

use crate::model::time::{parse_rfc3339, secs_to_rfc3339};
use crate::model::ObjectType;
use crate::providers::info::ListQuery;
use crate::providers::json_answer::{self, after_last_id};
use crate::providers::subreads::item_pointer;
use crate::providers::{ApiRequest, ListPage, ParseError, SubPage, SubRead};

/// The most entities a Paddle list page holds (`per_page` maximum).
const MOST_PER_PAGE: u32 = 200;

/// The customer parts that are separate Paddle resources, read under
/// `/customers/{id}/{part}` ("Addresses and businesses").
pub const PARTS: &[&str] = &["addresses", "businesses"];

fn paged(path: String, per_page: u32, after: Option<&str>) -> ApiRequest {
    let mut query = vec![
        (
            "per_page".to_owned(),
            per_page.clamp(1, MOST_PER_PAGE).to_string(),
        ),
        ("order_by".to_owned(), "id[ASC]".to_owned()),
    ];
    if let Some(a) = after {
        query.push(("after".to_owned(), a.to_owned()));
    }
    ApiRequest { path, query }
}

/// A page of `stream`: transactions created in `window`; the others whole. Customers list
/// only `active` ones unless asked, so archived ones are asked for too.
pub fn list_request(list: &ListQuery) -> ApiRequest {
    let mut request = paged(format!("/{}", list.stream), list.page_size, list.cursor);
    match list.stream {
        "transactions" => {
            let at = |secs| secs_to_rfc3339(secs).unwrap_or_default();
            request
                .query
                .push(("created_at[GTE]".to_owned(), at(list.window.0)));
            request
                .query
                .push(("created_at[LT]".to_owned(), at(list.window.1)));
        }
        "customers" => request
            .query
            .push(("status".to_owned(), "active,archived".to_owned())),
        _ => {}
    }
    request
}

/// A Paddle list page: `data`, and the next page after its last id when `has_more`.
pub fn parse_list(body: &[u8]) -> Result<ListPage, ParseError> {
    let v = json_answer::parse(body, "answer")?;
    let objects = json_answer::array(&v, "data", "list has no `data` array")?;
    let next_cursor = after_last_id(has_more(&v), &objects, "entity")?;
    Ok(ListPage {
        reached: objects
            .last()
            .and_then(|o| o.get("created_at"))
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .map(|m| m / 1_000_000),
        objects,
        next_cursor,
    })
}

/// Whether a list answer says another page follows.
fn has_more(answer: &Value) -> bool {
    answer
        .pointer("/meta/pagination/has_more")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A page of `/events` after `cursor` (the last event id read), oldest first. Paddle's
/// events list has no time filter: the cursor is the position ("Sweeps").
pub fn sweep_request(cursor: Option<&str>) -> ApiRequest {
    paged("/events".into(), MOST_PER_PAGE, cursor)
}

/// An `/events` page: the events, and the next page after the last event id when
/// `has_more`.
pub fn parse_sweep(body: &[u8]) -> Result<(Vec<Vec<u8>>, Option<String>), ParseError> {
    let v = json_answer::parse(body, "answer")?;
    let events = json_answer::array(&v, "data", "events list has no `data` array")?;
    let next = events
        .last()
        .and_then(|e| e.get("event_id"))
        .and_then(Value::as_str)
        .filter(|_| has_more(&v))
        .map(str::to_owned);
    Ok((json_answer::event_bodies(&events)?, next))
}

/// Paddle has no "get an adjustment" operation: an adjustment is read as a one-id list
/// (`GET /adjustments?id=adj_...`), everything else with `GET /{entities}/{id}`.
pub fn fetch_request(object_type: ObjectType, provider_id: &str) -> ApiRequest {
    let collection = match object_type {
        ObjectType::Customer => "customers",
        ObjectType::Invoice => "transactions",
        ObjectType::CreditNote => {
            return ApiRequest {
                path: "/adjustments".into(),
                query: vec![("id".into(), provider_id.to_owned())],
            }
        }
        ObjectType::Subscription => "subscriptions",
        ObjectType::Transaction => "transactions",
    };
    ApiRequest {
        path: format!("/{collection}/{provider_id}"),
        query: Vec::new(),
    }
}

/// The entity of a get (`data` is the entity) or of a one-id list (`data` holds it; an
/// empty list is an entity the API does not show yet, so the read is asked again).
pub fn parse_object(body: &[u8]) -> Result<Value, ParseError> {
    let v = json_answer::parse(body, "answer")?;
    let entity = match v.get("data") {
        Some(Value::Array(list)) => match &list[..] {
            [one] => Some(one),
            [] => return Err(ParseError("the list does not show the entity yet".into())),
            _ => return Err(ParseError("a one-id list answered several entities".into())),
        },
        other => other,
    };
    entity
        .filter(|d| d.get("id").and_then(Value::as_str).is_some())
        .cloned()
        .ok_or_else(|| ParseError("answer has no `data` entity with an `id`".into()))
}

/// The id of the last event of an `/events` page: where the next sweep resumes.
pub fn last_event_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("data")?
        .as_array()?
        .last()?
        .get("event_id")?
        .as_str()
        .map(str::to_owned)
}

/// The addresses and businesses still to read for the customers of an answer (a list page
/// or one retrieved entity, `{"data": ...}`): every customer not yet holding them.
pub fn sub_reads(answer: &Value) -> Vec<SubRead> {
    let mut out = Vec::new();
    match answer.get("data") {
        Some(Value::Array(list)) => {
            for (i, entity) in list.iter().enumerate() {
                customer_sub_reads(entity, item_pointer("data", i), &mut out);
            }
        }
        Some(entity @ Value::Object(_)) => customer_sub_reads(entity, "/data".to_owned(), &mut out),
        _ => {}
    }
    out
}

fn customer_sub_reads(entity: &Value, pointer: String, out: &mut Vec<SubRead>) {
    let Some(id) = entity.get("id").and_then(Value::as_str) else {
        return;
    };
    if !id.starts_with("ctm_") {
        return;
    }
    for part in PARTS {
        if entity.get(*part).is_none() {
            out.push(SubRead {
                pointer: pointer.clone(),
                part,
                request: paged(format!("/customers/{id}/{part}"), MOST_PER_PAGE, None),
            });
        }
    }
}

/// A page of a customer's addresses or businesses: a Paddle list.
pub fn parse_sub_page(read: &SubRead, body: &[u8]) -> Result<SubPage, ParseError> {
    let page = parse_list(body)?;
    Ok(SubPage {
        next: page
            .next_cursor
            .map(|after| paged(read.request.path.clone(), MOST_PER_PAGE, Some(&after))),
        items: page.objects,
    })
}

/// The customer with its `part` (`addresses`, `businesses`) as read: every item, in order.
pub fn merge_sub(object: &mut Value, part: &str, items: Vec<Value>) {
    if let Some(o) = object.as_object_mut() {
        o.insert(part.to_owned(), Value::Array(items));
    }
}

#[cfg(test)]
mod tests {
    use super::super::INFO;
    use super::*;
    use crate::providers::field_checks::{assert_query, assert_request};
    use serde_json::json;

    #[test]
    fn a_backfill_lists_every_kind_and_only_transactions_by_time() {
        assert_eq!(super::super::INFO.streams.len(), 4);
        let txn = INFO.list_request("transactions", (0, 86_400), Some("txn_2"), 500);
        assert_query(&txn, "per_page=200&after=txn_2");
        assert!(txn.query.iter().any(|(k, _)| k == "created_at[GTE]"));
        let ctm = INFO.list_request("customers", (0, 86_400), None, 100);
        assert!(ctm.query.iter().all(|(k, _)| !k.starts_with("created_at")));
        assert_query(&ctm, "status=active,archived");
        let adj = INFO.list_request("adjustments", (0, 86_400), None, 100);
        assert_eq!(adj.path, "/adjustments");
        use crate::providers::Provider;
        let windowed = |s| super::super::INFO.stream_windowed(s);
        assert!(windowed("transactions"));
        assert!(!windowed("customers") && !windowed("subscriptions") && !windowed("adjustments"));
    }

    #[test]
    fn a_sweep_resumes_after_the_last_event_read() {
        let first = sweep_request(None);
        assert!(first.query.iter().all(|(k, _)| k != "after"));
        let next = sweep_request(Some("evt_09"));
        assert_query(&next, "after=evt_09&order_by=id[ASC]");
        let page = br#"{"data":[{"event_id":"evt_08"},{"event_id":"evt_09"}],"meta":{"pagination":{"has_more":false}}}"#;
        assert_eq!(last_event_id(page).as_deref(), Some("evt_09"));
        assert_eq!(last_event_id(br#"{"data":[]}"#), None);
    }

    #[test]
    fn customers_read_their_addresses_and_businesses_as_paged_sub_lists() {
        let page = json!({"data": [
            {"id": "ctm_1", "name": "A"},
            {"id": "txn_1"},
            {"id": "ctm_2", "addresses": [], "businesses": []},
        ], "meta": {}});
        let reads = sub_reads(&page);
        let paths: Vec<&str> = reads.iter().map(|r| r.request.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/customers/ctm_1/addresses", "/customers/ctm_1/businesses"]
        );
        assert!(reads.iter().all(|r| r.pointer == "/data/0"));
        let one = sub_reads(&json!({"data": {"id": "ctm_3"}}));
        assert_eq!(one[0].pointer, "/data");
        let answer = br#"{"data":[{"id":"add_1"}],"meta":{"pagination":{"has_more":true}}}"#;
        let sub = parse_sub_page(&reads[0], answer).unwrap();
        let next = sub.next.expect("another page");
        assert_request(&next, "/customers/ctm_1/addresses", "after=add_1");
        let mut customer = json!({"id": "ctm_1"});
        merge_sub(&mut customer, "addresses", sub.items);
        assert_eq!(customer["addresses"][0]["id"], "add_1");
        assert!(sub_reads(&json!({"data": [customer]})).len() == 1);
    }
}
