//! The background work the store schedules for a connection: pull jobs (`backfill`, `resync`)
//! with their windows, confirmation reads (refetches) and reconciliation sweeps. A part of the
//! [`super::Store`] trait kept apart like [`super::OperatorStore`]; written once in
//! `sql_jobs.rs`. A window's checkpoint that comes with a page of objects is written by
//! `Store::apply` in the objects' transaction, not here.

use async_trait::async_trait;

use super::{AuditEntry, Refetch, StoreError, Sweep, SyncJob, SyncWindow, WindowCheckpoint};

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Starts (or restarts from scratch) a pull job with its windows, audited.
    async fn start_sync_job(
        &self,
        job: &SyncJob,
        windows: &[SyncWindow],
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// Marks a job `done` or `failed`.
    async fn finish_sync_job(
        &self,
        connection_id: &str,
        job: &str,
        state: &str,
        error: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError>;

    async fn sync_jobs(&self, connection_id: &str) -> Result<Vec<SyncJob>, StoreError>;

    async fn sync_windows(
        &self,
        connection_id: &str,
        job: &str,
    ) -> Result<Vec<SyncWindow>, StoreError>;

    /// Active connections with a running pull job (to resume after a restart).
    async fn connections_with_running_jobs(&self) -> Result<Vec<String>, StoreError>;

    /// Adds failed attempts to a window's request count (successful ones come with
    /// their page's checkpoint).
    async fn count_window_requests(
        &self,
        connection_id: &str,
        checkpoint: &WindowCheckpoint,
    ) -> Result<(), StoreError>;

    /// Active connections with confirmations due at `now`.
    async fn connections_with_due_refetches(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError>;

    /// A connection's confirmations due at `now`, earliest first.
    async fn due_refetches(
        &self,
        connection_id: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<Refetch>, StoreError>;

    /// Moves a confirmation to a later time after an inconclusive or failed read (never
    /// earlier than it is due now: another change may have moved it later meanwhile).
    async fn reschedule_refetch(
        &self,
        connection_id: &str,
        refetch: &Refetch,
    ) -> Result<(), StoreError>;

    /// Pending confirmations (all connections), for the gauge.
    async fn refetch_backlog(&self) -> Result<i64, StoreError>;

    /// Schedules a connection's sweeps (first one at `next_run_at`, covering from `position`).
    async fn init_sweep(
        &self,
        connection_id: &str,
        position: i64,
        next_run_at: i64,
    ) -> Result<(), StoreError>;

    /// Active connections whose sweep is due at `now`.
    async fn connections_with_due_sweeps(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError>;

    async fn sweep(&self, connection_id: &str) -> Result<Option<Sweep>, StoreError>;

    /// Records a finished sweep, and where the next one resumes (`cursor`, see
    /// [`Sweep::cursor`]).
    async fn finish_sweep(
        &self,
        connection_id: &str,
        position: i64,
        next_run_at: i64,
        found: i64,
        cursor: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError>;
}
