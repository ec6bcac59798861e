//! Group commit for intake: concurrent webhooks are gathered into one transaction and all
//! acknowledged after its commit. A request waits at most for the commit in progress plus its
//! own; under load batches grow by themselves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use thiserror::Error;

use super::{Batcher, Grouping, IntakeQueue, Linger, SubmitError};
use crate::actors::SupervisorHandle;
use crate::store::{IncomingEvent, IngestOutcome, Store};

/// Why a webhook was not stored (it is answered `503`, and the provider retries).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IntakeCommitError {
    /// The store could not commit it (unreachable, or refused this event).
    #[error("the store did not commit it: {0}")]
    Store(String),
    /// Every intake writer has stopped (the node is shutting down).
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

/// Submits events to the intake writers. Cloneable; the writers stop when every clone is gone.
#[derive(Clone)]
pub struct GroupCommit {
    batcher: Batcher<Intake>,
    queue: IntakeQueue,
}

impl GroupCommit {
    /// Starts `writers` writer tasks committing up to `batch_max` events per transaction, a
    /// small batch waiting up to `linger` for more while another is being committed;
    /// `queue` counts the events waiting for one (applies yield to them).
    pub fn spawn(
        store: Arc<dyn Store>,
        supervisor: SupervisorHandle,
        writers: usize,
        batch_max: usize,
        linger: Duration,
        queue: IntakeQueue,
    ) -> Self {
        let grouping = Intake {
            store,
            supervisor,
            batch_max: batch_max.max(1),
            linger: Linger {
                wait: linger,
                fill: LINGER_FILL,
            },
        };
        GroupCommit {
            batcher: Batcher::spawn(grouping, writers, batch_max.max(1) * writers.max(1) * 4),
            queue,
        }
    }

    /// Stores the event durably (or finds it a duplicate).
    pub async fn submit(&self, event: IncomingEvent) -> Result<IngestOutcome, IntakeCommitError> {
        // Counted from now until its commit ends; dropped uncommitted (the sender hung up,
        // the writers stopped), it is uncounted all the same.
        let counted = Counted::new(&self.queue);
        self.batcher.submit(Waiting { event, counted }).await?
    }
}

/// One webhook on the intake queue's count while it lives.
struct Counted(IntakeQueue);

impl Counted {
    fn new(queue: &IntakeQueue) -> Self {
        queue.push();
        Counted(queue.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.pop(1);
    }
}

/// An event waiting for its intake transaction.
struct Waiting {
    event: IncomingEvent,
    counted: Counted,
}

/// The batch size a lingering intake batch stops waiting at. A Postgres intake commit took
/// 4-10 ms whether it held 4 events or 17 (`scripts/bench` scenario 6, docs/cluster.md), so a
/// batch this size costs about what a small one does.
const LINGER_FILL: usize = 32;

/// How intake is grouped: as many events as are waiting, up to `batch_max`, a small batch
/// lingering while another is being committed.
struct Intake {
    store: Arc<dyn Store>,
    supervisor: SupervisorHandle,
    batch_max: usize,
    linger: Linger,
}

#[async_trait]
impl Grouping for Intake {
    type Item = Waiting;
    type Outcome = Result<IngestOutcome, IntakeCommitError>;

    async fn limit(&self, _first: &Waiting, _waited: Duration) -> usize {
        self.batch_max
    }

    fn weight(&self, _: &Waiting) -> usize {
        1
    }

    fn linger(&self) -> Linger {
        self.linger
    }

    async fn commit(&self, items: Vec<Waiting>) -> Vec<Self::Outcome> {
        let (events, counted): (Vec<IncomingEvent>, Vec<Counted>) =
            items.into_iter().map(|w| (w.event, w.counted)).unzip();
        let started = Instant::now();
        let outcomes = ingest_isolating(self.store.as_ref(), &events).await;
        // Committed (or given up): applies need not wait for these any longer.
        drop(counted);
        metrics::histogram!("billsync_intake_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("billsync_intake_batch_size").record(events.len() as f64);
        self.supervisor.stored_here(
            events
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| matches!(o, Ok(IngestOutcome::Stored { .. })))
                .map(|(e, _)| e.connection_id.as_str()),
        );
        outcomes
    }
}

/// Commits `events` in one transaction; when the database refuses that transaction for
/// something in it (not because it is unreachable), the halves are committed apart, and so on
/// down to the event at fault, so one request's fault is never another's (README
/// "Connections that misbehave"). A store that is down fails the whole batch at once.
async fn ingest_isolating(
    store: &dyn Store,
    events: &[IncomingEvent],
) -> Vec<Result<IngestOutcome, IntakeCommitError>> {
    match store.ingest(events).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(e) if events.len() > 1 && e.is_about_the_data() => {
            tracing::warn!(error = %e, events = events.len(), "intake commit refused; committing the halves apart");
            let (a, b) = events.split_at(events.len() / 2);
            let mut outcomes = Box::pin(ingest_isolating(store, a)).await;
            outcomes.extend(Box::pin(ingest_isolating(store, b)).await);
            outcomes
        }
        Err(e) => {
            tracing::error!(error = %e, events = events.len(), "intake commit failed; answering 503");
            let reason = e.to_string();
            events
                .iter()
                .map(|_| Err(IntakeCommitError::Store(reason.clone())))
                .collect()
        }
    }
}
