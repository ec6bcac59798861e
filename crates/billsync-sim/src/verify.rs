//! `billsync sim verify`: compares every simulated object with billsync's read API, mapped
//! the way billsync maps it, and measures send → queryable latency: from the simulator's first
//! send of an object's latest change to the commit of the first version in billsync that
//! carries it (read from the merchant's change feed). With `--settle` it pauses the
//! simulator's live changes and compares again until billsync has caught up or a time is up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use thiserror::Error;

use super::LiveOut;
use crate::api::objects::ChangeListOut;
use crate::model::time::parse_rfc3339;
use crate::providers::{self, ProviderKind};

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("cannot read the simulator's truth from {0}: {1}")]
    Truth(String, String),
    #[error("cannot read billsync's read API at {0}: {1}")]
    Target(String, String),
    #[error("cannot {0} the simulator's live changes at {1}: {2}")]
    Live(&'static str, String, String),
    #[error(transparent)]
    Client(#[from] crate::outbound::OutboundError),
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

/// An object billsync holds as the simulator does, whose latest change's webhook was sent:
/// its send → queryable latency is measured once the comparison is done.
#[derive(Debug, Clone)]
struct SentChange {
    merchant_id: String,
    /// The canonical id.
    id: String,
    /// The version billsync holds, the first whose content is that change's.
    version: i64,
    /// Deleted at the provider: the first version carrying the change is the first of the
    /// run of deleted versions that ends at `version`.
    deleted: bool,
    /// When the simulator first sent the change's webhook (unix micros).
    sent_micros: i64,
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
            .map_err(|e| VerifyError::Target(target.to_owned(), crate::admin_client::cause(&e)))?;
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
/// of every account, through billsync's list API (a page of 1,000 per request).
/// Connects within `admin_client::CONNECT_TIMEOUT`; each page within
/// `admin_client::REQUEST_TIMEOUT` (the truth has a longer time of its own).
pub async fn verify(sim: &str, target: &str, token: &str) -> Result<Report, VerifyError> {
    verify_with(&client()?, sim, target, token).await
}

/// The client [`verify`] uses: the admin client's connect and request timeouts, and the
/// trust of provider API calls (`SSL_CERT_FILE` included).
pub fn client() -> Result<reqwest::Client, VerifyError> {
    Ok(crate::outbound::client(&crate::outbound::OutboundConfig {
        connect_timeout: crate::admin_client::CONNECT_TIMEOUT,
        request_timeout: crate::admin_client::REQUEST_TIMEOUT,
        ..crate::outbound::OutboundConfig::default()
    })?)
}

/// [`verify`] with a given client (one that trusts the simulator's certificate).
pub async fn verify_with(
    client: &reqwest::Client,
    sim: &str,
    target: &str,
    token: &str,
) -> Result<Report, VerifyError> {
    let sim = sim_base(sim);
    let target = target.trim_end_matches('/');
    let (mut report, sent) = compare_all(client, &sim, target, token).await?;
    report.latencies_ms = latencies(client, target, token, &sent).await?;
    Ok(report)
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
    timeout: Duration,
    progress: &mut (dyn FnMut(&SettlePass) + Send),
) -> Result<Settled, VerifyError> {
    let sim = sim_base(sim);
    let target = target.trim_end_matches('/');
    let paused = live(client, &sim, "pause").await?;
    let outcome = settle(client, &sim, target, token, timeout, progress).await;
    if !paused.was_paused {
        live(client, &sim, "resume").await?;
    }
    outcome
}

async fn settle(
    client: &reqwest::Client,
    sim: &str,
    target: &str,
    token: &str,
    timeout: Duration,
    progress: &mut (dyn FnMut(&SettlePass) + Send),
) -> Result<Settled, VerifyError> {
    let start = Instant::now();
    let mut passes = 0;
    loop {
        let (mut report, sent) = compare_all(client, sim, target, token).await?;
        passes += 1;
        let elapsed = start.elapsed();
        progress(&SettlePass {
            elapsed,
            objects: report.objects,
            divergent: report.divergent.len(),
        });
        if report.divergent.is_empty() || elapsed >= timeout {
            report.latencies_ms = latencies(client, target, token, &sent).await?;
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
        .map_err(|e| failed(crate::admin_client::cause(&e)))?;
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
async fn compare_all(
    client: &reqwest::Client,
    sim: &str,
    target: &str,
    token: &str,
) -> Result<(Report, Vec<SentChange>), VerifyError> {
    let truth: Value = client
        .get(format!("{sim}/_sim/truth?deliveries=1"))
        // The truth of a large simulation (250,000 objects, long invoices whole) is hundreds
        // of megabytes: more than a provider request's timeout allows.
        .timeout(std::time::Duration::from_secs(600))
        .send()
        .await
        .map_err(|e| VerifyError::Truth(sim.to_owned(), crate::admin_client::cause(&e)))?
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
        let kind = account["provider"]
            .as_str()
            .and_then(ProviderKind::parse)
            .unwrap_or(ProviderKind::Stripe);
        for object in account["objects"].as_array().cloned().unwrap_or_default() {
            report.objects += 1;
            match compare(kind, &merchant, &object, stored) {
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

/// Send → queryable of each sent change, milliseconds: from its first send to the commit of
/// the version billsync holds for it, read from the merchant's change feed (every version in
/// commit order, with its `recorded_at`). Not the object's `updated_at`, which later writes
/// that change no content (a confirmation read's status) move too.
async fn latencies(
    client: &reqwest::Client,
    target: &str,
    token: &str,
    sent: &[SentChange],
) -> Result<Vec<f64>, VerifyError> {
    /// One object's measure while the feed is read.
    struct Wanted<'a> {
        change: &'a SentChange,
        /// For a deleted object: the commit of the first version of the current run of
        /// deleted versions.
        deleted_since: Option<i64>,
    }
    let mut by_merchant: HashMap<&str, HashMap<&str, Wanted>> = HashMap::new();
    for change in sent {
        by_merchant
            .entry(change.merchant_id.as_str())
            .or_default()
            .insert(
                change.id.as_str(),
                Wanted {
                    change,
                    deleted_since: None,
                },
            );
    }
    let mut out = Vec::with_capacity(sent.len());
    for (merchant, mut wanted) in by_merchant {
        let mut after = 0;
        while !wanted.is_empty() {
            let url = format!("{target}/v1/merchants/{merchant}/changes?after={after}&limit=1000");
            let failed = |why: String| VerifyError::Target(target.to_owned(), why);
            let response = client
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| failed(crate::admin_client::cause(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(failed(format!("the change feed answered {status}")));
            }
            let page: ChangeListOut = response
                .json()
                .await
                .map_err(|e| failed(format!("the change feed's answer: {e}")))?;
            if page.data.is_empty() {
                break;
            }
            for version in &page.data {
                let Some(w) = wanted.get_mut(version.id.as_str()) else {
                    continue;
                };
                let recorded = version.recorded_at.as_deref().and_then(parse_rfc3339);
                w.deleted_since = match (version.deleted, w.deleted_since) {
                    (true, Some(since)) => Some(since),
                    (true, None) => recorded,
                    (false, _) => None,
                };
                if version.version != w.change.version {
                    continue;
                }
                let first = if w.change.deleted {
                    w.deleted_since
                } else {
                    recorded
                };
                if let Some(first) = first {
                    // A version made before the send (a backfill's read of the change) was
                    // queryable at once.
                    out.push((first - w.change.sent_micros).max(0) as f64 / 1000.0);
                }
                wanted.remove(version.id.as_str());
            }
            after = page.next_after;
        }
    }
    Ok(out)
}

/// Compares one simulated object, mapped the way billsync maps its provider's objects, with
/// what billsync stores (by collection, then canonical id).
/// `Err` with the divergence, or `Ok` with the change to measure when the object's latest
/// change was sent as a webhook.
fn compare(
    kind: ProviderKind,
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
    let provider = providers::for_kind(kind);
    let expected = match provider.observe_object(&object["object"], 0) {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(None),
        Err(e) => {
            let id = format!("{}:{raw_id}", kind.as_str());
            return Err(diverged(
                &id,
                format!("the simulator's object does not map: {e}"),
            ));
        }
    };
    let id = format!("{}:{}", kind.as_str(), expected.provider_id);
    let diverged = |what: String| diverged(&id, what);
    let got = stored
        .get(expected.object_type.collection())
        .and_then(|m| m.get(&id));
    let Some(got) = got else {
        return Err(diverged("missing in billsync".into()));
    };
    if got["deleted"].as_bool() != Some(deleted) {
        return Err(diverged(format!(
            "deleted is {} in billsync, {deleted} at the provider",
            got["deleted"]
        )));
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
    // first of the deleted versions that end at it; see `latencies`.)
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
