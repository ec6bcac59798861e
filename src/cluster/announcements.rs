//! Announcements from peers, acted on: new inbox rows wake the connection's actor (the
//! supervisor drops it when another node owns the connection), an admin change makes every
//! node forget its cached copy of the connection and the owner look at its jobs and state
//! again, a membership change starts a lease round. The inbox scan each second stays the
//! backstop for anything missed; a lapsed subscription triggers it at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::actors::SupervisorHandle;
use crate::connections::Connections;
use crate::store::{Announcement, Coordination};

/// Follows the cluster's announcements until `cancel` fires.
pub async fn follow(
    coordination: Arc<dyn Coordination>,
    supervisor: SupervisorHandle,
    connections: Arc<Connections>,
    lease_round: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut subscription = loop {
        match coordination.subscribe().await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for cluster announcements; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    loop {
        let announcement = tokio::select! {
            _ = cancel.cancelled() => return,
            a = subscription.recv() => match a {
                Some(a) => a,
                None => return,
            },
        };
        match announcement {
            Announcement::Inbox(id) => supervisor.work_for([id.as_str()]),
            Announcement::Admin(id) => {
                connections.forget(&id);
                supervisor.job_for(&id);
                supervisor.work_for([id.as_str()]);
            }
            Announcement::Membership => lease_round.notify_one(),
            Announcement::Lapsed => {
                supervisor.rescan();
                lease_round.notify_one();
                connections.refresh_cached().await;
            }
        }
    }
}
