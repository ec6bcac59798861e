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
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

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

    /// How long a small group may wait for more while another group of this batcher is
    /// being committed (see [`Linger`]); by default it never waits.
    fn linger(&self) -> Linger {
        Linger::NEVER
    }
}

/// Waiting for a group to fill up. A group gathered while the database is busy with another
/// one of the same batcher (a commit in flight) may wait until that commit ends, it weighs
/// `fill` or `wait` has passed since its first item was queued, whichever comes first: under
/// load that turns many small transactions into fewer larger ones, each costing the database
/// about the same (docs/cluster.md, "What a node more costs on one machine"). An idle batcher
/// never waits: the first item of a quiet moment is committed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linger {
    pub wait: Duration,
    pub fill: usize,
}

impl Linger {
    /// Never wait: commit whatever is queued.
    pub const NEVER: Linger = Linger {
        wait: Duration::ZERO,
        fill: 0,
    };
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
        let busy = Arc::new(Busy::default());
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(grouping.clone(), rx.clone(), busy.clone()));
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

/// Gathers groups from the queue and commits them; `busy` tracks the groups of this
/// batcher's writers being committed right now.
async fn writer<G: Grouping>(grouping: Arc<G>, rx: SharedQueue<G>, busy: Arc<Busy>) {
    let linger = grouping.linger();
    loop {
        let mut group = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let limit = grouping.limit(&first.item, first.queued.elapsed()).await;
            let fill = limit.min(linger.fill);
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
            // The database is busy with another group: this one fills up until that commit
            // ends (it would wait behind its flush anyway), `fill` is reached or `wait` is up.
            let finished = busy.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if weight < fill && busy.committing.load(Ordering::Acquire) > 0 {
                let deadline = tokio::time::Instant::from_std(group[0].queued + linger.wait);
                while weight < fill {
                    tokio::select! {
                        next = rx.recv() => match next {
                            Some(next) => {
                                weight += grouping.weight(&next.item);
                                group.push(next);
                            }
                            None => break,
                        },
                        _ = &mut finished => break,
                        _ = tokio::time::sleep_until(deadline) => break,
                    }
                }
            }
        }
        let in_flight = Committing::start(&busy);
        let (items, replies): (Vec<G::Item>, Vec<oneshot::Sender<G::Outcome>>) =
            group.into_iter().map(|q| (q.item, q.reply)).unzip();
        let outcomes = grouping.commit(items).await;
        drop(in_flight);
        debug_assert_eq!(outcomes.len(), replies.len(), "one outcome per item");
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// The groups of one batcher being committed: how many, and a signal when one ends.
#[derive(Default)]
struct Busy {
    committing: AtomicUsize,
    finished: Notify,
}

/// One group on its batcher's [`Busy`] count while it lives; its end wakes lingering writers.
struct Committing<'a>(&'a Busy);

impl<'a> Committing<'a> {
    fn start(busy: &'a Busy) -> Self {
        busy.committing.fetch_add(1, Ordering::AcqRel);
        Committing(busy)
    }
}

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        self.0.committing.fetch_sub(1, Ordering::AcqRel);
        self.0.finished.notify_waiters();
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

    /// Records its groups' sizes, takes 60 ms to commit one, lingers up to 500 ms for 4 items.
    struct Slow(Arc<std::sync::Mutex<Vec<usize>>>);

    #[async_trait]
    impl Grouping for Slow {
        type Item = usize;
        type Outcome = ();
        async fn limit(&self, _: &usize, _: Duration) -> usize {
            100
        }
        fn weight(&self, _: &usize) -> usize {
            1
        }
        async fn commit(&self, items: Vec<usize>) -> Vec<()> {
            self.0.lock().unwrap().push(items.len());
            tokio::time::sleep(Duration::from_millis(60)).await;
            vec![(); items.len()]
        }
        fn linger(&self) -> Linger {
            Linger {
                wait: Duration::from_millis(500),
                fill: 4,
            }
        }
    }

    #[tokio::test]
    async fn an_idle_batcher_commits_at_once_and_a_busy_one_lets_groups_fill() {
        let groups = Arc::new(std::sync::Mutex::new(Vec::new()));
        let batcher = Batcher::spawn(Slow(groups.clone()), 2, 64);
        // Idle: one item is committed without waiting for the 500 ms linger.
        let started = Instant::now();
        batcher.submit(1).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        // Busy: while item 0 commits (60 ms), the other writer gathers the items arriving
        // 5 ms apart into a group of 4 (without lingering it would commit the first alone);
        // the next group is gathered while that one commits.
        let first = {
            let b = batcher.clone();
            tokio::spawn(async move { b.submit(0).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut rest = Vec::new();
        for i in 0..8 {
            let b = batcher.clone();
            rest.push(tokio::spawn(async move { b.submit(i).await }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        first.await.unwrap().unwrap();
        for r in rest {
            r.await.unwrap().unwrap();
        }
        let groups = groups.lock().unwrap().clone();
        assert_eq!(groups.iter().sum::<usize>(), 10, "{groups:?}");
        assert_eq!(&groups[..2], &[1, 1], "{groups:?}");
        assert!(groups[2] >= 4, "{groups:?}");
    }

    #[tokio::test]
    async fn a_batcher_whose_writers_stopped_says_so() {
        let batcher: Batcher<Sums> = Batcher {
            tx: mpsc::channel(1).0,
        };
        assert_eq!(batcher.submit(1).await, Err(SubmitError::Stopped));
    }
}
