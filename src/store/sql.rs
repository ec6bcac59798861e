//! The SQL of the store, written once and expanded for each backend by [`sql_store!`].
//!
//! Every statement here runs unchanged on SQLite and Postgres (`$N` placeholders, `ON CONFLICT`,
//! `RETURNING`, row values). Dialect differences live in the migrations and in each backend's
//! `open`, so a behaviour difference between the stores cannot hide in duplicated code.
//!
//! What is here: the main trait's SQL (settings, intake's raw events and inbox, and the apply
//! transaction), with the transaction helpers the other groups call (`audit`, `announce`,
//! `checkpoint`). The other table groups are parts of
//! [`super::Store`] in their own files, each a supertrait with its macro expanded in a child
//! module of the backend: connections (`sql_connections.rs`), reads (`sql_reads.rs`), pull
//! jobs, confirmation reads and sweeps (`sql_jobs.rs`), operator actions (`sql_operator.rs`),
//! data quality (`sql_quality.rs`) and the raw archive (`sql_archive.rs`). Callers still hold
//! one `dyn Store`: a supertrait's methods are callable on it without importing it.
//!
//! Rows come back as the store's types, which derive `sqlx::FromRow` (read with `query_as`);
//! the columns kept in another form than their field (enum names, JSON text, zstd bodies)
//! decode as `column_decode.rs` says. So a query names each column as its field is named (or
//! as the field's `#[sqlx(rename)]` says).

/// Connections idle longer than this are pinged before use.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// The pools' liveness check. sqlx pings every connection on every acquire by default: one
/// more round trip per query and per transaction (on Postgres, one more wake-up of a server
/// process each time). A connection in steady use has just proved itself; only one that sat
/// idle a while is pinged (a broken one is dropped and another taken).
pub(super) fn ping_if_idle<'c, C: sqlx::Connection>(
    conn: &'c mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + 'c>> {
    Box::pin(async move {
        if meta.idle_for >= PING_AFTER_IDLE {
            conn.ping().await?;
        }
        Ok(true)
    })
}

/// What a write tells the node that owns its connection, at commit (Postgres `NOTIFY`; a
/// store that serves one node has nobody to tell).
#[derive(Debug, Clone, Copy)]
pub(super) enum Announce {
    /// New inbox rows.
    Inbox,
    /// An admin action on the connection.
    Admin,
}

pub(super) fn sha256_hex(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body))
}

pub(super) const CONNECTION_COLUMNS: &str = "id, merchant_id, provider, account_id, \
    sealed_webhook_secrets, sealed_api_key, api_base_url, rate_limit_per_sec, \
    reconcile_interval_secs, api_version, state, lease_epoch, created_at, updated_at, \
    last_applied_at, last_provider_error_kind, last_provider_error, last_provider_error_at";

pub(super) const OBJECT_VIEW_COLUMNS: &str = "id, merchant_id, connection_id, object_type, \
    version, status, deleted, provider_updated_at, updated_at, data";

pub(super) const VERSION_COLUMNS: &str =
    "version, recorded_at, deleted, status, provider_updated_at, data, source, reason";

/// What [`super::Store::current_objects`] reads of each object.
pub(super) const CURRENT_COLUMNS: &str =
    "object_type, provider_id, version, status, deleted, data, \
    content_hash, order_key, tie_rank, provider_updated_at";

/// Implements [`super::Store`] for a struct with `read` and `write` pools of one sqlx backend.
///
/// The backend provides the few statements whose best form differs by engine
/// (`store_and_queue`, `insert_raw_events`, `open_apply`, `insert_objects`, `update_objects`,
/// `insert_versions`, `select_current`): on Postgres, one array-bound statement of fixed text
/// each, with the apply's steps folded into as few statements as its data allows (each one a
/// round trip to the server, with the transaction held open meanwhile); multi-row `VALUES`
/// or a statement per row on SQLite, where a statement is a call in process.
macro_rules! sql_store {
    ($store:ty, $db:ty) => {
        use async_trait::async_trait;
        use sqlx::{FromRow, QueryBuilder};

        use $crate::model::ObjectType;
        use $crate::store::sql::Announce;
        use $crate::store::*;

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                Self::BACKEND
            }

            fn coordination(&self) -> Option<std::sync::Arc<dyn Coordination>> {
                self.coordination_of_nodes()
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                // Before the unique (merchant, provider) index: say which connections share a
                // pair instead of failing in the middle of a migration. On a new database the
                // table does not exist yet and there is nothing to say.
                if let Ok(rows) = sqlx::query(
                    "SELECT merchant_id, provider, id FROM connections c WHERE EXISTS \
                     (SELECT 1 FROM connections d WHERE d.merchant_id = c.merchant_id \
                     AND d.provider = c.provider AND d.id <> c.id) \
                     ORDER BY merchant_id, provider, created_at, id",
                )
                .fetch_all(&self.write)
                .await
                {
                    // Decoded here rather than by `query_as`: a failure to read the table means
                    // a new database and is passed over, one to decode its rows is not.
                    let pairs: Vec<String> = rows
                        .iter()
                        .map(|r| -> Result<String, StoreError> {
                            let (merchant, provider, id) = <(String, String, String)>::from_row(r)?;
                            Ok(format!("{merchant} {provider} {id}"))
                        })
                        .collect::<Result<_, _>>()?;
                    if !pairs.is_empty() {
                        return Err(StoreError::DuplicateConnections(pairs.join(", ")));
                    }
                }
                Self::MIGRATOR.run(&self.write).await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.read).await?;
                Ok(())
            }

            async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.read)
                    .await?)
            }

            async fn put_setting_if_absent(
                &self,
                key: &str,
                value: &str,
            ) -> Result<String, StoreError> {
                let mut tx = self.write.begin().await?;
                sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                let stored: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn ingest(&self, events: &[IncomingEvent]) -> Result<Vec<IngestOutcome>, StoreError> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                // Insert in key order so concurrent batches cannot deadlock on the unique index.
                let mut order: Vec<usize> = (0..events.len()).collect();
                order.sort_by(|&a, &b| {
                    (&events[a].connection_id, &events[a].provider_event_id)
                        .cmp(&(&events[b].connection_id, &events[b].provider_event_id))
                });
                let rows: Vec<&IncomingEvent> = order.iter().map(|&i| &events[i]).collect();
                // The raw events and their inbox rows, atomically: a key already stored (or
                // repeated within the batch) inserts nothing and returns nothing.
                let mut stored = std::collections::HashMap::new();
                for (connection_id, provider_event_id, id) in self.store_and_queue(&rows).await? {
                    stored.insert((connection_id, provider_event_id), id);
                }
                let mut outcomes = vec![IngestOutcome::Duplicate; events.len()];
                for &i in &order {
                    let e = &events[i];
                    let key = (e.connection_id.clone(), e.provider_event_id.clone());
                    // The first occurrence of a key in the batch took the stored row.
                    if let Some(raw_event_id) = stored.remove(&key) {
                        outcomes[i] = IngestOutcome::Stored { raw_event_id };
                    }
                }
                Ok(outcomes)
            }

            async fn connections_with_due_work(
                &self,
                now: i64,
                limit: i64,
            ) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT DISTINCT i.connection_id FROM inbox i \
                     JOIN connections c ON c.id = i.connection_id \
                     WHERE i.dead = FALSE AND i.next_attempt_at <= $1 AND c.state = 'active' \
                     LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            async fn due_inbox(
                &self,
                connection_id: &str,
                now: i64,
                limit: i64,
            ) -> Result<Vec<InboxItem>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT i.id AS inbox_id, i.raw_event_id, r.provider_event_id, r.event_type, \
                     r.source, i.received_at, i.attempts, i.replay, r.body_zstd FROM inbox i \
                     JOIN raw_events r ON r.id = i.raw_event_id \
                     WHERE i.connection_id = $1 AND i.dead = FALSE AND i.next_attempt_at <= $2 \
                     ORDER BY i.id LIMIT $3",
                )
                .bind(connection_id)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            async fn retry_inbox(
                &self,
                inbox_ids: &[i64],
                next_attempt_at: i64,
                error: &str,
                max_attempts: i64,
            ) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await?;
                for id in inbox_ids {
                    sqlx::query(
                        "UPDATE inbox SET attempts = attempts + 1, next_attempt_at = $1, \
                         last_error = $2, dead = (attempts + 1 >= $3), \
                         dead_at = CASE WHEN attempts + 1 >= $3 THEN $5 END WHERE id = $4",
                    )
                    .bind(next_attempt_at)
                    .bind(error)
                    .bind(max_attempts)
                    .bind(id)
                    .bind(crate_now())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn inbox_depth(&self) -> Result<InboxDepth, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT COALESCE(SUM(CASE WHEN dead THEN 0 ELSE 1 END), 0) AS pending, \
                     COALESCE(SUM(CASE WHEN dead THEN 1 ELSE 0 END), 0) AS dead FROM inbox",
                )
                .fetch_one(&self.read)
                .await?)
            }

            async fn current_objects(
                &self,
                connection_id: &str,
                keys: &[(ObjectType, String)],
            ) -> Result<Vec<StoredObject>, StoreError> {
                let mut found = Vec::with_capacity(keys.len());
                for kind in ObjectType::ALL {
                    let ids: Vec<&str> = keys.iter().filter(|(t, _)| *t == kind).map(|(_, id)| id.as_str()).collect();
                    for chunk in ids.chunks(500) {
                        found.extend(Self::select_current(&self.read, connection_id, kind.as_str(), chunk).await?);
                    }
                }
                Ok(found)
            }

            async fn apply(&self, b: &ApplyBatch) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await?;
                Self::apply_in(&mut tx, b).await?;
                tx.commit().await?;
                self.inbox_rows_deleted(b.applied_inbox_ids.len());
                self.objects_written(b.writes.len());
                Ok(())
            }

            async fn apply_all(&self, batches: &[ApplyBatch]) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await?;
                for b in batches {
                    Self::apply_in(&mut tx, b).await?;
                }
                tx.commit().await?;
                self.inbox_rows_deleted(batches.iter().map(|b| b.applied_inbox_ids.len()).sum());
                self.objects_written(batches.iter().map(|b| b.writes.len()).sum());
                Ok(())
            }

            async fn enqueue_replay(
                &self,
                connection_id: &str,
                from: i64,
                to: i64,
                audit: &AuditEntry,
            ) -> Result<u64, StoreError> {
                let mut tx = self.write.begin().await?;
                let queued = sqlx::query(
                    "INSERT INTO inbox (connection_id, raw_event_id, received_at, next_attempt_at, replay) \
                     SELECT connection_id, id, received_at, $1, TRUE FROM raw_events \
                     WHERE connection_id = $2 AND received_at >= $3 AND received_at <= $4 ORDER BY id",
                )
                .bind(audit.at)
                .bind(connection_id)
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                Self::announce(&mut tx, Announce::Inbox, connection_id).await?;
                Self::audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(queued)
            }

            async fn raw_event_ids(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT provider_event_id FROM raw_events WHERE connection_id = $1 ORDER BY id",
                )
                .bind(connection_id)
                .fetch_all(&self.read)
                .await?)
            }
        }

        fn crate_now() -> i64 {
            $crate::model::time::now_micros()
        }

        impl $store {
            /// Ends a change of one connection row: its audit entry, in the same transaction,
            /// and the row as changed (`None`, nothing written, when there was no such row).
            async fn finish_connection_change(
                mut tx: sqlx::Transaction<'_, $db>,
                record: Option<ConnectionRecord>,
                audit: &AuditEntry,
            ) -> Result<Option<ConnectionRecord>, StoreError> {
                let Some(record) = record else {
                    return Ok(None);
                };
                Self::audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(Some(record))
            }

            /// One apply batch inside a transaction (see [`Store::apply`]).
            async fn apply_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                b: &ApplyBatch,
            ) -> Result<(), StoreError> {
                // Fencing: only the holder of the shard's current lease may write (a node
                // frozen past its lease, or one that lost it, is refused here), and only to a
                // connection that still exists.
                if !Self::open_apply(tx, b).await? {
                    return Err(StoreError::Fenced(b.connection_id.clone()));
                }
                // The `objects` table takes each object's net change: its state after the
                // batch's last write, from the version its first write expected (an insert
                // when that was none). Its versions all go to `object_versions`.
                let (inserts, updates) =
                    super::net_writes::net_object_writes(&b.writes).map_err(StoreError::Conflict)?;
                if !inserts.is_empty() {
                    let written = Self::insert_objects(tx, b, &inserts).await?;
                    if written != inserts.len() as u64 {
                        return Err(StoreError::Conflict(format!(
                            "{} of {} new objects already existed",
                            inserts.len() as u64 - written,
                            inserts.len()
                        )));
                    }
                }
                if !updates.is_empty() {
                    if let Some(id) = Self::update_objects(tx, b, &updates).await? {
                        return Err(StoreError::Conflict(id));
                    }
                }
                let versions: Vec<&ObjectWrite> =
                    b.writes.iter().filter(|w| w.is_new_version()).collect();
                if !versions.is_empty() {
                    Self::insert_versions(tx, b, &versions).await?;
                }
                let findings: Vec<(&ObjectWrite, &(String, String))> = b
                    .writes
                    .iter()
                    .filter(|w| w.is_new_version())
                    .flat_map(|w| w.findings.iter().map(move |f| (w, f)))
                    .collect();
                for chunk in findings.chunks(300) {
                    let mut q = QueryBuilder::<$db>::new(
                        "INSERT INTO quality_findings (connection_id, object_type, provider_id, \
                         version, id, merchant_id, code, message, recorded_at) ",
                    );
                    q.push_values(chunk, |mut row, (w, (code, message))| {
                        row.push_bind(b.connection_id.as_str())
                            .push_bind(w.object_type.as_str())
                            .push_bind(w.provider_id.as_str())
                            .push_bind(w.version)
                            .push_bind(w.id.as_str())
                            .push_bind(b.merchant_id.as_str())
                            .push_bind(code.as_str())
                            .push_bind(message.as_str())
                            .push_bind(b.now);
                    });
                    q.push(" ON CONFLICT DO NOTHING");
                    q.build().execute(&mut **tx).await?;
                }
                for chunk in b.observations.chunks(200) {
                    let rows: Vec<&IncomingEvent> = chunk.iter().collect();
                    Self::insert_raw_events(tx, &rows).await?;
                }
                for c in &b.checkpoints {
                    Self::checkpoint(tx, &b.connection_id, c, true, b.now).await?;
                }
                for r in &b.schedule_refetches {
                    sqlx::query(
                        "INSERT INTO refetches (connection_id, object_type, provider_id, due_at, \
                         attempts, first_seen_at, priority) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (connection_id, object_type, provider_id) DO UPDATE SET \
                         due_at = CASE WHEN excluded.due_at > refetches.due_at \
                         THEN excluded.due_at ELSE refetches.due_at END, \
                         priority = CASE WHEN excluded.priority < refetches.priority \
                         THEN excluded.priority ELSE refetches.priority END",
                    )
                    .bind(&b.connection_id)
                    .bind(r.object_type.as_str())
                    .bind(&r.provider_id)
                    .bind(r.due_at)
                    .bind(r.attempts)
                    .bind(r.first_seen_at)
                    .bind(r.priority)
                    .execute(&mut **tx)
                    .await?;
                }
                for r in &b.settled_refetches {
                    sqlx::query(
                        "DELETE FROM refetches WHERE connection_id = $1 AND object_type = $2 \
                         AND provider_id = $3 AND due_at <= $4",
                    )
                    .bind(&b.connection_id)
                    .bind(r.object_type.as_str())
                    .bind(&r.provider_id)
                    .bind(r.due_at)
                    .execute(&mut **tx)
                    .await?;
                }
                for (id, reason) in &b.dead_letters {
                    sqlx::query(
                        "UPDATE inbox SET dead = TRUE, attempts = attempts + 1, last_error = $1, \
                         dead_at = $3 WHERE id = $2",
                    )
                    .bind(reason)
                    .bind(id)
                    .bind(crate_now())
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            /// Advances a window (`page`: a page was read) or only counts its requests.
            async fn checkpoint(
                tx: &mut sqlx::Transaction<'_, $db>,
                connection_id: &str,
                c: &WindowCheckpoint,
                page: bool,
                now: i64,
            ) -> Result<(), StoreError> {
                let done = if page {
                    sqlx::query(
                        "UPDATE sync_windows SET cursor = $1, reached = $2, done = $3, \
                         objects = objects + $4, pages = pages + 1, requests = requests + $5, \
                         updated_at = $6 WHERE connection_id = $7 AND job = $8 AND stream = $9 \
                         AND window_start = $10",
                    )
                    .bind(&c.cursor)
                    .bind(c.reached)
                    .bind(c.done)
                    .bind(c.objects)
                } else {
                    sqlx::query(
                        "UPDATE sync_windows SET requests = requests + $1, updated_at = $2 \
                         WHERE connection_id = $3 AND job = $4 AND stream = $5 AND window_start = $6",
                    )
                };
                done.bind(c.requests)
                    .bind(now)
                    .bind(connection_id)
                    .bind(&c.job)
                    .bind(&c.stream)
                    .bind(c.window_start)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn audit(
                tx: &mut sqlx::Transaction<'_, $db>,
                a: &AuditEntry,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(a.at)
                .bind(&a.actor)
                .bind(&a.action)
                .bind(&a.target)
                .bind(a.detail.to_string())
                .execute(&mut **tx)
                .await?;
                // Whichever node owns the target learns of the change at commit.
                Self::announce(tx, Announce::Admin, &a.target).await
            }
        }
    };
}

pub(super) use sql_store;
