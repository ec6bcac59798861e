//! Every provider's backfill brings objects whole: a simulator with two years of history per
//! provider, each as unhelpful as its provider's documentation says (tax IDs and addresses kept
//! apart, long invoices' lines paged), is pulled and then compared field by field with its
//! truth (`sim verify`: every canonical field, mapped from the simulator's whole objects).

use billsync::providers::ProviderKind;
use billsync_sim::{Clock, SimConfig};

use crate::backfill::{register, start_backfill, wait_backfill};
use crate::both_backends;
use crate::helpers::*;
use crate::sim::{start_tls_sim, verify_sim};

both_backends!(
    chargebee_backfill_is_whole,
    recurly_backfill_is_whole,
    paddle_backfill_is_whole,
    zuora_backfill_is_whole,
    maxio_backfill_is_whole,
    maxio_backfill_reads_every_page_of_credit_notes,
);

async fn chargebee_backfill_is_whole(backend: Backend) {
    backfill_is_whole(backend, ProviderKind::Chargebee).await
}
async fn recurly_backfill_is_whole(backend: Backend) {
    backfill_is_whole(backend, ProviderKind::Recurly).await
}
async fn paddle_backfill_is_whole(backend: Backend) {
    backfill_is_whole(backend, ProviderKind::Paddle).await
}
async fn zuora_backfill_is_whole(backend: Backend) {
    backfill_is_whole(backend, ProviderKind::Zuora).await
}
async fn maxio_backfill_is_whole(backend: Backend) {
    backfill_is_whole(backend, ProviderKind::Maxio).await
}

async fn backfill_is_whole(backend: Backend, provider: ProviderKind) {
    let app = spawn_app_with(TestDb::new(backend).await, |c| {
        c.provider_sync = true;
        c.provider_timeout_secs = 5;
    })
    .await;
    let sim = start_tls_sim(SimConfig {
        history: 400,
        history_days: 700,
        providers: vec![billsync::sim_expectation::sim_provider(provider)],
        ..SimConfig::default()
    })
    .await;
    let base = format!("http://{}", app.addr);
    let (conn, _) = register(&sim, &base).await;
    start_backfill(&app.client, &base, &conn).await;
    wait_backfill(&app.client, &base, &conn, 180, |b| b["state"] == "done").await;
    let report = verify_sim(&sim, &base).await;
    assert!(
        report.objects > 300,
        "{provider:?}: {} objects",
        report.objects
    );
    assert!(
        report.divergent.is_empty(),
        "{provider:?}: {} of {} divergent after a backfill, e.g. {:?}",
        report.divergent.len(),
        report.objects,
        &report.divergent[..report.divergent.len().min(5)]
    );
    sim.stop();
    app.stop().await;
}

/// Maxio's credit notes have no date filter and page only by number (docs/providers/maxio.md):
/// a backfill walks them once, page after page, and brings more than one page of them.
async fn maxio_backfill_reads_every_page_of_credit_notes(backend: Backend) {
    let app = spawn_app_with(TestDb::new(backend).await, |c| {
        c.provider_sync = true;
        c.provider_timeout_secs = 5;
    })
    .await;
    // A clock that moves 1-20 s a step, ending before now: Maxio lists page by update time
    // to the second, so thousands of changes in one wall-clock second could not be paged
    // (docs/providers/maxio.md); a real account's history is spread like this.
    let sim = start_tls_sim(SimConfig {
        seed: 23,
        providers: vec![billsync_sim::SimProvider::Maxio],
        clock: Clock::Fixed(now_secs() - 40_000),
        ..SimConfig::default()
    })
    .await;
    // Lifecycles before billsync is connected: their webhooks go nowhere, so only the
    // backfill can bring them.
    sim.sim.step(3000);
    let truth = sim.sim.truth(false);
    let credit_notes = truth["accounts"][0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["stream"] == "credit_notes")
        .count();
    assert!(
        credit_notes > 100,
        "only {credit_notes} credit notes: one page holds them"
    );
    let base = format!("http://{}", app.addr);
    let (conn, _) = register(&sim, &base).await;
    start_backfill(&app.client, &base, &conn).await;
    wait_backfill(&app.client, &base, &conn, 180, |b| b["state"] == "done").await;
    let pages = sim
        .sim
        .stats()
        .requests_by_path
        .get("/credit_notes.json")
        .copied()
        .unwrap_or(0);
    assert!(pages >= 2, "{pages} credit note pages read");
    // Customers deleted before the backfill are in no list, so billsync never hears of them:
    // the only objects allowed missing.
    let deleted: std::collections::HashSet<String> = truth["accounts"][0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["deleted"] == true)
        .map(|o| format!("maxio:{}", o["id"].as_str().unwrap()))
        .collect();
    let report = verify_sim(&sim, &base).await;
    let divergent: Vec<_> = report
        .divergent
        .iter()
        .filter(|d| !(deleted.contains(&d.id) && d.what == "missing in billsync"))
        .collect();
    assert!(
        divergent.is_empty(),
        "{} of {} divergent, e.g. {:?}",
        divergent.len(),
        report.objects,
        &divergent[..divergent.len().min(5)]
    );
    sim.stop();
    app.stop().await;
}
