//! Property tests over HTTP: arbitrary bytes as bodies and headers never panic the server
//! and never store anything.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::helpers::*;

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "t=[0-9]{0,12},v1=[0-9a-f]{0,70}(,v1=[0-9a-zA-Z]{0,64})?".prop_map(String::into_bytes),
        "[ -~]{0,120}".prop_map(String::into_bytes),
    ]
}

#[test]
fn arbitrary_bytes_never_panic_the_server_and_never_store() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, conn) = rt.block_on(async {
        let app = spawn_app(Backend::Sqlite).await;
        let conn = app.stripe_connection().await;
        (app, conn)
    });
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..4096),
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("stripe-signature"),
                    Just("content-type"),
                    Just("x-anything")
                ],
                header_value(),
            ),
            0..4,
        ),
        any::<bool>(),
        prop_oneof![Just(None), "[a-zA-Z0-9_%.-]{1,40}".prop_map(Some)],
    );
    runner
        .run(&strategy, |(body, headers, sign_it, other_conn)| {
            rt.block_on(async {
                let conn_id = other_conn.clone().unwrap_or_else(|| conn.id.clone());
                let mut req = app
                    .client
                    .post(app.url(&format!("/webhooks/stripe/{conn_id}")))
                    .body(body.clone());
                for (name, value) in &headers {
                    if sign_it && *name == "stripe-signature" {
                        continue; // one signature header: the valid one below
                    }
                    if let Ok(v) = reqwest::header::HeaderValue::from_bytes(value) {
                        req = req.header(*name, v);
                    }
                }
                if sign_it {
                    req = req.header(
                        "stripe-signature",
                        billsync::providers::stripe::sign(&conn.secret, now_secs(), &body),
                    );
                }
                let r = req.send().await.expect("the server answers");
                let status = r.status().as_u16();
                let expected: &[u16] = match (other_conn.is_some(), sign_it) {
                    (true, _) => &[404],
                    (false, true) => &[400],
                    (false, false) => &[400],
                };
                prop_assert!(expected.contains(&status), "status {status}");
                let json: serde_json::Value = r.json().await.expect("a JSON error body");
                let code = json["error"]["code"].as_str().unwrap_or("").to_owned();
                if other_conn.is_none() {
                    let want = if sign_it {
                        "malformed_payload"
                    } else {
                        "invalid_signature"
                    };
                    prop_assert_eq!(code, want);
                }
                Ok(())
            })
        })
        .unwrap();
    rt.block_on(async {
        assert_eq!(
            app.raw_event_count(&conn.id).await,
            0,
            "arbitrary bytes were stored"
        );
        assert_eq!(app.db.count("SELECT COUNT(*) FROM raw_events").await, 0);
        let r = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "the server survived");
        app.stop().await;
    });
}
