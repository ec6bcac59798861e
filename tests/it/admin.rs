//! Admin API: registering connections, validation naming the field, secrets never returned
//! nor stored in the clear, pause and resume.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    connection_is_registered_without_echoing_secrets,
    bad_connection_input_names_the_field,
    paused_connection_stores_webhooks_and_applies_after_resume,
);

async fn connection_is_registered_without_echoing_secrets(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = format!("whsec_{}", uuid_like());
    let r = app
        .admin_post(
            "/admin/v1/connections",
            &json!({
                "merchant_id": "m_adm", "provider": "stripe", "account_id": "acct_1",
                "webhook_secrets": [secret], "api_key": "sk_test_secretkey_987",
                "api_base_url": "http://127.0.0.1:12111", "rate_limit_per_sec": 25,
                "reconcile_interval_secs": 600, "api_version": "2024-06-20"
            }),
        )
        .await;
    assert_eq!(r.status().as_u16(), 201);
    let text = r.text().await.unwrap();
    assert!(!text.contains(&secret) && !text.contains("sk_test_secretkey_987"));
    let body: Value = serde_json::from_str(&text).unwrap();
    let id = body["connection_id"].as_str().unwrap();
    assert_eq!(body["webhook_path"], format!("/webhooks/stripe/{id}"));
    assert_eq!(body["rate_limit_per_sec"], 25);

    let got = app
        .get_json(&format!("/admin/v1/connections/{id}"), 200)
        .await;
    assert_eq!(got["state"], "active");
    assert_eq!(got["backfill"]["state"], "idle");
    assert!(!got.to_string().contains(&secret));
    let list = app
        .get_json("/admin/v1/connections?merchant_id=m_adm", 200)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    app.get_json("/admin/v1/connections/conn_missing", 404)
        .await;

    // Sealed at rest: the plaintext is nowhere in the stored row.
    let record = app.store.get_connection(id).await.unwrap().unwrap();
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!contains(&record.sealed_webhook_secrets, &secret));
    assert!(!contains(
        record.sealed_api_key.as_deref().unwrap(),
        "sk_test_secretkey_987"
    ));
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'connection.create'")
            .await,
        1
    );
    assert!(!captured_logs().contains(&secret));
    app.stop().await;
}

async fn bad_connection_input_names_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let base = json!({
        "merchant_id": "m_1", "provider": "stripe", "account_id": "a",
        "webhook_secrets": ["whsec_x"], "api_key": "sk"
    });
    for (field, value) in [
        ("provider", json!("paypal")),
        ("merchant_id", Value::Null),
        ("webhook_secrets", json!("whsec_x")),
        ("api_base_url", json!("not a url")),
        ("rate_limit_per_sec", json!(-1)),
    ] {
        let mut body = base.clone();
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value;
        }
        let r = app.admin_post("/admin/v1/connections", &body).await;
        assert_eq!(r.status().as_u16(), 400, "{field}");
        let err: Value = r.json().await.unwrap();
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{field}: {err}"
        );
    }
    let r = app
        .client
        .post(app.url("/admin/v1/connections"))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    app.stop().await;
}

async fn paused_connection_stores_webhooks_and_applies_after_resume(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let r = app
        .admin_post(
            &format!("/admin/v1/connections/{}/pause", conn.id),
            &json!({}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "paused");
    app.send(
        &conn,
        &stripe_event(
            "evt_p",
            "customer.created",
            now_secs(),
            customer("cus_p", "p@example.com"),
        ),
        200,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        app.object(&conn.merchant_id, "customers", "stripe:cus_p")
            .await
            .is_none(),
        "applied while paused"
    );
    assert_eq!(app.raw_event_count(&conn.id).await, 1);
    let r = app
        .admin_post(
            &format!("/admin/v1/connections/{}/resume", conn.id),
            &json!({}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    app.settle().await;
    assert!(app
        .object(&conn.merchant_id, "customers", "stripe:cus_p")
        .await
        .is_some());
    app.stop().await;
}
