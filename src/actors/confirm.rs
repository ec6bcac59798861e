//! Confirmations (docs/architecture.md, invariant 6): every object a webhook changed is read back
//! from the provider API, with backoff, until the API agrees or shows something newer. The object
//! is `pending` until then; after the confirmation window it is `failed`, with a metric and a log.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::apply::{decide_each, status_write, Sourced};
use super::fetch::{FetchError, Fetcher};
use super::limiter::Priority;
use crate::connections::LiveConnection;
use crate::group_commit::Committer;
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::model::version::Decision;
use crate::model::{ObjectType, Observation, ReconStatus};
use crate::store::{Refetch, Store, StoreError};

type Key = (ObjectType, String);

/// A confirmation read coming back from a child task.
pub struct ConfirmResult {
    refetch: Refetch,
    outcome: Result<super::fetch::Fetched, FetchError>,
}

/// The confirmations a pair actor has in flight.
pub struct Confirmer {
    in_flight: HashSet<Key>,
    max_in_flight: usize,
    window: Duration,
}

impl Confirmer {
    pub fn new(max_in_flight: usize, window: Duration) -> Self {
        Confirmer {
            in_flight: HashSet::new(),
            max_in_flight: max_in_flight.max(1),
            window,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Starts reads for due confirmations that are not in flight yet.
    pub async fn dispatch_due(
        &mut self,
        store: &dyn Store,
        connection_id: &str,
        fetcher: &Arc<Fetcher>,
        results: &mpsc::Sender<Box<ConfirmResult>>,
    ) {
        let room = self.max_in_flight.saturating_sub(self.in_flight.len());
        if room == 0 {
            return;
        }
        let due = match store
            .due_refetches(
                connection_id,
                now_micros(),
                (room + self.in_flight.len()) as i64,
            )
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(connection_id, error = %e, "cannot read due confirmations");
                return;
            }
        };
        for refetch in due {
            let key = (refetch.object_type, refetch.provider_id.clone());
            if self.in_flight.len() >= self.max_in_flight || !self.in_flight.insert(key) {
                continue;
            }
            let request = fetcher
                .provider
                .fetch_request(refetch.object_type, &refetch.provider_id);
            let (fetcher, results) = (fetcher.clone(), results.clone());
            tokio::spawn(async move {
                let (outcome, _) = fetcher.get_whole(&request, Priority::Refetch).await;
                let _ = results
                    .send(Box::new(ConfirmResult { refetch, outcome }))
                    .await;
            });
        }
    }

    /// Forgets reads that came back while the connection was paused: their rows stay due in
    /// `refetches`, so they are asked again once it is active.
    pub fn set_aside(&mut self, results: &[ConfirmResult]) {
        for r in results {
            self.in_flight
                .remove(&(r.refetch.object_type, r.refetch.provider_id.clone()));
        }
    }

    /// Decides returned reads in one batch: confirmed, newer, or not yet (rescheduled).
    pub async fn on_results(
        &mut self,
        store: &dyn Store,
        committer: &Committer,
        conn: &LiveConnection,
        results: Vec<ConfirmResult>,
    ) {
        let provider = conn.provider;
        let now = now_micros();
        let lag = provider.api_lag_allowance().as_micros() as i64;
        let mut sourced = Vec::new();
        let mut read = Vec::new();
        let mut unread = Vec::new();
        for r in results {
            self.in_flight
                .remove(&(r.refetch.object_type, r.refetch.provider_id.clone()));
            let observed = match r.outcome {
                Ok(f) => provider
                    .parse_object(&f.body)
                    .and_then(|v| provider.observe_object(&v, f.read_at))
                    .map(|o| (o, json!({"kind": "api", "request": f.request, "read_at": micros_to_rfc3339(f.read_at)})))
                    .map_err(|e| e.to_string()),
                // Not found by a webhook's handle: which stored object that is, is unknown.
                Err(FetchError::Refused { status: 404, .. })
                    if provider.is_handle(&r.refetch.provider_id) =>
                {
                    Err("no object answers to this handle (yet)".to_owned())
                }
                // Gone at the provider: a tombstone, ordered like any API read.
                Err(FetchError::Refused { status: 404, .. }) => Ok((
                    Some(Observation {
                        object_type: r.refetch.object_type,
                        provider_id: r.refetch.provider_id.clone(),
                        data: Value::Null,
                        deleted: true,
                        order_key: now - lag,
                        tie_rank: i64::MAX,
                        provider_updated_at: now,
                        carried: &[],
                    }),
                    json!({"kind": "api", "answer": 404, "read_at": micros_to_rfc3339(now)}),
                )),
                Err(e) => Err(e.to_string()),
            };
            match observed {
                Ok((Some(observation), source)) => {
                    sourced.push(Sourced {
                        observation,
                        source,
                        from_api: true,
                        drift: false,
                        replay: false,
                    });
                    read.push(r.refetch);
                }
                Ok((None, _)) => {
                    unread.push((r.refetch, "the API answer maps to nothing".to_owned()))
                }
                Err(e) => unread.push((r.refetch, e)),
            }
        }
        if !sourced.is_empty() {
            if let Err(e) = self
                .apply(store, committer, conn, &sourced, &read, now)
                .await
            {
                tracing::warn!(connection_id = %conn.record.id, error = %e, "cannot apply confirmations");
                unread.extend(read.into_iter().map(|r| (r, e.to_string())));
            }
        }
        for (refetch, error) in unread {
            tracing::debug!(connection_id = %conn.record.id, object = ?refetch.provider_id, ?error, "confirmation read failed");
            self.not_yet(store, committer, conn, refetch, now).await;
        }
    }

    async fn apply(
        &mut self,
        store: &dyn Store,
        committer: &Committer,
        conn: &LiveConnection,
        sourced: &[Sourced],
        read: &[Refetch],
        now: i64,
    ) -> Result<(), StoreError> {
        let (mut batch, decisions) = decide_each(store, conn, sourced).await?;
        let mut later = Vec::new();
        for (refetch, decision) in read.iter().zip(&decisions) {
            if *decision == Decision::Older {
                // The API has not caught up with the webhook yet.
                later.push(refetch.clone());
            } else {
                batch.settled_refetches.push(refetch.clone());
                let age = (now - refetch.first_seen_at).max(0) as f64 / 1e6;
                metrics::histogram!("billsync_convergence_seconds", "provider" => conn.record.provider.as_str())
                    .record(age);
            }
        }
        committer.apply(batch).await?;
        if later.is_empty() {
            return Ok(());
        }
        // Where reads are ordered by read time, the next one that can confirm is known.
        let keys: Vec<Key> = later
            .iter()
            .map(|r| (r.object_type, r.provider_id.clone()))
            .collect();
        let current = store.current_objects(&conn.record.id, &keys).await?;
        for mut refetch in later {
            let earliest = current
                .iter()
                .find(|o| {
                    o.object_type == refetch.object_type && o.provider_id == refetch.provider_id
                })
                .and_then(|o| conn.provider.earliest_confirming_read(o.order_key))
                .filter(|at| *at > now)
                .filter(|at| at - refetch.first_seen_at <= self.window.as_micros() as i64);
            match earliest {
                Some(at) => {
                    refetch.attempts += 1;
                    refetch.due_at = at;
                    if let Err(e) = store.reschedule_refetch(&conn.record.id, &refetch).await {
                        tracing::warn!(connection_id = %conn.record.id, error = %e, "cannot reschedule confirmation");
                    }
                }
                None => self.not_yet(store, committer, conn, refetch, now).await,
            }
        }
        Ok(())
    }

    /// Reschedules with backoff, or marks the object `failed` once the window has passed.
    async fn not_yet(
        &mut self,
        store: &dyn Store,
        committer: &Committer,
        conn: &LiveConnection,
        mut refetch: Refetch,
        now: i64,
    ) {
        let provider = conn.record.provider.as_str();
        if now - refetch.first_seen_at > self.window.as_micros() as i64 {
            metrics::counter!("billsync_confirmations_failed_total", "provider" => provider,
                "kind" => refetch.object_type.as_str())
            .increment(1);
            tracing::error!(connection_id = %conn.record.id, object_type = refetch.object_type.as_str(),
                object = ?refetch.provider_id, attempts = refetch.attempts,
                "object could not be confirmed with the provider API within the window; marked failed \
                 (check the connection's API key and the provider's status, then POST .../resync)");
            if let Err(e) = self.fail(store, committer, conn, &refetch).await {
                tracing::warn!(connection_id = %conn.record.id, error = %e, "cannot mark object failed");
            }
            return;
        }
        refetch.attempts += 1;
        let base = 2.0 * f64::from(1u32 << refetch.attempts.clamp(0, 5) as u32);
        let delay = base.min(60.0) * rand::thread_rng().gen_range(0.75..1.25);
        refetch.due_at = now + (delay * 1e6) as i64;
        if let Err(e) = store.reschedule_refetch(&conn.record.id, &refetch).await {
            tracing::warn!(connection_id = %conn.record.id, error = %e, "cannot reschedule confirmation");
        }
    }

    async fn fail(
        &self,
        store: &dyn Store,
        committer: &Committer,
        conn: &LiveConnection,
        refetch: &Refetch,
    ) -> Result<(), StoreError> {
        let key = (refetch.object_type, refetch.provider_id.clone());
        let current = store
            .current_objects(&conn.record.id, std::slice::from_ref(&key))
            .await?;
        let (mut batch, _) = decide_each(store, conn, &[]).await?;
        if let Some(o) = current.first() {
            batch.writes.push(status_write(
                conn,
                o,
                ReconStatus::Failed,
                "confirmation_window_passed",
            ));
        }
        batch.settled_refetches.push(refetch.clone());
        committer.apply(batch).await
    }
}
