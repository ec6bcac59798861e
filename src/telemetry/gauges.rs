//! Gauges only the store can tell, read every few seconds by one task per node: the age of the
//! oldest pending inbox row and of the oldest pending provider read (confirmation), the
//! backfill jobs running and how long since each last progressed, how far back each
//! provider's sweeps must read (against its events retention), and the inbox depth.
//!
//! Read over a small pool of its own (one connection, opened lazily from the database URL),
//! as the cluster coordination does, rather than through the `Store` trait: these are
//! whole-store aggregates for operators, not part of the sync flow, and a slow scrape of them
//! must never hold a connection the actors need. Each statement is written once and expanded
//! for both backends by [`gauge_queries!`]. Every gauge is published per provider or not at
//! all: never per merchant or connection.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio_util::sync::CancellationToken;

use crate::model::time::now_micros;
use crate::model::ProviderKind;
use crate::store::Store;

/// How often the gauges are read.
const PERIOD: Duration = Duration::from_secs(5);

/// Why a gauge read failed (logged at debug; the gauges keep their last values).
#[derive(Debug, thiserror::Error)]
pub enum GaugeError {
    #[error("gauge query: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database URL `{0}` is neither sqlite: nor postgres:")]
    UnsupportedUrl(String),
}

/// One reading of the store-side gauges (times in microseconds, positions in seconds).
#[derive(Debug, Default)]
pub struct Reading {
    /// `received_at` of the oldest pending inbox row of an active connection.
    pub oldest_inbox: Option<i64>,
    /// `(priority, first_seen_at)` of the oldest pending provider read, per priority.
    pub oldest_refetch: Vec<(i64, i64)>,
    /// `(provider, started_at, last progress)` of each running job of an active connection.
    pub running_jobs: Vec<(String, i64, Option<i64>)>,
    /// `(provider, oldest sweep position in seconds)` over active connections.
    pub sweep_positions: Vec<(String, i64)>,
}

/// The store-side gauge queries.
#[async_trait::async_trait]
pub trait GaugeQueries: Send + Sync {
    async fn read(&self) -> Result<Reading, GaugeError>;
}

/// Implements [`GaugeQueries`] for a one-backend pool type; the SQL runs unchanged on SQLite
/// and Postgres.
macro_rules! gauge_queries {
    ($pool:ty) => {
        #[async_trait::async_trait]
        impl GaugeQueries for $pool {
            async fn read(&self) -> Result<Reading, GaugeError> {
                let oldest_inbox: Option<i64> = sqlx::query_scalar(
                    "SELECT MIN(i.received_at) FROM inbox i \
                     JOIN connections c ON c.id = i.connection_id \
                     WHERE i.dead = FALSE AND c.state = 'active'",
                )
                .fetch_one(self)
                .await?;
                let oldest_refetch: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT r.priority, MIN(r.first_seen_at) FROM refetches r \
                     JOIN connections c ON c.id = r.connection_id \
                     WHERE c.state = 'active' GROUP BY r.priority",
                )
                .fetch_all(self)
                .await?;
                let running_jobs: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT c.provider, j.started_at, \
                     (SELECT MAX(w.updated_at) FROM sync_windows w \
                      WHERE w.connection_id = j.connection_id AND w.job = j.job) \
                     FROM sync_jobs j JOIN connections c ON c.id = j.connection_id \
                     WHERE j.state = 'running' AND c.state = 'active'",
                )
                .fetch_all(self)
                .await?;
                let sweep_positions: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT c.provider, MIN(s.position) FROM sweeps s \
                     JOIN connections c ON c.id = s.connection_id \
                     WHERE c.state = 'active' GROUP BY c.provider",
                )
                .fetch_all(self)
                .await?;
                Ok(Reading {
                    oldest_inbox,
                    oldest_refetch,
                    running_jobs,
                    sweep_positions,
                })
            }
        }
    };
}

gauge_queries!(sqlx::SqlitePool);
gauge_queries!(sqlx::PgPool);

/// A lazily connecting one-connection pool on the store `url` names.
pub fn open(url: &str) -> Result<Arc<dyn GaugeQueries>, GaugeError> {
    if url.starts_with("sqlite:") {
        let options = url
            .parse::<SqliteConnectOptions>()?
            .read_only(true)
            .busy_timeout(Duration::from_secs(5));
        Ok(Arc::new(
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options),
        ))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let options = url.parse::<PgConnectOptions>()?;
        Ok(Arc::new(
            PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy_with(options),
        ))
    } else {
        Err(GaugeError::UnsupportedUrl(url.to_owned()))
    }
}

/// Publishes the gauges every [`PERIOD`] until `cancel`: the inbox depth through `store`, the
/// rest through a pool of its own on `url`. A node without cluster coordination (SQLite) is a
/// cluster of one.
pub async fn run(store: Arc<dyn Store>, url: String, cancel: CancellationToken) {
    // The recorder first: a value set before it is installed would be lost.
    super::metrics_handle();
    if store.coordination().is_none() {
        metrics::gauge!("billsync_cluster_nodes").set(1.0);
    }
    let queries = match open(&url) {
        Ok(q) => Some(q),
        Err(e) => {
            tracing::warn!(error = %e, "store gauges unavailable");
            None
        }
    };
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok(depth) = store.inbox_depth().await {
            metrics::gauge!("billsync_inbox_depth").set(depth.pending as f64);
            metrics::gauge!("billsync_inbox_dead_letters").set(depth.dead as f64);
        }
        if let Some(queries) = &queries {
            match queries.read().await {
                Ok(reading) => publish(&reading, now_micros()),
                Err(e) => tracing::debug!(error = %e, "cannot read the store gauges"),
            }
        }
    }
}

/// Seconds from `then` to `now` (both microseconds), never negative.
fn age(now: i64, then: i64) -> f64 {
    (now - then).max(0) as f64 / 1e6
}

/// Sets every gauge from `reading`, zero where nothing is pending.
pub fn publish(reading: &Reading, now: i64) {
    use metrics::gauge;
    gauge!("billsync_inbox_oldest_pending_age_seconds")
        .set(reading.oldest_inbox.map_or(0.0, |t| age(now, t)));
    for (priority, kind) in [(0, "realtime"), (1, "reconciliation")] {
        let oldest = reading
            .oldest_refetch
            .iter()
            .filter(|(p, _)| *p == priority);
        let secs = oldest.map(|(_, t)| age(now, *t)).fold(0.0, f64::max);
        gauge!("billsync_confirmation_oldest_pending_age_seconds", "kind" => kind).set(secs);
    }
    for provider in ProviderKind::ALL {
        let p = provider.as_str();
        let jobs: Vec<_> = reading.running_jobs.iter().filter(|j| j.0 == p).collect();
        let stalled = jobs
            .iter()
            .map(|(_, started, progressed)| age(now, progressed.unwrap_or(*started).max(*started)))
            .fold(0.0, f64::max);
        gauge!("billsync_backfill_jobs_running", "provider" => p).set(jobs.len() as f64);
        gauge!("billsync_backfill_oldest_progress_age_seconds", "provider" => p).set(stalled);
        let position = reading.sweep_positions.iter().find(|s| s.0 == p);
        let behind = position.map_or(0.0, |(_, secs)| age(now, secs * 1_000_000));
        gauge!("billsync_sweep_position_age_seconds", "provider" => p).set(behind);
    }
}
