//! Data-quality findings as the read API lists them, and what the cross-object checks need
//! (docs/api.md "Data quality"). A part of the [`super::Store`] trait kept apart so the main
//! SQL file need not grow; written once in `sql_quality.rs`. Per-object findings are written
//! with their version by `Store::apply`; cross-object ones through [`QualityStore::record_cross`].

use async_trait::async_trait;

use super::column_decode::ByName;
use super::StoreError;
use crate::model::ObjectType;

/// One stored finding.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FindingRecord {
    pub connection_id: String,
    #[sqlx(try_from = "ByName<ObjectType>")]
    pub object_type: ObjectType,
    pub provider_id: String,
    /// The object's canonical id.
    pub id: String,
    pub version: i64,
    pub code: String,
    pub message: String,
    /// Microseconds.
    pub recorded_at: i64,
}

/// Where a listing resumes: the last row of the previous page, in listing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingKey {
    pub recorded_at: i64,
    pub connection_id: String,
    pub object_type: String,
    pub provider_id: String,
    pub version: i64,
    pub code: String,
}

/// A listing of one merchant's findings, oldest first.
#[derive(Debug, Clone, Default)]
pub struct FindingQuery {
    pub merchant_id: String,
    pub object_type: Option<ObjectType>,
    pub code: Option<String>,
    pub connection_id: Option<String>,
    /// Recorded at or after (microseconds).
    pub since: Option<i64>,
    pub after: Option<FindingKey>,
    pub limit: i64,
}

/// An object that holds a reference (a row of `quality_references`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::FromRow)]
pub struct Referrer {
    #[sqlx(try_from = "ByName<ObjectType>")]
    pub object_type: ObjectType,
    pub provider_id: String,
    /// The canonical id it references, and the kind that id names.
    pub target_id: String,
    #[sqlx(try_from = "ByName<ObjectType>")]
    pub target_type: ObjectType,
}

/// One object whose cross-object findings were re-checked.
#[derive(Debug, Clone)]
pub struct CrossChecked {
    pub object_type: ObjectType,
    pub provider_id: String,
    pub id: String,
    /// Its current version (findings are recorded against it).
    pub version: i64,
    /// The codes that were checked: findings of these codes not in `findings` are cleared.
    pub codes: Vec<&'static str>,
    pub findings: Vec<(&'static str, String)>,
    /// Its references as of its current data, replacing the stored ones; `None` keeps them.
    pub references: Option<Vec<(ObjectType, String)>>,
}

/// Findings and the reference index behind the cross-object checks.
#[async_trait]
pub trait QualityStore: Send + Sync + 'static {
    /// One page of a merchant's findings, ordered by (`recorded_at`, connection, kind,
    /// provider id, version, code).
    async fn quality_findings(&self, q: &FindingQuery) -> Result<Vec<FindingRecord>, StoreError>;

    /// Every reference held by an object of the connection that references any of
    /// `target_ids`: the matching ones and that object's others, so its whole set is known.
    async fn referrers(
        &self,
        connection_id: &str,
        target_ids: &[String],
    ) -> Result<Vec<Referrer>, StoreError>;

    /// Replaces the cross-object findings (and references) of the checked objects, in one
    /// transaction. A finding that stays keeps its `recorded_at`.
    async fn record_cross(
        &self,
        connection_id: &str,
        merchant_id: &str,
        checked: &[CrossChecked],
        now: i64,
    ) -> Result<(), StoreError>;
}
