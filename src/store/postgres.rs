//! The production store: Postgres (Aurora in cluster mode) through sqlx.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sqlx::migrate::Migrator;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::postgres_coordination::{PgCoordination, ADMIN_CHANNEL, INBOX_CHANNEL};
use super::sql::sql_store;
use super::sql_archive::sql_archive_store;
use super::sql_connections::sql_connections_store;
use super::sql_jobs::sql_jobs_store;
use super::sql_operator::sql_operator_store;
use super::sql_quality::sql_quality_store;
use super::sql_reads::sql_reads_store;

/// Postgres implementation of [`super::Store`]. Reads and writes share one pool.
pub struct PostgresStore {
    read: PgPool,
    write: PgPool,
    /// How this store connects: the cluster's coordination opens its own small pool with it.
    options: PgConnectOptions,
    inbox_vacuum: Arc<Upkeep>,
    analyze: Arc<Upkeep>,
}

/// Maintenance the store runs itself in the background once enough rows have changed, rather
/// than wait for autovacuum (which looks at a database once a minute by default, and never
/// where it is off, as on this project's CI machine). One run at a time; a failed run is
/// logged and the next threshold tries again.
struct Upkeep {
    statement: &'static str,
    /// Histogram of how long each run took.
    metric: &'static str,
    /// Rows counted since this node started.
    counted: AtomicUsize,
    /// The count at which the next run starts.
    next_at: AtomicUsize,
    /// The next threshold, from the count at which a run starts.
    after: fn(usize) -> usize,
    running: AtomicBool,
}

impl Upkeep {
    fn new(statement: &'static str, metric: &'static str, after: fn(usize) -> usize) -> Arc<Self> {
        Arc::new(Upkeep {
            statement,
            metric,
            counted: AtomicUsize::new(0),
            next_at: AtomicUsize::new(after(0)),
            after,
            running: AtomicBool::new(false),
        })
    }

    /// Counts `rows`; past the threshold, runs the statement on `pool` in the background.
    fn count(self: &Arc<Self>, pool: &PgPool, rows: usize) {
        let counted = self.counted.fetch_add(rows, Ordering::Relaxed) + rows;
        if counted < self.next_at.load(Ordering::Relaxed)
            || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.next_at.store((self.after)(counted), Ordering::Relaxed);
        let (pool, upkeep) = (pool.clone(), self.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match sqlx::query(upkeep.statement).execute(&pool).await {
                Ok(_) => metrics::histogram!(upkeep.metric).record(started.elapsed().as_secs_f64()),
                Err(e) => {
                    tracing::warn!(statement = upkeep.statement, error = %e, "store upkeep failed")
                }
            }
            upkeep.running.store(false, Ordering::Release);
        });
    }
}

/// Deleted inbox rows after which the store vacuums the inbox itself. The inbox holds few live
/// rows but takes every webhook: left to autovacuum, a 30 s burst of 75,000 webhooks left
/// 75,000 dead entries in the index the actors read their pending rows through, and that read
/// went from ~0.05 ms to ~0.9 ms.
const VACUUM_INBOX_AFTER: usize = 5_000;

/// Object writes after which the store analyzes the tables that grow with them, then at every
/// 4x. Without statistics Postgres planned a change-feed page (`merchant_id = $1 AND seq > $2
/// ORDER BY seq LIMIT 1000`) as a bitmap scan and sort of the merchant's whole feed: 205 ms at
/// 250,000 changes, 0.47 ms after an ANALYZE.
const ANALYZE_FIRST_AT: usize = 20_000;

/// `idle_in_transaction_session_timeout` of the store's sessions (see `open`).
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";

impl PostgresStore {
    const BACKEND: &'static str = "postgres";
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

    pub async fn open(url: &str) -> Result<Self, super::StoreError> {
        // Tables grow from empty to millions of rows while a node runs: a generic plan cached
        // when `objects` was empty keeps seq-scanning it. Plan every statement for the data
        // it meets (measured: a 150k-object backfill went from ~50 ms to ~1 ms per lookup).
        // A transaction left open by a node that froze (SIGSTOP, a VM pause) would hold its
        // shard's lease row and block the takeover; no transaction of billsync idles between
        // statements, so the server ends one that does after a few seconds.
        let options = PgConnectOptions::from_str(url)?.options([
            ("plan_cache_mode", "force_custom_plan"),
            (
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT,
            ),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .before_acquire(super::sql::ping_if_idle)
            .connect_with(options.clone())
            .await?;
        Ok(PostgresStore {
            read: pool.clone(),
            write: pool,
            options,
            inbox_vacuum: Upkeep::new(
                "VACUUM (SKIP_LOCKED, TRUNCATE FALSE) inbox",
                "billsync_inbox_vacuum_seconds",
                |counted| counted + VACUUM_INBOX_AFTER,
            ),
            analyze: Upkeep::new(
                "ANALYZE objects, object_versions, changes, refetches",
                "billsync_analyze_seconds",
                |counted| counted.max(ANALYZE_FIRST_AT / 4).saturating_mul(4),
            ),
        })
    }

    /// Counts object writes (the store analyzes the tables that grow with them).
    fn objects_written(&self, rows: usize) {
        self.analyze.count(&self.write, rows);
    }

    /// Counts applied inbox rows deleted (the store vacuums the inbox after enough of them).
    fn inbox_rows_deleted(&self, rows: usize) {
        self.inbox_vacuum.count(&self.write, rows);
    }

    /// Every node on one Postgres database is a node of one cluster (docs/cluster.md).
    /// Its own few connections (heartbeats, leases, `LISTEN`), so lease renewals never
    /// queue behind a busy node's applies for a pooled connection: a renewal that waits
    /// past the lease loses every shard of the node.
    fn coordination_of_nodes(&self) -> Option<Arc<dyn super::Coordination>> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(self.options.clone());
        Some(Arc::new(PgCoordination { pool }))
    }

    /// Opens an apply transaction in one statement: checks the batch's fence, stamps the
    /// connection's `last_applied_at` and deletes the inbox rows the batch applies. `false`
    /// when the batch may not write: its fence is no longer the current, unexpired lease of
    /// its shard, or the connection is gone (the caller rolls back, so nothing is deleted).
    ///
    /// The lease row is held `FOR KEY SHARE` until the transaction ends: a takeover locks it
    /// `FOR UPDATE` first (`PgCoordination::acquire`), so it waits for this write to commit
    /// and the new owner reads everything it wrote; renewals and releases (plain updates)
    /// neither wait on nor deadlock with applies holding several shards' rows, and applies
    /// share the lock. (`clock_timestamp()` is volatile, so the `WITH` is never folded into
    /// the update: the lock is taken once, by the subquery.)
    async fn open_apply(
        tx: &mut sqlx::PgConnection,
        b: &super::ApplyBatch,
    ) -> Result<bool, super::StoreError> {
        let touched = sqlx::query(
            "WITH fence AS (SELECT shard FROM shard_leases WHERE shard = $3 AND epoch = $4 \
             AND expires_at > clock_timestamp() FOR KEY SHARE), \
             applied AS (DELETE FROM inbox WHERE id = ANY($5)) \
             UPDATE connections SET last_applied_at = $1 WHERE id = $2 \
             AND ($3::int4 IS NULL OR EXISTS (SELECT 1 FROM fence))",
        )
        .bind(b.now)
        .bind(&b.connection_id)
        .bind(b.fence.map(|f| f.shard))
        .bind(b.fence.map(|f| f.epoch))
        .bind(&b.applied_inbox_ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Ok(touched == 1)
    }

    /// `NOTIFY`, delivered to every node when the transaction commits.
    async fn announce(
        tx: &mut sqlx::PgConnection,
        what: super::sql::Announce,
        connection_id: &str,
    ) -> Result<(), super::StoreError> {
        let channel = match what {
            super::sql::Announce::Inbox => INBOX_CHANNEL,
            super::sql::Announce::Admin => ADMIN_CHANNEL,
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(connection_id)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

sql_store!(PostgresStore, sqlx::Postgres);
sql_operator_store!(super::PostgresStore, sqlx::Postgres);
sql_quality_store!(super::PostgresStore, sqlx::Postgres);
sql_archive_store!(super::PostgresStore, sqlx::Postgres);
sql_connections_store!(super::PostgresStore, sqlx::Postgres);
sql_jobs_store!(super::PostgresStore, sqlx::Postgres);
sql_reads_store!(super::PostgresStore, sqlx::Postgres);

/// Multi-row statements bound as arrays: one statement text whatever the batch size, so it is
/// prepared once per connection and stays in sqlx's statement cache (multi-row `VALUES` made
/// a new statement for every batch size, each parsed and planned by the server again).
impl PostgresStore {
    /// `query` with the raw-event columns of `rows` bound as `$1`..`$7` (connection, provider
    /// event id, event type, source, received at, zstd body, SHA-256), for `UNNEST`.
    fn bind_raw_rows<'q, O>(
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
        rows: &'q [&super::IncomingEvent],
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        let col = |f: for<'a> fn(&'a super::IncomingEvent) -> &'a str| {
            rows.iter().map(|e| f(e)).collect::<Vec<&str>>()
        };
        query
            .bind(col(|e| e.connection_id.as_str()))
            .bind(col(|e| e.provider_event_id.as_str()))
            .bind(col(|e| e.event_type.as_str()))
            .bind(col(|e| e.source))
            .bind(rows.iter().map(|e| e.received_at).collect::<Vec<i64>>())
            .bind(rows.iter().map(|e| e.body.zstd()).collect::<Vec<&[u8]>>())
            .bind(col(|e| e.body.sha256()))
    }

    /// Inserts raw events; a key already stored (or repeated in `rows`) inserts nothing.
    /// Returns (connection, provider event id, id) of the new rows.
    async fn insert_raw_events(
        tx: &mut sqlx::PgConnection,
        rows: &[&super::IncomingEvent],
    ) -> Result<Vec<(String, String, i64)>, super::StoreError> {
        let query = sqlx::query_as(
            "INSERT INTO raw_events (connection_id, provider_event_id, event_type, source, \
             received_at, body_zstd, body_sha256) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
             $6::bytea[], $7::text[]) \
             ON CONFLICT (connection_id, provider_event_id) DO NOTHING \
             RETURNING connection_id, provider_event_id, id",
        );
        Ok(Self::bind_raw_rows(query, rows).fetch_all(&mut *tx).await?)
    }

    /// Stores raw events and queues the new ones for applying, in the order given: one
    /// statement, so one round trip and one commit (no BEGIN/COMMIT of its own). Returns
    /// (connection, provider event id, id) of the new rows.
    ///
    /// No `NOTIFY` here: Postgres serializes the commits of notifying transactions on one
    /// lock held across their WAL flush, which cost a node 37% of its intake rate (1,708 ev/s
    /// against 2,722 without, `scripts/bench --quick --scenarios 6`). The node that stored
    /// the rows tells the owners afterwards (`crate::cluster::forward`).
    async fn store_and_queue(
        &self,
        rows: &[&super::IncomingEvent],
    ) -> Result<Vec<(String, String, i64)>, super::StoreError> {
        // A data-modifying WITH runs to completion whether or not the outer query reads it.
        // Raw ids follow the order given (a sequence, in UNNEST order), so do inbox ids.
        let query = sqlx::query_as(
            "WITH r AS (INSERT INTO raw_events (connection_id, provider_event_id, event_type, \
             source, received_at, body_zstd, body_sha256) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
             $6::bytea[], $7::text[]) \
             ON CONFLICT (connection_id, provider_event_id) DO NOTHING \
             RETURNING connection_id, provider_event_id, id, received_at), \
             q AS (INSERT INTO inbox (connection_id, raw_event_id, received_at, next_attempt_at) \
             SELECT connection_id, id, received_at, received_at FROM r ORDER BY id) \
             SELECT connection_id, provider_event_id, id FROM r",
        );
        Ok(Self::bind_raw_rows(query, rows)
            .fetch_all(&self.write)
            .await?)
    }

    /// The stored state of `ids` (one kind of one connection), one primary-key lookup each.
    ///
    /// A plain `provider_id IN (...)` let the planner, without statistics for a table that
    /// grew from empty (autovacuum analyzes a minute later at the soonest), scan every object of
    /// the connection and kind and filter by the list: 93 ms per 300 ids at 88,000 invoices,
    /// the cap on a backfill's rate. The `LIMIT` keeps the lateral subquery from being turned
    /// into a join, so each id is an index lookup whatever the statistics say (10 ms per 500).
    async fn select_current(
        pool: &sqlx::PgPool,
        connection_id: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<super::StoredObject>, super::StoreError> {
        // Built once: the column list is shared with SQLite's form of the query.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT o.* FROM UNNEST($3::text[]) AS k(provider_id) CROSS JOIN LATERAL \
                 (SELECT {} FROM objects WHERE connection_id = $1 AND object_type = $2 \
                 AND provider_id = k.provider_id LIMIT 1) o",
                super::sql::CURRENT_COLUMNS
            )
        });
        Ok(sqlx::query_as(SQL.as_str())
            .bind(connection_id)
            .bind(kind)
            .bind(ids)
            .fetch_all(pool)
            .await?)
    }

    /// Inserts new objects (an existing key inserts nothing); returns how many were written.
    async fn insert_objects(
        tx: &mut sqlx::PgConnection,
        b: &super::ApplyBatch,
        inserts: &[&super::ObjectWrite],
    ) -> Result<u64, super::StoreError> {
        let text = |f: for<'a> fn(&'a super::ObjectWrite) -> &'a str| {
            inserts.iter().map(|w| f(w)).collect::<Vec<&str>>()
        };
        let int =
            |f: fn(&super::ObjectWrite) -> i64| inserts.iter().map(|w| f(w)).collect::<Vec<i64>>();
        Ok(sqlx::query(
            "INSERT INTO objects (connection_id, object_type, provider_id, id, merchant_id, \
             version, status, deleted, data, content_hash, order_key, tie_rank, \
             provider_updated_at, updated_at, lease_epoch) \
             SELECT $1::text, t, p, i, $2::text, v, s, d, x, h, o, r, u, $3::int8, $4::int8 \
             FROM UNNEST($5::text[], $6::text[], $7::text[], $8::int8[], $9::text[], $10::bool[], \
             $11::text[], $12::text[], $13::int8[], $14::int8[], $15::int8[]) \
             WITH ORDINALITY AS w(t, p, i, v, s, d, x, h, o, r, u, n) ORDER BY n \
             ON CONFLICT (connection_id, object_type, provider_id) DO NOTHING",
        )
        .bind(&b.connection_id)
        .bind(&b.merchant_id)
        .bind(b.now)
        .bind(b.writer_epoch())
        .bind(text(|w| w.object_type.as_str()))
        .bind(text(|w| w.provider_id.as_str()))
        .bind(text(|w| w.id.as_str()))
        .bind(int(|w| w.version))
        .bind(text(|w| w.status.as_str()))
        .bind(inserts.iter().map(|w| w.deleted).collect::<Vec<bool>>())
        .bind(text(|w| w.data_text.as_str()))
        .bind(text(|w| w.content_hash.as_str()))
        .bind(int(|w| w.order_key))
        .bind(int(|w| w.tie_rank))
        .bind(int(|w| w.provider_updated_at))
        .execute(&mut *tx)
        .await?
        .rows_affected())
    }

    /// Updates objects from the version each replaces (`.1`) to the state its write says,
    /// in one statement. `Some(id)`: the first write whose object was not at the version it
    /// expected (another writer moved it), nothing of the batch to be kept.
    async fn update_objects(
        tx: &mut sqlx::PgConnection,
        b: &super::ApplyBatch,
        updates: &[(&super::ObjectWrite, i64)],
    ) -> Result<Option<String>, super::StoreError> {
        let text = |f: for<'a> fn(&'a super::ObjectWrite) -> &'a str| {
            updates.iter().map(|(w, _)| f(w)).collect::<Vec<&str>>()
        };
        let int = |f: fn(&super::ObjectWrite) -> i64| {
            updates.iter().map(|(w, _)| f(w)).collect::<Vec<i64>>()
        };
        let updated: Vec<String> = sqlx::query_scalar(
            "UPDATE objects o SET version = w.v, status = w.s, deleted = w.d, data = w.x, \
             content_hash = w.h, order_key = w.o, tie_rank = w.r, provider_updated_at = w.u, \
             updated_at = $2, lease_epoch = $3 \
             FROM UNNEST($4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[], $9::bool[], \
             $10::text[], $11::text[], $12::int8[], $13::int8[], $14::int8[]) \
             AS w(t, p, e, v, s, d, x, h, o, r, u) \
             WHERE o.connection_id = $1 AND o.object_type = w.t AND o.provider_id = w.p \
             AND o.version = w.e RETURNING o.id",
        )
        .bind(&b.connection_id)
        .bind(b.now)
        .bind(b.writer_epoch())
        .bind(text(|w| w.object_type.as_str()))
        .bind(text(|w| w.provider_id.as_str()))
        .bind(updates.iter().map(|(_, e)| *e).collect::<Vec<i64>>())
        .bind(int(|w| w.version))
        .bind(text(|w| w.status.as_str()))
        .bind(
            updates
                .iter()
                .map(|(w, _)| w.deleted)
                .collect::<Vec<bool>>(),
        )
        .bind(text(|w| w.data_text.as_str()))
        .bind(text(|w| w.content_hash.as_str()))
        .bind(int(|w| w.order_key))
        .bind(int(|w| w.tie_rank))
        .bind(int(|w| w.provider_updated_at))
        .fetch_all(&mut *tx)
        .await?;
        if updated.len() == updates.len() {
            return Ok(None);
        }
        let updated: std::collections::HashSet<&str> = updated.iter().map(String::as_str).collect();
        Ok(updates
            .iter()
            .find(|(w, _)| !updated.contains(w.id.as_str()))
            .map(|(w, _)| w.id.clone()))
    }

    /// Inserts new versions and their change-feed entries in one statement, numbering the
    /// entries from the merchant's sequence: its row lock orders concurrent writers' change
    /// seqs by commit.
    async fn insert_versions(
        tx: &mut sqlx::PgConnection,
        b: &super::ApplyBatch,
        versions: &[&super::ObjectWrite],
    ) -> Result<(), super::StoreError> {
        let text = |f: for<'a> fn(&'a super::ObjectWrite) -> &'a str| {
            versions.iter().map(|w| f(w)).collect::<Vec<&str>>()
        };
        let int =
            |f: fn(&super::ObjectWrite) -> i64| versions.iter().map(|w| f(w)).collect::<Vec<i64>>();
        let sources: Vec<String> = versions.iter().map(|w| w.source.to_string()).collect();
        sqlx::query(
            "WITH seqs AS (INSERT INTO merchant_seqs (merchant_id, last_seq) VALUES ($1, $4) \
             ON CONFLICT (merchant_id) DO UPDATE \
             SET last_seq = merchant_seqs.last_seq + excluded.last_seq RETURNING last_seq), \
             w AS (SELECT * FROM UNNEST($5::text[], $6::text[], $7::int8[], $8::text[], \
             $9::text[], $10::bool[], $11::text[], $12::int8[], $13::text[], $14::text[]) \
             WITH ORDINALITY AS w(t, p, v, i, s, d, x, u, src, why, n)), \
             kept AS (INSERT INTO object_versions (connection_id, object_type, provider_id, \
             version, id, merchant_id, status, deleted, data, provider_updated_at, recorded_at, \
             source, reason) \
             SELECT $2::text, t, p, v, i, $1::text, s, d, x, u, $3::int8, src, why \
             FROM w ORDER BY n) \
             INSERT INTO changes (merchant_id, seq, connection_id, object_type, id, version, \
             deleted, recorded_at) \
             SELECT $1::text, seqs.last_seq - $4::int8 + w.n, $2::text, t, i, v, d, $3::int8 \
             FROM w CROSS JOIN seqs ORDER BY n",
        )
        .bind(&b.merchant_id)
        .bind(&b.connection_id)
        .bind(b.now)
        .bind(versions.len() as i64)
        .bind(text(|w| w.object_type.as_str()))
        .bind(text(|w| w.provider_id.as_str()))
        .bind(int(|w| w.version))
        .bind(text(|w| w.id.as_str()))
        .bind(text(|w| w.status.as_str()))
        .bind(versions.iter().map(|w| w.deleted).collect::<Vec<bool>>())
        .bind(text(|w| w.data_text.as_str()))
        .bind(int(|w| w.provider_updated_at))
        .bind(&sources)
        .bind(text(|w| w.reason.as_str()))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
