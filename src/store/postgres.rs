//! The production store: Postgres (Aurora in cluster mode) through sqlx.

use std::time::Duration;

use sqlx::migrate::Migrator;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::sql::sql_store;

/// Postgres implementation of [`super::Store`]. Reads and writes share one pool.
pub struct PostgresStore {
    read: PgPool,
    write: PgPool,
}

impl PostgresStore {
    const BACKEND: &'static str = "postgres";
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

    pub async fn open(url: &str) -> Result<Self, super::StoreError> {
        // Tables grow from empty to millions of rows while a node runs: a generic plan cached
        // when `objects` was empty keeps seq-scanning it. Plan every statement for the data
        // it meets (measured: a 150k-object backfill went from ~50 ms to ~1 ms per lookup).
        let options =
            PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(PostgresStore {
            read: pool.clone(),
            write: pool,
        })
    }
}

sql_store!(PostgresStore, sqlx::Postgres);
