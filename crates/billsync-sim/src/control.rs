//! The simulator's own endpoints under `/_sim`: accounts, ground truth, stats, knobs,
//! lifecycle steps, pausing live changes (for `sim verify --settle`), and a sample signed
//! webhook for checking a client's verifier.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use super::gate::params;
use super::personality;
use super::{LiveOut, Sim};
use crate::time::now_micros;

pub fn router(sim: Sim) -> Router {
    Router::new()
        .route("/_sim/accounts", get(accounts))
        .route("/_sim/truth", get(truth))
        .route("/_sim/stats", get(stats))
        .route("/_sim/knobs", get(knobs).post(set_knobs))
        .route("/_sim/step", post(step))
        .route("/_sim/trigger", post(trigger))
        .route("/_sim/pause", post(pause))
        .route("/_sim/resume", post(resume))
        .route("/_sim/sample_webhook", get(sample_webhook))
        .merge(personality::routes())
        .with_state(sim)
}

/// `GET /_sim/accounts`.
#[derive(Serialize)]
struct AccountsOut {
    data: Vec<super::Account>,
    base_url: String,
    /// Every account is registered with a billsync (`sim serve --target` has finished
    /// registering them): a script waits for this before reading the connection ids.
    registered: bool,
}

async fn accounts(State(sim): State<Sim>) -> Json<AccountsOut> {
    Json(AccountsOut {
        data: sim.accounts(),
        base_url: sim.base_url().to_owned(),
        registered: sim.registered(),
    })
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

/// `POST /_sim/pause`: live changes stop (deliveries of changes already made go on).
async fn pause(State(sim): State<Sim>) -> Json<LiveOut> {
    let was_paused = sim.pause_live();
    Json(LiveOut {
        paused: true,
        was_paused,
    })
}

/// `POST /_sim/resume`: live changes go on.
async fn resume(State(sim): State<Sim>) -> Json<LiveOut> {
    let was_paused = sim.resume_live();
    Json(LiveOut {
        paused: false,
        was_paused,
    })
}

/// `POST /_sim/trigger?event=invoice.paid&account=0`: one named lifecycle step, delivered.
async fn trigger(State(sim): State<Sim>, RawQuery(q): RawQuery) -> Response {
    let params = params(q.as_deref());
    let event = params.get("event").map(String::as_str).unwrap_or("");
    let account = match params.get("account").map(|a| a.parse::<usize>()) {
        None => 0,
        Some(Ok(a)) => a,
        Some(Err(_)) => return refuse("`account` must be an account number".into()),
    };
    if !super::TRIGGERS.contains(&event) {
        return refuse(format!(
            "unknown event `{event}`; known: {}",
            super::TRIGGERS.join(", ")
        ));
    }
    match sim.trigger(account, event) {
        Some(events) => {
            Json(json!({ "event": event, "account": account, "events": events })).into_response()
        }
        None => refuse(format!("no account {account}")),
    }
}

fn refuse(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": message}})),
    )
        .into_response()
}

/// A webhook of the first account signed now, for checking a client's verifier.
async fn sample_webhook(State(sim): State<Sim>) -> Response {
    let w = sim.world();
    let Some(acc) = w.accounts.first() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let face = personality::for_provider(acc.account.provider);
    // The latest event that went out as a webhook (some changes show only in the API).
    let Some(body) = acc
        .ledger
        .events
        .iter()
        .rev()
        .find_map(|e| face.webhook_body(&e.body))
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "no webhooks yet: step first"}})),
        )
            .into_response();
    };
    let t = now_micros() / 1_000_000;
    let headers: serde_json::Map<String, Value> = face
        .delivery_headers(&acc.account.webhook_secret, &body, t)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    // `signature` is the provider's signature header alone (Stripe-Signature for Stripe).
    let signature = headers
        .iter()
        .find(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone());
    Json(json!({
        "provider": acc.account.provider,
        "payload": body,
        "signature": signature,
        "headers": headers,
        "secret": acc.account.webhook_secret,
    }))
    .into_response()
}
