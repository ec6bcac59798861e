//! Data quality: bad data is stored, flagged and counted, never refused.

use crate::both_backends;
use crate::helpers::*;

both_backends!(invoice_whose_total_is_not_its_lines_is_stored_and_flagged);

async fn invoice_whose_total_is_not_its_lines_is_stored_and_flagged(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    // The invoices' customer, so that only the per-object check differs between them.
    app.send(
        &conn,
        &stripe_event(
            "evt_cus",
            "customer.created",
            now_secs(),
            customer("cus_1", "a@example.com"),
        ),
        200,
    )
    .await;
    let mut bad = invoice("in_bad", "open", 0);
    bad["total"] = serde_json::json!(5000);
    app.send(
        &conn,
        &stripe_event("evt_bad", "invoice.finalized", now_secs(), bad),
        200,
    )
    .await;
    app.send(
        &conn,
        &stripe_event(
            "evt_good",
            "invoice.finalized",
            now_secs(),
            invoice("in_good", "open", 0),
        ),
        200,
    )
    .await;
    app.settle().await;
    let stored = app
        .object(&conn.merchant_id, "invoices", "stripe:in_bad")
        .await
        .expect("bad data is still stored");
    assert_eq!(stored["data"]["total"], 5000);
    let flagged = app
        .db
        .count("SELECT COUNT(*) FROM quality_findings WHERE id = 'stripe:in_bad' AND code = 'total_mismatch'")
        .await;
    assert_eq!(flagged, 1);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM quality_findings WHERE id = 'stripe:in_good'")
            .await,
        0
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("billsync_quality_findings_total{provider=\"stripe\",kind=\"invoice\",code=\"total_mismatch\"}"));
    app.stop().await;
}
