//! Scenarios 1 and 2: signed-webhook intake over loopback HTTP, and webhook→queryable
//! latency at a fixed send rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::support::{percentile, signed_event, App, TOKEN};

/// Intake: `n` webhooks from `concurrency` clients; (events/s, P50 ms, P99 ms).
pub async fn intake(app: &App, n: usize, concurrency: usize) -> (f64, f64, f64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let urls: Vec<String> = app
        .conns
        .iter()
        .map(|(c, _)| format!("{}/webhooks/stripe/{c}", app.base))
        .collect();
    let events: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            let (body, sig) = signed_event(i);
            (urls[i % urls.len()].clone(), body, sig)
        })
        .collect();
    let events = Arc::new(events);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, events, next) = (client.clone(), events.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((url, body, sig)) = events.get(i) else {
                    return lat;
                };
                let t = Instant::now();
                let r = client
                    .post(url)
                    .header("Stripe-Signature", sig)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    (rate, percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// Reads a merchant's change feed from `after` until it stops moving; returns the last seq.
pub async fn feed_end(client: &reqwest::Client, feed: &str, mut after: i64) -> i64 {
    loop {
        let page: Value = client
            .get(format!("{feed}?after={after}&limit=1000"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let next = page["next_after"].as_i64().unwrap();
        if next == after {
            return after;
        }
        after = next;
    }
}

/// Waits until `n` versions in all are readable in the merchants' change feeds (every event of
/// scenario 1 makes one); returns the seconds that took.
pub async fn all_applied(app: &App, n: usize) -> f64 {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let feeds: Vec<String> = app
        .conns
        .iter()
        .map(|(_, m)| format!("{}/v1/merchants/{m}/changes", app.base))
        .collect();
    let mut ends = vec![0i64; feeds.len()];
    loop {
        for (feed, end) in feeds.iter().zip(ends.iter_mut()) {
            *end = feed_end(&client, feed, *end).await;
        }
        if ends.iter().sum::<i64>() >= n as i64 || started.elapsed() > Duration::from_secs(300) {
            return started.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a change-feed poller waits after an empty page. At 2 ms, 16 pollers read up to
/// 8,000 pages/s, which took a whole Postgres core at 250 events/s: the measurement competed
/// with what it measured. 5 ms adds at most 5 ms to a latency.
const POLL_EMPTY: Duration = Duration::from_millis(5);

/// Webhook→queryable at `rate`/s for `secs`, spread over the app's connections: the time from
/// sending a webhook to its new version appearing in the merchant's change feed, polled
/// continuously. Returns (P50, P95, P99 ms, events seen).
pub async fn queryable(
    app: &App,
    rate: f64,
    secs: f64,
    offset: usize,
    settle_first: bool,
) -> (f64, f64, f64, usize) {
    let client = reqwest::Client::new();
    let n = (rate * secs) as usize;
    let sent: Arc<Vec<std::sync::OnceLock<Instant>>> =
        Arc::new((0..n).map(|_| std::sync::OnceLock::new()).collect());
    // Start once everything sent before is applied, so no backlog skews the figure (unless
    // the point is to measure beside other work, such as a backfill).
    let mut starts = Vec::new();
    for (_, merchant) in &app.conns {
        let feed = format!("{}/v1/merchants/{merchant}/changes", app.base);
        let mut end = feed_end(&client, &feed, 0).await;
        if settle_first {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let again = feed_end(&client, &feed, end).await;
                if again == end {
                    break;
                }
                end = again;
            }
        }
        starts.push((feed, end));
    }
    let limit = Arc::new(Semaphore::new(512));
    let start = Instant::now();
    let urls: Vec<String> = app
        .conns
        .iter()
        .map(|(c, _)| format!("{}/webhooks/stripe/{c}", app.base))
        .collect();
    let sender = {
        let (client, sent, limit) = (client.clone(), sent.clone(), limit.clone());
        tokio::spawn(async move {
            for i in 0..n {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let permit = limit.clone().acquire_owned().await.unwrap();
                let (client, url, sent) =
                    (client.clone(), urls[i % urls.len()].clone(), sent.clone());
                tokio::spawn(async move {
                    let (body, sig) = signed_event(offset + i);
                    sent[i].set(Instant::now()).ok();
                    let r = client
                        .post(&url)
                        .header("Stripe-Signature", sig)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    drop(permit);
                });
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs_f64(secs + 60.0);
    let per_merchant = n / app.conns.len();
    let mut pollers = Vec::new();
    for (feed, mut after) in starts {
        let (client, sent) = (client.clone(), sent.clone());
        pollers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while latencies.len() < per_merchant && Instant::now() < deadline {
                let page: Value = client
                    .get(format!("{feed}?after={after}&limit=1000"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let seen = Instant::now();
                for c in page["data"].as_array().unwrap() {
                    let id = c["id"].as_str().unwrap();
                    // Other work's objects (a backfill's) are not ours.
                    let Ok(i) = id.trim_start_matches("stripe:in_").parse::<usize>() else {
                        continue;
                    };
                    if let Some(t) = sent.get(i.wrapping_sub(offset)).and_then(|s| s.get()) {
                        latencies.push(seen.duration_since(*t).as_secs_f64() * 1000.0);
                    }
                }
                after = page["next_after"].as_i64().unwrap();
                if page["data"].as_array().unwrap().is_empty() {
                    tokio::time::sleep(POLL_EMPTY).await;
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for p in pollers {
        latencies.extend(p.await.unwrap());
    }
    sender.await.unwrap();
    latencies.sort_by(f64::total_cmp);
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.len(),
    )
}
