//! `POST /admin/v1/connections/{id}/refetch`: read one object from the provider now, for an
//! operator who doubts what is stored. Queued as a real-time confirmation read due at once;
//! the answer is applied like any API read (`crate::actors::confirm`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::admin::{invalid, live};
use super::auth::Principal;
use super::error::ApiError;
use super::AppState;
use crate::api::{ErrorOut, RefetchIn, RefetchOut};
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::store::AuditEntry;

/// Read one object from the provider now.
#[utoipa::path(post, path = "/admin/v1/connections/{id}/refetch", tag = "connections",
    params(("id" = String, Path, description = "The connection id")),
    request_body = RefetchIn,
    responses(
        (status = 202, description = "The read is due now; the object shows its answer once read", body = RefetchOut),
        (status = 404, description = "No connection with this id", body = ErrorOut),
        (status = 409, description = "The connection is archived (`connection_archived`)", body = ErrorOut),
    ))]
pub async fn refetch(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: RefetchIn = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("body: {e}")))?;
    let record = live(&app, &id).await?;
    let provider = record.provider.as_str();
    // The canonical id (`stripe:cus_1`) or the provider's own (`cus_1`).
    let provider_id = input
        .id
        .strip_prefix(provider)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or(&input.id);
    if provider_id.is_empty() || provider_id.len() > 255 {
        return Err(invalid("id", "must be an object id of 1 to 255 characters"));
    }
    let readable = crate::providers::for_kind(record.provider)
        .streams()
        .iter()
        .any(|s| s.kind == input.object_type);
    if !readable {
        return Err(invalid(
            "object_type",
            &format!("is not an object type billsync reads from {provider}"),
        ));
    }
    let at = now_micros();
    let audit = AuditEntry {
        at,
        actor: who.token_id,
        action: "connection.refetch".into(),
        target: id.clone(),
        detail: json!({ "object_type": input.object_type, "id": provider_id }),
    };
    app.store
        .request_refetch(&id, input.object_type, provider_id, &audit)
        .await?;
    app.supervisor.work_for([id.as_str()]);
    tracing::info!(connection_id = %id, object_type = input.object_type.as_str(), "read of one object requested");
    let answer = RefetchOut {
        connection_id: id,
        object_type: input.object_type,
        id: format!("{provider}:{provider_id}"),
        due_at: micros_to_rfc3339(at),
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}
