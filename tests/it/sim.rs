//! `billsync sim`: Stripe's own client works against it, every hostility knob happens,
//! `verify` tells in-sync from divergent, and seeded scenarios reproduce byte for byte.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use billsync_sim::{Clock, Sim, SimConfig, SimHandle, Target};
use serde_json::{json, Value};

use crate::helpers::*;

pub async fn start_sim(config: SimConfig) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Sim::start(config, listener).await.expect("sim starts")
}

/// The simulator over HTTPS with a certificate of the test CA, as the providers' real APIs
/// are served: the apps reach it on the production path, certificate verification included.
pub async fn start_tls_sim(config: SimConfig) -> SimHandle {
    start_sim(SimConfig {
        tls: Some(test_ca().server.clone()),
        ..config
    })
    .await
}

/// `sim verify` as the CLI runs it (its own client) with billsync's mapping as the expectation.
async fn verify_plain(sim_url: &str, target: &str) -> billsync_sim::verify::Report {
    let mapping = billsync::sim_expectation::BillsyncMapping;
    let report = billsync_sim::verify::verify(sim_url, target, TOKEN, &mapping).await;
    report.expect("verify runs")
}

/// `sim verify` against the billsync at `target`, over the simulator's own scheme (HTTPS for
/// [`start_tls_sim`]) with a client that trusts the test CA.
pub async fn verify_sim(sim: &SimHandle, target: &str) -> billsync_sim::verify::Report {
    billsync_sim::verify::verify_with(
        &trusting_client(),
        sim.sim.base_url(),
        target,
        TOKEN,
        &billsync::sim_expectation::BillsyncMapping,
    )
    .await
    .expect("verify runs")
}

/// Registers the sim's accounts with the app, so webhooks flow there.
pub async fn connect(sim: &SimHandle, app: &TestApp, reconcile_secs: Option<u64>) {
    let target = Target {
        url: format!("http://{}", app.addr),
        token: TOKEN.into(),
    };
    sim.sim
        .register(target, reconcile_secs)
        .await
        .expect("register");
}

pub async fn wait_for<F: Fn() -> bool>(what: &str, secs: u64, cond: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn api(sim: &SimHandle, key: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("http://{}/stripe{path}", sim.addr))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn seeded_scenario_is_reproducible_byte_for_byte() {
    let run = |seed| async move {
        let config = SimConfig {
            accounts: 2,
            seed,
            clock: Clock::Fixed(1_750_000_000),
            history: 40,
            ..SimConfig::default()
        };
        let sim = start_sim(config).await;
        sim.sim.step(150);
        let truth = sim.sim.truth(false).to_string();
        sim.stop();
        truth
    };
    let (a, b, c) = (run(7).await, run(7).await, run(8).await);
    assert!(
        a.len() > 10_000,
        "the scenario produced little: {} bytes",
        a.len()
    );
    assert_eq!(a, b, "same seed, different truth");
    assert_ne!(a, c, "different seeds, same truth");
}

#[tokio::test]
async fn stripe_sdk_lists_every_object_once_and_verifies_a_webhook() {
    let python = crate::helpers::python_with("stripe");
    let sim = start_sim(SimConfig {
        history: 230,
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(60);
    let account = sim.sim.accounts().remove(0);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/py/stripe_client_check.py"
    );
    let out = tokio::process::Command::new(&python)
        .args([script, &format!("http://{}", sim.addr), &account.api_key])
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "stripe client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("JSON from the script");
    let truth = sim.sim.truth(false);
    let mut expected: HashMap<String, HashSet<String>> = HashMap::new();
    for o in truth["accounts"][0]["objects"].as_array().unwrap() {
        if !o["deleted"].as_bool().unwrap() {
            expected
                .entry(o["stream"].as_str().unwrap().into())
                .or_default()
                .insert(o["id"].as_str().unwrap().into());
        }
    }
    let mut total = 0;
    for (stream, ids) in result["ids"].as_object().unwrap() {
        let listed: Vec<String> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect();
        let unique: HashSet<String> = listed.iter().cloned().collect();
        assert_eq!(
            listed.len(),
            unique.len(),
            "{stream}: an object was listed twice"
        );
        assert_eq!(
            unique,
            expected.remove(stream).unwrap_or_default(),
            "{stream}: not every object exactly once"
        );
        total += listed.len();
    }
    assert!(total > 200, "only {total} objects listed");
    // What Stripe leaves out, read back through Stripe's own client: the simulator shows
    // tax IDs only when expanded or listed, and cuts embedded lines at ten.
    assert_eq!(
        result["unexpanded_tax_ids"], 0,
        "customers carry tax_ids unexpanded"
    );
    assert_eq!(
        result["embedded_lines_max"], 10,
        "embedded lines are not cut at ten"
    );
    let mut long_invoices = 0;
    let mut with_tax_ids = 0;
    for o in truth["accounts"][0]["objects"].as_array().unwrap() {
        if o["deleted"] == true {
            continue;
        }
        let (id, object) = (o["id"].as_str().unwrap(), &o["object"]);
        let items = |list: &str| -> Vec<Value> {
            object[list]["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i[if list == "lines" { "id" } else { "value" }].clone())
                .collect()
        };
        match o["stream"].as_str().unwrap() {
            "customers" => {
                let values = items("tax_ids");
                with_tax_ids += usize::from(!values.is_empty());
                assert_eq!(result["tax_ids"][id], json!(values), "{id}: tax IDs listed");
                assert_eq!(
                    result["expanded_tax_ids"][id],
                    json!(values),
                    "{id}: tax IDs expanded"
                );
            }
            "invoices" => {
                let lines = items("lines");
                long_invoices += usize::from(lines.len() > 10);
                assert_eq!(result["lines"][id], json!(lines), "{id}: lines paged");
            }
            _ => {}
        }
    }
    assert!(
        long_invoices > 0 && with_tax_ids > 0,
        "{long_invoices} long invoices, {with_tax_ids} customers with tax IDs"
    );
    assert!(result["webhook_event_id"]
        .as_str()
        .unwrap()
        .starts_with("evt_"));
    assert_eq!(result["tampered_refused"], true);
    sim.stop();
}

#[tokio::test]
async fn rate_limit_answers_429_past_the_limit() {
    let sim = start_sim(SimConfig {
        history: 5,
        ..SimConfig::default()
    })
    .await;
    sim.sim
        .set_knobs(&json!({"rate_limit_per_sec": 5.0, "rate_limit_burst": 5.0}))
        .unwrap();
    let key = sim.sim.accounts()[0].api_key.clone();
    let mut codes = Vec::new();
    for _ in 0..20 {
        let (status, body) = api(&sim, &key, "/v1/customers").await;
        if status == 429 {
            assert_eq!(body["error"]["code"], "rate_limit");
        }
        codes.push(status);
    }
    assert!(codes.iter().filter(|c| **c == 200).count() >= 5);
    assert!(codes.contains(&429), "no 429 past the limit: {codes:?}");
    assert!(sim.sim.stats().rate_limited > 0);
    let (status, _) = api(&sim, "sk_wrong", "/v1/customers").await;
    assert_eq!(status, 401);
    sim.stop();
}

#[tokio::test]
async fn lagged_read_returns_the_old_state_until_the_lag_passes() {
    let sim = start_sim(SimConfig {
        history: 5,
        ..SimConfig::default()
    })
    .await;
    let key = sim.sim.accounts()[0].api_key.clone();
    let truth = sim.sim.truth(false);
    let customer = truth["accounts"][0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["stream"] == "customers")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.sim.set_knobs(&json!({"api_lag_ms": 1500})).unwrap();
    assert!(sim
        .sim
        .edit(0, &customer, &json!({"email": "new@example.com"})));
    let (_, lagged) = api(&sim, &key, &format!("/v1/customers/{customer}")).await;
    assert_ne!(
        lagged["email"], "new@example.com",
        "a lagged read showed the new state"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (_, fresh) = api(&sim, &key, &format!("/v1/customers/{customer}")).await;
    assert_eq!(fresh["email"], "new@example.com");
    sim.stop();
}

#[tokio::test]
async fn outage_answers_5xx_then_recovers() {
    let sim = start_sim(SimConfig {
        history: 5,
        ..SimConfig::default()
    })
    .await;
    let key = sim.sim.accounts()[0].api_key.clone();
    sim.sim
        .set_knobs(&json!({"outage": {"mode": "error", "secs": 1.0}}))
        .unwrap();
    let (status, body) = api(&sim, &key, "/v1/invoices").await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["type"], "api_error");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api(&sim, &key, "/v1/invoices").await.0, 200);
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_webhooks_are_never_sent_and_duplicates_are_sent_twice() {
    let app = spawn_app(Backend::Sqlite).await;
    let sim = start_sim(SimConfig::default()).await;
    connect(&sim, &app, None).await;
    let conn = sim.sim.accounts()[0].connection_id.clone().unwrap();

    sim.sim.set_knobs(&json!({"webhook_drop": 1.0})).unwrap();
    let changed = sim.sim.step(10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.sim.stats().webhooks_dropped as usize, changed);
    assert_eq!(sim.sim.stats().webhooks_sent, 0);
    assert_eq!(
        app.raw_event_count(&conn).await,
        0,
        "a dropped webhook arrived"
    );

    sim.sim
        .set_knobs(&json!({"webhook_drop": 0.0, "webhook_duplicate": 1.0}))
        .unwrap();
    let changed = sim.sim.step(10);
    wait_for("duplicates", 10, || {
        sim.sim.stats().webhooks_sent as usize == 2 * changed
    })
    .await;
    assert_eq!(sim.sim.stats().webhooks_duplicated as usize, changed);
    assert_eq!(
        app.raw_event_count(&conn).await,
        changed,
        "billsync stored each event once"
    );
    sim.stop();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordering_delivers_out_of_order_and_failed_deliveries_are_retried() {
    let app = spawn_app(Backend::Sqlite).await;
    let sim = start_sim(SimConfig::default()).await;
    connect(&sim, &app, None).await;
    let conn = sim.sim.accounts()[0].connection_id.clone().unwrap();
    sim.sim
        .set_knobs(&json!({"webhook_reorder_window": 20}))
        .unwrap();
    let changed = sim.sim.step(40);
    wait_for("deliveries", 10, || {
        sim.sim.stats().webhooks_sent as usize >= changed
    })
    .await;
    app.settle().await;
    let arrived = app.store.raw_event_ids(&conn).await.unwrap();
    let mut sorted = arrived.clone();
    sorted.sort();
    assert_eq!(arrived.len(), changed);
    assert_ne!(
        arrived, sorted,
        "webhooks arrived in creation order despite reordering"
    );

    // A billsync that cannot store (503): Stripe retries with backoff, then gives up.
    app.db.exec_raw("DROP TABLE inbox").await.unwrap();
    sim.sim.set_knobs(&json!({"webhook_reorder_window": 0, "max_delivery_attempts": 3, "retry_time_scale": 0.0001})).unwrap();
    let before = sim.sim.stats();
    sim.sim.step(1);
    wait_for("retries to give up", 10, || {
        sim.sim.stats().webhooks_failed > before.webhooks_failed
    })
    .await;
    assert!(
        sim.sim.stats().webhooks_retried >= before.webhooks_retried + 2,
        "503s were not retried"
    );
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_zero_divergent_in_sync_and_names_each_differing_object_after_the_lag_allowance(
) {
    // Provider sync on: Stripe's webhooks carry customers without their tax IDs, which are
    // read from the API once a read counts after their `customer.tax_id.*` events (the 60 s
    // lag allowance; docs/providers/stripe.md).
    let app = spawn_app_with(TestDb::new(Backend::Sqlite).await, |c| {
        c.provider_sync = true;
        c.confirm_after_secs = 1;
    })
    .await;
    // Simulated time moves 1-20 s per step: no two changes of one object share a second.
    let sim = start_sim(SimConfig {
        accounts: 2,
        clock: Clock::Fixed(chrono::Utc::now().timestamp() - 86_400),
        ..SimConfig::default()
    })
    .await;
    connect(&sim, &app, None).await;
    let changed = sim.sim.step(40);
    wait_for("deliveries", 10, || {
        sim.sim.stats().webhooks_sent as usize >= changed
    })
    .await;
    let merchants: Vec<String> = sim
        .sim
        .accounts()
        .into_iter()
        .map(|a| a.merchant_id)
        .collect();
    crate::chaos::wait_converged(&sim, &app, &merchants, 150).await;
    let sim_url = format!("http://{}", sim.addr);
    let target = format!("http://{}", app.addr);
    let report = verify_plain(&sim_url, &target).await;
    assert!(report.objects > 40);
    assert!(
        report.divergent.is_empty(),
        "divergent: {:?}",
        report.divergent
    );
    assert!(report.summary().contains("0 divergent"));
    assert!(!report.latencies_ms.is_empty());
    // Send→queryable runs from a change's first send to the commit of the first version that
    // carries it (the customer's current version here), not to `updated_at`, which the
    // confirmation reads moved later without a new version.
    let truth = sim.sim.truth(true);
    let mut expected = Vec::new();
    let mut moved_later = 0;
    for account in truth["accounts"].as_array().unwrap() {
        let merchant = account["merchant_id"].as_str().unwrap();
        for o in account["objects"].as_array().unwrap() {
            let Some(sent) = o["first_sent_at"].as_i64() else {
                continue;
            };
            if o["stream"] != "customers" || o["deleted"] == true {
                continue;
            }
            let id = format!("stripe:{}", o["id"].as_str().unwrap());
            let object = app.object(merchant, "customers", &id).await.unwrap();
            let versions = app.versions(merchant, "customers", &id).await;
            let current = versions
                .iter()
                .find(|v| v["version"] == object["version"])
                .unwrap();
            let at = |v: &Value| billsync::model::time::parse_rfc3339(v.as_str().unwrap()).unwrap();
            let recorded = at(&current["recorded_at"]);
            expected.push((recorded - sent).max(0) as f64 / 1000.0);
            if at(&object["updated_at"]) > recorded {
                moved_later += 1;
            }
        }
    }
    assert!(!expected.is_empty(), "customers changed by webhooks");
    assert!(
        moved_later > 0,
        "confirmation reads moved updated_at past the versions"
    );
    for latency in &expected {
        assert!(
            report.latencies_ms.contains(latency),
            "{latency} ms missing from {:?}",
            report.latencies_ms
        );
    }

    // Change two objects with their webhooks dropped.
    sim.sim.set_knobs(&json!({"webhook_drop": 1.0})).unwrap();
    let truth = sim.sim.truth(false);
    let customers: Vec<String> = truth["accounts"][1]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["stream"] == "customers" && o["deleted"] == false)
        .take(2)
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &customers {
        assert!(sim
            .sim
            .edit(1, id, &json!({"email": "changed@example.com"})));
    }
    let report = verify_plain(&sim_url, &target).await;
    let named: HashSet<String> = report.divergent.iter().map(|d| d.id.clone()).collect();
    let expected: HashSet<String> = customers.iter().map(|c| format!("stripe:{c}")).collect();
    assert_eq!(named, expected);
    assert!(report.divergent.iter().all(|d| d.what.contains("email")));

    // The CLI says the same and exits 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_billsync"))
        .args([
            "sim", "verify", "--sim", &sim_url, "--target", &target, "--token", TOKEN,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for c in &customers {
        assert!(stdout.contains(c.as_str()), "{stdout}");
    }
    sim.stop();
    app.stop().await;
}

#[tokio::test]
async fn slow_outage_delays_answers() {
    let sim = start_sim(SimConfig {
        history: 5,
        ..SimConfig::default()
    })
    .await;
    let key = sim.sim.accounts()[0].api_key.clone();
    sim.sim
        .set_knobs(&json!({"outage": {"mode": "slow", "secs": 5.0, "slow_ms": 400}}))
        .unwrap();
    let t = Instant::now();
    assert_eq!(api(&sim, &key, "/v1/customers").await.0, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "a slow outage answered in {:?}",
        t.elapsed()
    );
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_deliveries_keep_their_old_timestamp_and_store_nothing_new() {
    let app = spawn_app(Backend::Sqlite).await;
    let sim = start_sim(SimConfig::default()).await;
    connect(&sim, &app, None).await;
    let conn = sim.sim.accounts()[0].connection_id.clone().unwrap();
    let changed = sim.sim.step(5);
    wait_for("first deliveries", 10, || {
        sim.sim.stats().webhooks_sent as usize >= changed
    })
    .await;
    sim.sim.set_knobs(&json!({"webhook_replay": 1.0})).unwrap();
    let more = sim.sim.step(5);
    wait_for("replays", 10, || {
        sim.sim.stats().webhooks_replayed as usize >= more
    })
    .await;
    wait_for("all sends", 10, || {
        sim.sim.stats().webhooks_sent as usize >= changed + 2 * more
    })
    .await;
    app.settle().await;
    assert_eq!(
        app.raw_event_count(&conn).await,
        changed + more,
        "a replay stored a new event"
    );
    sim.stop();
    app.stop().await;
}

/// `billsync sim trigger invoice.paid` on a running simulator: the fixtures it needs are made,
/// and the paid invoice reaches billsync through its webhooks. An unknown step is refused with
/// the list of known ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_performs_one_named_step_and_delivers_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let sim = start_sim(SimConfig::default()).await;
    connect(&sim, &app, None).await;
    let merchant = sim.sim.accounts()[0].merchant_id.clone();
    let addr = sim.addr.to_string();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_billsync"))
                .args(&args)
                .env_remove("RUST_BACKTRACE")
                .output()
                .unwrap()
        })
    };
    let out = run(vec![
        "sim".into(),
        "trigger".into(),
        "invoice.paid".into(),
        "--sim".into(),
        addr.clone(),
    ])
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("invoice.paid: "), "{stdout}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let invoices = app
            .get_json(&format!("/v1/merchants/{merchant}/invoices"), 200)
            .await;
        let paid = invoices["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["data"]["status"] == "paid")
            .count();
        if paid == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no paid invoice: {invoices}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = run(vec![
        "sim".into(),
        "trigger".into(),
        "invoice.teleported".into(),
        "--sim".into(),
        addr,
    ])
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("unknown event `invoice.teleported`") && stderr.contains("invoice.paid"),
        "{stderr}"
    );
    sim.stop();
    app.stop().await;
}

#[tokio::test]
async fn live_changes_pause_and_resume_over_the_control_api() {
    let sim = start_sim(SimConfig::default()).await;
    let live = sim.sim.run_live(200.0);
    let truth = || sim.sim.truth(false).to_string();
    let before = truth();
    wait_for("a live change", 10, || truth() != before).await;
    let client = reqwest::Client::new();
    let control = |action: &str| {
        client
            .post(format!("http://{}/_sim/{action}", sim.addr))
            .send()
    };
    let paused: billsync_sim::LiveOut = control("pause").await.unwrap().json().await.unwrap();
    assert_eq!(
        paused,
        billsync_sim::LiveOut {
            paused: true,
            was_paused: false
        }
    );
    assert!(sim.sim.live_paused());
    // No step starts after the pause has answered.
    let still = truth();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(truth(), still, "the truth changed while paused");
    // An explicit change still happens.
    assert!(sim
        .sim
        .trigger(0, "customer.created")
        .is_some_and(|n| n > 0));
    let stepped = truth();
    assert_ne!(stepped, still);
    let resumed: billsync_sim::LiveOut = control("resume").await.unwrap().json().await.unwrap();
    assert_eq!(
        resumed,
        billsync_sim::LiveOut {
            paused: false,
            was_paused: true
        }
    );
    wait_for("live changes again", 10, || truth() != stepped).await;
    live.abort();
    sim.stop();
}
