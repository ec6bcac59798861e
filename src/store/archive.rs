//! What the raw archive (`crate::archive`, docs/archive.md) needs from the store: the raw
//! events of closed partitions not yet archived, the record of each archived segment with the
//! marking of its rows (one transaction), the trim of archived rows past the hot window (the
//! one narrow, audited path by which a raw event leaves the database), and the restoring of
//! archived events for a replay. A part of the [`super::Store`] trait kept apart like
//! [`super::OperatorStore`]; written once in `sql_archive.rs`.

use async_trait::async_trait;

use super::{AuditEntry, StoreError};

/// A raw event as stored, body still compressed (what an archive file line is made from).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredRawEvent {
    pub id: i64,
    pub connection_id: String,
    pub provider_event_id: String,
    pub event_type: String,
    pub source: String,
    /// Microseconds.
    pub received_at: i64,
    pub body_zstd: Vec<u8>,
    /// Hex SHA-256 of the body as received.
    pub body_sha256: String,
}

/// One archived segment as the database records it (its manifest is the archive's record).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SegmentRecord {
    /// The segment's place in the manifest chain, from 1.
    pub seq: i64,
    /// The time partition `[start, end)` its events were received in, microseconds.
    pub partition_start: i64,
    pub partition_end: i64,
    pub manifest_key: String,
    /// Hex SHA-256 of the manifest's bytes (the next manifest's `prev_manifest_sha256`).
    pub manifest_sha256: String,
    pub events: i64,
    pub recorded_at: i64,
}

/// Where a page of a partition's unarchived events resumes: after this connection and id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEventCursor {
    pub connection_id: String,
    pub id: i64,
}

#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// The receive time of the oldest raw event not yet archived that was received before
    /// `before` (microseconds), if any.
    async fn oldest_unarchived(&self, before: i64) -> Result<Option<i64>, StoreError>;

    /// Up to `limit` unarchived raw events received in `[from, to)`, in (connection, id)
    /// order, after `cursor`.
    async fn unarchived_page(
        &self,
        from: i64,
        to: i64,
        cursor: &RawEventCursor,
        limit: i64,
    ) -> Result<Vec<StoredRawEvent>, StoreError>;

    /// The last segment recorded (the head of the chain), if any.
    async fn last_segment(&self) -> Result<Option<SegmentRecord>, StoreError>;

    /// Segments whose partition overlaps `[from, to]`, in chain order.
    async fn segments_overlapping(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<SegmentRecord>, StoreError>;

    /// Records a segment and marks the raw events `ids` as archived in it, in one transaction.
    /// Fails, changing nothing, when a segment with this `seq` is already recorded. Returns how
    /// many rows were marked (ids no longer present or already marked are skipped).
    async fn record_segment(&self, segment: &SegmentRecord, ids: &[i64])
        -> Result<u64, StoreError>;

    /// Deletes up to `limit` archived raw events received before `before` that no inbox row
    /// still needs, with the audit entry `audit` (its detail completed with the count), in one
    /// transaction. Returns how many were deleted.
    async fn trim_archived(
        &self,
        before: i64,
        limit: i64,
        audit: &AuditEntry,
    ) -> Result<u64, StoreError>;

    /// Puts archived raw events back (for a replay of a range past the hot window), marked as
    /// archived in `segment` so they are neither archived again nor kept: the next trim takes
    /// them once replayed. Events still present are skipped. Returns how many were restored.
    async fn restore_raw_events(
        &self,
        events: &[StoredRawEvent],
        segment: i64,
    ) -> Result<u64, StoreError>;

    /// How many raw events are stored, and how many of them are archived (for `archive` runs'
    /// summaries and the tests).
    async fn raw_event_counts(&self) -> Result<(i64, i64), StoreError>;
}

impl StoredRawEvent {
    /// The body as received (decompressed).
    pub fn body(&self) -> Result<Vec<u8>, StoreError> {
        super::raw_body::decompress(&self.body_zstd)
    }
}
