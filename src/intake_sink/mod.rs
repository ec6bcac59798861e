//! Where a verified webhook goes before its 200 (`BILLSYNC_INTAKE`, docs/sqs-intake.md). The webhook
//! handler (`http::intake`) verifies and hands a [`Verified`] event to the node's
//! [`IntakeSink`]: `direct` commits it into `raw_events` + `inbox` through the group commit;
//! `sqs` sends it to the intake queue ([`message`] is the format) and answers once SQS has
//! it, and the workers of every node ([`sqs`]) move queued events into the store afterwards,
//! idempotently, deleting messages only after the commit.

pub mod message;
#[cfg(feature = "sqs")]
pub mod sqs;

use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actors::SupervisorHandle;
use crate::config::{Config, ConfigError};
use crate::connections::Connections;
use crate::group_commit::GroupCommit;
use crate::store::{IncomingEvent, IngestOutcome, RawBody, Store, StoreError};

/// Why an event was not taken, or a queued message could not be moved.
#[derive(Debug, Error)]
pub enum IntakeError {
    #[error("cannot compress the body: {0}")]
    Seal(#[from] StoreError),
    /// The group commit did not store it (it logged why).
    #[error("the store did not take the event")]
    NotStored,
    #[error("SQS: {0}")]
    Sqs(String),
    /// A queued message that is not an intake message of this format.
    #[error("not an intake message: {0}")]
    Message(String),
}

/// A webhook that passed verification, as received.
#[derive(Debug, Clone)]
pub struct Verified {
    pub connection_id: String,
    pub provider_event_id: String,
    pub event_type: String,
    /// Microseconds since the epoch.
    pub received_at: i64,
    pub body: Bytes,
}

/// What became of a submitted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    Stored,
    /// Already stored (same connection and provider event id).
    Duplicate,
    /// On the SQS queue; whether it is a duplicate is found when it is moved.
    Queued,
}

/// The node's intake path. Cheap to clone.
#[derive(Clone)]
pub enum IntakeSink {
    Direct(GroupCommit),
    #[cfg(feature = "sqs")]
    Sqs {
        queue: Arc<sqs::SqsQueue>,
        /// For events too large for an SQS message.
        direct: GroupCommit,
    },
}

impl IntakeSink {
    /// Makes the configured sink; with `sqs`, also starts this node's queue workers and the
    /// dead-letter gauge, which stop on `cancel` (their handles are returned to be awaited).
    pub async fn start(
        config: &Config,
        direct: GroupCommit,
        store: Arc<dyn Store>,
        connections: Arc<Connections>,
        supervisor: SupervisorHandle,
        cancel: CancellationToken,
    ) -> Result<(IntakeSink, Vec<JoinHandle<()>>), ConfigError> {
        let Some(url) = config.sqs_intake_queue()? else {
            return Ok((IntakeSink::Direct(direct), Vec::new()));
        };
        #[cfg(feature = "sqs")]
        {
            let queue = Arc::new(sqs::SqsQueue::connect(url).await);
            let tasks = sqs::spawn_workers(queue.clone(), store, connections, supervisor, cancel);
            Ok((IntakeSink::Sqs { queue, direct }, tasks))
        }
        #[cfg(not(feature = "sqs"))]
        {
            // `sqs_intake_queue` refuses `sqs` in a build without the feature.
            let _ = (url, store, connections, supervisor, cancel);
            unreachable!("sqs intake configured in a build without the sqs feature")
        }
    }

    /// Takes the event: `Ok` once it is durable (in the store, or accepted by SQS).
    pub async fn submit(&self, event: Verified) -> Result<Accepted, IntakeError> {
        match self {
            IntakeSink::Direct(group) => store_directly(group, &event).await,
            #[cfg(feature = "sqs")]
            IntakeSink::Sqs { queue, direct } => {
                let message = message::QueuedEvent::new(&event).encode();
                if message.len() > sqs::MAX_MESSAGE_BYTES {
                    metrics::counter!("billsync_sqs_too_large_total").increment(1);
                    return store_directly(direct, &event).await;
                }
                queue.send(&event, message).await?;
                Ok(Accepted::Queued)
            }
        }
    }
}

/// Seals the body on the request's task (the writer commits many requests at once) and
/// commits it through the group commit.
async fn store_directly(group: &GroupCommit, event: &Verified) -> Result<Accepted, IntakeError> {
    let incoming = IncomingEvent {
        connection_id: event.connection_id.clone(),
        provider_event_id: event.provider_event_id.clone(),
        event_type: event.event_type.clone(),
        source: "webhook",
        received_at: event.received_at,
        body: RawBody::seal(&event.body)?,
    };
    match group.submit(incoming).await {
        Ok(IngestOutcome::Stored { .. }) => Ok(Accepted::Stored),
        Ok(IngestOutcome::Duplicate) => Ok(Accepted::Duplicate),
        Err(e) => {
            tracing::debug!(error = %e, "webhook not stored");
            Err(IntakeError::NotStored)
        }
    }
}
