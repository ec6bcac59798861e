//! Data-quality findings (`GET /v1/merchants/{m}/quality_findings`): checks that a stored
//! object fails, per object and across objects (docs/api.md "Data quality").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::ObjectType;

/// One failed check of one object's version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct QualityFindingOut {
    /// The object's canonical id, `{provider}:{provider_object_id}`.
    pub id: String,
    pub object_type: ObjectType,
    /// The version that fails the check.
    pub version: i64,
    /// Stable code of the check (docs/api.md "Data quality").
    pub code: String,
    /// For people: what is wrong, with the amounts or ids involved.
    pub message: String,
    pub connection_id: String,
    /// RFC 3339: when the finding was recorded.
    #[schema(required)]
    pub recorded_at: Option<String>,
}

/// `GET /v1/merchants/{merchant_id}/quality_findings`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct QualityFindingListOut {
    pub data: Vec<QualityFindingOut>,
    /// Pass as `after` for the next page; `null` on the last page.
    #[schema(required)]
    pub next_after: Option<String>,
}
