//! Group commit for intake: concurrent webhooks are gathered into one transaction and all
//! acknowledged after its commit (docs/architecture.md, "Building blocks"). A request waits at most
//! for the commit in progress plus its own; under load batches grow by themselves.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::actors::committer::IntakeQueue;
use crate::actors::SupervisorHandle;
use crate::store::{IncomingEvent, IngestOutcome, Store};

type Reply = oneshot::Sender<Result<IngestOutcome, ()>>;

struct Submission {
    event: IncomingEvent,
    reply: Reply,
}

/// Submits events to the intake writers. Cloneable; the writers stop when every clone is gone.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Submission>,
    queue: IntakeQueue,
}

impl GroupCommit {
    /// Starts `writers` writer tasks committing up to `batch_max` events per transaction;
    /// `queue` counts the events waiting for one (applies yield to them).
    pub fn spawn(
        store: Arc<dyn Store>,
        supervisor: SupervisorHandle,
        writers: usize,
        batch_max: usize,
        queue: IntakeQueue,
    ) -> Self {
        let (tx, rx) = mpsc::channel(batch_max.max(1) * writers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(writer(
                store.clone(),
                supervisor.clone(),
                rx.clone(),
                batch_max.max(1),
                queue.clone(),
            ));
        }
        GroupCommit { tx, queue }
    }

    /// Stores the event durably (or finds it a duplicate). `Err` means it is not stored.
    pub async fn submit(&self, event: IncomingEvent) -> Result<IngestOutcome, ()> {
        let (reply, answer) = oneshot::channel();
        // Counted until a writer takes it; a request dropped before its send completed (the
        // sender hung up) is uncounted by the guard.
        self.queue.push();
        let uncount = Uncount(&self.queue);
        if self.tx.send(Submission { event, reply }).await.is_err() {
            return Err(());
        }
        // From here the writer that commits it uncounts it.
        std::mem::forget(uncount);
        answer.await.map_err(|_| ())?
    }
}

/// Takes one webhook off the intake queue's count when dropped.
struct Uncount<'a>(&'a IntakeQueue);

impl Drop for Uncount<'_> {
    fn drop(&mut self) {
        self.0.pop(1);
    }
}

async fn writer(
    store: Arc<dyn Store>,
    supervisor: SupervisorHandle,
    rx: Arc<Mutex<mpsc::Receiver<Submission>>>,
    batch_max: usize,
    queue: IntakeQueue,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < batch_max {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
        }
        let (events, replies): (Vec<IncomingEvent>, Vec<Reply>) =
            batch.into_iter().map(|s| (s.event, s.reply)).unzip();
        let started = Instant::now();
        let outcomes = ingest_isolating(store.as_ref(), &events).await;
        queue.pop(events.len());
        metrics::histogram!("billsync_intake_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("billsync_intake_batch_size").record(events.len() as f64);
        supervisor.stored_here(
            events
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| matches!(o, Ok(IngestOutcome::Stored { .. })))
                .map(|(e, _)| e.connection_id.as_str()),
        );
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// Commits `events` in one transaction; when the database refuses that transaction for
/// something in it (not because it is unreachable), the halves are committed apart, and so on
/// down to the event at fault, so one request's fault is never another's (CONTRACT
/// "Connections that misbehave"). A store that is down fails the whole batch at once.
async fn ingest_isolating(
    store: &dyn Store,
    events: &[IncomingEvent],
) -> Vec<Result<IngestOutcome, ()>> {
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
            events.iter().map(|_| Err(())).collect()
        }
    }
}
