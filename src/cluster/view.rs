//! `GET /admin/v1/cluster`: the live nodes and how many shards each holds, as the store
//! records them (any node answers the same). A store that serves one node shows that node
//! holding every shard.

use std::collections::HashMap;
use std::sync::Arc;

use super::SHARDS;
pub use crate::api::{ClusterOut, NodeOut};
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::store::{Coordination, StoreError};

/// What this node knows to describe its cluster.
#[derive(Clone)]
pub struct Membership {
    pub coordination: Option<Arc<dyn Coordination>>,
    pub node_id: String,
    pub started_at: i64,
    pub lease_secs: u64,
}

impl Membership {
    pub async fn describe(&self) -> Result<ClusterOut, StoreError> {
        let time = |t: i64| micros_to_rfc3339(t).unwrap_or_default();
        let Some(c) = &self.coordination else {
            return Ok(ClusterOut {
                nodes: vec![NodeOut {
                    node_id: self.node_id.clone(),
                    started_at: time(self.started_at),
                    last_seen: time(now_micros()),
                    shards: SHARDS,
                }],
                shards: SHARDS,
                unowned_shards: 0,
            });
        };
        let nodes = c.live_nodes(self.lease_secs).await?;
        let mut held: HashMap<String, i32> = HashMap::new();
        let mut unowned = 0;
        for lease in c.leases().await? {
            match lease.owner {
                Some(owner) if !lease.expired => *held.entry(owner).or_default() += 1,
                _ => unowned += 1,
            }
        }
        Ok(ClusterOut {
            nodes: nodes
                .into_iter()
                .map(|n| NodeOut {
                    shards: held.get(&n.node_id).copied().unwrap_or(0),
                    started_at: time(n.started_at),
                    last_seen: time(n.last_seen),
                    node_id: n.node_id,
                })
                .collect(),
            shards: SHARDS,
            unowned_shards: unowned,
        })
    }
}
