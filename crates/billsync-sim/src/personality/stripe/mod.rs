//! The Stripe personality: `/stripe/v1/{resource}` cursor lists newest first with `created`
//! filters, retrieve, the events API (30 days), Stripe's error bodies and 429s, and webhooks
//! signed with `Stripe-Signature`. The generator speaks Stripe's shapes, so objects pass
//! through unchanged.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::ops::Bound;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{Failure, Personality};
use crate::gate::{admit, params};
use crate::provider::SimProvider;
use crate::scenario::Change;
use crate::signing;
use crate::Sim;
use shapes::{expansions, present, sub_list, tax_id_events, EMBEDDED_LIST};

const STREAMS: &[&str] = &[
    "customers",
    "invoices",
    "credit_notes",
    "subscriptions",
    "charges",
    "refunds",
];

mod shapes;

pub struct StripePersonality;

impl Personality for StripePersonality {
    fn provider(&self) -> SimProvider {
        SimProvider::Stripe
    }

    fn credentials(&self, tag: &str) -> (String, String) {
        (format!("sk_test_sim{tag}"), format!("whsec_sim{tag}"))
    }

    fn api_key(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
    }

    fn error(&self, failure: Failure) -> Response {
        match failure {
            Failure::Unauthorized => stripe_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                "Invalid API Key provided.",
            ),
            Failure::RateLimited => {
                let mut r = stripe_error(StatusCode::TOO_MANY_REQUESTS, "invalid_request_error", Some("rate_limit"),
                    "Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits.");
                r.headers_mut().insert(
                    "Stripe-Should-Retry",
                    "true".parse().expect("static header value"),
                );
                r
            }
            Failure::Outage => stripe_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                None,
                "An unknown error occurred (simulated outage).",
            ),
            Failure::NotFound(what) => stripe_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                None,
                &format!("Unrecognized request URL (GET: {what})."),
            ),
            Failure::BadRequest(message) => stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                &message,
            ),
        }
    }

    fn translate(&self, change: Change, _at_micros: i64) -> Option<Change> {
        Some(change)
    }

    fn edit_event(&self, stream: &str) -> &'static str {
        match stream {
            "customers" => "customer.updated",
            "invoices" => "invoice.updated",
            "subscriptions" => "customer.subscription.updated",
            "charges" => "charge.updated",
            "refunds" => "refund.updated",
            _ => "credit_note.updated",
        }
    }

    fn companion_events(&self, before: Option<&Value>, c: &Change) -> Vec<(&'static str, Value)> {
        if c.stream == "customers" && !c.deleted {
            tax_id_events(before, &c.object)
        } else {
            Vec::new()
        }
    }

    fn event_body(&self, event_id: &str, c: &Change, _at_micros: i64) -> String {
        // Events carry objects as the API shows them unexpanded (docs/providers/stripe.md).
        let object = present(c.object.clone(), &[]);
        json!({
            "id": event_id, "object": "event", "api_version": "2024-06-20", "created": c.at,
            "type": c.event_type, "livemode": false, "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "data": {"object": object},
        })
        .to_string()
    }

    fn delivery_headers(&self, secret: &str, body: &str, t: i64) -> Vec<(String, String)> {
        vec![
            (
                "Stripe-Signature".into(),
                signing::stripe(secret, t, body.as_bytes()),
            ),
            ("content-type".into(), "application/json".into()),
        ]
    }

    fn router(&self) -> Router<Sim> {
        Router::new()
            .route("/v1/{resource}", get(list))
            .route("/v1/{resource}/{id}", get(retrieve))
            .route("/v1/{resource}/{id}/{sub}", get(sub_resource))
    }
}

fn stripe_error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    let mut err = json!({ "type": kind, "message": message });
    if let Some(c) = code {
        err["code"] = json!(c);
    }
    (status, Json(json!({ "error": err }))).into_response()
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
    let account = match admit(
        &sim,
        &StripePersonality,
        &headers,
        &format!("/v1/{resource}"),
    )
    .await
    {
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
        let mut events: Vec<&crate::state::SimEvent> = ledger
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
    let expand = expansions(q.as_deref());
    let expand: Vec<&str> = expand
        .iter()
        .filter_map(|e| e.strip_prefix("data."))
        .collect();
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
        data.push(present(visible.clone(), &expand));
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
    RawQuery(q): RawQuery,
) -> Response {
    let account = match admit(
        &sim,
        &StripePersonality,
        &headers,
        &format!("/v1/{resource}/:id"),
    )
    .await
    {
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
        Some((o, Some(visible))) if o.stream == resource => {
            let expand = expansions(q.as_deref());
            let expand: Vec<&str> = expand.iter().map(String::as_str).collect();
            Json(present(visible.clone(), &expand)).into_response()
        }
        _ => missing("id", &id),
    }
}

/// A list that lives under an object (`/v1/customers/{id}/tax_ids`,
/// `/v1/invoices/{id}/lines`, `/v1/credit_notes/{id}/lines`), paged like any Stripe list.
async fn sub_resource(
    State(sim): State<Sim>,
    Path((resource, id, sub)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let route = format!("/v1/{resource}/:id/{sub}");
    let account = match admit(&sim, &StripePersonality, &headers, &route).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let known = matches!(
        (resource.as_str(), sub.as_str()),
        ("customers", "tax_ids") | ("invoices", "lines") | ("credit_notes", "lines")
    );
    if !known {
        return StripePersonality.error(Failure::NotFound(format!("/v1/{resource}/{id}/{sub}")));
    }
    let p = params(q.as_deref());
    let limit = match int(&p, "limit") {
        Ok(l) => l.unwrap_or(EMBEDDED_LIST as i64),
        Err(m) => return bad_integer(&m),
    };
    if !(1..=100).contains(&limit) {
        return bad_integer("This value must be between 1 and 100.");
    }
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    let items = match w.accounts[account].ledger.read(&id, lag) {
        Some((o, Some(visible))) if o.stream == resource && !o.deleted => {
            sub_list(visible, &sub).unwrap_or(&[]).to_vec()
        }
        _ => return missing("id", &id),
    };
    let start = match p.get("starting_after") {
        Some(after) => match items.iter().position(|i| i["id"] == after.as_str()) {
            Some(i) => i + 1,
            None => return missing("starting_after", after),
        },
        None => 0,
    };
    let page: Vec<Value> = items
        .iter()
        .skip(start)
        .take(limit as usize)
        .cloned()
        .collect();
    let has_more = start + page.len() < items.len();
    Json(
        json!({"object": "list", "url": format!("/v1/{resource}/{id}/{sub}"),
        "has_more": has_more, "data": page}),
    )
    .into_response()
}
