//! Data-quality findings through `GET /v1/merchants/{m}/quality_findings` (filters, paging,
//! refusals, tenant isolation) and the cross-object checks (docs/api.md "Data quality").

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    findings_are_listed_filtered_and_paged,
    unresolved_reference_is_flagged_and_cleared_when_the_object_arrives,
    credit_note_larger_than_its_invoice_is_flagged,
    amount_paid_not_matching_the_charges_is_flagged,
);

async fn findings(app: &TestApp, merchant: &str, query: &str) -> Vec<Value> {
    let body = app
        .get_json(
            &format!("/v1/merchants/{merchant}/quality_findings?{query}"),
            200,
        )
        .await;
    body["data"].as_array().cloned().expect("data")
}

/// Polls until `query` lists findings for which `done` holds (cross-object checks run right
/// after the apply commits, so shortly after the inbox drains).
async fn wait_for(
    app: &TestApp,
    merchant: &str,
    query: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = findings(app, merchant, query).await;
        if done(&found) {
            return found;
        }
        assert!(Instant::now() < deadline, "{query}: still {found:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has(found: &[Value], id: &str, code: &str) -> bool {
    found.iter().any(|f| f["id"] == id && f["code"] == code)
}

async fn event(app: &TestApp, conn: &Conn, event_id: &str, kind: &str, object: Value) {
    app.send(conn, &stripe_event(event_id, kind, now_secs(), object), 200)
        .await;
}

fn charge(id: &str, invoice: &str, amount: i64, status: &str) -> Value {
    json!({"id": id, "object": "charge", "customer": "cus_1", "invoice": invoice,
        "amount": amount, "amount_refunded": 0, "currency": "usd", "status": status,
        "created": 1_700_000_000})
}

fn credit_note(id: &str, invoice: &str, total: i64) -> Value {
    json!({"id": id, "object": "credit_note", "invoice": invoice, "customer": "cus_1",
        "currency": "usd", "subtotal": total, "total": total, "total_taxes": [],
        "status": "issued", "reason": null, "created": 1_700_000_000,
        "lines": {"object": "list", "data": [{"id": format!("{id}_l"), "amount": total,
            "quantity": 1, "description": "Refund"}]}})
}

async fn findings_are_listed_filtered_and_paged(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let m = conn.merchant_id.clone();
    event(
        &app,
        &conn,
        "evt_c",
        "customer.created",
        customer("cus_1", "a@example.com"),
    )
    .await;
    for n in ["in_a", "in_b", "in_c"] {
        let mut bad = invoice(n, "open", 0);
        bad["total"] = json!(5000);
        event(&app, &conn, &format!("evt_{n}"), "invoice.finalized", bad).await;
    }
    event(
        &app,
        &conn,
        "evt_ok",
        "invoice.finalized",
        invoice("in_ok", "open", 0),
    )
    .await;
    app.settle().await;

    let all = findings(&app, &m, "code=total_mismatch").await;
    let ids: Vec<&str> = all.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(!ids.contains(&"stripe:in_ok"));
    let first = &all[0];
    assert_eq!(first["object_type"], "invoice");
    assert_eq!(first["version"], 1);
    assert_eq!(first["connection_id"], conn.id.as_str());
    assert!(first["message"].as_str().unwrap().contains("total is 5000"));
    assert!(first["recorded_at"].as_str().unwrap().ends_with('Z'));

    // Filters narrow; each one alone can empty the answer.
    assert_eq!(
        findings(&app, &m, "object_type=invoice&code=total_mismatch")
            .await
            .len(),
        3
    );
    assert_eq!(findings(&app, &m, "object_type=customer").await.len(), 0);
    assert_eq!(findings(&app, &m, "code=overpaid").await.len(), 0);
    assert_eq!(
        findings(
            &app,
            &m,
            &format!("connection_id={}&code=total_mismatch", conn.id)
        )
        .await
        .len(),
        3
    );
    assert_eq!(
        findings(&app, &m, "connection_id=conn_other").await.len(),
        0
    );
    assert_eq!(
        findings(&app, &m, "since=2000-01-01T00:00:00Z&code=total_mismatch")
            .await
            .len(),
        3
    );
    assert_eq!(
        findings(&app, &m, "since=2999-01-01T00:00:00%2B02:00")
            .await
            .len(),
        0
    );
    assert_eq!(findings(&app, "m_nobody", "").await.len(), 0);

    // Paging: every finding once, in order, and the last page says so.
    let page = app
        .get_json(
            &format!("/v1/merchants/{m}/quality_findings?code=total_mismatch&limit=2"),
            200,
        )
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let after = page["next_after"].as_str().expect("a next page").to_owned();
    let rest = app
        .get_json(
            &format!(
                "/v1/merchants/{m}/quality_findings?code=total_mismatch&limit=2&after={after}"
            ),
            200,
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_after"], Value::Null);
    let paged: Vec<Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["data"].as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(paged, all);

    // Bad filters: 400 naming the parameter.
    for (query, name) in [
        ("object_type=invoices", "object_type"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=not-a-cursor", "after"),
    ] {
        let body = app
            .get_json(&format!("/v1/merchants/{m}/quality_findings?{query}"), 400)
            .await;
        assert_eq!(body["error"]["code"], "invalid_request", "{query}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{name}`")),
            "{query}: {body}"
        );
    }

    // A read token for another merchant may not look; one for this merchant may.
    let token = |merchant: String| {
        let app = &app;
        async move {
            let r = app
                .admin_post(
                    "/admin/v1/tokens",
                    &json!({"name": "quality", "scope": "read", "merchant_id": merchant}),
                )
                .await;
            assert_eq!(r.status().as_u16(), 201);
            r.json::<Value>().await.unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let path = app.url(&format!("/v1/merchants/{m}/quality_findings"));
    let other = token("m_someone_else".into()).await;
    let r = app
        .client
        .get(&path)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let own = token(m.clone()).await;
    let r = app
        .client
        .get(&path)
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    app.stop().await;
}

async fn unresolved_reference_is_flagged_and_cleared_when_the_object_arrives(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let m = conn.merchant_id.clone();
    // Good data: the customer first, then its invoice.
    event(
        &app,
        &conn,
        "evt_c2",
        "customer.created",
        customer("cus_2", "b@example.com"),
    )
    .await;
    let mut good = invoice("in_good", "open", 0);
    good["customer"] = json!("cus_2");
    event(&app, &conn, "evt_good", "invoice.finalized", good).await;
    // Bad data: an invoice and a charge naming a customer that is not there (yet).
    event(
        &app,
        &conn,
        "evt_bad",
        "invoice.finalized",
        invoice("in_1", "open", 0),
    )
    .await;
    event(
        &app,
        &conn,
        "evt_ch",
        "charge.succeeded",
        charge("ch_1", "in_missing", 0, "failed"),
    )
    .await;
    app.settle().await;
    let found = wait_for(&app, &m, "code=unresolved_reference", |f| {
        has(f, "stripe:in_1", "unresolved_reference")
            && has(f, "stripe:ch_1", "unresolved_reference")
    })
    .await;
    assert!(
        !found.iter().any(|f| f["id"] == "stripe:in_good"),
        "{found:?}"
    );
    let on_invoice = found.iter().find(|f| f["id"] == "stripe:in_1").unwrap();
    assert_eq!(on_invoice["object_type"], "invoice");
    assert!(on_invoice["message"]
        .as_str()
        .unwrap()
        .contains("stripe:cus_1"));
    let on_charge = found.iter().find(|f| f["id"] == "stripe:ch_1").unwrap();
    let message = on_charge["message"].as_str().unwrap();
    assert!(
        message.contains("stripe:cus_1") && message.contains("stripe:in_missing"),
        "{message}"
    );

    // The customer arrives: the invoice's finding goes, the charge keeps its missing invoice.
    event(
        &app,
        &conn,
        "evt_c1",
        "customer.created",
        customer("cus_1", "a@example.com"),
    )
    .await;
    app.settle().await;
    let found = wait_for(&app, &m, "code=unresolved_reference", |f| {
        !has(f, "stripe:in_1", "unresolved_reference")
    })
    .await;
    let on_charge = found
        .iter()
        .find(|f| f["id"] == "stripe:ch_1")
        .expect("the charge still refers to in_missing");
    let message = on_charge["message"].as_str().unwrap();
    assert!(
        message.contains("stripe:in_missing") && !message.contains("cus_1"),
        "{message}"
    );
    app.stop().await;
}

async fn credit_note_larger_than_its_invoice_is_flagged(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let m = conn.merchant_id.clone();
    event(
        &app,
        &conn,
        "evt_c",
        "customer.created",
        customer("cus_1", "a@example.com"),
    )
    .await;
    event(
        &app,
        &conn,
        "evt_in",
        "invoice.finalized",
        invoice("in_1", "open", 0),
    )
    .await;
    event(
        &app,
        &conn,
        "evt_ok",
        "credit_note.created",
        credit_note("cn_ok", "in_1", 1000),
    )
    .await;
    event(
        &app,
        &conn,
        "evt_big",
        "credit_note.created",
        credit_note("cn_big", "in_1", 1500),
    )
    .await;
    app.settle().await;
    let found = wait_for(&app, &m, "object_type=credit_note", |f| {
        has(f, "stripe:cn_big", "credit_exceeds_invoice")
    })
    .await;
    assert_eq!(
        found.len(),
        1,
        "only the larger credit note is flagged: {found:?}"
    );
    assert!(found[0]["message"].as_str().unwrap().contains("1500"));
    // The invoice is corrected upwards: the finding goes.
    let mut bigger = invoice("in_1", "open", 0);
    for key in ["subtotal", "total", "amount_due"] {
        bigger[key] = json!(2000);
    }
    bigger["lines"]["data"][0]["amount"] = json!(2000);
    app.send(
        &conn,
        &stripe_event("evt_in2", "invoice.updated", now_secs() + 1, bigger),
        200,
    )
    .await;
    app.settle().await;
    wait_for(&app, &m, "object_type=credit_note", |f| f.is_empty()).await;
    app.stop().await;
}

async fn amount_paid_not_matching_the_charges_is_flagged(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let m = conn.merchant_id.clone();
    event(
        &app,
        &conn,
        "evt_c",
        "customer.created",
        customer("cus_1", "a@example.com"),
    )
    .await;
    // Good: paid 1000, one succeeded charge of 1000 and a failed one.
    event(
        &app,
        &conn,
        "evt_in1",
        "invoice.paid",
        invoice("in_1", "paid", 1000),
    )
    .await;
    event(
        &app,
        &conn,
        "evt_ch1",
        "charge.succeeded",
        charge("ch_1", "in_1", 1000, "succeeded"),
    )
    .await;
    event(
        &app,
        &conn,
        "evt_ch1f",
        "charge.failed",
        charge("ch_1f", "in_1", 1000, "failed"),
    )
    .await;
    // Bad: the charge arrives first and is short of what the invoice says was paid.
    event(
        &app,
        &conn,
        "evt_ch2",
        "charge.succeeded",
        charge("ch_2", "in_2", 400, "succeeded"),
    )
    .await;
    event(
        &app,
        &conn,
        "evt_in2",
        "invoice.paid",
        invoice("in_2", "paid", 1000),
    )
    .await;
    // Bad the other way round: the invoice first, then a charge it does not account for.
    event(
        &app,
        &conn,
        "evt_in3",
        "invoice.paid",
        invoice("in_3", "paid", 1000),
    )
    .await;
    event(
        &app,
        &conn,
        "evt_ch3",
        "charge.succeeded",
        charge("ch_3", "in_3", 700, "succeeded"),
    )
    .await;
    app.settle().await;
    let found = wait_for(&app, &m, "code=amount_paid_mismatch", |f| {
        has(f, "stripe:in_2", "amount_paid_mismatch")
            && has(f, "stripe:in_3", "amount_paid_mismatch")
    })
    .await;
    assert_eq!(found.len(), 2, "in_1 is consistent: {found:?}");
    let in_2 = found.iter().find(|f| f["id"] == "stripe:in_2").unwrap();
    assert!(
        in_2["message"].as_str().unwrap().contains("sum to 400"),
        "{in_2}"
    );
    // The missing part of in_3 is charged: its finding goes.
    event(
        &app,
        &conn,
        "evt_ch3b",
        "charge.succeeded",
        charge("ch_3b", "in_3", 300, "succeeded"),
    )
    .await;
    app.settle().await;
    let found = wait_for(&app, &m, "code=amount_paid_mismatch", |f| {
        !has(f, "stripe:in_3", "amount_paid_mismatch")
    })
    .await;
    assert!(has(&found, "stripe:in_2", "amount_paid_mismatch"));
    app.stop().await;
}
