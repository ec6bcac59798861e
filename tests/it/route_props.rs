//! Property test over every route (issue 20): arbitrary bytes in the path (percent-encoding
//! garbage included), the query, the headers and the body, sent raw over TCP, with the admin
//! token in half of the cases so the authenticated handlers are reached. The server never
//! answers a 5xx other than 503, every error is the error JSON of docs/api.md and echoes none of the
//! request's secrets, signature or payload, and `/healthz` still answers afterwards.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

use crate::helpers::*;
use crate::rawhttp::exchange;

/// One path segment: a plausible id, percent-encoding garbage, or any bytes at all.
fn segment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "[a-zA-Z0-9_.:-]{0,24}".prop_map(String::into_bytes),
        3 => "([a-z0-9]{0,3}%[0-9A-Fa-f]{0,2}[G-Zg-z%]{0,1}){1,4}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..24),
        1 => prop_oneof![Just(b"..".to_vec()), Just(b"%2F".to_vec()), Just(Vec::new())],
    ]
}

/// A segment that is the known-good value `good` half of the time.
fn maybe(good: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::sample::select(good).prop_map(|s| s.as_bytes().to_vec()),
        segment(),
    ]
}

fn query() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        "(limit|after|cursor|as_of|updated_after|status|merchant_id)=[!-~]{0,24}"
            .prop_map(|s| Some(s.into_bytes())),
        "[!-~]{0,60}".prop_map(|s| Some(s.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..1024),
        1 => "\\{\"since\":\"[ -~]{0,30}\"\\}".prop_map(String::into_bytes),
        1 => "\\{\"object_types\":\\[\"[a-z_]{0,12}\"\\],\"since\":\"2024-0[1-9]-01T00:00:00Z\"\\}"
            .prop_map(String::into_bytes),
        1 => "\\{\"from\":\"[ -~]{0,25}\",\"to\":\"2024-01-01T00:00:00Z\"\\}".prop_map(String::into_bytes),
        1 => "\\{\"[a-z_]{1,16}\":[ -~]{0,40}\\}".prop_map(String::into_bytes),
    ]
}

fn header() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let name = prop_oneof![
        proptest::sample::select(
            &[
                "stripe-signature",
                "content-type",
                "accept",
                "x-anything",
                "paddle-signature",
                "x-chargebee-webhook-secret",
                "expect",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        "[!-~]{1,12}".prop_map(String::into_bytes),
    ];
    // Any bytes but CR and LF, which would end the header (the head stays one request).
    let value = proptest::collection::vec(any::<u8>(), 0..120).prop_map(|v| {
        v.into_iter()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect()
    });
    (name, value)
}

const METHODS: &[&str] = &[
    "GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "BREW",
];
const PROVIDERS: &[&str] = &["stripe", "chargebee", "recurly", "paddle", "zuora", "maxio"];
const COLLECTIONS: &[&str] = &[
    "customers",
    "invoices",
    "credit_notes",
    "subscriptions",
    "transactions",
];
const ACTIONS: &[&str] = &["pause", "resume", "backfill", "resync", "replay"];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() >= 8 && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn arbitrary_requests_on_every_route_get_contract_errors_and_never_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, conn_id) = rt.block_on(async {
        let app = spawn_app(Backend::Sqlite).await;
        // A closed local port as the API: a backfill the cases start calls nothing outside.
        let r = app
            .admin_post(
                "/admin/v1/connections",
                &json!({"merchant_id": "m_props", "provider": "stripe", "account_id": "a",
                        "webhook_secrets": ["whsec_props"], "api_key": "sk_props",
                        "api_base_url": "http://127.0.0.1:1"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let body: serde_json::Value = r.json().await.unwrap();
        (app, body["connection_id"].as_str().unwrap().to_owned())
    });
    let conn: &'static str = Box::leak(conn_id.into_boxed_str());
    let conns: &'static [&'static str] = Box::leak(vec![conn].into_boxed_slice());

    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    let strategy = (
        proptest::sample::select(METHODS),
        0..13usize,
        (
            maybe(PROVIDERS),
            maybe(conns),
            maybe(&["m_props"]),
            maybe(COLLECTIONS),
        ),
        (maybe(ACTIONS), segment()),
        query(),
        proptest::collection::vec(header(), 0..4),
        body(),
        any::<bool>(),
    );
    runner
        .run(
            &strategy,
            |(
                method,
                route,
                (provider, conn, merchant, coll),
                (action, seg),
                query,
                headers,
                body,
                auth,
            )| {
                let path: Vec<u8> = match route {
                    0 => [b"/webhooks/".as_ref(), &provider, b"/", &conn].concat(),
                    1 => b"/admin/v1/connections".to_vec(),
                    2 => [b"/admin/v1/connections/".as_ref(), &conn].concat(),
                    3 => [b"/admin/v1/connections/".as_ref(), &conn, b"/", &action].concat(),
                    4 => [b"/v1/merchants/".as_ref(), &merchant, b"/changes"].concat(),
                    5 => [b"/v1/merchants/".as_ref(), &merchant, b"/sync-status"].concat(),
                    6 => [b"/v1/merchants/".as_ref(), &merchant, b"/", &coll].concat(),
                    7 => [
                        b"/v1/merchants/".as_ref(),
                        &merchant,
                        b"/",
                        &coll,
                        b"/",
                        &seg,
                    ]
                    .concat(),
                    8 => [
                        b"/v1/merchants/".as_ref(),
                        &merchant,
                        b"/",
                        &coll,
                        b"/",
                        &seg,
                        b"/versions",
                    ]
                    .concat(),
                    9 => b"/healthz".to_vec(),
                    10 => b"/readyz".to_vec(),
                    11 => b"/metrics".to_vec(),
                    _ => [b"/".as_ref(), &seg, b"/", &action].concat(),
                };
                let mut request = Vec::new();
                request.extend_from_slice(method.as_bytes());
                request.push(b' ');
                request.extend_from_slice(&path);
                if let Some(q) = &query {
                    request.push(b'?');
                    request.extend_from_slice(q);
                }
                request.extend_from_slice(b" HTTP/1.1\r\nhost: t\r\n");
                if auth {
                    request
                        .extend_from_slice(format!("authorization: Bearer {TOKEN}\r\n").as_bytes());
                }
                for (name, value) in &headers {
                    request.extend_from_slice(name);
                    request.extend_from_slice(b": ");
                    request.extend_from_slice(value);
                    request.extend_from_slice(b"\r\n");
                }
                request.extend_from_slice(
                    format!(
                        "content-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                request.extend_from_slice(&body);

                let r = rt
                    .block_on(exchange(app.addr, &request, Duration::from_secs(10)))
                    .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
                let shown =
                    String::from_utf8_lossy(&request[..request.len().min(300)]).into_owned();
                prop_assert!(
                    r.status < 500 || r.status == 503,
                    "{} for {shown}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
                if r.status >= 400 && method != "HEAD" {
                    if let Err(e) = r.contract_error() {
                        return Err(TestCaseError::fail(format!("{e} for {shown}")));
                    }
                    prop_assert!(!contains(&r.body, TOKEN.as_bytes()), "echoes the token");
                    prop_assert!(!contains(&r.body, &body), "echoes the body: {shown}");
                    for (_, value) in &headers {
                        prop_assert!(!contains(&r.body, value), "echoes a header: {shown}");
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    rt.block_on(async {
        let r = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "the server survived");
        app.stop().await;
    });
}
