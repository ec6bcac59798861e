//! Admin API (`/admin/v1/connections...`): register, read, list, change, pause, resume and
//! archive connections, and start their pull jobs (replays: `super::replay`; reads of one
//! object: `super::refetch`). Every change is audited under
//! the calling token (`super::auth::Principal`).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::auth::Principal;
use super::error::ApiError;
use super::query::Params;
use super::AppState;
use crate::actors::jobs;
use crate::api::{
    BackfillIn, ConnectionIn, ConnectionListOut, ConnectionOut, ConnectionPatchIn, ErrorOut,
    ResyncIn,
};
use crate::connections::view;
use crate::model::time::{now_micros, parse_rfc3339};
use crate::model::ObjectType;
use crate::store::{AuditEntry, ConnectionState, SyncJob};

/// Register a connection: one merchant's account at one provider.
#[utoipa::path(post, path = "/admin/v1/connections", tag = "connections",
    request_body = ConnectionIn,
    responses(
        (status = 201, description = "Registered; it takes webhooks and keeps in sync from now on", body = ConnectionOut),
        (status = 409, description = "The merchant already has a connection to this provider", body = ErrorOut),
    ))]
pub async fn create(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let record = app.connections.create(&body, &who.token_id).await?;
    tracing::info!(connection_id = %record.id, provider = record.provider.as_str(), "connection registered");
    Ok((StatusCode::CREATED, Json(view(&record))).into_response())
}

/// List connections in id order, optionally one merchant's.
#[utoipa::path(get, path = "/admin/v1/connections", tag = "connections",
    params(
        ("merchant_id" = Option<String>, Query, description = "Only this merchant's connections"),
        ("after" = Option<String>, Query, description = "The `next_after` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses((status = 200, body = ConnectionListOut)))]
pub async fn list(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<ConnectionListOut>, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let limit = params.limit(100, 1000)?;
    let records = app
        .store
        .list_connections(params.get("merchant_id"), params.get("after"), limit)
        .await?;
    let next_after = (records.len() as i64 == limit).then(|| records.last().map(|r| r.id.clone()));
    Ok(Json(ConnectionListOut {
        data: records.iter().map(view).collect(),
        next_after: next_after.flatten(),
    }))
}

/// One connection, with the progress of its backfill and resync.
#[utoipa::path(get, path = "/admin/v1/connections/{id}", tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    responses(
        (status = 200, body = ConnectionOut),
        (status = 404, description = "No connection with this id", body = ErrorOut),
    ))]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ConnectionOut>, ApiError> {
    let record = app
        .store
        .get_connection(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no connection with this id"))?;
    let mut out = view(&record);
    let jobs = app.store.sync_jobs(&id).await?;
    let now = now_micros();
    for name in ["backfill", "resync"] {
        let job = jobs.iter().find(|j| j.job == name);
        let windows = match job {
            Some(_) => app.store.sync_windows(&id, name).await?,
            None => Vec::new(),
        };
        let progress = Some(jobs::progress(job, &windows, now));
        match name {
            "backfill" => out.backfill = progress,
            _ => out.resync = progress,
        }
    }
    Ok(Json(out))
}

/// Rotate secrets or the key, move the API base, change the rate, interval or version; the
/// id, webhook path and history stay.
#[utoipa::path(patch, path = "/admin/v1/connections/{id}", tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    request_body = ConnectionPatchIn,
    responses(
        (status = 200, description = "Changed; secrets are never echoed", body = ConnectionOut),
        (status = 404, description = "No connection with this id", body = ErrorOut),
        (status = 409, description = "The connection is archived (`connection_archived`)", body = ErrorOut),
    ))]
pub async fn update(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ConnectionOut>, ApiError> {
    let body = json_body(&body)?;
    live(&app, &id).await?;
    let record = app
        .connections
        .update(&id, &body, &who.token_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no connection with this id"))?;
    tracing::info!(connection_id = %id, "connection updated");
    // The actor (if running) rebuilds its API client from the new settings on its next turn.
    app.supervisor.work_for([id.as_str()]);
    Ok(Json(view(&record)))
}

/// Start a historical pull of every object kind changed since `since`.
#[utoipa::path(post, path = "/admin/v1/connections/{id}/backfill", tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    request_body = BackfillIn,
    responses(
        (status = 202, description = "Started; `backfill` shows its progress", body = ConnectionOut),
        (status = 404, description = "No connection with this id", body = ErrorOut),
        (status = 409, description = "A backfill is already running (`job_running`), or the connection is archived (`connection_archived`)", body = ErrorOut),
    ))]
pub async fn backfill(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    start_job(&app, &who, &id, "backfill", &body, None).await
}

/// Start a targeted re-pull of some object kinds changed since `since`.
#[utoipa::path(post, path = "/admin/v1/connections/{id}/resync", tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    request_body = ResyncIn,
    responses(
        (status = 202, description = "Started; `resync` shows its progress", body = ConnectionOut),
        (status = 404, description = "No connection with this id", body = ErrorOut),
        (status = 409, description = "A resync is already running (`job_running`), or the connection is archived (`connection_archived`)", body = ErrorOut),
    ))]
pub async fn resync(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let types = body
        .get("object_types")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid("object_types", "must be a non-empty list of object types"))?
        .iter()
        .map(|t| {
            t.as_str().and_then(ObjectType::parse).ok_or_else(|| {
                invalid(
                    "object_types",
                    "entries must be customer, invoice, credit_note, subscription or transaction",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    start_job(&app, &who, &id, "resync", &body, Some(types)).await
}

pub(super) fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("body is not JSON: {e}")))
}

async fn start_job(
    app: &AppState,
    who: &Principal,
    id: &str,
    job: &str,
    body: &Value,
    types: Option<Vec<ObjectType>>,
) -> Result<Response, ApiError> {
    let since = body
        .get("since")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .ok_or_else(|| invalid("since", "must be an RFC 3339 time"))?;
    let now = now_micros();
    if since >= now {
        return Err(invalid("since", "must be in the past"));
    }
    live(app, id).await?;
    let conn = app
        .connections
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no connection with this id"))?;
    let jobs_now = app.store.sync_jobs(id).await?;
    if jobs_now
        .iter()
        .any(|j| j.job == job && j.state == "running")
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "job_running",
            format!("a {job} is already running for this connection"),
        ));
    }
    let streams: Vec<&str> = conn
        .provider
        .streams()
        .iter()
        .filter(|s| types.as_ref().is_none_or(|t| t.contains(&s.kind)))
        .map(|s| s.name)
        .collect();
    let record = SyncJob {
        connection_id: id.to_owned(),
        job: job.to_owned(),
        state: "running".into(),
        since: since / 1_000_000,
        until: now / 1_000_000 + 1,
        started_at: now,
        finished_at: None,
        error: None,
    };
    // Lists without a time filter are read whole, in one window.
    let parts = jobs::windows_per_stream(conn.request_rate());
    let windows: Vec<_> = streams
        .iter()
        .flat_map(|s| {
            let n = if conn.provider.stream_windowed(s) {
                parts
            } else {
                1
            };
            jobs::plan(job, &[s], record.since, record.until, n)
        })
        .collect();
    let audit = AuditEntry {
        at: now,
        actor: who.token_id.clone(),
        action: format!("connection.{job}"),
        target: id.to_owned(),
        detail: json!({ "since": body["since"], "streams": streams }),
    };
    app.store.start_sync_job(&record, &windows, &audit).await?;
    app.supervisor.job_for(id);
    tracing::info!(
        connection_id = id,
        job,
        windows = windows.len(),
        "pull job started"
    );
    let mut answer = view(&conn.record);
    let progress = Some(jobs::progress(Some(&record), &windows, now));
    match job {
        "backfill" => answer.backfill = progress,
        _ => answer.resync = progress,
    }
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

pub(super) fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::bad_request("invalid_request", format!("`{field}` {message}"))
}

/// Stop all processing of a connection; its webhooks are still stored.
#[utoipa::path(post, path = "/admin/v1/connections/{id}/pause", tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    responses(
        (status = 200, body = ConnectionOut),
        (status = 404, description = "No connection with this id", body = ErrorOut),
        (status = 409, description = "The connection is archived (`connection_archived`)", body = ErrorOut),
    ))]
pub async fn pause(
    state: State<AppState>,
    who: Extension<Principal>,
    id: Path<String>,
) -> Result<Json<ConnectionOut>, ApiError> {
    set_state(state, who, id, ConnectionState::Paused).await
}

/// Restart processing of a paused connection.
#[utoipa::path(post, path = "/admin/v1/connections/{id}/resume", tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    responses(
        (status = 200, body = ConnectionOut),
        (status = 404, description = "No connection with this id", body = ErrorOut),
        (status = 409, description = "The connection is archived (`connection_archived`)", body = ErrorOut),
    ))]
pub async fn resume(
    state: State<AppState>,
    who: Extension<Principal>,
    id: Path<String>,
) -> Result<Json<ConnectionOut>, ApiError> {
    set_state(state, who, id, ConnectionState::Active).await
}

async fn set_state(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    state: ConnectionState,
) -> Result<Json<ConnectionOut>, ApiError> {
    live(&app, &id).await?;
    let record = app
        .connections
        .set_state(&id, state, &who.token_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no connection with this id"))?;
    if state == ConnectionState::Active {
        app.supervisor.work_for([id.as_str()]);
    }
    Ok(Json(view(&record)))
}

/// Archive a connection: processing stops and its webhook path answers `404`; its objects,
/// versions and raw events stay readable, and its merchant-provider pair stays taken.
#[utoipa::path(delete, path = "/admin/v1/connections/{id}", tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    responses(
        (status = 204, description = "Archived (again: archiving is final, and repeating it changes nothing)"),
        (status = 404, description = "No connection with this id", body = ErrorOut),
    ))]
pub async fn archive(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let record = app
        .store
        .get_connection(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no connection with this id"))?;
    if record.state != ConnectionState::Archived {
        // `None` here: archived meanwhile by another call, which is what was asked.
        app.connections
            .set_state(&id, ConnectionState::Archived, &who.token_id)
            .await?;
        // The actor, if running, sees the state on its next turn and stops.
        app.supervisor.work_for([id.as_str()]);
        tracing::info!(connection_id = %id, "connection archived");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The connection, unless archived: an archived connection takes no more changes or jobs
/// (`409 connection_archived`).
pub(super) async fn live(
    app: &AppState,
    id: &str,
) -> Result<crate::store::ConnectionRecord, ApiError> {
    let record = app
        .store
        .get_connection(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no connection with this id"))?;
    if record.state == ConnectionState::Archived {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "connection_archived",
            "this connection is archived: it takes no more changes or jobs",
        ));
    }
    Ok(record)
}
