//! `GET /v1/merchants/{m}/sync-status`: how far a merchant's data can be trusted, per
//! connection and kind (counts by reconciliation status, oldest pending, sweeps), and the
//! "complete up to" watermark: every change billsync knows of from before it is applied and
//! confirmed by the provider API.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::AppState;
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::model::ReconStatus;

pub async fn sync_status(
    State(app): State<AppState>,
    Path(merchant): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
        let mut kinds: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for c in counts.iter().filter(|c| c.connection_id == conn.id) {
            let entry = kinds.entry(c.object_type.as_str()).or_insert_with(|| {
                let mut m = Map::new();
                for s in ["pending", "converged", "drifted", "failed"] {
                    m.insert(s.into(), json!(0));
                }
                m.insert("oldest_pending_at".into(), Value::Null);
                m
            });
            entry.insert(c.status.as_str().into(), json!(c.count));
            if matches!(c.status, ReconStatus::Pending | ReconStatus::Failed) {
                watermark = watermark.min(c.oldest);
                if c.status == ReconStatus::Pending {
                    entry.insert(
                        "oldest_pending_at".into(),
                        json!(micros_to_rfc3339(c.oldest)),
                    );
                }
            }
        }
        if let Some(oldest) = backlog.oldest_inbox {
            watermark = watermark.min(oldest);
        }
        out.push(json!({
            "connection_id": conn.id,
            "provider": conn.provider.as_str(),
            "state": conn.state.as_str(),
            "inbox_backlog": backlog.inbox,
            "pending_confirmations": backlog.refetches,
            "last_sweep_at": sweep.as_ref().and_then(|s| s.last_run_at).and_then(micros_to_rfc3339),
            "next_sweep_at": sweep.as_ref().and_then(|s| micros_to_rfc3339(s.next_run_at)),
            "drift_found_last_sweep": sweep.as_ref().map_or(0, |s| s.last_found),
            "drift_found_total": sweep.as_ref().map_or(0, |s| s.total_found),
            "kinds": kinds,
        }));
    }
    Ok(Json(json!({
        "merchant_id": merchant,
        "complete_up_to": micros_to_rfc3339(watermark),
        "connections": out,
    })))
}
