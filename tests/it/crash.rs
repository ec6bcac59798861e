//! Crash safety with a real process: kill -9 the server while clients post signed events,
//! restart it, and check that every acknowledged event is stored and applied exactly once.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::both_backends;
use crate::helpers::*;

both_backends!(kill_nine_loses_no_acknowledged_event_and_applies_each_once);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub async fn start_server(db: &TestDb, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_billsync"))
        .arg("serve")
        .env("BILLSYNC_LISTEN", format!("127.0.0.1:{port}"))
        .env("BILLSYNC_DATABASE_URL", &db.url)
        .env("BILLSYNC_ADMIN_TOKEN", TOKEN)
        .env("BILLSYNC_PROVIDER_SYNC", "false")
        .env("BILLSYNC_DATA_DIR", db.dir.path().join("data"))
        .env("BILLSYNC_LOG", "warn")
        // The real environment path: the simulator's certificate is trusted through it.
        .env("SSL_CERT_FILE", &test_ca().ca_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn billsync serve");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status() == 200 {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("billsync serve did not become ready");
}

async fn kill_nine_loses_no_acknowledged_event_and_applies_each_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&db, port).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let secret = "whsec_crash_test_secret";
    let created: Value = client
        .post(format!("{base}/admin/v1/connections"))
        .bearer_auth(TOKEN)
        .json(
            &json!({"merchant_id": "m_crash", "provider": "stripe", "account_id": "a",
                      "webhook_secrets": [secret], "api_key": "sk"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conn_id = created["connection_id"].as_str().unwrap().to_owned();
    let url = format!("{base}/webhooks/stripe/{conn_id}");

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for task in 0..8 {
        let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
        clients.push(tokio::spawn(async move {
            for n in 0.. {
                let key = format!("{task}_{n}");
                let body = stripe_event(
                    &format!("evt_{key}"),
                    "customer.created",
                    now_secs(),
                    customer(&format!("cus_{key}"), "k@example.com"),
                );
                let sig = billsync::providers::stripe::sign(secret, now_secs(), body.as_bytes());
                match client
                    .post(&url)
                    .header("Stripe-Signature", sig)
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(format!("evt_{key}")),
                    Ok(r) => panic!("unexpected answer {}", r.status()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 150 {
        assert!(Instant::now() < deadline, "clients made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.start_kill().expect("SIGKILL"); // tokio's Child::start_kill sends SIGKILL on unix
    server.wait().await.unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();

    let mut server = start_server(&db, port).await;
    let store = db.store().await;
    let stored: std::collections::HashSet<String> = store
        .raw_event_ids(&conn_id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|e| !stored.contains(*e)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");

    let deadline = Instant::now() + Duration::from_secs(60);
    while store.inbox_depth().await.unwrap().pending > 0 {
        assert!(
            Instant::now() < deadline,
            "inbox did not drain after restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Applied exactly once: one object, one version and one change per stored event.
    let n = stored.len() as i64;
    assert!(n >= acked.len() as i64);
    assert_eq!(db.count("SELECT COUNT(*) FROM objects").await, n);
    assert_eq!(db.count("SELECT COUNT(*) FROM object_versions").await, n);
    assert_eq!(db.count("SELECT COUNT(*) FROM changes").await, n);
    assert_eq!(db.count("SELECT COUNT(DISTINCT seq) FROM changes").await, n);
    assert_eq!(db.count("SELECT MAX(seq) FROM changes").await, n);

    // Redelivering what was acknowledged stores nothing new.
    for id in acked.iter().take(20) {
        let key = id.trim_start_matches("evt_");
        let body = stripe_event(
            id,
            "customer.created",
            now_secs(),
            customer(&format!("cus_{key}"), "k@example.com"),
        );
        let sig = billsync::providers::stripe::sign(secret, now_secs(), body.as_bytes());
        let r: Value = client
            .post(&url)
            .header("Stripe-Signature", sig)
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["duplicate"], true);
    }
    assert_eq!(
        store.raw_event_ids(&conn_id).await.unwrap().len(),
        stored.len()
    );
    server.start_kill().unwrap();
    let _ = server.wait().await;
}
