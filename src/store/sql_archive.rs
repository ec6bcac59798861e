//! The SQL of [`super::ArchiveStore`] (the raw archive's reads, its segment records, the trim
//! and the restore), written once and expanded for each backend by [`sql_archive_store!`],
//! like `sql_operator.rs`: inside a child module of the backend's module, so the store is
//! named `super::SqliteStore` and its pools and the operator SQL's `audit` are in reach.
//!
//! The table's guards (migration 0017) allow exactly what is written here: the marking of a
//! row with a recorded segment, and the delete of a marked row.

macro_rules! sql_archive_store {
    ($store:ty, $db:ty) => {
        mod archive_sql {
            use async_trait::async_trait;
            use sqlx::QueryBuilder;

            use $crate::store::{
                ArchiveStore, AuditEntry, RawEventCursor, SegmentRecord, StoreError,
                StoredRawEvent,
            };

            /// Ids per marking statement (well under either backend's bind limit).
            const CHUNK: usize = 500;

            const RAW_COLUMNS: &str = "id, connection_id, provider_event_id, event_type, \
                source, received_at, body_zstd, body_sha256";

            const SEGMENT_COLUMNS: &str = "seq, partition_start, partition_end, manifest_key, \
                manifest_sha256, events, recorded_at";

            #[async_trait]
            impl ArchiveStore for $store {
                async fn oldest_unarchived(&self, before: i64) -> Result<Option<i64>, StoreError> {
                    Ok(sqlx::query_scalar(
                        "SELECT MIN(received_at) FROM raw_events \
                         WHERE archive_segment IS NULL AND received_at < $1",
                    )
                    .bind(before)
                    .fetch_one(&self.read)
                    .await?)
                }

                async fn unarchived_page(
                    &self,
                    from: i64,
                    to: i64,
                    cursor: &RawEventCursor,
                    limit: i64,
                ) -> Result<Vec<StoredRawEvent>, StoreError> {
                    Ok(sqlx::query_as(&format!(
                        "SELECT {RAW_COLUMNS} FROM raw_events \
                         WHERE archive_segment IS NULL AND received_at >= $1 AND received_at < $2 \
                         AND (connection_id > $3 OR (connection_id = $3 AND id > $4)) \
                         ORDER BY connection_id, id LIMIT $5"
                    ))
                    .bind(from)
                    .bind(to)
                    .bind(&cursor.connection_id)
                    .bind(cursor.id)
                    .bind(limit)
                    .fetch_all(&self.read)
                    .await?)
                }

                async fn last_segment(&self) -> Result<Option<SegmentRecord>, StoreError> {
                    Ok(sqlx::query_as(&format!(
                        "SELECT {SEGMENT_COLUMNS} FROM archive_segments ORDER BY seq DESC LIMIT 1"
                    ))
                    .fetch_optional(&self.read)
                    .await?)
                }

                async fn segments_overlapping(
                    &self,
                    from: i64,
                    to: i64,
                ) -> Result<Vec<SegmentRecord>, StoreError> {
                    Ok(sqlx::query_as(&format!(
                        "SELECT {SEGMENT_COLUMNS} FROM archive_segments \
                         WHERE partition_start <= $2 AND partition_end > $1 ORDER BY seq"
                    ))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.read)
                    .await?)
                }

                async fn record_segment(
                    &self,
                    s: &SegmentRecord,
                    ids: &[i64],
                ) -> Result<u64, StoreError> {
                    let mut tx = self.write.begin().await?;
                    sqlx::query(&format!(
                        "INSERT INTO archive_segments ({SEGMENT_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    ))
                    .bind(s.seq)
                    .bind(s.partition_start)
                    .bind(s.partition_end)
                    .bind(&s.manifest_key)
                    .bind(&s.manifest_sha256)
                    .bind(s.events)
                    .bind(s.recorded_at)
                    .execute(&mut *tx)
                    .await?;
                    let mut marked = 0;
                    for chunk in ids.chunks(CHUNK) {
                        let mut q = QueryBuilder::<$db>::new("UPDATE raw_events SET archive_segment = ");
                        q.push_bind(s.seq);
                        q.push(" WHERE archive_segment IS NULL AND id IN (");
                        let mut list = q.separated(", ");
                        for id in chunk {
                            list.push_bind(*id);
                        }
                        q.push(")");
                        marked += q.build().execute(&mut *tx).await?.rows_affected();
                    }
                    tx.commit().await?;
                    Ok(marked)
                }

                async fn trim_archived(
                    &self,
                    before: i64,
                    limit: i64,
                    audit: &AuditEntry,
                ) -> Result<u64, StoreError> {
                    let mut tx = self.write.begin().await?;
                    let deleted = sqlx::query(
                        "DELETE FROM raw_events WHERE id IN (SELECT r.id FROM raw_events r \
                         WHERE r.archive_segment IS NOT NULL AND r.received_at < $1 \
                         AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.raw_event_id = r.id) \
                         ORDER BY r.id LIMIT $2)",
                    )
                    .bind(before)
                    .bind(limit)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if deleted > 0 {
                        let mut entry = audit.clone();
                        if let Some(detail) = entry.detail.as_object_mut() {
                            detail.insert("deleted".into(), deleted.into());
                        }
                        super::operator_sql::audit(&mut tx, &entry).await?;
                    }
                    tx.commit().await?;
                    Ok(deleted)
                }

                async fn restore_raw_events(
                    &self,
                    events: &[StoredRawEvent],
                    segment: i64,
                ) -> Result<u64, StoreError> {
                    let mut tx = self.write.begin().await?;
                    let mut restored = 0;
                    for e in events {
                        restored += sqlx::query(
                            "INSERT INTO raw_events (connection_id, provider_event_id, event_type, \
                             source, received_at, body_zstd, body_sha256, archive_segment) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                             ON CONFLICT (connection_id, provider_event_id) DO NOTHING",
                        )
                        .bind(&e.connection_id)
                        .bind(&e.provider_event_id)
                        .bind(&e.event_type)
                        .bind(&e.source)
                        .bind(e.received_at)
                        .bind(&e.body_zstd)
                        .bind(&e.body_sha256)
                        .bind(segment)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    tx.commit().await?;
                    Ok(restored)
                }

                async fn raw_event_counts(&self) -> Result<(i64, i64), StoreError> {
                    Ok(sqlx::query_as(
                        "SELECT COUNT(*) AS n, COUNT(archive_segment) AS archived FROM raw_events",
                    )
                    .fetch_one(&self.read)
                    .await?)
                }
            }
        }
    };
}

pub(super) use sql_archive_store;
