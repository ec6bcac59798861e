//! `billsync doctor [--connection ID]`: checks each connection against its provider, the way
//! the node's pair actors reach it (same HTTPS client, same credentials, same token flow):
//! the API answers over TLS with a certificate that verifies, the credentials are accepted,
//! the pinned API version is one billsync knows; it also shows the webhook secrets in force
//! and the last event applied. One line per connection; any failed check fails the run.

use std::sync::Arc;
use std::time::Duration;

use crate::actors::fetch::{refusal, FaultLog, FetchError, Fetcher, TokenCache};
use crate::actors::limiter::{ConnectionLimiter, Priority, ProviderLimits};
use crate::connections::Connections;
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::providers;
use crate::store::{ConnectionRecord, Store, StoreError};

/// One check of one connection.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Every check of one connection.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub connection_id: String,
    pub provider: &'static str,
    pub merchant_id: String,
    pub checks: Vec<Check>,
}

impl Diagnosis {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// `conn_… stripe m_1: ok | FAILED — check: detail; …` (failed checks first).
    pub fn line(&self) -> String {
        let mut checks: Vec<&Check> = self.checks.iter().collect();
        checks.sort_by_key(|c| c.ok);
        let parts: Vec<String> = checks
            .iter()
            .map(|c| {
                let mark = if c.ok { "ok" } else { "FAILED" };
                format!("{} {mark}: {}", c.name, c.detail)
            })
            .collect();
        format!(
            "{} {} {}: {} — {}",
            self.connection_id,
            self.provider,
            self.merchant_id,
            if self.ok() { "ok" } else { "FAILED" },
            parts.join("; ")
        )
    }
}

/// Diagnoses the connection `only`, or every connection, a few at a time, calling `each` as
/// each one is done. Returns how many were checked.
pub async fn run(
    store: Arc<dyn Store>,
    connections: Arc<Connections>,
    client: reqwest::Client,
    only: Option<&str>,
    timeout: Duration,
    mut each: impl FnMut(Diagnosis),
) -> Result<usize, StoreError> {
    let records = match only {
        Some(id) => store.get_connection(id).await?.into_iter().collect(),
        None => {
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store.list_connections(None, after.as_deref(), 500).await?;
                let full = page.len() == 500;
                after = page.last().map(|r| r.id.clone());
                all.extend(page);
                if !full {
                    break;
                }
            }
            all
        }
    };
    let limits = Arc::new(ProviderLimits::default());
    let mut checked = 0;
    for chunk in records.chunks(16) {
        let mut tasks = tokio::task::JoinSet::new();
        for record in chunk.iter().cloned() {
            let (connections, client, limits) =
                (connections.clone(), client.clone(), limits.clone());
            tasks.spawn(
                async move { diagnose(&connections, client, &limits, record, timeout).await },
            );
        }
        let mut done: Vec<Diagnosis> = Vec::new();
        while let Some(d) = tasks.join_next().await {
            if let Ok(d) = d {
                done.push(d);
            }
        }
        done.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        checked += done.len();
        done.into_iter().for_each(&mut each);
    }
    Ok(checked)
}

async fn diagnose(
    connections: &Connections,
    client: reqwest::Client,
    limits: &ProviderLimits,
    record: ConnectionRecord,
    timeout: Duration,
) -> Diagnosis {
    let mut d = Diagnosis {
        connection_id: record.id.clone(),
        provider: record.provider.as_str(),
        merchant_id: record.merchant_id.clone(),
        checks: Vec::new(),
    };
    let provider = providers::for_kind(record.provider);
    let (secrets, api_key) = match connections.open_secrets(&record) {
        Ok(opened) => opened,
        Err(e) => {
            d.checks.push(failed(
                "secrets",
                format!("cannot be opened with this node's secret key: {e}"),
            ));
            return d;
        }
    };
    let base = record
        .api_base_url
        .clone()
        .unwrap_or_else(|| provider.default_api_base().to_owned());
    let version = record
        .api_version
        .clone()
        .unwrap_or_else(|| provider.default_api_version().to_owned());
    let fetcher = Fetcher {
        client,
        limiter: Arc::new(ConnectionLimiter::new(
            record.provider,
            provider.default_rate_limit(),
            limits.get(record.provider, provider.default_rate_limit()),
        )),
        provider,
        base_url: base.clone(),
        api_key: api_key.unwrap_or_default(),
        api_version: version.clone(),
        timeout,
        token: TokenCache::default(),
        faults: FaultLog::new(None, record.id.clone()),
    };
    // The smallest read every provider answers: one page of one object of its first stream,
    // over the last day.
    let now = now_micros() / 1_000_000;
    let stream = provider.streams().first().map_or("", |s| s.name);
    let request = provider.list_request(stream, (now - 86_400, now), None, 1);
    let tls = if base.starts_with("https://") {
        "over TLS, certificate verified"
    } else {
        "over plain http (loopback)"
    };
    let (outcome, _) = fetcher.get(&request, Priority::Refetch).await;
    match outcome {
        Ok(_) => {
            d.checks
                .push(passed("api", format!("{base} answers {tls}")));
            d.checks.push(passed("credentials", "accepted"));
        }
        Err(FetchError::Refused { status, .. }) if status == 401 || status == 403 => {
            d.checks
                .push(passed("api", format!("{base} answers {tls}")));
            d.checks.push(failed(
                "credentials",
                refusal(record.provider.as_str(), status),
            ));
        }
        Err(FetchError::Refused { status, .. }) => {
            d.checks.push(failed(
                "api",
                format!("{base} answered {status} to {}", request.path),
            ));
        }
        Err(FetchError::Exhausted { last, .. }) => {
            d.checks.push(failed("api", last.message));
        }
        // A plain `get` makes no sub-reads; kept for completeness of the answer.
        Err(e @ FetchError::SubRead { .. }) => {
            d.checks.push(failed("api", e.to_string()));
        }
    }
    if provider.api_version_known(&version) {
        d.checks
            .push(passed("api_version", format!("{version} known")));
    } else {
        d.checks.push(failed(
            "api_version",
            format!(
                "{version} is not a version billsync parses (default {})",
                provider.default_api_version()
            ),
        ));
    }
    if secrets.is_empty() {
        d.checks.push(failed(
            "webhook_secrets",
            "none: no webhook can be verified",
        ));
    } else {
        d.checks.push(passed(
            "webhook_secrets",
            format!("{} in force", secrets.len()),
        ));
    }
    d.checks.push(passed(
        "last_event",
        match record.last_applied_at.and_then(micros_to_rfc3339) {
            Some(at) => format!("applied at {at}"),
            None => "none yet".into(),
        },
    ));
    d
}

fn passed(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok: true,
        detail: detail.into(),
    }
}

fn failed(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok: false,
        detail: detail.into(),
    }
}
