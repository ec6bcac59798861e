//! Operating billsync through the admin API (docs/api.md "Tokens", "Audit log", "Dead letters",
//! "Archiving a connection"): scoped tokens and tenant isolation, the audit log's actors, dead
//! letters retried and discarded, archived connections, reads of one object on demand. On both
//! stores.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    a_merchant_token_never_sees_another_merchant,
    a_revoked_token_is_refused_at_its_next_call,
    every_admin_action_is_audited_under_its_token,
    a_poison_event_is_dead_lettered_then_discarded_with_its_raw_event_kept,
    a_retried_dead_letter_is_applied_and_leaves_the_list,
    an_archived_connection_stops_and_keeps_its_history,
    a_refetch_reads_one_object_from_the_provider_now,
);

/// Calls `path` with `token`; answers the status and the JSON body (`null` if none).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Makes a token with the admin token; answers (token_id, token).
async fn make_token(app: &TestApp, body: Value) -> (String, String) {
    let (status, out) = call(app, Method::POST, "/admin/v1/tokens", TOKEN, Some(&body)).await;
    assert_eq!(status, 201, "{out}");
    (
        out["token_id"].as_str().expect("token_id").to_owned(),
        out["token"].as_str().expect("token").to_owned(),
    )
}

/// A connection with one customer and one invoice whose ids carry `tag`.
async fn merchant_with_data(app: &TestApp, tag: &str) -> Conn {
    let conn = app.stripe_connection().await;
    let t = now_secs() - 60;
    let cus = stripe_event(
        &format!("evt_c_{tag}"),
        "customer.created",
        t,
        customer(&format!("cus_{tag}"), &format!("{tag}@example.com")),
    );
    let inv = stripe_event(
        &format!("evt_i_{tag}"),
        "invoice.created",
        t,
        invoice(&format!("in_{tag}"), "open", 0),
    );
    app.send(&conn, &cus, 200).await;
    app.send(&conn, &inv, 200).await;
    conn
}

async fn a_merchant_token_never_sees_another_merchant(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = merchant_with_data(&app, "a").await;
    let b = merchant_with_data(&app, "b").await;
    app.settle().await;
    let (_, token_a) = make_token(
        &app,
        json!({"name": "tax service for a", "scope": "read", "merchant_id": a.merchant_id}),
    )
    .await;
    let (_, token_all) = make_token(&app, json!({"name": "analytics", "scope": "read"})).await;

    let as_of = "2100-01-01T00:00:00Z";
    let own = |m: &str| {
        vec![
            format!("/v1/merchants/{m}/customers"),
            format!("/v1/merchants/{m}/invoices"),
            format!("/v1/merchants/{m}/customers?as_of={as_of}"),
            format!("/v1/merchants/{m}/changes"),
            format!("/v1/merchants/{m}/sync-status"),
        ]
    };
    // Its own merchant: every read answers, and only that merchant's objects appear.
    for path in own(&a.merchant_id) {
        let (status, body) = call(&app, Method::GET, &path, &token_a, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains("cus_b") && !text.contains("in_b"),
            "{path} leaks b: {text}"
        );
    }
    let (status, body) = call(
        &app,
        Method::GET,
        &format!("/v1/merchants/{}/customers", a.merchant_id),
        &token_a,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
    // The other merchant's object, asked for under its own merchant: not there.
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/v1/merchants/{}/customers/stripe:cus_b", a.merchant_id),
        &token_a,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Every path of the other merchant: 403, whatever it names.
    let mut others = own(&b.merchant_id);
    others.extend([
        format!("/v1/merchants/{}/customers/stripe:cus_b", b.merchant_id),
        format!(
            "/v1/merchants/{}/customers/stripe:cus_b/versions",
            b.merchant_id
        ),
        format!(
            "/v1/merchants/{}/invoices/stripe:in_b?as_of={as_of}",
            b.merchant_id
        ),
        // Percent-encoded, the merchant is still `b`'s.
        format!(
            "/v1/merchants/{}/customers",
            b.merchant_id.replace('_', "%5F")
        ),
    ]);
    for path in &others {
        let (status, body) = call(&app, Method::GET, path, &token_a, None).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{path}");
        assert!(!body.to_string().contains("cus_b"), "{path} leaks: {body}");
    }
    // Read tokens never administer.
    for token in [&token_a, &token_all] {
        for (method, path) in [
            (Method::GET, "/admin/v1/connections".to_owned()),
            (Method::GET, format!("/admin/v1/connections/{}", a.id)),
            (
                Method::POST,
                format!("/admin/v1/connections/{}/pause", a.id),
            ),
            (Method::GET, "/admin/v1/tokens".to_owned()),
            (Method::GET, "/admin/v1/audit".to_owned()),
            (Method::GET, "/admin/v1/dead_letters".to_owned()),
        ] {
            let (status, _) = call(&app, method.clone(), &path, token, Some(&json!({}))).await;
            assert_eq!(status, 403, "{method} {path}");
        }
    }
    // The unlimited read token reads both merchants.
    for m in [&a.merchant_id, &b.merchant_id] {
        let (status, body) = call(
            &app,
            Method::GET,
            &format!("/v1/merchants/{m}/invoices"),
            &token_all,
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
    }
    // The connection is still active: the read tokens' pause was refused before it acted.
    let conn = app
        .get_json(&format!("/admin/v1/connections/{}", a.id), 200)
        .await;
    assert_eq!(conn["state"], "active");
    // An admin token may not be limited to a merchant; an unknown scope is refused.
    for body in [
        json!({"name": "x", "scope": "admin", "merchant_id": "m_1"}),
        json!({"name": "x", "scope": "owner"}),
        json!({"name": "", "scope": "read"}),
    ] {
        let (status, out) = call(&app, Method::POST, "/admin/v1/tokens", TOKEN, Some(&body)).await;
        assert_eq!(status, 400, "{body}: {out}");
    }
    // Tokens are listed without their secrets.
    let (_, list) = call(&app, Method::GET, "/admin/v1/tokens", TOKEN, None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2), "{list}");
    let text = list.to_string();
    assert!(!text.contains(&token_a) && !text.contains(&token_all));
    app.stop().await;
}

async fn a_revoked_token_is_refused_at_its_next_call(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, token) = make_token(&app, json!({"name": "ops", "scope": "admin"})).await;
    let (status, _) = call(&app, Method::GET, "/admin/v1/connections", &token, None).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/admin/v1/tokens/{id}"),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = call(&app, Method::GET, "/admin/v1/connections", &token, None).await;
    assert_eq!(status, 401, "{body}");
    // Revoking again: nothing to revoke.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/admin/v1/tokens/{id}"),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, list) = call(&app, Method::GET, "/admin/v1/tokens", TOKEN, None).await;
    assert!(list["data"][0]["revoked_at"].is_string(), "{list}");
    app.stop().await;
}

async fn every_admin_action_is_audited_under_its_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ops_id, ops) = make_token(&app, json!({"name": "ops", "scope": "admin"})).await;
    let mut expected: Vec<(String, String)> = vec![("admin-env".into(), "token.create".into())];
    let (status, created) = call(
        &app,
        Method::POST,
        "/admin/v1/connections",
        &ops,
        Some(
            &json!({"merchant_id": "m_audit", "provider": "stripe", "account_id": "acct_1",
            "webhook_secrets": ["whsec_audit_secret"], "api_key": "sk_test_audit"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    expected.push((ops_id.clone(), "connection.create".into()));
    let conn = created["connection_id"].as_str().unwrap().to_owned();
    let steps = [
        (
            ops.as_str(),
            Method::POST,
            "pause",
            json!({}),
            "connection.pause",
        ),
        (
            TOKEN,
            Method::POST,
            "resume",
            json!({}),
            "connection.resume",
        ),
        (
            ops.as_str(),
            Method::PATCH,
            "",
            json!({"rate_limit_per_sec": 5}),
            "connection.update",
        ),
        (
            ops.as_str(),
            Method::POST,
            "replay",
            json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}),
            "connection.replay",
        ),
    ];
    for (token, method, action, body, audited) in steps {
        let path = if action.is_empty() {
            format!("/admin/v1/connections/{conn}")
        } else {
            format!("/admin/v1/connections/{conn}/{action}")
        };
        let (status, out) = call(&app, method, &path, token, Some(&body)).await;
        assert!(status < 300, "{path}: {status} {out}");
        let who = if token == TOKEN { "admin-env" } else { &ops_id };
        expected.push((who.to_owned(), audited.to_owned()));
    }
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/admin/v1/connections/{conn}"),
        &ops,
        None,
    )
    .await;
    assert_eq!(status, 204);
    expected.push((ops_id.clone(), "connection.archive".into()));
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/admin/v1/tokens/{ops_id}"),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 204);
    expected.push(("admin-env".into(), "token.revoke".into()));

    // Read back in pages of two: every action, in order, under its token; no secret.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get_json(&format!("/admin/v1/audit?after={after}&limit=2"), 200)
            .await;
        for e in page["data"].as_array().unwrap() {
            assert!(e["at"].is_string() && e["seq"].as_i64() > Some(after - 1));
            seen.push((
                e["token_id"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_after"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let all = app
        .get_json("/admin/v1/audit?limit=1000", 200)
        .await
        .to_string();
    for secret in ["whsec_audit_secret", "sk_test_audit", &ops] {
        assert!(!all.contains(secret), "the audit log shows a secret");
    }
    app.stop().await;
}

/// Waits until the connection has `n` dead letters; answers them.
async fn dead_letters(app: &TestApp, conn: &Conn, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = app
            .get_json(
                &format!("/admin/v1/dead_letters?connection_id={}", conn.id),
                200,
            )
            .await;
        let data = list["data"].as_array().cloned().unwrap_or_default();
        if data.len() == n {
            return data;
        }
        assert!(Instant::now() < deadline, "dead letters: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn actions(audit: &Value) -> Vec<String> {
    audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["action"], e["target"]))
        .collect()
}

async fn a_poison_event_is_dead_lettered_then_discarded_with_its_raw_event_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    // Signed and well-formed, but not mappable: `total` is not an amount.
    let poison = stripe_event("evt_poison", "invoice.created", now_secs() - 5, {
        let mut i = invoice("in_poison", "open", 0);
        i["total"] = json!("a great deal");
        i
    });
    app.send(&conn, &poison, 200).await;
    let letters = dead_letters(&app, &conn, 1).await;
    let letter = &letters[0];
    assert_eq!(letter["event_id"], "evt_poison");
    assert_eq!(letter["connection_id"], conn.id.as_str());
    assert!(letter["dead_at"].is_string());
    assert!(
        letter["last_error"].as_str().unwrap().contains("total"),
        "the error says what: {letter}"
    );
    let id = letter["id"].as_i64().unwrap();
    // Retry: back in the inbox, mapped again, and (still unmappable) dead again.
    let r = app
        .admin_post(&format!("/admin/v1/dead_letters/{id}/retry"), &json!({}))
        .await;
    assert_eq!(r.status().as_u16(), 202);
    let again = dead_letters(&app, &conn, 1).await;
    assert_eq!(again[0]["id"], id);
    // Discard: out of the list, its raw event kept.
    let r = app
        .admin_post(&format!("/admin/v1/dead_letters/{id}/discard"), &json!({}))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    dead_letters(&app, &conn, 0).await;
    assert_eq!(app.raw_event_count(&conn.id).await, 1);
    let r = app
        .admin_post(&format!("/admin/v1/dead_letters/{id}/discard"), &json!({}))
        .await;
    assert_eq!(r.status().as_u16(), 404, "discarded once");
    let audit = app.get_json("/admin/v1/audit", 200).await;
    let acts = actions(&audit);
    assert!(
        acts.contains(&format!("\"dead_letter.retry\" \"{id}\"")),
        "{acts:?}"
    );
    assert!(
        acts.contains(&format!("\"dead_letter.discard\" \"{id}\"")),
        "{acts:?}"
    );
    app.stop().await;
}

/// An item that kept failing for a cause since fixed (here: attempts exhausted while the
/// connection was paused, standing in for an outage) is applied once retried.
async fn a_retried_dead_letter_is_applied_and_leaves_the_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let r = app
        .admin_post(
            &format!("/admin/v1/connections/{}/pause", conn.id),
            &json!({}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let event = stripe_event(
        "evt_late",
        "customer.created",
        now_secs() - 5,
        customer("cus_late", "late@example.com"),
    );
    app.send(&conn, &event, 200).await;
    let inbox_id = app
        .db
        .count(&format!(
            "SELECT MAX(id) FROM inbox WHERE connection_id = '{}'",
            conn.id
        ))
        .await;
    app.store
        .retry_inbox(&[inbox_id], 0, "the provider was down", 1)
        .await
        .unwrap();
    let r = app
        .admin_post(
            &format!("/admin/v1/connections/{}/resume", conn.id),
            &json!({}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let letters = dead_letters(&app, &conn, 1).await;
    assert_eq!(letters[0]["last_error"], "the provider was down");
    assert_eq!(letters[0]["attempts"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.object(&conn.merchant_id, "customers", "stripe:cus_late")
            .await
            .is_none(),
        "a dead letter is not applied"
    );
    let r = app
        .admin_post(
            &format!("/admin/v1/dead_letters/{inbox_id}/retry"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 202);
    app.settle().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .object(&conn.merchant_id, "customers", "stripe:cus_late")
        .await
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the retried event was not applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dead_letters(&app, &conn, 0).await;
    let audit = app.get_json("/admin/v1/audit", 200).await;
    assert!(actions(&audit).contains(&format!("\"dead_letter.retry\" \"{inbox_id}\"")));
    app.stop().await;
}

async fn an_archived_connection_stops_and_keeps_its_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = merchant_with_data(&app, "arch").await;
    app.settle().await;
    let path = format!("/admin/v1/connections/{}", conn.id);
    let (status, _) = call(&app, Method::DELETE, &path, TOKEN, None).await;
    assert_eq!(status, 204);
    // Again: still 204, nothing more audited.
    let (status, _) = call(&app, Method::DELETE, &path, TOKEN, None).await;
    assert_eq!(status, 204);
    let shown = app.get_json(&path, 200).await;
    assert_eq!(shown["state"], "archived");
    // Its webhook path answers as for an unknown connection.
    let later = stripe_event(
        "evt_after",
        "customer.updated",
        now_secs(),
        customer("cus_arch", "new@example.com"),
    );
    let body = app.send(&conn, &later, 404).await;
    assert_eq!(body["error"]["code"], "unknown_connection");
    // No more changes or jobs.
    for (action, body) in [
        ("pause", json!({})),
        ("resume", json!({})),
        ("backfill", json!({"since": "2024-01-01T00:00:00Z"})),
        (
            "replay",
            json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}),
        ),
    ] {
        let r = app.admin_post(&format!("{path}/{action}"), &body).await;
        assert_eq!(r.status().as_u16(), 409, "{action}");
        let out: Value = r.json().await.unwrap();
        assert_eq!(out["error"]["code"], "connection_archived");
    }
    // History stays readable; the raw events stay.
    let cus = app
        .object(&conn.merchant_id, "customers", "stripe:cus_arch")
        .await
        .expect("the archived connection's objects stay readable");
    assert_eq!(cus["data"]["email"], "arch@example.com");
    assert_eq!(app.raw_event_count(&conn.id).await, 2);
    // The merchant-provider pair stays taken.
    let r = app
        .admin_post(
            "/admin/v1/connections",
            &json!({"merchant_id": conn.merchant_id, "provider": "stripe", "account_id": "acct_2",
                "webhook_secrets": ["whsec_x"], "api_key": "sk_test_x"}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 409);
    let audit = app.get_json("/admin/v1/audit", 200).await;
    let archived = actions(&audit)
        .iter()
        .filter(|a| a.starts_with("\"connection.archive\""))
        .count();
    assert_eq!(archived, 1);
    app.stop().await;
}

/// A change whose webhook never came: the object is stale until an operator asks for it.
async fn a_refetch_reads_one_object_from_the_provider_now(backend: Backend) {
    use billsync_sim::{Clock, SimConfig};
    let app = spawn_app_with(TestDb::new(backend).await, |c| {
        c.provider_sync = true;
        c.confirm_after_secs = 1;
    })
    .await;
    let sim = crate::sim::start_tls_sim(SimConfig {
        accounts: 1,
        clock: Clock::Fixed(chrono::Utc::now().timestamp() - 86_400),
        ..SimConfig::default()
    })
    .await;
    crate::sim::connect(&sim, &app, None).await;
    let changed = sim.sim.step(10);
    crate::sim::wait_for("deliveries", 10, || {
        sim.sim.stats().webhooks_sent as usize >= changed
    })
    .await;
    let account = sim.sim.accounts()[0].clone();
    crate::chaos::wait_converged(&sim, &app, std::slice::from_ref(&account.merchant_id), 120).await;
    let truth = sim.sim.truth(false);
    let customer = truth["accounts"][0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["stream"] == "customers" && o["deleted"] == false)
        .expect("a customer")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.sim.set_knobs(&json!({"webhook_drop": 1.0})).unwrap();
    assert!(sim
        .sim
        .edit(0, &customer, &json!({"email": "refetched@example.com"})));
    let canonical = format!("stripe:{customer}");
    let email = || async {
        app.object(&account.merchant_id, "customers", &canonical)
            .await
            .map(|o| o["data"]["email"].clone())
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(
        email().await,
        Some(json!("refetched@example.com")),
        "no webhook came"
    );
    let conns = app
        .get_json(
            &format!("/admin/v1/connections?merchant_id={}", account.merchant_id),
            200,
        )
        .await;
    let conn_id = conns["data"][0]["connection_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/admin/v1/connections/{conn_id}/refetch");
    let r = app
        .admin_post(&path, &json!({"object_type": "customer", "id": customer}))
        .await;
    assert_eq!(r.status().as_u16(), 202);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["id"], canonical.as_str());
    let deadline = Instant::now() + Duration::from_secs(20);
    while email().await != Some(json!("refetched@example.com")) {
        assert!(Instant::now() < deadline, "the refetch was not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for bad in [
        json!({"object_type": "planet", "id": customer}),
        json!({"object_type": "customer"}),
        json!({"object_type": "customer", "id": ""}),
    ] {
        let r = app.admin_post(&path, &bad).await;
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
    let audit = app.get_json("/admin/v1/audit", 200).await;
    assert!(actions(&audit).contains(&format!("\"connection.refetch\" \"{conn_id}\"")));
    sim.stop();
    app.stop().await;
}
