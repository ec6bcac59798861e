//! Group commit, the one write path: whatever is submitted at the same moment is written in one
//! transaction (one fsync on SQLite, one commit on Postgres), and each submitter is answered
//! after it. Two users share the mechanism: webhook intake ([`intake::GroupCommit`]: raw
//! event + inbox row, acknowledged only after its commit) and the pair actors' applies
//! ([`apply::Committer`]: versions, objects, change feed), which yield to intake
//! ([`IntakeQueue`]). See docs/architecture.md, "Building blocks".
//!
//! A [`Grouping`] says how big a group may be and how to write it; [`Batcher`] runs the
//! writer tasks that gather groups from one queue and answer every submitter.

pub mod apply;
pub mod intake;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, Mutex};

pub use apply::Committer;
pub use intake::{GroupCommit, IntakeCommitError};

/// How one kind of write is grouped and committed.
#[async_trait]
pub trait Grouping: Send + Sync + 'static {
    type Item: Send + 'static;
    type Outcome: Send + 'static;

    /// The most a group started by `first` (queued `waited` ago) may weigh. Called under the
    /// queue's lock: the writers decide one at a time, and may wait here.
    async fn limit(&self, first: &Self::Item, waited: Duration) -> usize;

    /// What one item counts against the limit.
    fn weight(&self, item: &Self::Item) -> usize;

    /// Writes the group; one outcome per item, in their order.
    async fn commit(&self, items: Vec<Self::Item>) -> Vec<Self::Outcome>;
}

/// Why a submission got no outcome.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// Every writer has stopped (the node is shutting down).
    #[error("the group commit writers have stopped")]
    Stopped,
}

struct Queued<I, O> {
    item: I,
    reply: oneshot::Sender<O>,
    queued: Instant,
}

/// Submits items to the writer tasks of one [`Grouping`]. Cloneable; the writers stop when
/// every clone is gone.
pub struct Batcher<G: Grouping> {
    tx: mpsc::Sender<Queued<G::Item, G::Outcome>>,
}

impl<G: Grouping> Clone for Batcher<G> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<G: Grouping> Batcher<G> {
    /// Starts `writers` writer tasks sharing one queue of `capacity` submissions.
    pub fn spawn(grouping: G, writers: usize, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let grouping = Arc::new(grouping);
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(grouping.clone(), rx.clone()));
        }
        Batcher { tx }
    }

    /// Commits `item` with whatever else is submitted meanwhile; its outcome once committed.
    pub async fn submit(&self, item: G::Item) -> Result<G::Outcome, SubmitError> {
        let (reply, answer) = oneshot::channel();
        let queued = Instant::now();
        self.tx
            .send(Queued {
                item,
                reply,
                queued,
            })
            .await
            .map_err(|_| SubmitError::Stopped)?;
        answer.await.map_err(|_| SubmitError::Stopped)
    }
}

/// The submissions of one [`Batcher`], shared by its writers.
type SharedQueue<G> =
    Arc<Mutex<mpsc::Receiver<Queued<<G as Grouping>::Item, <G as Grouping>::Outcome>>>>;

async fn writer<G: Grouping>(grouping: Arc<G>, rx: SharedQueue<G>) {
    loop {
        let mut group = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let limit = grouping.limit(&first.item, first.queued.elapsed()).await;
            let mut weight = grouping.weight(&first.item);
            group.push(first);
            while weight < limit {
                match rx.try_recv() {
                    Ok(next) => {
                        weight += grouping.weight(&next.item);
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
        }
        let (items, replies): (Vec<G::Item>, Vec<oneshot::Sender<G::Outcome>>) =
            group.into_iter().map(|q| (q.item, q.reply)).unzip();
        let outcomes = grouping.commit(items).await;
        debug_assert_eq!(outcomes.len(), replies.len(), "one outcome per item");
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// Webhooks received and not yet committed (waiting for an intake transaction or in one).
/// Intake counts them; applies yield to them.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums numbers in groups of weight at most 10 and answers each with its group's size.
    struct Sums(std::sync::Mutex<Vec<Vec<usize>>>);

    #[async_trait]
    impl Grouping for Sums {
        type Item = usize;
        type Outcome = usize;
        async fn limit(&self, _: &usize, _: Duration) -> usize {
            10
        }
        fn weight(&self, item: &usize) -> usize {
            *item
        }
        async fn commit(&self, items: Vec<usize>) -> Vec<usize> {
            let n = items.len();
            self.0.lock().unwrap().push(items);
            vec![n; n]
        }
    }

    #[tokio::test]
    async fn submissions_at_one_moment_share_groups_within_the_limit() {
        let batcher = Batcher::spawn(Sums(Default::default()), 1, 64);
        let answers: Vec<_> = (0..12)
            .map(|_| {
                let b = batcher.clone();
                tokio::spawn(async move { b.submit(3).await })
            })
            .collect();
        let mut sizes = Vec::new();
        for a in answers {
            sizes.push(a.await.unwrap().unwrap());
        }
        // Every answer came, each group weighs at most 10 + one item's overshoot (4 × 3).
        assert_eq!(sizes.len(), 12);
        assert!(sizes.iter().all(|&n| (1..=4).contains(&n)), "{sizes:?}");
    }

    #[tokio::test]
    async fn a_batcher_whose_writers_stopped_says_so() {
        let batcher: Batcher<Sums> = Batcher {
            tx: mpsc::channel(1).0,
        };
        assert_eq!(batcher.submit(1).await, Err(SubmitError::Stopped));
    }
}
