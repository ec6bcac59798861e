//! Pair actor: one per connection (merchant x provider), the only writer of its objects
//! (docs/architecture.md, invariants 3 to 5). It applies the connection's inbox rows in order and
//! runs its pull jobs, whose network I/O happens in child tasks that report back as messages.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::apply::{decide_batch, reason_label, Sourced};
use super::confirm::{ConfirmResult, Confirmer};
use super::fetch::{FaultLog, Fetcher, TokenCache};
use super::limiter::{ConnectionLimiter, ProviderLimits};
use super::pull::{PageResult, PullDriver, MAX_PAGES_PER_BATCH};
use super::sweep::{self, SweepResult};
use crate::connections::{Connections, LiveConnection};
use crate::group_commit::Committer;
use crate::model::time::now_micros;
use crate::model::version::{announces_creation, CREATED_RANK};
use crate::model::ReconStatus;
use crate::providers::ParseError;
use crate::store::{ConnectionState, InboxItem, Refetch, Store, StoreError};

/// What the supervisor tells an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    /// The connection's inbox may hold work.
    Wake,
    /// A pull job was started (or must be resumed).
    Jobs,
    /// The reconciliation sweep is due.
    Sweep,
}

/// Tunables and shared services of all pair actors on a node.
#[derive(Clone)]
pub struct PairSettings {
    /// Inbox rows applied per transaction.
    pub batch: i64,
    pub idle: Duration,
    pub max_attempts: i64,
    pub http: reqwest::Client,
    pub provider_limits: Arc<ProviderLimits>,
    pub request_timeout: Duration,
    /// Read back every object a webhook changed from the provider API.
    pub confirm: bool,
    /// Delay before the first confirmation read.
    pub confirm_after: Duration,
    /// After this, an unconfirmed object is `failed`.
    pub confirm_window: Duration,
    /// Sweep interval of connections that name none.
    pub reconcile_interval: Duration,
    /// Commits apply batches, grouping concurrent ones.
    pub committer: Committer,
}

impl PairSettings {
    /// Defaults, committing through `committer`.
    pub fn new(committer: Committer) -> Self {
        PairSettings {
            batch: 256,
            idle: Duration::from_secs(30),
            max_attempts: 10,
            http: reqwest::Client::new(),
            provider_limits: Arc::new(ProviderLimits::default()),
            request_timeout: Duration::from_secs(10),
            confirm: true,
            confirm_after: Duration::from_secs(2),
            confirm_window: Duration::from_secs(15 * 60),
            reconcile_interval: Duration::from_secs(300),
            committer,
        }
    }
}

/// Optimistic-write retries before a batch is put back for later.
const CONFLICT_RETRIES: usize = 3;

pub struct PairActor {
    connection_id: String,
    generation: u64,
    store: Arc<dyn Store>,
    connections: Arc<Connections>,
    settings: PairSettings,
}

impl PairActor {
    pub fn new(
        connection_id: String,
        generation: u64,
        store: Arc<dyn Store>,
        connections: Arc<Connections>,
        settings: PairSettings,
    ) -> Self {
        PairActor {
            connection_id,
            generation,
            store,
            connections,
            settings,
        }
    }

    /// Serves messages until the supervisor drops the mailbox or `cancel` fires. Reports
    /// idleness (no pull job, nothing for a while) so the supervisor can let it go.
    pub async fn run(
        self,
        mut mailbox: mpsc::Receiver<Msg>,
        idle_tx: mpsc::UnboundedSender<(String, u64)>,
        cancel: CancellationToken,
    ) {
        let Some(conn) = self.live().await else {
            return;
        };
        let rate = conn.request_rate();
        let mut fetcher = self.fetcher(&conn);
        // The settings the fetcher was built from: a PATCH (or pause/resume) changes them.
        let mut built_from = conn.record.updated_at;
        let mut pull = PullDriver::new(rate);
        // Resume a job that was running when this node (or actor) stopped.
        if let Err(e) = Box::pin(pull.load(self.store.as_ref(), &self.connection_id)).await {
            tracing::warn!(connection_id = %self.connection_id, error = %e, "cannot load pull job");
        }
        // Results travel boxed: tokio allocates a channel's first 32 slots up front, so
        // unboxed ones cost ~8.7 KB per actor before any work (x48,000 connections).
        let (results_tx, mut results) = mpsc::channel::<Box<PageResult>>(pull.channel_capacity());
        let mut confirmer = Confirmer::new(pull.channel_capacity(), self.settings.confirm_window);
        let (confirm_tx, mut confirmed) =
            mpsc::channel::<Box<ConfirmResult>>(pull.channel_capacity());
        let (sweep_tx, mut swept) = mpsc::channel::<Box<SweepResult>>(1);
        let mut sweeping = false;
        let interval = conn
            .record
            .reconcile_interval_secs
            .map_or(self.settings.reconcile_interval, |s| {
                Duration::from_secs(s.max(1) as u64)
            });
        let mut reported_idle = false;
        loop {
            // Paused (or gone): nothing is sent, and what comes back is set aside, its slot
            // freed and its work left to do, so that `resume` carries on where it stopped.
            let active = self.live().await;
            if let Some(conn) = &active {
                if conn.record.updated_at != built_from {
                    fetcher = self.fetcher(conn);
                    built_from = conn.record.updated_at;
                }
                pull.dispatch(&fetcher, &results_tx);
            }
            let retry_at = active.as_ref().and_then(|_| pull.next_retry());
            tokio::select! {
                _ = cancel.cancelled() => break,
                msg = mailbox.recv() => {
                    reported_idle = false;
                    match msg {
                        // Handlers' futures are boxed while they run, so a resting actor's
                        // task holds only its own state (see the size test below).
                        Some(Msg::Wake) => {
                            Box::pin(self.drain(&cancel)).await;
                            if self.settings.confirm && active.is_some() {
                                Box::pin(confirmer
                                    .dispatch_due(self.store.as_ref(), &self.connection_id, &fetcher, &confirm_tx))
                                    .await;
                            }
                        }
                        Some(Msg::Jobs) => {
                            if let Err(e) = Box::pin(pull.load(self.store.as_ref(), &self.connection_id)).await {
                                tracing::warn!(connection_id = %self.connection_id, error = %e, "cannot load pull job");
                            }
                        }
                        Some(Msg::Sweep) if self.settings.confirm && !sweeping && active.is_some() => {
                            match Box::pin(sweep::start(self.store.as_ref(), &self.connection_id, &fetcher, &sweep_tx)).await {
                                Ok(started) => sweeping = started,
                                Err(e) => tracing::warn!(connection_id = %self.connection_id, error = %e, "cannot start sweep"),
                            }
                        }
                        Some(Msg::Sweep) => {}
                        None if pull.is_idle() => break,
                        None => {}
                    }
                }
                Some(first) = results.recv() => {
                    reported_idle = false;
                    let mut batch = vec![*first];
                    while batch.len() < MAX_PAGES_PER_BATCH {
                        match results.try_recv() {
                            Ok(r) => batch.push(*r),
                            Err(_) => break,
                        }
                    }
                    if let Some(conn) = self.live().await {
                        Box::pin(pull.on_results(self.store.as_ref(), &self.settings.committer, &conn, (&fetcher, &results_tx), batch)).await;
                    } else {
                        Box::pin(pull.set_aside(self.store.as_ref(), &self.connection_id, batch)).await;
                    }
                }
                Some(first) = confirmed.recv() => {
                    reported_idle = false;
                    let mut batch = vec![*first];
                    while let Ok(r) = confirmed.try_recv() {
                        batch.push(*r);
                    }
                    if let Some(conn) = self.live().await {
                        Box::pin(confirmer.on_results(self.store.as_ref(), &self.settings.committer, &conn, batch)).await;
                        Box::pin(confirmer
                            .dispatch_due(self.store.as_ref(), &self.connection_id, &fetcher, &confirm_tx))
                            .await;
                    } else {
                        // The reads stay due in `refetches`: asked again after `resume`.
                        confirmer.set_aside(&batch);
                    }
                }
                Some(result) = swept.recv() => {
                    sweeping = false;
                    if let Some(conn) = self.live().await {
                        if let Err(e) = Box::pin(sweep::finish(self.store.as_ref(), &conn, *result, interval)).await {
                            tracing::warn!(connection_id = %self.connection_id, error = %e, "cannot record sweep");
                        }
                        Box::pin(self.drain(&cancel)).await;
                        Box::pin(confirmer
                            .dispatch_due(self.store.as_ref(), &self.connection_id, &fetcher, &confirm_tx))
                            .await;
                    }
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => {}
                _ = tokio::time::sleep(self.settings.idle), if !reported_idle && !sweeping && pull.is_idle() && confirmer.is_idle() => {
                    reported_idle = true;
                    let _ = idle_tx.send((self.connection_id.clone(), self.generation));
                }
            }
        }
    }

    /// The API client of `conn`, under its own limiter within the provider-wide budget.
    fn fetcher(&self, conn: &LiveConnection) -> Arc<Fetcher> {
        let shared = self.settings.provider_limits.get(
            conn.record.provider,
            (conn.provider.default_rate_limit() * 100).max(1000),
        );
        Arc::new(Fetcher {
            client: self.settings.http.clone(),
            limiter: Arc::new(ConnectionLimiter::new(
                conn.record.provider,
                conn.request_rate(),
                shared,
            )),
            provider: conn.provider,
            base_url: conn
                .record
                .api_base_url
                .clone()
                .unwrap_or_else(|| conn.provider.default_api_base().to_owned()),
            api_key: conn.api_key.clone().unwrap_or_default(),
            api_version: conn
                .record
                .api_version
                .clone()
                .unwrap_or_else(|| conn.provider.default_api_version().to_owned()),
            timeout: self.settings.request_timeout,
            token: TokenCache::default(),
            faults: FaultLog::new(Some(self.store.clone()), self.connection_id.clone()),
        })
    }

    /// The connection, while it exists and is active.
    async fn live(&self) -> Option<Arc<LiveConnection>> {
        match self.connections.get(&self.connection_id).await {
            Ok(Some(c)) if c.record.state == ConnectionState::Active => Some(c),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(connection_id = %self.connection_id, error = %e, "cannot load connection");
                None
            }
        }
    }

    /// Applies due inbox rows until none are left.
    async fn drain(&self, cancel: &CancellationToken) {
        while !cancel.is_cancelled() {
            let Some(conn) = self.live().await else {
                return;
            };
            let items = match self
                .store
                .due_inbox(&self.connection_id, now_micros(), self.settings.batch)
                .await
            {
                Ok(items) if items.is_empty() => return,
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(connection_id = %self.connection_id, error = %e, "cannot read inbox");
                    return;
                }
            };
            if !self.apply_inbox(&conn, &items).await {
                return;
            }
        }
    }

    /// Applies one batch of inbox rows. Returns false when it was put back for later.
    async fn apply_inbox(&self, conn: &LiveConnection, items: &[InboxItem]) -> bool {
        let provider = conn.record.provider.as_str();
        let mut sourced = Vec::new();
        let mut applied = Vec::new();
        let mut dead_letters = Vec::new();
        // Objects named by thin events (Recurly, Zuora), to be read from the API.
        let mut thin = Vec::new();
        for item in items {
            if item.source == "api" {
                // A replayed API page: its objects, as read then.
                match observe_page(conn, item) {
                    Ok(mut page) => {
                        applied.push(item.inbox_id);
                        sourced.append(&mut page);
                    }
                    Err(e) => dead_letters.push((item.inbox_id, e.to_string())),
                }
                continue;
            }
            match map_event(conn, item) {
                Ok(Some(one)) => {
                    applied.push(item.inbox_id);
                    sourced.push(one);
                }
                // Stored, answered 200, nothing to map (or only an object to fetch).
                Ok(None) => {
                    applied.push(item.inbox_id);
                    // A sweep finds events seconds after they happened, when the provider's
                    // API may still show the state before them: reading it then would be
                    // taken as the answer, and the change lost. Its read waits out the lag.
                    // A thin webhook's read is real time; a sweep's find is reconciliation.
                    let (wait, priority) = if item.source == "sweep" {
                        (
                            conn.provider.api_lag_allowance().as_micros() as i64,
                            Refetch::RECONCILE,
                        )
                    } else {
                        (0, Refetch::REAL_TIME)
                    };
                    // Where reads are ordered by when they are made (Stripe), only one made
                    // after the event's time plus the lag allowance can show its change.
                    let earliest = conn
                        .provider
                        .envelope(&item.body)
                        .ok()
                        .and_then(|e| conn.provider.earliest_confirming_read(e.occurred_at));
                    let named = conn.provider.thin_reference(&item.body);
                    // A webhook that maps to nothing and names nothing to read: an event type
                    // billsync does not map, or (Zuora) a callout template it does not know.
                    // Stored and answered 200 all the same (the webhook route in docs/api-reference.md); counted so
                    // an operator sees it.
                    if named.is_none() && item.source == "webhook" && !item.replay {
                        metrics::counter!("billsync_webhooks_unmapped_total", "provider" => provider)
                            .increment(1);
                    }
                    thin.extend(named.map(|(t, id)| (t, id, wait, earliest, priority)));
                }
                Err(e) => {
                    tracing::error!(connection_id = %self.connection_id, event_id = ?item.provider_event_id,
                        error = ?e.to_string(), "stored event cannot be mapped; dead-lettered");
                    metrics::counter!("billsync_dead_letters_total", "provider" => provider)
                        .increment(1);
                    dead_letters.push((item.inbox_id, e.to_string()));
                }
            }
        }
        let mut last_error = None;
        for _ in 0..CONFLICT_RETRIES {
            let mut batch = match decide_batch(self.store.as_ref(), conn, &sourced).await {
                Ok(b) => b,
                Err(e) => {
                    last_error = Some(e);
                    break;
                }
            };
            batch.applied_inbox_ids = applied.clone();
            batch.dead_letters = dead_letters.clone();
            if self.settings.confirm {
                let now = now_micros();
                let due = now + self.settings.confirm_after.as_micros() as i64;
                let provider = conn.provider;
                batch.schedule_refetches = batch
                    .writes
                    .iter()
                    .filter(|w| matches!(w.status, ReconStatus::Pending | ReconStatus::Drifted))
                    .map(|w| Refetch {
                        object_type: w.object_type,
                        provider_id: w.provider_id.clone(),
                        // A sweep's correction (`drifted`) is confirmed by any equal read;
                        // a webhook's change only by a read ordered after it.
                        due_at: match w.status {
                            ReconStatus::Pending => provider
                                .earliest_confirming_read(w.order_key)
                                .map_or(due, |earliest| earliest.max(due)),
                            _ => due,
                        },
                        attempts: 0,
                        first_seen_at: now,
                        // A webhook's confirmation before a sweep's find.
                        priority: match w.status {
                            ReconStatus::Pending => Refetch::REAL_TIME,
                            _ => Refetch::RECONCILE,
                        },
                    })
                    .collect();
                batch.schedule_refetches.extend(thin.iter().map(
                    |(object_type, provider_id, wait, earliest, priority)| Refetch {
                        object_type: *object_type,
                        provider_id: provider_id.clone(),
                        due_at: (now + wait).max(earliest.unwrap_or(0)),
                        attempts: 0,
                        first_seen_at: now,
                        priority: *priority,
                    },
                ));
            }
            let versions: Vec<(&'static str, &'static str)> = batch
                .writes
                .iter()
                .filter(|w| w.is_new_version())
                .map(|w| (w.object_type.as_str(), reason_label(&w.reason)))
                .collect();
            match self.settings.committer.apply(batch).await {
                Ok(()) => {
                    let now = now_micros();
                    for item in items {
                        let secs = (now - item.received_at).max(0) as f64 / 1e6;
                        metrics::histogram!("billsync_apply_latency_seconds", "provider" => provider).record(secs);
                        // The SLO's latency: a webhook's first application (not a replay's,
                        // whose receipt time is the original's; not a sweep's).
                        if item.source == "webhook" && !item.replay {
                            metrics::histogram!("billsync_webhook_queryable_seconds", "provider" => provider)
                                .record(secs);
                        }
                    }
                    for (kind, outcome) in versions {
                        metrics::counter!("billsync_versions_total", "provider" => provider,
                            "kind" => kind, "outcome" => outcome)
                        .increment(1);
                    }
                    return true;
                }
                Err(StoreError::Conflict(id)) => {
                    tracing::warn!(connection_id = %self.connection_id, object = ?id, "write conflict; re-deciding");
                    last_error = Some(StoreError::Conflict(id));
                }
                Err(e @ StoreError::Fenced(_)) => {
                    tracing::error!(connection_id = %self.connection_id, error = %e, "fenced; stopping");
                    return false;
                }
                Err(e) => {
                    last_error = Some(e);
                    break;
                }
            }
        }
        if items.len() > 1
            && last_error
                .as_ref()
                .is_some_and(StoreError::is_about_the_data)
        {
            // Something in this batch cannot be stored: apply the halves apart, down to the
            // row at fault, so it alone is retried and dead-lettered (README "Connections
            // that misbehave").
            let (a, b) = items.split_at(items.len() / 2);
            let first = Box::pin(self.apply_inbox(conn, a)).await;
            let second = Box::pin(self.apply_inbox(conn, b)).await;
            return first && second;
        }
        let error = last_error.map_or_else(|| "unknown".to_owned(), |e| e.to_string());
        self.put_back(items, &error).await;
        false
    }

    /// Schedules the batch's rows for another attempt with jittered exponential backoff.
    async fn put_back(&self, items: &[InboxItem], error: &str) {
        let attempts = items.iter().map(|i| i.attempts).max().unwrap_or(0);
        let base = Duration::from_millis(500u64.saturating_mul(1 << attempts.clamp(0, 10)));
        let delay = base.min(Duration::from_secs(300)).as_micros() as i64;
        let jitter = rand::thread_rng().gen_range(0..=delay / 4 + 1);
        let ids: Vec<i64> = items.iter().map(|i| i.inbox_id).collect();
        tracing::warn!(connection_id = %self.connection_id, rows = ids.len(), error, "apply failed; will retry");
        if let Err(e) = self
            .store
            .retry_inbox(
                &ids,
                now_micros() + delay + jitter,
                error,
                self.settings.max_attempts,
            )
            .await
        {
            tracing::error!(connection_id = %self.connection_id, error = %e, "could not record the failed attempt");
        }
    }
}

/// The objects of a stored API page, as observations read at the page's time.
/// What one stored event (webhook or sweep find) says of its object, as the apply path and the
/// replay preview read it; `None` for an event that carries no object (a thin one).
pub(crate) fn map_event(
    conn: &LiveConnection,
    item: &InboxItem,
) -> Result<Option<Sourced>, ParseError> {
    let Some(mut observation) = conn.provider.observe(&item.body)? else {
        return Ok(None);
    };
    if announces_creation(&item.event_type) {
        observation.tie_rank = CREATED_RANK;
    }
    Ok(Some(Sourced {
        observation,
        source: json!({
            "kind": item.source,
            "raw_event_id": item.raw_event_id,
            "event_id": item.provider_event_id,
            "event_type": item.event_type,
        }),
        from_api: false,
        drift: item.source == "sweep",
        replay: item.replay,
    }))
}

/// The objects of a stored API page, as read then.
pub(crate) fn observe_page(
    conn: &LiveConnection,
    item: &InboxItem,
) -> Result<Vec<Sourced>, ParseError> {
    let page = conn.provider.parse_list(&item.body)?;
    let source = json!({ "kind": "api", "raw_event_id": item.raw_event_id, "observation_id": item.provider_event_id });
    let mut out = Vec::new();
    for object in &page.objects {
        if let Some(observation) = conn.provider.observe_object(object, item.received_at)? {
            out.push(Sourced {
                observation,
                source: source.clone(),
                from_api: true,
                drift: false,
                replay: item.replay,
            });
        }
    }
    Ok(out)
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Sealer;

    /// What one running actor costs before it holds any work: the task's future (allocated
    /// whole by `tokio::spawn`) and the first block of each of its channels (tokio allocates
    /// 32 slots per channel up front).
    #[tokio::test]
    async fn a_resting_actor_is_small() {
        let store = crate::store::open("sqlite::memory:").await.unwrap();
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 32]);
        let connections = Arc::new(Connections::new(
            store.clone(),
            Sealer::from_base64(&key).unwrap(),
            300,
        ));
        let settings = PairSettings::new(Committer::spawn(store.clone(), 1, Default::default()));
        let actor = PairActor::new("conn_x".into(), 1, store, connections, settings);
        let (_tx, rx) = mpsc::channel(4);
        let (idle_tx, _idle_rx) = mpsc::unbounded_channel();
        let future = actor.run(rx, idle_tx, CancellationToken::new());
        let future_bytes = std::mem::size_of_val(&future);
        // Before: 3,088 B of future and 8,704 B of unboxed result slots (32 x 272 B).
        let unboxed = std::mem::size_of::<PageResult>()
            + std::mem::size_of::<ConfirmResult>()
            + std::mem::size_of::<SweepResult>();
        eprintln!(
            "pair actor: future {future_bytes} B; unboxed result slots would be 32 x {unboxed} B"
        );
        assert!(
            future_bytes <= 1536,
            "a resting pair actor's future is {future_bytes} B"
        );
    }
}
