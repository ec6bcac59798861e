//! Test harness: fresh stores (a temp SQLite file, or a new Postgres database), the app
//! spawned on a random port, typed request helpers that assert status codes, and captured logs.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use billsync::config::Config;
use billsync::store::Store;
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub const TOKEN: &str = "test-admin-token-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// Postgres reached over TLS with `sslmode=verify-full` (`BILLSYNC_TEST_DATABASE_URL_TLS`,
    /// a server that refuses plain connections, started by `scripts/ensure-postgres-tls.sh`).
    PostgresTls,
}

/// Runs an async test body once per backend: `both_backends!(name);` makes
/// `name::sqlite` and `name::postgres` from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

/// The store conformance suite's form of [`both_backends!`]: also once on Postgres over TLS.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_tls() {
                    super::$name($crate::helpers::Backend::PostgresTls).await
                }
            }
        )*
    };
}

/// The Postgres server tests use: `BILLSYNC_TEST_DATABASE_URL`, else the local default.
pub fn postgres_admin_url() -> String {
    std::env::var("BILLSYNC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The TLS-only Postgres server (`sslmode=verify-full`); no fallback: the test command
/// starts one, and a test that cannot reach it fails rather than passing on plain TCP.
pub fn postgres_tls_admin_url() -> String {
    std::env::var("BILLSYNC_TEST_DATABASE_URL_TLS").unwrap_or_else(|_| {
        panic!(
            "BILLSYNC_TEST_DATABASE_URL_TLS is not set: run the tests through scripts/test, \
             which starts a Postgres that accepts only TLS (scripts/ensure-postgres-tls.sh)"
        )
    })
}

/// A fresh, empty database; dropped (Postgres) or deleted (SQLite) with the value.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    /// The database's name and the server's admin URL (Postgres).
    pg_name: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.path().join("billsync.db").display()),
                dir,
                pg_name: None,
            },
            Backend::Postgres | Backend::PostgresTls => {
                let admin = if backend == Backend::PostgresTls {
                    postgres_tls_admin_url()
                } else {
                    postgres_admin_url()
                };
                let name = format!("billsync_t_{}", uuid_like());
                let mut conn = connect_pg(&admin).await;
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("CREATE DATABASE for a test");
                let mut url = url::Url::parse(&admin).expect("BILLSYNC_TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                TestDb {
                    url: url.to_string(),
                    dir,
                    pg_name: Some((name, admin)),
                }
            }
        }
    }

    /// The same Postgres database for another node of a cluster (its own temp dir); the
    /// database is dropped with the original only.
    pub fn sharing(&self) -> TestDb {
        assert!(
            self.pg_name.is_some(),
            "only a Postgres database is shared by nodes"
        );
        TestDb {
            url: self.url.clone(),
            dir: tempfile::tempdir().expect("temp dir"),
            pg_name: None,
        }
    }

    /// Opens and migrates the store on this database.
    pub async fn store(&self) -> Arc<dyn Store> {
        let store = billsync::store::open(&self.url).await.expect("open store");
        store.migrate().await.expect("migrate");
        store
    }

    /// Runs raw SQL against the database, bypassing the store (to test what the store refuses).
    pub async fn exec_raw(&self, sql: &str) -> Result<u64, String> {
        if self.pg_name.is_some() {
            let mut conn = connect_pg(&self.url).await;
            sqlx::Executor::execute(&mut conn, sql)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| e.to_string())
        } else {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("sqlite");
            sqlx::Executor::execute(&mut conn, sql)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| e.to_string())
        }
    }

    /// A count from raw SQL (for assertions on tables the read API does not expose).
    pub async fn count(&self, sql: &str) -> i64 {
        if self.pg_name.is_some() {
            let mut conn = connect_pg(&self.url).await;
            sqlx::query_scalar(sql)
                .fetch_one(&mut conn)
                .await
                .expect("count")
        } else {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("sqlite");
            sqlx::query_scalar(sql)
                .fetch_one(&mut conn)
                .await
                .expect("count")
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((name, admin)) = self.pg_name.take() else {
            return;
        };
        // Best effort, on its own runtime: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::Executor::execute(
                            &mut c,
                            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                        )
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

async fn connect_pg(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    match sqlx::PgConnection::connect(url).await {
        Ok(c) => c,
        Err(e) => panic!(
            "the Postgres half of the suite needs a server: could not connect to {} ({e}); \
             run the tests through scripts/test, which starts one, or set BILLSYNC_TEST_DATABASE_URL",
            billsync::config::redact_url(url)
        ),
    }
}

pub fn uuid_like() -> String {
    use rand::Rng;
    let n: u128 = rand::thread_rng().gen();
    format!("{n:032x}")
}

/// Log lines the app wrote during this test binary's run (all tests share one subscriber).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

struct BufWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_log_capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let buf = log_buffer().clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,sqlx=warn,hyper=info,h2=info")
            .with_ansi(false)
            .with_writer(move || BufWriter(buf.clone()))
            .try_init();
    });
}

/// A running app and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// A certificate authority made for this test binary, and a server certificate it signed
/// for `127.0.0.1` and `localhost`: the simulator serves HTTPS with it, and the apps the
/// tests spawn trust the CA through `ssl_cert_file` (what `SSL_CERT_FILE` sets).
pub struct TestCa {
    /// The CA's certificate, PEM, in a file.
    pub ca_file: std::path::PathBuf,
    pub server: billsync_sim::TlsIdentity,
}

pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let (ca_pem, server) = make_ca("billsync test CA");
        let dir = std::env::temp_dir().join(format!("billsync-test-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir for the test CA");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("write the test CA");
        TestCa { ca_file, server }
    })
}

/// A CA named `name` (its PEM) and a server identity it signed for 127.0.0.1 and localhost.
pub fn make_ca(name: &str) -> (String, billsync_sim::TlsIdentity) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    leaf.distinguished_name
        .push(DnType::CommonName, "billsync sim");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().expect("server key");
    let leaf_cert = leaf
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("server certificate");
    (
        ca_cert.pem(),
        billsync_sim::TlsIdentity {
            cert_chain_pem: leaf_cert.pem(),
            key_pem: leaf_key.serialize_pem(),
        },
    )
}

/// An HTTPS client that trusts the test CA, as the apps the tests spawn do.
pub fn trusting_client() -> reqwest::Client {
    billsync::outbound::client(&billsync::outbound::OutboundConfig {
        extra_ca_file: Some(test_ca().ca_file.clone()),
        ..billsync::outbound::OutboundConfig::default()
    })
    .expect("a client trusting the test CA")
}

pub fn test_config(db: &TestDb) -> Config {
    Config {
        ssl_cert_file: Some(test_ca().ca_file.clone()),
        listen: "127.0.0.1:0".parse().expect("literal address"),
        database_url: db.url.clone(),
        admin_token: Some(TOKEN.into()),
        data_dir: db.dir.path().join("data"),
        log: "debug".into(),
        // No provider API in these tests (no simulator): webhook snapshots stay pending.
        provider_sync: false,
        ..Config::default()
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let db = TestDb::new(backend).await;
    spawn_app_on(db).await
}

/// A node that reads the simulator's API (provider sync on): confirmations after 1 s,
/// provider requests time out after 2 s.
pub async fn synced_app(backend: Backend) -> TestApp {
    spawn_app_with(TestDb::new(backend).await, |c| {
        c.provider_sync = true;
        c.confirm_after_secs = 1;
        c.provider_timeout_secs = 2;
    })
    .await
}

pub async fn spawn_app_on(db: TestDb) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// [`spawn_app_on`] with the test configuration adjusted by `adjust`.
pub async fn spawn_app_with(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestApp {
    init_log_capture();
    let mut config = test_config(&db);
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        billsync::run(config, listener, async {
            let _ = rx.await;
        })
        .await
        .expect("app runs");
    });
    let client = reqwest::Client::new();
    // Wait until it serves (it migrates first).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("http://{addr}/readyz")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "app did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = db.store().await;
    TestApp {
        addr,
        client,
        store,
        db,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// A registered connection.
#[derive(Debug, Clone)]
pub struct Conn {
    pub id: String,
    pub merchant_id: String,
    pub secret: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the app gracefully and waits for it.
    pub async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
        }
        self.db
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str, expected: u16) -> Value {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, expected, "GET {path} answered {status}: {body}");
        body
    }

    /// Registers a Stripe connection for a new merchant with one fresh secret.
    pub async fn stripe_connection(&self) -> Conn {
        let merchant_id = format!("m_{}", &uuid_like()[..12]);
        let secret = format!("whsec_{}", uuid_like());
        self.stripe_connection_with(&merchant_id, vec![secret.clone()])
            .await
    }

    pub async fn stripe_connection_with(&self, merchant_id: &str, secrets: Vec<String>) -> Conn {
        let r = self
            .admin_post(
                "/admin/v1/connections",
                &json!({
                    "merchant_id": merchant_id,
                    "provider": "stripe",
                    "account_id": "acct_test",
                    "webhook_secrets": secrets,
                    "api_key": "sk_test_123",
                }),
            )
            .await;
        assert_eq!(r.status().as_u16(), 201);
        let body: Value = r.json().await.expect("json");
        Conn {
            id: body["connection_id"]
                .as_str()
                .expect("connection_id")
                .to_owned(),
            merchant_id: merchant_id.to_owned(),
            secret: secrets[0].clone(),
        }
    }

    /// Posts a raw webhook with the given `Stripe-Signature` (none when `None`).
    pub async fn post_webhook(
        &self,
        conn_id: &str,
        body: &str,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(&format!("/webhooks/stripe/{conn_id}")))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(sig) = signature {
            req = req.header("Stripe-Signature", sig);
        }
        req.send().await.expect("request")
    }

    /// Signs with the connection's secret at the current time and expects `expected`.
    pub async fn send(&self, conn: &Conn, body: &str, expected: u16) -> Value {
        let sig = billsync::providers::stripe::sign(&conn.secret, now_secs(), body.as_bytes());
        let r = self.post_webhook(&conn.id, body, Some(&sig)).await;
        let status = r.status().as_u16();
        let json: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, expected, "webhook answered {status}: {json}");
        json
    }

    /// Waits until every stored event has been applied (the inbox is empty).
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let depth = self.store.inbox_depth().await.expect("inbox depth");
            if depth.pending == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "inbox did not drain: {depth:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The object through the read API (`None` on 404).
    pub async fn object(&self, merchant: &str, collection: &str, id: &str) -> Option<Value> {
        let r = self
            .client
            .get(self.url(&format!("/v1/merchants/{merchant}/{collection}/{id}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        match r.status().as_u16() {
            200 => Some(r.json().await.expect("json")),
            404 => None,
            s => panic!("read API answered {s}"),
        }
    }

    pub async fn versions(&self, merchant: &str, collection: &str, id: &str) -> Vec<Value> {
        let body = self
            .get_json(
                &format!("/v1/merchants/{merchant}/{collection}/{id}/versions"),
                200,
            )
            .await;
        body["data"].as_array().cloned().unwrap_or_default()
    }

    pub async fn raw_event_count(&self, conn_id: &str) -> usize {
        self.store
            .raw_event_ids(conn_id)
            .await
            .expect("raw events")
            .len()
    }

    /// `series` on this node's `/metrics` (see [`metric_in`]).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        metric_in(&text, series)
    }
}

/// The value of `series` in a Prometheus text exposition: a bare name sums every series of the
/// family over its labels, `name{labels}` is that one series. `None` when nothing matches.
pub fn metric_in(text: &str, series: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(series) else {
            continue;
        };
        let labelled = !series.contains('{') && rest.starts_with('{');
        if !rest.starts_with(' ') && !labelled {
            continue;
        }
        if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A Stripe event body around `object`.
pub fn stripe_event(event_id: &str, event_type: &str, created: i64, object: Value) -> String {
    json!({
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "type": event_type,
        "livemode": false,
        "pending_webhooks": 1,
        "data": { "object": object },
    })
    .to_string()
}

pub fn customer(id: &str, email: &str) -> Value {
    json!({
        "id": id, "object": "customer", "email": email, "name": "Test Customer",
        "address": {"line1": "1 Main St", "city": "Berlin", "state": null, "postal_code": "10115", "country": "DE"},
        "tax_exempt": "none", "created": 1_700_000_000
    })
}

pub fn invoice(id: &str, status: &str, amount_paid: i64) -> Value {
    json!({
        "id": id, "object": "invoice", "customer": "cus_1", "status": status, "currency": "usd",
        "subtotal": 1000, "total": 1000, "amount_paid": amount_paid, "amount_due": 1000,
        "total_taxes": [], "period_start": 1_700_000_000, "period_end": 1_702_592_000,
        "lines": {"object": "list", "data": [{"id": "il_1", "amount": 1000, "quantity": 1,
            "description": "Plan", "period": {"start": 1_700_000_000, "end": 1_702_592_000}}]}
    })
}

/// The test Python (`BILLSYNC_TEST_PYTHON`, made by scripts/test), checked to import `module`
/// (a provider's official SDK or a PyPI tool the test runs).
pub fn python_with(module: &str) -> String {
    let python = std::env::var("BILLSYNC_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("this test runs `{module}` from PyPI: run scripts/test, or set BILLSYNC_TEST_PYTHON to a python that has it")
    });
    let check = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .expect("run python");
    assert!(
        check.status.success(),
        "{python} cannot import `{module}`: install it as scripts/test does"
    );
    python
}
