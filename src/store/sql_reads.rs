//! The SQL of [`super::ReadStore`] (objects, versions, the change feed, status counts),
//! written once and expanded for each backend by [`sql_reads_store!`], like `sql_operator.rs`:
//! inside a child module of the backend's module, so the store is named `super::SqliteStore`
//! and its read pool is in reach.

macro_rules! sql_reads_store {
    ($store:ty, $db:ty) => {
        mod reads_sql {
            use async_trait::async_trait;
            use sqlx::{QueryBuilder, Row};

            use $crate::model::ObjectType;
            use $crate::store::sql::{self, OBJECT_VIEW_COLUMNS, VERSION_COLUMNS};
            use $crate::store::{
                Backlog, ChangeView, ListQuery, ObjectView, ReadStore, StatusCount, StoreError,
                VersionView,
            };

            type DbRow = <$db as sqlx::Database>::Row;

            fn decode_object_view(row: &DbRow) -> Result<ObjectView, StoreError> {
                Ok(ObjectView {
                    id: row.try_get("id")?,
                    merchant_id: row.try_get("merchant_id")?,
                    connection_id: row.try_get("connection_id")?,
                    object_type: sql::object_type(&row.try_get::<String, _>("object_type")?)?,
                    version: row.try_get("version")?,
                    status: sql::status(&row.try_get::<String, _>("status")?)?,
                    deleted: row.try_get("deleted")?,
                    provider_updated_at: row.try_get("provider_updated_at")?,
                    updated_at: row.try_get("updated_at")?,
                    data: sql::json(&row.try_get::<String, _>("data")?)?,
                })
            }

            fn decode_version(row: &DbRow) -> Result<VersionView, StoreError> {
                Ok(VersionView {
                    version: row.try_get("version")?,
                    recorded_at: row.try_get("recorded_at")?,
                    deleted: row.try_get("deleted")?,
                    status: sql::status(&row.try_get::<String, _>("status")?)?,
                    provider_updated_at: row.try_get("provider_updated_at")?,
                    data: sql::json(&row.try_get::<String, _>("data")?)?,
                    source: sql::json(&row.try_get::<String, _>("source")?)?,
                    reason: row.try_get("reason")?,
                })
            }

            #[async_trait]
            impl ReadStore for $store {
            async fn read_object(
                &self,
                merchant_id: &str,
                object_type: ObjectType,
                id: &str,
                as_of: Option<i64>,
            ) -> Result<Option<ObjectView>, StoreError> {
                let Some(at) = as_of else {
                    let sql = format!(
                        "SELECT {OBJECT_VIEW_COLUMNS} FROM objects WHERE merchant_id = $1 \
                         AND object_type = $2 AND id = $3 ORDER BY updated_at DESC LIMIT 1"
                    );
                    return sqlx::query(&sql)
                        .bind(merchant_id)
                        .bind(object_type.as_str())
                        .bind(id)
                        .fetch_optional(&self.read)
                        .await?
                        .as_ref()
                        .map(decode_object_view)
                        .transpose();
                };
                let row = sqlx::query(
                    "SELECT id, merchant_id, connection_id, object_type, version, status, deleted, \
                     provider_updated_at, recorded_at AS updated_at, data FROM object_versions \
                     WHERE merchant_id = $1 AND object_type = $2 AND id = $3 AND recorded_at <= $4 \
                     ORDER BY recorded_at DESC, version DESC LIMIT 1",
                )
                .bind(merchant_id)
                .bind(object_type.as_str())
                .bind(id)
                .bind(at)
                .fetch_optional(&self.read)
                .await?;
                row.as_ref().map(decode_object_view).transpose()
            }

            async fn list_objects(
                &self,
                merchant_id: &str,
                object_type: ObjectType,
                query: &ListQuery,
            ) -> Result<Vec<ObjectView>, StoreError> {
                let mut q = QueryBuilder::<$db>::new(format!(
                    "SELECT {OBJECT_VIEW_COLUMNS} FROM objects WHERE merchant_id = "
                ));
                q.push_bind(merchant_id.to_owned());
                q.push(" AND object_type = ").push_bind(object_type.as_str());
                if let Some(t) = query.updated_after {
                    q.push(" AND updated_at > ").push_bind(t);
                }
                if let Some(s) = query.status {
                    q.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some((at, id)) = &query.after {
                    q.push(" AND (updated_at, id) > (")
                        .push_bind(*at)
                        .push(", ")
                        .push_bind(id.clone())
                        .push(")");
                }
                q.push(" ORDER BY updated_at, id LIMIT ").push_bind(query.limit);
                q.build()
                    .fetch_all(&self.read)
                    .await?
                    .iter()
                    .map(decode_object_view)
                    .collect()
            }

            async fn object_versions(
                &self,
                merchant_id: &str,
                object_type: ObjectType,
                id: &str,
            ) -> Result<Vec<VersionView>, StoreError> {
                let sql = format!(
                    "SELECT {VERSION_COLUMNS} FROM object_versions WHERE merchant_id = $1 \
                     AND object_type = $2 AND id = $3 ORDER BY recorded_at, version"
                );
                sqlx::query(&sql)
                    .bind(merchant_id)
                    .bind(object_type.as_str())
                    .bind(id)
                    .fetch_all(&self.read)
                    .await?
                    .iter()
                    .map(decode_version)
                    .collect()
            }

            async fn changes(
                &self,
                merchant_id: &str,
                after: i64,
                limit: i64,
            ) -> Result<Vec<ChangeView>, StoreError> {
                let rows = sqlx::query(
                    "SELECT seq, id, connection_id, object_type, version, deleted, recorded_at \
                     FROM changes WHERE merchant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(merchant_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(ChangeView {
                            seq: row.try_get("seq")?,
                            id: row.try_get("id")?,
                            connection_id: row.try_get("connection_id")?,
                            object_type: sql::object_type(&row.try_get::<String, _>("object_type")?)?,
                            version: row.try_get("version")?,
                            deleted: row.try_get("deleted")?,
                            recorded_at: row.try_get("recorded_at")?,
                        })
                    })
                    .collect()
            }

            async fn status_counts(&self, merchant_id: &str) -> Result<Vec<StatusCount>, StoreError> {
                let rows = sqlx::query(
                    "SELECT connection_id, object_type, status, COUNT(*) AS n, \
                     MIN(provider_updated_at) AS oldest FROM objects WHERE merchant_id = $1 \
                     GROUP BY connection_id, object_type, status ORDER BY connection_id, object_type",
                )
                .bind(merchant_id)
                .fetch_all(&self.read)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(StatusCount {
                            connection_id: r.try_get("connection_id")?,
                            object_type: sql::object_type(&r.try_get::<String, _>("object_type")?)?,
                            status: sql::status(&r.try_get::<String, _>("status")?)?,
                            count: r.try_get("n")?,
                            oldest: r.try_get("oldest")?,
                        })
                    })
                    .collect()
            }

            async fn backlog(&self, connection_id: &str) -> Result<Backlog, StoreError> {
                let inbox = sqlx::query(
                    "SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM inbox \
                     WHERE connection_id = $1 AND dead = FALSE",
                )
                .bind(connection_id)
                .fetch_one(&self.read)
                .await?;
                let refetches: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM refetches WHERE connection_id = $1")
                        .bind(connection_id)
                        .fetch_one(&self.read)
                        .await?;
                Ok(Backlog {
                    inbox: inbox.try_get("n")?,
                    oldest_inbox: inbox.try_get("oldest")?,
                    refetches,
                })
            }

            }
        }
    };
}

pub(super) use sql_reads_store;
