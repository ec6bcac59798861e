//! Cluster mode (docs/architecture.md "Modes", docs/cluster.md): which connections this node may
//! write.
//!
//! Connections hash to [`SHARDS`] shards. On Postgres every node heartbeats and holds shard
//! leases ([`keeper`]), placed by rendezvous hashing ([`rendezvous`]); its supervisor runs
//! actors only for the shards it holds, each actor's writes fenced by its shard's lease
//! epoch. Inbox rows stored by another node ([`forward`]) and admin changes reach the owner
//! as announcements ([`announcements`]). A SQLite store serves one node, which owns everything
//! ([`Owned::everything`]).

pub mod announcements;
pub mod forward;
pub mod keeper;
pub mod rendezvous;
pub mod view;

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::store::Fence;

/// Shards connections hash to. Fixed: changing it moves every connection.
pub const SHARDS: i32 = 256;

/// The shard of a connection: the first byte of its id's SHA-256 (stable across nodes,
/// versions and platforms).
pub fn shard_of(connection_id: &str) -> i32 {
    i32::from(Sha256::digest(connection_id.as_bytes())[0])
}

/// What this node may write now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owned {
    /// One node owns every connection and writes unfenced (SQLite).
    everything: bool,
    /// Held shards and the epoch of each lease.
    shards: HashMap<i32, i64>,
}

impl Owned {
    /// A store that serves one node: everything, unfenced.
    pub fn everything() -> Self {
        Owned {
            everything: true,
            shards: HashMap::new(),
        }
    }

    /// The shards of these leases.
    pub fn leases(leases: impl IntoIterator<Item = Fence>) -> Self {
        Owned {
            everything: false,
            shards: leases.into_iter().map(|f| (f.shard, f.epoch)).collect(),
        }
    }

    /// `None` when this node must not write the connection; else the fence its writes
    /// carry (`Some(None)`: unfenced, one node).
    pub fn fence_for(&self, connection_id: &str) -> Option<Option<Fence>> {
        if self.everything {
            return Some(None);
        }
        let shard = shard_of(connection_id);
        self.shards
            .get(&shard)
            .map(|&epoch| Some(Fence { shard, epoch }))
    }

    /// Held shards (all of them for one node).
    pub fn shard_count(&self) -> i32 {
        if self.everything {
            SHARDS
        } else {
            self.shards.len() as i32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_connection_ids_over_all_shards() {
        let mut counts = vec![0u32; SHARDS as usize];
        for i in 0..25_600 {
            counts[shard_of(&format!("conn_{i:020}")) as usize] += 1;
        }
        // 100 per shard on average; SHA-256 keeps every shard well within half of it.
        assert!(counts.iter().all(|&c| (50..150).contains(&c)), "{counts:?}");
    }

    #[test]
    fn a_node_writes_only_the_shards_it_holds_with_their_epoch() {
        let id = "conn_abc";
        let shard = shard_of(id);
        let owned = Owned::leases([Fence { shard, epoch: 7 }]);
        assert_eq!(owned.fence_for(id), Some(Some(Fence { shard, epoch: 7 })));
        let other = Owned::leases([Fence {
            shard: (shard + 1) % SHARDS,
            epoch: 7,
        }]);
        assert_eq!(other.fence_for(id), None);
        assert_eq!(Owned::everything().fence_for(id), Some(None));
        assert_eq!(Owned::default().shard_count(), 0);
        assert_eq!(Owned::everything().shard_count(), SHARDS);
    }
}
