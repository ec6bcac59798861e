//! Providers beyond Stripe, through the real intake: a Paddle Billing webhook signed the way
//! Paddle signs it is verified, stored once and mapped; its rejections store nothing.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(paddle_webhook_is_verified_stored_once_and_mapped);

const PADDLE_SECRET: &str = "pdl_ntfset_01jd_test_secret";

async fn paddle_connection(app: &TestApp) -> String {
    let r = app
        .admin_post(
            "/admin/v1/connections",
            &json!({"merchant_id": "m_paddle", "provider": "paddle", "account_id": "pad_acct",
                    "webhook_secrets": ["pdl_ntfset_old", PADDLE_SECRET], "api_key": "pdl_key"}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    let id = body["connection_id"].as_str().unwrap().to_owned();
    assert_eq!(body["webhook_path"], format!("/webhooks/paddle/{id}"));
    id
}

async fn post(app: &TestApp, conn: &str, body: &str, signature: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/webhooks/paddle/{conn}")))
        .header("Paddle-Signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn paddle_webhook_is_verified_stored_once_and_mapped(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = paddle_connection(&app).await;
    let body = json!({
        "event_id": "evt_01paddle", "event_type": "transaction.completed",
        "occurred_at": "2025-11-24T16:00:00.123456Z", "notification_id": "ntf_01",
        "data": {"id": "txn_01", "status": "completed", "customer_id": "ctm_01",
                 "currency_code": "EUR", "updated_at": "2025-11-24T16:00:00.1Z",
                 "details": {"totals": {"subtotal": "1000", "discount": "0", "tax": "190",
                                        "total": "1190", "grand_total": "1190"}, "line_items": []}}
    })
    .to_string();
    let now = now_secs();
    let good = billsync::providers::paddle::sign(PADDLE_SECRET, now, body.as_bytes());

    // Rejections first: nothing may be stored by any of them.
    let wrong = billsync::providers::paddle::sign("pdl_ntfset_other", now, body.as_bytes());
    let (status, json) = post(&app, &conn, &body, &wrong).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (400, Some("invalid_signature"))
    );
    let stale = billsync::providers::paddle::sign(PADDLE_SECRET, now - 3600, body.as_bytes());
    let (status, json) = post(&app, &conn, &body, &stale).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (400, Some("stale_timestamp"))
    );
    let tampered = body.replace("1190", "1");
    let (status, _) = post(&app, &conn, &tampered, &good).await;
    assert_eq!(status, 400);
    assert_eq!(
        app.raw_event_count(&conn).await,
        0,
        "a rejected webhook was stored"
    );

    // Twice, as Paddle's at-least-once delivery does: one raw event, one version.
    let (status, first) = post(&app, &conn, &body, &good).await;
    assert_eq!((status, first["duplicate"].as_bool()), (200, Some(false)));
    let (status, again) = post(&app, &conn, &body, &good).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)));
    app.settle().await;
    assert_eq!(app.raw_event_count(&conn).await, 1);
    let invoice = app
        .object("m_paddle", "invoices", "paddle:txn_01")
        .await
        .expect("the transaction is readable as an invoice");
    assert_eq!(invoice["version"], 1);
    assert_eq!(invoice["data"]["status"], "paid");
    assert_eq!(invoice["data"]["currency"], "EUR");
    assert_eq!(invoice["data"]["total"], 1190);
    assert_eq!(invoice["data"]["customer_id"], "paddle:ctm_01");
    app.stop().await;
}
