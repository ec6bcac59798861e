//! Cross-object data-quality checks, run after each committed apply batch for the objects it
//! gave a new version (`crate::group_commit::Committer::apply` hands them to the
//! [`CrossChecker`], which runs [`after_apply`] off the apply path).
//!
//! Why here and not in a periodic pass: the objects that can change a cross-object finding are
//! exactly the batch's new versions and their neighbours, so checking them as they arrive costs
//! a fixed number of queries per pass (three batched reads and one write transaction, whatever
//! the batch size) instead of a scan of every connection's objects, and a finding is listed
//! within the apply's latency plus at most a quarter second (`PASS_PACE`). Why after the
//! commit and not in it: the findings of *other* objects change too (an invoice whose customer
//! arrives later loses its `unresolved_reference`; an invoice gains `amount_paid_mismatch`
//! when a charge for it arrives), which the apply transaction does not write.
//!
//! How a later arrival clears or raises a finding: `quality_references` indexes every
//! object's references (`customer_id`, `invoice_id`, `subscription_id`), refreshed with each
//! checked version. When objects arrive, the objects referencing them (and the objects they
//! reference) are found through that index and re-checked: a reference that now resolves is
//! cleared, a credit note is compared with its invoice's new total, an invoice with the charges
//! now seen. Cross-object findings are therefore current state, not history: re-checking
//! deletes the ones no longer true (on any version) and keeps the `recorded_at` of the rest.
//!
//! Limits, accepted: the pass runs after the commit, so a crash in between leaves those
//! findings as they were until one of the objects changes again; a transaction moved from one
//! invoice to another re-checks the new invoice only.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use crate::model::quality_cross::{self, Neighbourhood, AMOUNT_PAID_MISMATCH};
use crate::model::quality_cross::{CREDIT_EXCEEDS_INVOICE, UNRESOLVED_REFERENCE};
use crate::model::time::now_micros;
use crate::model::ObjectType;
use crate::store::{CrossChecked, Store, StoreError, StoredObject};

type Key = (ObjectType, String);

/// What one committed batch gave a new version.
pub struct Written {
    pub connection_id: String,
    pub merchant_id: String,
    /// The provider's name, the prefix of canonical ids (`stripe`).
    pub provider: String,
    pub keys: Vec<Key>,
}

/// Most batches waiting for the checker; past this a batch's checks are skipped (logged), and
/// its objects are checked again when they next change.
const QUEUE: usize = 4_096;

/// Most new versions one pass checks: what waited is merged per connection up to this.
const PASS_KEYS: usize = 5_000;

/// Runs the checks off the apply path: one task per node fed by a bounded queue, so an apply
/// (and the webhook or backfill behind it) never waits for them. Batches that queued while a
/// pass ran are merged per connection into the next pass, so a backfill's thousands of small
/// batches cost a few large passes. Connections are owned by one node, so a connection's
/// passes run one after another, in commit order.
#[derive(Clone)]
pub struct CrossChecker {
    queue: tokio::sync::mpsc::Sender<Written>,
}

impl CrossChecker {
    /// Starts the checker's task; it ends when every clone is dropped.
    pub fn spawn(store: std::sync::Arc<dyn Store>) -> Self {
        let (queue, rx) = tokio::sync::mpsc::channel(QUEUE);
        tokio::spawn(run(store, rx));
        CrossChecker { queue }
    }

    /// Queues a committed batch's new versions for checking.
    pub fn submit(&self, batch: Written) {
        if batch.keys.is_empty() {
            return;
        }
        if let Err(e) = self.queue.try_send(batch) {
            let w = match e {
                tokio::sync::mpsc::error::TrySendError::Full(w)
                | tokio::sync::mpsc::error::TrySendError::Closed(w) => w,
            };
            tracing::warn!(connection_id = %w.connection_id, objects = w.keys.len(),
                "cross-object quality checks skipped (checker busy); they run when these objects change");
        }
    }
}

/// Least time from one pass's start to the next's. A pass costs the same few statements
/// whatever it checks, so under load the batches that queue meanwhile are checked together:
/// a burst of applies costs a few passes a second rather than one pass per apply (measured
/// with three nodes on one Postgres: 66 passes for a burst of 3,000 webhooks, each three
/// reads and a write transaction). An idle checker starts a pass as soon as a batch arrives.
const PASS_PACE: std::time::Duration = std::time::Duration::from_millis(250);

async fn run(store: std::sync::Arc<dyn Store>, mut rx: tokio::sync::mpsc::Receiver<Written>) {
    let mut last_pass: Option<tokio::time::Instant> = None;
    while let Some(first) = rx.recv().await {
        if let Some(at) = last_pass {
            tokio::time::sleep_until(at + PASS_PACE).await;
        }
        last_pass = Some(tokio::time::Instant::now());
        let mut merged: HashMap<String, Written> = HashMap::new();
        let mut keys = 0;
        let mut next = Some(first);
        while let Some(w) = next.take() {
            keys += w.keys.len();
            match merged.get_mut(&w.connection_id) {
                Some(m) => m.keys.extend(w.keys),
                None => {
                    merged.insert(w.connection_id.clone(), w);
                }
            }
            if keys < PASS_KEYS {
                next = rx.try_recv().ok();
            }
        }
        for mut w in merged.into_values() {
            w.keys
                .sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
            w.keys.dedup();
            if let Err(e) = after_apply(store.as_ref(), &w).await {
                tracing::warn!(connection_id = %w.connection_id, error = %e,
                    "cross-object quality checks failed; they run again when these objects change");
            }
        }
    }
}

/// Re-checks the cross-object findings the batch can have changed and records them.
pub async fn after_apply(store: &dyn Store, batch: &Written) -> Result<(), StoreError> {
    if batch.keys.is_empty() {
        return Ok(());
    }
    let conn = batch.connection_id.as_str();
    let provider = batch.provider.as_str();
    let canonical = |pid: &str| format!("{provider}:{pid}");
    let local = |target: &str| quality_cross::local_id(provider, target).map(str::to_owned);

    // Read 1: the new versions as committed.
    let written: Vec<StoredObject> = store.current_objects(conn, &batch.keys).await?;
    let written_keys: HashSet<Key> = written
        .iter()
        .map(|o| (o.object_type, o.provider_id.clone()))
        .collect();
    let refs_of = |o: &StoredObject| quality_cross::references(o.object_type, &o.data);
    let mut seeds: BTreeSet<String> = BTreeSet::new();
    let mut need: HashSet<Key> = HashSet::new();
    for o in &written {
        seeds.insert(canonical(&o.provider_id));
        for r in refs_of(o) {
            if let Some(pid) = local(&r.target_id) {
                need.insert((r.target_type, pid));
            }
            seeds.insert(r.target_id);
        }
    }

    // Read 2: who references the new objects or their targets (and what else they reference).
    let seeds: Vec<String> = seeds.into_iter().collect();
    let referrers: Vec<_> = store
        .referrers(conn, &seeds)
        .await?
        .into_iter()
        .filter(|r| !written_keys.contains(&(r.object_type, r.provider_id.clone())))
        .collect();
    for r in &referrers {
        need.insert((r.object_type, r.provider_id.clone()));
        if let Some(pid) = local(&r.target_id) {
            need.insert((r.target_type, pid));
        }
    }
    let need: Vec<Key> = need
        .into_iter()
        .filter(|k| !written_keys.contains(k))
        .collect();

    // Read 3: everything the checks look at.
    let loaded = store.current_objects(conn, &need).await?;
    let versions: HashMap<Key, i64> = written
        .iter()
        .chain(&loaded)
        .map(|o| ((o.object_type, o.provider_id.clone()), o.version))
        .collect();
    let objects: HashMap<Key, Value> = written
        .into_iter()
        .chain(loaded)
        .map(|o| ((o.object_type, o.provider_id), o.data))
        .collect();
    let hood = Neighbourhood {
        provider,
        objects: &objects,
    };

    // Which codes can be decided for whom with what was read.
    let seed_set: HashSet<&str> = seeds.iter().map(String::as_str).collect();
    let mut codes: HashMap<Key, BTreeSet<&'static str>> = HashMap::new();
    for key in &written_keys {
        let all = codes.entry(key.clone()).or_default();
        all.insert(UNRESOLVED_REFERENCE);
        match key.0 {
            ObjectType::CreditNote => {
                all.insert(CREDIT_EXCEEDS_INVOICE);
            }
            ObjectType::Invoice => {
                all.insert(AMOUNT_PAID_MISMATCH);
            }
            _ => {}
        }
    }
    for r in &referrers {
        let key = (r.object_type, r.provider_id.clone());
        let set = codes.entry(key).or_default();
        set.insert(UNRESOLVED_REFERENCE);
        if r.object_type == ObjectType::CreditNote {
            set.insert(CREDIT_EXCEEDS_INVOICE);
        }
    }
    // An invoice that is a seed has every transaction naming it in hand: the written ones
    // (current data) and the indexed others.
    for (key, _) in objects.iter().filter(|(k, _)| k.0 == ObjectType::Invoice) {
        if seed_set.contains(canonical(&key.1).as_str()) {
            codes
                .entry(key.clone())
                .or_default()
                .insert(AMOUNT_PAID_MISMATCH);
        }
    }
    let mut transactions: HashMap<String, Vec<&Value>> = HashMap::new();
    for ((kind, _), data) in objects
        .iter()
        .filter(|(k, _)| k.0 == ObjectType::Transaction)
    {
        for r in quality_cross::references(*kind, data) {
            if r.target_type == ObjectType::Invoice {
                transactions.entry(r.target_id).or_default().push(data);
            }
        }
    }

    let mut checked = Vec::with_capacity(codes.len());
    for (key, codes) in codes {
        let (Some(data), Some(version)) = (objects.get(&key), versions.get(&key)) else {
            continue; // indexed but gone: nothing to record against
        };
        let id = canonical(&key.1);
        let mut found = Vec::new();
        if codes.contains(UNRESOLVED_REFERENCE) {
            found.extend(quality_cross::unresolved(key.0, data, &hood));
        }
        if codes.contains(CREDIT_EXCEEDS_INVOICE) {
            found.extend(quality_cross::credit_exceeds_invoice(data, &hood));
        }
        if codes.contains(AMOUNT_PAID_MISMATCH) {
            let txs = transactions.get(&id).map_or(&[][..], Vec::as_slice);
            found.extend(quality_cross::amount_paid_mismatch(data, txs));
        }
        let is_written = written_keys.contains(&key);
        let mut findings: Vec<(&'static str, String)> = Vec::new();
        for f in found {
            if is_written {
                metrics::counter!("billsync_quality_findings_total", "provider" => provider.to_owned(),
                    "kind" => key.0.as_str(), "code" => f.code)
                .increment(1);
            }
            // One row per code and version: two unresolved references share it.
            match findings.iter_mut().find(|(c, _)| *c == f.code) {
                Some((_, message)) => {
                    message.push_str("; ");
                    message.push_str(&f.message);
                }
                None => findings.push((f.code, f.message)),
            }
        }
        let references = is_written.then(|| {
            quality_cross::references(key.0, data)
                .into_iter()
                .map(|r| (r.target_type, r.target_id))
                .collect()
        });
        checked.push(CrossChecked {
            object_type: key.0,
            provider_id: key.1,
            id,
            version: *version,
            codes: codes.into_iter().collect(),
            findings,
            references,
        });
    }
    store
        .record_cross(conn, &batch.merchant_id, &checked, now_micros())
        .await
}
