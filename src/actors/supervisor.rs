//! Supervisor: learns which connections have inbox work (from intake, peers' announcements,
//! or a periodic scan of the inbox as backstop), and wakes their pair actors, spawning them
//! on demand and letting idle ones stop. Holds the registry of live actors. In a cluster it
//! runs actors only for the shards this node holds (`crate::cluster`): each actor's writes
//! carry its shard's lease, and a lost or changed lease stops its actors at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::pair::{Msg, PairActor, PairSettings};
use crate::cluster::forward::Forwarder;
use crate::cluster::Owned;
use crate::connections::Connections;
use crate::model::time::now_micros;
use crate::store::{Fence, Store};

/// How often the inbox is scanned for work nobody announced (restarts, retries).
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// Wakes the supervisor; cheap to clone, never blocks.
#[derive(Clone, Default)]
pub struct SupervisorHandle {
    dirty: Arc<Mutex<HashSet<String>>>,
    /// Connections with inbox rows this node's intake stored, for announcing to their owners.
    stored: Arc<Mutex<HashSet<String>>>,
    jobs: Arc<Mutex<HashSet<String>>>,
    notify: Arc<Notify>,
    rescan: Arc<std::sync::atomic::AtomicBool>,
}

impl SupervisorHandle {
    /// Announces new inbox rows for these connections.
    pub fn work_for<'a>(&self, connection_ids: impl IntoIterator<Item = &'a str>) {
        {
            // A poisoned lock only means another thread panicked mid-insert; the set is fine.
            let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
            for id in connection_ids {
                dirty.insert(id.to_owned());
            }
        }
        self.notify.notify_one();
    }

    /// Intake stored new inbox rows for these connections: wakes the actors of those this
    /// node owns and, in a cluster, has the others' owners told (`crate::cluster::forward`).
    pub fn stored_here<'a>(&self, connection_ids: impl IntoIterator<Item = &'a str>) {
        {
            let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
            let mut stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
            for id in connection_ids {
                dirty.insert(id.to_owned());
                stored.insert(id.to_owned());
            }
        }
        self.notify.notify_one();
    }

    /// Announces a started pull job for this connection.
    pub fn job_for(&self, connection_id: &str) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(connection_id.to_owned());
        self.notify.notify_one();
    }

    /// Asks for a scan of every kind of due work now (announcements may have been missed).
    pub fn rescan(&self) {
        self.rescan
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.notify.notify_one();
    }

    fn take(set: &Mutex<HashSet<String>>) -> HashSet<String> {
        std::mem::take(&mut *set.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct ActorEntry {
    generation: u64,
    mailbox: mpsc::Sender<Msg>,
    /// The lease its writes carry (`None`: one node, unfenced).
    fence: Option<Fence>,
    /// Stops this actor alone (its shard's lease was lost or changed).
    cancel: CancellationToken,
}

/// The supervisor task's state.
pub struct Supervisor {
    store: Arc<dyn Store>,
    connections: Arc<Connections>,
    settings: PairSettings,
    handle: SupervisorHandle,
    /// What this node may write, kept current by the lease keeper.
    owned: watch::Receiver<Arc<Owned>>,
    actors: Arc<DashMap<String, ActorEntry>>,
    /// One lock per connection, held by its actor for its whole life: a new actor for the
    /// same connection waits until the old one has finished (one writer, always). Removed
    /// when the last actor holding or awaiting it has ended, so it does not grow with every
    /// connection ever served.
    writer_locks: Arc<DashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    next_generation: u64,
    /// Announces intake's rows to the nodes that own them (a cluster; `None`: one node).
    forwarder: Option<Forwarder>,
}

impl Supervisor {
    pub fn new(
        store: Arc<dyn Store>,
        connections: Arc<Connections>,
        settings: PairSettings,
        handle: SupervisorHandle,
        owned: watch::Receiver<Arc<Owned>>,
    ) -> Self {
        Supervisor {
            store,
            connections,
            settings,
            handle,
            owned,
            actors: Arc::new(DashMap::new()),
            writer_locks: Arc::new(DashMap::new()),
            next_generation: 0,
            forwarder: None,
        }
    }

    /// In a cluster: inbox rows this node stores for connections another node owns are
    /// announced to it through `forwarder`.
    pub fn forwarding(mut self, forwarder: Forwarder) -> Self {
        self.forwarder = Some(forwarder);
        self
    }

    /// Runs until `cancel` fires, then waits for the actors to finish their current batch.
    pub async fn run(mut self, cancel: CancellationToken) {
        let (idle_tx, mut idle_rx) = mpsc::unbounded_channel::<(String, u64)>();
        let mut tasks = JoinSet::<String>::new();
        let mut rescan = tokio::time::interval(RESCAN_EVERY);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut scan = false;
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.handle.notify.notified() => {}
                _ = rescan.tick() => scan = true,
                Ok(()) = self.owned.changed() => {
                    self.follow_leases();
                    scan = true;
                }
                Some((id, generation)) = idle_rx.recv() => {
                    // Dropping the entry drops the mailbox sender: the actor ends once drained.
                    self.actors.remove_if(&id, |_, e| e.generation == generation);
                    continue;
                }
                Some(ended) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(id) = ended {
                        // Only this task clones locks out of the map, so a count of one
                        // means no actor of this connection holds or awaits it.
                        self.writer_locks.remove_if(&id, |_, l| Arc::strong_count(l) == 1);
                    }
                    continue;
                }
            }
            scan |= self
                .handle
                .rescan
                .swap(false, std::sync::atomic::Ordering::Relaxed);
            for id in SupervisorHandle::take(&self.handle.dirty) {
                self.send(&id, Msg::Wake, &idle_tx, &mut tasks, &cancel);
            }
            let stored = SupervisorHandle::take(&self.handle.stored);
            if let Some(forwarder) = &self.forwarder {
                let owned = self.owned.borrow();
                forwarder.send(
                    stored
                        .into_iter()
                        .filter(|id| owned.fence_for(id).is_none())
                        .collect(),
                );
            }
            for id in SupervisorHandle::take(&self.handle.jobs) {
                self.send(&id, Msg::Jobs, &idle_tx, &mut tasks, &cancel);
            }
            if scan {
                let due = self
                    .store
                    .connections_with_due_work(now_micros(), 10_000)
                    .await;
                match due {
                    Ok(ids) => {
                        for id in ids {
                            self.send(&id, Msg::Wake, &idle_tx, &mut tasks, &cancel);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "inbox scan failed; will retry"),
                }
                match self
                    .store
                    .connections_with_due_refetches(now_micros(), 10_000)
                    .await
                {
                    Ok(ids) => {
                        for id in ids {
                            self.send(&id, Msg::Wake, &idle_tx, &mut tasks, &cancel);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "confirmation scan failed; will retry"),
                }
                if self.settings.confirm {
                    match self
                        .store
                        .connections_with_due_sweeps(now_micros(), 1_000)
                        .await
                    {
                        Ok(ids) => {
                            for id in ids {
                                self.send(&id, Msg::Sweep, &idle_tx, &mut tasks, &cancel);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "sweep scan failed; will retry"),
                    }
                }
                // Pull jobs survive restarts: resume any whose actor is not running.
                match self.store.connections_with_running_jobs().await {
                    Ok(ids) => {
                        let actors = self.actors.clone();
                        for id in ids.into_iter().filter(|id| !actors.contains_key(id)) {
                            self.send(&id, Msg::Jobs, &idle_tx, &mut tasks, &cancel);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "job scan failed; will retry"),
                }
                metrics::gauge!("billsync_live_actors").set(self.actors.len() as f64);
            }
        }
        self.actors.clear();
        while tasks.join_next().await.is_some() {}
    }

    /// Stops the actors whose lease this node no longer holds (lost, given away, or taken
    /// again under a new epoch), and sets the provider-wide budgets to this node's share.
    fn follow_leases(&mut self) {
        let owned = self.owned.borrow_and_update().clone();
        self.settings
            .provider_limits
            .set_share(owned.shard_count(), crate::cluster::SHARDS);
        self.actors.retain(|id, entry| {
            let current = owned.fence_for(id) == Some(entry.fence);
            if !current {
                entry.cancel.cancel();
            }
            current
        });
        tracing::info!(shards = owned.shard_count(), "shard ownership changed");
    }

    /// Delivers `msg` to the connection's actor, spawning one when none is running. Work of
    /// a connection this node does not own is left to its owner.
    fn send(
        &mut self,
        id: &str,
        msg: Msg,
        idle_tx: &mpsc::UnboundedSender<(String, u64)>,
        tasks: &mut JoinSet<String>,
        cancel: &CancellationToken,
    ) {
        let Some(fence) = self.owned.borrow().fence_for(id) else {
            return;
        };
        if let Some(entry) = self.actors.get(id).filter(|e| e.fence == fence) {
            match entry.mailbox.try_send(msg) {
                Ok(()) => return,
                // A full mailbox already holds work; a job notice must not be lost though.
                Err(mpsc::error::TrySendError::Full(_)) if msg != Msg::Jobs => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.handle.job_for(id);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let (mailbox, inbox) = mpsc::channel(4);
        // A fresh channel with capacity 4 has room for the first message.
        let _ = mailbox.try_send(msg);
        let actor_cancel = cancel.child_token();
        let replaced = self.actors.insert(
            id.to_owned(),
            ActorEntry {
                generation,
                mailbox,
                fence,
                cancel: actor_cancel.clone(),
            },
        );
        if let Some(stale) = replaced {
            // An actor of an older lease of this shard: it must not write again.
            stale.cancel.cancel();
        }
        let lock = self.writer_locks.entry(id.to_owned()).or_default().clone();
        let mut settings = self.settings.clone();
        settings.committer = settings.committer.fenced(fence);
        let actor = PairActor::new(
            id.to_owned(),
            generation,
            self.store.clone(),
            self.connections.clone(),
            settings,
        );
        let idle_tx = idle_tx.clone();
        let cancel = actor_cancel;
        let id = id.to_owned();
        tasks.spawn(async move {
            {
                let _writer = lock.lock_owned().await;
                actor.run(inbox, idle_tx, cancel).await;
            }
            id
        });
    }
}
