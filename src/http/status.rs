//! `GET /v1/merchants/{m}/sync-status`: how far a merchant's data can be trusted, per
//! connection and kind (counts by reconciliation status, oldest pending, sweeps), and the
//! "complete up to" watermark: every change billsync knows of from before it is applied and
//! confirmed by the provider API.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;

use super::error::ApiError;
use super::AppState;
use crate::api::{ConnectionSyncOut, KindSyncOut, SyncStatusOut};
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::model::ReconStatus;

/// How far a merchant's data can be trusted, per connection and object kind.
#[utoipa::path(get, path = "/v1/merchants/{merchant_id}/sync-status", tag = "objects",
    params(("merchant_id" = String, Path)),
    responses((status = 200, body = SyncStatusOut)))]
pub async fn sync_status(
    State(app): State<AppState>,
    Path(merchant): Path<String>,
) -> Result<Json<SyncStatusOut>, ApiError> {
    let now = now_micros();
    let connections = app
        .store
        .list_connections(Some(&merchant), None, 10_000)
        .await?;
    let counts = app.store.status_counts(&merchant).await?;
    let mut watermark = now;
    let mut out = Vec::new();
    for conn in &connections {
        let backlog = app.store.backlog(&conn.id).await?;
        let sweep = app.store.sweep(&conn.id).await?;
        let mut kinds: BTreeMap<String, KindSyncOut> = BTreeMap::new();
        for c in counts.iter().filter(|c| c.connection_id == conn.id) {
            let entry = kinds.entry(c.object_type.as_str().to_owned()).or_default();
            match c.status {
                ReconStatus::Pending => entry.pending = c.count,
                ReconStatus::Converged => entry.converged = c.count,
                ReconStatus::Drifted => entry.drifted = c.count,
                ReconStatus::Failed => entry.failed = c.count,
            }
            if matches!(c.status, ReconStatus::Pending | ReconStatus::Failed) {
                watermark = watermark.min(c.oldest);
                if c.status == ReconStatus::Pending {
                    entry.oldest_pending_at = micros_to_rfc3339(c.oldest);
                }
            }
        }
        if let Some(oldest) = backlog.oldest_inbox {
            watermark = watermark.min(oldest);
        }
        out.push(ConnectionSyncOut {
            connection_id: conn.id.clone(),
            provider: conn.provider,
            state: conn.state,
            inbox_backlog: backlog.inbox,
            pending_confirmations: backlog.refetches,
            last_sweep_at: sweep
                .as_ref()
                .and_then(|s| s.last_run_at)
                .and_then(micros_to_rfc3339),
            next_sweep_at: sweep
                .as_ref()
                .and_then(|s| micros_to_rfc3339(s.next_run_at)),
            drift_found_last_sweep: sweep.as_ref().map_or(0, |s| s.last_found),
            drift_found_total: sweep.as_ref().map_or(0, |s| s.total_found),
            kinds,
        });
    }
    Ok(Json(SyncStatusOut {
        merchant_id: merchant,
        complete_up_to: micros_to_rfc3339(watermark),
        connections: out,
    }))
}
