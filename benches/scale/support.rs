//! What every scenario shares: fresh stores, the same-run baselines of raw store write
//! rates, a billsync node on loopback, and signed Stripe events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use billsync::config::Config;
use serde_json::{json, Value};

pub const TOKEN: &str = "bench-token";
pub const SECRET: &str = "whsec_bench_secret";

pub fn postgres_admin_url() -> String {
    std::env::var("BILLSYNC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database URL for one measurement.
pub async fn fresh_db(store: &str, dir: &std::path::Path, name: &str) -> String {
    if store == "sqlite" {
        return format!("sqlite://{}", dir.join(format!("{name}.db")).display());
    }
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .expect("Postgres for the benchmark (run scripts/bench, which starts one)");
    let db = format!("billsync_bench_{name}");
    sqlx::Executor::execute(
        &mut c,
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str(),
    )
    .await
    .expect("drop");
    sqlx::Executor::execute(&mut c, format!("CREATE DATABASE {db}").as_str())
        .await
        .expect("create");
    let mut url = url::Url::parse(&admin).expect("url");
    url.set_path(&db);
    url.to_string()
}

pub fn payload() -> String {
    // ~2 KB of JSON, the size of a typical Stripe invoice event.
    json!({ "pad": "x".repeat(1990) }).to_string()
}

/// Baseline 1: durable single-row insert transactions at `concurrency`, rows/s.
pub async fn baseline_single(url: &str, rows: usize, concurrency: usize) -> f64 {
    let body = Arc::new(payload());
    if url.starts_with("sqlite:") {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        use sqlx::ConnectOptions;
        use std::str::FromStr;
        let mut c = SqliteConnectOptions::from_str(url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE b (k TEXT PRIMARY KEY, p TEXT NOT NULL)")
            .execute(&mut c)
            .await
            .unwrap();
        let start = Instant::now();
        for i in 0..rows {
            sqlx::query("INSERT INTO b (k, p) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING")
                .bind(format!("k{i}"))
                .bind(body.as_str())
                .execute(&mut c)
                .await
                .unwrap();
        }
        return rows as f64 / start.elapsed().as_secs_f64();
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(concurrency as u32)
        .connect(url)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE b (k TEXT PRIMARY KEY, p TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let start = Instant::now();
    let per = rows / concurrency;
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (pool, body) = (pool.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                sqlx::query("INSERT INTO b (k, p) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING")
                    .bind(format!("k{w}_{i}"))
                    .bind(body.as_str())
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (per * concurrency) as f64 / start.elapsed().as_secs_f64()
}

/// Baseline 2: 100-row transactions (one connection), rows/s.
pub async fn baseline_batched(url: &str, rows: usize) -> f64 {
    let body = payload();
    let pool = if url.starts_with("sqlite:") {
        None
    } else {
        Some(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap(),
        )
    };
    if let Some(pool) = &pool {
        sqlx::query("CREATE TABLE b100 (k TEXT PRIMARY KEY, p TEXT NOT NULL)")
            .execute(pool)
            .await
            .unwrap();
        let start = Instant::now();
        for chunk in 0..rows / 100 {
            let mut tx = pool.begin().await.unwrap();
            for i in 0..100 {
                sqlx::query("INSERT INTO b100 (k, p) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING")
                    .bind(format!("k{chunk}_{i}"))
                    .bind(body.as_str())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
        return (rows / 100 * 100) as f64 / start.elapsed().as_secs_f64();
    }
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    let mut c = SqliteConnectOptions::from_str(url)
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE b100 (k TEXT PRIMARY KEY, p TEXT NOT NULL)")
        .execute(&mut c)
        .await
        .unwrap();
    let start = Instant::now();
    for chunk in 0..rows / 100 {
        let mut tx = c.begin().await.unwrap();
        for i in 0..100 {
            sqlx::query("INSERT INTO b100 (k, p) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING")
                .bind(format!("k{chunk}_{i}"))
                .bind(body.as_str())
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    (rows / 100 * 100) as f64 / start.elapsed().as_secs_f64()
}

/// Baseline 3, Postgres only: `COPY` of `rows` 2 KB rows in one transaction, rows/s (the
/// issue's bulk rate for Postgres; SQLite has no `COPY`, its bulk rate is baseline 2).
pub async fn baseline_copy(url: &str, rows: usize) -> f64 {
    use sqlx::Connection;
    let body = payload();
    // COPY's text format: the payload is JSON without tabs, newlines or backslashes.
    assert!(!body.contains(['\t', '\n', '\\']));
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("CREATE TABLE bulk (k TEXT PRIMARY KEY, p TEXT NOT NULL)")
        .execute(&mut c)
        .await
        .unwrap();
    let start = Instant::now();
    let mut copy = c.copy_in_raw("COPY bulk (k, p) FROM STDIN").await.unwrap();
    let mut chunk = String::new();
    for i in 0..rows {
        chunk.push_str(&format!("k{i}\t{body}\n"));
        if chunk.len() >= 1 << 20 || i + 1 == rows {
            copy.send(std::mem::take(&mut chunk).into_bytes())
                .await
                .unwrap();
        }
    }
    let copied = copy.finish().await.unwrap();
    assert_eq!(copied as usize, rows);
    let rate = rows as f64 / start.elapsed().as_secs_f64();
    // Its ~200 MB of dirty pages would otherwise be written out during the next measurement
    // (a role without the right to CHECKPOINT leaves them to the checkpointer).
    let _ = sqlx::query("CHECKPOINT").execute(&mut c).await;
    rate
}

/// Connections the load is spread over (one merchant each), as webhooks of many merchants are.
pub const CONNECTIONS: usize = 16;

pub struct App {
    pub base: String,
    /// (connection id, merchant id)
    pub conns: Vec<(String, String)>,
    pub shutdown: tokio::sync::oneshot::Sender<()>,
    pub _dir: tempfile::TempDir,
}

pub async fn start_app(url: String) -> App {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database_url: url,
        admin_token: Some(TOKEN.into()),
        data_dir: dir.path().join("data"),
        provider_sync: false,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        billsync::run(config, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let conns = register_connections(&base).await;
    App {
        base,
        conns,
        shutdown: tx,
        _dir: dir,
    }
}

/// Registers [`CONNECTIONS`] Stripe connections (one merchant each) through the admin API at
/// `base`: (connection id, merchant id).
pub async fn register_connections(base: &str) -> Vec<(String, String)> {
    let client = reqwest::Client::new();
    let mut conns = Vec::new();
    for m in 0..CONNECTIONS {
        let merchant = format!("m_bench_{m}");
        let created: Value = client
            .post(format!("{base}/admin/v1/connections"))
            .bearer_auth(TOKEN)
            .json(&json!({"merchant_id": merchant, "provider": "stripe", "account_id": format!("acct_{m}"),
                          "webhook_secrets": [SECRET], "api_key": "sk_bench"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        conns.push((
            created["connection_id"].as_str().unwrap().to_owned(),
            merchant,
        ));
    }
    conns
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A signed invoice event of ~2 KB for object `n`.
pub fn signed_event(n: usize) -> (String, String) {
    let lines: Vec<Value> = (0..4)
        .map(|l| json!({"id": format!("il_{n}_{l}"), "object": "line_item", "amount": 2500, "currency": "usd",
            "description": "Pro plan seat, monthly, billed in advance for the period", "quantity": 1,
            "period": {"start": 1_700_000_000, "end": 1_702_592_000}, "taxes": [{"amount": 475, "tax_behavior": "exclusive"}]}))
        .collect();
    let body = json!({
        "id": format!("evt_{n}"), "object": "event", "api_version": "2024-06-20", "created": now_secs(),
        "type": "invoice.finalized", "livemode": false, "pending_webhooks": 1,
        "data": {"object": {"id": format!("in_{n}"), "object": "invoice", "customer": format!("cus_{}", n % 1000),
            "status": "open", "currency": "usd", "subtotal": 10000, "total": 11900, "amount_paid": 0,
            "amount_due": 11900, "total_taxes": [{"amount": 1900}], "period_start": 1_700_000_000,
            "period_end": 1_702_592_000, "lines": {"object": "list", "data": lines, "has_more": false}}}
    })
    .to_string();
    let sig = billsync::providers::stripe::sign(SECRET, now_secs(), body.as_bytes());
    (body, sig)
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
