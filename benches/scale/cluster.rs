//! Scenario 6: cluster mode on one Postgres (issue 21). `billsync serve` processes behind the
//! loopback balancer of the cluster tests (`tests/it/cluster_lb.rs`); the same intake burst
//! and webhook→queryable rate against one node and against three, in the same run, their
//! ratio; then the takeover after a `kill -9` of one of the three: from its leases' expiry
//! (read from `shard_leases`) to the first version written for one of its connections by
//! the node that took it over.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::cluster_lb::Lb;
use crate::intake::{all_applied, intake, queryable};
use crate::support::{fresh_db, register_connections, signed_event, App, CONNECTIONS, TOKEN};

/// The lease the nodes run with, seconds (`BILLSYNC_LEASE_SECS`).
const LEASE_SECS: u64 = 3;

/// What one cluster size measured.
pub struct Size {
    pub nodes: usize,
    /// Events/s of one intake burst through the balancer, ack P50 and P99 ms.
    pub intake: (f64, f64, f64),
    /// Seconds from the last ack until every event of the burst was readable.
    pub drain: f64,
    /// Webhook→queryable P50, P95, P99 ms and events seen, at [`RATE`]/s.
    pub queryable: (f64, f64, f64, usize),
    /// CPU seconds spent during the intake burst by the nodes, by Postgres and by this
    /// process (the balancer and the clients), and the burst's wall seconds.
    pub cpu: Cpu,
}

/// CPU seconds (user + system, from `/proc`) over one interval.
#[derive(Default, Clone, Copy)]
pub struct Cpu {
    pub nodes: f64,
    pub postgres: f64,
    pub bench: f64,
    pub wall: f64,
}

/// The node's intake group commits so far: batches, mean batch size, mean commit ms.
async fn intake_metrics(port: u16) -> String {
    let Ok(r) = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
    else {
        return "no metrics".into();
    };
    let text = r.text().await.unwrap_or_default();
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let batches = value("billsync_intake_batch_size_count");
    let events = value("billsync_intake_batch_size_sum");
    let commit = value("billsync_intake_commit_seconds_sum");
    format!(
        "{batches:.0} intake commits, {:.1} events each, {:.2} ms each",
        events / batches.max(1.0),
        commit * 1000.0 / batches.max(1.0)
    )
}

/// User + system clock ticks of one process, 0 when it is gone.
fn ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces): state is the first, utime the
    // 12th and stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// Ticks of every process named `postgres` (the server and its backends).
fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|pid| ticks(&pid))
        .sum()
}

/// A reading of the three kinds of ticks.
fn cpu_now(nodes: &[u32]) -> (u64, u64, u64, Instant) {
    let node_ticks = nodes.iter().map(|p| ticks(&p.to_string())).sum();
    (node_ticks, postgres_ticks(), ticks("self"), Instant::now())
}

fn cpu_since(before: (u64, u64, u64, Instant), nodes: &[u32]) -> Cpu {
    let after = cpu_now(nodes);
    // Linux reports /proc times in USER_HZ, 100 on every architecture it runs on.
    let secs = |a: u64, b: u64| a.saturating_sub(b) as f64 / 100.0;
    Cpu {
        nodes: secs(after.0, before.0),
        postgres: secs(after.1, before.1),
        bench: secs(after.2, before.2),
        wall: after.3.duration_since(before.3).as_secs_f64(),
    }
}

/// What the scenario measured.
pub struct Figures {
    pub sizes: Vec<Size>,
    pub takeover: Takeover,
}

/// A kill -9 of one of three nodes.
#[derive(Default)]
pub struct Takeover {
    /// Seconds from the kill until the victim's last lease expired (`shard_leases`).
    pub expiry_after_kill: Option<f64>,
    /// Seconds from that expiry until the first version written for one of the victim's
    /// connections (the new owner's first write); from the kill when expiry is unknown.
    pub first_write_after_expiry: Option<f64>,
    pub first_write_after_kill: Option<f64>,
    /// Seconds from the expiry until the last of the victim's shards had a new owner.
    pub all_acquired_after_expiry: Option<f64>,
    /// Shards the victim held.
    pub shards: usize,
    /// Connections the victim owned.
    pub stalled: usize,
}

/// Webhook→queryable rate, events/s.
const RATE: f64 = 250.0;

struct Node {
    child: Child,
}

fn spawn(url: &str, dir: &std::path::Path, id: &str, port: u16) -> Node {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("cluster-{id}.log")))
        .expect("node log");
    let child = Command::new(env!("CARGO_BIN_EXE_billsync"))
        .arg("serve")
        .env("BILLSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env("BILLSYNC_DATABASE_URL", url)
        .env("BILLSYNC_ADMIN_TOKEN", TOKEN)
        .env(
            "BILLSYNC_SECRET_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .env("BILLSYNC_NODE_ID", id)
        .env("BILLSYNC_LEASE_SECS", LEASE_SECS.to_string())
        .env("BILLSYNC_PROVIDER_SYNC", "false")
        .env("BILLSYNC_DATA_DIR", dir.join(format!("data-{id}")))
        .env("BILLSYNC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn billsync serve");
    Node { child }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn wait_ready(port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a cluster node did not become ready");
}

/// Waits (up to 30 s) until `GET /admin/v1/cluster` lists `n` nodes, each holding shards, no
/// shard unowned, and the shares unchanged for two lease rounds: the nodes start one after
/// the other, the first takes every shard and hands the later ones theirs over a few rounds,
/// and a burst measured during those hand-overs would measure the rebalancing instead.
async fn wait_owned(lb: &Lb, n: usize) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let settle = Duration::from_secs(LEASE_SECS * 2 / 3 + 1);
    let mut last: Option<(Vec<i64>, Instant)> = None;
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("{}/admin/v1/cluster", lb.url))
            .bearer_auth(TOKEN)
            .send()
            .await
        {
            if let Ok(v) = r.json::<Value>().await {
                let mut shares: Vec<i64> = v["nodes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|n| n["shards"].as_i64().unwrap_or(0))
                            .collect()
                    })
                    .unwrap_or_default();
                shares.sort_unstable();
                let whole =
                    shares.len() == n && shares.iter().all(|&s| s > 0) && v["unowned_shards"] == 0;
                match &last {
                    Some((prev, since)) if whole && *prev == shares => {
                        if since.elapsed() >= settle {
                            eprintln!("cluster: {n} node(s) hold {shares:?} shards");
                            return;
                        }
                    }
                    _ => last = whole.then(|| (shares, Instant::now())),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("cluster: shards not settled on {n} nodes after 30 s; measuring anyway");
}

/// Runs the scenario: `n` events a burst, `secs` of webhook→queryable at [`RATE`]/s.
pub async fn run(dir: &std::path::Path, n: usize, secs: f64) -> Figures {
    let mut sizes = Vec::new();
    let mut takeover = Takeover::default();
    for nodes in [1, 3] {
        let url = fresh_db("postgres", dir, &format!("cluster{nodes}")).await;
        let lb = Lb::start().await;
        let mut running = Vec::new();
        for i in 0..nodes {
            let port = free_port();
            running.push((spawn(&url, dir, &format!("node-{i}"), port), port));
            wait_ready(port).await;
            lb.add(port);
        }
        wait_owned(&lb, nodes).await;
        let (shutdown, _) = tokio::sync::oneshot::channel();
        let app = App {
            base: lb.url.clone(),
            conns: register_connections(&lb.url).await,
            shutdown,
            _dir: tempfile::tempdir().expect("temp dir"),
        };
        let pids: Vec<u32> = running.iter().filter_map(|(n, _)| n.child.id()).collect();
        let before = cpu_now(&pids);
        let burst = intake(&app, n, 0, 64).await;
        let cpu = cpu_since(before, &pids);
        for (_, port) in &running {
            eprintln!("cluster: node on {port}: {}", intake_metrics(*port).await);
        }
        eprintln!(
            "cluster: {nodes} node(s): burst CPU over {:.2} s wall: nodes {:.2} s, postgres {:.2} s, bench {:.2} s",
            cpu.wall, cpu.nodes, cpu.postgres, cpu.bench
        );
        let drain = all_applied(&app, n).await;
        let q = queryable(&app, RATE, secs, 1_000_000, true).await;
        eprintln!(
            "cluster: {nodes} node(s): intake {:.0} events/s (ack P50 {:.1} ms, P99 {:.1} ms), applied {drain:.2} s after the last ack; webhook→queryable P50 {:.0} / P95 {:.0} / P99 {:.0} ms (n={})",
            burst.0, burst.1, burst.2, q.0, q.1, q.2, q.3
        );
        sizes.push(Size {
            nodes,
            intake: burst,
            drain,
            queryable: q,
            cpu,
        });
        if nodes == 3 {
            takeover = kill_and_take_over(&app, &url, &mut running[1].0, "node-1").await;
        }
        for (mut node, _) in running {
            let _ = node.child.start_kill();
            let _ = node.child.wait().await;
        }
    }
    Figures { sizes, takeover }
}

/// Sends one webhook a connection every 50 ms, kills `victim` with SIGKILL, and times the
/// stall of the connections it owned: until a version is written for one of them again.
async fn kill_and_take_over(app: &App, url: &str, victim: &mut Node, victim_id: &str) -> Takeover {
    use sqlx::Connection;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut db = sqlx::PgConnection::connect(url).await.expect("connect");
    // Objects 2_000_000.. : one stream of events per connection, sent every 50 ms.
    let sender = {
        let (client, app_base, conns) = (client.clone(), app.base.clone(), app.conns.clone());
        tokio::spawn(async move {
            let mut k = 0;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(LEASE_SECS + 12) {
                for (i, (conn, _)) in conns.iter().enumerate() {
                    let (body, sig) = signed_event(2_000_000 + k * conns.len() + i);
                    let _ = client
                        .post(format!("{app_base}/webhooks/stripe/{conn}"))
                        .header("Stripe-Signature", sig)
                        .body(body)
                        .send()
                        .await;
                }
                k += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_micros = now_micros();
    let _ = victim.child.start_kill();
    let _ = victim.child.wait().await;
    let (shards, expiry) = victim_leases(&mut db, victim_id).await;
    let mut acquired = None;
    // Per connection, the newest version's recording time, polled until every connection
    // has a version recorded after the kill.
    let mut first_after: HashMap<String, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(LEASE_SECS + 10);
    while Instant::now() < deadline && (first_after.len() < app.conns.len() || acquired.is_none()) {
        if acquired.is_none() && !shards.is_empty() {
            acquired = reacquired(&mut db, &shards, victim_id).await;
        }
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT connection_id, MIN(recorded_at) FILTER (WHERE recorded_at > $1) \
             FROM object_versions GROUP BY connection_id",
        )
        .bind(killed_micros)
        .fetch_all(&mut db)
        .await
        .expect("versions by connection");
        for (conn, after) in rows {
            if let Some(a) = after {
                first_after.entry(conn).or_insert(a);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = sender.await;
    // The victim's connections (their shards were its leases): the first version written
    // for one of them after the kill is the new owner's first write.
    let victims: Vec<&String> = app
        .conns
        .iter()
        .map(|(c, _)| c)
        .filter(|c| shards.contains(&billsync::cluster::shard_of(c)))
        .collect();
    let first_write = victims
        .iter()
        .filter_map(|c| first_after.get(*c))
        .min()
        .copied();
    Takeover {
        expiry_after_kill: expiry.map(|e| (e - killed_micros) as f64 / 1e6),
        first_write_after_kill: first_write.map(|w| (w - killed_micros) as f64 / 1e6),
        first_write_after_expiry: match (first_write, expiry) {
            (Some(w), Some(e)) => Some((w - e) as f64 / 1e6),
            _ => None,
        },
        all_acquired_after_expiry: match (acquired, expiry) {
            (Some(a), Some(e)) => Some((a - e) as f64 / 1e6),
            _ => None,
        },
        shards: shards.len(),
        stalled: victims.len(),
    }
}

/// The shards `victim` holds and when the last of their leases expires, unix microseconds
/// (the database's clock, as the leases are kept).
async fn victim_leases(db: &mut sqlx::PgConnection, victim: &str) -> (Vec<i32>, Option<i64>) {
    let shards = sqlx::query_scalar::<_, i32>("SELECT shard FROM shard_leases WHERE owner = $1")
        .bind(victim)
        .fetch_all(&mut *db)
        .await
        .unwrap_or_default();
    let expiry = sqlx::query_scalar::<_, Option<i64>>(
        "SELECT (EXTRACT(EPOCH FROM MAX(expires_at)) * 1000000)::BIGINT \
         FROM shard_leases WHERE owner = $1",
    )
    .bind(victim)
    .fetch_one(db)
    .await
    .ok()
    .flatten();
    (shards, expiry)
}

/// When the last of `shards` was acquired by another node than `victim`, unix microseconds
/// (`None` while one is still the victim's or nobody's).
async fn reacquired(db: &mut sqlx::PgConnection, shards: &[i32], victim: &str) -> Option<i64> {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT CASE WHEN bool_and(owner IS NOT NULL AND owner <> $2) \
                THEN (EXTRACT(EPOCH FROM MAX(acquired_at)) * 1000000)::BIGINT END \
         FROM shard_leases WHERE shard = ANY($1)",
    )
    .bind(shards)
    .bind(victim)
    .fetch_one(db)
    .await
    .ok()
    .flatten()
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

/// The Markdown section: each size, the ratio of three nodes to one, and the takeover.
pub fn table(f: &Figures) -> String {
    let mut out = format!(
        "\nCluster (scenario 6): `billsync serve` processes on one Postgres behind a loopback round-robin balancer (the cluster tests' own), lease {LEASE_SECS} s, provider sync off; one burst of signed Stripe invoice events from 64 clients, then webhook→queryable at {RATE:.0}/s; one node and three in the same run.\n\n| nodes | intake events/s | ack P50 / P99 ms | applied after the last ack | webhook→queryable P50 / P95 / P99 ms |\n|---|---|---|---|---|\n"
    );
    for s in &f.sizes {
        out.push_str(&format!(
            "| {} | {:.0} | {:.1} / {:.1} | {:.2} s | {:.0} / {:.0} / {:.0} (n={}) |\n",
            s.nodes,
            s.intake.0,
            s.intake.1,
            s.intake.2,
            s.drain,
            s.queryable.0,
            s.queryable.1,
            s.queryable.2,
            s.queryable.3
        ));
    }
    out.push_str(
        "\nCPU during the intake burst, milliseconds per 1,000 events (user + system from `/proc`; the machine has 2 cores):\n\n| nodes | billsync nodes | Postgres | bench (balancer, clients) | cores busy |\n|---|---|---|---|---|\n",
    );
    for s in &f.sizes {
        let events = s.intake.0 * s.cpu.wall / 1000.0;
        let per = |v: f64| {
            if events > 0.0 {
                v * 1000.0 / events
            } else {
                0.0
            }
        };
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.2} |\n",
            s.nodes,
            per(s.cpu.nodes),
            per(s.cpu.postgres),
            per(s.cpu.bench),
            (s.cpu.nodes + s.cpu.postgres + s.cpu.bench) / s.cpu.wall.max(1e-9),
        ));
    }
    if let [one, three] = &f.sizes[..] {
        out.push_str(&format!(
            "\nThree nodes to one: intake {:.2}x, webhook→queryable P95 {:.2}x.\n",
            three.intake.0 / one.intake.0,
            three.queryable.1 / one.queryable.1
        ));
    }
    let t = &f.takeover;
    let secs = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.2} s"));
    out.push_str(&format!(
        "\nTakeover after `kill -9` of one of three nodes (it held {} shards; {} of the {CONNECTIONS} connections were its): its leases expired {} after the kill; all its shards had new owners {} after the expiry; first write by a new owner {} after the expiry ({} after the kill).\n",
        t.shards,
        t.stalled,
        secs(t.expiry_after_kill),
        secs(t.all_acquired_after_expiry),
        secs(t.first_write_after_expiry),
        secs(t.first_write_after_kill),
    ));
    out
}
