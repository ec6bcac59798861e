//! Group commit for applies: the batches pair actors submit at the same moment are written in
//! one transaction (one fsync on SQLite, one commit on Postgres). If the combined transaction
//! fails, each batch is retried alone so one actor's conflict never fails another's work.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::store::{ApplyBatch, Store, StoreError};

/// Writes in one combined transaction at most (keeps transactions short).
const MAX_WRITES: usize = 4_000;

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// Submits apply batches. Cloneable; the writer stops when every clone is gone.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<(ApplyBatch, Reply)>,
}

impl Committer {
    /// Starts `writers` writer tasks (1 fits SQLite's single writer; Postgres takes several).
    pub fn spawn(store: Arc<dyn Store>, writers: usize) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(store.clone(), rx.clone()));
        }
        Committer { tx }
    }

    /// Commits the batch (with others submitted at the same time). Same contract as
    /// [`Store::apply`].
    pub async fn apply(&self, batch: ApplyBatch) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Corrupt("the apply writer has stopped".into());
        self.tx.send((batch, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn size(b: &ApplyBatch) -> usize {
    b.writes.len() + b.applied_inbox_ids.len() + b.observations.len() + 1
}

async fn writer(store: Arc<dyn Store>, rx: Arc<Mutex<mpsc::Receiver<(ApplyBatch, Reply)>>>) {
    loop {
        let mut group = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut total = size(&first.0);
            group.push(first);
            while total < MAX_WRITES {
                match rx.try_recv() {
                    Ok(next) => {
                        total += size(&next.0);
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
        }
        // Concurrent writers lock merchants' change-feed rows in one order: no deadlocks.
        group.sort_by(|a, b| a.0.merchant_id.cmp(&b.0.merchant_id));
        let started = Instant::now();
        if group.len() == 1 {
            let (batch, reply) = group.pop().expect("the group holds the first batch");
            let _ = reply.send(store.apply(&batch).await);
        } else {
            let (batches, replies): (Vec<ApplyBatch>, Vec<Reply>) = group.into_iter().unzip();
            match store.apply_all(&batches).await {
                Ok(()) => {
                    for reply in replies {
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, batches = batches.len(), "combined apply failed; applying one by one");
                    for (batch, reply) in batches.iter().zip(replies) {
                        let _ = reply.send(store.apply(batch).await);
                    }
                }
            }
        }
        metrics::histogram!("billsync_apply_commit_seconds")
            .record(started.elapsed().as_secs_f64());
    }
}
