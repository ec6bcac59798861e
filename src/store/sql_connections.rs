//! The SQL of [`super::ConnectionStore`] (connections: register, read, list, state,
//! settings, provider failures), written once and expanded for each backend by
//! [`sql_connections_store!`], like `sql_operator.rs`: inside a child module of the backend's
//! module, so the store is named `super::SqliteStore`, and the main SQL's audited-change
//! helpers are in reach. Rows decode as [`super::ConnectionRecord`] (`sqlx::FromRow`).

macro_rules! sql_connections_store {
    ($store:ty, $db:ty) => {
        mod connections_sql {
            use async_trait::async_trait;
            use sqlx::QueryBuilder;

            use $crate::store::sql::CONNECTION_COLUMNS;
            use $crate::store::{
                AuditEntry, ConnectionRecord, ConnectionState, ConnectionStore, StoreError,
            };

            #[async_trait]
            impl ConnectionStore for $store {
            async fn insert_connection(
                &self,
                c: &ConnectionRecord,
                audit: &AuditEntry,
            ) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await?;
                sqlx::query(
                    "INSERT INTO connections (id, merchant_id, provider, account_id, \
                     sealed_webhook_secrets, sealed_api_key, api_base_url, rate_limit_per_sec, \
                     reconcile_interval_secs, api_version, state, lease_epoch, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(&c.id)
                .bind(&c.merchant_id)
                .bind(c.provider.as_str())
                .bind(&c.account_id)
                .bind(&c.sealed_webhook_secrets)
                .bind(&c.sealed_api_key)
                .bind(&c.api_base_url)
                .bind(c.rate_limit_per_sec)
                .bind(c.reconcile_interval_secs)
                .bind(&c.api_version)
                .bind(c.state.as_str())
                .bind(c.lease_epoch)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => {
                        StoreError::Conflict(format!("{} {}", c.merchant_id, c.provider.as_str()))
                    }
                    e => e.into(),
                })?;
                <$store>::audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_connection(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
                let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1");
                Ok(sqlx::query_as(&sql)
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?)
            }

            async fn list_connections(
                &self,
                merchant_id: Option<&str>,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<ConnectionRecord>, StoreError> {
                let mut q = QueryBuilder::<$db>::new(format!(
                    "SELECT {CONNECTION_COLUMNS} FROM connections WHERE 1 = 1"
                ));
                if let Some(m) = merchant_id {
                    q.push(" AND merchant_id = ").push_bind(m.to_owned());
                }
                if let Some(a) = after {
                    q.push(" AND id > ").push_bind(a.to_owned());
                }
                q.push(" ORDER BY id LIMIT ").push_bind(limit);
                Ok(q.build_query_as().fetch_all(&self.read).await?)
            }

            async fn set_connection_state(
                &self,
                id: &str,
                state: ConnectionState,
                audit: &AuditEntry,
            ) -> Result<Option<ConnectionRecord>, StoreError> {
                let mut tx = self.write.begin().await?;
                let sql = format!(
                    "UPDATE connections SET state = $1, updated_at = $2 WHERE id = $3 \
                     AND state <> 'archived' RETURNING {CONNECTION_COLUMNS}"
                );
                let record = sqlx::query_as(&sql)
                    .bind(state.as_str())
                    .bind(audit.at)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                <$store>::finish_connection_change(tx, record, audit).await
            }

            async fn update_connection(
                &self,
                c: &ConnectionRecord,
                audit: &AuditEntry,
            ) -> Result<Option<ConnectionRecord>, StoreError> {
                let mut tx = self.write.begin().await?;
                let sql = format!(
                    "UPDATE connections SET sealed_webhook_secrets = $1, sealed_api_key = $2, \
                     api_base_url = $3, rate_limit_per_sec = $4, reconcile_interval_secs = $5, \
                     api_version = $6, updated_at = $7 WHERE id = $8 \
                     AND state <> 'archived' RETURNING {CONNECTION_COLUMNS}"
                );
                let record = sqlx::query_as(&sql)
                    .bind(&c.sealed_webhook_secrets)
                    .bind(&c.sealed_api_key)
                    .bind(&c.api_base_url)
                    .bind(c.rate_limit_per_sec)
                    .bind(c.reconcile_interval_secs)
                    .bind(&c.api_version)
                    .bind(audit.at)
                    .bind(&c.id)
                    .fetch_optional(&mut *tx)
                    .await?;
                <$store>::finish_connection_change(tx, record, audit).await
            }

            async fn record_provider_error(
                &self,
                id: &str,
                kind: &str,
                message: &str,
                at: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE connections SET last_provider_error_kind = $1, \
                     last_provider_error = $2, last_provider_error_at = $3 WHERE id = $4",
                )
                .bind(kind)
                .bind(message)
                .bind(at)
                .bind(id)
                .execute(&self.write)
                .await?;
                Ok(())
            }

            }
        }
    };
}

pub(super) use sql_connections_store;
