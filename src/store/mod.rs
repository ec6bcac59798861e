//! Store: one trait, two sqlx implementations (SQLite embedded, Postgres for clusters).
//!
//! Everything below the pair actor and the HTTP layer goes through [`Store`]; both backends
//! share one implementation of the SQL (`sql.rs`) and pass one conformance suite.

mod archive;
mod column_decode;
mod connections;
mod coordination;
mod jobs;
mod net_writes;
mod operator;
mod postgres;
mod postgres_coordination;
mod quality;
mod raw_body;
mod reads;
mod sql;
mod sql_archive;
mod sql_connections;
mod sql_jobs;
mod sql_operator;
mod sql_quality;
mod sql_reads;
mod sqlite;
pub mod sqlite_lock;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

pub use archive::{ArchiveStore, RawEventCursor, SegmentRecord, StoredRawEvent};
pub use connections::ConnectionStore;
pub use coordination::{Announcement, Coordination, Fence, Lease, NodeInfo};
pub use jobs::JobStore;
pub use operator::{AuditRecord, DeadLetter, OperatorStore, TokenRecord, TokenScope};
pub use postgres::PostgresStore;
pub use quality::{CrossChecked, FindingKey, FindingQuery, FindingRecord, QualityStore, Referrer};
pub use reads::ReadStore;
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
pub trait Store:
    ConnectionStore
    + OperatorStore
    + QualityStore
    + ArchiveStore
    + JobStore
    + ReadStore
    + Send
    + Sync
    + 'static
{
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
