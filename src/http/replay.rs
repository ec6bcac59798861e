//! `POST /admin/v1/connections/{id}/replay`: re-derive a connection's objects from the raw
//! events stored in a time range after a mapping fix (queued for its pair actor; no provider
//! calls), or with `"dry_run": true` only say what that would change
//! (`crate::actors::replay_preview`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::admin::{invalid, json_body, live};
use super::auth::Principal;
use super::error::ApiError;
use super::AppState;
use crate::actors::replay_preview::{self, PreviewError};
use crate::api::ConnectionOut;
use crate::api::{ErrorOut, ReplayChangeOut, ReplayIn, ReplayOut, ReplayPreviewOut};
use crate::connections::view;
use crate::model::time::{now_micros, parse_rfc3339};
use crate::store::AuditEntry;

/// Re-derive objects from the raw events stored in `[from, to]`; no provider calls.
#[utoipa::path(post, path = "/admin/v1/connections/{id}/replay", tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    request_body = ReplayIn,
    responses(
        (status = 200, description = "`dry_run`: what the replay would change; nothing queued", body = ReplayPreviewOut),
        (status = 202, description = "Queued; `replay` says how many raw events", body = ConnectionOut),
        (status = 404, description = "No connection with this id", body = ErrorOut),
        (status = 409, description = "The connection is archived (`connection_archived`), or the range reaches raw events archived to S3 on a node without the archive configured (`archive_unavailable`)", body = ErrorOut),
        (status = 502, description = "The range reaches past the hot window and the S3 archive cannot be read (`archive_unavailable`)", body = ErrorOut),
        (status = 422, description = "`dry_run` over a range too large to preview (`range_too_large`)", body = ErrorOut),
    ))]
pub async fn replay(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let time = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .ok_or_else(|| invalid(field, "must be an RFC 3339 time"))
    };
    let (from, to) = (time("from")?, time("to")?);
    if from > to {
        return Err(invalid("from", "must not be after `to`"));
    }
    let dry_run = match body.get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("dry_run", "must be true or false")),
    };
    let record = live(&app, &id).await?;
    if dry_run {
        return preview(&app, &id, from, to).await;
    }
    let audit = AuditEntry {
        at: now_micros(),
        actor: who.token_id,
        action: "connection.replay".into(),
        target: id.clone(),
        detail: json!({ "from": body["from"], "to": body["to"] }),
    };
    let restored = restore_archived(&app, &id, from, to).await?;
    let queued = app.store.enqueue_replay(&id, from, to, &audit).await?;
    app.supervisor.work_for([id.as_str()]);
    tracing::info!(connection_id = %id, queued, "replay queued");
    let mut answer = view(&record);
    answer.replay = Some(ReplayOut {
        raw_events_queued: queued,
        raw_events_restored: restored,
    });
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Puts back from the S3 archive the events of `[from, to]` trimmed from the database
/// (docs/archive.md); a range that has archived segments on a node without the archive
/// configured is refused rather than replayed short.
async fn restore_archived(app: &AppState, id: &str, from: i64, to: i64) -> Result<u64, ApiError> {
    if app.store.segments_overlapping(from, to).await?.is_empty() {
        return Ok(0);
    }
    #[cfg(feature = "archive")]
    if let Some(archive) = &app.archive {
        if from >= archive.hot_edge(now_micros()) {
            // Nothing this recent has been trimmed.
            return Ok(0);
        }
        return archive.restore(id, from, to).await.map_err(|e| {
            tracing::error!(connection_id = %id, error = %e, "cannot restore from the archive");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "archive_unavailable",
                e.to_string(),
            )
        });
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "archive_unavailable",
        format!(
            "raw events of {id} in this range were archived to S3 and may be trimmed from the \
             database; set BILLSYNC_ARCHIVE_BUCKET on this node to replay them"
        ),
    ))
}

async fn preview(app: &AppState, id: &str, from: i64, to: i64) -> Result<Response, ApiError> {
    let conn = app
        .connections
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no connection with this id"))?;
    let preview = replay_preview::preview(app.store.as_ref(), &conn, from, to)
        .await
        .map_err(|e| match e {
            PreviewError::Store(e) => ApiError::from(e),
            e @ PreviewError::TooLarge => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "range_too_large",
                e.to_string(),
            ),
        })?;
    let answer = ReplayPreviewOut {
        dry_run: true,
        raw_events: preview.raw_events as i64,
        unmappable: preview.unmappable as i64,
        changes: preview
            .changes
            .into_iter()
            .map(|c| ReplayChangeOut {
                id: c.id,
                object_type: c.object_type,
                version_now: c.version_now,
                version_after: c.version_after,
                deleted_after: c.deleted_after,
                fields: c.fields,
            })
            .collect(),
    };
    Ok((StatusCode::OK, Json(answer)).into_response())
}
