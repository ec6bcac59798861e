//! Coordination of a cluster's nodes through the store (docs/architecture.md "Modes",
//! docs/cluster.md): membership heartbeats, shard leases with a fencing epoch, and announcements
//! that carry work and admin changes to the node that owns a connection. Postgres implements it
//! (`postgres_coordination.rs`); SQLite serves one node and has none.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::StoreError;

/// The fencing token of a shard's lease: every apply of an actor carries it, and the store
/// refuses, in the same transaction, one whose lease is no longer current (changed owner,
/// released or expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::FromRow)]
pub struct Fence {
    pub shard: i32,
    pub epoch: i64,
}

/// A live node as `nodes` records it. Times are microseconds since the Unix epoch, taken
/// from the database's clock.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeInfo {
    pub node_id: String,
    pub started_at: i64,
    pub last_seen: i64,
}

/// One shard's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Lease {
    pub shard: i32,
    pub owner: Option<String>,
    pub epoch: i64,
    /// Whether it has lapsed (by the database's clock), so any node may take it.
    pub expired: bool,
}

/// What a node is told by its peers through the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// New inbox rows for this connection.
    Inbox(String),
    /// An admin action changed this connection (settings, state, a pull job).
    Admin(String),
    /// A node joined, left or released shards: leases are worth looking at again.
    Membership,
    /// The subscription was interrupted, so announcements may have been missed: look at
    /// everything again.
    Lapsed,
}

/// Membership, leases and announcements of a cluster.
#[async_trait]
pub trait Coordination: Send + Sync + 'static {
    /// Records that `node` is alive (joining at `started_at`, microseconds). Announces a
    /// membership change when the node is new.
    async fn heartbeat(&self, node: &str, started_at: i64) -> Result<(), StoreError>;

    /// Nodes seen within `within_secs`, by id.
    async fn live_nodes(&self, within_secs: u64) -> Result<Vec<NodeInfo>, StoreError>;

    /// Every shard's lease, by shard.
    async fn leases(&self) -> Result<Vec<Lease>, StoreError>;

    /// Extends the leases `node` still holds unexpired among `held` to `lease_secs` from now;
    /// returns those it still holds.
    async fn renew(
        &self,
        node: &str,
        held: &[Fence],
        lease_secs: u64,
    ) -> Result<Vec<Fence>, StoreError>;

    /// Takes `shard` for `node` if it is free, lapsed or recorded as `node`'s (a node that
    /// restarted under the same id after a crash), raising its epoch; `None` when a live
    /// lease of another node holds it.
    async fn acquire(
        &self,
        node: &str,
        shard: i32,
        lease_secs: u64,
    ) -> Result<Option<Fence>, StoreError>;

    /// Gives up leases at once (a peer may take them now rather than at expiry), and
    /// announces it.
    async fn release(&self, node: &str, leases: &[Fence]) -> Result<(), StoreError>;

    /// Removes `node` from the membership (a clean stop), and announces it.
    async fn leave(&self, node: &str) -> Result<(), StoreError>;

    /// Tells the owners of these connections that their inbox has new rows (stored and
    /// committed already: this is a wake-up, the inbox scan is the backstop).
    async fn announce_inbox(&self, connection_ids: &[String]) -> Result<(), StoreError>;

    /// Starts receiving announcements. The subscription reconnects by itself and sends
    /// [`Announcement::Lapsed`] when it may have missed some.
    async fn subscribe(&self) -> Result<mpsc::Receiver<Announcement>, StoreError>;
}
