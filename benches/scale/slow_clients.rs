//! Scenario 5: `/healthz` latency while slow clients attack the real binary under a 1,024
//! open-file limit (the README's "Connections that misbehave"), against the same polls with
//! no attack, measured in the same run. The attack: 1,100 sockets, half idle and half
//! trickling a request head a byte every 500 ms, held open as long as the server keeps them.
//! Correctness (every socket closed in time, every poll a 200) is asserted by
//! `tests/it/slow_clients.rs`; this measures.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TOKEN;

const SOCKETS: usize = 1_100;
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Latencies of `/healthz` polls (a fresh connection each, as a load balancer's check).
pub struct Figures {
    pub quiet: Vec<Duration>,
    pub attacked: Vec<Duration>,
    pub attacked_failed: usize,
    pub closed_by_server: usize,
    /// Of those not seen closed: idle sockets whose connect waited for a SYN retransmission
    /// (the listen queue was full), which the server's kernel may never have handed over.
    pub late_idle: usize,
    /// Client connections the server still held after the attack (its own gauge).
    pub held_after: f64,
}

pub async fn run(dir: &std::path::Path) -> Figures {
    raise_own_file_limit();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_billsync"));
    command
        .arg("serve")
        .env("BILLSYNC_LISTEN", &addr)
        .env(
            "BILLSYNC_DATABASE_URL",
            format!("sqlite://{}", dir.join("slow.db").display()),
        )
        .env("BILLSYNC_ADMIN_TOKEN", TOKEN)
        .env("BILLSYNC_PROVIDER_SYNC", "false")
        .env("BILLSYNC_DATA_DIR", dir.join("slow-data"))
        .env("BILLSYNC_LOG", "warn")
        .env("BILLSYNC_HTTP_HEADER_TIMEOUT_SECS", "3")
        .env("BILLSYNC_HTTP_IDLE_TIMEOUT_SECS", "3")
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
    let _server = command.spawn().expect("spawn billsync serve");
    let poller = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");
    let url = format!("http://{addr}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(poller.get(&url).send().await, Ok(r) if r.status() == 200) {
        assert!(Instant::now() < deadline, "billsync serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (quiet, _) = poll(&poller, &url, Duration::from_secs(4)).await;
    let mut attackers = tokio::task::JoinSet::new();
    for n in 0..SOCKETS {
        let addr = addr.clone();
        attackers.spawn(async move { attack(&addr, n % 2 == 1).await });
    }
    let (attacked, attacked_failed) = poll(&poller, &url, Duration::from_secs(10)).await;
    let (mut closed_by_server, mut late_idle) = (0, 0);
    while let Some(outcome) = attackers.join_next().await {
        match outcome {
            Ok(Seen::Closed) => closed_by_server += 1,
            Ok(Seen::OpenAfterLateConnect) => late_idle += 1,
            _ => {}
        }
    }
    let metrics = poller
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let held_after = metrics
        .lines()
        .find_map(|l| l.strip_prefix("billsync_http_connections_open "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    Figures {
        quiet,
        attacked,
        attacked_failed,
        closed_by_server,
        late_idle,
        held_after,
    }
}

/// Polls for `secs`; returns the latencies of the 200s and how many polls got anything else.
async fn poll(client: &reqwest::Client, url: &str, secs: Duration) -> (Vec<Duration>, usize) {
    let (mut ok, mut failed) = (Vec::new(), 0);
    let end = Instant::now() + secs;
    while Instant::now() < end {
        let started = Instant::now();
        match client.get(url).send().await {
            Ok(r) if r.status() == 200 => ok.push(started.elapsed()),
            _ => failed += 1,
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    ok.sort();
    (ok, failed)
}

/// What an attacking socket saw.
enum Seen {
    Closed,
    /// Still open after 20 s, an idle socket whose connect took a SYN retransmission.
    OpenAfterLateConnect,
    Open,
}

/// One attacking socket, watched for 20 s.
async fn attack(addr: &str, trickle: bool) -> Seen {
    let started = Instant::now();
    let Ok(stream) = TcpStream::connect(addr).await else {
        return Seen::Closed;
    };
    let late = !trickle && started.elapsed() >= Duration::from_millis(900);
    let (mut read, mut write) = stream.into_split();
    let send = async move {
        if trickle
            && write
                .write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
                .await
                .is_ok()
        {
            while write.write_all(b"a").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        std::future::pending::<()>().await
    };
    let closed = async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let was_closed = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(20), closed) => r.is_ok(),
        _ = send => false,
    };
    match (was_closed, late) {
        (true, _) => Seen::Closed,
        (false, true) => Seen::OpenAfterLateConnect,
        (false, false) => Seen::Open,
    }
}

fn raise_own_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write only the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p) as usize)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// The scenario's table.
pub fn table(f: &Figures) -> String {
    let line = |name: &str, l: &[Duration], failed: usize| {
        format!(
            "| {name} | {} of {} | {:.2} / {:.2} / {:.2} ms |\n",
            l.len(),
            l.len() + failed,
            pct(l, 0.5),
            pct(l, 0.99),
            pct(l, 1.0),
        )
    };
    format!(
        "\n`/healthz` under a slow-client attack: the binary under a 1,024 open-file limit (cap 768), 3 s head and idle timeouts; {SOCKETS} sockets, half idle, half trickling a head; polls every {} ms on a fresh connection. {} of {SOCKETS} attacking sockets saw the server close them within 20 s; {} more are idle sockets whose connect waited for a SYN retransmission (listen queue full) and saw nothing; the server held {} client connections after the attack. P99 under attack is {:.1}x the quiet P99.\n\n| polls | answered 200 | P50 / P99 / max |\n|---|---|---|\n{}{}",
        POLL_EVERY.as_millis(),
        f.closed_by_server,
        f.late_idle,
        f.held_after,
        pct(&f.attacked, 0.99) / pct(&f.quiet, 0.99),
        line("quiet (baseline)", &f.quiet, 0),
        line("under attack", &f.attacked, f.attacked_failed),
    )
}
