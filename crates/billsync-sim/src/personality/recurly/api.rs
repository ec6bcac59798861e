//! Recurly's v3 API under `/recurly`: `GET /{accounts|invoices|subscriptions|transactions}`
//! lists (`limit` 1–200, default 20; `order` asc|desc, default desc; `sort` created_at|updated_at,
//! default created_at; `begin_time`/`end_time` inclusive on the sort field; invoices' `type`
//! charge|credit|non-legacy; opaque `cursor` in a `next` link that keeps the other parameters)
//! and lookups by Recurly id or `code-`/`number-`/`uuid-` handle. Reads see the API lag.
//! Invoices embed only their first [`EMBEDDED_LINE_ITEMS`] line items, with
//! `has_more_line_items: true`; `/invoices/{id}/line_items` pages them all (`limit`, `order`
//! asc|desc, default desc, `cursor`). `/accounts/{id}/billing_info` answers the billing info
//! the account also embeds (`docs/providers/recurly.md`, "Line items", "Tax IDs and addresses").

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use super::{decorate, RecurlyPersonality};
use crate::gate::{admit, params};
use crate::personality::{Failure, Personality};
use crate::state::Ledger;
use crate::time::parse_rfc3339;
use crate::Sim;

const STREAMS: &[&str] = &["accounts", "invoices", "subscriptions", "transactions"];

/// Line items an invoice answer embeds. Recurly documents `has_more_line_items` but not the
/// count; the generator's long invoices have 11 or more, so each one pages.
pub const EMBEDDED_LINE_ITEMS: usize = 10;

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/{resource}", get(list))
        .route("/{resource}/{id}", get(retrieve))
        .route("/{resource}/{id}/{part}", get(part))
}

/// An object as the API answers it: an invoice embeds only its first line items.
fn present(mut o: Value) -> Value {
    if o.get("object").and_then(Value::as_str) != Some("invoice") {
        return o;
    }
    let Some(map) = o.as_object_mut() else {
        return o;
    };
    let more = match map.get_mut("line_items").and_then(Value::as_array_mut) {
        Some(lines) if lines.len() > EMBEDDED_LINE_ITEMS => {
            lines.truncate(EMBEDDED_LINE_ITEMS);
            true
        }
        _ => false,
    };
    map.insert("has_more_line_items".into(), Value::Bool(more));
    o
}

fn ok(body: Value) -> Response {
    let mut r = Json(body).into_response();
    decorate(r.headers_mut(), false);
    r
}

fn bad(message: String) -> Response {
    RecurlyPersonality.error(Failure::BadRequest(message))
}

/// An RFC 3339 time of an object field, microseconds (whole seconds at Recurly).
fn micros(o: &Value, field: &str) -> Option<i64> {
    o.get(field).and_then(Value::as_str).and_then(parse_rfc3339)
}

/// Whether a visible object of `stream` passes the list's own filters.
fn kept(stream: &str, o: &Value, p: &HashMap<String, String>) -> bool {
    match (stream, p.get("type").map(String::as_str)) {
        ("invoices", Some("charge")) => o["type"] == "charge",
        ("invoices", Some("credit")) => o["type"] == "credit",
        ("invoices", Some("legacy")) => o["type"] == "legacy",
        _ => p.get("state").is_none_or(|s| o["state"] == s.as_str()),
    }
}

fn cursor_text(key: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{key}:{id}"))
}

fn parse_cursor(text: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (key, id) = raw.split_once(':')?;
    Some((key.parse().ok()?, id.to_owned()))
}

async fn list(
    State(sim): State<Sim>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let account = match admit(&sim, &RecurlyPersonality, &headers, &format!("/{resource}")).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(stream) = STREAMS.iter().find(|s| **s == resource).copied() else {
        return RecurlyPersonality.error(Failure::NotFound(format!("a resource at /{resource}")));
    };
    let p = params(q.as_deref());
    let limit = match p.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(l)) if (1..=200).contains(&l) => l,
        Some(_) => return bad("limit must be an integer from 1 to 200".into()),
    };
    let descending = match p.get("order").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(o) => return bad(format!("order must be asc or desc, not {o}")),
    };
    let sort = match p.get("sort").map(String::as_str) {
        None | Some("created_at") => "created_at",
        Some("updated_at") => "updated_at",
        Some(s) => return bad(format!("sort must be created_at or updated_at, not {s}")),
    };
    let bound = |key: &str| match p.get(key) {
        None => Ok(None),
        Some(t) => parse_rfc3339(t)
            .map(Some)
            .ok_or_else(|| format!("{key} must be an ISO 8601 time")),
    };
    let (begin, end) = match (bound("begin_time"), bound("end_time")) {
        (Ok(b), Ok(e)) => (b, e),
        (Err(m), _) | (_, Err(m)) => return bad(m),
    };
    let after = match p.get("cursor") {
        None => None,
        Some(c) => match parse_cursor(c) {
            Some(c) => Some(c),
            None => return bad("cursor is invalid".into()),
        },
    };
    let page = {
        let w = sim.world();
        let lag = Duration::from_millis(w.knobs.api_lag_ms);
        let ledger = &w.accounts[account].ledger;
        let mut rows = visible(ledger, stream, lag, sort)
            .into_iter()
            .filter(|(key, _, o)| {
                begin.is_none_or(|b| *key >= b)
                    && end.is_none_or(|e| *key <= e)
                    && kept(stream, o, &p)
            })
            .collect::<Vec<_>>();
        rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        if descending {
            rows.reverse();
        }
        if let Some((key, id)) = &after {
            rows.retain(|(k, i, _)| {
                let here = (*k, i.as_str());
                let last = (*key, id.as_str());
                if descending {
                    here < last
                } else {
                    here > last
                }
            });
        }
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next = match (has_more, rows.last()) {
            (true, Some((key, id, _))) => {
                let mut link = url::form_urlencoded::Serializer::new(String::new());
                link.append_pair("cursor", &cursor_text(*key, id));
                for k in [
                    "limit",
                    "order",
                    "sort",
                    "begin_time",
                    "end_time",
                    "type",
                    "state",
                ] {
                    if let Some(v) = p.get(k) {
                        link.append_pair(k, v);
                    }
                }
                Value::String(format!("/{stream}?{}", link.finish()))
            }
            _ => Value::Null,
        };
        let data: Vec<Value> = rows.into_iter().map(|(_, _, o)| present(o)).collect();
        json!({"object": "list", "has_more": has_more, "next": next, "data": data})
    };
    ok(page)
}

/// Every object of `stream` as an API read sees it now: (sort key, Recurly id, object).
fn visible(ledger: &Ledger, stream: &str, lag: Duration, sort: &str) -> Vec<(i64, String, Value)> {
    let Some(order) = ledger.order.get(stream) else {
        return Vec::new();
    };
    order
        .iter()
        .filter_map(|(_, std::cmp::Reverse(id))| {
            let (_, seen) = ledger.read(id, lag)?;
            let o = seen?;
            let key = micros(o, sort)?;
            let rid = o.get("id").and_then(Value::as_str)?.to_owned();
            Some((key, rid, o.clone()))
        })
        .collect()
}

/// The object `key` (a Recurly id or the resource's handle) names, as a read sees it now.
fn lookup(sim: &Sim, account: usize, resource: &str, key: &str) -> Option<Value> {
    let handle = match resource {
        "accounts" => "code-",
        "invoices" => "number-",
        _ => "uuid-",
    };
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    let ledger = &w.accounts[account].ledger;
    let by_handle = key.strip_prefix(handle).and_then(|h| {
        let (o, seen) = ledger.read(h, lag)?;
        (o.stream == resource).then(|| seen.cloned()).flatten()
    });
    by_handle.or_else(|| {
        visible(ledger, resource, lag, "created_at")
            .into_iter()
            .find(|(_, id, _)| id == key)
            .map(|(_, _, o)| o)
    })
}

fn noun(resource: &str) -> Option<&'static str> {
    match resource {
        "accounts" => Some("Account"),
        "invoices" => Some("Invoice"),
        "subscriptions" => Some("Subscription"),
        "transactions" => Some("Transaction"),
        _ => None,
    }
}

async fn retrieve(
    State(sim): State<Sim>,
    Path((resource, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let account = match admit(
        &sim,
        &RecurlyPersonality,
        &headers,
        &format!("/{resource}/:id"),
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(noun) = noun(&resource) else {
        return RecurlyPersonality.error(Failure::NotFound(format!("a resource at /{resource}")));
    };
    match lookup(&sim, account, &resource, &key) {
        Some(o) => ok(present(o)),
        None => RecurlyPersonality.error(Failure::NotFound(format!("{noun} with id = {key}"))),
    }
}

/// `/invoices/{id}/line_items` (a list) and `/accounts/{id}/billing_info` (one object).
async fn part(
    State(sim): State<Sim>,
    Path((resource, key, part)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let route = format!("/{resource}/:id/{part}");
    let account = match admit(&sim, &RecurlyPersonality, &headers, &route).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let found = match (resource.as_str(), part.as_str()) {
        ("invoices", "line_items") | ("accounts", "billing_info") => {
            lookup(&sim, account, &resource, &key)
        }
        _ => return RecurlyPersonality.error(Failure::NotFound(format!("a resource at {route}"))),
    };
    let Some(object) = found else {
        let noun = noun(&resource).unwrap_or("Object");
        return RecurlyPersonality.error(Failure::NotFound(format!("{noun} with id = {key}")));
    };
    if part == "billing_info" {
        return match object.get("billing_info").filter(|b| b.is_object()) {
            Some(b) => ok(b.clone()),
            None => RecurlyPersonality
                .error(Failure::NotFound(format!("BillingInfo for account {key}"))),
        };
    }
    let p = params(q.as_deref());
    let limit = match p.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(l)) if (1..=200).contains(&l) => l,
        Some(_) => return bad("limit must be an integer from 1 to 200".into()),
    };
    let descending = match p.get("order").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(o) => return bad(format!("order must be asc or desc, not {o}")),
    };
    let start = match p.get("cursor").map(|c| parse_cursor(c)) {
        None => 0,
        Some(Some((offset, id))) if id == key => usize::try_from(offset).unwrap_or(usize::MAX),
        Some(_) => return bad("cursor is invalid".into()),
    };
    let mut lines = object
        .get("line_items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if descending {
        lines.reverse();
    }
    let end = start.saturating_add(limit).min(lines.len());
    let data: Vec<Value> = lines
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let has_more = end < lines.len();
    let next = if has_more {
        let mut link = url::form_urlencoded::Serializer::new(String::new());
        link.append_pair("cursor", &cursor_text(end as i64, &key));
        link.append_pair("limit", &limit.to_string());
        if let Some(o) = p.get("order") {
            link.append_pair("order", o);
        }
        Value::String(format!("/invoices/{key}/line_items?{}", link.finish()))
    } else {
        Value::Null
    };
    ok(json!({"object": "list", "has_more": has_more, "next": next, "data": data}))
}
