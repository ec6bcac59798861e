//! Chargebee's v2 API as the simulator serves it under `/chargebee/api/v2`: lists answer
//! `{"list": [{"<resource>": {...}}], "next_offset": "..."}` (no `next_offset` on the last
//! page), `limit` 1–100 (default 10), `offset` = the previous `next_offset` (opaque: a JSON
//! array of the sort key and id, as Chargebee's look), `sort_by[asc|desc]=created_at|updated_at`
//! (default newest created first), timestamp filters `[after|before|on|between]` on
//! `created_at`/`updated_at`, deleted resources only with `include_deleted=true`. Events sort
//! and filter on `occurred_at`. A retrieve answers `{"<resource>": {...}}`; a deleted resource
//! is gone (404).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::ChargebeePersonality;
use crate::gate::{admit, params};
use crate::personality::{Failure, Personality};
use crate::state::Ledger;
use crate::Sim;

/// List endpoints and the resource name their entries are wrapped in.
const STREAMS: &[(&str, &str)] = &[
    ("customers", "customer"),
    ("invoices", "invoice"),
    ("credit_notes", "credit_note"),
    ("subscriptions", "subscription"),
    ("transactions", "transaction"),
];

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/api/v2/{resource}", get(list))
        .route("/api/v2/{resource}/{id}", get(retrieve))
}

/// The resource name of a list endpoint (`invoices` → `invoice`).
pub fn resource_name(stream: &str) -> Option<&'static str> {
    STREAMS.iter().find(|(s, _)| *s == stream).map(|(_, r)| *r)
}

/// A list entry or retrieve answer: the resource under its name, and for a subscription its
/// customer beside it, as Chargebee answers.
fn wrapped(ledger: &Ledger, lag: Duration, name: &str, v: &Value) -> Value {
    let mut entry = json!({ name: v });
    if name == "subscription" {
        let id = v["customer_id"].as_str().unwrap_or_default();
        entry["customer"] = match ledger.read(id, lag) {
            Some((_, Some(c))) => c.clone(),
            _ => json!({"id": id, "object": "customer", "deleted": true}),
        };
    }
    entry
}

fn bad(param: &str, message: &str) -> Failure {
    Failure::BadRequest(format!("{param} : {message}"))
}

/// A timestamp filter `field[after|before|on|between]` (unix seconds, bounds of `between`
/// inclusive).
fn window(p: &HashMap<String, String>, field: &str) -> Result<(i64, i64), Failure> {
    let mut low = i64::MIN;
    let mut high = i64::MAX;
    let int = |key: &str, v: &str| {
        v.trim()
            .parse::<i64>()
            .map_err(|_| bad(key, "invalid integer value"))
    };
    for (op, v) in p.iter().filter_map(|(k, v)| {
        k.strip_prefix(field)
            .and_then(|r| r.strip_prefix('['))
            .and_then(|r| r.strip_suffix(']'))
            .map(|op| (op, v))
    }) {
        let key = format!("{field}[{op}]");
        match op {
            "after" => low = low.max(int(&key, v)?.saturating_add(1)),
            "before" => high = high.min(int(&key, v)?.saturating_sub(1)),
            "on" => {
                let t = int(&key, v)?;
                low = low.max(t);
                high = high.min(t);
            }
            "between" => {
                let bounds = list_values(v)
                    .iter()
                    .map(|b| b.parse::<i64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| bad(&key, "must be a list of two timestamps"))?;
                let [a, b] = bounds[..] else {
                    return Err(bad(&key, "must be a list of two timestamps"));
                };
                low = low.max(a);
                high = high.min(b);
            }
            _ => return Err(bad(&key, "unknown operator")),
        }
    }
    Ok((low, high))
}

/// The values of a list parameter (`[a, b]`; chargebee-python writes `['a', 'b']`).
fn list_values(v: &str) -> Vec<String> {
    v.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|x| x.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        .filter(|x| !x.is_empty())
        .collect()
}

fn limit(p: &HashMap<String, String>) -> Result<usize, Failure> {
    match p.get("limit") {
        None => Ok(10),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(bad("limit", "The value must be between 1 and 100")),
        },
    }
}

/// The sort: field and whether ascending, from `sort_by[asc|desc]`.
fn sort(
    p: &HashMap<String, String>,
    fields: &[&str],
    default: &str,
) -> Result<(String, bool), Failure> {
    let (field, asc) = match (p.get("sort_by[asc]"), p.get("sort_by[desc]")) {
        (Some(f), None) => (f.clone(), true),
        (None, Some(f)) => (f.clone(), false),
        (None, None) => (default.to_owned(), false),
        (Some(_), Some(_)) => return Err(bad("sort_by", "only one sort order is allowed")),
    };
    if !fields.contains(&field.as_str()) {
        return Err(bad("sort_by", "the value is not a sortable attribute"));
    }
    Ok((field, asc))
}

/// `offset`: the sort key and id of the last entry of the previous page.
fn offset(p: &HashMap<String, String>) -> Result<Option<(i64, String)>, Failure> {
    let Some(o) = p.get("offset") else {
        return Ok(None);
    };
    let parts: Vec<String> = serde_json::from_str(o).map_err(|_| bad("offset", "invalid value"))?;
    match &parts[..] {
        [key, id] => Ok(Some((
            key.parse().map_err(|_| bad("offset", "invalid value"))?,
            id.clone(),
        ))),
        _ => Err(bad("offset", "invalid value")),
    }
}

/// Sorts `(key, id, entry)` rows, starts after `offset`, and answers one page.
fn page(
    mut rows: Vec<(i64, String, Value)>,
    asc: bool,
    start: Option<(i64, String)>,
    limit: usize,
) -> Response {
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    if !asc {
        rows.reverse();
    }
    if let Some((key, id)) = start {
        rows.retain(|r| {
            let ord = (r.0, &r.1).cmp(&(key, &id));
            if asc {
                ord.is_gt()
            } else {
                ord.is_lt()
            }
        });
    }
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut body = json!({"list": rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>()});
    if let (true, Some(last)) = (more, rows.last()) {
        body["next_offset"] = json!(json!([last.0.to_string(), last.1]).to_string());
    }
    Json(body).into_response()
}

async fn list(
    State(sim): State<Sim>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let path = format!("/api/v2/{resource}");
    let account = match admit(&sim, &ChargebeePersonality, &headers, &path).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let p = params(q.as_deref());
    let (limit, start) = match (limit(&p), offset(&p)) {
        (Ok(l), Ok(s)) => (l, s),
        (Err(f), _) | (_, Err(f)) => return ChargebeePersonality.error(f),
    };
    if resource == "events" {
        return events(&sim, account, &p, limit, start);
    }
    let Some(name) = resource_name(&resource) else {
        return ChargebeePersonality.error(Failure::NotFound(path));
    };
    let (field, asc) = match sort(&p, &["created_at", "updated_at"], "created_at") {
        Ok(s) => s,
        Err(f) => return ChargebeePersonality.error(f),
    };
    let (created, updated) = match (window(&p, "created_at"), window(&p, "updated_at")) {
        (Ok(c), Ok(u)) => (c, u),
        (Err(f), _) | (_, Err(f)) => return ChargebeePersonality.error(f),
    };
    let include_deleted = p.get("include_deleted").is_some_and(|v| v == "true");
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    let ledger = &w.accounts[account].ledger;
    let in_window = |v: &Value, key: &str, (low, high): (i64, i64)| {
        (low == i64::MIN && high == i64::MAX)
            || v[key].as_i64().is_some_and(|t| t >= low && t <= high)
    };
    let rows: Vec<(i64, String, Value)> = ledger
        .order
        .get(resource.as_str())
        .into_iter()
        .flatten()
        .filter_map(|(_, id)| {
            let (_, v) = ledger.read(&id.0, lag)?;
            let v = v?;
            let deleted = v["deleted"] == true;
            if (deleted && !include_deleted)
                || !in_window(v, "created_at", created)
                || !in_window(v, "updated_at", updated)
            {
                return None;
            }
            // `resource_version` orders changes within the second `updated_at` has.
            let key = match field.as_str() {
                "updated_at" => v["resource_version"].as_i64(),
                _ => v["created_at"].as_i64().or(v["date"].as_i64()),
            }
            .unwrap_or(0);
            Some((key, id.0.clone(), wrapped(ledger, lag, name, v)))
        })
        .collect();
    drop(w);
    page(rows, asc, start, limit)
}

/// `GET /api/v2/events`: every event, `occurred_at` filters and sort, `event_type[is|in]`.
fn events(
    sim: &Sim,
    account: usize,
    p: &HashMap<String, String>,
    limit: usize,
    start: Option<(i64, String)>,
) -> Response {
    let (_, asc) = match sort(p, &["occurred_at"], "occurred_at") {
        Ok(s) => s,
        Err(f) => return ChargebeePersonality.error(f),
    };
    let (mut low, mut high) = match window(p, "occurred_at") {
        Ok(w) => w,
        Err(f) => return ChargebeePersonality.error(f),
    };
    // The older `start_time` / `end_time` parameters still work.
    for (key, inclusive_low) in [("start_time", true), ("end_time", false)] {
        if let Some(v) = p.get(key) {
            let Ok(t) = v.parse::<i64>() else {
                return ChargebeePersonality.error(bad(key, "invalid integer value"));
            };
            if inclusive_low {
                low = low.max(t);
            } else {
                high = high.min(t);
            }
        }
    }
    let types: Option<Vec<String>> = match (p.get("event_type[is]"), p.get("event_type[in]")) {
        (Some(t), _) => Some(vec![t.clone()]),
        (None, Some(list)) => Some(list_values(list)),
        _ => None,
    };
    let w = sim.world();
    let rows: Vec<(i64, String, Value)> = w.accounts[account]
        .ledger
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.created >= low && e.created <= high)
        .filter_map(|(i, e)| {
            let v: Value = serde_json::from_str(&e.body).ok()?;
            if types
                .as_ref()
                .is_some_and(|t| !t.iter().any(|t| v["event_type"] == t.as_str()))
            {
                return None;
            }
            // Ties of `occurred_at` keep the order the events happened in.
            Some((e.created, format!("{i:012}"), json!({ "event": v })))
        })
        .collect();
    drop(w);
    page(rows, asc, start, limit)
}

async fn retrieve(
    State(sim): State<Sim>,
    Path((resource, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let account = match admit(
        &sim,
        &ChargebeePersonality,
        &headers,
        &format!("/api/v2/{resource}/:id"),
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    let w = sim.world();
    let ledger = &w.accounts[account].ledger;
    if resource == "events" {
        let found = ledger.events.iter().find_map(|e| {
            let v: Value = serde_json::from_str(&e.body).ok()?;
            (v["id"] == id.as_str()).then_some(v)
        });
        return match found {
            Some(v) => Json(json!({ "event": v })).into_response(),
            None => ChargebeePersonality.error(Failure::NotFound(id)),
        };
    }
    let Some(name) = resource_name(&resource) else {
        return ChargebeePersonality.error(Failure::NotFound(format!("/api/v2/{resource}")));
    };
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    match ledger.read(&id, lag) {
        Some((o, Some(v))) if o.stream == resource && v["deleted"] != true => {
            Json(wrapped(ledger, lag, name, v)).into_response()
        }
        _ => ChargebeePersonality.error(Failure::NotFound(id)),
    }
}
