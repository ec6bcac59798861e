//! The SQL of [`super::OperatorStore`] (tokens, audit log, dead letters, refetches on demand), written once and
//! expanded for each backend by [`sql_operator_store!`], like `sql.rs` for the main trait.
//!
//! Expanded inside a child module of the backend's module (so the store is named
//! `super::SqliteStore`), where it may use the backend's pools and private helpers (`announce`)
//! without clashing with the main macro's imports.

macro_rules! sql_operator_store {
    ($store:ty, $db:ty) => {
        mod operator_sql {
            use async_trait::async_trait;

            use $crate::model::ObjectType;
            use $crate::store::sql::Announce;
            use $crate::store::{
                AuditEntry, AuditRecord, DeadLetter, InboxItem, OperatorStore, StoreError,
                TokenRecord,
            };

            const TOKEN_COLUMNS: &str =
                "id, name, scope, merchant_id, digest, created_at, revoked_at";

            /// A dead letter's columns. Every dead row has a `dead_at` (migration 0015 gave
            /// the older ones their receive time); one without reads as 0.
            const DEAD_LETTER_COLUMNS: &str = "i.id, i.connection_id, r.provider_event_id, \
                r.event_type, i.attempts, i.last_error, COALESCE(i.dead_at, 0) AS dead_at";

            /// The audit entry of an operator action, in the action's transaction (also the
            /// archive's trim, `sql_archive.rs`). Nothing is announced: no connection changes.
            pub(super) async fn audit(
                tx: &mut sqlx::Transaction<'_, $db>,
                a: &AuditEntry,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO audit_log (at, actor, action, target, detail) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(a.at)
                .bind(&a.actor)
                .bind(&a.action)
                .bind(&a.target)
                .bind(a.detail.to_string())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            #[async_trait]
            impl OperatorStore for $store {
                async fn insert_token(
                    &self,
                    t: &TokenRecord,
                    audit_entry: &AuditEntry,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write.begin().await?;
                    sqlx::query(&format!(
                        "INSERT INTO api_tokens ({TOKEN_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    ))
                    .bind(&t.id)
                    .bind(&t.name)
                    .bind(t.scope.as_str())
                    .bind(&t.merchant_id)
                    .bind(&t.digest)
                    .bind(t.created_at)
                    .bind(t.revoked_at)
                    .execute(&mut *tx)
                    .await?;
                    audit(&mut tx, audit_entry).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn token_by_digest(
                    &self,
                    digest: &str,
                ) -> Result<Option<TokenRecord>, StoreError> {
                    Ok(sqlx::query_as(&format!(
                        "SELECT {TOKEN_COLUMNS} FROM api_tokens \
                         WHERE digest = $1 AND revoked_at IS NULL"
                    ))
                    .bind(digest)
                    .fetch_optional(&self.read)
                    .await?)
                }

                async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
                    Ok(sqlx::query_as(&format!(
                        "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
                    ))
                    .fetch_all(&self.read)
                    .await?)
                }

                async fn revoke_token(
                    &self,
                    id: &str,
                    audit_entry: &AuditEntry,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.write.begin().await?;
                    let done = sqlx::query(
                        "UPDATE api_tokens SET revoked_at = $1 \
                         WHERE id = $2 AND revoked_at IS NULL",
                    )
                    .bind(audit_entry.at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if done {
                        audit(&mut tx, audit_entry).await?;
                        tx.commit().await?;
                    }
                    Ok(done)
                }

                async fn audit_log(
                    &self,
                    after: i64,
                    limit: i64,
                ) -> Result<Vec<AuditRecord>, StoreError> {
                    Ok(sqlx::query_as(
                        "SELECT id AS seq, at, actor, action, target, detail FROM audit_log \
                         WHERE id > $1 ORDER BY id LIMIT $2",
                    )
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.read)
                    .await?)
                }

                async fn dead_letters(
                    &self,
                    connection_id: Option<&str>,
                    after: i64,
                    limit: i64,
                ) -> Result<Vec<DeadLetter>, StoreError> {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {DEAD_LETTER_COLUMNS} FROM inbox i \
                         JOIN raw_events r ON r.id = i.raw_event_id WHERE i.dead"
                    ));
                    if let Some(c) = connection_id {
                        q.push(" AND i.connection_id = ").push_bind(c.to_owned());
                    }
                    q.push(" AND i.id > ").push_bind(after);
                    q.push(" ORDER BY i.id LIMIT ").push_bind(limit);
                    Ok(q.build_query_as().fetch_all(&self.read).await?)
                }

                async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
                    Ok(sqlx::query_as(&format!(
                        "SELECT {DEAD_LETTER_COLUMNS} FROM inbox i \
                         JOIN raw_events r ON r.id = i.raw_event_id WHERE i.dead AND i.id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?)
                }

                async fn retry_dead_letter(
                    &self,
                    id: i64,
                    audit_entry: &AuditEntry,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.write.begin().await?;
                    let connection: Option<String> = sqlx::query_scalar(
                        "UPDATE inbox SET dead = FALSE, dead_at = NULL, attempts = 0, \
                         next_attempt_at = $1 WHERE id = $2 AND dead RETURNING connection_id",
                    )
                    .bind(audit_entry.at)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(connection) = connection else {
                        return Ok(false);
                    };
                    audit(&mut tx, audit_entry).await?;
                    // The node that owns the connection takes the item at once.
                    <$store>::announce(&mut tx, Announce::Inbox, &connection).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn raw_events_between(
                    &self,
                    connection_id: &str,
                    from: i64,
                    to: i64,
                    limit: i64,
                ) -> Result<Vec<InboxItem>, StoreError> {
                    // The selection and order of `enqueue_replay`; nothing is queued, so the
                    // items have no inbox id (0) and no attempts, and are marked `replay`.
                    Ok(sqlx::query_as(
                        "SELECT CAST(0 AS BIGINT) AS inbox_id, id AS raw_event_id, \
                         provider_event_id, event_type, source, received_at, \
                         CAST(0 AS BIGINT) AS attempts, TRUE AS replay, body_zstd \
                         FROM raw_events WHERE connection_id = $1 \
                         AND received_at >= $2 AND received_at <= $3 ORDER BY id LIMIT $4",
                    )
                    .bind(connection_id)
                    .bind(from)
                    .bind(to)
                    .bind(limit)
                    .fetch_all(&self.read)
                    .await?)
                }

                async fn request_refetch(
                    &self,
                    connection_id: &str,
                    object_type: ObjectType,
                    provider_id: &str,
                    audit_entry: &AuditEntry,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write.begin().await?;
                    sqlx::query(
                        "INSERT INTO refetches (connection_id, object_type, provider_id, due_at, \
                         attempts, first_seen_at, priority) VALUES ($1, $2, $3, $4, 0, $4, 0) \
                         ON CONFLICT (connection_id, object_type, provider_id) DO UPDATE SET \
                         due_at = excluded.due_at, priority = 0",
                    )
                    .bind(connection_id)
                    .bind(object_type.as_str())
                    .bind(provider_id)
                    .bind(audit_entry.at)
                    .execute(&mut *tx)
                    .await?;
                    audit(&mut tx, audit_entry).await?;
                    <$store>::announce(&mut tx, Announce::Admin, connection_id).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn discard_dead_letter(
                    &self,
                    id: i64,
                    audit_entry: &AuditEntry,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.write.begin().await?;
                    let done = sqlx::query("DELETE FROM inbox WHERE id = $1 AND dead")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    if done {
                        audit(&mut tx, audit_entry).await?;
                        tx.commit().await?;
                    }
                    Ok(done)
                }
            }
        }
    };
}

pub(super) use sql_operator_store;
