//! Webhook intake against the answers of docs/api-reference.md: every code, nothing stored on rejection,
//! no secret or signature in bodies or logs, dedupe under concurrency.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    signed_event_is_stored_applied_and_readable,
    every_rejection_stores_nothing_and_leaks_nothing,
    duplicate_delivery_creates_one_version,
    fifty_concurrent_deliveries_store_one_raw_event_and_one_version,
    unmapped_event_type_is_stored_and_answered_200,
    rotated_secrets_both_verify,
    store_that_cannot_accept_answers_503_and_stores_nothing,
);

async fn signed_event_is_stored_applied_and_readable(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let body = stripe_event(
        "evt_1",
        "customer.created",
        now_secs(),
        customer("cus_1", "a@example.com"),
    );
    let answer = app.send(&conn, &body, 200).await;
    assert_eq!(answer["duplicate"], false);
    // Acknowledged means durable: the raw event is there the moment the 200 is.
    assert_eq!(
        app.store.raw_event_ids(&conn.id).await.unwrap(),
        vec!["evt_1"]
    );
    app.settle().await;
    let obj = app
        .object(&conn.merchant_id, "customers", "stripe:cus_1")
        .await
        .expect("object");
    assert_eq!(obj["version"], 1);
    assert_eq!(obj["object_type"], "customer");
    assert_eq!(obj["connection_id"], conn.id.as_str());
    assert_eq!(obj["reconciliation_status"], "pending");
    assert_eq!(obj["deleted"], false);
    assert_eq!(obj["data"]["email"], "a@example.com");
    assert_eq!(obj["data"]["address"]["country"], "DE");
    app.stop().await;
}

async fn every_rejection_stores_nothing_and_leaks_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let now = now_secs();
    let body = stripe_event(
        "evt_r",
        "customer.updated",
        now,
        customer("cus_r", "r@example.com"),
    );
    let good_sig = billsync::providers::stripe::sign(&conn.secret, now, body.as_bytes());
    let wrong_secret_sig = billsync::providers::stripe::sign("whsec_wrong", now, body.as_bytes());
    let stale_sig = billsync::providers::stripe::sign(&conn.secret, now - 301, body.as_bytes());
    let not_event = r#"{"hello":"world"}"#;
    let not_event_sig = billsync::providers::stripe::sign(&conn.secret, now, not_event.as_bytes());
    let tampered = body.replace("r@example.com", "x@example.com");

    // (case, connection id, body, Stripe-Signature, status, error code)
    type Case<'a> = (&'a str, String, String, Option<String>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no signature",
            conn.id.clone(),
            body.clone(),
            None,
            400,
            "invalid_signature",
        ),
        (
            "wrong secret",
            conn.id.clone(),
            body.clone(),
            Some(wrong_secret_sig.clone()),
            400,
            "invalid_signature",
        ),
        (
            "tampered body",
            conn.id.clone(),
            tampered,
            Some(good_sig.clone()),
            400,
            "invalid_signature",
        ),
        (
            "garbage header",
            conn.id.clone(),
            body.clone(),
            Some("t=abc,v1=zz".into()),
            400,
            "invalid_signature",
        ),
        (
            "stale",
            conn.id.clone(),
            body.clone(),
            Some(stale_sig.clone()),
            400,
            "stale_timestamp",
        ),
        (
            "not an event",
            conn.id.clone(),
            not_event.into(),
            Some(not_event_sig),
            400,
            "malformed_payload",
        ),
        (
            "unknown connection",
            "conn_nope".into(),
            body.clone(),
            Some(good_sig.clone()),
            404,
            "unknown_connection",
        ),
    ];
    for (name, conn_id, body, sig, status, code) in cases {
        let r = app.post_webhook(&conn_id, &body, sig.as_deref()).await;
        assert_eq!(r.status().as_u16(), status, "{name}");
        let text = r.text().await.unwrap();
        let json: Value = serde_json::from_str(&text).expect("JSON error body");
        assert_eq!(json["error"]["code"], code, "{name}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        for secret_or_sig in [&conn.secret, &good_sig, &wrong_secret_sig, &stale_sig] {
            assert!(
                !text.contains(secret_or_sig.as_str()),
                "{name}: body echoes a secret or signature"
            );
        }
        assert!(
            !text.contains("r@example.com"),
            "{name}: body echoes the payload"
        );
    }

    // Wrong provider for the connection: unknown connection.
    let r = app
        .client
        .post(app.url(&format!("/webhooks/chargebee/{}", conn.id)))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Over 1 MiB: 413 before any signature work.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20));
    let big_sig = billsync::providers::stripe::sign(&conn.secret, now, big.as_bytes());
    let r = app.post_webhook(&conn.id, &big, Some(&big_sig)).await;
    assert_eq!(r.status().as_u16(), 413);
    let json: Value = r.json().await.unwrap();
    assert_eq!(json["error"]["code"], "payload_too_large");

    assert_eq!(
        app.raw_event_count(&conn.id).await,
        0,
        "a rejected webhook was stored"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM inbox").await, 0);
    let logs = captured_logs();
    assert!(logs.contains("webhook refused"), "rejections are logged");
    for secret_or_sig in [&conn.secret, &good_sig, &wrong_secret_sig, &stale_sig] {
        assert!(
            !logs.contains(secret_or_sig.as_str()),
            "logs contain a secret or signature"
        );
    }
    app.stop().await;
}

async fn duplicate_delivery_creates_one_version(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let body = stripe_event(
        "evt_dup",
        "invoice.finalized",
        now_secs(),
        invoice("in_dup", "open", 0),
    );
    assert_eq!(app.send(&conn, &body, 200).await["duplicate"], false);
    app.settle().await;
    // Redelivered later, re-signed with a fresh timestamp as Stripe does.
    assert_eq!(app.send(&conn, &body, 200).await["duplicate"], true);
    app.settle().await;
    assert_eq!(app.raw_event_count(&conn.id).await, 1);
    assert_eq!(
        app.versions(&conn.merchant_id, "invoices", "stripe:in_dup")
            .await
            .len(),
        1
    );
    app.stop().await;
}

async fn fifty_concurrent_deliveries_store_one_raw_event_and_one_version(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let conn = app.stripe_connection().await;
    let body = stripe_event(
        "evt_c",
        "customer.created",
        now_secs(),
        customer("cus_c", "c@example.com"),
    );
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (app, conn, body) = (app.clone(), conn.clone(), body.clone());
        tasks.push(tokio::spawn(
            async move { app.send(&conn, &body, 200).await },
        ));
    }
    let mut fresh = 0;
    for t in tasks {
        if t.await.unwrap()["duplicate"] == false {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one delivery is the first");
    app.settle().await;
    assert_eq!(app.raw_event_count(&conn.id).await, 1);
    assert_eq!(
        app.versions(&conn.merchant_id, "customers", "stripe:cus_c")
            .await
            .len(),
        1
    );
    let feed = app
        .get_json(&format!("/v1/merchants/{}/changes", conn.merchant_id), 200)
        .await;
    assert_eq!(feed["data"].as_array().unwrap().len(), 1);
}

async fn unmapped_event_type_is_stored_and_answered_200(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let body = stripe_event(
        "evt_plan",
        "plan.created",
        now_secs(),
        json!({"id": "plan_1", "object": "plan"}),
    );
    app.send(&conn, &body, 200).await;
    assert_eq!(app.raw_event_count(&conn.id).await, 1);
    app.settle().await;
    let feed = app
        .get_json(&format!("/v1/merchants/{}/changes", conn.merchant_id), 200)
        .await;
    assert_eq!(feed["data"], json!([]));
    assert_eq!(feed["next_after"], 0);
    app.stop().await;
}

async fn rotated_secrets_both_verify(backend: Backend) {
    let app = spawn_app(backend).await;
    let old = format!("whsec_old_{}", uuid_like());
    let new = format!("whsec_new_{}", uuid_like());
    let conn = app
        .stripe_connection_with("m_rot", vec![old.clone(), new.clone()])
        .await;
    for (i, secret) in [&old, &new].into_iter().enumerate() {
        let body = stripe_event(
            &format!("evt_rot{i}"),
            "customer.created",
            now_secs(),
            customer(&format!("cus_{i}"), "x@example.com"),
        );
        let sig = billsync::providers::stripe::sign(secret, now_secs(), body.as_bytes());
        assert_eq!(
            app.post_webhook(&conn.id, &body, Some(&sig))
                .await
                .status()
                .as_u16(),
            200
        );
    }
    // Stripe sends one v1 per active secret while rolling; any match is enough.
    let body = stripe_event(
        "evt_rot_both",
        "customer.created",
        now_secs(),
        customer("cus_b", "b@example.com"),
    );
    let t = now_secs();
    let a = billsync::providers::stripe::sign("whsec_retired", t, body.as_bytes());
    let b = billsync::providers::stripe::sign(&new, t, body.as_bytes());
    let header = format!("{a},{}", b.split_once(',').unwrap().1);
    assert_eq!(
        app.post_webhook(&conn.id, &body, Some(&header))
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(app.raw_event_count(&conn.id).await, 3);
    app.stop().await;
}

async fn store_that_cannot_accept_answers_503_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    // Break the second half of the intake transaction: the raw event insert must roll back.
    app.db.exec_raw("DROP TABLE inbox").await.unwrap();
    let body = stripe_event(
        "evt_503",
        "customer.created",
        now_secs(),
        customer("cus_503", "u@example.com"),
    );
    let sig = billsync::providers::stripe::sign(&conn.secret, now_secs(), body.as_bytes());
    let r = app.post_webhook(&conn.id, &body, Some(&sig)).await;
    assert_eq!(r.status().as_u16(), 503);
    let text = r.text().await.unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["error"]["code"], "unavailable");
    assert!(
        !text.contains(&sig) && !text.contains(&conn.secret) && !text.contains("u@example.com")
    );
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM raw_events").await,
        0,
        "acknowledged nothing, stored nothing"
    );
    assert!(!captured_logs().contains(&sig));
    app.stop().await;
}
