//! The Stripe personality's HTTP API under `/stripe` (cursor lists newest first, `created`
//! filters, retrieve, the events API, Stripe's error bodies and 429s), and the simulator's
//! own `/_sim` endpoints (accounts, truth, stats, knobs, step, a sample webhook).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::ops::Bound;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::knobs::{outage_active, OutageMode};
use super::Sim;
use crate::model::time::now_micros;
use crate::providers::stripe::sign;

const STREAMS: &[&str] = &[
    "customers",
    "invoices",
    "credit_notes",
    "subscriptions",
    "charges",
    "refunds",
];

pub fn router(sim: Sim) -> Router {
    Router::new()
        .route("/stripe/v1/{resource}", get(list))
        .route("/stripe/v1/{resource}/{id}", get(retrieve))
        .route("/_sim/accounts", get(accounts))
        .route("/_sim/truth", get(truth))
        .route("/_sim/stats", get(stats))
        .route("/_sim/knobs", get(knobs).post(set_knobs))
        .route("/_sim/step", post(step))
        .route("/_sim/sample_webhook", get(sample_webhook))
        .with_state(sim)
}

fn stripe_error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    let mut err = json!({ "type": kind, "message": message });
    if let Some(c) = code {
        err["code"] = json!(c);
    }
    (status, Json(json!({ "error": err }))).into_response()
}

/// Auth, rate limit and outage for one API request; the account index when it may proceed.
async fn admit(sim: &Sim, headers: &HeaderMap, path: &str) -> Result<usize, Response> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (account, outage) = {
        let mut w = sim.world();
        w.stats.requests += 1;
        *w.stats.requests_by_path.entry(path.to_owned()).or_default() += 1;
        let Some(&account) = w.by_key.get(key) else {
            return Err(stripe_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                "Invalid API Key provided.",
            ));
        };
        let outage = match (&w.knobs.outage, w.outage_since) {
            (Some(o), Some(since)) if outage_active(o, since) => Some(o.clone()),
            _ => None,
        };
        if outage.is_none() {
            if let Some(rate) = w.knobs.rate_limit_per_sec {
                let burst = w.knobs.rate_limit_burst;
                if !w.accounts[account].bucket.take(rate, burst) {
                    w.stats.rate_limited += 1;
                    let mut r = stripe_error(StatusCode::TOO_MANY_REQUESTS, "invalid_request_error", Some("rate_limit"),
                        "Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits.");
                    r.headers_mut().insert(
                        "Stripe-Should-Retry",
                        "true".parse().expect("static header value"),
                    );
                    return Err(r);
                }
            }
        }
        (account, outage)
    };
    if let Some(o) = outage {
        match o.mode {
            OutageMode::Slow => tokio::time::sleep(Duration::from_millis(o.slow_ms)).await,
            mode => {
                if mode == OutageMode::Hang {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                sim.world().stats.outage_answers += 1;
                return Err(stripe_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    None,
                    "An unknown error occurred (simulated outage).",
                ));
            }
        }
    }
    Ok(account)
}

fn params(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// An integer parameter; the error is Stripe's message for it.
fn int(p: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    p.get(key)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| format!("Invalid integer: {v}"))
        })
        .transpose()
}

fn bad_integer(message: &str) -> Response {
    stripe_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("parameter_invalid_integer"),
        message,
    )
}

async fn list(
    State(sim): State<Sim>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let account = match admit(&sim, &headers, &format!("/v1/{resource}")).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let p = params(q.as_deref());
    let limit = match int(&p, "limit") {
        Ok(l) => l.unwrap_or(10),
        Err(m) => return bad_integer(&m),
    };
    if !(1..=100).contains(&limit) {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_invalid_integer"),
            "This value must be between 1 and 100.",
        );
    }
    let (gte, gt, lte, lt) = match (
        int(&p, "created[gte]"),
        int(&p, "created[gt]"),
        int(&p, "created[lte]"),
        int(&p, "created[lt]"),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        (Err(m), ..) | (_, Err(m), ..) | (_, _, Err(m), _) | (.., Err(m)) => {
            return bad_integer(&m)
        }
    };
    let low = gte
        .unwrap_or(i64::MIN)
        .max(gt.map_or(i64::MIN, |g| g.saturating_add(1)));
    let high = lte
        .unwrap_or(i64::MAX)
        .min(lt.map_or(i64::MAX, |l| l.saturating_sub(1)));
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    let ledger = &w.accounts[account].ledger;
    if resource == "events" {
        let newest = ledger.events.last().map_or(0, |e| e.created);
        let types: Vec<&String> = p
            .iter()
            .filter(|(k, _)| k.starts_with("types[") || *k == "type")
            .map(|(_, v)| v)
            .collect();
        let mut events: Vec<&super::state::SimEvent> = ledger
            .events
            .iter()
            .rev()
            .filter(|e| e.created >= low && e.created <= high && e.created >= newest - 30 * 86_400)
            .filter(|e| {
                types.is_empty()
                    || types
                        .iter()
                        .any(|t| e.body.contains(&format!("\"type\":\"{t}\"")))
            })
            .collect();
        if let Some(after) = p.get("starting_after") {
            match events.iter().position(|e| &e.id == after) {
                Some(i) => events = events.split_off(i + 1),
                None => return missing("starting_after", after),
            }
        }
        let has_more = events.len() > limit as usize;
        let data: Vec<Value> = events
            .iter()
            .take(limit as usize)
            .filter_map(|e| serde_json::from_str(&e.body).ok())
            .collect();
        return Json(
            json!({"object": "list", "url": "/v1/events", "has_more": has_more, "data": data}),
        )
        .into_response();
    }
    let Some(stream) = STREAMS.iter().find(|s| **s == resource) else {
        return stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            None,
            &format!("Unrecognized request URL (GET: /v1/{resource})."),
        );
    };
    let Some(order) = ledger.order.get(stream) else {
        return Json(json!({"object": "list", "url": format!("/v1/{resource}"), "has_more": false, "data": []})).into_response();
    };
    let start = match p.get("starting_after") {
        Some(after) => match ledger.objects.get(after) {
            Some(o) => Bound::Excluded((Reverse(o.created), Reverse(after.clone()))),
            None => return missing("starting_after", after),
        },
        None => Bound::Included((Reverse(high), Reverse(String::from("\u{10FFFF}")))),
    };
    let status_filter = p.get("status").map(String::as_str);
    let mut data = Vec::new();
    let mut has_more = false;
    for (Reverse(created), Reverse(id)) in order.range((start, Bound::Unbounded)) {
        if *created > high {
            continue;
        }
        if *created < low {
            break;
        }
        let Some((o, Some(visible))) = ledger.read(id, lag) else {
            continue;
        };
        if o.deleted && std::ptr::eq(visible, &o.current) {
            continue; // lists omit deleted objects
        }
        if *stream == "subscriptions" {
            let canceled = visible["status"] == "canceled";
            let keep = match status_filter {
                Some("all") => true,
                Some("canceled") => canceled,
                Some(s) => visible["status"] == s,
                None => !canceled,
            };
            if !keep {
                continue;
            }
        }
        if data.len() == limit as usize {
            has_more = true;
            break;
        }
        data.push(visible.clone());
    }
    Json(json!({"object": "list", "url": format!("/v1/{resource}"), "has_more": has_more, "data": data})).into_response()
}

fn missing(param: &str, id: &str) -> Response {
    let body = json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "param": param,
        "message": format!("No such object: '{id}'")}});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn retrieve(
    State(sim): State<Sim>,
    Path((resource, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let account = match admit(&sim, &headers, &format!("/v1/{resource}/:id")).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    let ledger = &w.accounts[account].ledger;
    if resource == "events" {
        return match ledger.events.iter().find(|e| e.id == id) {
            Some(e) => (
                StatusCode::OK,
                [("content-type", "application/json")],
                e.body.clone(),
            )
                .into_response(),
            None => missing("id", &id),
        };
    }
    match ledger.read(&id, lag) {
        Some((o, Some(visible))) if o.stream == resource => Json(visible.clone()).into_response(),
        _ => missing("id", &id),
    }
}

async fn accounts(State(sim): State<Sim>) -> Json<Value> {
    Json(json!({ "data": sim.accounts(), "base_url": sim.base_url() }))
}

async fn truth(State(sim): State<Sim>, RawQuery(q): RawQuery) -> Json<Value> {
    let deliveries = params(q.as_deref())
        .get("deliveries")
        .is_some_and(|v| v == "1" || v == "true");
    Json(sim.truth(deliveries))
}

async fn stats(State(sim): State<Sim>) -> Json<Value> {
    Json(serde_json::to_value(sim.stats()).unwrap_or(Value::Null))
}

async fn knobs(State(sim): State<Sim>) -> Json<Value> {
    Json(serde_json::to_value(sim.knobs()).unwrap_or(Value::Null))
}

async fn set_knobs(State(sim): State<Sim>, Json(patch): Json<Value>) -> Response {
    match sim.set_knobs(&patch) {
        Ok(k) => Json(serde_json::to_value(k).unwrap_or(Value::Null)).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": e.to_string()}})),
        )
            .into_response(),
    }
}

async fn step(State(sim): State<Sim>, RawQuery(q): RawQuery) -> Json<Value> {
    let n = params(q.as_deref())
        .get("n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1usize)
        .min(100_000);
    Json(json!({ "changed": sim.step(n) }))
}

/// A webhook of the first account signed now, for checking a client's verifier.
async fn sample_webhook(State(sim): State<Sim>) -> Response {
    let w = sim.world();
    let Some(acc) = w.accounts.first() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(event) = acc.ledger.events.last() else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "no events yet: step first"}})),
        )
            .into_response();
    };
    let t = now_micros() / 1_000_000;
    Json(json!({
        "payload": event.body,
        "signature": sign(&acc.account.webhook_secret, t, event.body.as_bytes()),
        "secret": acc.account.webhook_secret,
    }))
    .into_response()
}
