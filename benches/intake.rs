//! Benchmark: signed Stripe webhook intake over loopback HTTP, and webhook→queryable latency,
//! on SQLite and Postgres, each against a baseline of the same store measured in the same run
//! (raw single-row durable inserts of a 2 KB payload, and 100-row transactions).
//!
//! Run through `scripts/bench` (it provides Postgres). Flags: `--quick`, `--stores sqlite,postgres`.
//! Prints a Markdown table and writes it to `bench/results/<date>.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use billsync::config::Config;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

const TOKEN: &str = "bench-token";
const SECRET: &str = "whsec_bench_secret";

struct Opts {
    quick: bool,
    stores: Vec<String>,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let stores = args
        .iter()
        .position(|a| a == "--stores")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| "sqlite,postgres".to_string(), Clone::clone)
        .split(',')
        .map(str::to_owned)
        .collect();
    Opts { quick, stores }
}

fn postgres_admin_url() -> String {
    std::env::var("BILLSYNC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database URL for one measurement.
async fn fresh_db(store: &str, dir: &std::path::Path, name: &str) -> String {
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

fn payload() -> String {
    // ~2 KB of JSON, the size of a typical Stripe invoice event.
    json!({ "pad": "x".repeat(1990) }).to_string()
}

/// Baseline 1: durable single-row insert transactions at `concurrency`, rows/s.
async fn baseline_single(url: &str, rows: usize, concurrency: usize) -> f64 {
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

/// Baseline 2: 100-row transactions, rows/s.
async fn baseline_batched(url: &str, rows: usize) -> f64 {
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

/// Connections the load is spread over (one merchant each), as webhooks of many merchants are.
const CONNECTIONS: usize = 16;

struct App {
    base: String,
    /// (connection id, merchant id)
    conns: Vec<(String, String)>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start_app(url: String) -> App {
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
    App {
        base,
        conns,
        shutdown: tx,
        _dir: dir,
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A signed invoice event of ~2 KB for object `n`.
fn signed_event(n: usize) -> (String, String) {
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Intake: `n` webhooks from `concurrency` clients; (events/s, P50 ms, P99 ms).
async fn intake(app: &App, n: usize, concurrency: usize) -> (f64, f64, f64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let urls: Vec<String> = app
        .conns
        .iter()
        .map(|(c, _)| format!("{}/webhooks/stripe/{c}", app.base))
        .collect();
    let events: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            let (body, sig) = signed_event(i);
            (urls[i % urls.len()].clone(), body, sig)
        })
        .collect();
    let events = Arc::new(events);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, events, next) = (client.clone(), events.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((url, body, sig)) = events.get(i) else {
                    return lat;
                };
                let t = Instant::now();
                let r = client
                    .post(url)
                    .header("Stripe-Signature", sig)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    (rate, percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// Reads a merchant's change feed from `after` until it stops moving; returns the last seq.
async fn feed_end(client: &reqwest::Client, feed: &str, mut after: i64) -> i64 {
    loop {
        let page: Value = client
            .get(format!("{feed}?after={after}&limit=1000"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let next = page["next_after"].as_i64().unwrap();
        if next == after {
            return after;
        }
        after = next;
    }
}

/// Webhook→queryable at `rate`/s for `secs`, spread over the app's connections: the time from
/// sending a webhook to its new version appearing in the merchant's change feed, polled
/// continuously. Returns (P50, P95, P99 ms, events seen).
async fn queryable(app: &App, rate: f64, secs: f64, offset: usize) -> (f64, f64, f64, usize) {
    let client = reqwest::Client::new();
    let n = (rate * secs) as usize;
    let sent: Arc<Vec<std::sync::OnceLock<Instant>>> =
        Arc::new((0..n).map(|_| std::sync::OnceLock::new()).collect());
    // Start once everything sent before is applied, so no backlog skews the figure.
    let mut starts = Vec::new();
    for (_, merchant) in &app.conns {
        let feed = format!("{}/v1/merchants/{merchant}/changes", app.base);
        let mut end = feed_end(&client, &feed, 0).await;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let again = feed_end(&client, &feed, end).await;
            if again == end {
                break;
            }
            end = again;
        }
        starts.push((feed, end));
    }
    let limit = Arc::new(Semaphore::new(512));
    let start = Instant::now();
    let urls: Vec<String> = app
        .conns
        .iter()
        .map(|(c, _)| format!("{}/webhooks/stripe/{c}", app.base))
        .collect();
    let sender = {
        let (client, sent, limit) = (client.clone(), sent.clone(), limit.clone());
        tokio::spawn(async move {
            for i in 0..n {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let permit = limit.clone().acquire_owned().await.unwrap();
                let (client, url, sent) =
                    (client.clone(), urls[i % urls.len()].clone(), sent.clone());
                tokio::spawn(async move {
                    let (body, sig) = signed_event(offset + i);
                    sent[i].set(Instant::now()).ok();
                    let r = client
                        .post(&url)
                        .header("Stripe-Signature", sig)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    drop(permit);
                });
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs_f64(secs + 60.0);
    let per_merchant = n / app.conns.len();
    let mut pollers = Vec::new();
    for (feed, mut after) in starts {
        let (client, sent) = (client.clone(), sent.clone());
        pollers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while latencies.len() < per_merchant && Instant::now() < deadline {
                let page: Value = client
                    .get(format!("{feed}?after={after}&limit=1000"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let seen = Instant::now();
                for c in page["data"].as_array().unwrap() {
                    let id = c["id"].as_str().unwrap();
                    let i: usize = id.trim_start_matches("stripe:in_").parse().unwrap();
                    if let Some(t) = sent.get(i.wrapping_sub(offset)).and_then(|s| s.get()) {
                        latencies.push(seen.duration_since(*t).as_secs_f64() * 1000.0);
                    }
                }
                after = page["next_after"].as_i64().unwrap();
                if page["data"].as_array().unwrap().is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for p in pollers {
        latencies.extend(p.await.unwrap());
    }
    sender.await.unwrap();
    latencies.sort_by(f64::total_cmp);
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.len(),
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; ignore unknown flags.
    let o = opts();
    let (n, base_rows, secs) = if o.quick {
        (3_000, 2_000, 5.0)
    } else {
        (20_000, 10_000, 20.0)
    };
    let concurrency = 64;
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for store in &o.stores {
        let single = baseline_single(
            &fresh_db(store, dir.path(), &format!("{store}_b1")).await,
            base_rows,
            if store == "sqlite" { 1 } else { 16 },
        )
        .await;
        let batched = baseline_batched(
            &fresh_db(store, dir.path(), &format!("{store}_b2")).await,
            base_rows,
        )
        .await;
        let app = start_app(fresh_db(store, dir.path(), &format!("{store}_app")).await).await;
        let (rate, p50, p99) = intake(&app, n, concurrency).await;
        let mut q = Vec::new();
        for (i, r) in [250.0, 2500.0].into_iter().enumerate() {
            q.push((r, queryable(&app, r, secs, 1_000_000 * (i + 1)).await));
        }
        let _ = app.shutdown.send(());
        rows.push(format!(
            "| {store} | {single:.0} | {batched:.0} | {rate:.0} ({:.2}x single, {:.2}x batched) | {p50:.1} / {p99:.1} | {} |",
            rate / single,
            rate / batched,
            q.iter()
                .map(|(r, (a, b, c, k))| format!("{r:.0}/s: {a:.0} / {b:.0} / {c:.0} ms (n={k})"))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        eprintln!("{}", rows.last().unwrap());
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_owned))
        .unwrap_or_default();
    let date = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ").to_string();
    let mut out = format!(
        "# billsync intake benchmark {date}{}\n\nMachine: {cores} cores, {mem}. Intake: {n} signed ~2 KB Stripe invoice events over {CONNECTIONS} connections (one merchant each), {concurrency} concurrent HTTP/1.1 clients on loopback. Baselines in the same run: single-row durable insert transactions of a 2 KB payload (SQLite WAL+synchronous=FULL, 1 writer; Postgres 16 clients) and 100-row transactions.\n\n",
        if o.quick { " (quick)" } else { "" }
    );
    out.push_str("| store | baseline single-row rows/s | baseline 100-row-tx rows/s | intake events/s | ack P50 / P99 ms | webhook→queryable P50 / P95 / P99 |\n|---|---|---|---|---|---|\n");
    for r in &rows {
        out.push_str(r);
        out.push('\n');
    }
    println!("{out}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{date}.md")), out);
}
