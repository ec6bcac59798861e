//! `GET /v1/merchants/{merchant_id}/sync-status`: how far a merchant's data can be trusted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::ProviderKind;
use crate::store::ConnectionState;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SyncStatusOut {
    pub merchant_id: String,
    /// RFC 3339: every change billsync knows of from before this time is applied and confirmed
    /// by the provider API.
    #[schema(required)]
    pub complete_up_to: Option<String>,
    pub connections: Vec<ConnectionSyncOut>,
}

/// One connection of the merchant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ConnectionSyncOut {
    pub connection_id: String,
    pub provider: ProviderKind,
    pub state: ConnectionState,
    /// Stored events not yet applied.
    pub inbox_backlog: i64,
    /// Objects waiting for the provider API to confirm them.
    pub pending_confirmations: i64,
    /// RFC 3339.
    #[schema(required)]
    pub last_sweep_at: Option<String>,
    /// RFC 3339.
    #[schema(required)]
    pub next_sweep_at: Option<String>,
    /// Events the last sweep found that no webhook had delivered.
    pub drift_found_last_sweep: i64,
    pub drift_found_total: i64,
    /// Per `object_type`.
    pub kinds: BTreeMap<String, KindSyncOut>,
}

/// Objects of one kind by reconciliation status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct KindSyncOut {
    pub pending: i64,
    pub converged: i64,
    pub drifted: i64,
    pub failed: i64,
    /// RFC 3339: the provider time of the oldest pending change.
    #[schema(required)]
    pub oldest_pending_at: Option<String>,
}
