//! `billsync sim` as Paddle Billing: Paddle's own Python SDK lists every simulated entity once
//! and verifies a simulator-signed webhook, and billsync converges with it under chaos; and
//! billsync gets what Paddle keeps apart (addresses, businesses' tax IDs) and what it keeps
//! only 90 days (events) right through backfill, webhooks and sweeps.

use std::time::Duration;

use billsync::providers::ProviderKind;
use billsync_sim::{SimConfig, SimHandle};
use serde_json::{json, Value};

use crate::backfill::{register, start_backfill, wait_backfill};
use crate::chaos::wait_converged;
use crate::helpers::*;
use crate::sdk::{assert_each_listed_once, run_sdk_script};
use crate::sim::{start_sim, start_tls_sim, verify_sim};
use crate::{both_backends, conformance};

both_backends!(paddle_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards);

async fn paddle_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(backend: Backend) {
    crate::chaos::chaos_run(backend, vec![ProviderKind::Paddle], 2, 20).await;
}

#[tokio::test]
async fn paddle_sdk_lists_every_entity_once_and_verifies_a_webhook() {
    let sim = start_sim(SimConfig {
        history: 230,
        providers: vec![billsync_sim::SimProvider::Paddle],
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(80);
    let account = sim.sim.accounts().remove(0);
    let result = run_sdk_script(
        "paddle_client_check.py",
        "paddle_billing",
        &[&format!("http://{}", sim.addr), &account.api_key],
    )
    .await;
    let total = assert_each_listed_once(&sim.sim.truth(false), &result["ids"]);
    assert!(total > 200, "only {total} entities listed");
    assert!(
        !result["ids"]["adjustments"].as_array().unwrap().is_empty(),
        "no adjustments"
    );
    assert!(
        result["events"].as_u64().unwrap() > 80,
        "events: {}",
        result["events"]
    );
    // Addresses and businesses, listed one a page with the SDK's own paging, parse into its
    // entities: every customer listed has its address, most a business with a tax ID.
    let parts = &result["parts"];
    assert_eq!(parts["addresses"], parts["customers"], "{parts}");
    assert!(parts["businesses"].as_u64().unwrap() > 10, "{parts}");
    assert_eq!(parts["tax_identifiers"], parts["businesses"], "{parts}");
    assert_eq!(
        result["verified"], true,
        "Paddle's Verifier refused the simulator's signature"
    );
    assert_eq!(result["tampered_refused"], true);
    assert!(result["webhook_event_id"]
        .as_str()
        .unwrap()
        .starts_with("evt_"));
    sim.stop();
}

// Paddle as its documentation says (docs/providers/paddle.md), against a simulator as
// unhelpful as Paddle: customers carry no address or tax ID, which live in separate paged
// resources (addresses, businesses); events are kept 90 days and walked by `after` cursor.

conformance!(
    paddle_backfill_brings_every_kind_older_than_the_events_kept_with_addresses_and_tax_ids,
    paddle_webhooks_bring_addresses_and_tax_ids_and_a_customer_update_keeps_them,
    paddle_sweeps_bring_addresses_and_tax_ids_and_read_only_events_after_their_cursor,
);

/// The stats entry the simulator's Paddle counts the events `GET /events` served under.
const EVENTS_LISTED: &str = "paddle /events: events listed";

/// The truth's objects of account 0.
fn truth_objects(sim: &SimHandle) -> Vec<Value> {
    sim.sim.truth(false)["accounts"][0]["objects"]
        .as_array()
        .unwrap()
        .clone()
}

/// Live customers of the truth with an active address, and with a business's tax ID.
fn customers_with_parts(sim: &SimHandle) -> (usize, usize) {
    let objects = truth_objects(sim);
    let live: Vec<&Value> = objects
        .iter()
        .filter(|o| o["stream"] == "customers" && o["deleted"] == false)
        .collect();
    let with = |field: &str| {
        live.iter()
            .filter(|c| {
                c["object"][field]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p["status"] == "active"))
            })
            .count()
    };
    (with("addresses"), with("businesses"))
}

/// Stored customers of `merchant` with an address, and with tax IDs.
async fn stored_with_parts(app: &TestApp, merchant: &str) -> (usize, usize) {
    let stored = app
        .get_json(
            &format!("/v1/merchants/{merchant}/customers?limit=1000"),
            200,
        )
        .await;
    let data = stored["data"].as_array().unwrap();
    let live = || data.iter().filter(|c| c["deleted"] != true);
    (
        live().filter(|c| !c["data"]["address"].is_null()).count(),
        live()
            .filter(|c| !c["data"]["tax_ids"].as_array().unwrap().is_empty())
            .count(),
    )
}

fn requests(sim: &SimHandle, path: &str) -> u64 {
    sim.sim
        .stats()
        .requests_by_path
        .get(path)
        .copied()
        .unwrap_or(0)
}

async fn paddle_backfill_brings_every_kind_older_than_the_events_kept_with_addresses_and_tax_ids(
    backend: Backend,
) {
    let app = synced_app(backend).await;
    let sim = start_tls_sim(SimConfig {
        history: 300,
        history_days: 700,
        providers: vec![billsync_sim::SimProvider::Paddle],
        ..SimConfig::default()
    })
    .await;
    // Most of the history is older than the 90 days of events Paddle keeps: only a backfill
    // that lists every kind can bring it.
    let now = now_secs();
    let old = |stream: &str| {
        truth_objects(&sim)
            .iter()
            .filter(|o| o["stream"] == stream)
            .filter(|o| {
                o["object"]["updated_at"]
                    .as_str()
                    .and_then(billsync::model::time::parse_rfc3339)
                    .is_some_and(|t| t / 1_000_000 < now - 90 * 86_400)
            })
            .count()
    };
    for stream in ["customers", "subscriptions", "transactions"] {
        assert!(old(stream) > 0, "no {stream} older than 90 days");
    }
    // The generator's history holds no refunds: recent steps make the adjustments.
    sim.sim.step(80);
    assert!(
        truth_objects(&sim)
            .iter()
            .any(|o| o["stream"] == "adjustments"),
        "no adjustments"
    );
    let (with_address, with_tax_ids) = customers_with_parts(&sim);
    assert!(
        with_address > 20 && with_tax_ids > 10,
        "{with_address} customers with an address, {with_tax_ids} with tax IDs"
    );
    let base = format!("http://{}", app.addr);
    let (conn, merchant) = register(&sim, &base).await;
    start_backfill(&app.client, &base, &conn).await;
    wait_backfill(&app.client, &base, &conn, 180, |b| b["state"] == "done").await;
    let report = verify_sim(&sim, &base).await;
    assert!(report.objects > 250, "{} objects", report.objects);
    assert!(
        report.divergent.is_empty(),
        "divergent after backfill: {:?}",
        &report.divergent[..report.divergent.len().min(5)]
    );
    // Every kind was listed, and each customer's parts read from their own resources.
    for path in [
        "/customers",
        "/subscriptions",
        "/transactions",
        "/adjustments",
    ] {
        assert!(requests(&sim, path) > 0, "{path} never listed");
    }
    assert!(requests(&sim, "/customers/:id/addresses") >= with_address as u64);
    assert!(requests(&sim, "/customers/:id/businesses") >= with_tax_ids as u64);
    assert_eq!(
        stored_with_parts(&app, &merchant).await,
        (with_address, with_tax_ids)
    );
    sim.stop();
    app.stop().await;
}

async fn paddle_webhooks_bring_addresses_and_tax_ids_and_a_customer_update_keeps_them(
    backend: Backend,
) {
    let app = synced_app(backend).await;
    let sim = start_tls_sim(SimConfig {
        seed: 19,
        providers: vec![billsync_sim::SimProvider::Paddle],
        ..SimConfig::default()
    })
    .await;
    crate::sim::connect(&sim, &app, None).await;
    let merchant = sim.sim.accounts()[0].merchant_id.clone();
    sim.sim.step(80);
    let (with_address, with_tax_ids) = customers_with_parts(&sim);
    assert!(
        with_address > 5 && with_tax_ids > 3,
        "{with_address} customers with an address, {with_tax_ids} with tax IDs"
    );
    // `address.*` and `business.*` events read their customer whole.
    wait_converged(&sim, &app, std::slice::from_ref(&merchant), 200).await;
    assert_eq!(
        stored_with_parts(&app, &merchant).await,
        (with_address, with_tax_ids)
    );
    assert!(requests(&sim, "/customers/:id/businesses") > 0);

    // A `customer.updated` event carries no address or business: the stored ones stay.
    let customer = truth_objects(&sim)
        .into_iter()
        .find(|o| {
            o["stream"] == "customers"
                && o["deleted"] == false
                && o["object"]["businesses"]
                    .as_array()
                    .is_some_and(|b| !b.is_empty())
        })
        .expect("a customer with a business");
    let id = customer["id"].as_str().unwrap();
    let key = format!("paddle:{id}");
    let before = app
        .object(&merchant, "customers", &key)
        .await
        .expect("stored");
    assert!(sim.sim.edit(0, id, &json!({"name": "Renamed Buyer"})));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let now = app
            .object(&merchant, "customers", &key)
            .await
            .expect("stored");
        if now["data"]["name"] == "Renamed Buyer" {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the update never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after["data"]["tax_ids"], before["data"]["tax_ids"]);
    assert_eq!(after["data"]["address"], before["data"]["address"]);
    assert!(!after["data"]["address"].is_null());
    let versions = app.versions(&merchant, "customers", &key).await;
    assert_eq!(
        versions.last().unwrap()["source"]["kind"],
        "webhook",
        "{versions:?}"
    );
    sim.stop();
    app.stop().await;
}

async fn paddle_sweeps_bring_addresses_and_tax_ids_and_read_only_events_after_their_cursor(
    backend: Backend,
) {
    let app = synced_app(backend).await;
    let sim = start_tls_sim(SimConfig {
        seed: 23,
        providers: vec![billsync_sim::SimProvider::Paddle],
        ..SimConfig::default()
    })
    .await;
    // No webhook arrives: everything comes through sweeps of `/events` every second.
    sim.sim.set_knobs(&json!({"webhook_drop": 1.0})).unwrap();
    crate::sim::connect(&sim, &app, Some(1)).await;
    let account = sim.sim.accounts().remove(0);
    let (merchant, conn) = (account.merchant_id, account.connection_id.unwrap());
    sim.sim.step(150);
    let (with_address, with_tax_ids) = customers_with_parts(&sim);
    assert!(with_address > 5 && with_tax_ids > 3);
    wait_converged(&sim, &app, std::slice::from_ref(&merchant), 200).await;
    assert_eq!(
        stored_with_parts(&app, &merchant).await,
        (with_address, with_tax_ids)
    );

    // The sweep keeps the last event it read, and the next ones ask only after it.
    let cursor = app
        .store
        .sweep(&conn)
        .await
        .unwrap()
        .expect("a sweep row")
        .cursor
        .expect("a resume cursor");
    assert!(cursor.starts_with("evt_"), "{cursor}");
    let listed = requests(&sim, EVENTS_LISTED);
    assert!(listed > 100, "only {listed} events listed");
    let sweeps_before = app.store.sweep(&conn).await.unwrap().unwrap().last_run_at;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sweeps_after = app.store.sweep(&conn).await.unwrap().unwrap().last_run_at;
    assert_ne!(sweeps_before, sweeps_after, "no sweep ran");
    assert_eq!(
        requests(&sim, EVENTS_LISTED),
        listed,
        "sweeps after the cursor read events again"
    );
    // One new change: the next sweep reads it, and only it.
    let customer = truth_objects(&sim)
        .into_iter()
        .find(|o| o["stream"] == "customers" && o["deleted"] == false)
        .unwrap();
    assert!(sim.sim.edit(
        0,
        customer["id"].as_str().unwrap(),
        &json!({"name": "Swept"})
    ));
    wait_for_sweep_reading(&sim, &app, &conn, listed + 1).await;
    assert_eq!(requests(&sim, EVENTS_LISTED), listed + 1);
    assert_ne!(
        app.store.sweep(&conn).await.unwrap().unwrap().cursor,
        Some(cursor)
    );
    sim.stop();
    app.stop().await;
}

/// Waits until the simulator has listed `events` events in all, then for one more sweep.
async fn wait_for_sweep_reading(sim: &SimHandle, app: &TestApp, conn: &str, events: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while requests(sim, EVENTS_LISTED) < events {
        assert!(
            std::time::Instant::now() < deadline,
            "no sweep read the change"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at = app.store.sweep(conn).await.unwrap().unwrap().last_run_at;
    while app.store.sweep(conn).await.unwrap().unwrap().last_run_at == at {
        assert!(std::time::Instant::now() < deadline, "no further sweep");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulator's Paddle as documented: a customer shows no address or business; they are
/// listed at their own endpoints, `active` unless asked, paged by `after`.
#[tokio::test]
async fn paddle_sim_keeps_addresses_and_businesses_as_separate_paged_resources() {
    let sim = start_sim(SimConfig {
        seed: 7,
        history: 60,
        providers: vec![billsync_sim::SimProvider::Paddle],
        ..SimConfig::default()
    })
    .await;
    let key = sim.sim.accounts()[0].api_key.clone();
    let get = |path: String| {
        let (addr, key) = (sim.addr, key.clone());
        async move {
            reqwest::Client::new()
                .get(format!("http://{addr}/paddle{path}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let customers = get("/customers?per_page=200".into()).await;
    for c in customers["data"].as_array().unwrap() {
        assert!(c.get("addresses").is_none() && c.get("businesses").is_none());
        assert!(c.get("address").is_none() && c.get("tax_ids").is_none());
    }
    let two = truth_objects(&sim)
        .into_iter()
        .find(|o| {
            o["stream"] == "customers"
                && o["object"]["businesses"]
                    .as_array()
                    .is_some_and(|b| b.len() == 2)
        })
        .expect("a customer with two businesses");
    let id = two["id"].as_str().unwrap();
    let one = get(format!("/customers/{id}")).await;
    assert!(one["data"].get("businesses").is_none());
    let first = get(format!("/customers/{id}/businesses?per_page=1")).await;
    assert_eq!(first["meta"]["pagination"]["has_more"], true);
    assert_eq!(first["data"][0]["customer_id"], id);
    let next = first["meta"]["pagination"]["next"].as_str().unwrap();
    let after = next
        .split("after=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let second = get(format!(
        "/customers/{id}/businesses?per_page=1&after={after}"
    ))
    .await;
    assert_eq!(second["meta"]["pagination"]["has_more"], false);
    assert_ne!(second["data"][0]["id"], first["data"][0]["id"]);
    assert!(second["data"][0]["tax_identifier"].is_string());
    let addresses = get(format!("/customers/{id}/addresses")).await;
    assert_eq!(addresses["data"][0]["status"], "active");
    assert!(addresses["data"][0]["country_code"].is_string());
    let archived = get(format!("/customers/{id}/addresses?status=archived")).await;
    assert!(archived["data"].as_array().unwrap().is_empty());
    sim.stop();
}

/// Real-time confirmations do not queue behind reconciliation work: with a backlog of
/// confirmation reads of objects sweeps found (due before it), a webhook's change is read
/// and converged next, while most of the backlog still waits at Paddle's 4 requests/s (SQLite: the order is the
/// store's, which the store conformance suite checks on both backends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddle_webhook_confirmation_is_read_before_a_backlog_of_sweep_finds() {
    let app = synced_app(Backend::Sqlite).await;
    let sim = start_tls_sim(SimConfig {
        seed: 29,
        providers: vec![billsync_sim::SimProvider::Paddle],
        ..SimConfig::default()
    })
    .await;
    sim.sim.set_knobs(&json!({"webhook_drop": 1.0})).unwrap();
    crate::sim::connect(&sim, &app, Some(1)).await;
    let merchant = sim.sim.accounts()[0].merchant_id.clone();
    sim.sim.step(150);
    // Sweeps find everything: a confirmation read of each, due a second after its find
    // (reads of objects named by address and business events wait out the lag allowance).
    let due_by = |t: i64| {
        let db = &app.db;
        async move {
            db.count(&format!(
                "SELECT COUNT(*) FROM refetches WHERE due_at <= {t}"
            ))
            .await
        }
    };
    let now = billsync::model::time::now_micros;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while due_by(now() + 2_000_000).await < 60 {
        assert!(
            std::time::Instant::now() < deadline,
            "sweeps found {} objects",
            due_by(i64::MAX).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let edited_at = now();
    let due = due_by(edited_at).await;
    assert!(due > 40, "only {due} sweep finds due");

    sim.sim.set_knobs(&json!({"webhook_drop": 0.0})).unwrap();
    // A subscription: no address or business event names it, so no read of it waits out
    // the lag allowance (a later read answers for every change scheduled before it).
    let subscription = truth_objects(&sim)
        .into_iter()
        .find(|o| o["stream"] == "subscriptions" && o["object"]["status"] == "active")
        .expect("an active subscription");
    let id = subscription["id"].as_str().unwrap();
    let key = format!("paddle:{id}");
    assert!(sim.sim.edit(0, id, &json!({"status": "past_due"})));
    let edited = std::time::Instant::now();
    let deadline = edited + Duration::from_secs(20);
    loop {
        let o = app.object(&merchant, "subscriptions", &key).await;
        if o.as_ref().is_some_and(|o| {
            o["data"]["status"] == "past_due" && o["reconciliation_status"] == "converged"
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook's change did not converge: {o:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The sweep finds due before the edit: most are still to be read.
    let left = due_by(edited_at).await;
    eprintln!(
        "webhook change converged {:?} after it was made; {left} of {due} sweep finds due \
         before it still unread",
        edited.elapsed()
    );
    assert!(
        left > due / 2,
        "converged only after most of the backlog was read: {left} of {due} left"
    );
    sim.stop();
    app.stop().await;
}
