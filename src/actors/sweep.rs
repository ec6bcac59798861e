//! Reconciliation sweeps: every `reconcile_interval` a pair actor pulls what changed at the
//! provider since its last sweep (minus an overlap) and stores each change as a raw event.
//! Ones no webhook delivered go through the inbox like webhooks, their objects marked
//! `drifted`; the count of them is the connection's measured drift. Providers whose events
//! list is walked by cursor (Paddle) resume after the last event the previous sweep read
//! (`Provider::sweep_resume`, kept with the sweep row) instead of reading from a time.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::fetch::Fetcher;
use super::limiter::Priority;
use crate::connections::LiveConnection;
use crate::model::time::now_micros;
use crate::store::{IncomingEvent, IngestOutcome, RawBody, Store, StoreError};

/// How far each sweep reaches back before the previous one's start (provider event lag).
const OVERLAP_SECS: i64 = 120;
/// Pages one sweep reads at most (100 events each); the rest waits for the next sweep.
const MAX_PAGES: usize = 500;

/// A finished sweep read coming back from its child task.
pub struct SweepResult {
    started_at: i64,
    outcome: Result<Vec<Vec<u8>>, String>,
    /// Where the next sweep resumes: the last page's resume point, else the stored one.
    resume: Option<String>,
}

/// Starts a sweep's reads in a child task, from the stored position.
pub async fn start(
    store: &dyn Store,
    connection_id: &str,
    fetcher: &Arc<Fetcher>,
    results: &mpsc::Sender<Box<SweepResult>>,
) -> Result<bool, StoreError> {
    let Some(sweep) = store.sweep(connection_id).await? else {
        return Ok(false);
    };
    let since = sweep.position - OVERLAP_SECS;
    let started_at = now_micros();
    let (fetcher, results) = (fetcher.clone(), results.clone());
    tokio::spawn(async move {
        let mut events = Vec::new();
        let mut resume = sweep.cursor;
        let mut cursor = resume.clone();
        let mut outcome = Ok(());
        for _ in 0..MAX_PAGES {
            let request = fetcher.provider.sweep_request(since, cursor.as_deref());
            let (answer, _) = fetcher.get_whole(&request, Priority::Reconcile).await;
            let page = answer.map_err(|e| e.to_string()).and_then(|f| {
                let page = fetcher
                    .provider
                    .parse_sweep_page(&request, &f.body)
                    .map_err(|e| e.0)?;
                Ok((page, fetcher.provider.sweep_resume(&f.body)))
            });
            match page {
                Ok(((mut page, next), at)) => {
                    events.append(&mut page);
                    resume = at.or(resume);
                    match next {
                        Some(n) => cursor = Some(n),
                        None => break,
                    }
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        let _ = results
            .send(Box::new(SweepResult {
                started_at,
                outcome: outcome.map(|()| events),
                resume,
            }))
            .await;
    });
    Ok(true)
}

/// Stores what a sweep found and schedules the next one. Returns how many events were new.
pub async fn finish(
    store: &dyn Store,
    conn: &LiveConnection,
    result: SweepResult,
    interval: Duration,
) -> Result<usize, StoreError> {
    let provider = conn.record.provider.as_str();
    let next_run_at = now_micros() + interval.as_micros() as i64;
    let bodies = match result.outcome {
        Ok(b) => b,
        Err(e) => {
            metrics::counter!("billsync_sweeps_total", "provider" => provider, "outcome" => "failed").increment(1);
            tracing::warn!(connection_id = %conn.record.id, error = %e, "sweep failed; next one at the usual interval");
            // Nothing read is stored: the next sweep starts where this one did.
            let (position, cursor) = store
                .sweep(&conn.record.id)
                .await?
                .map_or((0, None), |s| (s.position, s.cursor));
            store
                .finish_sweep(
                    &conn.record.id,
                    position,
                    next_run_at,
                    0,
                    cursor.as_deref(),
                    now_micros(),
                )
                .await?;
            return Ok(0);
        }
    };
    let mut events = Vec::with_capacity(bodies.len());
    for body in bodies {
        match conn.provider.envelope(&body) {
            Ok(envelope) => events.push(IncomingEvent {
                connection_id: conn.record.id.clone(),
                provider_event_id: envelope.event_id,
                event_type: envelope.event_type,
                source: "sweep",
                received_at: now_micros(),
                body: RawBody::seal(&body)?,
            }),
            Err(e) => {
                tracing::warn!(connection_id = %conn.record.id, error = %e, "sweep found a malformed event")
            }
        }
    }
    let outcomes = if events.is_empty() {
        Vec::new()
    } else {
        store.ingest(&events).await?
    };
    let found = outcomes
        .iter()
        .filter(|o| matches!(o, IngestOutcome::Stored { .. }))
        .count();
    metrics::counter!("billsync_sweeps_total", "provider" => provider, "outcome" => "ok")
        .increment(1);
    metrics::counter!("billsync_sweep_missed_events_total", "provider" => provider)
        .increment(found as u64);
    if found > 0 {
        tracing::info!(connection_id = %conn.record.id, found, "sweep found changes no webhook delivered");
    }
    store
        .finish_sweep(
            &conn.record.id,
            result.started_at / 1_000_000,
            next_run_at,
            found as i64,
            result.resume.as_deref(),
            now_micros(),
        )
        .await?;
    Ok(found)
}
