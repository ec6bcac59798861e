//! Stripe as its documentation says (docs/providers/stripe.md), against a simulator that is
//! as unhelpful as Stripe: customers' tax IDs arrive through backfill, webhooks
//! (`customer.tax_id.*` after `customer.created`) and confirmation reads although Stripe leaves
//! them out unless expanded, and invoices longer than the embedded page keep every line.

use std::time::Duration;

use billsync_sim::SimConfig;
use serde_json::{json, Value};

use crate::backfill::{register, start_backfill, wait_backfill};
use crate::chaos::wait_converged;
use crate::conformance;
use crate::helpers::*;
use crate::sim::{start_tls_sim, verify_sim};

conformance!(
    backfill_brings_every_tax_id_and_every_line,
    tax_ids_by_webhook_wait_out_the_lag_allowance_and_an_update_keeps_them
);

/// How many of the truth's live customers have tax IDs, and its invoices more lines than one
/// embedded page; both must be some, or the test would prove nothing.
fn hard_cases(sim: &billsync_sim::SimHandle) -> (usize, usize) {
    let truth = sim.sim.truth(false);
    let objects = truth["accounts"][0]["objects"].as_array().unwrap().clone();
    let live = |stream: &str| {
        objects
            .iter()
            .filter(|o| o["stream"] == stream && o["deleted"] == false)
            .cloned()
            .collect::<Vec<Value>>()
    };
    let with_tax_ids = live("customers")
        .iter()
        .filter(|c| {
            !c["object"]["tax_ids"]["data"]
                .as_array()
                .unwrap()
                .is_empty()
        })
        .count();
    let long = live("invoices")
        .iter()
        .filter(|i| i["object"]["lines"]["data"].as_array().unwrap().len() > 10)
        .count();
    (with_tax_ids, long)
}

async fn backfill_brings_every_tax_id_and_every_line(backend: Backend) {
    let app = synced_app(backend).await;
    let sim = start_tls_sim(SimConfig {
        history: 400,
        history_days: 700,
        ..SimConfig::default()
    })
    .await;
    let (with_tax_ids, long) = hard_cases(&sim);
    assert!(
        with_tax_ids > 20 && long > 2,
        "{with_tax_ids} customers with tax IDs, {long} long invoices"
    );
    let base = format!("http://{}", app.addr);
    let (conn, merchant) = register(&sim, &base).await;
    start_backfill(&app.client, &base, &conn).await;
    wait_backfill(&app.client, &base, &conn, 120, |b| b["state"] == "done").await;
    let report = verify_sim(&sim, &base).await;
    assert!(report.objects > 300, "{} objects", report.objects);
    assert!(
        report.divergent.is_empty(),
        "divergent after backfill: {:?}",
        &report.divergent[..report.divergent.len().min(5)]
    );
    // The requests show how: customers listed with their tax IDs expanded, long invoices'
    // lines paged from their own endpoint.
    let stats = sim.sim.stats();
    let lines_pages = stats
        .requests_by_path
        .get("/v1/invoices/:id/lines")
        .copied()
        .unwrap_or(0);
    assert!(
        lines_pages >= long as u64,
        "{lines_pages} lines pages for {long} long invoices"
    );
    let stored = app
        .get_json(
            &format!("/v1/merchants/{merchant}/customers?limit=1000"),
            200,
        )
        .await;
    let stored_with = stored["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["data"]["tax_ids"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(stored_with, with_tax_ids);
    sim.stop();
    app.stop().await;
}

async fn tax_ids_by_webhook_wait_out_the_lag_allowance_and_an_update_keeps_them(backend: Backend) {
    let app = synced_app(backend).await;
    let sim = start_tls_sim(SimConfig {
        seed: 19,
        ..SimConfig::default()
    })
    .await;
    crate::sim::connect(&sim, &app, None).await;
    let merchant = sim.sim.accounts()[0].merchant_id.clone();
    sim.sim.step(60);
    let (with_tax_ids, _) = hard_cases(&sim);
    assert!(
        with_tax_ids > 3,
        "only {with_tax_ids} customers with tax IDs"
    );
    // Tax IDs arrive as `customer.tax_id.created` events, read whole once a read can be
    // ordered after them (the 60 s lag allowance); confirmations keep them.
    wait_converged(&sim, &app, std::slice::from_ref(&merchant), 200).await;

    // An update's event carries the customer without `tax_ids`: stored ones are kept at once,
    // not emptied until a read restores them.
    let truth = sim.sim.truth(false);
    let customer = truth["accounts"][0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["stream"] == "customers"
                && o["deleted"] == false
                && !o["object"]["tax_ids"]["data"]
                    .as_array()
                    .unwrap()
                    .is_empty()
        })
        .expect("a customer with tax IDs")
        .clone();
    let id = customer["id"].as_str().unwrap();
    let before = app
        .object(&merchant, "customers", &format!("stripe:{id}"))
        .await
        .expect("stored");
    assert!(sim.sim.edit(0, id, &json!({"name": "Renamed Buyer"})));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let now = app
            .object(&merchant, "customers", &format!("stripe:{id}"))
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
    assert!(!after["data"]["tax_ids"].as_array().unwrap().is_empty());
    let versions = app
        .versions(&merchant, "customers", &format!("stripe:{id}"))
        .await;
    let last = versions.last().unwrap();
    assert_eq!(last["source"]["kind"], "webhook", "{last}");
    sim.stop();
    app.stop().await;
}
