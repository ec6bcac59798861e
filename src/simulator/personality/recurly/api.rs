//! Recurly's v3 API under `/recurly`: `GET /{accounts|invoices|subscriptions|transactions}`
//! lists (`limit` 1–200, default 20; `order` asc|desc, default desc; `sort` created_at|updated_at,
//! default created_at; `begin_time`/`end_time` inclusive on the sort field; invoices' `type`
//! charge|credit|non-legacy; opaque `cursor` in a `next` link that keeps the other parameters)
//! and lookups by Recurly id or `code-`/`number-`/`uuid-` handle. Reads see the API lag.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use super::{decorate, Recurly};
use crate::model::time::parse_rfc3339;
use crate::simulator::gate::{admit, params};
use crate::simulator::personality::{Failure, Personality};
use crate::simulator::state::Ledger;
use crate::simulator::Sim;

const STREAMS: &[&str] = &["accounts", "invoices", "subscriptions", "transactions"];

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/{resource}", get(list))
        .route("/{resource}/{id}", get(retrieve))
}

fn ok(body: Value) -> Response {
    let mut r = Json(body).into_response();
    decorate(r.headers_mut(), false);
    r
}

fn bad(message: String) -> Response {
    Recurly.error(Failure::BadRequest(message))
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
    let account = match admit(&sim, &Recurly, &headers, &format!("/{resource}")).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(stream) = STREAMS.iter().find(|s| **s == resource).copied() else {
        return Recurly.error(Failure::NotFound(format!("a resource at /{resource}")));
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
        let data: Vec<Value> = rows.into_iter().map(|(_, _, o)| o).collect();
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

async fn retrieve(
    State(sim): State<Sim>,
    Path((resource, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let account = match admit(&sim, &Recurly, &headers, &format!("/{resource}/:id")).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (handle, noun) = match resource.as_str() {
        "accounts" => ("code-", "Account"),
        "invoices" => ("number-", "Invoice"),
        "subscriptions" => ("uuid-", "Subscription"),
        "transactions" => ("uuid-", "Transaction"),
        _ => return Recurly.error(Failure::NotFound(format!("a resource at /{resource}"))),
    };
    let found = {
        let w = sim.world();
        let lag = Duration::from_millis(w.knobs.api_lag_ms);
        let ledger = &w.accounts[account].ledger;
        let by_handle = key.strip_prefix(handle).and_then(|h| {
            let (o, seen) = ledger.read(h, lag)?;
            (o.stream == resource).then(|| seen.cloned()).flatten()
        });
        by_handle.or_else(|| {
            visible(ledger, &resource, lag, "created_at")
                .into_iter()
                .find(|(_, id, _)| *id == key)
                .map(|(_, _, o)| o)
        })
    };
    match found {
        Some(o) => ok(o),
        None => Recurly.error(Failure::NotFound(format!("{noun} with id = {key}"))),
    }
}
