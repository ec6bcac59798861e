//! `GET /admin/v1/cluster`: the live nodes and how many shards each holds.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The cluster as the store records it (any node answers the same).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ClusterOut {
    pub nodes: Vec<NodeOut>,
    /// Shards connections hash to.
    pub shards: i32,
    /// Shards no node holds a live lease on (their work waits for a taker).
    pub unowned_shards: i32,
}

/// One live node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct NodeOut {
    pub node_id: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339: its last heartbeat.
    pub last_seen: String,
    /// Shards it holds a live lease on.
    pub shards: i32,
}
