//! Convergence against a hostile provider (issue "converge no matter what"): the simulator
//! duplicates, reorders and drops webhooks, lags its API, has an outage and a 429 storm,
//! while a poller reads billsync's API; afterwards every object equals the ground truth and
//! is `converged`, and no poll ever saw a version or its content go backwards.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billsync::providers::ProviderKind;
use billsync_sim::{SimConfig, SimHandle, Target};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::sim::start_tls_sim;

both_backends!(
    chaos_run_ends_equal_to_the_truth_converged_and_never_backwards,
    chaos_run_with_all_six_providers_for_each_merchant_ends_with_nothing_divergent,
    changes_without_any_webhook_converge_through_sweeps,
);

const COLLECTIONS: [&str; 5] = [
    "customers",
    "invoices",
    "credit_notes",
    "subscriptions",
    "transactions",
];

async fn register(sim: &SimHandle, app: &TestApp, reconcile_secs: u64) {
    let target = Target {
        url: format!("http://{}", app.addr),
        token: TOKEN.into(),
    };
    sim.sim
        .register_with(
            target,
            &json!({"reconcile_interval_secs": reconcile_secs, "rate_limit_per_sec": 50}),
        )
        .await
        .expect("register");
}

/// Every stored object of one merchant and collection, through the read API.
async fn list_all(
    client: &reqwest::Client,
    addr: SocketAddr,
    merchant: &str,
    collection: &str,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("http://{addr}/v1/merchants/{merchant}/{collection}?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let Ok(r) = client.get(url).bearer_auth(TOKEN).send().await else {
            return out;
        };
        let Ok(page) = r.json::<Value>().await else {
            return out;
        };
        out.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// What the poller saw of one object.
#[derive(Default)]
struct Seen {
    version: i64,
    content: String,
    /// When it was first seen `converged` at each version.
    converged_at: HashMap<i64, Instant>,
}

/// What the poller found: each object's history, and every step backwards.
#[derive(Default)]
struct PollLog {
    objects: HashMap<String, Seen>,
    backwards: Vec<String>,
    polls: usize,
}

/// Reads every object of every merchant until `stop`, recording regressions.
fn spawn_poller(
    app: &TestApp,
    merchants: Vec<String>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<PollLog>>,
) -> tokio::task::JoinHandle<()> {
    let (client, addr) = (app.client.clone(), app.addr);
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            for m in &merchants {
                for c in COLLECTIONS {
                    let objects = list_all(&client, addr, m, c).await;
                    let now = Instant::now();
                    let mut log = log.lock().unwrap();
                    for o in objects {
                        // Provider ids are unique per account, not across them (Recurly
                        // invoice numbers are a per-site sequence): key by merchant too.
                        let id = format!("{m}/{}", o["id"].as_str().unwrap_or_default());
                        let version = o["version"].as_i64().unwrap_or(0);
                        let content = format!("{}|{}", o["deleted"], o["data"]);
                        let seen = log.objects.entry(id.clone()).or_default();
                        let mut regression = None;
                        if version < seen.version {
                            regression =
                                Some(format!("{id}: version {version} after {}", seen.version));
                        } else if version == seen.version && content != seen.content {
                            regression = Some(format!("{id}: version {version} changed content"));
                        } else {
                            seen.version = version;
                            seen.content = content;
                        }
                        if o["reconciliation_status"] == "converged" {
                            seen.converged_at.entry(version).or_insert(now);
                        }
                        if let Some(r) = regression {
                            log.backwards.push(r);
                        }
                    }
                }
            }
            log.lock().unwrap().polls += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Each object's truth as text, to see which objects a step changed, keyed by its canonical
/// id: the provider id billsync's own mapping gives the object (`sim verify` does the same),
/// which need not be the simulator's key for it (Recurly: keyed by handle, mapped by `id`).
fn truth_states(sim: &SimHandle) -> HashMap<String, String> {
    let truth = sim.sim.truth(false);
    let mut out = HashMap::new();
    for account in truth["accounts"].as_array().into_iter().flatten() {
        let provider = account["provider"].as_str().unwrap_or_default();
        let merchant = account["merchant_id"].as_str().unwrap_or_default();
        let mapping = ProviderKind::parse(provider).map(billsync::providers::for_kind);
        for o in account["objects"].as_array().into_iter().flatten() {
            let id = mapping
                .and_then(|m| m.observe_object(&o["object"], 0).ok().flatten())
                .map(|obs| obs.provider_id)
                .unwrap_or_else(|| o["id"].as_str().unwrap_or_default().to_owned());
            out.insert(
                format!("{merchant}/{provider}:{id}"),
                format!("{}|{}", o["deleted"], o["object"]),
            );
        }
    }
    out
}

/// Waits until `verify` finds nothing divergent and every object reads `converged`.
pub async fn wait_converged(sim: &SimHandle, app: &TestApp, merchants: &[String], secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let target = format!("http://{}", app.addr);
    loop {
        let report = crate::sim::verify_sim(sim, &target).await;
        let mut not_converged = Vec::new();
        // Where the first divergent object is listed, to show its history on failure.
        let first_divergent = report.divergent.first().map(|d| d.id.as_str());
        let mut divergent_at = None;
        for m in merchants {
            for c in COLLECTIONS {
                for o in list_all(&app.client, app.addr, m, c).await {
                    if first_divergent.is_some() && o["id"].as_str() == first_divergent {
                        divergent_at = Some((m.clone(), c));
                    }
                    if o["reconciliation_status"] != "converged" {
                        let id = o["id"].as_str().unwrap_or_default().to_owned();
                        let status = o["reconciliation_status"].to_string();
                        not_converged.push((m.clone(), c, id, status));
                    }
                }
            }
        }
        if report.divergent.is_empty() && not_converged.is_empty() && report.objects > 0 {
            return;
        }
        if Instant::now() >= deadline {
            let refetches = app.db.count("SELECT COUNT(*) FROM refetches").await;
            let history_of = |m: String, c: &'static str, id: String| async move {
                app.versions(&m, c, &id)
                    .await
                    .iter()
                    .map(|v| format!("v{} {} {}", v["version"], v["reason"], v["source"]))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let history = match not_converged.first() {
                Some((m, c, id, _)) => history_of(m.clone(), c, id.clone()).await,
                None => String::new(),
            };
            let divergent_history = match (divergent_at, first_divergent) {
                (Some((m, c)), Some(id)) => history_of(m, c, id.to_owned()).await,
                _ => String::new(),
            };
            panic!(
                "not converged after {secs} s: {} of {} objects divergent (first: {:?}); {} not `converged` (first: {:?}); {refetches} refetches pending; versions of the first not converged: {history}; versions of the first divergent: {divergent_history}",
                report.divergent.len(),
                report.objects,
                report.divergent.first(),
                not_converged.len(),
                not_converged.first(),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

async fn chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(backend: Backend) {
    chaos_run(backend, vec![ProviderKind::Stripe], 2, 20).await;
}

/// Two merchants, each connected to all six providers at once (12 connections on one node):
/// the same chaos, every provider's webhooks, APIs, limits and lag side by side.
async fn chaos_run_with_all_six_providers_for_each_merchant_ends_with_nothing_divergent(
    backend: Backend,
) {
    chaos_run(backend, ProviderKind::ALL.to_vec(), 12, 20).await;
}

/// The chaos run on `accounts` accounts spread over `providers` (each merchant connected to
/// every provider), changing objects for `change_secs`.
pub async fn chaos_run(
    backend: Backend,
    providers: Vec<ProviderKind>,
    accounts: usize,
    change_secs: u64,
) {
    let app = synced_app(backend).await;
    let sim = start_tls_sim(SimConfig {
        accounts,
        seed: 11,
        providers: providers
            .iter()
            .map(|p| billsync::sim_expectation::sim_provider(*p))
            .collect(),
        ..SimConfig::default()
    })
    .await;
    // Chaos for the whole run; API lag is 3 s (30 s compressed 10x).
    sim.sim
        .set_knobs(&json!({
            "webhook_duplicate": 0.10, "webhook_drop": 0.05, "webhook_reorder_window": 8,
            "api_lag_ms": 3000, "retry_time_scale": 0.0005, "max_delivery_attempts": 3,
            "rate_limit_per_sec": 60.0, "rate_limit_burst": 20.0,
        }))
        .unwrap();
    register(&sim, &app, 3).await;
    let mut merchants: Vec<String> = sim
        .sim
        .accounts()
        .into_iter()
        .map(|a| a.merchant_id)
        .collect();
    merchants.dedup();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(PollLog::default()));
    let poller = spawn_poller(&app, merchants.clone(), stop.clone(), log.clone());

    // Changes for `change_secs` (20 s: an outage, 10 min compressed to 6 s, from 5 s; a 429
    // storm from 12 s to 16 s), the timeline scaled to the run.
    let at = move |fraction: f64| Duration::from_secs_f64(change_secs as f64 * fraction);
    let outage_secs = 0.3 * change_secs as f64;
    let started = Instant::now();
    // The same outage and storm again one lag allowance later, when the confirmation reads of
    // providers whose reads are ordered by read time (Stripe) are made.
    let allowance = providers
        .iter()
        .map(|p| billsync::providers::for_kind(*p))
        .map(|p| p.api_lag_allowance())
        .max()
        .unwrap_or_default();
    let second_phase = {
        let sim = sim.sim.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((started + allowance + at(0.25)).into()).await;
            sim.set_knobs(&json!({"outage": {"mode": "error", "secs": outage_secs}}))
                .unwrap();
            tokio::time::sleep_until((started + allowance + at(0.6)).into()).await;
            sim.set_knobs(&json!({"rate_limit_per_sec": 2.0, "rate_limit_burst": 2.0}))
                .unwrap();
            tokio::time::sleep_until((started + allowance + at(0.8)).into()).await;
            sim.set_knobs(&json!({"rate_limit_per_sec": 60.0, "rate_limit_burst": 20.0}))
                .unwrap();
        })
    };
    let mut states = truth_states(&sim);
    let mut changed_at: HashMap<String, Instant> = HashMap::new();
    let (mut outage_set, mut storm_set, mut storm_over) = (false, false, false);
    let mut changes = 0;
    while started.elapsed() < Duration::from_secs(change_secs) {
        let t = started.elapsed();
        if !outage_set && t >= at(0.25) {
            sim.sim
                .set_knobs(&json!({"outage": {"mode": "error", "secs": outage_secs}}))
                .unwrap();
            outage_set = true;
        }
        if !storm_set && t >= at(0.6) {
            sim.sim
                .set_knobs(&json!({"rate_limit_per_sec": 2.0, "rate_limit_burst": 2.0}))
                .unwrap();
            storm_set = true;
        }
        if !storm_over && t >= at(0.8) {
            sim.sim
                .set_knobs(&json!({"rate_limit_per_sec": 60.0, "rate_limit_burst": 20.0}))
                .unwrap();
            storm_over = true;
        }
        changes += sim.sim.step(2);
        let now = Instant::now();
        let next = truth_states(&sim);
        for (id, state) in &next {
            if states.get(id) != Some(state) {
                changed_at.insert(id.clone(), now);
            }
        }
        states = next;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        changes as u64 > 4 * change_secs * accounts as u64,
        "only {changes} changes"
    );

    second_phase.await.unwrap();
    wait_converged(&sim, &app, &merchants, 240).await;
    let stats = sim.sim.stats();
    assert!(stats.webhooks_dropped > 0, "nothing was dropped: {stats:?}");
    assert!(
        stats.webhooks_duplicated > 0,
        "nothing was duplicated: {stats:?}"
    );
    assert!(stats.outage_answers > 0, "the outage answered nothing");
    assert!(stats.rate_limited > 0, "no 429 in the storm: {stats:?}");
    // One more full poll after convergence, then stop the poller.
    let polls = log.lock().unwrap().polls;
    wait_for_polls(&log, polls + 2).await;
    stop.store(true, Ordering::Relaxed);
    poller.await.unwrap();

    // The poller has ended: take what it saw.
    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(
        log.backwards.is_empty(),
        "the poller saw {} regressions in {} polls: {:?}",
        log.backwards.len(),
        log.polls,
        &log.backwards[..log.backwards.len().min(5)]
    );
    let mut times: Vec<f64> = Vec::new();
    for (id, at) in &changed_at {
        let seen = log
            .objects
            .get(id)
            .unwrap_or_else(|| panic!("{id} never seen"));
        let converged = seen
            .converged_at
            .get(&seen.version)
            .unwrap_or_else(|| panic!("{id} not seen converged at its final version"));
        times.push(converged.saturating_duration_since(*at).as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    assert!(
        times.len() as u64 > 2 * change_secs * accounts as u64,
        "only {} objects changed",
        times.len()
    );
    let names: Vec<&str> = providers.iter().map(|p| p.as_str()).collect();
    println!(
        "chaos ({backend:?}, {}): {} objects, {changes} changes, {} polls; sim {stats:?}; \
         convergence time P50 {:.2} s, P99 {:.2} s, P99.9 {:.2} s, max {:.2} s",
        names.join("+"),
        times.len(),
        log.polls,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 0.999),
        times.last().copied().unwrap_or(f64::NAN),
    );
    sim.stop();
    app.stop().await;
}

async fn wait_for_polls(log: &Arc<Mutex<PollLog>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.lock().unwrap().polls < n {
        assert!(Instant::now() < deadline, "the poller stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn changes_without_any_webhook_converge_through_sweeps(backend: Backend) {
    let app = synced_app(backend).await;
    let sim = start_tls_sim(SimConfig {
        seed: 5,
        ..SimConfig::default()
    })
    .await;
    let interval = 2;
    register(&sim, &app, interval).await;
    let merchants: Vec<String> = sim
        .sim
        .accounts()
        .into_iter()
        .map(|a| a.merchant_id)
        .collect();
    // Some objects arrive by webhook first, so later changes are to objects billsync has.
    sim.sim.step(20);
    // Webhook changes confirm once an API read is ordered after them (Stripe: 60 s lag allowance).
    wait_converged(&sim, &app, &merchants, 180).await;

    // Now no webhook at all: every change is only visible through the provider's API.
    sim.sim.set_knobs(&json!({"webhook_drop": 1.0})).unwrap();
    let sent_before = sim.sim.stats().webhooks_sent;
    let changed = sim.sim.step(20);
    assert!(changed > 10, "only {changed} changes");
    let report = crate::sim::verify_sim(&sim, &format!("http://{}", app.addr)).await;
    assert!(
        !report.divergent.is_empty(),
        "billsync already had changes no webhook announced"
    );
    let t = Instant::now();
    // A sweep every 2 s; confirmation reads of what it found need a few seconds more, except
    // tax ID changes: Stripe announces them with their own events and billsync reads the
    // customer once a read counts after them (the 60 s lag allowance, docs/providers/stripe.md).
    wait_converged(&sim, &app, &merchants, 100).await;
    assert_eq!(
        sim.sim.stats().webhooks_sent,
        sent_before,
        "a webhook was sent"
    );
    println!(
        "sweeps ({backend:?}): {changed} unannounced changes converged in {:.1} s (interval {interval} s)",
        t.elapsed().as_secs_f64()
    );
    sim.stop();
    app.stop().await;
}
