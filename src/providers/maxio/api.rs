//! Maxio's API: the list requests of a pull (by time window, by id for transactions, by page
//! number for credit notes), their answers unwrapped into `{"<resource>": {...}}` objects with
//! the cursor where the list continues, retrieve requests and answers, and the sweep of the
//! Events API and invoice events. The provider (`super`) delegates its API methods here.

use serde_json::{json, Map, Value};

use super::mapping::{change_time, RESOURCES};
use crate::model::time::secs_to_rfc3339;
use crate::model::ObjectType;
use crate::providers::info::ListQuery;
use crate::providers::json_answer;
use crate::providers::minor_units::Obj;
use crate::providers::{ApiRequest, ListPage, ParseError};

/// Objects of the window, oldest first. Subscriptions and invoices are filtered and sorted
/// by `updated_at` (`date_field` + `sort=updated_at`: without `sort` Maxio orders by id);
/// customers sort only by creation (`direction` is "by time of creation"), so they are
/// filtered by `created_at`. The cursor is a position, not a page number (a list answer
/// does not say which page it was): `t:<unix s>` restarts the window at that time
/// (`page=1`); transactions, immutable and id-ordered, use `id:<n>` (`since_id`,
/// inclusive). Credit notes have no date filter at all and page only by number, which a
/// list answer does not echo: a pull reads their first page (see [`next_cursor`]).
pub(super) fn list_request(list: &ListQuery) -> ApiRequest {
    let mut query = vec![
        ("page".to_owned(), "1".to_owned()),
        (
            "per_page".to_owned(),
            list.page_size.clamp(1, 200).to_string(),
        ),
        ("direction".to_owned(), "asc".to_owned()),
    ];
    let from_time = list
        .cursor
        .and_then(|c| c.strip_prefix("t:"))
        .and_then(|t| t.parse::<i64>().ok());
    let from_id = list.cursor.and_then(|c| c.strip_prefix("id:"));
    match list.stream {
        "transactions" => {
            // Transactions filter by whole days (`since_date`/`until_date`, inclusive): a
            // window's edge days overlap its neighbours', which only repeats objects.
            let day = |s: i64| {
                chrono::DateTime::from_timestamp(s, 0)
                    .map_or_else(|| "1970-01-01".into(), |t| t.format("%Y-%m-%d").to_string())
            };
            query.push(("since_date".to_owned(), day(list.window.0)));
            query.push(("until_date".to_owned(), day(list.window.1)));
        }
        "credit_notes" => {
            // Paged by number only (`undated_streams`): the cursor is the page.
            if let Some(page) = list.cursor.and_then(|c| c.strip_prefix("p:")) {
                query[0].1 = page.to_owned();
            }
        }
        _ => {
            let field = if list.stream == "customers" {
                "created_at"
            } else {
                "updated_at"
            };
            query.push(("date_field".to_owned(), field.to_owned()));
            if list.stream != "customers" {
                query.push(("sort".to_owned(), field.to_owned()));
            }
            query.push((
                "start_datetime".to_owned(),
                datetime_param(from_time.unwrap_or(list.window.0).max(list.window.0)),
            ));
            query.push(("end_datetime".to_owned(), datetime_param(list.window.1)));
        }
    }
    if let Some(id) = from_id {
        query.push(("since_id".to_owned(), id.to_owned()));
    }
    if matches!(list.stream, "invoices" | "credit_notes") {
        // Lists leave breakdowns out unless asked for.
        query.push(("line_items".to_owned(), "true".to_owned()));
    }
    ApiRequest {
        path: format!("/{}.json", list.stream),
        query,
    }
}

/// Lists are arrays of wrapped objects (`[{"subscription": {...}}]`), or, for relationship
/// invoices and credit notes, `{"invoices": [...]}` / `{"credit_notes": [...]}`; each
/// object comes out wrapped. See [`next_cursor`].
pub(super) fn parse_list(body: &[u8]) -> Result<ListPage, ParseError> {
    let v = json_answer::parse(body, "list")?;
    let items = match &v {
        Value::Array(a) => a.as_slice(),
        Value::Object(m) => m
            .get("invoices")
            .or_else(|| m.get("credit_notes"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .ok_or_else(|| ParseError("answer is not a Maxio list".into()))?,
        _ => return Err(ParseError("answer is not a Maxio list".into())),
    };
    let objects = items
        .iter()
        .map(|i| wrap(i).ok_or_else(|| ParseError("list entry has no known object".into())))
        .collect::<Result<Vec<_>, _>>()?;
    let times: Vec<i64> = objects
        .iter()
        .filter_map(|w| w.as_object().and_then(|m| m.iter().next()))
        .filter_map(|(name, o)| {
            // Customers are listed in creation order; the rest in update order.
            let o = Obj(o);
            if name == "customer" {
                o.micros("created_at")
            } else {
                change_time(&o)
            }
        })
        .map(|m| m.div_euclid(1_000_000))
        .collect();
    Ok(ListPage {
        next_cursor: next_cursor(&objects, &times),
        reached: times.last().copied(),
        objects,
    })
}

/// Credit notes page by number, and an answer does not say which page it was: the
/// request does. A full page may have a next one (`p:<page + 1>`); a short one is the last.
pub(super) fn parse_list_page(request: &ApiRequest, body: &[u8]) -> Result<ListPage, ParseError> {
    let mut page = parse_list(body)?;
    if request.path == "/credit_notes.json" {
        let param = |k: &str| {
            request
                .query
                .iter()
                .find(|(key, _)| key == k)
                .and_then(|(_, v)| v.parse::<usize>().ok())
        };
        let (number, per_page) = (param("page").unwrap_or(1), param("per_page").unwrap_or(20));
        page.next_cursor =
            (page.objects.len() >= per_page && per_page > 0).then(|| format!("p:{}", number + 1));
    }
    Ok(page)
}

/// Two phases, both ascending: the Events API (`/events.json`, `since_id` inclusive), whose
/// events name objects to refetch ([`Provider::thin_reference`](crate::providers::Provider::thin_reference)); then invoice events
/// (`/invoices/events.json`, `since_date`, then `since_id` exclusive), which carry invoice
/// and credit-note snapshots: Maxio sends no webhook for payments applied to invoices,
/// voids or credit notes. Cursors: `ev:<id>`, `inv` (the second phase's start), `inv:<id>`.
pub(super) fn sweep_request(since: i64, cursor: Option<&str>) -> ApiRequest {
    let per_page = ("per_page".to_owned(), SWEEP_PAGE.to_string());
    match cursor {
        Some("inv") => ApiRequest {
            path: "/invoices/events.json".into(),
            query: vec![per_page, ("since_date".to_owned(), datetime_param(since))],
        },
        Some(c) if c.starts_with("inv:") => ApiRequest {
            path: "/invoices/events.json".into(),
            query: vec![per_page, ("since_id".to_owned(), c[4..].to_owned())],
        },
        _ => {
            let mut query = vec![
                per_page,
                ("direction".to_owned(), "asc".to_owned()),
                ("date_field".to_owned(), "created_at".to_owned()),
                ("start_datetime".to_owned(), datetime_param(since)),
            ];
            if let Some(id) = cursor.map(|c| c.strip_prefix("ev:").unwrap_or(c)) {
                query.push(("since_id".to_owned(), id.to_owned()));
            }
            ApiRequest {
                path: "/events.json".into(),
                query,
            }
        }
    }
}

pub(super) fn parse_sweep(body: &[u8]) -> Result<(Vec<Vec<u8>>, Option<String>), ParseError> {
    let v = json_answer::parse(body, "events")?;
    let (items, invoice_events) = match &v {
        Value::Array(a) => (a, false),
        Value::Object(m) => (
            m.get("events")
                .and_then(Value::as_array)
                .ok_or_else(|| ParseError("invoice events answer has no `events`".into()))?,
            true,
        ),
        _ => return Err(ParseError("events answer is not a list".into())),
    };
    let bodies = json_answer::event_bodies(items)?;
    let full = items.len() >= SWEEP_PAGE;
    let last_id = |e: &Value| {
        let e = e.get("event").unwrap_or(e);
        e.get("id")
            .and_then(|i| i.as_i64().or_else(|| i.as_str()?.parse().ok()))
    };
    let next = match (invoice_events, full) {
        // A full page may have a successor: continue after its last event.
        (false, true) => items
            .last()
            .and_then(last_id)
            .map(|id| format!("ev:{}", id.saturating_add(1))),
        (false, false) => Some("inv".to_owned()),
        (true, true) => items.last().and_then(last_id).map(|id| format!("inv:{id}")),
        (true, false) => None,
    };
    Ok((bodies, next))
}

pub(super) fn fetch_request(object_type: ObjectType, provider_id: &str) -> ApiRequest {
    let stream = match object_type {
        ObjectType::Customer => "customers",
        ObjectType::Invoice => "invoices",
        ObjectType::CreditNote => "credit_notes",
        ObjectType::Subscription => "subscriptions",
        ObjectType::Transaction => "transactions",
    };
    ApiRequest {
        path: format!("/{stream}/{provider_id}.json"),
        query: Vec::new(),
    }
}

pub(super) fn parse_object(body: &[u8]) -> Result<Value, ParseError> {
    let v = json_answer::parse(body, "object")?;
    wrap(&v).ok_or_else(|| ParseError("answer holds no known object".into()))
}

/// Events per sweep page (Maxio's maximum).
const SWEEP_PAGE: usize = 200;

pub(super) fn datetime_param(secs: i64) -> String {
    secs_to_rfc3339(secs).unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// The resource a list entry or answer holds, wrapped as `{"<resource>": {...}}` so that its
/// kind travels with it (Maxio objects do not name their own kind).
///
/// Relationship invoices and credit notes come unwrapped, named by a top-level `uid` (a credit
/// note's has the prefix `cn_`, official SDK model `CreditNote`). They are told first: they
/// embed a `customer` object of their own (`InvoiceCustomer`), which is not a wrapper.
pub(super) fn wrap(v: &Value) -> Option<Value> {
    if let Some(uid) = v.get("uid").and_then(Value::as_str) {
        return Some(if uid.starts_with("cn_") {
            json!({ "credit_note": v })
        } else {
            json!({ "invoice": v })
        });
    }
    for (name, _) in RESOURCES {
        if let Some(inner) = v.get(name).filter(|i| i.is_object()) {
            let mut m = Map::new();
            m.insert((*name).to_owned(), inner.clone());
            return Some(Value::Object(m));
        }
    }
    None
}

/// Where the list continues after a page (`None` after an empty page).
///
/// Transactions (immutable, id-ordered): `id:<last id + 1>`. Others, ordered by `updated_at`
/// (seconds): restart at the last object's second `T`, which repeats the page's trailing
/// objects of that second (harmless: equal content makes no version) but misses none; when the
/// whole page is one second, continue at `T + 1` so the walk always advances. Only more than a
/// page of objects updated in one second can hide some from a pull; webhooks and
/// reconciliation still bring them.
pub(super) fn next_cursor(objects: &[Value], times: &[i64]) -> Option<String> {
    let last = objects.last()?;
    if last.get("credit_note").is_some() {
        // Credit notes page only by number, which the answer does not say: the request does
        // (`Provider::parse_list_page`).
        return None;
    }
    if let Some(t) = last.get("transaction") {
        let id = t
            .get("id")
            .and_then(|i| i.as_i64().or_else(|| i.as_str()?.parse().ok()))?;
        return Some(format!("id:{}", id.saturating_add(1)));
    }
    let (first, last) = (times.first()?, times.last()?);
    let next = if first == last {
        last.saturating_add(1)
    } else {
        *last
    };
    Some(format!("t:{next}"))
}

#[cfg(test)]
mod tests {
    use super::super::INFO;
    use crate::model::time::parse_rfc3339;
    use crate::model::ObjectType;
    use crate::providers::field_checks::{assert_fields, assert_query, assert_request};
    use crate::providers::Provider;
    use serde_json::{json, Value};

    #[test]
    fn subscription_and_customer_lists_map_and_advance() {
        let list = json!([
            {"subscription": {"id": 1, "state": "active", "currency": "usd",
                "current_period_started_at": "2024-06-20T12:00:00-04:00",
                "current_period_ends_at": "2024-07-20T12:00:00-04:00",
                "customer": {"id": 14714298}, "product": {"id": 6042, "handle": "pro"},
                "product_price_point_id": 1990, "balance_in_cents": 0,
                "updated_at": "2024-06-20T12:00:00-04:00"}},
            {"subscription": {"id": 2, "state": "canceled", "canceled_at": "2024-06-21T09:00:00-04:00",
                "customer": {"id": 5}, "updated_at": "2024-06-21T09:00:00-04:00"}}
        ]);
        let page = INFO.parse_list(list.to_string().as_bytes()).unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("t:1718974800"));
        let obs = INFO.observe_object(&page.objects[0], 0).unwrap().unwrap();
        assert_fields(
            &obs.data,
            json!({"currency": "USD", "customer_id": "maxio:14714298",
                "/items/0/price_id": "maxio:1990", "current_period_end": "2024-07-20T16:00:00Z"}),
        );
        let canceled = INFO.observe_object(&page.objects[1], 0).unwrap().unwrap();
        assert_eq!(canceled.data["canceled_at"], "2024-06-21T13:00:00Z");
        // A page all in one second continues after it; an empty page ends the walk.
        // Customers list in creation order: their cursor is the creation time.
        let one = json!([{"customer": {"id": 9, "email": "a@b.c", "created_at": "2024-06-20T12:00:00-04:00",
            "updated_at": "2024-06-22T12:00:00-04:00"}}]);
        let page = INFO.parse_list(one.to_string().as_bytes()).unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("t:1718899201"));
        assert_eq!(INFO.parse_list(b"[]").unwrap().next_cursor, None);
        let r = INFO.list_request("customers", (100, 200), Some("t:150"), 500);
        assert_request(
            &r,
            "/customers.json",
            "per_page=200&start_datetime=1970-01-01T00:02:30Z&date_field=created_at",
        );
        // Without `sort` Maxio orders by id.
        let r = INFO.list_request("subscriptions", (100, 200), None, 50);
        assert_query(&r, "sort=updated_at");
        let txns = json!([{"transaction": {"id": 41, "transaction_type": "payment", "amount_in_cents": 500}}]);
        let page = INFO.parse_list(txns.to_string().as_bytes()).unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("id:42"));
    }

    #[test]
    fn sweeps_read_events_then_invoice_events() {
        let first = INFO.sweep_request(1_718_899_200, None);
        assert_request(&first, "/events.json", "direction=asc");
        let events: Vec<Value> = (1..=200)
            .map(|i| json!({"event": {"id": i, "key": "customer_update", "customer_id": 5}}))
            .collect();
        let (bodies, next) = INFO
            .parse_sweep(Value::Array(events).to_string().as_bytes())
            .unwrap();
        assert_eq!(bodies.len(), 200);
        assert_eq!(next.as_deref(), Some("ev:201"));
        let (_, next) = INFO.parse_sweep(b"[]").unwrap();
        assert_eq!(next.as_deref(), Some("inv"));
        let inv = INFO.sweep_request(1_718_899_200, Some("inv"));
        assert_request(
            &inv,
            "/invoices/events.json",
            "since_date=2024-06-20T16:00:00Z",
        );
        let (_, next) = INFO
            .parse_sweep(
                br#"{"events": [{"id": 7}], "page": 1, "per_page": 200, "total_pages": 1}"#,
            )
            .unwrap();
        assert_eq!(next, None);
        let later = INFO.sweep_request(0, Some("inv:7"));
        assert_query(&later, "since_id=7");
        // Events name what to refetch: payments by transaction, customers by customer.
        let pay = br#"{"event":{"id":3,"key":"payment_success","subscription_id":1,"customer_id":2,"event_specific_data":{"product_id":null,"account_transaction_id":77}}}"#;
        assert_eq!(
            INFO.thin_reference(pay),
            Some((ObjectType::Transaction, "77".into()))
        );
        // A deletion (the Events API only) is the deletion itself, at the event's time.
        let gone = br#"{"event":{"id":4,"key":"customer_delete","subscription_id":null,"customer_id":2,"created_at":"2024-06-20T12:00:00-04:00"}}"#;
        let obs = INFO.observe(gone).unwrap().unwrap();
        assert_eq!(
            (obs.object_type, obs.provider_id.as_str(), obs.deleted),
            (ObjectType::Customer, "2", true)
        );
        assert_eq!(
            obs.order_key,
            parse_rfc3339("2024-06-20T16:00:00Z").unwrap()
        );
    }

    #[test]
    fn credit_notes_page_by_number_in_one_window_until_a_short_page() {
        assert!(!INFO.stream_windowed("credit_notes") && INFO.stream_windowed("invoices"));
        let first = INFO.list_request("credit_notes", (0, 10), None, 2);
        let note = |uid: &str| json!({"credit_note": {"uid": uid, "currency": "USD"}});
        let full = serde_json::to_vec(&json!([note("cn_1"), note("cn_2")])).unwrap();
        let page = INFO.parse_list_page(&first, &full).unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("p:2"));
        let second = INFO.list_request("credit_notes", (0, 10), Some("p:2"), 2);
        assert_query(&second, "page=2");
        let short = serde_json::to_vec(&json!([note("cn_3")])).unwrap();
        assert_eq!(
            INFO.parse_list_page(&second, &short).unwrap().next_cursor,
            None
        );
    }
}
