//! Benchmarks of the scale issue: intake, webhook→queryable latency, backfill and 48,000
//! registered connections (node RSS, cold routing) on SQLite and Postgres, each against
//! baselines of the same store measured in the same run (raw single-row durable inserts of a
//! 2 KB payload, and 100-row transactions).
//!
//! Run through `scripts/bench` (it provides Postgres). Flags: `--quick`, `--stores sqlite,postgres`,
//! `--scenarios 1,2,3,4,5,6` (1 to 3 share their baselines; 5, `/healthz` under a slow-client
//! attack, runs once for both stores; 6, three `billsync serve` processes on one Postgres
//! against one, and a takeover after kill -9, runs once on Postgres), `--watch SECS` (longest watch of scenario 4's refetch
//! state).
//! Prints a Markdown table and writes it to `bench/results/<date>.md`.

mod backfill;
mod cluster;
// The cluster tests' load balancer, shared so the bench measures through the same one; the
// tests use parts of it (acknowledgement records) the bench does not.
#[allow(dead_code)]
#[path = "../../tests/it/cluster_lb.rs"]
mod cluster_lb;
mod connections;
mod intake;
mod load;
mod slow_clients;
mod support;

use intake::queryable;
use support::{baseline_batched, baseline_copy, baseline_single, fresh_db, start_app, CONNECTIONS};

/// Quick mode registers this many of scenario 4's connections through the admin API (its
/// rate is reported) and inserts the rest straight into the store, to stay under 3 minutes.
const QUICK_VIA_API: usize = 3_000;

struct Opts {
    quick: bool,
    stores: Vec<String>,
    scenarios: Vec<String>,
    /// Longest watch of scenario 4's refetch state, seconds (`--watch`).
    watch: Option<f64>,
}

impl Opts {
    fn runs(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let list = |flag: &str, default: &str| -> Vec<String> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map_or_else(|| default.to_string(), Clone::clone)
            .split(',')
            .map(str::to_owned)
            .collect()
    };
    Opts {
        quick,
        stores: list("--stores", "sqlite,postgres"),
        scenarios: list("--scenarios", "1,2,3,4,5,6"),
        watch: list("--watch", "").first().and_then(|w| w.parse().ok()),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; ignore unknown flags.
    let o = opts();
    // Intake burst size and bursts per client count; baseline rows; seconds of each
    // webhook→queryable rate.
    let (n, intake_reps, base_rows, secs) = if o.quick {
        (3_000, 1, 2_000, 5.0)
    } else {
        (20_000, 3, 10_000, 20.0)
    };
    // Backfill sizes: unlimited, and at 100 req/s (100 objects a page: 100 s at full quota).
    let (bf_unlimited, bf_quota) = if o.quick {
        (20_000, 60_000)
    } else {
        (100_000, 250_000)
    };
    // Scenario 4: connections registered, how many of them through the admin API (the rest
    // inserted straight into the store), seconds watched with one pending refetch each.
    let (conn_n, conn_api, mut conn_watch) = if o.quick {
        (connections::FULL, QUICK_VIA_API, 12.0)
    } else {
        (connections::FULL, connections::FULL, 120.0)
    };
    if let Some(w) = o.watch {
        conn_watch = w;
    }
    let mut backfill_rows = Vec::new();
    let mut conn_rows = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let mut sweeps = Vec::new();
    for store in &o.stores {
        if o.runs("1") || o.runs("2") || o.runs("3") {
            let path = dir.path();
            let db = |k: &str| {
                let name = format!("{store}_{k}");
                async move { fresh_db(store, path, &name).await }
            };
            let writers = if store == "sqlite" { 1 } else { 16 };
            let single = baseline_single(&db("b1").await, base_rows, writers).await;
            let batched = baseline_batched(&db("b2").await, base_rows).await;
            // The bulk rate: Postgres `COPY` (as many rows as the unlimited backfill moves);
            // SQLite has no `COPY`, and its 100-row transactions are its bulk rate.
            let bulk = if store == "sqlite" {
                batched
            } else {
                baseline_copy(&db("b3").await, bf_unlimited).await
            };
            let bulk_cell = if store == "sqlite" {
                format!("{bulk:.0} (100-row tx)")
            } else {
                format!("{bulk:.0} (COPY); {batched:.0} (100-row tx)")
            };
            if o.runs("1") || o.runs("2") {
                let app = start_app(db("app").await).await;
                let mut figures = intake::Figures::default();
                if o.runs("1") {
                    figures.sweep = intake::sweep(&app, n, intake_reps).await;
                    // The single-row rate drifts with the disk's flush time: measured again
                    // right after the intake, and the intake set against the mean of the two.
                    figures.single_after =
                        baseline_single(&db("b1_after").await, base_rows, writers).await;
                }
                if o.runs("2") {
                    for (i, r) in [250.0, 2500.0].into_iter().enumerate() {
                        let q = queryable(&app, r, secs, 1_000_000 * (i + 1), true).await;
                        figures.queryable.push((r, q));
                    }
                }
                let _ = app.shutdown.send(());
                rows.push(figures.row(store, n, single, &bulk_cell, bulk));
                if o.runs("1") {
                    sweeps.push(figures.steps_line(store));
                }
                eprintln!("{}", rows.last().unwrap());
            }
            if !o.runs("3") {
                continue;
            }
            let f = backfill::run(store, dir.path(), bf_unlimited, bf_quota).await;
            let share = |requests: f64| 100.0 * requests / (f.quota_secs * backfill::QUOTA);
            backfill_rows.push(format!(
                "| {store} | {} in {:.1} s: {:.0}/s ({:.2}x bulk, {:.2}x 100-row tx) | {} objects in {:.1} s; {:.0} requests of the connection ({:.0} of them the backfill's): {:.0}% of {:.0} req/s ({:.0}% the backfill's), {} answered 429 ({:.2}%) | {:.0} / {:.0} / {:.0} ms (n={}) |",
                f.unlimited_objects,
                f.unlimited_objects as f64 / f.unlimited_per_sec,
                f.unlimited_per_sec,
                f.unlimited_per_sec / bulk,
                f.unlimited_per_sec / batched,
                f.quota_objects,
                f.quota_secs,
                f.quota_all_requests,
                f.quota_requests,
                share(f.quota_all_requests),
                backfill::QUOTA,
                share(f.quota_requests),
                f.rate_limited,
                100.0 * f.rate_limited as f64 / f.quota_all_requests.max(1.0),
                f.during.0,
                f.during.1,
                f.during.2,
                f.during.3,
            ));
            eprintln!("{}", backfill_rows.last().unwrap());
        }
        if o.runs("4") {
            let url = fresh_db(store, dir.path(), &format!("{store}_conns")).await;
            let c = connections::run(store, &url, dir.path(), conn_n, conn_api, conn_watch).await;
            conn_rows.push(connections::row(store, &c));
            eprintln!("{}", conn_rows.last().unwrap());
        }
    }
    let slow = if o.runs("5") {
        let f = slow_clients::run(dir.path()).await;
        let t = slow_clients::table(&f);
        eprintln!("{t}");
        Some(t)
    } else {
        None
    };
    let cluster = if o.runs("6") {
        let (n, secs) = if o.quick {
            (3_000, 5.0)
        } else {
            (20_000, 20.0)
        };
        let f = cluster::run(dir.path(), n, secs).await;
        let t = cluster::table(&f);
        eprintln!("{t}");
        Some(t)
    } else {
        None
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_owned))
        .unwrap_or_default();
    let date = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ").to_string();
    let mut out = format!(
        "# billsync intake benchmark {date}{}\n\nMachine: {cores} cores, {mem}. Intake: bursts of {n} signed ~2 KB Stripe invoice events over {CONNECTIONS} connections (one merchant each) from {clients} keep-alive HTTP/1.1 clients in turn, on loopback (requests built and signed before the clock starts), each burst applied before the next, {intake_reps} bursts per client count and their medians taken; the figure is the fastest client count with a median ack P99 under {limit:.0} ms. Baselines in the same run: single-row durable insert transactions of a 2 KB payload (SQLite WAL+synchronous=FULL, 1 writer; Postgres 16 clients), measured before and again right after the intake bursts, the intake ratio taken against their mean; 100-row transactions on one connection; and Postgres `COPY` of {bf_unlimited} rows in one transaction, its bulk rate (SQLite's is its 100-row transactions).\n\n",
        if o.quick { " (quick)" } else { "" },
        clients = intake::CLIENTS.map(|c| c.to_string()).join(", "),
        limit = intake::ACK_P99_LIMIT_MS,
    );
    if !rows.is_empty() {
        out.push_str("| store | baseline single-row rows/s, before / after | baseline bulk rows/s | intake events/s | ack P50 / P99 ms | all applied after the last ack; events/s end to end | webhook→queryable P50 / P95 / P99 |\n|---|---|---|---|---|---|---|\n");
        for r in &rows {
            out.push_str(r);
            out.push('\n');
        }
        if !sweeps.is_empty() {
            out.push_str(&format!("\nIntake bursts: {}.\n", sweeps.join("; ")));
        }
    }
    if !backfill_rows.is_empty() {
        out.push_str("\nBackfill from `billsync sim` (24 months of history, 100 objects a page), against the bulk baseline above; while the quota-limited backfill runs, signed webhooks go to the same connection at 20/s, and their confirmation reads share the connection's quota with the backfill (the simulator counts every request).\n\n| store | backfill, simulator not limiting | backfill at a 100 req/s quota | webhook→queryable P50 / P95 / P99 during that backfill |\n|---|---|---|---|\n");
        for r in &backfill_rows {
            out.push_str(r);
            out.push('\n');
        }
    }
    if !conn_rows.is_empty() {
        out.push_str(&connections::header(conn_n, conn_watch));
        for r in &conn_rows {
            out.push_str(r);
            out.push('\n');
        }
    }
    if let Some(t) = slow {
        out.push_str(&t);
    }
    if let Some(t) = cluster {
        out.push_str(&t);
    }
    println!("{out}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{date}.md")), out);
}
