//! What the read API (`crate::http::read`, `crate::http::status`) asks of the store: current
//! objects and their state at a time, pages of a kind, versions, the change feed, and the
//! counts of the sync-status report. A part of the [`super::Store`] trait kept apart like
//! [`super::OperatorStore`]; written once in `sql_reads.rs`. Reads only: they use the read pool.

use async_trait::async_trait;

use super::{Backlog, ChangeView, ListQuery, ObjectView, StatusCount, StoreError, VersionView};
use crate::model::ObjectType;

#[async_trait]
pub trait ReadStore: Send + Sync {
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

    /// Object counts by connection, kind and status for a merchant.
    async fn status_counts(&self, merchant_id: &str) -> Result<Vec<StatusCount>, StoreError>;

    /// Unapplied inbox rows and pending confirmations of a connection.
    async fn backlog(&self, connection_id: &str) -> Result<Backlog, StoreError>;
}
