//! Pull jobs inside a pair actor (backfill, resync): the job's windows are cursor streams
//! walked by child tasks under the connection's limiter; their pages come back as messages
//! and are applied one batch at a time, each page checkpointed with its objects. A window's
//! next page is requested as soon as its current page is parsed (while that page commits), so
//! the budget is not left idle during the actor's writes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

use super::apply::{decide_batch, Sourced};
use super::fetch::{Fetched, Fetcher};
use super::limiter::Priority;
use crate::connections::LiveConnection;
use crate::group_commit::Committer;
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::store::{IncomingEvent, RawBody, Store, StoreError, SyncWindow, WindowCheckpoint};

/// Objects per list page (the most every provider allows or more).
const PAGE_SIZE: u32 = 100;
/// Consecutive failures of one window before its job fails.
const MAX_WINDOW_FAILURES: u32 = 5;
/// Pages applied in one transaction at most.
pub const MAX_PAGES_PER_BATCH: usize = 16;

type WindowKey = (String, i64);

/// A page (or failure) coming back from a child task.
pub struct PageResult {
    job: String,
    window: WindowKey,
    /// The page read, with its body sealed for `raw_events` by the child task that read it
    /// (so the actor, which handles every page of the connection, does not compress them one
    /// by one); or why there is none.
    outcome: Result<(Fetched, RawBody), String>,
    attempts: u32,
    /// The window's epoch when the request was sent (see [`WindowState::epoch`]).
    epoch: u64,
    /// The page's request (lists paged by number continue from it).
    request: crate::providers::ApiRequest,
}

struct WindowState {
    window: SyncWindow,
    failures: u32,
    retry_at: Option<Instant>,
    /// Rises when a page of the window fails: a page requested before that (prefetched for a
    /// cursor that was then not checkpointed) is stale and dropped when it comes back.
    epoch: u64,
}

struct ActiveJob {
    name: String,
    priority: Priority,
    windows: HashMap<WindowKey, WindowState>,
    queue: VecDeque<WindowKey>,
}

/// The pull state a pair actor owns.
pub struct PullDriver {
    job: Option<ActiveJob>,
    in_flight: usize,
    max_in_flight: usize,
}

/// Requests a pull job keeps in flight at `rate_per_sec`: enough to use the rate at ~300 ms
/// per request.
pub fn max_in_flight(rate_per_sec: u32) -> usize {
    (rate_per_sec as usize / 3).clamp(2, 48)
}

impl PullDriver {
    pub fn new(rate_per_sec: u32) -> Self {
        PullDriver {
            job: None,
            in_flight: 0,
            max_in_flight: max_in_flight(rate_per_sec),
        }
    }

    pub fn channel_capacity(&self) -> usize {
        self.max_in_flight
    }

    pub fn is_idle(&self) -> bool {
        self.job.is_none() && self.in_flight == 0
    }

    /// Loads the connection's running job from the store, unless one is already loaded.
    pub async fn load(&mut self, store: &dyn Store, connection_id: &str) -> Result<(), StoreError> {
        if self.job.is_some() {
            return Ok(());
        }
        let Some(job) = store
            .sync_jobs(connection_id)
            .await?
            .into_iter()
            .find(|j| j.state == "running")
        else {
            return Ok(());
        };
        let windows = store.sync_windows(connection_id, &job.job).await?;
        let mut active = ActiveJob {
            priority: if job.job == "backfill" {
                Priority::Backfill
            } else {
                Priority::Reconcile
            },
            name: job.job,
            windows: HashMap::new(),
            queue: VecDeque::new(),
        };
        for w in windows {
            let key = (w.stream.clone(), w.window_start);
            if !w.done {
                active.queue.push_back(key.clone());
            }
            active.windows.insert(
                key,
                WindowState {
                    window: w,
                    failures: 0,
                    retry_at: None,
                    epoch: 0,
                },
            );
        }
        tracing::info!(connection_id, job = %active.name, windows = active.windows.len(),
            pending = active.queue.len(), "pull job loaded");
        self.job = Some(active);
        Ok(())
    }

    /// When the next delayed window becomes ready, if any is waiting.
    pub fn next_retry(&self) -> Option<Instant> {
        let job = self.job.as_ref()?;
        job.queue
            .iter()
            .filter_map(|k| job.windows.get(k).and_then(|w| w.retry_at))
            .min()
    }

    /// Starts child tasks for ready windows, up to the in-flight bound.
    pub fn dispatch(&mut self, fetcher: &Arc<Fetcher>, results: &mpsc::Sender<Box<PageResult>>) {
        let Some(job) = self.job.as_mut() else {
            return;
        };
        let now = Instant::now();
        let mut waiting = VecDeque::new();
        while self.in_flight < self.max_in_flight {
            let Some(key) = job.queue.pop_front() else {
                break;
            };
            let Some(state) = job.windows.get(&key) else {
                continue;
            };
            if state.retry_at.is_some_and(|t| t > now) {
                waiting.push_back(key);
                continue;
            }
            let w = &state.window;
            let request = fetcher.provider.list_request(
                &w.stream,
                (w.window_start, w.window_end),
                w.cursor.as_deref(),
                PAGE_SIZE,
            );
            self.in_flight += 1;
            spawn_fetch(fetcher, results, job, key, request, state.epoch);
        }
        job.queue.extend(waiting);
    }

    /// Takes back pages that came back while the connection was paused, applying nothing: each
    /// frees its slot, its requests are counted, and its window is asked again from its last
    /// checkpoint once the connection is active (a prefetched page is one past that
    /// checkpoint, so the window's epoch rises and any other page of it in flight is stale).
    pub async fn set_aside(
        &mut self,
        store: &dyn Store,
        connection_id: &str,
        results: Vec<PageResult>,
    ) {
        self.in_flight -= results.len().min(self.in_flight);
        let Some(job) = self.job.as_mut() else {
            return;
        };
        for r in results {
            if r.job != job.name {
                continue;
            }
            let checkpoint = WindowCheckpoint {
                job: job.name.clone(),
                stream: r.window.0.clone(),
                window_start: r.window.1,
                cursor: None,
                reached: None,
                done: false,
                objects: 0,
                requests: i64::from(r.attempts),
            };
            if let Err(e) = store
                .count_window_requests(connection_id, &checkpoint)
                .await
            {
                tracing::warn!(connection_id, error = %e, "cannot record set-aside requests");
            }
            let Some(state) = job.windows.get_mut(&r.window) else {
                continue;
            };
            state.window.requests += checkpoint.requests;
            if state.epoch == r.epoch {
                state.epoch += 1;
                if !state.window.done && !job.queue.contains(&r.window) {
                    job.queue.push_back(r.window);
                }
            }
        }
    }

    /// Applies a batch of returned pages in one transaction, requesting each window's next
    /// page (when there is room in flight) before the commit.
    pub async fn on_results(
        &mut self,
        store: &dyn Store,
        committer: &Committer,
        conn: &LiveConnection,
        (fetcher, results_tx): (&Arc<Fetcher>, &mpsc::Sender<Box<PageResult>>),
        results: Vec<PageResult>,
    ) {
        self.in_flight -= results.len().min(self.in_flight);
        let Some(job) = self.job.as_mut() else {
            return; // the job ended (failed) while these were in flight
        };
        let provider = conn.provider;
        let mut sourced = Vec::new();
        let mut observations = Vec::new();
        let mut checkpoints = Vec::new();
        let mut failed = Vec::new();
        // Windows whose next page is already requested.
        let mut prefetched = std::collections::HashSet::new();
        let mut stale = Vec::new();
        for r in results {
            if r.job != job.name {
                continue;
            }
            if job
                .windows
                .get(&r.window)
                .is_some_and(|w| w.epoch != r.epoch)
            {
                // Requested ahead of a page that then failed: that page is asked again, so
                // this one is dropped (its requests still count).
                stale.push((r.window, r.attempts));
                continue;
            }
            let (stream, start) = r.window.clone();
            let base = WindowCheckpoint {
                job: job.name.clone(),
                stream,
                window_start: start,
                cursor: None,
                reached: None,
                done: false,
                objects: 0,
                requests: i64::from(r.attempts),
            };
            let (fetched, body) = match r.outcome {
                Ok(read) => read,
                Err(e) => {
                    failed.push((r.window, base, e));
                    continue;
                }
            };
            let page = match provider.parse_list_page(&r.request, &fetched.body) {
                Ok(p) => p,
                Err(e) => {
                    failed.push((r.window, base, e.to_string()));
                    continue;
                }
            };
            let observation_id = format!(
                "api:{}:{}:{}:{}",
                job.name,
                base.stream,
                start,
                crate::model::random_token(12)
            );
            let source = json!({
                "kind": "api",
                "observation_id": observation_id,
                "request": fetched.request,
                "read_at": micros_to_rfc3339(fetched.read_at),
            });
            let mut objects = 0;
            for object in &page.objects {
                match provider.observe_object(object, fetched.read_at) {
                    Ok(Some(observation)) => {
                        objects += 1;
                        sourced.push(Sourced {
                            observation,
                            source: source.clone(),
                            from_api: true,
                            drift: false,
                            replay: false,
                        });
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(connection_id = %conn.record.id, error = %e, "API object cannot be mapped")
                    }
                }
            }
            if let (Some(next), Some(state)) = (&page.next_cursor, job.windows.get(&r.window)) {
                if self.in_flight < self.max_in_flight {
                    let w = &state.window;
                    let request = fetcher.provider.list_request(
                        &w.stream,
                        (w.window_start, w.window_end),
                        Some(next),
                        PAGE_SIZE,
                    );
                    self.in_flight += 1;
                    spawn_fetch(
                        fetcher,
                        results_tx,
                        job,
                        r.window.clone(),
                        request,
                        state.epoch,
                    );
                    prefetched.insert(r.window.clone());
                }
            }
            observations.push(IncomingEvent {
                connection_id: conn.record.id.clone(),
                provider_event_id: observation_id,
                event_type: format!("api.list.{}", base.stream),
                source: "api",
                received_at: fetched.read_at,
                body,
            });
            checkpoints.push(WindowCheckpoint {
                done: page.next_cursor.is_none(),
                cursor: page.next_cursor,
                reached: page.reached,
                objects,
                ..base
            });
        }
        if !checkpoints.is_empty() {
            match apply_pages(
                store,
                committer,
                conn,
                &sourced,
                observations,
                checkpoints.clone(),
            )
            .await
            {
                Ok(()) => {
                    metrics::counter!("billsync_pulled_objects_total", "provider" => provider.kind().as_str())
                        .increment(sourced.len() as u64);
                    for c in checkpoints {
                        let key = (c.stream.clone(), c.window_start);
                        if let Some(state) = job.windows.get_mut(&key) {
                            let w = &mut state.window;
                            w.objects += c.objects;
                            w.pages += 1;
                            w.requests += c.requests;
                            w.reached = c.reached.or(w.reached);
                            w.done = c.done;
                            w.cursor = c.cursor;
                            state.failures = 0;
                            if !w.done && !prefetched.contains(&key) {
                                job.queue.push_back(key);
                            }
                        }
                    }
                }
                Err(e) => {
                    for c in checkpoints {
                        failed.push(((c.stream.clone(), c.window_start), c, e.to_string()));
                    }
                }
            }
        }
        for (key, attempts) in stale {
            let checkpoint = WindowCheckpoint {
                job: job.name.clone(),
                stream: key.0.clone(),
                window_start: key.1,
                cursor: None,
                reached: None,
                done: false,
                objects: 0,
                requests: i64::from(attempts),
            };
            if let Err(e) = store
                .count_window_requests(&conn.record.id, &checkpoint)
                .await
            {
                tracing::warn!(error = %e, "cannot record dropped requests");
            }
            if let Some(state) = job.windows.get_mut(&key) {
                state.window.requests += checkpoint.requests;
            }
        }
        for (key, mut checkpoint, error) in failed {
            checkpoint.objects = 0;
            if let Err(e) = store
                .count_window_requests(&conn.record.id, &checkpoint)
                .await
            {
                tracing::warn!(error = %e, "cannot record failed requests");
            }
            let Some(state) = job.windows.get_mut(&key) else {
                continue;
            };
            state.failures += 1;
            state.epoch += 1;
            state.window.requests += checkpoint.requests;
            tracing::warn!(connection_id = %conn.record.id, stream = %key.0, failures = state.failures, ?error, "pull page failed");
            if state.failures >= MAX_WINDOW_FAILURES {
                let reason = format!(
                    "window {} from {} failed {} times: {error}",
                    key.0, key.1, state.failures
                );
                self.finish(store, &conn.record.id, "failed", Some(&reason))
                    .await;
                return;
            }
            state.retry_at = Some(Instant::now() + Duration::from_secs(1 << state.failures.min(5)));
            job.queue.push_back(key);
        }
        let all_done = job.windows.values().all(|w| w.window.done);
        if all_done && self.in_flight == 0 {
            self.finish(store, &conn.record.id, "done", None).await;
        }
    }

    async fn finish(
        &mut self,
        store: &dyn Store,
        connection_id: &str,
        state: &str,
        error: Option<&str>,
    ) {
        let Some(job) = self.job.take() else {
            return;
        };
        let objects: i64 = job.windows.values().map(|w| w.window.objects).sum();
        tracing::info!(connection_id, job = %job.name, state, objects, error, "pull job finished");
        if let Err(e) = store
            .finish_sync_job(connection_id, &job.name, state, error, now_micros())
            .await
        {
            tracing::error!(connection_id, error = %e, "cannot record the end of a pull job");
        }
    }
}

/// Starts a child task that fetches one page of `key`'s window and reports back.
fn spawn_fetch(
    fetcher: &Arc<Fetcher>,
    results: &mpsc::Sender<Box<PageResult>>,
    job: &ActiveJob,
    key: WindowKey,
    request: crate::providers::ApiRequest,
    epoch: u64,
) {
    let (fetcher, results, job_name, priority) = (
        fetcher.clone(),
        results.clone(),
        job.name.clone(),
        job.priority,
    );
    tokio::spawn(async move {
        let (read, attempts) = fetcher.get_whole(&request, priority).await;
        let page_request = request;
        // A page whose body cannot be sealed fails like one that cannot be read: its objects
        // are never applied without their raw observation.
        let outcome = match read {
            Ok(f) => RawBody::seal(&f.body)
                .map(|b| (f, b))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let _ = results
            .send(Box::new(PageResult {
                job: job_name,
                window: key,
                outcome,
                attempts,
                epoch,
                request: page_request,
            }))
            .await;
    });
}

async fn apply_pages(
    store: &dyn Store,
    committer: &Committer,
    conn: &LiveConnection,
    sourced: &[Sourced],
    observations: Vec<IncomingEvent>,
    checkpoints: Vec<WindowCheckpoint>,
) -> Result<(), StoreError> {
    let mut last = None;
    for _ in 0..3 {
        let mut batch = decide_batch(store, conn, sourced).await?;
        batch.observations = observations.clone();
        batch.checkpoints = checkpoints.clone();
        match committer.apply(batch).await {
            Ok(()) => return Ok(()),
            Err(e @ StoreError::Conflict(_)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| StoreError::Conflict("pull batch".into())))
}
