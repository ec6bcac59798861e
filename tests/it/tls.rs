//! The real world's edges (issue 18): provider APIs over HTTPS with a verified certificate
//! (a CA made by the test), a certificate that is not trusted named as such in the
//! connection's view and by `billsync doctor`, plain http refused beyond loopback, secret
//! rotation by `PATCH`, a pause in the middle of a backfill, and Postgres over TLS.

use std::process::Stdio;
use std::time::{Duration, Instant};

use billsync_sim::{SimConfig, SimHandle, Target};
use serde_json::{json, Value};

use crate::both_backends;
use crate::chaos::wait_converged;
use crate::helpers::*;
use crate::sim::start_tls_sim;

both_backends!(
    an_untrusted_certificate_is_named_in_the_connection_view_and_by_doctor,
    patch_rotates_webhook_secrets_and_changes_nothing_else,
    pausing_mid_backfill_with_confirmations_in_flight_resumes_to_done_and_converged,
);

async fn register(sim: &SimHandle, app: &TestApp, extra: Value) -> (String, String) {
    let target = Target {
        url: format!("http://{}", app.addr),
        token: TOKEN.into(),
    };
    sim.sim
        .register_with(target, &extra)
        .await
        .expect("register");
    let account = sim.sim.accounts().remove(0);
    (
        account.connection_id.expect("registered"),
        account.merchant_id,
    )
}

/// `billsync doctor` run as an operator would, against the app's store and secret key.
async fn doctor(app: &TestApp, connection: &str, ca: Option<&std::path::Path>) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_billsync"));
    cmd.args(["doctor", "--connection", connection])
        .env("BILLSYNC_DATABASE_URL", &app.db.url)
        .env("BILLSYNC_DATA_DIR", app.db.dir.path().join("data"))
        .env("BILLSYNC_LOG", "error")
        .env_remove("SSL_CERT_FILE")
        .stdin(Stdio::null());
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("doctor finishes")
        .expect("doctor runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn an_untrusted_certificate_is_named_in_the_connection_view_and_by_doctor(backend: Backend) {
    let sim = start_tls_sim(SimConfig {
        history: 50,
        ..SimConfig::default()
    })
    .await;
    assert!(sim.sim.base_url().starts_with("https://"));
    // This node trusts only the built-in and platform roots: not the test CA.
    let app = spawn_app_with(TestDb::new(backend).await, |c| {
        c.ssl_cert_file = None;
        c.provider_sync = true;
    })
    .await;
    let (conn, _) = register(&sim, &app, json!({})).await;
    crate::backfill::start_backfill(&app.client, &format!("http://{}", app.addr), &conn).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let v = app
            .get_json(&format!("/admin/v1/connections/{conn}"), 200)
            .await;
        if !v["last_provider_error"].is_null() {
            break v;
        }
        assert!(Instant::now() < deadline, "no provider error recorded: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let fault = &view["last_provider_error"];
    assert_eq!(fault["kind"], "tls_certificate", "{fault}");
    let message = fault["message"].as_str().unwrap();
    assert!(
        message.contains("TLS certificate not accepted") && message.contains("UnknownIssuer"),
        "{message}"
    );
    assert!(fault["at"].as_str().is_some(), "{fault}");
    assert_eq!(
        sim.sim.stats().requests,
        0,
        "a request got past the handshake"
    );
    assert!(captured_logs().contains("TLS certificate not accepted"));

    let (code, out) = doctor(&app, &conn, None).await;
    assert_eq!(code, 1, "doctor must fail: {out}");
    assert!(
        out.contains("api FAILED: TLS certificate not accepted") && out.contains("UnknownIssuer"),
        "{out}"
    );
    // Trusting the CA through SSL_CERT_FILE, the same connection passes every check.
    let (code, out) = doctor(&app, &conn, Some(&test_ca().ca_file)).await;
    assert_eq!(code, 0, "doctor must pass: {out}");
    assert!(
        out.contains("over TLS, certificate verified") && out.contains("credentials ok"),
        "{out}"
    );
    assert!(
        out.contains("1 connections checked, 0 with a failed check"),
        "{out}"
    );

    // A wrong key is named as one.
    let r = app
        .client
        .patch(app.url(&format!("/admin/v1/connections/{conn}")))
        .bearer_auth(TOKEN)
        .json(&json!({"api_key": "sk_test_not_the_key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (code, out) = doctor(&app, &conn, Some(&test_ca().ca_file)).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("credentials FAILED: stripe answered 401: the API key was not accepted"),
        "{out}"
    );
    sim.stop();
    app.stop().await;
}

#[tokio::test]
async fn plain_http_is_refused_beyond_loopback_and_user_info_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    for (url, expected) in [
        ("http://api.example.com", 400),
        ("http://10.1.2.3:8080", 400),
        ("https://user:pw@api.stripe.com", 400),
        ("http://127.0.0.1:9/stripe", 201),
        ("https://api.stripe.com", 201),
    ] {
        let r = app
            .admin_post(
                "/admin/v1/connections",
                &json!({
                    "merchant_id": format!("m_{}", &uuid_like()[..8]), "provider": "stripe",
                    "account_id": "acct_1", "webhook_secrets": ["whsec_x"],
                    "api_key": "sk_test_x", "api_base_url": url,
                }),
            )
            .await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, expected, "{url}: {body}");
        if expected == 400 {
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("api_base_url"), "{url}: {message}");
            assert!(!message.contains("pw"), "echoed a password: {message}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn plain_http_beyond_loopback_is_accepted_when_the_operator_allows_it() {
    let app = spawn_app_with(TestDb::new(Backend::Sqlite).await, |c| {
        c.allow_plain_http = true;
    })
    .await;
    let r = app
        .admin_post(
            "/admin/v1/connections",
            &json!({
                "merchant_id": "m_plain", "provider": "stripe", "account_id": "acct_1",
                "webhook_secrets": ["whsec_x"], "api_key": "sk_test_x",
                "api_base_url": "http://api.example.com",
            }),
        )
        .await;
    assert_eq!(r.status().as_u16(), 201);
    app.stop().await;
}

async fn patch(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .patch(app.url(&format!("/admin/v1/connections/{id}")))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn patch_rotates_webhook_secrets_and_changes_nothing_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let old = conn.secret.clone();
    let new = format!("whsec_{}", uuid_like());
    let with_new = Conn {
        secret: new.clone(),
        ..conn.clone()
    };
    let event = |n: u32| {
        stripe_event(
            &format!("evt_rot_{n}"),
            "customer.created",
            now_secs(),
            customer(&format!("cus_rot_{n}"), "a@example.com"),
        )
    };
    let before = app
        .get_json(&format!("/admin/v1/connections/{}", conn.id), 200)
        .await;
    let refused = app.send(&with_new, &event(1), 400).await;
    assert_eq!(refused["error"]["code"], "invalid_signature");

    // Add the new secret: both are in force.
    let (status, body) = patch(&app, &conn.id, json!({"webhook_secrets": [old, new]})).await;
    assert_eq!(status, 200, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains(&old) && !text.contains(&new),
        "echoed a secret"
    );
    app.send(&with_new, &event(2), 200).await;
    app.send(&conn, &event(3), 200).await;

    // Drop the old one: a webhook signed with it is refused.
    let (status, _) = patch(&app, &conn.id, json!({"webhook_secrets": [new]})).await;
    assert_eq!(status, 200);
    let refused = app.send(&conn, &event(4), 400).await;
    assert_eq!(refused["error"]["code"], "invalid_signature");
    app.send(&with_new, &event(5), 200).await;

    let after = app
        .get_json(&format!("/admin/v1/connections/{}", conn.id), 200)
        .await;
    for field in [
        "connection_id",
        "merchant_id",
        "provider",
        "account_id",
        "state",
        "webhook_path",
        "api_base_url",
        "rate_limit_per_sec",
        "reconcile_interval_secs",
        "api_version",
        "created_at",
    ] {
        assert_eq!(before[field], after[field], "{field} changed");
    }
    app.settle().await;
    for n in [2, 3, 5] {
        assert!(
            app.object(
                &conn.merchant_id,
                "customers",
                &format!("stripe:cus_rot_{n}")
            )
            .await
            .is_some(),
            "event {n} not applied"
        );
    }

    // Validated as at creation, naming the field; unknown connections are 404.
    for (body, field) in [
        (json!({"merchant_id": "m_other"}), "merchant_id"),
        (json!({"webhook_secrets": []}), "webhook_secrets"),
        (
            json!({"api_base_url": "http://api.example.com"}),
            "api_base_url",
        ),
        (json!({"rate_limit_per_sec": -1}), "rate_limit_per_sec"),
    ] {
        let (status, answer) = patch(&app, &conn.id, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {answer}"
        );
    }
    let (status, answer) = patch(&app, "conn_nope", json!({"api_key": "sk_x"})).await;
    assert_eq!(status, 404, "{answer}");

    // Audited, without a secret in the record.
    let audit = app
        .db
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'connection.update'")
        .await;
    assert_eq!(audit, 2);
    let leaked = app
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE detail LIKE '%{}%' OR detail LIKE '%{}%'",
            &old[6..],
            &new[6..]
        ))
        .await;
    assert_eq!(leaked, 0, "a secret reached the audit log");
    app.stop().await;
}

async fn pausing_mid_backfill_with_confirmations_in_flight_resumes_to_done_and_converged(
    backend: Backend,
) {
    let sim = start_tls_sim(SimConfig {
        history: 3_000,
        history_days: 60,
        ..SimConfig::default()
    })
    .await;
    let app = spawn_app_with(TestDb::new(backend).await, |c| {
        c.provider_sync = true;
        c.confirm_after_secs = 1;
        c.provider_timeout_secs = 5;
    })
    .await;
    let base = format!("http://{}", app.addr);
    let (conn, merchant) = register(&sim, &app, json!({"rate_limit_per_sec": 10})).await;
    crate::backfill::start_backfill(&app.client, &base, &conn).await;
    // Live changes too, so confirmation reads are due while the backfill runs.
    sim.sim.step(15);
    crate::backfill::wait_backfill(&app.client, &base, &conn, 60, |b| {
        b["objects"].as_u64().unwrap_or(0) >= 300
    })
    .await;
    // Slow answers, so pages and confirmation reads are surely in flight at the pause.
    sim.sim
        .set_knobs(&json!({"outage": {"mode": "slow", "secs": 3, "slow_ms": 700}}))
        .unwrap();
    sim.sim.step(10);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let r = app
        .admin_post(&format!("/admin/v1/connections/{conn}/pause"), &json!({}))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    // The answers in flight come back while paused; nothing more is applied.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let paused = crate::backfill::wait_backfill(&app.client, &base, &conn, 5, |_| true).await;
    let requests = sim.sim.stats().requests;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = crate::backfill::wait_backfill(&app.client, &base, &conn, 5, |_| true).await;
    assert_eq!(paused["state"], "running", "{paused}");
    assert_eq!(paused["objects"], still["objects"], "applied while paused");
    assert_eq!(
        sim.sim.stats().requests,
        requests,
        "requests sent while paused"
    );

    let r = app
        .admin_post(&format!("/admin/v1/connections/{conn}/resume"), &json!({}))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let done =
        crate::backfill::wait_backfill(&app.client, &base, &conn, 120, |b| b["state"] == "done")
            .await;
    println!(
        "[{backend:?}] paused at {} objects; done: {done}",
        paused["objects"]
    );
    wait_converged(&sim, &app, &[merchant], 120).await;
    sim.stop();
    app.stop().await;
}

#[tokio::test]
async fn postgres_over_tls_verifies_the_server_and_the_server_refuses_plain_connections() {
    use sqlx::Connection;
    let url = postgres_tls_admin_url();
    let mut c = sqlx::PgConnection::connect(&url)
        .await
        .expect("verify-full connection");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(ssl, "the session is not encrypted");

    let parsed = url::Url::parse(&url).unwrap();
    let others: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "sslmode" && k != "sslrootcert")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let with = |pairs: &[(&str, &str)]| {
        let mut u = parsed.clone();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(others.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .extend_pairs(pairs.iter().copied());
        u.to_string()
    };
    // The server accepts TLS only, as Aurora with rds.force_ssl=1 does.
    let plain = sqlx::PgConnection::connect(&with(&[("sslmode", "disable")])).await;
    let Err(e) = plain else {
        panic!("a plain connection was accepted");
    };
    let e = e.to_string();
    assert!(e.contains("no encryption") || e.contains("pg_hba"), "{e}");

    // A CA that did not sign the server's certificate: refused by billsync's side.
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, make_ca("some other CA").0).unwrap();
    let wrong = sqlx::PgConnection::connect(&with(&[
        ("sslmode", "verify-full"),
        ("sslrootcert", other_ca.to_str().unwrap()),
    ]))
    .await;
    let Err(e) = wrong else {
        panic!("a server whose certificate the CA did not sign was accepted");
    };
    let e = e.to_string();
    assert!(
        e.contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );

    // billsync's own store opens and migrates over it.
    let db = TestDb::new(Backend::PostgresTls).await;
    let store = db.store().await;
    store.ping().await.expect("the store answers over TLS");
}
