//! `billsync sim verify`: compares every simulated object with billsync's read API, mapped
//! the way billsync maps it, and measures send → queryable latency.

use std::collections::HashMap;

use serde_json::Value;
use thiserror::Error;

use crate::model::time::parse_rfc3339;
use crate::providers::{self, ProviderKind};

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("cannot read the simulator's truth from {0}: {1}")]
    Truth(String, String),
    #[error("cannot read billsync's read API at {0}: {1}")]
    Target(String, String),
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
    /// Send → queryable, milliseconds, for objects whose webhook was delivered.
    pub latencies_ms: Vec<f64>,
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
            "{} objects, {} divergent, {:.3}% converged; send→queryable P50 {} P95 {} P99 {} ({} delivered)",
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
    let client = crate::outbound::client(&crate::outbound::OutboundConfig {
        connect_timeout: crate::admin_client::CONNECT_TIMEOUT,
        request_timeout: crate::admin_client::REQUEST_TIMEOUT,
        ..crate::outbound::OutboundConfig::default()
    })?;
    verify_with(&client, sim, target, token).await
}

/// [`verify`] with a given client (one that trusts the simulator's certificate).
pub async fn verify_with(
    client: &reqwest::Client,
    sim: &str,
    target: &str,
    token: &str,
) -> Result<Report, VerifyError> {
    let sim = sim.trim_end_matches('/');
    let sim = if sim.starts_with("http") {
        sim.to_owned()
    } else {
        format!("http://{sim}")
    };
    let truth: Value = client
        .get(format!("{sim}/_sim/truth?deliveries=1"))
        // The truth of a large simulation (250,000 objects, long invoices whole) is hundreds
        // of megabytes: more than a provider request's timeout allows.
        .timeout(std::time::Duration::from_secs(600))
        .send()
        .await
        .map_err(|e| VerifyError::Truth(sim.clone(), crate::admin_client::cause(&e)))?
        .json()
        .await
        .map_err(|e| VerifyError::Truth(sim.clone(), e.to_string()))?;
    let target = target.trim_end_matches('/');
    let mut report = Report::default();
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
            let (divergence, latency) = compare(kind, &merchant, &object, stored);
            report.divergent.extend(divergence);
            report.latencies_ms.extend(latency);
        }
    }
    report
        .divergent
        .sort_by(|a, b| (&a.merchant_id, &a.id).cmp(&(&b.merchant_id, &b.id)));
    Ok(report)
}

/// Compares one simulated object, mapped the way billsync maps its provider's objects, with
/// what billsync stores (by collection, then canonical id).
fn compare(
    kind: ProviderKind,
    merchant: &str,
    object: &Value,
    stored: &HashMap<&str, HashMap<String, Value>>,
) -> (Option<Divergence>, Option<f64>) {
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
        Ok(None) => return (None, None),
        Err(e) => {
            let id = format!("{}:{raw_id}", kind.as_str());
            return (
                Some(diverged(
                    &id,
                    format!("the simulator's object does not map: {e}"),
                )),
                None,
            );
        }
    };
    let id = format!("{}:{}", kind.as_str(), expected.provider_id);
    let diverged = |what: String| diverged(&id, what);
    let got = stored
        .get(expected.object_type.collection())
        .and_then(|m| m.get(&id));
    let Some(got) = got else {
        return (Some(diverged("missing in billsync".into())), None);
    };
    if got["deleted"].as_bool() != Some(deleted) {
        return (
            Some(diverged(format!(
                "deleted is {} in billsync, {deleted} at the provider",
                got["deleted"]
            ))),
            None,
        );
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
        return (
            Some(diverged(format!("data differs in: {}", fields.join(", ")))),
            None,
        );
    }
    let latency = match (
        object["first_sent_at"].as_i64(),
        got["updated_at"].as_str().and_then(parse_rfc3339),
    ) {
        (Some(sent), Some(written)) => Some((written - sent).max(0) as f64 / 1000.0),
        _ => None,
    };
    (None, latency)
}
