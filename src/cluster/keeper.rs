//! The lease keeper: one task per node of a cluster. Each round (a third of the lease, or
//! at once when a peer joins, leaves or releases shards) it heartbeats, renews the leases it
//! holds, releases those it gave away a round earlier, gives away the shards rendezvous
//! hashing places on another live node, and takes the free or lapsed ones placed on itself.
//! It publishes what it holds to the supervisor ([`Owned`]), which stops the actors of lost
//! shards and starts those of new ones. On a clean stop it releases everything and leaves
//! the membership, so peers take over at once instead of after expiry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::{rendezvous, Owned};
use crate::store::{Coordination, Fence, StoreError};

/// One node's lease keeper.
pub struct LeaseKeeper {
    coordination: Arc<dyn Coordination>,
    node_id: String,
    started_at: i64,
    lease_secs: u64,
    owned: watch::Sender<Arc<Owned>>,
    kick: Arc<Notify>,
}

/// What the keeper holds between rounds.
#[derive(Default)]
struct Holding {
    /// Held leases: shard → epoch.
    leases: HashMap<i32, i64>,
    /// Given away last round, released this one (their actors have had a round to finish).
    draining: Vec<Fence>,
    /// When the held leases were last renewed (by this node's clock, after the renewal
    /// returned: an early, safe estimate of when they lapse).
    renewed: Option<Instant>,
}

impl Holding {
    fn fences(&self) -> Vec<Fence> {
        self.leases
            .iter()
            .map(|(&shard, &epoch)| Fence { shard, epoch })
            .collect()
    }
}

impl LeaseKeeper {
    /// A keeper for `node_id`, and the receiver its supervisor follows.
    pub fn new(
        coordination: Arc<dyn Coordination>,
        node_id: String,
        started_at: i64,
        lease_secs: u64,
    ) -> (Self, watch::Receiver<Arc<Owned>>) {
        let (owned, receiver) = watch::channel(Arc::new(Owned::default()));
        let keeper = LeaseKeeper {
            coordination,
            node_id,
            started_at,
            lease_secs: lease_secs.max(1),
            owned,
            kick: Arc::new(Notify::new()),
        };
        (keeper, receiver)
    }

    /// Starts a round now (announcements of membership changes use it).
    pub fn kicker(&self) -> Arc<Notify> {
        self.kick.clone()
    }

    fn period(&self) -> Duration {
        Duration::from_millis((self.lease_secs * 1000 / 3).max(200))
    }

    /// Keeps leases until `stop` fires, then hands everything over. Call `stop` only once
    /// this node's actors have stopped: their last batches still need the leases.
    pub async fn run(self, stop: CancellationToken) {
        let mut holding = Holding::default();
        let mut failing = false;
        loop {
            match self.round(&mut holding).await {
                Ok(()) => {
                    if failing {
                        tracing::info!(node_id = %self.node_id, "cluster store reachable again");
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(node_id = %self.node_id, error = %e, "cannot renew shard leases; retrying");
                    }
                    failing = true;
                    let lapsed = holding
                        .renewed
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(self.lease_secs));
                    if lapsed && !holding.leases.is_empty() {
                        tracing::warn!(node_id = %self.node_id, shards = holding.leases.len(),
                            "shard leases lapsed without renewal; stopping their actors");
                        metrics::counter!("billsync_lease_changes_total", "change" => "lost")
                            .increment(holding.leases.len() as u64);
                        holding.leases.clear();
                        self.publish(&holding);
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.period()) => {}
                _ = self.kick.notified() => {}
            }
        }
        let mut all = holding.fences();
        all.append(&mut holding.draining);
        holding.leases.clear();
        self.publish(&holding);
        let handed = async {
            self.coordination.release(&self.node_id, &all).await?;
            self.coordination.leave(&self.node_id).await
        };
        match handed.await {
            Ok(()) => {
                metrics::counter!("billsync_lease_changes_total", "change" => "released")
                    .increment(all.len() as u64);
                tracing::info!(node_id = %self.node_id, shards = all.len(), "released shard leases");
            }
            Err(e) => {
                tracing::warn!(node_id = %self.node_id, error = %e,
                    "cannot release shard leases; peers take them when they lapse")
            }
        }
    }

    async fn round(&self, holding: &mut Holding) -> Result<(), StoreError> {
        let c = self.coordination.as_ref();
        let me = self.node_id.as_str();
        c.heartbeat(me, self.started_at).await?;

        let held = holding.fences();
        let asked = Instant::now();
        let kept = c.renew(me, &held, self.lease_secs).await?;
        holding.renewed = Some(asked);
        if kept.len() < held.len() {
            let lost = held.len() - kept.len();
            tracing::warn!(node_id = %me, shards = lost, "lost shard leases (lapsed or taken over)");
            metrics::counter!("billsync_lease_changes_total", "change" => "lost")
                .increment(lost as u64);
        }
        holding.leases = kept.iter().map(|f| (f.shard, f.epoch)).collect();

        if !holding.draining.is_empty() {
            c.release(me, &holding.draining).await?;
            metrics::counter!("billsync_lease_changes_total", "change" => "released")
                .increment(holding.draining.len() as u64);
            holding.draining.clear();
        }

        let mut nodes: Vec<String> = c
            .live_nodes(self.lease_secs)
            .await?
            .into_iter()
            .map(|n| n.node_id)
            .collect();
        if !nodes.iter().any(|n| n == me) {
            nodes.push(me.to_owned());
        }
        metrics::gauge!("billsync_cluster_nodes").set(nodes.len() as f64);

        // Give away what another live node should hold: its actors stop now, the lease is
        // released next round.
        let leaving: Vec<i32> = holding
            .leases
            .keys()
            .copied()
            .filter(|&s| rendezvous::owner(s, &nodes) != Some(me))
            .collect();
        for shard in leaving {
            if let Some(epoch) = holding.leases.remove(&shard) {
                holding.draining.push(Fence { shard, epoch });
            }
        }

        // Take what should be ours and is free, lapsed, or ours from before a restart.
        for lease in c.leases().await? {
            let placed_here = rendezvous::owner(lease.shard, &nodes) == Some(me);
            let takeable =
                lease.owner.is_none() || lease.expired || lease.owner.as_deref() == Some(me);
            if placed_here && takeable && !holding.leases.contains_key(&lease.shard) {
                if let Some(f) = c.acquire(me, lease.shard, self.lease_secs).await? {
                    holding.leases.insert(f.shard, f.epoch);
                    metrics::counter!("billsync_lease_changes_total", "change" => "acquired")
                        .increment(1);
                }
            }
        }
        self.publish(holding);
        Ok(())
    }

    fn publish(&self, holding: &Holding) {
        let owned = Owned::leases(holding.fences());
        metrics::gauge!("billsync_cluster_shards_owned").set(f64::from(owned.shard_count()));
        self.owned.send_if_modified(|current| {
            if **current == owned {
                false
            } else {
                *current = Arc::new(owned);
                true
            }
        });
    }
}
