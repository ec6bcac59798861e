//! SQS intake (`BILLSYNC_INTAKE=sqs`): the sender the webhook handler answers after, and the
//! workers every node runs that move queued webhooks into `raw_events` + `inbox`.
//!
//! A worker receives up to 10 messages, stores them in one transaction (`Store::ingest` is
//! idempotent on connection + provider event id, so a message seen twice is stored once),
//! wakes the connections' actors, and only then deletes the messages. While the store is
//! unreachable it keeps the batch it holds, retrying and extending the messages'
//! visibility, and receives nothing more: the queue absorbs the outage without counting
//! receives towards the redrive policy. A message that cannot be read, names an unknown
//! connection, or is refused by the database for its own data is made visible again at once
//! and left undeleted, so the queue's redrive policy moves it to the dead-letter queue.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    QueueAttributeName,
};
use aws_sdk_sqs::Client;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::message::QueuedEvent;
use super::{IntakeError, Verified};
use crate::actors::SupervisorHandle;
use crate::connections::Connections;
use crate::store::{IncomingEvent, IngestOutcome, Store, StoreError};

/// Largest message body sent; a larger event is stored directly. 256 KiB is SQS's classic
/// limit (and a queue's default `MaximumMessageSize` before 2025).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Workers per node.
const WORKERS: usize = 2;

/// Messages per receive (SQS's maximum).
const BATCH: i32 = 10;

/// Long-poll wait per receive. Short, so a worker sees its node's shutdown within it.
const WAIT_SECS: i32 = 2;

/// How long received messages stay hidden from other workers; extended while a batch waits
/// for the store. A node that dies holding a batch delays it by at most this much.
const VISIBILITY_SECS: i32 = 30;

/// Pause between attempts while the store or SQS is unreachable.
const RETRY: Duration = Duration::from_secs(1);

/// How often the dead-letter queue's depth is read.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

/// An SQS client from the standard AWS environment (`crate::aws_env`).
pub async fn sdk_client() -> Client {
    Client::new(&crate::aws_env::load(Duration::from_secs(WAIT_SECS as u64 + 8)).await)
}

/// The intake queue and the client that reaches it.
pub struct SqsQueue {
    client: Client,
    url: String,
    fifo: bool,
}

impl SqsQueue {
    /// The intake queue at `url`, reached with [`sdk_client`].
    pub async fn connect(url: &str) -> SqsQueue {
        SqsQueue {
            client: sdk_client().await,
            url: url.to_owned(),
            fifo: url.ends_with(".fifo"),
        }
    }

    /// Sends one event's message; `Ok` once SQS has accepted it.
    pub async fn send(&self, event: &Verified, message: String) -> Result<(), IntakeError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message);
        if self.fifo {
            // A FIFO queue drops a resend of the same event within its 5-minute window.
            let key = Sha256::digest(
                format!("{}\n{}", event.connection_id, event.provider_event_id).as_bytes(),
            );
            request = request
                .message_group_id(&event.connection_id)
                .message_deduplication_id(hex::encode(key));
        }
        match request.send().await {
            Ok(_) => {
                metrics::counter!("billsync_sqs_sent_total").increment(1);
                Ok(())
            }
            Err(e) => {
                metrics::counter!("billsync_sqs_send_errors_total").increment(1);
                let e = sdk_error(e);
                tracing::warn!(error = %e, "SQS did not take a webhook; answering 503");
                Err(e)
            }
        }
    }

    async fn receive(&self) -> Result<Vec<Message>, IntakeError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(WAIT_SECS)
            .visibility_timeout(VISIBILITY_SECS)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Deletes messages by receipt handle (at most 10); returns how many SQS deleted.
    async fn delete(&self, receipts: &[&str]) -> Result<usize, IntakeError> {
        if receipts.is_empty() {
            return Ok(0);
        }
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*r)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IntakeError::Sqs(e.to_string()))?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out.successful.len())
    }

    /// Hides messages for `secs` more (0: visible again at once). Best effort: a message
    /// whose change fails reappears at its old time.
    async fn set_visibility(&self, receipts: &[&str], secs: i32) {
        if receipts.is_empty() {
            return;
        }
        let entries = receipts.iter().enumerate().filter_map(|(i, r)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(*r)
                .visibility_timeout(secs)
                .build()
                .ok()
        });
        let sent = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries.collect()))
            .send()
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %DisplayErrorContext(&e), "cannot change SQS message visibility");
        }
    }

    /// The URL of the dead-letter queue the intake queue's redrive policy names, if any.
    async fn dead_letter_queue(&self) -> Result<Option<String>, IntakeError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(sdk_error)?
            .attributes
            .unwrap_or_default();
        let Some(policy) = attributes.get(&QueueAttributeName::RedrivePolicy) else {
            return Ok(None);
        };
        let policy: RedrivePolicy = serde_json::from_str(policy)
            .map_err(|e| IntakeError::Sqs(format!("RedrivePolicy is not readable: {e}")))?;
        // arn:aws:sqs:REGION:ACCOUNT:NAME
        let parts: Vec<&str> = policy.dead_letter_target_arn.split(':').collect();
        let [_, _, _, _, account, name] = parts[..] else {
            return Err(IntakeError::Sqs(format!(
                "deadLetterTargetArn `{}` is not a queue ARN",
                policy.dead_letter_target_arn
            )));
        };
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out.queue_url)
    }

    async fn depth(&self, url: &str) -> Result<u64, IntakeError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(sdk_error)?
            .attributes
            .unwrap_or_default();
        attributes
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| IntakeError::Sqs("no ApproximateNumberOfMessages".into()))
    }
}

/// An SDK error with its causes, which its own `Display` leaves out.
fn sdk_error(e: impl std::error::Error) -> IntakeError {
    IntakeError::Sqs(DisplayErrorContext(&e).to_string())
}

/// The part of a queue's `RedrivePolicy` attribute (a JSON document) read here.
#[derive(Deserialize)]
struct RedrivePolicy {
    #[serde(rename = "deadLetterTargetArn")]
    dead_letter_target_arn: String,
}

/// What the workers of one node share.
struct Mover {
    queue: Arc<SqsQueue>,
    store: Arc<dyn Store>,
    connections: Arc<Connections>,
    supervisor: SupervisorHandle,
    /// Set while the store is unreachable: its warning is logged once per outage.
    store_down: AtomicBool,
    /// Set while SQS answers receives with errors, likewise.
    sqs_down: AtomicBool,
}

/// Starts this node's workers and the dead-letter gauge; all stop on `cancel`.
pub fn spawn_workers(
    queue: Arc<SqsQueue>,
    store: Arc<dyn Store>,
    connections: Arc<Connections>,
    supervisor: SupervisorHandle,
    cancel: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mover = Arc::new(Mover {
        queue: queue.clone(),
        store,
        connections,
        supervisor,
        store_down: AtomicBool::new(false),
        sqs_down: AtomicBool::new(false),
    });
    let mut tasks: Vec<JoinHandle<()>> = (0..WORKERS)
        .map(|_| tokio::spawn(worker(mover.clone(), cancel.clone())))
        .collect();
    tasks.push(tokio::spawn(dead_letter_gauge(queue, cancel)));
    tasks
}

/// Receives and moves batches until `cancel`; a batch in hand is finished or abandoned (its
/// messages reappear) first.
async fn worker(mover: Arc<Mover>, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        let messages = match mover.queue.receive().await {
            Ok(m) => {
                if mover.sqs_down.swap(false, Ordering::Relaxed) {
                    tracing::info!("SQS intake queue answers again");
                }
                m
            }
            Err(e) => {
                metrics::counter!("billsync_sqs_receive_errors_total").increment(1);
                if !mover.sqs_down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "cannot receive from the SQS intake queue; retrying");
                }
                pause(&cancel, RETRY).await;
                continue;
            }
        };
        if !messages.is_empty() {
            mover.move_batch(messages, &cancel).await;
        }
    }
}

async fn pause(cancel: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// A decoded message in a batch.
struct Held {
    receipt: String,
    event: IncomingEvent,
}

/// What became of one event of a batch.
enum Fate {
    Moved(IngestOutcome),
    /// Left for the dead-letter queue, with why.
    Refused(String),
}

impl Mover {
    async fn move_batch(&self, messages: Vec<Message>, cancel: &CancellationToken) {
        let mut held = Vec::new();
        let mut poison: Vec<String> = Vec::new();
        for m in messages {
            let Some(receipt) = m.receipt_handle else {
                continue;
            };
            match QueuedEvent::decode(m.body.as_deref().unwrap_or_default()) {
                Ok(event) => held.push(Held { receipt, event }),
                Err(e) => {
                    tracing::warn!(message_id = ?m.message_id, error = %e, "SQS intake message left for the dead-letter queue");
                    poison.push(receipt);
                }
            }
        }
        let fates = loop {
            match self.commit(&held).await {
                Ok(fates) => break fates,
                Err(e) => {
                    metrics::counter!("billsync_sqs_store_retries_total").increment(1);
                    if !self.store_down.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "store unreachable: SQS intake messages stay queued until it returns");
                    }
                }
            }
            let receipts: Vec<&str> = held.iter().map(|h| h.receipt.as_str()).collect();
            pause(cancel, RETRY).await;
            if cancel.is_cancelled() {
                // Visible again at once, for a node that stays.
                self.queue.set_visibility(&receipts, 0).await;
                return;
            }
            // Kept hidden while this worker waits (extended every retry: cheap, and a
            // batch held longer than the timeout would otherwise go to another worker
            // and count a receive towards the redrive policy).
            self.queue.set_visibility(&receipts, VISIBILITY_SECS).await;
        };
        if self.store_down.swap(false, Ordering::Relaxed) {
            tracing::info!("store reachable again: moving SQS intake messages");
        }
        self.supervisor.stored_here(
            held.iter()
                .zip(&fates)
                .filter(|(_, f)| matches!(f, Fate::Moved(IngestOutcome::Stored { .. })))
                .map(|(h, _)| h.event.connection_id.as_str()),
        );
        let mut done = Vec::new();
        for (h, fate) in held.iter().zip(&fates) {
            match fate {
                Fate::Moved(_) => done.push(h.receipt.as_str()),
                Fate::Refused(why) => {
                    tracing::warn!(connection_id = ?h.event.connection_id, event_id = ?h.event.provider_event_id, reason = %why, "SQS intake message left for the dead-letter queue");
                    poison.push(h.receipt.clone());
                }
            }
        }
        match self.queue.delete(&done).await {
            Ok(n) => metrics::counter!("billsync_sqs_moved_total").increment(n as u64),
            // Stored already: a redelivery is a duplicate and deleted then.
            Err(e) => tracing::warn!(error = %e, "cannot delete moved SQS intake messages"),
        }
        if !poison.is_empty() {
            metrics::counter!("billsync_sqs_poison_total").increment(poison.len() as u64);
            // Visible again at once: the redrive policy counts its receives sooner.
            let receipts: Vec<&str> = poison.iter().map(String::as_str).collect();
            self.queue.set_visibility(&receipts, 0).await;
        }
    }

    /// Stores the batch: one transaction, or smaller ones down to the event at fault when the
    /// database refuses the transaction for something in it. `Err` when the store (or, for a
    /// connection not cached, the connection registry) is unreachable.
    async fn commit(&self, held: &[Held]) -> Result<Vec<Fate>, StoreError> {
        let mut fates: Vec<Option<Fate>> = Vec::with_capacity(held.len());
        let mut known = HashSet::new();
        for h in held {
            let id = h.event.connection_id.as_str();
            if known.contains(id) {
                fates.push(None);
                continue;
            }
            match self.connections.get(id).await {
                Ok(Some(_)) => {
                    known.insert(id);
                    fates.push(None);
                }
                Ok(None) => fates.push(Some(Fate::Refused("unknown connection".into()))),
                Err(crate::connections::ConnectionError::Store(e)) => return Err(e),
                Err(e) => fates.push(Some(Fate::Refused(e.to_string()))),
            }
        }
        let pending: Vec<usize> = (0..held.len()).filter(|&i| fates[i].is_none()).collect();
        let events: Vec<IncomingEvent> = pending.iter().map(|&i| held[i].event.clone()).collect();
        let outcomes = ingest_isolating(self.store.as_ref(), &events).await?;
        for (i, fate) in pending.into_iter().zip(outcomes) {
            fates[i] = Some(fate);
        }
        Ok(fates
            .into_iter()
            .map(|f| f.unwrap_or_else(|| Fate::Refused("not stored".into())))
            .collect())
    }
}

/// One transaction for `events`, split in halves while the database refuses it for its
/// data; a store that is down fails the whole batch (`Err`).
async fn ingest_isolating(
    store: &dyn Store,
    events: &[IncomingEvent],
) -> Result<Vec<Fate>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    match store.ingest(events).await {
        Ok(outcomes) => Ok(outcomes.into_iter().map(Fate::Moved).collect()),
        Err(e) if refused_for_its_data(&e) && events.len() == 1 => {
            Ok(vec![Fate::Refused(e.to_string())])
        }
        Err(e) if refused_for_its_data(&e) => {
            let (a, b) = events.split_at(events.len() / 2);
            let mut fates = Box::pin(ingest_isolating(store, a)).await?;
            fates.extend(Box::pin(ingest_isolating(store, b)).await?);
            Ok(fates)
        }
        Err(e) => Err(e),
    }
}

/// Whether the database refused a transaction for what it holds. Narrower than
/// `StoreError::is_about_the_data`: a database that is shutting down, out of connections or
/// resolving a deadlock also answers with an error code, and a message refused for that would
/// go to the dead-letter queue after a few receives instead of waiting for the store.
fn refused_for_its_data(e: &StoreError) -> bool {
    if !e.is_about_the_data() {
        return false;
    }
    let StoreError::Database(sqlx::Error::Database(db)) = e else {
        return true;
    };
    let code = db.code().unwrap_or_default();
    // Postgres SQLSTATE classes: connection exception, transaction rollback, insufficient
    // resources, operator intervention, system error. SQLite: BUSY, LOCKED.
    let transient = ["08", "40", "53", "57", "58"]
        .iter()
        .any(|class| code.starts_with(class))
        || matches!(code.as_ref(), "5" | "6" | "517" | "262");
    !transient
}

/// Publishes `billsync_sqs_dead_letter_depth{queue=NAME}`: the messages in the dead-letter
/// queue the intake queue's redrive policy names (looked up again until one is found).
async fn dead_letter_gauge(queue: Arc<SqsQueue>, cancel: CancellationToken) {
    let mut dlq: Option<String> = None;
    let mut warned = false;
    let mut tick = tokio::time::interval(GAUGE_EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if dlq.is_none() {
            match queue.dead_letter_queue().await {
                Ok(Some(url)) => dlq = Some(url),
                Ok(None) if !warned => {
                    warned = true;
                    tracing::warn!("the SQS intake queue has no redrive policy: a message that cannot be stored is retried for ever (docs/operations.md)");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the intake queue's redrive policy")
                }
            }
        }
        if let Some(url) = &dlq {
            match queue.depth(url).await {
                Ok(n) => {
                    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
                    metrics::gauge!("billsync_sqs_dead_letter_depth", "queue" => name).set(n as f64)
                }
                Err(e) => tracing::debug!(error = %e, "cannot read the dead-letter queue's depth"),
            }
        }
    }
}
