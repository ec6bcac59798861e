//! Read API: auth, lists with stable cursors and filters, versions, `as_of`, the change feed.

use std::collections::HashSet;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    read_and_admin_apis_need_the_bearer_token,
    list_pages_never_skip_or_repeat_while_writes_happen,
    as_of_returns_the_version_current_then,
    change_feed_resumes_without_gaps_or_repeats,
    an_object_deleted_before_any_content_has_empty_data,
);

/// A deletion of an object billsync never saw (a Stripe deletion stub: no fields) stores `{}`
/// as its `data`: the one `data` that is no canonical kind, which the OpenAPI document declares
/// as the `oneOf` alternative `DeletedUnseen` (never `null`).
async fn an_object_deleted_before_any_content_has_empty_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let stub = serde_json::json!({"id": "cus_unseen", "object": "customer", "deleted": true});
    let body = stripe_event("evt_unseen", "customer.deleted", now_secs(), stub);
    app.send(&conn, &body, 200).await;
    app.settle().await;
    let path = format!(
        "/v1/merchants/{}/customers/stripe:cus_unseen",
        conn.merchant_id
    );
    let object = app.get_json(&path, 200).await;
    assert_eq!(object["deleted"], true, "{object}");
    assert_eq!(object["data"], serde_json::json!({}), "{object}");
    let versions = app.get_json(&format!("{path}/versions"), 200).await;
    assert_eq!(
        versions["data"][0]["data"],
        serde_json::json!({}),
        "{versions}"
    );
    app.stop().await;
}

async fn read_and_admin_apis_need_the_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/v1/merchants/m_1/invoices",
        "/admin/v1/connections",
        "/v1/merchants/m_1/changes",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    let body = app.get_json("/v1/merchants/m_1/widgets", 404).await;
    assert_eq!(body["error"]["code"], "not_found");
    let body = app
        .get_json("/v1/merchants/m_1/invoices/stripe:in_missing", 404)
        .await;
    assert_eq!(body["error"]["code"], "not_found");
    let body = app
        .get_json("/v1/merchants/m_1/invoices?limit=0", 400)
        .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"));
    app.get_json("/v1/merchants/m_1/invoices?cursor=bogus", 400)
        .await;
    app.get_json("/v1/merchants/m_1/invoices?status=happy", 400)
        .await;
    app.stop().await;
}

async fn list_pages_never_skip_or_repeat_while_writes_happen(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let t = now_secs() - 1000;
    for i in 0..25 {
        app.send(
            &conn,
            &stripe_event(
                &format!("evt_l{i}"),
                "customer.created",
                t,
                customer(&format!("cus_{i:02}"), "x@example.com"),
            ),
            200,
        )
        .await;
    }
    app.settle().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut page_no = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/v1/merchants/{}/customers?limit=4&cursor={c}",
                conn.merchant_id
            ),
            None => format!("/v1/merchants/{}/customers?limit=4", conn.merchant_id),
        };
        let page = app.get_json(&path, 200).await;
        for o in page["data"].as_array().unwrap() {
            seen.push(o["id"].as_str().unwrap().to_owned());
        }
        // Writes between pages: new objects and changes to objects already read.
        if page_no == 1 {
            app.send(
                &conn,
                &stripe_event(
                    "evt_new",
                    "customer.created",
                    t + 1,
                    customer("cus_new", "n@example.com"),
                ),
                200,
            )
            .await;
            app.send(
                &conn,
                &stripe_event(
                    "evt_chg",
                    "customer.updated",
                    t + 1,
                    customer("cus_00", "changed@example.com"),
                ),
                200,
            )
            .await;
            app.settle().await;
        }
        page_no += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let unchanged: Vec<&String> = seen
        .iter()
        .filter(|id| *id != "stripe:cus_00" && *id != "stripe:cus_new")
        .collect();
    let unique: HashSet<&&String> = unchanged.iter().collect();
    assert_eq!(
        unchanged.len(),
        24,
        "an unchanged object was skipped or repeated: {seen:?}"
    );
    assert_eq!(unique.len(), 24);
    // Filters.
    let later = app
        .get_json(
            &format!(
                "/v1/merchants/{}/customers?status=converged",
                conn.merchant_id
            ),
            200,
        )
        .await;
    assert_eq!(
        later["data"].as_array().unwrap().len(),
        0,
        "webhook snapshots are not converged"
    );
    let pending = app
        .get_json(
            &format!(
                "/v1/merchants/{}/customers?status=pending&limit=1000",
                conn.merchant_id
            ),
            200,
        )
        .await;
    assert_eq!(pending["data"].as_array().unwrap().len(), 26);
    app.stop().await;
}

async fn as_of_returns_the_version_current_then(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let t = now_secs() - 100;
    app.send(
        &conn,
        &stripe_event(
            "evt_a1",
            "customer.created",
            t,
            customer("cus_a", "one@example.com"),
        ),
        200,
    )
    .await;
    app.settle().await;
    let v1 = app
        .object(&conn.merchant_id, "customers", "stripe:cus_a")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.send(
        &conn,
        &stripe_event(
            "evt_a2",
            "customer.updated",
            t + 1,
            customer("cus_a", "two@example.com"),
        ),
        200,
    )
    .await;
    app.settle().await;
    let between = v1["updated_at"].as_str().unwrap();
    let path = format!(
        "/v1/merchants/{}/customers/stripe:cus_a?as_of={}",
        conn.merchant_id,
        urlencode(between)
    );
    let then = app.get_json(&path, 200).await;
    assert_eq!(then["version"], 1);
    assert_eq!(then["data"]["email"], "one@example.com");
    let now = app
        .object(&conn.merchant_id, "customers", "stripe:cus_a")
        .await
        .unwrap();
    assert_eq!(now["version"], 2);
    let before = format!(
        "/v1/merchants/{}/customers/stripe:cus_a?as_of=2000-01-01T00:00:00Z",
        conn.merchant_id
    );
    app.get_json(&before, 404).await;
    app.get_json(
        &format!(
            "/v1/merchants/{}/customers/stripe:cus_a?as_of=yesterday",
            conn.merchant_id
        ),
        400,
    )
    .await;
    app.stop().await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn change_feed_resumes_without_gaps_or_repeats(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let t = now_secs() - 100;
    for i in 0..12 {
        app.send(
            &conn,
            &stripe_event(
                &format!("evt_f{i}"),
                "customer.updated",
                t + i,
                customer("cus_f", &format!("{i}@example.com")),
            ),
            200,
        )
        .await;
    }
    app.settle().await;
    let mut after = 0;
    let mut seqs = Vec::new();
    loop {
        let page = app
            .get_json(
                &format!(
                    "/v1/merchants/{}/changes?after={after}&limit=5",
                    conn.merchant_id
                ),
                200,
            )
            .await;
        let data = page["data"].as_array().unwrap();
        let next = page["next_after"].as_i64().unwrap();
        if data.is_empty() {
            assert_eq!(next, after, "an empty page keeps next_after == after");
            break;
        }
        seqs.extend(data.iter().map(|c| c["seq"].as_i64().unwrap()));
        after = next;
    }
    assert_eq!(seqs, (1..=12).collect::<Vec<i64>>());
    app.stop().await;
}
