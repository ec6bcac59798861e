//! `GET /admin/v1/audit`: the append-only log of admin actions, who did each, in order
//! (docs/api.md "Audit log"). Entries are written by the store in each action's transaction.

use axum::extract::{RawQuery, State};
use axum::Json;

use super::error::ApiError;
use super::query::Params;
use super::AppState;
use crate::api::{AuditEntryOut, AuditListOut};
use crate::model::time::micros_to_rfc3339;

/// Admin actions after `after`, oldest first.
#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit", operation_id = "list_audit",
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "The `next_after` of the previous page (a `seq`)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses((status = 200, body = AuditListOut)))]
pub async fn list(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<AuditListOut>, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let limit = params.limit(100, 1000)?;
    let after = params.int("after", 0)?;
    let entries = app.store.audit_log(after, limit).await?;
    let next_after = match entries.last() {
        Some(last) if entries.len() as i64 == limit => Some(last.seq),
        _ => None,
    };
    Ok(Json(AuditListOut {
        data: entries
            .into_iter()
            .map(|e| AuditEntryOut {
                seq: e.seq,
                at: micros_to_rfc3339(e.at),
                token_id: e.actor,
                action: e.action,
                target: e.target,
                details: e.detail,
            })
            .collect(),
        next_after,
    }))
}
