//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a 200 survives
//! power loss. One write connection serialises writers; readers use their own pool.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::sql::sql_store;
use super::sql_archive::sql_archive_store;
use super::sql_connections::sql_connections_store;
use super::sql_jobs::sql_jobs_store;
use super::sql_operator::sql_operator_store;
use super::sql_quality::sql_quality_store;
use super::sql_reads::sql_reads_store;

/// SQLite implementation of [`super::Store`].
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

    /// Opens (creating it and its folder when missing) the database at `url`.
    pub async fn open(url: &str) -> Result<Self, super::StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
            }
        }
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .before_acquire(super::sql::ping_if_idle)
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .before_acquire(super::sql::ping_if_idle)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { read, write })
    }
}

sql_store!(SqliteStore, sqlx::Sqlite);
sql_operator_store!(super::SqliteStore, sqlx::Sqlite);
sql_quality_store!(super::SqliteStore, sqlx::Sqlite);
sql_archive_store!(super::SqliteStore, sqlx::Sqlite);
sql_connections_store!(super::SqliteStore, sqlx::Sqlite);
sql_jobs_store!(super::SqliteStore, sqlx::Sqlite);
sql_reads_store!(super::SqliteStore, sqlx::Sqlite);

/// Appends ` IN (?, ?, …)` with one bound value per item.
fn push_in_list<'a, T>(
    q: &mut sqlx::QueryBuilder<'a, sqlx::Sqlite>,
    items: impl IntoIterator<Item = T>,
) where
    T: 'a + sqlx::Encode<'a, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    q.push(" IN (");
    let mut sep = q.separated(", ");
    for item in items {
        sep.push_bind(item);
    }
    q.push(")");
}

impl SqliteStore {
    /// Applied inbox rows are gone once deleted here: SQLite keeps no dead row versions.
    fn inbox_rows_deleted(&self, _rows: usize) {}

    /// SQLite's planner uses the primary keys and indexes without statistics.
    fn objects_written(&self, _rows: usize) {}

    /// One node owns everything: no cluster to coordinate.
    fn coordination_of_nodes(&self) -> Option<Arc<dyn super::Coordination>> {
        None
    }

    /// Opens an apply transaction: stamps the connection's `last_applied_at` and deletes the
    /// inbox rows the batch applies. `false` when the connection is gone. Batches here carry
    /// no fence: this store's only node writes unfenced (its file lock keeps a second node
    /// out).
    async fn open_apply(
        tx: &mut sqlx::SqliteConnection,
        b: &super::ApplyBatch,
    ) -> Result<bool, super::StoreError> {
        let touched = sqlx::query("UPDATE connections SET last_applied_at = $1 WHERE id = $2")
            .bind(b.now)
            .bind(&b.connection_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if touched == 0 {
            return Ok(false);
        }
        for chunk in b.applied_inbox_ids.chunks(500) {
            Self::delete_inbox(tx, chunk).await?;
        }
        Ok(true)
    }

    /// Updates objects from the version each replaces (`.1`) to the state its write says, one
    /// statement each (in process, a statement costs no round trip). `Some(id)`: the first
    /// write whose object was not at the version it expected.
    async fn update_objects(
        tx: &mut sqlx::SqliteConnection,
        b: &super::ApplyBatch,
        updates: &[(&super::ObjectWrite, i64)],
    ) -> Result<Option<String>, super::StoreError> {
        for (w, expected) in updates {
            let written = sqlx::query(
                "UPDATE objects SET version = $1, status = $2, deleted = $3, data = $4, \
                 content_hash = $5, order_key = $6, tie_rank = $7, \
                 provider_updated_at = $8, updated_at = $9, lease_epoch = $10 \
                 WHERE connection_id = $11 AND object_type = $12 AND provider_id = $13 \
                 AND version = $14",
            )
            .bind(w.version)
            .bind(w.status.as_str())
            .bind(w.deleted)
            .bind(&w.data_text)
            .bind(&w.content_hash)
            .bind(w.order_key)
            .bind(w.tie_rank)
            .bind(w.provider_updated_at)
            .bind(b.now)
            .bind(b.writer_epoch())
            .bind(&b.connection_id)
            .bind(w.object_type.as_str())
            .bind(&w.provider_id)
            .bind(expected)
            .execute(&mut *tx)
            .await?;
            if written.rows_affected() == 0 {
                return Ok(Some(w.id.clone()));
            }
        }
        Ok(None)
    }

    /// One node: the writer tells its own supervisor in process.
    async fn announce(
        _tx: &mut sqlx::SqliteConnection,
        _what: super::sql::Announce,
        _connection_id: &str,
    ) -> Result<(), super::StoreError> {
        Ok(())
    }

    /// Inserts raw events in one multi-row statement; a key already stored (or repeated in
    /// `rows`) inserts nothing. Returns (connection, provider event id, id) of the new rows.
    async fn insert_raw_events(
        tx: &mut sqlx::SqliteConnection,
        rows: &[&super::IncomingEvent],
    ) -> Result<Vec<(String, String, i64)>, super::StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO raw_events (connection_id, provider_event_id, event_type, source, \
             received_at, body_zstd, body_sha256) ",
        );
        q.push_values(rows, |mut b, e| {
            b.push_bind(e.connection_id.as_str())
                .push_bind(e.provider_event_id.as_str())
                .push_bind(e.event_type.as_str())
                .push_bind(e.source)
                .push_bind(e.received_at)
                .push_bind(e.body.zstd())
                .push_bind(e.body.sha256());
        });
        q.push(
            " ON CONFLICT (connection_id, provider_event_id) DO NOTHING \
             RETURNING connection_id, provider_event_id, id",
        );
        Ok(q.build_query_as().fetch_all(&mut *tx).await?)
    }

    /// Stores raw events and queues the new ones for applying, in the order given, in one
    /// transaction. Returns (connection, provider event id, id) of the new rows.
    async fn store_and_queue(
        &self,
        rows: &[&super::IncomingEvent],
    ) -> Result<Vec<(String, String, i64)>, super::StoreError> {
        let mut tx = self.write.begin().await?;
        let stored = Self::insert_raw_events(&mut tx, rows).await?;
        let mut ids: std::collections::HashMap<(&str, &str), i64> = stored
            .iter()
            .map(|(c, p, id)| ((c.as_str(), p.as_str()), *id))
            .collect();
        let inbox: Vec<(&super::IncomingEvent, i64)> = rows
            .iter()
            .filter_map(|e| {
                ids.remove(&(e.connection_id.as_str(), e.provider_event_id.as_str()))
                    .map(|id| (*e, id))
            })
            .collect();
        if !inbox.is_empty() {
            Self::insert_inbox(&mut tx, &inbox).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Queues stored raw events for applying, in the order given.
    async fn insert_inbox(
        tx: &mut sqlx::SqliteConnection,
        rows: &[(&super::IncomingEvent, i64)],
    ) -> Result<(), super::StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO inbox (connection_id, raw_event_id, received_at, next_attempt_at) ",
        );
        q.push_values(rows, |mut b, (e, raw_event_id)| {
            b.push_bind(e.connection_id.as_str())
                .push_bind(*raw_event_id)
                .push_bind(e.received_at)
                .push_bind(e.received_at);
        });
        q.build().execute(&mut *tx).await?;
        Ok(())
    }

    /// The stored state of `ids` (one kind of one connection): SQLite looks an `IN` list up
    /// through the primary key.
    async fn select_current(
        pool: &sqlx::SqlitePool,
        connection_id: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<super::StoredObject>, super::StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
            "SELECT {} FROM objects WHERE connection_id = ",
            super::sql::CURRENT_COLUMNS
        ));
        q.push_bind(connection_id.to_owned());
        q.push(" AND object_type = ").push_bind(kind.to_owned());
        q.push(" AND provider_id");
        push_in_list(&mut q, ids.iter().map(|id| id.to_string()));
        Ok(q.build_query_as().fetch_all(pool).await?)
    }

    /// Deletes applied inbox rows.
    async fn delete_inbox(
        tx: &mut sqlx::SqliteConnection,
        ids: &[i64],
    ) -> Result<(), super::StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("DELETE FROM inbox WHERE id");
        push_in_list(&mut q, ids.iter().copied());
        q.build().execute(&mut *tx).await?;
        Ok(())
    }

    /// Inserts new objects (an existing key inserts nothing); returns how many were written.
    async fn insert_objects(
        tx: &mut sqlx::SqliteConnection,
        b: &super::ApplyBatch,
        inserts: &[&super::ObjectWrite],
    ) -> Result<u64, super::StoreError> {
        let mut written = 0;
        for chunk in inserts.chunks(300) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO objects (connection_id, object_type, provider_id, id, \
                 merchant_id, version, status, deleted, data, content_hash, order_key, \
                 tie_rank, provider_updated_at, updated_at, lease_epoch) ",
            );
            q.push_values(chunk, |mut row, w| {
                row.push_bind(b.connection_id.as_str())
                    .push_bind(w.object_type.as_str())
                    .push_bind(w.provider_id.as_str())
                    .push_bind(w.id.as_str())
                    .push_bind(b.merchant_id.as_str())
                    .push_bind(w.version)
                    .push_bind(w.status.as_str())
                    .push_bind(w.deleted)
                    .push_bind(w.data_text.as_str())
                    .push_bind(w.content_hash.as_str())
                    .push_bind(w.order_key)
                    .push_bind(w.tie_rank)
                    .push_bind(w.provider_updated_at)
                    .push_bind(b.now)
                    .push_bind(b.writer_epoch());
            });
            q.push(" ON CONFLICT (connection_id, object_type, provider_id) DO NOTHING");
            written += q.build().execute(&mut *tx).await?.rows_affected();
        }
        Ok(written)
    }

    /// Inserts new versions and their change-feed entries, numbered from the merchant's
    /// sequence.
    async fn insert_versions(
        tx: &mut sqlx::SqliteConnection,
        b: &super::ApplyBatch,
        versions: &[&super::ObjectWrite],
    ) -> Result<(), super::StoreError> {
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO merchant_seqs (merchant_id, last_seq) VALUES ($1, $2) \
             ON CONFLICT (merchant_id) DO UPDATE \
             SET last_seq = merchant_seqs.last_seq + excluded.last_seq RETURNING last_seq",
        )
        .bind(&b.merchant_id)
        .bind(versions.len() as i64)
        .fetch_one(&mut *tx)
        .await?;
        let first = last - versions.len() as i64 + 1;
        let versions: Vec<(&super::ObjectWrite, i64)> =
            versions.iter().copied().zip(first..).collect();
        for chunk in versions.chunks(500) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO object_versions (connection_id, object_type, provider_id, version, \
                 id, merchant_id, status, deleted, data, provider_updated_at, recorded_at, \
                 source, reason) ",
            );
            q.push_values(chunk, |mut row, (w, _)| {
                row.push_bind(b.connection_id.as_str())
                    .push_bind(w.object_type.as_str())
                    .push_bind(w.provider_id.as_str())
                    .push_bind(w.version)
                    .push_bind(w.id.as_str())
                    .push_bind(b.merchant_id.as_str())
                    .push_bind(w.status.as_str())
                    .push_bind(w.deleted)
                    .push_bind(w.data_text.as_str())
                    .push_bind(w.provider_updated_at)
                    .push_bind(b.now)
                    .push_bind(w.source.to_string())
                    .push_bind(w.reason.as_str());
            });
            q.build().execute(&mut *tx).await?;
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO changes (merchant_id, seq, connection_id, object_type, id, \
                 version, deleted, recorded_at) ",
            );
            q.push_values(chunk, |mut row, (w, seq)| {
                row.push_bind(b.merchant_id.as_str())
                    .push_bind(*seq)
                    .push_bind(b.connection_id.as_str())
                    .push_bind(w.object_type.as_str())
                    .push_bind(w.id.as_str())
                    .push_bind(w.version)
                    .push_bind(w.deleted)
                    .push_bind(b.now);
            });
            q.build().execute(&mut *tx).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SqliteStore;
    use crate::store::{OperatorStore, Store, StoreError};

    /// Rows decode through `sqlx::FromRow` (`column_decode.rs`): a stored value its field
    /// cannot hold is an error naming the column and the value, never a default.
    #[tokio::test]
    async fn a_stored_value_its_field_cannot_hold_is_an_error_naming_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.migrate().await.unwrap();

        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail) \
             VALUES (1, 'cli:test', 'test', 'nothing', '{')",
        )
        .execute(&store.write)
        .await
        .unwrap();
        let err = store.audit_log(0, 10).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Database(_)), "{text}");
        assert!(
            text.contains("detail") && text.contains("stored JSON"),
            "{text}"
        );

        sqlx::query(
            "INSERT INTO api_tokens (id, name, scope, digest, created_at) \
             VALUES ('t1', 'test', 'root', 'digest', 1)",
        )
        .execute(&store.write)
        .await
        .unwrap();
        let text = store.list_tokens().await.unwrap_err().to_string();
        assert!(
            text.contains("scope") && text.contains("token scope `root`"),
            "{text}"
        );
    }
}
