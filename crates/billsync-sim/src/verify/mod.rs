//! `billsync sim verify`: compares every simulated object with billsync's read API, against
//! what billsync's mapping expects ([`Expectation`]) and what the simulator's own world says
//! ([`expectation::independent`]), and measures send → queryable latency: from the simulator's first
//! send of an object's latest change to the commit of the first version in billsync that
//! carries it (read from the merchant's change feed). With `--settle` it pauses the
//! simulator's live changes and compares again until billsync has caught up or a time is up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use thiserror::Error;

mod expectation;
mod feed;

pub use expectation::{independent, Expectation, Expected, WorldFacts};

use crate::http_client::{cause, ClientError};
use crate::LiveOut;
use feed::{latencies, SentChange};

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("cannot read the simulator's truth from {0}: {1}")]
    Truth(String, String),
    #[error("cannot read billsync's read API at {0}: {1}")]
    Target(String, String),
    #[error("cannot {0} the simulator's live changes at {1}: {2}")]
    Live(&'static str, String, String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// One object that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    pub merchant_id: String,
    pub id: String,
    pub what: String,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub objects: usize,
    pub divergent: Vec<Divergence>,
    /// Send → queryable, milliseconds: for each object whose latest change's webhook was
    /// sent and that billsync holds as the simulator does, from that change's first send to
    /// the commit (`recorded_at`) of the first version carrying it.
    pub latencies_ms: Vec<f64>,
}

/// One comparison of a settling verification, for progress lines.
#[derive(Debug, Clone, Copy)]
pub struct SettlePass {
    /// Since live changes were paused.
    pub elapsed: Duration,
    pub objects: usize,
    pub divergent: usize,
}

/// The outcome of [`verify_settled`].
#[derive(Debug, Clone)]
pub struct Settled {
    /// The last comparison (the first with none divergent, or the one at the time limit).
    pub report: Report,
    /// From pausing live changes to that comparison's end.
    pub elapsed: Duration,
    /// Comparisons made.
    pub passes: usize,
}

impl Report {
    pub fn convergence_percent(&self) -> f64 {
        if self.objects == 0 {
            return 100.0;
        }
        100.0 * (self.objects - self.divergent.len()) as f64 / self.objects as f64
    }

    fn percentile(&self, p: f64) -> Option<f64> {
        let mut v = self.latencies_ms.clone();
        v.sort_by(f64::total_cmp);
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied()
    }

    /// The printed summary.
    pub fn summary(&self) -> String {
        let pct = |p| {
            self.percentile(p)
                .map_or("n/a".to_owned(), |v| format!("{v:.0} ms"))
        };
        format!(
            "{} objects, {} divergent, {:.3}% converged; send→queryable P50 {} P95 {} P99 {} ({} sent changes)",
            self.objects,
            self.divergent.len(),
            self.convergence_percent(),
            pct(0.5),
            pct(0.95),
            pct(0.99),
            self.latencies_ms.len()
        )
    }
}

/// Every object of one merchant's collection, read through billsync's list API.
async fn fetch_collection(
    client: &reqwest::Client,
    target: &str,
    token: &str,
    merchant: &str,
    collection: &str,
) -> Result<Result<HashMap<String, Value>, String>, VerifyError> {
    let mut out = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{target}/v1/merchants/{merchant}/{collection}?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        // A node that cannot be reached ends the verification; an answer that is not a page
        // is this collection's divergence.
        let response = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| VerifyError::Target(target.to_owned(), cause(&e)))?;
        let page: Value = match response.json().await {
            Ok(page) => page,
            Err(e) => return Ok(Err(format!("read API answer is not JSON: {e}"))),
        };
        let Some(data) = page["data"].as_array() else {
            return Ok(Err(format!("read API answered {page}")));
        };
        for o in data {
            if let Some(id) = o["id"].as_str() {
                out.insert(id.to_owned(), o.clone());
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(Ok(out)),
        }
    }
}

/// Compares the simulator at `sim` (base URL) with the billsync at `target`: every object
/// of every account, through billsync's list API (a page of 1,000 per request), against
/// `expectation` and the world. Connects within `http_client::CONNECT_TIMEOUT`; each page
/// within `http_client::REQUEST_TIMEOUT` (the truth has a longer time of its own).
pub async fn verify(
    sim: &str,
    target: &str,
    token: &str,
    expectation: &dyn Expectation,
) -> Result<Report, VerifyError> {
    verify_with(&client()?, sim, target, token, expectation).await
}

/// The client [`verify`] uses: billsync's admin client's connect and request timeouts, and
/// the trust of its provider API calls (`SSL_CERT_FILE` included; see `http_client`).
pub fn client() -> Result<reqwest::Client, VerifyError> {
    Ok(crate::http_client::client()?)
}

/// [`verify`] with a given client (one that trusts the simulator's certificate).
pub async fn verify_with(
    client: &reqwest::Client,
    sim: &str,
    target: &str,
    token: &str,
    expectation: &dyn Expectation,
) -> Result<Report, VerifyError> {
    let sim = sim_base(sim);
    let run = Run::new(client, &sim, target, token, expectation);
    let (mut report, sent) = compare_all(&run).await?;
    report.latencies_ms = latencies(client, run.target, token, &sent).await?;
    Ok(report)
}

/// One verification's parties: the simulator, the billsync and what is expected of it.
struct Run<'a> {
    client: &'a reqwest::Client,
    /// The simulator's base URL.
    sim: &'a str,
    /// billsync's base URL, without a trailing slash.
    target: &'a str,
    token: &'a str,
    expectation: &'a dyn Expectation,
}

impl<'a> Run<'a> {
    /// `sim` is a base URL already ([`sim_base`]); `target` may end in a slash.
    fn new(
        client: &'a reqwest::Client,
        sim: &'a str,
        target: &'a str,
        token: &'a str,
        expectation: &'a dyn Expectation,
    ) -> Self {
        let target = target.trim_end_matches('/');
        Run {
            client,
            sim,
            target,
            token,
            expectation,
        }
    }
}

/// [`verify`] that waits for billsync to catch up: pauses the simulator's live changes
/// (`POST /_sim/pause`; webhooks already made are still delivered and retried), compares
/// every second until none diverge or `timeout` has passed, calling `progress` after each
/// comparison, and resumes live changes after (unless they were paused before). Latencies are
/// measured on the last comparison.
pub async fn verify_settled(
    client: &reqwest::Client,
    sim: &str,
    target: &str,
    token: &str,
    expectation: &dyn Expectation,
    timeout: Duration,
    progress: &mut (dyn FnMut(&SettlePass) + Send),
) -> Result<Settled, VerifyError> {
    let sim = sim_base(sim);
    let run = Run::new(client, &sim, target, token, expectation);
    let paused = live(client, &sim, "pause").await?;
    let outcome = settle(&run, timeout, progress).await;
    if !paused.was_paused {
        live(client, &sim, "resume").await?;
    }
    outcome
}

async fn settle(
    run: &Run<'_>,
    timeout: Duration,
    progress: &mut (dyn FnMut(&SettlePass) + Send),
) -> Result<Settled, VerifyError> {
    let start = Instant::now();
    let mut passes = 0;
    loop {
        let (mut report, sent) = compare_all(run).await?;
        passes += 1;
        let elapsed = start.elapsed();
        progress(&SettlePass {
            elapsed,
            objects: report.objects,
            divergent: report.divergent.len(),
        });
        if report.divergent.is_empty() || elapsed >= timeout {
            report.latencies_ms = latencies(run.client, run.target, run.token, &sent).await?;
            return Ok(Settled {
                report,
                elapsed,
                passes,
            });
        }
        tokio::time::sleep((timeout - elapsed).min(Duration::from_secs(1))).await;
    }
}

/// `POST /_sim/pause` or `/_sim/resume`.
async fn live(
    client: &reqwest::Client,
    sim: &str,
    action: &'static str,
) -> Result<LiveOut, VerifyError> {
    let failed = |why: String| VerifyError::Live(action, sim.to_owned(), why);
    let answer = client
        .post(format!("{sim}/_sim/{action}"))
        .send()
        .await
        .map_err(|e| failed(cause(&e)))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(failed(format!("answered {status}")));
    }
    answer.json().await.map_err(|e| failed(e.to_string()))
}

/// The simulator's base URL from an address or a URL.
fn sim_base(sim: &str) -> String {
    let sim = sim.trim_end_matches('/');
    if sim.starts_with("http") {
        sim.to_owned()
    } else {
        format!("http://{sim}")
    }
}

/// One comparison of every simulated object with billsync, without latencies: the report,
/// and the objects whose latency can be measured.
async fn compare_all(run: &Run<'_>) -> Result<(Report, Vec<SentChange>), VerifyError> {
    let Run {
        client,
        sim,
        target,
        token,
        expectation,
    } = *run;
    let truth: Value = client
        .get(format!("{sim}/_sim/truth?deliveries=1"))
        // The truth of a large simulation (250,000 objects, long invoices whole) is hundreds
        // of megabytes: more than a provider request's timeout allows.
        .timeout(std::time::Duration::from_secs(600))
        .send()
        .await
        .map_err(|e| VerifyError::Truth(sim.to_owned(), cause(&e)))?
        .json()
        .await
        .map_err(|e| VerifyError::Truth(sim.to_owned(), e.to_string()))?;
    let mut report = Report::default();
    let mut sent = Vec::new();
    let mut by_merchant: HashMap<String, HashMap<&str, HashMap<String, Value>>> = HashMap::new();
    for account in truth["accounts"].as_array().cloned().unwrap_or_default() {
        let merchant = account["merchant_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // A merchant connected to several providers is read once.
        if !by_merchant.contains_key(&merchant) {
            let mut stored: HashMap<&str, HashMap<String, Value>> = HashMap::new();
            for collection in [
                "customers",
                "invoices",
                "credit_notes",
                "subscriptions",
                "transactions",
            ] {
                match fetch_collection(client, target, token, &merchant, collection).await? {
                    Ok(objects) => {
                        stored.insert(collection, objects);
                    }
                    Err(what) => {
                        report.divergent.push(Divergence {
                            merchant_id: merchant.clone(),
                            id: collection.into(),
                            what,
                        });
                        stored.insert(collection, HashMap::new());
                    }
                }
            }
            by_merchant.insert(merchant.clone(), stored);
        }
        let stored = &by_merchant[&merchant];
        let provider = account["provider"].as_str().unwrap_or("stripe");
        for object in account["objects"].as_array().cloned().unwrap_or_default() {
            report.objects += 1;
            match compare(expectation, provider, &merchant, &object, stored) {
                Err(divergence) => report.divergent.push(divergence),
                Ok(measured) => sent.extend(measured),
            }
        }
    }
    report
        .divergent
        .sort_by(|a, b| (&a.merchant_id, &a.id).cmp(&(&b.merchant_id, &b.id)));
    Ok((report, sent))
}

/// Compares one simulated object (an object of the simulator's truth) with what billsync
/// stores (by collection, then canonical id): where and what `expectation` says billsync
/// should store, and the simulator's [`independent`] checks.
/// `Err` with the divergence, or `Ok` with the change to measure when the object's latest
/// change was sent as a webhook.
fn compare(
    expectation: &dyn Expectation,
    provider: &str,
    merchant: &str,
    object: &Value,
    stored: &HashMap<&str, HashMap<String, Value>>,
) -> Result<Option<SentChange>, Divergence> {
    let raw_id = object["id"].as_str().unwrap_or_default();
    let diverged = |id: &str, what: String| Divergence {
        merchant_id: merchant.to_owned(),
        id: id.to_owned(),
        what,
    };
    let deleted = object["deleted"].as_bool().unwrap_or(false);
    let expected = match expectation.expect(provider, &object["object"]) {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(None),
        Err(e) => {
            let id = format!("{provider}:{raw_id}");
            return Err(diverged(
                &id,
                format!("the simulator's object does not map: {e}"),
            ));
        }
    };
    let id = expected.id;
    let diverged = |what: String| diverged(&id, what);
    let got = stored
        .get(expected.collection.as_str())
        .and_then(|m| m.get(&id));
    let Some(got) = got else {
        return Err(diverged("missing in billsync".into()));
    };
    let facts: WorldFacts = serde_json::from_value(object["facts"].clone()).unwrap_or_default();
    let wrong = independent(&expected.collection, got, deleted, &facts);
    if !wrong.is_empty() {
        return Err(diverged(wrong.join("; ")));
    }
    if !deleted && got["data"] != expected.data {
        let fields: Vec<String> = expected
            .data
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, v)| &got["data"][k.as_str()] != *v)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        return Err(diverged(format!("data differs in: {}", fields.join(", "))));
    }
    // The version billsync holds is the first to carry the change: each version differs in
    // content from the one before. (For a deleted object, whose data is not compared, the
    // first of the deleted versions that end at it; see `feed::latencies`.)
    Ok(
        match (object["first_sent_at"].as_i64(), got["version"].as_i64()) {
            (Some(sent_micros), Some(version)) => Some(SentChange {
                merchant_id: merchant.to_owned(),
                id,
                version,
                deleted,
                sent_micros,
            }),
            _ => None,
        },
    )
}
