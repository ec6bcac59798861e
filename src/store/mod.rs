//! Store: one trait, two sqlx implementations (SQLite embedded, Postgres for clusters).
//!
//! Everything below the pair actor and the HTTP layer goes through [`Store`]; both backends
//! share one implementation of the SQL (`sql.rs`) and pass one conformance suite.

mod archive;
mod coordination;
mod operator;
mod postgres;
mod postgres_coordination;
mod quality;
mod raw_body;
mod sql;
mod sql_archive;
mod sql_operator;
mod sql_quality;
mod sqlite;
pub mod sqlite_lock;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

pub use archive::{ArchiveStore, RawEventCursor, SegmentRecord, StoredRawEvent};
pub use coordination::{Announcement, Coordination, Fence, Lease, NodeInfo};
pub use operator::{AuditRecord, DeadLetter, OperatorStore, TokenRecord, TokenScope};
pub use postgres::PostgresStore;
pub use quality::{CrossChecked, FindingKey, FindingQuery, FindingRecord, QualityStore, Referrer};
pub use sqlite::SqliteStore;
pub use types::*;

use crate::model::ObjectType;

/// Errors of the store layer.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("this node no longer holds the lease for connection {0} (fenced)")]
    Fenced(String),
    #[error("object {0} changed under the writer (expected version not found)")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error(
        "cannot migrate: a merchant may have one connection per provider, but these share one \
         (merchant provider connection): {0}. Archive or re-register all but one of each pair \
         under another merchant id (README, \"One connection per merchant and provider\"), \
         then run migrate again"
    )]
    DuplicateConnections(String),
    #[error(
        "another billsync serve is using this SQLite store (its lock file {0} is held): a \
         SQLite store serves exactly one node; stop the other node, or use Postgres for a cluster"
    )]
    InUse(String),
}

impl StoreError {
    /// Whether the database refused a statement for what it was given (a value it cannot
    /// store, a constraint), rather than being unreachable or failing as a whole: retrying the
    /// same work in smaller parts can then isolate the item at fault.
    pub fn is_about_the_data(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(_)))
    }
}

/// Opens the store a database URL names (`sqlite://PATH` or `postgres://...`), without
/// migrating it.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// The durable state of billsync. Implementations must behave identically (the conformance
/// suite in `tests/it/store.rs` runs against both).
#[async_trait]
pub trait Store: OperatorStore + QualityStore + ArchiveStore + Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The cluster coordination of this store: `None` for a store that serves one node
    /// (SQLite), whose node owns every connection and writes unfenced.
    fn coordination(&self) -> Option<Arc<dyn Coordination>>;

    /// Applies pending schema migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Answers when the store can take work (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Stores `value` under `key` unless a value is already there; returns the stored value.
    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError>;

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

    /// Durably stores raw events and their inbox rows in one transaction (group commit).
    /// An event id already stored for its connection is a duplicate and stores nothing.
    async fn ingest(&self, events: &[IncomingEvent]) -> Result<Vec<IngestOutcome>, StoreError>;

    /// Active connections with inbox rows due at `now`.
    async fn connections_with_due_work(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError>;

    /// A connection's due inbox rows, oldest first, with their raw bodies.
    async fn due_inbox(
        &self,
        connection_id: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<InboxItem>, StoreError>;

    /// Records a failed attempt: the rows are retried at `next_attempt_at`, or dead-lettered
    /// once they reach `max_attempts`.
    async fn retry_inbox(
        &self,
        inbox_ids: &[i64],
        next_attempt_at: i64,
        error: &str,
        max_attempts: i64,
    ) -> Result<(), StoreError>;

    /// Rows not yet applied (dead letters excluded) and dead letters.
    async fn inbox_depth(&self) -> Result<InboxDepth, StoreError>;

    /// The stored state of the given objects of one connection (missing ones are absent).
    async fn current_objects(
        &self,
        connection_id: &str,
        keys: &[(ObjectType, String)],
    ) -> Result<Vec<StoredObject>, StoreError>;

    /// Writes objects, versions, change-feed entries and dead letters, and deletes the applied
    /// inbox rows, in one transaction fenced by the batch's shard lease ([`ApplyBatch::fence`]).
    async fn apply(&self, batch: &ApplyBatch) -> Result<(), StoreError>;

    /// Several batches (of any connections) in one transaction: all or none.
    async fn apply_all(&self, batches: &[ApplyBatch]) -> Result<(), StoreError>;

    /// The current object, or the version current at `as_of`.
    async fn read_object(
        &self,
        merchant_id: &str,
        object_type: ObjectType,
        id: &str,
        as_of: Option<i64>,
    ) -> Result<Option<ObjectView>, StoreError>;

    /// A page of objects ordered by (`updated_at`, `id`).
    async fn list_objects(
        &self,
        merchant_id: &str,
        object_type: ObjectType,
        query: &ListQuery,
    ) -> Result<Vec<ObjectView>, StoreError>;

    /// Every stored version of an object, oldest first.
    async fn object_versions(
        &self,
        merchant_id: &str,
        object_type: ObjectType,
        id: &str,
    ) -> Result<Vec<VersionView>, StoreError>;

    /// The merchant's change feed after `after`, in commit order.
    async fn changes(
        &self,
        merchant_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ChangeView>, StoreError>;

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

    /// Object counts by connection, kind and status for a merchant.
    async fn status_counts(&self, merchant_id: &str) -> Result<Vec<StatusCount>, StoreError>;

    /// Unapplied inbox rows and pending confirmations of a connection.
    async fn backlog(&self, connection_id: &str) -> Result<Backlog, StoreError>;

    /// Queues every raw event of a connection received in `[from, to]` for applying again
    /// (replay: re-derive objects after a mapping fix, no provider calls), audited. Returns
    /// how many were queued.
    async fn enqueue_replay(
        &self,
        connection_id: &str,
        from: i64,
        to: i64,
        audit: &AuditEntry,
    ) -> Result<u64, StoreError>;

    /// Provider event ids of a connection's raw events, in arrival order.
    async fn raw_event_ids(&self, connection_id: &str) -> Result<Vec<String>, StoreError>;
}
