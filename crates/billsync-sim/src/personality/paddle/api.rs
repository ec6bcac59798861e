//! Paddle's API as the simulator serves it under `/paddle`: `GET /{entities}` lists ordered by
//! id with an `after` cursor, `per_page` (default 50, most 200; transactions 30 and 30,
//! larger asks get the most), `meta.pagination {per_page, next, has_more, estimated_total}`
//! with `next` always a full URL; id / status / customer / subscription filters, time filters
//! on transactions only; customers list only `active` ones unless asked. `GET /{entities}/{id}`
//! for customers, transactions and subscriptions (adjustments have no get: list with `id=`).
//! `GET /events` lists what the webhooks announced, kept 90 days. A customer's addresses and
//! businesses are listed at `GET /customers/{id}/addresses|businesses` (active ones unless
//! asked, paged like any list), never inside the customer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{parts, PaddlePersonality};
use crate::gate::{admit, params};
use crate::personality::{Failure, Personality};
use crate::time::parse_rfc3339;
use crate::Sim;

/// The list endpoints and the most entities a page of each holds.
const STREAMS: &[(&str, usize, usize)] = &[
    ("customers", 50, 200),
    ("transactions", 30, 30),
    ("subscriptions", 50, 200),
    ("adjustments", 50, 200),
];
/// The stats entry counting the events `GET /events` served (not a path).
const EVENTS_LISTED: &str = "paddle /events: events listed";
/// Events older than this are no longer listed.
const EVENTS_KEPT_SECS: i64 = 90 * 86_400;

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/{resource}", get(list))
        .route("/{resource}/{id}", get(retrieve))
        .route("/customers/{id}/{part}", get(customer_parts))
}

/// A request id for `meta`, unique within the process.
pub fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:08x}-0000-4000-8000-{n:012x}", n >> 16)
}

fn bad(message: String) -> Failure {
    Failure::BadRequest(message)
}

/// `per_page`: absent is the endpoint's default, above the most is the most.
fn per_page(p: &HashMap<String, String>, default: usize, most: usize) -> Result<usize, Failure> {
    match p.get("per_page") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(most)),
            _ => Err(bad(format!(
                "Invalid request: per_page must be a number greater than 0, got `{v}`"
            ))),
        },
    }
}

/// Only `id[ASC]` and `id[DESC]` order these lists (any case: the SDK sends `id[asc]`);
/// `true` is ascending.
fn ascending(p: &HashMap<String, String>) -> Result<bool, Failure> {
    match p.get("order_by").map(|o| o.to_ascii_lowercase()).as_deref() {
        None | Some("id[asc]") => Ok(true),
        Some("id[desc]") => Ok(false),
        Some(other) => Err(bad(format!(
            "Invalid request: order_by `{other}` is not valid; valid fields for ordering: id"
        ))),
    }
}

/// A comma-separated filter's values, if given.
fn any_of<'a>(p: &'a HashMap<String, String>, key: &str) -> Option<Vec<&'a str>> {
    p.get(key).map(|v| v.split(',').map(str::trim).collect())
}

/// Time filters `field`, `field[LT|LTE|GT|GTE]` on an RFC 3339 field of the entity.
fn time_filters(
    p: &HashMap<String, String>,
    field: &str,
) -> Result<Vec<(&'static str, i64)>, Failure> {
    let mut out = Vec::new();
    for (op, suffix) in [
        ("EQ", ""),
        ("LT", "[LT]"),
        ("LTE", "[LTE]"),
        ("GT", "[GT]"),
        ("GTE", "[GTE]"),
    ] {
        let key = format!("{field}{suffix}");
        if let Some(v) = p.get(&key) {
            // Paddle's own examples leave out the offset (`2023-04-18T17:03:26`): UTC.
            let t = parse_rfc3339(v)
                .or_else(|| parse_rfc3339(&format!("{v}Z")))
                .ok_or_else(|| {
                    bad(format!(
                        "Invalid request: {key} must be an RFC 3339 datetime"
                    ))
                })?;
            out.push((op, t));
        }
    }
    Ok(out)
}

fn time_matches(entity: &Value, field: &str, filters: &[(&str, i64)]) -> bool {
    if filters.is_empty() {
        return true;
    }
    let Some(t) = entity[field].as_str().and_then(parse_rfc3339) else {
        return false;
    };
    filters.iter().all(|(op, v)| match *op {
        "LT" => t < *v,
        "LTE" => t <= *v,
        "GT" => t > *v,
        "GTE" => t >= *v,
        _ => t == *v,
    })
}

/// One page of a list.
struct Page {
    data: Vec<Value>,
    per_page: usize,
    has_more: bool,
    /// How many entities the whole list holds.
    total: usize,
    /// The id of the page's last entity: the next page starts after it.
    last: Option<String>,
}

/// The page and its `meta`, `next` carrying the request's query with the new `after`.
fn answer(sim: &Sim, path: &str, p: &HashMap<String, String>, page: Page) -> Response {
    let Page {
        data,
        per_page,
        has_more,
        total,
        last,
    } = page;
    let mut query: Vec<(String, String)> = p
        .iter()
        .filter(|(k, _)| k.as_str() != "after")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    query.sort();
    if let Some(after) = last.or_else(|| p.get("after").cloned()) {
        query.push(("after".into(), after));
    }
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    let next = format!("{}/paddle{path}?{encoded}", sim.base_url());
    Json(json!({
        "data": data,
        "meta": {"request_id": request_id(), "pagination": {
            "per_page": per_page, "next": next, "has_more": has_more, "estimated_total": total}},
    }))
    .into_response()
}

async fn list(
    State(sim): State<Sim>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let path = format!("/{resource}");
    let account = match admit(&sim, &PaddlePersonality, &headers, &path).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let p = params(q.as_deref());
    if resource == "events" {
        return events(&sim, account, &p);
    }
    let Some(&(stream, default, most)) = STREAMS.iter().find(|(s, ..)| *s == resource) else {
        return PaddlePersonality.error(Failure::NotFound(path));
    };
    let (per_page, ascending) = match (per_page(&p, default, most), ascending(&p)) {
        (Ok(n), Ok(a)) => (n, a),
        (Err(f), _) | (_, Err(f)) => return PaddlePersonality.error(f),
    };
    let mut times = Vec::new();
    if stream == "transactions" {
        for field in ["created_at", "updated_at", "billed_at"] {
            match time_filters(&p, field) {
                Ok(f) => times.push((field, f)),
                Err(f) => return PaddlePersonality.error(f),
            }
        }
    }
    let ids = any_of(&p, "id");
    // Customers (like other catalog entities) list only active ones unless asked.
    let statuses = any_of(&p, "status").or_else(|| (stream == "customers").then(|| vec!["active"]));
    let refs: Vec<(&str, Vec<&str>)> =
        ["customer_id", "subscription_id", "transaction_id", "action"]
            .into_iter()
            .filter_map(|k| any_of(&p, k).map(|v| (k, v)))
            .collect();
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    let ledger = &w.accounts[account].ledger;
    let mut visible: Vec<(&str, &Value)> = ledger
        .order
        .get(stream)
        .into_iter()
        .flatten()
        .filter_map(|(_, id)| {
            let (_, v) = ledger.read(&id.0, lag)?;
            Some((id.0.as_str(), v?))
        })
        .filter(|(id, v)| {
            ids.as_ref().is_none_or(|ids| ids.contains(id))
                && statuses
                    .as_ref()
                    .is_none_or(|s| s.contains(&v["status"].as_str().unwrap_or_default()))
                && refs
                    .iter()
                    .all(|(k, want)| want.contains(&v[*k].as_str().unwrap_or("null")))
                && times.iter().all(|(field, f)| time_matches(v, field, f))
        })
        .collect();
    if ascending {
        visible.sort_by(|a, b| a.0.cmp(b.0));
    } else {
        visible.sort_by(|a, b| b.0.cmp(a.0));
    }
    let total = visible.len();
    let rest: Vec<(&str, &Value)> = match p.get("after") {
        Some(after) => visible
            .into_iter()
            .filter(|(id, _)| {
                if ascending {
                    *id > after.as_str()
                } else {
                    *id < after.as_str()
                }
            })
            .collect(),
        None => visible,
    };
    let shown = &rest[..rest.len().min(per_page)];
    let page = Page {
        data: shown.iter().map(|(_, v)| parts::present(v)).collect(),
        per_page,
        has_more: rest.len() > per_page,
        total,
        last: shown.last().map(|(id, _)| (*id).to_owned()),
    };
    drop(w);
    answer(&sim, &path, &p, page)
}

/// `GET /events`: the events of the last 90 days, ordered by id, `event_type` filter.
fn events(sim: &Sim, account: usize, p: &HashMap<String, String>) -> Response {
    let (per_page, ascending) = match (per_page(p, 50, 200), ascending(p)) {
        (Ok(n), Ok(a)) => (n, a),
        (Err(f), _) | (_, Err(f)) => return PaddlePersonality.error(f),
    };
    let types = any_of(p, "event_type");
    let w = sim.world();
    let events = &w.accounts[account].ledger.events;
    let newest = events.last().map_or(0, |e| e.created);
    let mut kept: Vec<(&str, Value)> = events
        .iter()
        .filter(|e| e.created >= newest - EVENTS_KEPT_SECS)
        .filter_map(|e| {
            let mut v: Value = serde_json::from_str(&e.body).ok()?;
            if types
                .as_ref()
                .is_some_and(|t| !t.contains(&v["event_type"].as_str().unwrap_or_default()))
            {
                return None;
            }
            // The events API shows the event, not one destination's notification of it.
            if let Some(o) = v.as_object_mut() {
                o.remove("notification_id");
            }
            Some((e.id.as_str(), v))
        })
        .collect();
    if !ascending {
        kept.reverse();
    }
    let total = kept.len();
    let start = match p.get("after") {
        Some(after) => kept
            .iter()
            .position(|(id, _)| {
                if ascending {
                    *id > after.as_str()
                } else {
                    *id < after.as_str()
                }
            })
            .unwrap_or(kept.len()),
        None => 0,
    };
    let rest = &kept[start..];
    let shown = &rest[..rest.len().min(per_page)];
    let page = Page {
        data: shown.iter().map(|(_, v)| v.clone()).collect(),
        per_page,
        has_more: rest.len() > per_page,
        total,
        last: shown.last().map(|(id, _)| (*id).to_owned()),
    };
    drop(w);
    // How many events the list served, so tests see what a sweep read (not only its requests).
    *sim.world()
        .stats
        .requests_by_path
        .entry(EVENTS_LISTED.to_owned())
        .or_default() += page.data.len() as u64;
    answer(sim, "/events", p, page)
}

async fn retrieve(
    State(sim): State<Sim>,
    Path((resource, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let account = match admit(
        &sim,
        &PaddlePersonality,
        &headers,
        &format!("/{resource}/:id"),
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !matches!(
        resource.as_str(),
        "customers" | "transactions" | "subscriptions"
    ) {
        return PaddlePersonality.error(Failure::NotFound(format!("/{resource}/{id}")));
    }
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    match w.accounts[account].ledger.read(&id, lag) {
        // Paddle archives rather than deletes: an archived entity is still there.
        Some((o, Some(visible))) if o.stream == resource => (
            StatusCode::OK,
            Json(json!({"data": parts::present(visible), "meta": {"request_id": request_id()}})),
        )
            .into_response(),
        _ => PaddlePersonality.error(Failure::NotFound(id)),
    }
}

/// `GET /customers/{id}/addresses|businesses`: a customer's parts, `active` ones unless
/// `status` asks otherwise, with `id` filter, ordered by id and paged by `after`.
async fn customer_parts(
    State(sim): State<Sim>,
    Path((id, part)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let path = format!("/customers/{id}/{part}");
    let account = match admit(
        &sim,
        &PaddlePersonality,
        &headers,
        &format!("/customers/:id/{part}"),
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !parts::PARTS.iter().any(|(field, _)| *field == part) {
        return PaddlePersonality.error(Failure::NotFound(path));
    }
    let p = params(q.as_deref());
    let (per_page, ascending) = match (per_page(&p, 50, 200), ascending(&p)) {
        (Ok(n), Ok(a)) => (n, a),
        (Err(f), _) | (_, Err(f)) => return PaddlePersonality.error(f),
    };
    let statuses = any_of(&p, "status").unwrap_or_else(|| vec!["active"]);
    let ids = any_of(&p, "id");
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    let customer = match w.accounts[account].ledger.read(&id, lag) {
        Some((o, Some(visible))) if o.stream == "customers" => visible,
        _ => return PaddlePersonality.error(Failure::NotFound(id)),
    };
    let mut items: Vec<&Value> = parts::held(customer, &part)
        .iter()
        .filter(|v| statuses.contains(&v["status"].as_str().unwrap_or_default()))
        .filter(|v| {
            ids.as_ref()
                .is_none_or(|ids| ids.contains(&v["id"].as_str().unwrap_or_default()))
        })
        .collect();
    items.sort_by(|a, b| {
        let (a, b) = (a["id"].as_str(), b["id"].as_str());
        if ascending {
            a.cmp(&b)
        } else {
            b.cmp(&a)
        }
    });
    let total = items.len();
    let rest: Vec<&Value> = match p.get("after") {
        Some(after) => items
            .into_iter()
            .filter(|v| {
                let item = v["id"].as_str().unwrap_or_default();
                if ascending {
                    item > after.as_str()
                } else {
                    item < after.as_str()
                }
            })
            .collect(),
        None => items,
    };
    let shown = &rest[..rest.len().min(per_page)];
    let page = Page {
        data: shown.iter().map(|v| (*v).clone()).collect(),
        per_page,
        has_more: rest.len() > per_page,
        total,
        last: shown
            .last()
            .and_then(|v| v["id"].as_str())
            .map(str::to_owned),
    };
    drop(w);
    answer(&sim, &path, &p, page)
}
