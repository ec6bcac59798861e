//! Every provider's backfill brings objects whole: a simulator with two years of history per
//! provider, each as unhelpful as its provider's documentation says (tax IDs and addresses kept
//! apart, long invoices' lines paged), is pulled and then compared field by field with its
//! truth (`sim verify`: every canonical field, mapped from the simulator's whole objects).

use billsync::providers::ProviderKind;
use billsync::simulator::SimConfig;

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
        providers: vec![provider],
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
