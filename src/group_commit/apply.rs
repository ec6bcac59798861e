//! Group commit for applies: the batches pair actors submit at the same moment are written in
//! one transaction. If the combined transaction fails, each batch is retried alone so one
//! actor's conflict never fails another's work.
//!
//! Webhook intake comes first: while webhooks wait for their intake transaction, applies wait
//! too (at most [`YIELD_MAX`]) and then commit small groups. A burst is acknowledged at the
//! store's write rate and applied right after it from the inbox, where it is already durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Batcher, Grouping, IntakeQueue};
use crate::actors::cross_check;
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

/// Submits apply batches. Cloneable; the writers stop when every clone is gone.
#[derive(Clone)]
pub struct Committer {
    batcher: Batcher<Applies>,
    /// The shard lease every batch submitted through this clone carries (a pair actor's
    /// own clone, [`Committer::fenced`]); `None` on a store that serves one node.
    fence: Option<Fence>,
    /// The cross-object quality checks that follow each commit, off the apply path.
    checker: cross_check::CrossChecker,
}

impl Committer {
    /// Starts `writers` writer tasks (1 fits SQLite's single writer; Postgres takes several)
    /// that yield to the webhooks waiting in `intake`.
    pub fn spawn(store: Arc<dyn Store>, writers: usize, intake: IntakeQueue) -> Self {
        Committer {
            batcher: Batcher::spawn(
                Applies {
                    store: store.clone(),
                    intake,
                },
                writers,
                1024,
            ),
            fence: None,
            checker: cross_check::CrossChecker::spawn(store),
        }
    }

    /// A clone whose batches carry `fence`: the store refuses them once the lease is gone.
    pub fn fenced(&self, fence: Option<Fence>) -> Self {
        Committer {
            batcher: self.batcher.clone(),
            fence,
            checker: self.checker.clone(),
        }
    }

    /// Commits the batch (with others submitted at the same time). Same contract as
    /// [`Store::apply`]. Once committed, the cross-object quality checks of its new versions
    /// are queued (`crate::actors::cross_check`); they never hold up or fail the apply.
    pub async fn apply(&self, mut batch: ApplyBatch) -> Result<(), StoreError> {
        batch.fence = self.fence;
        let written = written(&batch);
        let result = self
            .batcher
            .submit(batch)
            .await
            .map_err(|e| StoreError::Corrupt(format!("cannot apply: {e}")))?;
        if let Err(StoreError::Fenced(_)) = &result {
            // A write of a lease this node no longer holds, refused by the store.
            metrics::counter!("billsync_fenced_writes_total").increment(1);
        }
        if result.is_ok() {
            self.checker.submit(written);
        }
        result
    }
}

/// The new versions of a batch, for [`cross_check::after_apply`].
fn written(batch: &ApplyBatch) -> cross_check::Written {
    let new = batch.writes.iter().filter(|w| w.is_new_version());
    // `id` is `{provider}:{provider_id}`.
    let provider = batch
        .writes
        .first()
        .and_then(|w| w.id.strip_suffix(w.provider_id.as_str()))
        .and_then(|p| p.strip_suffix(':'))
        .unwrap_or_default();
    cross_check::Written {
        connection_id: batch.connection_id.clone(),
        merchant_id: batch.merchant_id.clone(),
        provider: provider.to_owned(),
        keys: new
            .map(|w| (w.object_type, w.provider_id.clone()))
            .collect(),
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

/// How applies are grouped: yielding to intake first, smaller groups while webhooks wait.
struct Applies {
    store: Arc<dyn Store>,
    intake: IntakeQueue,
}

#[async_trait]
impl Grouping for Applies {
    type Item = ApplyBatch;
    type Outcome = Result<(), StoreError>;

    async fn limit(&self, _first: &ApplyBatch, waited: Duration) -> usize {
        // The other writers wait on the queue's lock meanwhile: all applies yield together.
        // A batch that already waited its share commits without yielding again, so applies
        // keep up with any steady webhook rate and lag by [`LAG_BUDGET`] at most.
        let pressed = if waited >= LAG_BUDGET {
            self.intake.waiting() > 0
        } else {
            yield_to_intake(&self.intake).await
        };
        if pressed {
            PRESSED_MAX_WRITES
        } else {
            MAX_WRITES
        }
    }

    fn weight(&self, batch: &ApplyBatch) -> usize {
        size(batch)
    }

    async fn commit(&self, batches: Vec<ApplyBatch>) -> Vec<Result<(), StoreError>> {
        // Concurrent writers lock merchants' change-feed rows in one order: no deadlocks.
        // `order[k]` is where the k-th sorted batch was submitted, for its answer.
        let mut indexed: Vec<(usize, ApplyBatch)> = batches.into_iter().enumerate().collect();
        indexed.sort_by(|a, b| a.1.merchant_id.cmp(&b.1.merchant_id));
        let (order, sorted): (Vec<usize>, Vec<ApplyBatch>) = indexed.into_iter().unzip();
        let started = Instant::now();
        let results: Vec<Result<(), StoreError>> = if sorted.len() == 1 {
            vec![self.store.apply(&sorted[0]).await]
        } else {
            match self.store.apply_all(&sorted).await {
                Ok(()) => sorted.iter().map(|_| Ok(())).collect(),
                Err(e) => {
                    tracing::debug!(error = %e, batches = sorted.len(), "combined apply failed; applying one by one");
                    let mut results = Vec::with_capacity(sorted.len());
                    for batch in &sorted {
                        results.push(self.store.apply(batch).await);
                    }
                    results
                }
            }
        };
        metrics::histogram!("billsync_apply_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        let mut answers: Vec<(usize, Result<(), StoreError>)> =
            order.into_iter().zip(results).collect();
        answers.sort_by_key(|(submitted, _)| *submitted);
        answers.into_iter().map(|(_, r)| r).collect()
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
