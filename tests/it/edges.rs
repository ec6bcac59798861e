//! Hostile input at the edges (issue 20): one connection per merchant and provider, one bad
//! event never failing another, ids with control characters, escaped logs, validation,
//! one nesting rule for every provider, and same-second ties that never bring older content
//! back.

use std::time::{Duration, Instant};

use base64::Engine;
use rand::seq::SliceRandom;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    a_second_connection_of_a_merchant_at_one_provider_is_a_conflict,
    migrate_refuses_a_database_where_two_connections_share_a_pair,
    poison_events_are_refused_or_dead_lettered_alone_and_good_ones_applied_at_once,
    an_apply_batch_the_store_refuses_is_split_down_to_the_row_at_fault,
    same_second_bursts_delivered_shuffled_never_bring_older_content_back,
    invalid_currencies_are_dead_lettered_not_stored,
);

async fn register(app: &TestApp, merchant: &str, provider: &str, secret: &str) -> (u16, Value) {
    let r = app
        .admin_post(
            "/admin/v1/connections",
            &json!({
                "merchant_id": merchant, "provider": provider, "account_id": "acct_1",
                "webhook_secrets": [secret], "api_key": "key_1",
                "api_base_url": "https://api.example.com",
            }),
        )
        .await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn a_second_connection_of_a_merchant_at_one_provider_is_a_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, first) = register(&app, "m_pair", "stripe", "whsec_1").await;
    assert_eq!(status, 201, "{first}");
    let existing = first["connection_id"].as_str().unwrap();
    let (status, second) = register(&app, "m_pair", "stripe", "whsec_2").await;
    assert_eq!(status, 409, "{second}");
    assert_eq!(second["error"]["code"], "conflict");
    let message = second["error"]["message"].as_str().unwrap();
    assert!(message.contains(existing), "{message}");
    // Another provider, or another merchant, is another pair.
    assert_eq!(register(&app, "m_pair", "paddle", "pdl_1").await.0, 201);
    assert_eq!(register(&app, "m_pair_2", "stripe", "whsec_3").await.0, 201);
    // Concurrent registrations of one pair: exactly one wins.
    let attempts = (0..8).map(|n| {
        let app = &app;
        async move {
            register(app, "m_race", "stripe", &format!("whsec_{n}"))
                .await
                .0
        }
    });
    let mut codes = futures_join_all(attempts).await;
    codes.sort();
    assert_eq!(codes, [201, 409, 409, 409, 409, 409, 409, 409]);
    app.stop().await;
}

/// Awaits every future (a small join_all without another dependency).
async fn futures_join_all<F: std::future::Future<Output = u16>>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<u16> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out = Vec::new();
    // Poll them together so the registrations race for real.
    let results = std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out.iter().any(|(j, _)| *j == i) {
                continue;
            }
            match f.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => out.push((i, v)),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(std::mem::take(&mut out))
        }
    })
    .await;
    results.into_iter().map(|(_, v)| v).collect()
}

async fn migrate_refuses_a_database_where_two_connections_share_a_pair(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    // A database from before the rule: the unique index and its migration undone, then two
    // connections of one merchant at one provider.
    db.exec_raw("DROP INDEX connections_merchant_provider")
        .await
        .unwrap();
    db.exec_raw("DELETE FROM _sqlx_migrations WHERE version = 10")
        .await
        .unwrap();
    let bytes = match backend {
        Backend::Sqlite => "X'00'",
        _ => "'\\x00'::bytea",
    };
    for id in ["conn_dup_a", "conn_dup_b"] {
        db.exec_raw(&format!(
            "INSERT INTO connections (id, merchant_id, provider, account_id, \
             sealed_webhook_secrets, created_at, updated_at) \
             VALUES ('{id}', 'm_dup', 'stripe', 'acct', {bytes}, 1, 1)"
        ))
        .await
        .unwrap();
    }
    let e = store.migrate().await.unwrap_err().to_string();
    assert!(
        e.contains("m_dup stripe conn_dup_a") && e.contains("m_dup stripe conn_dup_b"),
        "{e}"
    );
    assert!(e.contains("another merchant id"), "says what to do: {e}");
    // Nothing was changed: both are still there, and migrate passes once one is moved.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM connections WHERE merchant_id = 'm_dup'")
            .await,
        2
    );
    db.exec_raw("UPDATE connections SET merchant_id = 'm_dup_2' WHERE id = 'conn_dup_b'")
        .await
        .unwrap();
    store
        .migrate()
        .await
        .expect("migrates once the pair is unique");
}

async fn poison_events_are_refused_or_dead_lettered_alone_and_good_ones_applied_at_once(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let mut conns = Vec::new();
    for _ in 0..20 {
        conns.push(app.stripe_connection().await);
    }
    let t = now_secs();
    let good: Vec<(Conn, String, String)> = (0..300)
        .map(|n| {
            let c = conns[n % 20].clone();
            let body = stripe_event(
                &format!("evt_good_{n}"),
                "customer.created",
                t,
                customer(&format!("cus_good_{n}"), "g@example.com"),
            );
            (c, body, format!("stripe:cus_good_{n}"))
        })
        .collect();
    let poison = [
        // NUL in the event id, in the object id, an escape in the event type.
        stripe_event(
            "evt_\u{0}nul",
            "customer.created",
            t,
            customer("cus_p1", "p@x"),
        ),
        stripe_event(
            "evt_p2",
            "customer.created",
            t,
            customer("cus_\u{0}p2", "p@x"),
        ),
        stripe_event(
            "evt_p3",
            "customer.\u{1b}[31mcreated",
            t,
            customer("cus_p3", "p@x"),
        ),
        // Signed and well-formed, but not mappable: stored, answered 200, dead-lettered.
        stripe_event("evt_p4", "invoice.created", t, {
            let mut i = invoice("in_p4", "open", 0);
            i["total"] = json!("a great deal");
            i
        }),
        stripe_event("evt_p5", "invoice.created", t, {
            let mut i = invoice("in_p5", "open", 0);
            i["currency"] = json!("ZZZ");
            i
        }),
    ];
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    let deliveries = good
        .iter()
        .enumerate()
        .map(|(i, (c, body, _))| (format!("good {i}"), c.clone(), body.clone()))
        .chain(
            poison
                .iter()
                .enumerate()
                .map(|(i, body)| (format!("poison {i}"), conns[i].clone(), body.clone())),
        );
    for (what, c, body) in deliveries {
        let (client, url) = (app.client.clone(), app.url(""));
        sends.spawn(async move {
            let sig = billsync::providers::stripe::sign(&c.secret, now_secs(), body.as_bytes());
            let r = client
                .post(format!("{url}/webhooks/stripe/{}", c.id))
                .header("Stripe-Signature", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            (what, r.status().as_u16())
        });
    }
    let mut answers = std::collections::HashMap::new();
    while let Some(r) = sends.join_next().await {
        let (what, status) = r.unwrap();
        answers.insert(what, status);
    }
    for i in 0..300 {
        assert_eq!(answers[&format!("good {i}")], 200, "good event {i}");
    }
    for i in 0..3 {
        assert_eq!(
            answers[&format!("poison {i}")],
            400,
            "poison {i} is refused at intake"
        );
    }
    for i in 3..5 {
        assert_eq!(answers[&format!("poison {i}")], 200, "poison {i} is stored");
    }
    // Every good event applied well within one retry interval (the first is 0.5 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let applied = app
            .db
            .count("SELECT COUNT(*) FROM objects WHERE provider_id LIKE 'cus_good_%'")
            .await;
        if applied == 300 {
            break;
        }
        assert!(Instant::now() < deadline, "only {applied} of 300 applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "[{backend:?}] 300 good events applied {:?} after the first send",
        started.elapsed()
    );
    for (c, _, id) in good.iter().step_by(37) {
        assert!(app.object(&c.merchant_id, "customers", id).await.is_some());
    }
    // The two stored poison events are dead-lettered, each on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .db
        .count("SELECT COUNT(*) FROM inbox WHERE dead = TRUE")
        .await
        < 2
    {
        assert!(Instant::now() < deadline, "poison events not dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM inbox WHERE dead = TRUE")
            .await,
        2
    );
    app.stop().await;
}

async fn an_apply_batch_the_store_refuses_is_split_down_to_the_row_at_fault(backend: Backend) {
    use billsync::store::{IncomingEvent, RawBody};
    let app = spawn_app_with(TestDb::new(backend).await, |c| {
        c.inbox_max_attempts = 2;
    })
    .await;
    let conn = app.stripe_connection().await;
    let t = now_secs();
    // Stored behind intake's back: 40 good events and one whose object id has a NUL, which
    // Postgres cannot store in a text column (SQLite can: there it applies like the rest).
    let mut events = Vec::new();
    for n in 0..41 {
        let id = if n == 20 {
            "cus_\u{0}bad".to_owned()
        } else {
            format!("cus_b{n}")
        };
        let body = stripe_event(
            &format!("evt_b{n}"),
            "customer.created",
            t,
            customer(&id, "b@x"),
        );
        events.push(IncomingEvent {
            connection_id: conn.id.clone(),
            provider_event_id: format!("evt_b{n}"),
            event_type: "customer.created".into(),
            source: "webhook",
            received_at: billsync::model::time::now_micros(),
            body: RawBody::seal(body.as_bytes()).unwrap(),
        });
    }
    app.store.ingest(&events).await.unwrap();
    // Wake the actor through an ordinary webhook.
    let wake = stripe_event(
        "evt_wake",
        "customer.created",
        t,
        customer("cus_wake", "w@x"),
    );
    app.send(&conn, &wake, 200).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let applied = app
            .db
            .count("SELECT COUNT(*) FROM objects WHERE provider_id LIKE 'cus_b%'")
            .await;
        if applied >= 40 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {applied} of 40 good rows applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if backend == Backend::Postgres {
        let deadline = Instant::now() + Duration::from_secs(30);
        while app
            .db
            .count("SELECT COUNT(*) FROM inbox WHERE dead = TRUE")
            .await
            < 1
        {
            assert!(
                Instant::now() < deadline,
                "the bad row was not dead-lettered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            app.db
                .count("SELECT COUNT(*) FROM inbox WHERE dead = TRUE")
                .await,
            1,
            "only the row at fault is dead-lettered"
        );
    }
    app.stop().await;
}

async fn same_second_bursts_delivered_shuffled_never_bring_older_content_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let t = now_secs();
    const OBJECTS: usize = 25;
    const STATES: usize = 5;
    // Each object: created, then four updates, all in the same second. The state's index is
    // in its email, so a version's content tells which state it is.
    let mut deliveries = Vec::new();
    for o in 0..OBJECTS {
        for s in 0..STATES {
            let kind = if s == 0 {
                "customer.created"
            } else {
                "customer.updated"
            };
            let body = stripe_event(
                &format!("evt_tie_{o}_{s}"),
                kind,
                t,
                customer(&format!("cus_tie_{o}"), &format!("state{s}@example.com")),
            );
            deliveries.push(body.clone());
            if (o + s) % 3 == 0 {
                deliveries.push(body); // duplicated
            }
        }
    }
    deliveries.shuffle(&mut rand::thread_rng());
    for body in &deliveries {
        app.send(&conn, body, 200).await;
    }
    app.settle().await;
    let mut regressions = Vec::new();
    for o in 0..OBJECTS {
        let versions = app
            .versions(
                &conn.merchant_id,
                "customers",
                &format!("stripe:cus_tie_{o}"),
            )
            .await;
        assert!(!versions.is_empty());
        let states: Vec<usize> = versions
            .iter()
            .map(|v| {
                let email = v["data"]["email"].as_str().unwrap();
                email[5..6].parse().unwrap()
            })
            .collect();
        if states.windows(2).any(|w| w[1] < w[0]) {
            regressions.push((o, states));
        }
    }
    assert!(
        regressions.is_empty(),
        "versions went back to an older state: {regressions:?}"
    );
    app.stop().await;
}

async fn invalid_currencies_are_dead_lettered_not_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let t = now_secs();
    for (n, currency) in [json!("ZZZ"), json!(""), json!("usd' OR 1=1 --")]
        .into_iter()
        .enumerate()
    {
        let mut i = invoice(&format!("in_cur_{n}"), "open", 0);
        i["currency"] = currency;
        let body = stripe_event(&format!("evt_cur_{n}"), "invoice.created", t, i);
        app.send(&conn, &body, 200).await;
    }
    let ok = stripe_event(
        "evt_cur_ok",
        "invoice.created",
        t,
        invoice("in_cur_ok", "open", 0),
    );
    app.send(&conn, &ok, 200).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .db
        .count("SELECT COUNT(*) FROM inbox WHERE dead = TRUE")
        .await
        < 3
    {
        assert!(Instant::now() < deadline, "not dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.settle().await;
    for n in 0..3 {
        assert!(app
            .object(&conn.merchant_id, "invoices", &format!("stripe:in_cur_{n}"))
            .await
            .is_none());
    }
    let stored = app
        .object(&conn.merchant_id, "invoices", "stripe:in_cur_ok")
        .await
        .unwrap();
    assert_eq!(stored["data"]["currency"], "USD");
    app.stop().await;
}

#[tokio::test]
async fn connection_input_with_control_characters_or_an_unusable_basic_secret_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    for (body, field) in [
        (
            json!({"merchant_id": "m_1\n", "provider": "stripe"}),
            "merchant_id",
        ),
        (
            json!({"merchant_id": " m_1", "provider": "stripe"}),
            "merchant_id",
        ),
        (
            json!({"merchant_id": "m_\u{0}", "provider": "stripe"}),
            "merchant_id",
        ),
        (
            json!({"merchant_id": "m_2", "provider": "chargebee", "webhook_secrets": ["nocolon"]}),
            "webhook_secrets",
        ),
        (
            json!({"merchant_id": "m_3", "provider": "zuora", "webhook_secrets": ["nocolon"]}),
            "webhook_secrets",
        ),
    ] {
        let mut full = json!({
            "account_id": "acct_1", "webhook_secrets": ["whsec_1"], "api_key": "key",
            "api_base_url": "https://api.example.com",
        });
        for (k, v) in body.as_object().unwrap() {
            full[k] = v.clone();
        }
        let r = app.admin_post("/admin/v1/connections", &full).await;
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {answer}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn untrusted_path_parts_are_logged_escaped() {
    let app = spawn_app(Backend::Sqlite).await;
    let marker = format!("forged{}", &uuid_like()[..8]);
    let r = app
        .client
        .post(app.url(&format!(
            "/webhooks/stripe/conn_x%0AERROR%20admin%20token%20rotated%20{marker}%1B%5B31m"
        )))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&marker) && l.contains("webhook refused"))
        .unwrap_or_else(|| panic!("the refusal was not logged"));
    assert!(line.contains("\\n"), "the newline is not escaped: {line}");
    assert!(
        !logs
            .lines()
            .any(|l| l.starts_with("ERROR admin token rotated")),
        "a forged line reached the log"
    );
    assert!(
        !logs.contains('\u{1b}'),
        "an escape sequence reached the log"
    );
    app.stop().await;
}

/// A body nested 10,000 levels deep, signed as each provider signs.
#[tokio::test]
async fn deeply_nested_bodies_are_refused_alike_by_every_provider() {
    let app = spawn_app(Backend::Sqlite).await;
    let deep = format!(
        "{{\"id\":\"evt_deep\",\"type\":\"customer.created\",\"created\":1,\"data\":{}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let form = format!("id=1&payload{}=x", "[a]".repeat(10_000));
    let t = now_secs();
    for provider in ["stripe", "paddle", "chargebee", "recurly", "zuora", "maxio"] {
        let basic = matches!(provider, "chargebee" | "zuora");
        let secret = if basic { "user:pass" } else { "secret_1" };
        let (status, created) =
            register(&app, &format!("m_deep_{provider}"), provider, secret).await;
        assert_eq!(status, 201, "{created}");
        let id = created["connection_id"].as_str().unwrap();
        let body = if provider == "maxio" { &form } else { &deep };
        let mut req = app
            .client
            .post(app.url(&format!("/webhooks/{provider}/{id}")))
            .body(body.clone());
        req = match provider {
            "stripe" => req.header(
                "Stripe-Signature",
                billsync::providers::stripe::sign(secret, t, body.as_bytes()),
            ),
            "paddle" => req.header(
                "Paddle-Signature",
                billsync::providers::paddle::sign(secret, t, body.as_bytes()),
            ),
            "recurly" => req.header(
                "recurly-signature",
                billsync::providers::recurly::sign(secret, t * 1000, body.as_bytes()),
            ),
            "maxio" => req
                .header("content-type", "application/x-www-form-urlencoded")
                .header(
                    "X-Chargify-Webhook-Signature-Hmac-Sha-256",
                    billsync::providers::maxio::sign(secret, body.as_bytes()),
                ),
            _ => req.header(
                "Authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(secret)
                ),
            ),
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{provider}: {answer}");
        assert_eq!(
            answer["error"]["code"], "malformed_payload",
            "{provider}: {answer}"
        );
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM raw_events").await, 0);
    app.stop().await;
}
