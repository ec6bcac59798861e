//! The version rule end to end: objects only move forward, ties never leave older content
//! looking confirmed.

use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    same_second_events_never_leave_older_content_converged,
    snapshots_delivered_newest_first_end_with_the_newest,
    deletion_keeps_last_data_and_is_a_version,
);

async fn same_second_events_never_leave_older_content_converged(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let t = now_secs();
    // invoice.paid delivered before invoice.updated (open) of the same second.
    let paid = stripe_event("evt_paid", "invoice.paid", t, invoice("in_t", "paid", 1000));
    let open = stripe_event("evt_open", "invoice.updated", t, invoice("in_t", "open", 0));
    app.send(&conn, &paid, 200).await;
    app.settle().await;
    app.send(&conn, &open, 200).await;
    app.settle().await;
    let obj = app
        .object(&conn.merchant_id, "invoices", "stripe:in_t")
        .await
        .unwrap();
    assert_eq!(
        obj["data"]["status"], "paid",
        "the later lifecycle stage wins the tie"
    );
    assert_eq!(obj["version"], 1);
    assert_ne!(obj["reconciliation_status"], "converged");

    // Same second, same lifecycle stage, different content: cannot be ordered.
    let a = stripe_event(
        "evt_a",
        "customer.updated",
        t,
        customer("cus_t", "a@example.com"),
    );
    let b = stripe_event(
        "evt_b",
        "customer.updated",
        t,
        customer("cus_t", "b@example.com"),
    );
    app.send(&conn, &a, 200).await;
    app.send(&conn, &b, 200).await;
    app.settle().await;
    let obj = app
        .object(&conn.merchant_id, "customers", "stripe:cus_t")
        .await
        .unwrap();
    assert_eq!(
        obj["reconciliation_status"], "pending",
        "an unordered tie stays pending"
    );
    let versions = app
        .versions(&conn.merchant_id, "customers", "stripe:cus_t")
        .await;
    assert!(versions
        .iter()
        .all(|v| v["reconciliation_status"] == "pending"));
    app.stop().await;
}

async fn snapshots_delivered_newest_first_end_with_the_newest(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let t0 = now_secs() - 100;
    let emails: Vec<String> = (0..6).map(|i| format!("v{i}@example.com")).collect();
    for i in (0..6).rev() {
        let body = stripe_event(
            &format!("evt_n{i}"),
            "customer.updated",
            t0 + i as i64,
            customer("cus_n", &emails[i]),
        );
        app.send(&conn, &body, 200).await;
        app.settle().await;
        let obj = app
            .object(&conn.merchant_id, "customers", "stripe:cus_n")
            .await
            .unwrap();
        assert_eq!(
            obj["data"]["email"], "v5@example.com",
            "older content came back"
        );
        assert_eq!(obj["version"], 1, "the version moved for an older snapshot");
    }
    // And in order, each newer one is a version.
    for i in 0..3 {
        let body = stripe_event(
            &format!("evt_o{i}"),
            "customer.updated",
            t0 + 10 + i,
            customer("cus_o", &emails[i as usize]),
        );
        app.send(&conn, &body, 200).await;
    }
    app.settle().await;
    let versions = app
        .versions(&conn.merchant_id, "customers", "stripe:cus_o")
        .await;
    let seen: Vec<i64> = versions
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(versions[2]["data"]["email"], "v2@example.com");
    assert_eq!(versions[2]["source"]["event_id"], "evt_o2");
    assert_eq!(versions[2]["reason"], "newer_than_stored");
    app.stop().await;
}

async fn deletion_keeps_last_data_and_is_a_version(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let t = now_secs();
    app.send(
        &conn,
        &stripe_event(
            "evt_d1",
            "customer.created",
            t - 5,
            customer("cus_d", "d@example.com"),
        ),
        200,
    )
    .await;
    let stub = json!({"id": "cus_d", "object": "customer", "deleted": true});
    app.send(
        &conn,
        &stripe_event("evt_d2", "customer.deleted", t, stub),
        200,
    )
    .await;
    app.settle().await;
    let obj = app
        .object(&conn.merchant_id, "customers", "stripe:cus_d")
        .await
        .unwrap();
    assert_eq!(obj["deleted"], true);
    assert_eq!(obj["version"], 2);
    assert_eq!(obj["data"]["email"], "d@example.com");
    app.stop().await;
}
