//! The SQL of [`super::JobStore`] (pull jobs and their windows, confirmation reads, sweeps),
//! written once and expanded for each backend by [`sql_jobs_store!`], like `sql_operator.rs`:
//! inside a child module of the backend's module, so the store is named `super::SqliteStore`
//! and its pools and the main SQL's transaction helpers (`audit`, `checkpoint`) are in reach.

macro_rules! sql_jobs_store {
    ($store:ty, $db:ty) => {
        mod jobs_sql {
            use async_trait::async_trait;
            use sqlx::QueryBuilder;

            use $crate::store::{
                AuditEntry, JobStore, Refetch, StoreError, Sweep, SyncJob, SyncWindow,
                WindowCheckpoint,
            };

            #[async_trait]
            impl JobStore for $store {
            async fn start_sync_job(
                &self,
                job: &SyncJob,
                windows: &[SyncWindow],
                audit: &AuditEntry,
            ) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await?;
                sqlx::query("DELETE FROM sync_windows WHERE connection_id = $1 AND job = $2")
                    .bind(&job.connection_id)
                    .bind(&job.job)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO sync_jobs (connection_id, job, state, since, until, started_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (connection_id, job) DO UPDATE \
                     SET state = excluded.state, since = excluded.since, until = excluded.until, \
                     started_at = excluded.started_at, finished_at = NULL, error = NULL",
                )
                .bind(&job.connection_id)
                .bind(&job.job)
                .bind(&job.state)
                .bind(job.since)
                .bind(job.until)
                .bind(job.started_at)
                .execute(&mut *tx)
                .await?;
                for chunk in windows.chunks(500) {
                    let mut q = QueryBuilder::<$db>::new(
                        "INSERT INTO sync_windows (connection_id, job, stream, window_start, \
                         window_end, updated_at) ",
                    );
                    q.push_values(chunk, |mut row, w| {
                        row.push_bind(job.connection_id.as_str())
                            .push_bind(job.job.as_str())
                            .push_bind(w.stream.as_str())
                            .push_bind(w.window_start)
                            .push_bind(w.window_end)
                            .push_bind(job.started_at);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                <$store>::audit(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn finish_sync_job(
                &self,
                connection_id: &str,
                job: &str,
                state: &str,
                error: Option<&str>,
                at: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE sync_jobs SET state = $1, error = $2, finished_at = $3 \
                     WHERE connection_id = $4 AND job = $5",
                )
                .bind(state)
                .bind(error)
                .bind(at)
                .bind(connection_id)
                .bind(job)
                .execute(&self.write)
                .await?;
                Ok(())
            }

            async fn sync_jobs(&self, connection_id: &str) -> Result<Vec<SyncJob>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT connection_id, job, state, since, until, started_at, finished_at, error \
                     FROM sync_jobs WHERE connection_id = $1 ORDER BY job",
                )
                .bind(connection_id)
                .fetch_all(&self.read)
                .await?)
            }

            async fn sync_windows(&self, connection_id: &str, job: &str) -> Result<Vec<SyncWindow>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT job, stream, window_start, window_end, cursor, reached, done, objects, \
                     pages, requests FROM sync_windows WHERE connection_id = $1 AND job = $2 \
                     ORDER BY stream, window_start",
                )
                .bind(connection_id)
                .bind(job)
                .fetch_all(&self.read)
                .await?)
            }

            async fn connections_with_running_jobs(&self) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT DISTINCT j.connection_id FROM sync_jobs j \
                     JOIN connections c ON c.id = j.connection_id \
                     WHERE j.state = 'running' AND c.state = 'active'",
                )
                .fetch_all(&self.read)
                .await?)
            }

            async fn count_window_requests(
                &self,
                connection_id: &str,
                checkpoint: &WindowCheckpoint,
            ) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await?;
                <$store>::checkpoint(&mut tx, connection_id, checkpoint, false, $crate::model::time::now_micros()).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn connections_with_due_refetches(&self, now: i64, limit: i64) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT DISTINCT r.connection_id FROM refetches r \
                     JOIN connections c ON c.id = r.connection_id \
                     WHERE r.due_at <= $1 AND c.state = 'active' LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            async fn due_refetches(&self, connection_id: &str, now: i64, limit: i64) -> Result<Vec<Refetch>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT object_type, provider_id, due_at, attempts, first_seen_at, priority \
                     FROM refetches WHERE connection_id = $1 AND due_at <= $2 \
                     ORDER BY priority, due_at LIMIT $3",
                )
                .bind(connection_id)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            async fn reschedule_refetch(&self, connection_id: &str, r: &Refetch) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE refetches SET due_at = CASE WHEN due_at > $1 THEN due_at ELSE $1 END, \
                     attempts = $2 WHERE connection_id = $3 AND object_type = $4 AND provider_id = $5",
                )
                .bind(r.due_at)
                .bind(r.attempts)
                .bind(connection_id)
                .bind(r.object_type.as_str())
                .bind(&r.provider_id)
                .execute(&self.write)
                .await?;
                Ok(())
            }

            async fn refetch_backlog(&self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM refetches").fetch_one(&self.read).await?)
            }

            async fn init_sweep(&self, connection_id: &str, position: i64, next_run_at: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sweeps (connection_id, position, next_run_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (connection_id) DO NOTHING",
                )
                .bind(connection_id)
                .bind(position)
                .bind(next_run_at)
                .execute(&self.write)
                .await?;
                Ok(())
            }

            async fn connections_with_due_sweeps(&self, now: i64, limit: i64) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT s.connection_id FROM sweeps s JOIN connections c ON c.id = s.connection_id \
                     WHERE s.next_run_at <= $1 AND c.state = 'active' ORDER BY s.next_run_at LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&self.read)
                .await?)
            }

            async fn sweep(&self, connection_id: &str) -> Result<Option<Sweep>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT position, next_run_at, last_run_at, last_found, total_found, resume_cursor \
                     FROM sweeps WHERE connection_id = $1",
                )
                .bind(connection_id)
                .fetch_optional(&self.read)
                .await?)
            }

            async fn finish_sweep(
                &self,
                connection_id: &str,
                position: i64,
                next_run_at: i64,
                found: i64,
                cursor: Option<&str>,
                at: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE sweeps SET position = $1, next_run_at = $2, last_run_at = $3, \
                     last_found = $4, total_found = total_found + $4, resume_cursor = $6 \
                     WHERE connection_id = $5",
                )
                .bind(position)
                .bind(next_run_at)
                .bind(at)
                .bind(found)
                .bind(connection_id)
                .bind(cursor)
                .execute(&self.write)
                .await?;
                Ok(())
            }

            }
        }
    };
}

pub(super) use sql_jobs_store;
