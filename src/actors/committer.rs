//! Group commit for applies: the batches pair actors submit at the same moment are written in
//! one transaction (one fsync on SQLite, one commit on Postgres). If the combined transaction
//! fails, each batch is retried alone so one actor's conflict never fails another's work.
//!
//! Webhook intake comes first: while webhooks wait for their intake transaction, applies wait
//! too (at most [`YIELD_MAX`]) and then commit small groups. A burst is acknowledged at the
//! store's write rate and applied right after it from the inbox, where it is already durable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::store::{ApplyBatch, Fence, Store, StoreError};

/// Writes in one combined transaction at most (keeps transactions short).
const MAX_WRITES: usize = 4_000;

/// Writes in one combined transaction while webhooks are waiting: short enough that the
/// intake transaction queued behind it is not held up for long.
const PRESSED_MAX_WRITES: usize = 1_024;

/// Longest an apply waits for the intake queue to empty before it commits anyway, so a
/// burst that never ends still sees its webhooks applied.
pub const YIELD_MAX: Duration = Duration::from_millis(400);

/// Once a batch has waited this long, applies stop yielding to intake until they caught up.
/// Measured (scenario 1 of `scripts/bench`, 2 runs each): at 500 ms Postgres intake was
/// 0.76-0.88x its single-row baseline; at 750 ms 1.00-1.01x, with webhook→queryable P95 at
/// 2,500/s of 0.5-0.7 s (the goal is 2 s); at 1 s and more the P95 reached 1.1 s and more.
const LAG_BUDGET: Duration = Duration::from_millis(750);

/// How often a waiting apply looks at the intake queue again.
const YIELD_POLL: Duration = Duration::from_millis(2);

/// Webhooks received and not yet committed (waiting for an intake transaction or in one).
/// The intake counts them; the committer yields to them.
#[derive(Clone, Debug, Default)]
pub struct IntakeQueue(Arc<AtomicUsize>);

impl IntakeQueue {
    /// One webhook more is waiting.
    pub fn push(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` waiting webhooks were committed (or given up).
    pub fn pop(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// Webhooks waiting now.
    pub fn waiting(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// A batch waiting for its transaction.
struct Submitted {
    batch: ApplyBatch,
    reply: Reply,
    queued: Instant,
}

/// Submits apply batches. Cloneable; the writer stops when every clone is gone.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Submitted>,
    /// The shard lease every batch submitted through this clone carries (a pair actor's
    /// own clone, [`Committer::fenced`]); `None` on a store that serves one node.
    fence: Option<Fence>,
}

impl Committer {
    /// Starts `writers` writer tasks (1 fits SQLite's single writer; Postgres takes several)
    /// that yield to the webhooks waiting in `intake`.
    pub fn spawn(store: Arc<dyn Store>, writers: usize, intake: IntakeQueue) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let rx = Arc::new(Mutex::new(Queue { rx }));
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(store.clone(), rx.clone(), intake.clone()));
        }
        Committer { tx, fence: None }
    }

    /// A clone whose batches carry `fence`: the store refuses them once the lease is gone.
    pub fn fenced(&self, fence: Option<Fence>) -> Self {
        Committer {
            tx: self.tx.clone(),
            fence,
        }
    }

    /// Commits the batch (with others submitted at the same time). Same contract as
    /// [`Store::apply`].
    pub async fn apply(&self, mut batch: ApplyBatch) -> Result<(), StoreError> {
        batch.fence = self.fence;
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Corrupt("the apply writer has stopped".into());
        let queued = Instant::now();
        self.tx
            .send(Submitted {
                batch,
                reply,
                queued,
            })
            .await
            .map_err(|_| stopped())?;
        let result = answer.await.map_err(|_| stopped())?;
        if let Err(StoreError::Fenced(_)) = &result {
            // A write of a lease this node no longer holds, refused by the store.
            metrics::counter!("billsync_fenced_writes_total").increment(1);
        }
        result
    }
}

fn size(b: &ApplyBatch) -> usize {
    b.writes.len() + b.applied_inbox_ids.len() + b.observations.len() + 1
}

/// Waits while webhooks wait for intake, at most [`YIELD_MAX`]; returns whether it waited.
async fn yield_to_intake(intake: &IntakeQueue) -> bool {
    if intake.waiting() == 0 {
        return false;
    }
    let started = tokio::time::Instant::now();
    while intake.waiting() > 0 && started.elapsed() < YIELD_MAX {
        tokio::time::sleep(YIELD_POLL).await;
    }
    metrics::histogram!("billsync_apply_yield_seconds").record(started.elapsed().as_secs_f64());
    true
}

/// The batches submitted, shared by the writers.
struct Queue {
    rx: mpsc::Receiver<Submitted>,
}

async fn writer(store: Arc<dyn Store>, queue: Arc<Mutex<Queue>>, intake: IntakeQueue) {
    loop {
        let mut group = Vec::new();
        {
            let mut queue = queue.lock().await;
            let Some(first) = queue.rx.recv().await else {
                return;
            };
            // The other writers wait on the lock meanwhile: all applies yield together.
            // A batch that already waited its share commits without yielding again, so
            // applies keep up with any steady webhook rate and lag by [`LAG_BUDGET`] at most.
            let pressed = if first.queued.elapsed() >= LAG_BUDGET {
                intake.waiting() > 0
            } else {
                yield_to_intake(&intake).await
            };
            let limit = if pressed {
                PRESSED_MAX_WRITES
            } else {
                MAX_WRITES
            };
            let mut total = size(&first.batch);
            group.push(first);
            while total < limit {
                match queue.rx.try_recv() {
                    Ok(next) => {
                        total += size(&next.batch);
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
        }
        // Concurrent writers lock merchants' change-feed rows in one order: no deadlocks.
        group.sort_by(|a, b| a.batch.merchant_id.cmp(&b.batch.merchant_id));
        let started = Instant::now();
        if group.len() == 1 {
            let Submitted { batch, reply, .. } =
                group.pop().expect("the group holds the first batch");
            let _ = reply.send(store.apply(&batch).await);
        } else {
            let (batches, replies): (Vec<ApplyBatch>, Vec<Reply>) =
                group.into_iter().map(|s| (s.batch, s.reply)).unzip();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn applies_do_not_wait_when_no_webhook_is_waiting() {
        let intake = IntakeQueue::default();
        let started = tokio::time::Instant::now();
        assert!(!yield_to_intake(&intake).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn applies_wait_until_the_waiting_webhooks_are_committed() {
        let intake = IntakeQueue::default();
        intake.push();
        intake.push();
        let committer = intake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            committer.pop(2);
        });
        let started = tokio::time::Instant::now();
        assert!(yield_to_intake(&intake).await);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(
            waited < Duration::from_millis(30) + 2 * YIELD_POLL,
            "{waited:?}"
        );
        assert_eq!(intake.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn applies_wait_no_longer_than_the_yield_limit_under_an_endless_burst() {
        let intake = IntakeQueue::default();
        intake.push();
        let started = tokio::time::Instant::now();
        assert!(yield_to_intake(&intake).await);
        let waited = started.elapsed();
        assert!(waited >= YIELD_MAX, "{waited:?}");
        assert!(waited < YIELD_MAX + 2 * YIELD_POLL, "{waited:?}");
    }
}
