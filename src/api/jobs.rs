//! The progress of a pull job (`backfill`, `resync`) as the admin API shows it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A job's progress. A connection that never ran one shows only `state: idle` and zeros.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct JobProgressOut {
    /// `idle`, `running`, `done` or `failed`.
    pub state: String,
    /// Objects read so far.
    pub objects: i64,
    /// Objects per second since the job started (not money: a float is fine).
    pub rate_per_sec: f64,
    /// Seconds left at the current pace; `null` until it can be estimated, `0` once ended.
    #[schema(required)]
    pub eta_secs: Option<i64>,
    /// `backfill` or `resync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<i64>,
    /// Share of the job's time windows covered, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction_done: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_done: Option<i64>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339; `null` while running.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Per provider list (stream).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub streams: BTreeMap<String, StreamProgressOut>,
}

/// One stream's share of a job.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct StreamProgressOut {
    pub windows: i64,
    pub windows_done: i64,
    pub objects: i64,
    pub pages: i64,
    pub requests: i64,
}
