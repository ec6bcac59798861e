//! Slow-client attacks on the real binary (issue 20): under a 1,024 open-file limit (so a cap
//! of 768 connections), 1,100 idle, head-trickling and body-trickling sockets are all closed
//! within the configured timeouts, the cap is reached and makes room by eviction, and
//! `/healthz` answers every poll with `200` throughout.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::crash::free_port;
use crate::helpers::*;

/// The server's timeouts in this test (seconds): short, so that the test is quick.
const HEADER_TIMEOUT: u64 = 2;
const BODY_TIMEOUT: u64 = 3;
const IDLE_TIMEOUT: u64 = 2;
const TRICKLE_EVERY: Duration = Duration::from_millis(500);
/// Every attacking socket must be closed by the server within this after it connected:
/// the longest timeout, one trickle interval and generous scheduling slack.
const CLOSED_WITHIN: Duration = Duration::from_secs(BODY_TIMEOUT + 7);

/// Raises this process's soft open-file limit to its hard limit, so it can hold the sockets.
fn raise_own_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write only the struct passed by reference.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Idle,
    HeaderTrickler,
    BodyTrickler,
}

/// What happened to one attacking socket: how long until the server closed it, and the
/// status of an answer it got first, if any.
#[derive(Debug)]
struct Outcome {
    kind: Kind,
    closed_after: Option<Duration>,
    status: Option<u16>,
}

async fn attacker(addr: SocketAddr, kind: Kind, webhook: Arc<String>) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        kind,
        closed_after: None,
        status: None,
    };
    let Ok(stream) = TcpStream::connect(addr).await else {
        // Refused outright also means the server is not holding it.
        outcome.closed_after = Some(started.elapsed());
        return outcome;
    };
    let (mut read, mut write) = stream.into_split();
    let opening = match kind {
        Kind::Idle => String::new(),
        Kind::HeaderTrickler => "GET /healthz HTTP/1.1\r\nhost: t\r\nx-slow: ".into(),
        Kind::BodyTrickler => format!(
            "POST {webhook} HTTP/1.1\r\nhost: t\r\nstripe-signature: t=1,v1=00\r\n\
             content-length: 1000\r\n\r\n{{"
        ),
    };
    // Writes until the server stops taking bytes, then waits for the read side to see it.
    let trickle = async move {
        if opening.is_empty() || write.write_all(opening.as_bytes()).await.is_ok() {
            loop {
                tokio::time::sleep(TRICKLE_EVERY).await;
                if kind != Kind::Idle && write.write_all(b"a").await.is_err() {
                    break;
                }
            }
        }
        std::future::pending::<()>().await
    };
    let watch = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::select! {
        got = tokio::time::timeout(CLOSED_WITHIN, watch) => {
            if let Ok(got) = got {
                outcome.closed_after = Some(started.elapsed());
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut response = httparse::Response::new(&mut headers);
                if response.parse(&got).is_ok() {
                    outcome.status = response.code;
                }
            }
        }
        _ = trickle => {}
    }
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_exhaust_sockets_and_healthz_keeps_answering() {
    let outcomes = attack(&[
        (Kind::Idle, 500),
        (Kind::HeaderTrickler, 500),
        (Kind::BodyTrickler, 100),
    ])
    .await;
    // Idle and head-trickling sockets closed well before the header timeout were evicted to
    // make room at the cap: it was reached.
    let evicted = outcomes
        .iter()
        .filter(|o| o.kind != Kind::BodyTrickler)
        .filter(|o| {
            o.closed_after
                .is_some_and(|d| d < Duration::from_millis(HEADER_TIMEOUT * 1000 - 300))
        })
        .count();
    assert!(
        evicted >= 200,
        "only {evicted} sockets closed before the header timeout: was the cap reached?"
    );
    let answered = outcomes.iter().filter(|o| o.status == Some(408)).count();
    assert!(
        answered >= 90,
        "only {answered} of 100 body tricklers were answered 408"
    );
}

/// More bodies trickled than the cap holds: idle sockets are evicted first, then the oldest
/// body tricklers, and the health check is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_tricklers_beyond_the_cap_are_evicted_and_healthz_keeps_answering() {
    let outcomes = attack(&[(Kind::Idle, 200), (Kind::BodyTrickler, 900)]).await;
    let early = |o: &&Outcome| {
        o.closed_after
            .is_some_and(|d| d < Duration::from_millis(BODY_TIMEOUT * 1000 - 300))
    };
    let bodies_evicted = outcomes
        .iter()
        .filter(|o| o.kind == Kind::BodyTrickler && o.status.is_none())
        .filter(early)
        .count();
    assert!(
        bodies_evicted >= 50,
        "only {bodies_evicted} body tricklers were evicted"
    );
}

/// Runs the attack, `(kind, how many)` sockets interleaved, against a fresh server under a
/// 1,024 open-file limit, polling `/healthz` throughout, and checks what every scenario must
/// hold; returns what happened to each socket.
async fn attack(mix: &[(Kind, usize)]) -> Vec<Outcome> {
    let own_limit = raise_own_file_limit();
    assert!(
        own_limit > 2_000,
        "this test needs a hard open-file limit over 2,000"
    );
    let db = TestDb::new(Backend::Sqlite).await;
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_billsync"));
    command
        .arg("serve")
        .env("BILLSYNC_LISTEN", addr.to_string())
        .env("BILLSYNC_DATABASE_URL", &db.url)
        .env("BILLSYNC_ADMIN_TOKEN", TOKEN)
        .env("BILLSYNC_PROVIDER_SYNC", "false")
        .env("BILLSYNC_DATA_DIR", db.dir.path().join("data"))
        .env("BILLSYNC_LOG", "warn")
        .env(
            "BILLSYNC_HTTP_HEADER_TIMEOUT_SECS",
            HEADER_TIMEOUT.to_string(),
        )
        .env("BILLSYNC_HTTP_BODY_TIMEOUT_SECS", BODY_TIMEOUT.to_string())
        .env("BILLSYNC_HTTP_IDLE_TIMEOUT_SECS", IDLE_TIMEOUT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit,
    // which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut server = command.spawn().expect("spawn billsync serve");

    // A fresh connection per poll, as a load balancer's health check makes.
    let poller = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(poller.get(format!("http://{addr}/readyz")).send().await, Ok(r) if r.status() == 200)
    {
        assert!(
            Instant::now() < deadline,
            "billsync serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created: Value = poller
        .post(format!("http://{addr}/admin/v1/connections"))
        .bearer_auth(TOKEN)
        .json(
            &json!({"merchant_id": "m_slow", "provider": "stripe", "account_id": "a",
                      "webhook_secrets": ["whsec_slow"], "api_key": "sk_slow"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let webhook = Arc::new(format!(
        "/webhooks/stripe/{}",
        created["connection_id"].as_str().unwrap()
    ));

    // /healthz polled every 50 ms for the whole attack; every answer must be a 200 in < 5 s.
    let polling = Arc::new(AtomicBool::new(true));
    let polls = Arc::new(Mutex::new(Vec::<(Result<u16, String>, Duration)>::new()));
    let health = {
        let (polling, polls, poller) = (polling.clone(), polls.clone(), poller.clone());
        tokio::spawn(async move {
            while polling.load(Ordering::Relaxed) {
                let started = Instant::now();
                let result = poller
                    .get(format!("http://{addr}/healthz"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .map_err(|e| format!("{e:?}"));
                polls.lock().unwrap().push((result, started.elapsed()));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let attack_started = Instant::now();
    // Interleaved, so each kind is spread over the whole burst.
    let mut kinds: Vec<(usize, Kind)> = mix
        .iter()
        .flat_map(|&(kind, n)| (0..n).map(move |j| (j * 1_000_000 / n, kind)))
        .collect();
    kinds.sort_by_key(|(at, _)| *at);
    let mut attackers = Vec::new();
    for (i, &(_, kind)) in kinds.iter().enumerate() {
        attackers.push(tokio::spawn(attacker(addr, kind, webhook.clone())));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut outcomes = Vec::new();
    for a in attackers {
        outcomes.push(a.await.unwrap());
    }
    let attack_took = attack_started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    polling.store(false, Ordering::Relaxed);
    health.await.unwrap();

    let still_open: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.closed_after.is_none())
        .collect();
    let polls = std::mem::take(&mut *polls.lock().unwrap());
    let mut latencies: Vec<Duration> = polls.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "slow-client attack: {} sockets over {attack_took:?}; /healthz polled {} times: \
         p50 {:?}, p99 {:?}, max {:?}; body tricklers answered 408: {}",
        outcomes.len(),
        polls.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        outcomes
            .iter()
            .filter(|o| o.kind == Kind::BodyTrickler && o.status == Some(408))
            .count(),
    );
    let failed: Vec<_> = polls
        .iter()
        .filter(|(r, d)| r.as_ref().ok() != Some(&200) || *d > Duration::from_secs(5))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} /healthz polls failed or took over 5 s: {:?}",
        failed.len(),
        polls.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(polls.len() >= 20, "too few polls: {}", polls.len());
    assert!(
        still_open.is_empty(),
        "{} sockets were still open {CLOSED_WITHIN:?} after connecting, e.g. {:?}",
        still_open.len(),
        &still_open[..still_open.len().min(5)]
    );
    for o in outcomes.iter().filter(|o| o.kind == Kind::BodyTrickler) {
        assert!(
            matches!(o.status, None | Some(408)),
            "a body trickler was answered {:?}",
            o.status
        );
    }
    // And afterwards the server serves as before.
    let r = poller
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.start_kill().unwrap();
    let _ = server.wait().await;
    outcomes
}
