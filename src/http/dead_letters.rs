//! Admin API for dead letters (`/admin/v1/dead_letters`): list the inbox items that kept
//! failing, put one back into the inbox, or discard it (its raw event stays); each action
//! audited (docs/api.md "Dead letters").

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::auth::Principal;
use super::error::ApiError;
use super::query::Params;
use super::AppState;
use crate::api::{DeadLetterActionOut, DeadLetterListOut, DeadLetterOut, ErrorOut};
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::store::{AuditEntry, DeadLetter};

/// Dead letters in id order, optionally one connection's.
#[utoipa::path(get, path = "/admin/v1/dead_letters", tag = "dead_letters", operation_id = "list_dead_letters",
    params(
        ("connection_id" = Option<String>, Query, description = "Only this connection's"),
        ("after" = Option<i64>, Query, minimum = 0, description = "The `next_after` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses((status = 200, body = DeadLetterListOut)))]
pub async fn list(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<DeadLetterListOut>, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let limit = params.limit(100, 1000)?;
    let after = params.int("after", 0)?;
    let letters = app
        .store
        .dead_letters(params.get("connection_id"), after, limit)
        .await?;
    let next_after = match letters.last() {
        Some(last) if letters.len() as i64 == limit => Some(last.id),
        _ => None,
    };
    Ok(Json(DeadLetterListOut {
        data: letters.iter().map(view).collect(),
        next_after,
    }))
}

/// Put a dead letter back into the inbox, due now, its attempts counted afresh.
#[utoipa::path(post, path = "/admin/v1/dead_letters/{id}/retry", tag = "dead_letters", operation_id = "retry_dead_letter",
    params(("id" = i64, Path, description = "The dead letter's id")),
    responses(
        (status = 202, description = "Back in the inbox", body = DeadLetterActionOut),
        (status = 404, description = "No dead letter with this id", body = ErrorOut),
    ))]
pub async fn retry(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let letter = find(&app, &id).await?;
    let audit = entry(&who, "dead_letter.retry", &letter);
    if !app.store.retry_dead_letter(letter.id, &audit).await? {
        return Err(gone());
    }
    // A store that serves one node announces nothing: tell this node's actor here.
    app.supervisor.work_for([letter.connection_id.as_str()]);
    tracing::info!(dead_letter = letter.id, connection_id = %letter.connection_id, "dead letter retried");
    let answer = DeadLetterActionOut {
        id: letter.id,
        state: "retrying".into(),
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Drop a dead letter from the inbox; its raw event stays (replay can still use it).
#[utoipa::path(post, path = "/admin/v1/dead_letters/{id}/discard", tag = "dead_letters", operation_id = "discard_dead_letter",
    params(("id" = i64, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "Discarded", body = DeadLetterActionOut),
        (status = 404, description = "No dead letter with this id", body = ErrorOut),
    ))]
pub async fn discard(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterActionOut>, ApiError> {
    let letter = find(&app, &id).await?;
    let audit = entry(&who, "dead_letter.discard", &letter);
    if !app.store.discard_dead_letter(letter.id, &audit).await? {
        return Err(gone());
    }
    tracing::info!(dead_letter = letter.id, connection_id = %letter.connection_id, "dead letter discarded");
    Ok(Json(DeadLetterActionOut {
        id: letter.id,
        state: "discarded".into(),
    }))
}

async fn find(app: &AppState, id: &str) -> Result<DeadLetter, ApiError> {
    let id: i64 = id.parse().map_err(|_| gone())?;
    app.store.dead_letter(id).await?.ok_or_else(gone)
}

fn gone() -> ApiError {
    ApiError::not_found("no dead letter with this id")
}

fn entry(who: &Principal, action: &str, letter: &DeadLetter) -> AuditEntry {
    AuditEntry {
        at: now_micros(),
        actor: who.token_id.clone(),
        action: action.into(),
        target: letter.id.to_string(),
        detail: json!({
            "connection_id": letter.connection_id,
            "event_id": letter.provider_event_id,
            "last_error": letter.last_error,
        }),
    }
}

fn view(d: &DeadLetter) -> DeadLetterOut {
    DeadLetterOut {
        id: d.id,
        connection_id: d.connection_id.clone(),
        event_id: d.provider_event_id.clone(),
        event_type: d.event_type.clone(),
        attempts: d.attempts,
        last_error: d.last_error.clone(),
        dead_at: micros_to_rfc3339(d.dead_at),
    }
}
