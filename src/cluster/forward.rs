//! Intake's rows reach their owner: after an intake commit (HTTP group commit or an SQS
//! worker), the supervisor hands over the connections whose new inbox rows another node owns,
//! and this task announces them (`Coordination::announce_inbox`, a Postgres `NOTIFY` sent
//! after the commit, never inside it). Connections this node owns are woken directly. What a
//! lost announcement misses, the owner's inbox scan finds within a second.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::Coordination;

/// Sends announcements for connections owned elsewhere; cheap to clone, never blocks.
#[derive(Clone)]
pub struct Forwarder {
    tx: mpsc::UnboundedSender<Vec<String>>,
}

impl Forwarder {
    /// Starts the announcing task; it ends on `cancel`.
    pub fn spawn(coordination: Arc<dyn Coordination>, cancel: CancellationToken) -> Forwarder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(announce(coordination, rx, cancel));
        Forwarder { tx }
    }

    /// Queues announcements for these connections (stored here, owned elsewhere).
    pub fn send(&self, connection_ids: Vec<String>) {
        if !connection_ids.is_empty() {
            // Closed only once the node is stopping; the owners' scans cover the rest.
            let _ = self.tx.send(connection_ids);
        }
    }
}

/// One statement at a time, with everything queued meanwhile folded into it: under load a
/// few announcements a second carry every connection written.
async fn announce(
    coordination: Arc<dyn Coordination>,
    mut rx: mpsc::UnboundedReceiver<Vec<String>>,
    cancel: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            ids = rx.recv() => match ids {
                Some(ids) => ids,
                None => return,
            },
        };
        let mut ids: BTreeSet<String> = first.into_iter().collect();
        while let Ok(more) = rx.try_recv() {
            ids.extend(more);
        }
        let ids: Vec<String> = ids.into_iter().collect();
        match coordination.announce_inbox(&ids).await {
            Ok(()) => {
                metrics::counter!("billsync_inbox_announcements_total").increment(ids.len() as u64)
            }
            // The owners' inbox scans pick the rows up within a second.
            Err(e) => tracing::debug!(error = %e, "cannot announce new inbox rows to their owners"),
        }
    }
}
