//! Merchant connections as stored: registering one, reading and listing them, their state
//! (active, paused, archived), their changeable settings and the last provider failure. Every
//! change is audited in its own transaction. A part of the [`super::Store`] trait kept apart
//! like [`super::OperatorStore`]; written once in `sql_connections.rs`. Secrets arrive here
//! sealed (`crate::secrets`); the store never sees them in clear.

use async_trait::async_trait;

use super::{AuditEntry, ConnectionRecord, ConnectionState, StoreError};

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Registers a connection and records the action in the audit log, in one transaction.
    async fn insert_connection(
        &self,
        connection: &ConnectionRecord,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;

    async fn get_connection(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Connections ordered by id, optionally of one merchant, after an id (paging).
    async fn list_connections(
        &self,
        merchant_id: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;

    /// Sets `active`/`paused`/`archived`, audited. `None` when there is no such connection or
    /// it is archived (an archive is final).
    async fn set_connection_state(
        &self,
        id: &str,
        state: ConnectionState,
        audit: &AuditEntry,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Replaces the changeable settings of a connection (secrets, API base, rate, interval,
    /// version) from `connection`, audited. `None` when there is no such connection.
    async fn update_connection(
        &self,
        connection: &ConnectionRecord,
        audit: &AuditEntry,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Records the last failure of a connection's provider API.
    async fn record_provider_error(
        &self,
        id: &str,
        kind: &str,
        message: &str,
        at: i64,
    ) -> Result<(), StoreError>;
}
