//! The HTTP edges over real sockets (issue 20): every error answer is the error JSON of docs/api.md,
//! including those made before a handler runs (body limits, bad percent-encoding, bad
//! methods, oversized or malformed heads), and a body sent slower than the body timeout is
//! cut off with a `408`.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::rawhttp::{exchange, read_response};

const WITHIN: Duration = Duration::from_secs(10);

fn get(path: &str, auth: bool) -> Vec<u8> {
    let auth = if auth {
        format!("authorization: Bearer {TOKEN}\r\n")
    } else {
        String::new()
    };
    format!("GET {path} HTTP/1.1\r\nhost: t\r\n{auth}connection: close\r\n\r\n").into_bytes()
}

/// Sends `request` and checks the answer is `status` with the error shape of docs/api.md and does
/// not contain `never` (a secret or a signature that was in the request).
async fn expect_error(app: &TestApp, what: &str, request: &[u8], status: u16, never: &[&str]) {
    let r = exchange(app.addr, request, WITHIN)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(r.status, status, "{what}: {r:?}");
    if let Err(e) = r.contract_error() {
        panic!("{what}: {e}");
    }
    let body = String::from_utf8_lossy(&r.body);
    for secret in never {
        assert!(
            !body.contains(secret),
            "{what}: the answer echoes {secret}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_contract_json_over_real_http() {
    let app = spawn_app(Backend::Sqlite).await;
    let secret = "sk_live_DoNotEchoThisKey0123";

    // Admin body over its 64 KiB limit (axum's length limit answers text by itself).
    let body = format!(
        r#"{{"merchant_id":"m_1","api_key":"{secret}","pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let request = format!(
        "POST /admin/v1/connections HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    expect_error(
        &app,
        "admin body over the limit",
        request.as_bytes(),
        413,
        &[secret],
    )
    .await;

    // Invalid percent-encoding (not UTF-8 once decoded) in read and admin paths.
    for path in [
        "/v1/merchants/%FF%FE/customers",
        "/v1/merchants/m_1/customers/%C3%28",
        "/v1/merchants/m_1/invoices/in_1%FF/versions",
        "/admin/v1/connections/%FFconn",
    ] {
        expect_error(&app, path, &get(path, true), 400, &[]).await;
    }
    let path = format!("/admin/v1/connections/{secret}%FF/pause");
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {TOKEN}\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    expect_error(
        &app,
        "bad percent-encoding in a POST path",
        request.as_bytes(),
        400,
        &[secret],
    )
    .await;

    // Wrong method, unknown route, missing token.
    let request = b"DELETE /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n";
    expect_error(&app, "method not allowed", request, 405, &[]).await;
    let request = b"PUT /v1/merchants/m_1/customers HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    expect_error(&app, "method not allowed (authed route)", request, 405, &[]).await;
    expect_error(
        &app,
        "unknown route",
        &get("/no/such/route", false),
        404,
        &[],
    )
    .await;
    expect_error(
        &app,
        "no token",
        &get("/v1/merchants/m_1/customers", false),
        401,
        &[],
    )
    .await;

    // Oversized heads: one huge header, too many headers (hyper answers these itself).
    let request = format!(
        "GET /healthz HTTP/1.1\r\nhost: t\r\nx-big: {}\r\nx-signature: {secret}\r\nconnection: close\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    expect_error(&app, "one huge header", request.as_bytes(), 431, &[secret]).await;
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\nhost: t\r\n{many}connection: close\r\n\r\n");
    expect_error(&app, "too many headers", request.as_bytes(), 431, &[]).await;

    // Heads hyper cannot parse at all.
    let request = b"G\x01T /healthz HTTP/1.1\r\nhost: t\r\n\r\n";
    expect_error(&app, "bad method token", request, 400, &[]).await;
    let request = format!("GET /healthz HTTP/1.1\r\nhost: t\r\nx-bad\x7f: {secret}\r\n\r\n");
    expect_error(&app, "bad header name", request.as_bytes(), 400, &[secret]).await;
    let request = b"GET /a b c HTTP/1.1\r\nhost: t\r\n\r\n";
    expect_error(&app, "spaces in the target", request, 400, &[]).await;

    // A correctly signed webhook whose body is not an event: the answer quotes none of it.
    let conn = app.stripe_connection().await;
    let payload = format!("\"{secret}\"");
    let sig = billsync::providers::stripe::sign(&conn.secret, now_secs(), payload.as_bytes());
    let request = format!(
        "POST /webhooks/stripe/{} HTTP/1.1\r\nhost: t\r\nstripe-signature: {sig}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{payload}",
        conn.id,
        payload.len()
    );
    expect_error(
        &app,
        "signed non-event",
        request.as_bytes(),
        400,
        &[secret, &sig],
    )
    .await;

    // The server is unharmed: a keep-alive request after all that is answered.
    let r = exchange(app.addr, &get("/healthz", false), WITHIN)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    app.stop().await;
}

/// Sends `head` at once and then a body one byte every `every`, and returns the answer and
/// how long after the head it came.
async fn trickle_body(
    addr: std::net::SocketAddr,
    head: &str,
    every: Duration,
) -> (Result<crate::rawhttp::RawResponse, String>, Duration) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let trickler = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if write.write_all(b"{").await.is_err() {
                return;
            }
        }
    });
    let answer = tokio::time::timeout(Duration::from_secs(8), read_response(&mut read))
        .await
        .unwrap_or_else(|_| Err("no answer within 8 s".into()));
    trickler.abort();
    (answer, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_slower_than_the_body_timeout_is_cut_off_with_408() {
    let db = TestDb::new(Backend::Sqlite).await;
    let app = spawn_app_with(db, |c| c.http_body_timeout_secs = 1).await;
    let conn = app.stripe_connection().await;
    let heads = [
        format!(
            "POST /webhooks/stripe/{} HTTP/1.1\r\nhost: t\r\nstripe-signature: t=1,v1=00\r\n\
             content-type: application/json\r\ncontent-length: 500\r\n\r\n{{",
            conn.id
        ),
        format!(
            "POST /admin/v1/connections/{}/backfill HTTP/1.1\r\nhost: t\r\n\
             authorization: Bearer {TOKEN}\r\ncontent-length: 500\r\n\r\n{{",
            conn.id
        ),
    ];
    for head in &heads {
        // A byte every 200 ms: 500 bytes would take 100 s; the body timeout is 1 s.
        let (answer, after) = trickle_body(app.addr, head, Duration::from_millis(200)).await;
        let answer = answer.unwrap_or_else(|e| panic!("a trickled body was never cut off: {e}"));
        assert_eq!(answer.status, 408, "{answer:?}");
        assert_eq!(answer.contract_error().unwrap(), "request_timeout");
        assert_eq!(answer.header("connection"), Some("close"));
        assert!(
            after < Duration::from_secs(4),
            "cut off only after {after:?} (timeout 1 s)"
        );
    }
    // A body that arrives within the timeout, even in pieces, is served as before.
    let body = stripe_event(
        "evt_slow_ok",
        "customer.created",
        now_secs(),
        customer("cus_s", "s@example.com"),
    );
    let sig = billsync::providers::stripe::sign(&conn.secret, now_secs(), body.as_bytes());
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /webhooks/stripe/{} HTTP/1.1\r\nhost: t\r\nstripe-signature: {sig}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        conn.id,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (a, b) = body.as_bytes().split_at(body.len() / 2);
    stream.write_all(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(b).await.unwrap();
    let r = tokio::time::timeout(WITHIN, read_response(&mut stream))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    app.stop().await;
}

/// Waits until the server closes `stream` (EOF or reset), at most `within`; how long it took.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connections_get_the_idle_timeout_and_heads_the_header_timeout() {
    let db = TestDb::new(Backend::Sqlite).await;
    let app = spawn_app_with(db, |c| {
        c.http_header_timeout_secs = 1;
        c.http_idle_timeout_secs = 3;
    })
    .await;

    // Served once, then idle: closed after the idle timeout, not the shorter header one.
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let r = tokio::time::timeout(WITHIN, read_response(&mut kept))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);
    let idle = closed_within(&mut kept, Duration::from_secs(8))
        .await
        .expect("an idle kept-alive connection was never closed");
    assert!(
        idle >= Duration::from_millis(2500) && idle < Duration::from_secs(5),
        "closed after {idle:?} idle (idle timeout 3 s)"
    );

    // A head trickled a byte every 200 ms: closed after the header timeout, however busy.
    let mut trickler = TcpStream::connect(app.addr).await.unwrap();
    trickler
        .write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
        .await
        .unwrap();
    let (mut read, mut write) = trickler.into_split();
    let trickle = tokio::spawn(async move {
        while write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let end = tokio::time::timeout(Duration::from_secs(8), async {
        use tokio::io::AsyncReadExt;
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    trickle.abort();
    assert!(end.is_ok(), "a trickled head was never cut off");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "a trickled head was cut off only after {:?} (header timeout 1 s)",
        started.elapsed()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_shutdown_is_finished_before_run_returns() {
    let app = spawn_app(Backend::Sqlite).await;
    let conn = app.stripe_connection().await;
    let addr = app.addr;
    let body = stripe_event(
        "evt_inflight",
        "customer.created",
        now_secs(),
        customer("cus_if", "i@example.com"),
    );
    let sig = billsync::providers::stripe::sign(&conn.secret, now_secs(), body.as_bytes());
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /webhooks/stripe/{} HTTP/1.1\r\nhost: t\r\nstripe-signature: {sig}\r\n\
         content-length: {}\r\n\r\n",
        conn.id,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (a, b) = body.as_bytes().split_at(body.len() / 2);
    stream.write_all(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Shutdown begins while the body is half sent.
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "run returned with a request in flight"
    );
    stream.write_all(b).await.unwrap();
    let r = tokio::time::timeout(WITHIN, read_response(&mut stream))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "a draining server closes after the answer"
    );
    let db = tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("run returned after the request finished")
        .unwrap();
    // New connections are refused once it stopped.
    assert!(TcpStream::connect(addr).await.is_err());
    assert_eq!(db.count("SELECT COUNT(*) FROM raw_events").await, 1);
}
