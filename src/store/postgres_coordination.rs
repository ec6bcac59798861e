//! [`Coordination`] on Postgres: `nodes` and `shard_leases` (migration 0014) judged by the
//! database's clock, and `LISTEN/NOTIFY` for announcements. Applies hold their shards' rows
//! `FOR KEY SHARE` (`PostgresStore::open_apply`), which renewals and releases (plain
//! updates) do not conflict with; only a takeover locks a row `FOR UPDATE`, one row at a time
//! and for at most half a second, so it waits for a write past its fence check but never
//! stalls a keeper's round behind a frozen holder.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::coordination::{Announcement, Coordination, Fence, Lease, NodeInfo};
use super::StoreError;

/// Channels of `NOTIFY`; the payload is a connection id (empty for membership).
pub(super) const INBOX_CHANNEL: &str = "billsync_inbox";
pub(super) const ADMIN_CHANNEL: &str = "billsync_admin";
const MEMBERSHIP_CHANNEL: &str = "billsync_membership";

/// Postgres coordination over the store's pool.
pub struct PgCoordination {
    pub(super) pool: PgPool,
}

/// A `timestamptz` column as microseconds since the Unix epoch.
fn micros(column: &str) -> String {
    format!("(extract(epoch FROM {column}) * 1000000)::int8")
}

async fn announce_membership(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(MEMBERSHIP_CHANNEL)
        .execute(pool)
        .await?;
    Ok(())
}

#[async_trait]
impl Coordination for PgCoordination {
    async fn heartbeat(&self, node: &str, started_at: i64) -> Result<(), StoreError> {
        // `xmax = 0` only for a freshly inserted row: a node that joins is announced.
        let joined: bool = sqlx::query_scalar(
            "INSERT INTO nodes (node_id, started_at, last_seen) \
             VALUES ($1, to_timestamp($2::float8 / 1000000), clock_timestamp()) \
             ON CONFLICT (node_id) DO UPDATE SET last_seen = clock_timestamp(), \
             started_at = excluded.started_at \
             RETURNING (xmax = 0)",
        )
        .bind(node)
        .bind(started_at)
        .fetch_one(&self.pool)
        .await?;
        if joined {
            announce_membership(&self.pool).await?;
        }
        Ok(())
    }

    async fn live_nodes(&self, within_secs: u64) -> Result<Vec<NodeInfo>, StoreError> {
        Ok(sqlx::query_as::<_, NodeInfo>(&format!(
            "SELECT node_id, {} AS started_at, {} AS last_seen FROM nodes \
             WHERE last_seen > clock_timestamp() - make_interval(secs => $1) ORDER BY node_id",
            micros("started_at"),
            micros("last_seen")
        ))
        .bind(within_secs as f64)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT shard, owner, epoch, expires_at <= clock_timestamp() AS expired \
             FROM shard_leases ORDER BY shard",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn renew(
        &self,
        node: &str,
        held: &[Fence],
        lease_secs: u64,
    ) -> Result<Vec<Fence>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let shards: Vec<i32> = held.iter().map(|f| f.shard).collect();
        let epochs: Vec<i64> = held.iter().map(|f| f.epoch).collect();
        // One statement, but each row is locked only for the instant of its own update.
        Ok(sqlx::query_as(
            "UPDATE shard_leases l SET expires_at = clock_timestamp() + make_interval(secs => $2) \
             FROM UNNEST($3::int4[], $4::int8[]) AS h(shard, epoch) \
             WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1 \
             AND l.expires_at > clock_timestamp() RETURNING l.shard, l.epoch",
        )
        .bind(node)
        .bind(lease_secs as f64)
        .bind(&shards)
        .bind(&epochs)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn acquire(
        &self,
        node: &str,
        shard: i32,
        lease_secs: u64,
    ) -> Result<Option<Fence>, StoreError> {
        // The row lock (FOR UPDATE conflicts with the applies' FOR KEY SHARE) makes a takeover
        // wait for writes already past their fence check; a holder that does not finish
        // soon (a frozen node) leaves the shard to a later round instead of stalling this
        // one, whose renewals keep every other lease.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '500ms'")
            .execute(&mut *tx)
            .await?;
        let locked = sqlx::query("SELECT shard FROM shard_leases WHERE shard = $1 FOR UPDATE")
            .bind(shard)
            .execute(&mut *tx)
            .await;
        if let Err(sqlx::Error::Database(e)) = &locked {
            if e.code().as_deref() == Some("55P03") {
                return Ok(None);
            }
        }
        locked?;
        let epoch: Option<i64> = sqlx::query_scalar(
            "UPDATE shard_leases SET owner = $1, epoch = epoch + 1, \
             expires_at = clock_timestamp() + make_interval(secs => $3), \
             acquired_at = clock_timestamp() \
             WHERE shard = $2 AND (owner IS NULL OR owner = $1 OR expires_at <= clock_timestamp()) \
             RETURNING epoch",
        )
        .bind(node)
        .bind(shard)
        .bind(lease_secs as f64)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(epoch.map(|epoch| Fence { shard, epoch }))
    }

    async fn release(&self, node: &str, leases: &[Fence]) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        let shards: Vec<i32> = leases.iter().map(|f| f.shard).collect();
        let epochs: Vec<i64> = leases.iter().map(|f| f.epoch).collect();
        sqlx::query(
            "UPDATE shard_leases l SET owner = NULL, expires_at = '-infinity' \
             FROM UNNEST($2::int4[], $3::int8[]) AS h(shard, epoch) \
             WHERE l.shard = h.shard AND l.epoch = h.epoch AND l.owner = $1",
        )
        .bind(node)
        .bind(&shards)
        .bind(&epochs)
        .execute(&self.pool)
        .await?;
        announce_membership(&self.pool).await
    }

    async fn leave(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM nodes WHERE node_id = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        announce_membership(&self.pool).await
    }

    async fn announce_inbox(&self, connection_ids: &[String]) -> Result<(), StoreError> {
        // A transaction of notifications only: no WAL, no fsync, so Postgres's commit-time
        // notify lock is held for microseconds, not across an intake commit's flush.
        sqlx::query("SELECT count(pg_notify($1, c)) FROM UNNEST($2::text[]) AS c")
            .bind(INBOX_CHANNEL)
            .bind(connection_ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<Announcement>, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener
            .listen_all([INBOX_CHANNEL, ADMIN_CHANNEL, MEMBERSHIP_CHANNEL])
            .await?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let announcement = match listener.try_recv().await {
                    Ok(Some(n)) => match n.channel() {
                        INBOX_CHANNEL => Announcement::Inbox(n.payload().to_owned()),
                        ADMIN_CHANNEL => Announcement::Admin(n.payload().to_owned()),
                        _ => Announcement::Membership,
                    },
                    // The connection dropped; the next call reconnects and listens again.
                    Ok(None) => Announcement::Lapsed,
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster announcements interrupted; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Announcement::Lapsed
                    }
                };
                // A full queue means the node is behind: one lapse makes it look at
                // everything, which covers what is dropped.
                match tx.try_send(announcement) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        let _ = tx.send(Announcement::Lapsed).await;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
        Ok(rx)
    }
}
