//! Maxio's API under `/maxio`: `page` (1-based) + `per_page` lists (defaults 20, customers 50,
//! invoice events 100; anything above 200 is 200), `direction`, `date_field` with
//! `start_datetime`/`end_datetime` (or whole days), `sort` where Maxio has it, invoice and
//! credit-note breakdowns only when asked for (`line_items=true`), the Events API (`since_id`,
//! `max_id`, newest first by default) and invoice events (ascending, `since_id` exclusive,
//! `since_date` first). Every request passes the shared gate; reads honour the API lag.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::shapes::{inner, parse_filter_time};
use super::{errors, MaxioPersonality};
use crate::gate::{admit, params};
use crate::state::{Ledger, SimObject};
use crate::Sim;

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/{file}", get(list))
        .route("/{resource}/{file}", get(read))
}

const STREAMS: &[&str] = &[
    "customers",
    "subscriptions",
    "invoices",
    "credit_notes",
    "transactions",
];

/// Breakdowns a list leaves out unless asked for (`line_items=true`, ...).
const BREAKDOWNS: &[&str] = &[
    "line_items",
    "discounts",
    "taxes",
    "credits",
    "payments",
    "refunds",
    "custom_fields",
    "applications",
];

fn bad(message: &str) -> Response {
    errors(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// `page` and `per_page` (values over 200 become 200).
/// A malformed parameter, answered 422 with Maxio's error body.
type BadParam = String;

fn paging(p: &HashMap<String, String>, default: usize) -> Result<(usize, usize), BadParam> {
    let number = |key: &str, default: usize| match p.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(|n| if n < 1 { default } else { n as usize })
            .map_err(|_| format!("{key} must be an integer")),
    };
    Ok((number("page", 1)?, number("per_page", default)?.min(200)))
}

fn descending(p: &HashMap<String, String>, default_desc: bool) -> Result<bool, BadParam> {
    match p.get("direction").map(String::as_str) {
        None => Ok(default_desc),
        Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        Some(other) => Err(format!("Direction '{other}' is not valid")),
    }
}

/// A time field (RFC 3339 or a bare date in the site's zone) in unix seconds.
fn time_of(o: &Map<String, Value>, field: &str) -> Option<i64> {
    o.get(field)
        .and_then(Value::as_str)
        .and_then(|t| parse_filter_time(t, false))
}

/// The `date_field` window: `start_datetime`/`end_datetime` win over `start_date`/`end_date`.
fn window(
    p: &HashMap<String, String>,
    datetime_fields: &[&str],
) -> Result<Option<(String, i64, i64)>, BadParam> {
    let Some(field) = p.get("date_field").filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let bound = |dt: &str, d: &str, end: bool| -> Result<Option<i64>, BadParam> {
        if let Some(v) = p.get(dt) {
            if !datetime_fields.contains(&field.as_str()) {
                return Err(format!(
                    "{dt} can be used only with date_field set to created_at or updated_at"
                ));
            }
            return parse_filter_time(v, end)
                .map(Some)
                .ok_or_else(|| format!("{dt} is not a valid time"));
        }
        match p.get(d) {
            Some(v) => parse_filter_time(v, end)
                .map(Some)
                .ok_or_else(|| format!("{d} is not a valid date")),
            None => Ok(None),
        }
    };
    let start = bound("start_datetime", "start_date", false)?.unwrap_or(i64::MIN);
    let end = bound("end_datetime", "end_date", true)?.unwrap_or(i64::MAX);
    Ok(Some((field.clone(), start, end)))
}

/// The objects of `stream` as a read with `lag` sees them (deleted ones left out).
fn visible<'a>(ledger: &'a Ledger, stream: &str, lag: Duration) -> Vec<(&'a SimObject, Value)> {
    ledger
        .objects
        .iter()
        .filter(|(_, o)| o.stream == stream)
        .filter_map(|(id, _)| read_one(ledger, id, lag))
        .collect()
}

/// One object as a read with `lag` sees it, `None` when absent or deleted. Its `created_at`
/// is when it first appeared (the generator restates creation times on updates; Maxio never
/// changes them).
fn read_one<'a>(ledger: &'a Ledger, id: &str, lag: Duration) -> Option<(&'a SimObject, Value)> {
    match ledger.read(id, lag) {
        Some((o, Some(v))) if !(o.deleted && std::ptr::eq(v, &o.current)) => {
            let mut v = super::shapes::present(v.clone());
            if let Some(m) = v
                .as_object_mut()
                .and_then(|m| m.values_mut().next())
                .and_then(Value::as_object_mut)
                .filter(|m| matches!(m.get("created_at"), Some(Value::String(_))))
            {
                m.insert("created_at".into(), super::shapes::api_time(o.created));
            }
            Some((o, v))
        }
        _ => None,
    }
}

fn numeric_id(o: &Map<String, Value>) -> i64 {
    o.get("id")
        .and_then(Value::as_i64)
        .or_else(|| o.get("sequence_number").and_then(Value::as_i64))
        .unwrap_or(0)
}

async fn list(
    State(sim): State<Sim>,
    Path(file): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let account = match admit(&sim, &MaxioPersonality, &headers, &format!("/{file}")).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let p = params(q.as_deref());
    let Some(resource) = file.strip_suffix(".json") else {
        return errors(StatusCode::NOT_FOUND, "Resource not found");
    };
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    let ledger = &w.accounts[account].ledger;
    if resource == "events" {
        return events(ledger, &p);
    }
    if resource == "payment_profiles" {
        return payment_profiles(ledger, &p, lag);
    }
    let Some(stream) = STREAMS.iter().copied().find(|s| *s == resource) else {
        return errors(StatusCode::NOT_FOUND, "Resource not found");
    };
    let default_page = if stream == "customers" { 50 } else { 20 };
    let (page, per_page) = match paging(&p, default_page) {
        Ok(x) => x,
        Err(m) => return bad(&m),
    };
    let desc = match descending(&p, false) {
        Ok(d) => d,
        Err(m) => return bad(&m),
    };
    let datetime_fields: &[&str] = match stream {
        "invoices" => &["created_at", "updated_at"],
        _ => &[
            "created_at",
            "updated_at",
            "current_period_ends_at",
            "canceled_at",
        ],
    };
    let window = match stream {
        "credit_notes" | "transactions" => None,
        _ => match window(&p, datetime_fields) {
            Ok(w) => w,
            Err(m) => return bad(&m),
        },
    };
    let sort = match (stream, p.get("sort").map(String::as_str)) {
        ("subscriptions", Some(s @ ("updated_at" | "created_at" | "signup_date" | "id"))) => s,
        ("invoices", Some(s @ ("updated_at" | "created_at" | "issue_date" | "due_date"))) => s,
        ("subscriptions" | "invoices", Some(other)) if !other.is_empty() => {
            return bad(&format!("Sort '{other}' is not supported"));
        }
        _ => "id",
    };
    let day = |key: &str, end: bool| p.get(key).and_then(|v| parse_filter_time(v, end));
    let (since_id, max_id) = (
        p.get("since_id").and_then(|v| v.parse::<i64>().ok()),
        p.get("max_id").and_then(|v| v.parse::<i64>().ok()),
    );
    let (since_day, until_day) = (day("since_date", false), day("until_date", true));
    let kinds: Vec<&str> = p
        .iter()
        .filter(|(k, _)| k.starts_with("kinds"))
        .map(|(_, v)| v.as_str())
        .collect();
    let mut rows: Vec<((i64, i64), Value)> = Vec::new();
    for (o, v) in visible(ledger, stream, lag) {
        let Some((_, fields)) = inner(&v) else {
            continue;
        };
        if let Some((field, start, end)) = &window {
            match time_of(fields, field) {
                Some(t) if t >= *start && t <= *end => {}
                _ => continue,
            }
        }
        let want = |key: &str, field: &str| match p.get(key) {
            Some(s) if !s.is_empty() => fields.get(field).and_then(Value::as_str) == Some(s),
            _ => true,
        };
        if !(want("state", "state") && want("status", "status")) {
            continue;
        }
        let id = numeric_id(fields);
        if stream == "transactions" {
            let created = time_of(fields, "created_at").unwrap_or(0);
            let kind = fields.get("transaction_type").and_then(Value::as_str);
            if since_id.is_some_and(|s| id < s)
                || max_id.is_some_and(|m| id > m)
                || since_day.is_some_and(|s| created < s)
                || until_day.is_some_and(|u| created > u)
                || (!kinds.is_empty() && !kinds.iter().any(|k| Some(*k) == kind))
            {
                continue;
            }
        }
        let key = match sort {
            "updated_at" | "created_at" | "issue_date" | "due_date" => {
                time_of(fields, sort).unwrap_or(0)
            }
            "signup_date" => o.created,
            _ => id,
        };
        let mut object = v;
        if matches!(stream, "invoices" | "credit_notes") {
            object = strip_breakdowns(object, &p);
        }
        rows.push(((key, id), object));
    }
    rows.sort_by_key(|(k, _)| *k);
    if desc {
        rows.reverse();
    }
    let page: Vec<Value> = rows
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|(_, v)| v)
        .collect();
    match stream {
        "invoices" | "credit_notes" => {
            let list: Vec<Value> = page
                .iter()
                .filter_map(|v| inner(v).map(|(_, m)| Value::Object(m.clone())))
                .collect();
            Json(json!({ stream: list })).into_response()
        }
        _ => Json(Value::Array(page)).into_response(),
    }
}

/// A list entry without the breakdowns not asked for.
fn strip_breakdowns(mut object: Value, p: &HashMap<String, String>) -> Value {
    if let Some(m) = object
        .as_object_mut()
        .and_then(|m| m.values_mut().next())
        .and_then(Value::as_object_mut)
    {
        for b in BREAKDOWNS {
            if p.get(*b).map(String::as_str) != Some("true") {
                m.remove(*b);
            }
        }
    }
    object
}

/// `/events.json`: `[{"event": {...}}]`, newest first unless `direction=asc`.
/// `/payment_profiles.json?customer_id=`: a customer's payment profiles, each wrapped
/// (`[{"payment_profile": {...}}]`), paged by `page`/`per_page` (default 20). Without
/// `customer_id`, the site's: none here (billsync always names the customer).
fn payment_profiles(ledger: &Ledger, p: &HashMap<String, String>, lag: Duration) -> Response {
    let (page, per_page) = match paging(p, 20) {
        Ok(x) => x,
        Err(m) => return bad(&m),
    };
    let Some(customer) = p.get("customer_id") else {
        return Json(json!([])).into_response();
    };
    let profiles: Vec<Value> = match ledger.read(customer, lag) {
        Some((o, Some(v))) if o.stream == "customers" && !o.deleted => v["customer"]
            ["payment_profiles"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        _ => return errors(StatusCode::NOT_FOUND, "Customer not found"),
    };
    let data: Vec<Value> = profiles
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|p| json!({ "payment_profile": p }))
        .collect();
    Json(Value::Array(data)).into_response()
}

fn events(ledger: &Ledger, p: &HashMap<String, String>) -> Response {
    let (page, per_page) = match paging(p, 20) {
        Ok(x) => x,
        Err(m) => return bad(&m),
    };
    let desc = match descending(p, true) {
        Ok(d) => d,
        Err(m) => return bad(&m),
    };
    let window = match window(p, &["created_at"]) {
        Ok(w) => w,
        Err(m) => return bad(&m),
    };
    let since_id = p.get("since_id").and_then(|v| v.parse::<i64>().ok());
    let max_id = p.get("max_id").and_then(|v| v.parse::<i64>().ok());
    let keys: Vec<&str> = p
        .iter()
        .filter(|(k, _)| k.starts_with("filter"))
        .flat_map(|(_, v)| v.split(','))
        .collect();
    let mut out: Vec<Value> = ledger
        .events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.body).ok())
        .filter(|e| e["events_api"] == true)
        .filter(|e| {
            let id = e["id"].as_i64().unwrap_or(0);
            let created = e["created_at"]
                .as_str()
                .and_then(|t| parse_filter_time(t, false))
                .unwrap_or(0);
            since_id.is_none_or(|s| id >= s)
                && max_id.is_none_or(|m| id <= m)
                && window
                    .as_ref()
                    .is_none_or(|(_, s, end)| created >= *s && created <= *end)
                && (keys.is_empty() || keys.iter().any(|k| e["key"] == *k))
        })
        .map(|e| {
            json!({"event": {
                "id": e["id"], "key": e["key"], "message": e["message"],
                "subscription_id": e["subscription_id"], "customer_id": e["customer_id"],
                "created_at": e["created_at"], "event_specific_data": e["event_specific_data"],
            }})
        })
        .collect();
    if desc {
        out.reverse();
    }
    let page: Vec<Value> = out
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    Json(Value::Array(page)).into_response()
}

/// `/invoices/events.json`: ascending, each with the invoice as it was (the credit note too,
/// for `create_credit_note`).
fn invoice_events(ledger: &Ledger, p: &HashMap<String, String>) -> Response {
    let (page, per_page) = match paging(p, 100) {
        Ok(x) => x,
        Err(m) => return bad(&m),
    };
    let since_date = match p.get("since_date") {
        Some(v) => match parse_filter_time(v, false) {
            Some(t) => Some(t),
            None => return bad("since_date is not a valid time"),
        },
        None => None,
    };
    // `since_id` is exclusive, and ignored when `since_date` is given.
    let since_id = since_date
        .is_none()
        .then(|| p.get("since_id").and_then(|v| v.parse::<i64>().ok()))
        .flatten();
    let types: Vec<&str> = p
        .get("event_types")
        .map(|t| t.split(',').collect())
        .unwrap_or_default();
    let uid = p.get("invoice_uid");
    let all: Vec<Value> = ledger
        .events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.body).ok())
        .filter(|e| e["invoice_event"].is_string())
        .filter(|e| {
            let id = e["id"].as_i64().unwrap_or(0);
            let at = e["created_at"]
                .as_str()
                .and_then(|t| parse_filter_time(t, false))
                .unwrap_or(0);
            let uid_of = inner(&e["object"]).and_then(|(_, m)| m.get("uid"));
            since_id.is_none_or(|s| id > s)
                && since_date.is_none_or(|s| at >= s)
                && (types.is_empty() || types.iter().any(|t| e["invoice_event"] == *t))
                && uid.is_none_or(|u| uid_of.and_then(Value::as_str) == Some(u))
        })
        .map(|e| invoice_event(ledger, &e))
        .collect();
    let total_pages = all.len().div_ceil(per_page.max(1));
    let events: Vec<Value> = all
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    Json(json!({"events": events, "page": page, "per_page": per_page, "total_pages": total_pages}))
        .into_response()
}

fn invoice_event(ledger: &Ledger, e: &Value) -> Value {
    let kind = e["invoice_event"].as_str().unwrap_or_default();
    let empty = Map::new();
    let object = inner(&e["object"]).map_or(&empty, |(_, m)| m);
    let field = |k: &str| object.get(k).cloned().unwrap_or(Value::Null);
    let (invoice, data) = match kind {
        "create_credit_note" => {
            // The invoice it was issued against, as it is now.
            let origin = field("origin_invoices")[0]["uid"].clone();
            let invoice = origin
                .as_str()
                .and_then(|u| ledger.objects.get(u))
                .and_then(|o| inner(&o.current).map(|(_, m)| Value::Object(m.clone())))
                .unwrap_or_else(|| json!({"uid": origin}));
            (invoice, Value::Object(object.clone()))
        }
        "apply_payment" => (
            Value::Object(object.clone()),
            json!({"memo": "", "original_amount": field("paid_amount"),
                "applied_amount": field("paid_amount"), "transaction_time": field("updated_at"),
                "payment_method": {"type": "credit_card", "card_brand": "bogus",
                    "masked_card_number": "XXXX-XXXX-XXXX-1"},
                "transaction_id": null, "prepayment": false, "status": "paid"}),
        ),
        "void_invoice" => (
            Value::Object(object.clone()),
            json!({"credit_note_attributes": null, "memo": "", "applied_amount": null,
                "transaction_time": field("updated_at"), "is_advance_invoice": false,
                "reason": "Voided via the simulator"}),
        ),
        "change_invoice_status" => (
            Value::Object(object.clone()),
            json!({"gateway_trans_id": null, "amount": null, "from_status": "open",
                "to_status": field("status")}),
        ),
        _ => (
            Value::Object(object.clone()),
            e["event_specific_data"].clone(),
        ),
    };
    json!({"id": e["id"], "timestamp": e["created_at"], "invoice": invoice,
        "event_type": kind, "event_data": data})
}

async fn read(
    State(sim): State<Sim>,
    Path((resource, file)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let account = match admit(
        &sim,
        &MaxioPersonality,
        &headers,
        &format!("/{resource}/:id"),
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    let ledger = &w.accounts[account].ledger;
    if resource == "invoices" && file == "events.json" {
        return invoice_events(ledger, &params(q.as_deref()));
    }
    let not_found = || errors(StatusCode::NOT_FOUND, "Resource not found");
    let Some(id) = file.strip_suffix(".json") else {
        return not_found();
    };
    match read_one(ledger, id, lag) {
        Some((o, v)) if o.stream == resource => match resource.as_str() {
            // Relationship invoices and credit notes come unwrapped.
            "invoices" | "credit_notes" => inner(&v)
                .map(|(_, m)| Json(Value::Object(m.clone())).into_response())
                .unwrap_or_else(not_found),
            _ => Json(v).into_response(),
        },
        _ => not_found(),
    }
}
