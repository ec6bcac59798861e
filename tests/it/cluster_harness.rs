//! The cluster harness: real `billsync serve` processes on one store, each with its own port,
//! node id and log file; a loopback load balancer in front of them that retries the next node
//! when one refuses, dies or freezes mid-request (as an ALB with health checks would) and
//! records every webhook it acknowledged; a poller that reads every object through it and
//! records any version that goes backwards; and the `GET /admin/v1/cluster` spread check.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

pub use crate::cluster_lb::Lb;
use crate::crash::free_port;
use crate::helpers::*;

/// The lease every cluster test runs with, seconds (`BILLSYNC_LEASE_SECS`).
pub const LEASE_SECS: u64 = 3;

/// Base64 of 32 bytes: the key every node seals connection secrets with.
pub const SECRET_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The Stripe collections the simulator fills.
pub const COLLECTIONS: [&str; 5] = [
    "customers",
    "invoices",
    "credit_notes",
    "subscriptions",
    "transactions",
];

/// One `billsync serve` process.
pub struct Node {
    pub id: String,
    pub port: u16,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Node {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> i32 {
        let child = self.child.as_ref().expect("the node is running");
        child.id().expect("a running child has a pid") as i32
    }

    /// Sends `signal` (SIGKILL, SIGSTOP, SIGCONT, SIGTERM) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of a child this harness spawned and has not reaped.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.id);
    }

    /// kill -9, reaped.
    pub async fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait().await;
        }
    }

    /// SIGTERM, then waits for the exit (graceful handover) and returns how long it took.
    pub async fn terminate(&mut self, within: Duration) -> Duration {
        let t = Instant::now();
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().expect("the node is running");
        match tokio::time::timeout(within, child.wait()).await {
            Ok(status) => assert!(
                status.expect("wait").success(),
                "{} exited with an error after SIGTERM:\n{}",
                self.id,
                self.tail(40)
            ),
            Err(_) => panic!(
                "{} did not exit within {within:?} of SIGTERM:\n{}",
                self.id,
                self.tail(40)
            ),
        }
        t.elapsed()
    }

    /// The last `lines` lines of the node's log.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Spawns `billsync serve` on `db` without waiting for it: stderr and stdout are appended to
/// `<temp dir>/<node id>.log`; `env` is added last (it may override).
pub fn spawn_serve(db: &TestDb, node_id: &str, port: u16, env: &[(&str, String)]) -> Node {
    let log = db.dir.path().join(format!("{node_id}.log"));
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("the node's log file")
    };
    let config = db.dir.path().join("cluster.toml");
    if !config.exists() {
        // Provider sync on, with the chaos tests' short confirmation timings (these are not
        // environment variables, so a config file carries them).
        std::fs::write(
            &config,
            "provider_sync = true\nconfirm_after_secs = 1\nprovider_timeout_secs = 2\n",
        )
        .expect("write the node config");
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_billsync"));
    command
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("BILLSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env("BILLSYNC_DATABASE_URL", &db.url)
        .env("BILLSYNC_ADMIN_TOKEN", TOKEN)
        .env("BILLSYNC_SECRET_KEY", SECRET_KEY)
        .env("BILLSYNC_NODE_ID", node_id)
        .env("BILLSYNC_LEASE_SECS", LEASE_SECS.to_string())
        .env(
            "BILLSYNC_DATA_DIR",
            db.dir.path().join(format!("data-{node_id}")),
        )
        .env("BILLSYNC_LOG", "info,sqlx=warn")
        .env("SSL_CERT_FILE", &test_ca().ca_file)
        .stdout(Stdio::from(open()))
        .stderr(Stdio::from(open()))
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().expect("spawn billsync serve");
    Node {
        id: node_id.to_owned(),
        port,
        child: Some(child),
        log,
    }
}

/// Waits until the node answers `/readyz` with 200.
pub async fn wait_ready(node: &Node, secs: u64) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(r) = client.get(format!("{}/readyz", node.url())).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not become ready in {secs} s:\n{}",
            node.id,
            node.tail(40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A cluster of nodes on one Postgres database.
pub struct Cluster {
    pub db: TestDb,
    pub nodes: Vec<Node>,
    pub lb: Lb,
}

impl Cluster {
    /// `n` ready nodes `node-0`..`node-{n-1}` on a fresh Postgres database, behind a balancer.
    pub async fn start(n: usize) -> Cluster {
        let db = TestDb::new(Backend::Postgres).await;
        let lb = Lb::start().await;
        let mut cluster = Cluster {
            db,
            nodes: Vec::new(),
            lb,
        };
        for i in 0..n {
            cluster.add_node(&format!("node-{i}")).await;
        }
        cluster
    }

    /// Starts a node with a new port (or restarts `id` on its old one) and adds it to the
    /// balancer once it is ready.
    pub async fn add_node(&mut self, id: &str) -> usize {
        let port = self
            .nodes
            .iter()
            .find(|n| n.id == id)
            .map_or_else(free_port, |n| n.port);
        let node = spawn_serve(&self.db, id, port, &[]);
        wait_ready(&node, 60).await;
        self.lb.add(port);
        match self.nodes.iter().position(|n| n.id == id) {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    /// The index of the node that owns the most of `connections` now (`shard_leases`), and
    /// how many it owns.
    pub async fn busiest(&self, connections: &[String]) -> (usize, usize) {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&self.db.url)
            .await
            .expect("connect");
        let owners: HashMap<i32, String> =
            sqlx::query_as::<_, (i32, Option<String>)>("SELECT shard, owner FROM shard_leases")
                .fetch_all(&mut db)
                .await
                .expect("shard leases")
                .into_iter()
                .filter_map(|(shard, owner)| Some((shard, owner?)))
                .collect();
        let mut counts = vec![0; self.nodes.len()];
        for c in connections {
            let owner = owners.get(&billsync::cluster::shard_of(c));
            if let Some(i) = self.nodes.iter().position(|n| Some(&n.id) == owner) {
                counts[i] += 1;
            }
        }
        let best = (0..counts.len()).max_by_key(|&i| counts[i]).unwrap_or(0);
        (best, counts.get(best).copied().unwrap_or(0))
    }

    pub fn live_ids(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id.clone())
            .collect()
    }

    /// Every node's log tail, for a failure message.
    pub fn tails(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.id, n.tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until `GET /admin/v1/cluster` lists exactly the live nodes, no shard is unowned
    /// and each node owns within `tolerance` (a fraction) of an even share. Returns the time
    /// it took; panics with the last view and the logs after `secs`.
    pub async fn wait_spread(&self, tolerance: f64, secs: u64) -> Duration {
        let t = Instant::now();
        let live: HashSet<String> = self.live_ids().into_iter().collect();
        let mut last = Value::Null;
        while t.elapsed() < Duration::from_secs(secs) {
            if let Some(view) = admin_get(&self.lb, "/admin/v1/cluster").await {
                if spread_ok(&view, &live, tolerance) {
                    return t.elapsed();
                }
                last = view;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "shards not spread over {live:?} (±{tolerance}) within {secs} s; last view {last}\n{}",
            self.tails(30)
        );
    }
}

impl Drop for Cluster {
    /// On a failure, keeps the nodes' logs (the temp dir goes with the database) and says where.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let keep =
            std::env::temp_dir().join(format!("billsync-cluster-logs-{}", &uuid_like()[..8]));
        if std::fs::create_dir_all(&keep).is_ok() {
            for n in &self.nodes {
                let _ = std::fs::copy(&n.log, keep.join(format!("{}.log", n.id)));
            }
            eprintln!("cluster node logs kept in {}", keep.display());
        }
    }
}

/// Whether a cluster view lists exactly `live`, leaves nothing unowned and is even enough.
pub fn spread_ok(view: &Value, live: &HashSet<String>, tolerance: f64) -> bool {
    let total = view["shards"].as_u64().unwrap_or(0) as f64;
    let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
    let listed: HashSet<String> = nodes
        .iter()
        .filter_map(|n| n["node_id"].as_str().map(str::to_owned))
        .collect();
    if total == 0.0 || view["unowned_shards"] != 0 || &listed != live {
        return false;
    }
    let share = total / live.len() as f64;
    let (low, high) = (
        (share.floor() * (1.0 - tolerance)).floor(),
        (share.ceil() * (1.0 + tolerance)).ceil(),
    );
    nodes.iter().all(|n| {
        let owned = n["shards"].as_f64().unwrap_or(-1.0);
        owned >= low && owned <= high
    })
}

/// An admin GET through the balancer (`None` unless 200).
pub async fn admin_get(lb: &Lb, path: &str) -> Option<Value> {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", lb.url))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

/// Every object of one merchant and collection through the read API at `base`.
pub async fn list_all(
    client: &reqwest::Client,
    base: &str,
    merchant: &str,
    collection: &str,
) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/merchants/{merchant}/{collection}?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = client.get(url).bearer_auth(TOKEN).send().await.ok()?;
        if r.status() != 200 {
            return None;
        }
        let page: Value = r.json().await.ok()?;
        out.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Some(out),
        }
    }
}

/// What the poller saw: each object's last (version, content), and every step backwards.
#[derive(Default)]
pub struct PollLog {
    pub seen: HashMap<String, (i64, String)>,
    pub backwards: Vec<String>,
    pub polls: usize,
}

/// Reads every object of `merchants` through `base` until `stop`, recording a version lower
/// than one seen before, or a version seen before with other content (a duplicate version).
pub fn spawn_poller(
    base: String,
    merchants: Vec<String>,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<PollLog>>, tokio::task::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(PollLog::default()));
    let out = log.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("the poller's client");
    let task = tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            for m in &merchants {
                for c in COLLECTIONS {
                    let Some(objects) = list_all(&client, &base, m, c).await else {
                        continue;
                    };
                    let mut log = log.lock().unwrap();
                    for o in objects {
                        let id = format!("{m}/{}", o["id"].as_str().unwrap_or_default());
                        let version = o["version"].as_i64().unwrap_or(0);
                        let content = format!("{}|{}", o["deleted"], o["data"]);
                        let problem = match log.seen.get(&id) {
                            Some((v, _)) if version < *v => {
                                Some(format!("{id}: version {version} after {v}"))
                            }
                            Some((v, seen)) if version == *v && &content != seen => {
                                Some(format!("{id}: version {version} with two contents"))
                            }
                            _ => None,
                        };
                        match problem {
                            Some(p) => log.backwards.push(p),
                            None => {
                                log.seen.insert(id, (version, content));
                            }
                        }
                    }
                }
            }
            log.lock().unwrap().polls += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (out, task)
}

/// A counter's value on a node's `/metrics` (summed over its labels; 0 when absent).
pub async fn metric(node: &Node, name: &str) -> f64 {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", node.url()))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    crate::helpers::metric_in(&text, name).unwrap_or(0.0)
}

/// The time from `t` until `cond` holds, polled every 20 ms; panics after `secs`.
pub async fn within<F, Fut>(what: &str, secs: u64, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !cond().await {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.elapsed()
}
