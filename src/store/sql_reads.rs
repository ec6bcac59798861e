//! The SQL of [`super::ReadStore`] (objects, versions, the change feed, status counts),
//! written once and expanded for each backend by [`sql_reads_store!`], like `sql_operator.rs`:
//! inside a child module of the backend's module, so the store is named `super::SqliteStore`
//! and its read pool is in reach.

macro_rules! sql_reads_store {
    ($store:ty, $db:ty) => {
        mod reads_sql {
            use async_trait::async_trait;
            use sqlx::QueryBuilder;

            use $crate::model::ObjectType;
            use $crate::store::sql::{OBJECT_VIEW_COLUMNS, VERSION_COLUMNS};
            use $crate::store::{
                Backlog, ChangeView, ListQuery, ObjectView, ReadStore, StatusCount, StoreError,
                VersionView,
            };

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
                    return Ok(sqlx::query_as(&sql)
                        .bind(merchant_id)
                        .bind(object_type.as_str())
                        .bind(id)
                        .fetch_optional(&self.read)
                        .await?);
                };
                Ok(sqlx::query_as(
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
                .await?)
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
                Ok(q.build_query_as().fetch_all(&self.read).await?)
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
                Ok(sqlx::query_as(&sql)
                    .bind(merchant_id)
                    .bind(object_type.as_str())
                    .bind(id)
                    .fetch_all(&self.read)
                    .await?)
            }

            async fn changes(
                &self,
                merchant_id: &str,
                after: i64,
                limit: i64,
            ) -> Result<Vec<ChangeView>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT seq, id, connection_id, object_type, version, deleted, recorded_at \
                     FROM changes WHERE merchant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(merchant_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            async fn status_counts(&self, merchant_id: &str) -> Result<Vec<StatusCount>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT connection_id, object_type, status, COUNT(*) AS count, \
                     MIN(provider_updated_at) AS oldest FROM objects WHERE merchant_id = $1 \
                     GROUP BY connection_id, object_type, status ORDER BY connection_id, object_type",
                )
                .bind(merchant_id)
                .fetch_all(&self.read)
                .await?)
            }

            async fn backlog(&self, connection_id: &str) -> Result<Backlog, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT COUNT(*) AS inbox, MIN(received_at) AS oldest_inbox, \
                     (SELECT COUNT(*) FROM refetches WHERE connection_id = $1) AS refetches \
                     FROM inbox WHERE connection_id = $1 AND dead = FALSE",
                )
                .bind(connection_id)
                .fetch_one(&self.read)
                .await?)
            }

            }
        }
    };
}

pub(super) use sql_reads_store;
