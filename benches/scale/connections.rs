//! Scenario 4: 48,000 registered connections on one node, run as its own process
//! (`billsync serve`, the release binary), so resident memory is the node's alone: RSS empty,
//! with every connection idle, and with one pending refetch each against an unreachable
//! provider API; plus the time to route a webhook to a cold connection (no pair actor, nothing
//! cached) to its 200 and to queryable, beside the same for a warm one.

use std::ops::Range;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::support::{now_secs, percentile, signed_event, SECRET, TOKEN};

/// Connections registered in the full run (8,000 merchants x 6 providers).
pub const FULL: usize = 48_000;
/// Cold connections a webhook is routed to.
const COLD: usize = 200;
/// Concurrent admin-API clients while registering.
const REGISTER_CONCURRENCY: usize = 32;

/// A `billsync serve` child process on loopback.
pub struct Node {
    child: tokio::process::Child,
    pub base: String,
    pid: u32,
}

/// Resident memory of a process, MiB: (now, peak).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rss {
    pub now: f64,
    pub peak: f64,
}

impl Node {
    /// Starts the release `billsync` binary (or `BILLSYNC_BENCH_NODE_BIN`, to compare
    /// builds) on `url` with its data under `dir`, and waits until it is ready.
    pub async fn start(url: &str, dir: &Path) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Sweeps are not due during the run: the states measured are "idle" and "refetches".
        let config = dir.join("billsync.toml");
        std::fs::write(&config, "reconcile_interval_secs = 86400\n").unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))
            .unwrap();
        let bin = std::env::var("BILLSYNC_BENCH_NODE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_billsync").to_owned());
        let child = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("BILLSYNC_DATABASE_URL", url)
            .env("BILLSYNC_LISTEN", format!("127.0.0.1:{port}"))
            .env("BILLSYNC_ADMIN_TOKEN", TOKEN)
            .env("BILLSYNC_DATA_DIR", dir.join("data"))
            .env("BILLSYNC_SECRET_KEY", secret_key())
            .env("BILLSYNC_PROVIDER_SYNC", "true")
            .env("BILLSYNC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the billsync binary starts");
        let pid = child.id().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "billsync serve did not become ready (see {})",
                dir.join("node.log").display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Node { child, base, pid }
    }

    /// VmRSS and VmHWM of the node, from /proc/<pid>/status.
    pub fn rss(&self) -> Rss {
        rss_of(&format!("/proc/{}/status", self.pid))
    }

    /// A gauge or counter from the node's /metrics (summed over label sets).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn stop(mut self) {
        // SIGTERM, so it drains like a real stop; SIGKILL if it takes too long.
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

pub fn rss_of(status_path: &str) -> Rss {
    let status = std::fs::read_to_string(status_path).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    Rss {
        now: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}

/// The node's sealing key (fixed, so the bench can seal secrets for direct inserts).
fn secret_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

fn merchant(i: usize) -> String {
    format!("m_conn_{i}")
}

/// Registers connections `range` through `POST /admin/v1/connections` with
/// [`REGISTER_CONCURRENCY`] clients; returns (connection id, merchant id) in order and the
/// registrations per second.
async fn register_api(
    node: &Node,
    range: Range<usize>,
    api_base: &str,
) -> (Vec<(String, String)>, f64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(REGISTER_CONCURRENCY)
        .build()
        .unwrap();
    let n = range.len();
    let out: Arc<Vec<std::sync::OnceLock<String>>> =
        Arc::new((0..n).map(|_| std::sync::OnceLock::new()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..REGISTER_CONCURRENCY {
        let (client, out, next) = (client.clone(), out.clone(), next.clone());
        let (url, api_base, first) = (
            format!("{}/admin/v1/connections", node.base),
            api_base.to_owned(),
            range.start,
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    return;
                }
                let i = first + k;
                let r = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"merchant_id": merchant(i), "provider": "stripe",
                        "account_id": format!("acct_conn_{i}"), "webhook_secrets": [SECRET],
                        "api_key": "sk_bench", "api_base_url": api_base}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "registration refused");
                let v: Value = r.json().await.unwrap();
                out[k]
                    .set(v["connection_id"].as_str().unwrap().to_owned())
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let ids = out
        .iter()
        .zip(range)
        .map(|(id, i)| (id.get().unwrap().clone(), merchant(i)))
        .collect();
    (ids, rate)
}

/// Inserts connections `range` (and their sweep rows) straight into the store, 500 a
/// transaction: what the admin API writes, without the audit rows. Quick mode only.
async fn register_direct(url: &str, range: Range<usize>, api_base: &str) -> Vec<(String, String)> {
    let sealer = billsync::secrets::Sealer::from_base64(&secret_key()).unwrap();
    let now = now_secs() * 1_000_000;
    let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> = range
        .map(|i| {
            (
                format!("conn_direct{i:09}"),
                merchant(i),
                sealer.seal(&[SECRET.to_owned()]),
                sealer.seal(&["sk_bench".to_owned()]),
            )
        })
        .collect();
    macro_rules! insert {
        ($pool:expr, $db:ty) => {{
            let pool = $pool;
            for chunk in rows.chunks(500) {
                let mut tx = pool.begin().await.unwrap();
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO connections (id, merchant_id, provider, account_id, \
                     sealed_webhook_secrets, sealed_api_key, api_base_url, state, lease_epoch, \
                     created_at, updated_at) ",
                );
                q.push_values(chunk, |mut b, (id, m, secrets, key)| {
                    b.push_bind(id.clone())
                        .push_bind(m.clone())
                        .push_bind("stripe")
                        .push_bind(format!("acct_{id}"))
                        .push_bind(secrets.clone())
                        .push_bind(key.clone())
                        .push_bind(api_base.to_owned())
                        .push_bind("active")
                        .push_bind(1_i64)
                        .push_bind(now)
                        .push_bind(now);
                });
                q.build().execute(&mut *tx).await.unwrap();
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO sweeps (connection_id, position, next_run_at) ",
                );
                q.push_values(chunk, |mut b, (id, ..)| {
                    b.push_bind(id.clone())
                        .push_bind(now / 1_000_000)
                        .push_bind(now + 86_400 * 1_000_000);
                });
                q.build().execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
            }
            pool.close().await;
        }};
    }
    if url.starts_with("sqlite:") {
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .busy_timeout(Duration::from_secs(30));
        insert!(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap(),
            sqlx::Sqlite
        );
    } else {
        insert!(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap(),
            sqlx::Postgres
        );
    }
    rows.into_iter().map(|(id, m, ..)| (id, m)).collect()
}

/// Gives every connection one pending confirmation read, due now (as a webhook that changed
/// one object leaves behind), in 1,000-row transactions.
async fn insert_refetches(url: &str, conns: &[(String, String)]) {
    let now = now_secs() * 1_000_000;
    macro_rules! insert {
        ($pool:expr, $db:ty) => {{
            let pool = $pool;
            for chunk in conns.chunks(1000) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO refetches (connection_id, object_type, provider_id, due_at, \
                     attempts, first_seen_at) ",
                );
                q.push_values(chunk, |mut b, (id, _)| {
                    b.push_bind(id.clone())
                        .push_bind("invoice")
                        .push_bind(format!("in_pending_{id}"))
                        .push_bind(now)
                        .push_bind(0_i64)
                        .push_bind(now);
                });
                q.build().execute(&pool).await.unwrap();
            }
            pool.close().await;
        }};
    }
    if url.starts_with("sqlite:") {
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .busy_timeout(Duration::from_secs(30));
        insert!(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap(),
            sqlx::Sqlite
        );
    } else {
        insert!(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap(),
            sqlx::Postgres
        );
    }
}

/// Refetches whose first read has been tried (and rescheduled): attempts > 0.
async fn refetches_tried(url: &str) -> i64 {
    use sqlx::Connection;
    let sql = "SELECT COUNT(*) FROM refetches WHERE attempts > 0";
    if url.starts_with("sqlite:") {
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .busy_timeout(Duration::from_secs(30));
        let mut c = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
        let _ = c.close().await;
        n
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
        let _ = c.close().await;
        n
    }
}

/// Latencies in ms: P50 and P99.
#[derive(Clone, Copy, Debug, Default)]
pub struct P {
    pub p50: f64,
    pub p99: f64,
}

fn p(mut v: Vec<f64>) -> P {
    v.sort_by(f64::total_cmp);
    P {
        p50: percentile(&v, 0.5),
        p99: percentile(&v, 0.99),
    }
}

/// Sends one signed event to `conn` and waits for it in the merchant's change feed after
/// `after`; returns (ms to the 200, ms to queryable, the feed's new end).
async fn route_one(
    client: &reqwest::Client,
    base: &str,
    (conn, merchant): &(String, String),
    n: usize,
    after: i64,
) -> (f64, f64, i64) {
    let (body, sig) = signed_event(n);
    let sent = Instant::now();
    let r = client
        .post(format!("{base}/webhooks/stripe/{conn}"))
        .header("Stripe-Signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "webhook refused");
    let ack = sent.elapsed().as_secs_f64() * 1000.0;
    let feed = format!("{base}/v1/merchants/{merchant}/changes?after={after}&limit=10");
    loop {
        let page: Value = client
            .get(&feed)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !page["data"].as_array().unwrap().is_empty() {
            let queryable = sent.elapsed().as_secs_f64() * 1000.0;
            return (ack, queryable, page["next_after"].as_i64().unwrap());
        }
        assert!(
            sent.elapsed() < Duration::from_secs(60),
            "webhook not queryable after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// What one store's run measured.
pub struct Figures {
    pub connections: usize,
    /// Registered through the admin API (the rest inserted straight into the store).
    pub via_api: usize,
    pub api_rate: f64,
    pub register_secs: f64,
    pub empty: Rss,
    /// Right after registering (same process).
    pub idle_after_register: Rss,
    /// A fresh node on the same store, every connection idle.
    pub idle_fresh: Rss,
    pub cold_ack: P,
    pub cold_queryable: P,
    pub warm_ack: P,
    pub warm_queryable: P,
    /// With one pending refetch per connection: RSS at the end, the highest RSS seen (VmHWM),
    /// the most pair actors live at once, and seconds until every connection had one.
    pub refetch: Rss,
    pub refetch_peak_rss: f64,
    pub peak_actors: f64,
    /// Seconds until every connection's refetch had been tried once, if it happened.
    pub all_tried_after: Option<f64>,
    /// Refetches tried at least once when the watch ended, and seconds watched.
    pub tried: i64,
    pub watched: f64,
}

/// Runs scenario 4 on a fresh database of `store`: `n` connections, of which the first
/// `via_api` are registered through the admin API; refetch state watched until every
/// refetch has been tried once (then 5 s more), at most `watch` seconds.
pub async fn run(
    store: &str,
    url: &str,
    dir: &Path,
    n: usize,
    via_api: usize,
    watch: f64,
) -> Figures {
    // A provider API nobody listens on: every confirmation read fails fast and is retried,
    // so the refetches stay pending for the whole run.
    let dead_api = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let node_dir = dir.join(format!("{store}_conn_node"));
    let node = Node::start(url, &node_dir).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let empty = node.rss();
    eprintln!("scenario 4 ({store}): empty node RSS {:.1} MiB", empty.now);

    let started = Instant::now();
    let (mut conns, api_rate) = register_api(&node, 0..via_api.min(n), &dead_api).await;
    eprintln!(
        "scenario 4 ({store}): {} connections through the admin API at {api_rate:.0}/s",
        conns.len()
    );
    if n > via_api {
        conns.extend(register_direct(url, via_api..n, &dead_api).await);
    }
    let register_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_after_register = node.rss();
    eprintln!(
        "scenario 4 ({store}): {n} idle connections, RSS {:.1} MiB (after registering)",
        idle_after_register.now
    );
    node.stop().await;

    // A fresh node on the populated store: nothing loaded, nothing running.
    let node = Node::start(url, &node_dir).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_fresh = node.rss();
    eprintln!(
        "scenario 4 ({store}): {n} idle connections, RSS {:.1} MiB (fresh node), live actors {}",
        idle_fresh.now,
        node.metric("billsync_live_actors").await
    );

    // Cold: connections no webhook has reached since the node started (no actor, not
    // cached), spread over the registration order; then the same ones again, warm.
    let client = reqwest::Client::new();
    let step = (n / COLD).max(1);
    let cold: Vec<&(String, String)> = conns.iter().step_by(step).take(COLD).collect();
    let (mut cold_ack, mut cold_q, mut ends) = (Vec::new(), Vec::new(), Vec::new());
    for (k, c) in cold.iter().enumerate() {
        let (a, q, end) = route_one(&client, &node.base, c, 7_000_000 + k, 0).await;
        cold_ack.push(a);
        cold_q.push(q);
        ends.push(end);
    }
    let (mut warm_ack, mut warm_q) = (Vec::new(), Vec::new());
    for (k, c) in cold.iter().enumerate() {
        let (a, q, _) = route_one(&client, &node.base, c, 8_000_000 + k, ends[k]).await;
        warm_ack.push(a);
        warm_q.push(q);
    }
    let (cold_ack, cold_queryable) = (p(cold_ack), p(cold_q));
    let (warm_ack, warm_queryable) = (p(warm_ack), p(warm_q));
    eprintln!(
        "scenario 4 ({store}): cold ack {cold_ack:?} queryable {cold_queryable:?}; warm ack {warm_ack:?} queryable {warm_queryable:?}"
    );

    // One pending refetch per connection, due now, against the dead API.
    insert_refetches(url, &conns).await;
    let t = Instant::now();
    let (mut peak_rss, mut peak_actors, mut all_tried_after, mut tried) =
        (0.0_f64, 0.0_f64, None, 0);
    while t.elapsed().as_secs_f64() < watch
        && all_tried_after.is_none_or(|s: f64| t.elapsed().as_secs_f64() < s + 5.0)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_rss = peak_rss.max(node.rss().now);
        peak_actors = peak_actors.max(node.metric("billsync_live_actors").await);
        tried = refetches_tried(url).await;
        if all_tried_after.is_none() && tried >= n as i64 {
            all_tried_after = Some(t.elapsed().as_secs_f64());
        }
    }
    let watched = t.elapsed().as_secs_f64();
    let refetch = node.rss();
    eprintln!(
        "scenario 4 ({store}): with one pending refetch each: RSS {:.1} MiB (peak {:.1}), live actors peak {peak_actors}, {tried} tried in {watched:.0} s (all after {all_tried_after:?} s)",
        refetch.now, peak_rss
    );
    node.stop().await;
    Figures {
        connections: n,
        via_api: via_api.min(n),
        api_rate,
        register_secs,
        empty,
        idle_after_register,
        idle_fresh,
        cold_ack,
        cold_queryable,
        warm_ack,
        warm_queryable,
        refetch,
        refetch_peak_rss: peak_rss.max(refetch.peak),
        peak_actors,
        all_tried_after,
        tried,
        watched,
    }
}

/// The scenario's table: heading, explanation and column names.
pub fn header(n: usize, watch: f64) -> String {
    format!(
        "\nScenario 4: {n} registered Stripe connections (one merchant each) on one node, `billsync serve` as its own process (release build, provider sync on, sweeps not due during the run). RSS is that process's VmRSS from /proc/<pid>/status, nothing of the benchmark's own. \"Idle\" is measured right after registering and again on a fresh node started on the same store (no actor running, nothing cached). Cold routing: one signed webhook to each of {COLD} connections no webhook has reached since the node started, one at a time, from send to the 200 and to its version in the change feed (polled every 1 ms); warm is the same {COLD} connections again while their pair actors run. Then every connection is given one pending refetch (rows inserted straight into the store, due at once; the provider API is unreachable, so each read fails its retries and is rescheduled) and RSS is watched until every refetch has been tried once, then 5 s more, at most {watch:.0} s.\n\n| store | registered (admin API rate) | RSS empty node | RSS {n} idle: after registering / fresh node | cold webhook: 200 P50 / P99 ms | cold → queryable P50 / P99 ms | warm: 200 / queryable P50 ms | RSS with one pending refetch each: peak (VmHWM) / end |\n|---|---|---|---|---|---|---|---|\n"
    )
}

/// One store's row of [`header`]'s table.
pub fn row(store: &str, f: &Figures) -> String {
    let registered = if f.via_api == f.connections {
        format!(
            "{} via the admin API in {:.1} s ({:.0}/s)",
            f.connections, f.register_secs, f.api_rate
        )
    } else {
        format!(
            "{} via the admin API ({:.0}/s; {} would take {:.0} s), {} inserted straight into the store",
            f.via_api,
            f.api_rate,
            f.connections,
            f.connections as f64 / f.api_rate,
            f.connections - f.via_api
        )
    };
    let tried = match f.all_tried_after {
        Some(s) => format!("all {} tried once after {s:.0} s", f.connections),
        None => format!(
            "{} of {} tried in {:.0} s",
            f.tried, f.connections, f.watched
        ),
    };
    format!(
        "| {store} | {registered} | {:.1} MiB | {:.1} / {:.1} MiB | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} MiB ({:.0} live actors at most; {tried}) |",
        f.empty.now,
        f.idle_after_register.now,
        f.idle_fresh.now,
        f.cold_ack.p50,
        f.cold_ack.p99,
        f.cold_queryable.p50,
        f.cold_queryable.p99,
        f.warm_ack.p50,
        f.warm_queryable.p50,
        f.refetch_peak_rss,
        f.refetch.now,
        f.peak_actors,
    )
}
