//! Turning observations into writes: the pair actor's one way of applying anything, whether
//! it came from a webhook or an API read. Reads the stored state, runs the version rule, and
//! builds the [`ApplyBatch`] the store commits in one transaction.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{json, Value};

use crate::connections::LiveConnection;
use crate::model::time::now_micros;
use crate::model::version::{decide_with_hash, Current, Decision};
use crate::model::{content_hash_of_text, quality, ObjectType, Observation, ReconStatus};
use crate::store::{ApplyBatch, ObjectWrite, Store, StoreError, StoredObject};

/// An object of one connection: its kind and provider id.
pub type Key = (ObjectType, String);

/// Where an observation came from, and whether the provider API itself said it.
pub struct Sourced {
    pub observation: Observation,
    pub source: Value,
    /// Read from the provider API: the content is confirmed (`converged`).
    pub from_api: bool,
    /// Found by a reconciliation sweep, not delivered by a webhook (`drifted`).
    pub drift: bool,
    /// Re-derived by `replay` from an event applied before.
    pub replay: bool,
}

/// What the actor knows of an object while it decides a batch (data borrowed from the
/// batch's observations once they are decided: no copy of a JSON tree per write).
pub struct Known<'a> {
    current: Current,
    status: ReconStatus,
    data: Cow<'a, Value>,
    deleted: bool,
    provider_updated_at: i64,
}

impl Known<'_> {
    /// The version and content known.
    pub fn version_and_data(&self) -> (i64, &Value) {
        (self.current.version, self.data.as_ref())
    }
}

/// Decides every observation in order against the stored state and returns the batch to
/// commit (inbox ids, dead letters, raw observations and checkpoints are the caller's).
pub async fn decide_batch(
    store: &dyn Store,
    conn: &LiveConnection,
    items: &[Sourced],
) -> Result<ApplyBatch, StoreError> {
    Ok(decide_each(store, conn, items).await?.0)
}

/// [`decide_batch`], with the decision taken for each item.
pub async fn decide_each(
    store: &dyn Store,
    conn: &LiveConnection,
    items: &[Sourced],
) -> Result<(ApplyBatch, Vec<Decision>), StoreError> {
    let known = read_known(store, conn, items).await?;
    Ok(decide_known(conn, items, known))
}

/// The stored state of the objects `items` name, as [`decide_known`] starts from.
pub async fn read_known<'a>(
    store: &dyn Store,
    conn: &LiveConnection,
    items: &[Sourced],
) -> Result<HashMap<Key, Known<'a>>, StoreError> {
    let mut keys: Vec<Key> = items
        .iter()
        .map(|s| (s.observation.object_type, s.observation.provider_id.clone()))
        .collect();
    keys.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    keys.dedup();
    Ok(store
        .current_objects(&conn.record.id, &keys)
        .await?
        .into_iter()
        .map(|o| {
            let current = Current {
                version: o.version,
                content_hash: o.content_hash,
                order_key: o.order_key,
                tie_rank: o.tie_rank,
            };
            let known = Known {
                current,
                status: o.status,
                data: Cow::Owned(o.data),
                deleted: o.deleted,
                provider_updated_at: o.provider_updated_at,
            };
            ((o.object_type, o.provider_id), known)
        })
        .collect())
}

/// Decides `items` in order against `known` (the stored state, updated as each item is
/// decided): no I/O, so a caller may run it under a recorder of its own (the replay preview
/// counts nothing).
pub fn decide_known<'a>(
    conn: &LiveConnection,
    items: &'a [Sourced],
    mut known: HashMap<Key, Known<'a>>,
) -> (ApplyBatch, Vec<Decision>) {
    let provider = conn.record.provider.as_str();
    let mut writes: Vec<ObjectWrite> = Vec::new();
    let mut decisions = Vec::with_capacity(items.len());
    for item in items {
        let obs = &item.observation;
        let key = (obs.object_type, obs.provider_id.clone());
        let prior = known.get(&key);
        // A deletion without fields keeps the last known data (docs/api.md), so it is the same
        // content as a stored tombstone: an API 404 then confirms it like any equal read.
        let (data, text): (Cow<'a, Value>, String) = match (&obs.data, prior) {
            (Value::Null, Some(p)) => (Cow::Owned(p.data.as_ref().clone()), p.data.to_string()),
            (Value::Null, None) => (Cow::Owned(json!({})), "{}".to_owned()),
            (d, Some(p)) if !obs.carried.is_empty() => {
                let d = carry_over(d, &p.data, obs.carried);
                let text = d.to_string();
                (Cow::Owned(d), text)
            }
            (d, _) => (Cow::Borrowed(d), d.to_string()),
        };
        let hash = content_hash_of_text(&text, obs.deleted);
        let mut decision = decide_with_hash(prior.map(|k| &k.current), obs, &hash);
        // An API read is ordered after only the changes older than the provider's lag
        // allowance (its `order_key` says so). Agreeing with a pending change newer than that
        // proves nothing: a lagging API shows the state before the change, which can equal
        // the stored content when two changes tied and the older one arrived last. Such a
        // read counts as older, so the confirmation is asked again later.
        if decision == Decision::Unchanged
            && item.from_api
            && prior.is_some_and(|p| {
                p.status == ReconStatus::Pending && obs.order_key < p.current.order_key
            })
        {
            decision = Decision::Older;
        }
        // A replayed event tying with the stored snapshot is that same event, read by the
        // current mapping: its content is the one to keep.
        if decision == Decision::Ambiguous && item.replay {
            decision = Decision::Rederived;
        }
        // An API read tying with the stored snapshot is the provider's own answer: it is
        // written (`converged`) as before; only webhook and sweep snapshots wait for one.
        if decision == Decision::Ambiguous && item.from_api {
            decision = Decision::ApiAnswer;
        }
        decisions.push(decision);
        let status = if item.from_api {
            ReconStatus::Converged
        } else if item.drift {
            ReconStatus::Drifted
        } else {
            ReconStatus::Pending
        };
        if decision == Decision::Unchanged {
            // The API agreeing with stored content confirms it; nothing else changes. A sweep's
            // correction (`drifted`) is confirmed the same way: the drift stays on record in
            // the version's source (`"kind": "sweep"`).
            if let Some(p) = prior.filter(|p| {
                item.from_api
                    && matches!(
                        p.status,
                        ReconStatus::Pending | ReconStatus::Failed | ReconStatus::Drifted
                    )
            }) {
                writes.push(restate(
                    conn,
                    obs,
                    &item.source,
                    p,
                    ReconStatus::Converged,
                    "confirmed_by_api",
                    // The read's time: it is when the provider was seen to agree.
                    obs.provider_updated_at,
                ));
                if let Some(k) = known.get_mut(&key) {
                    k.status = ReconStatus::Converged;
                }
            }
            continue;
        }
        if decision == Decision::Ambiguous {
            // Same provider time, same lifecycle stage, other content: which is newer cannot
            // be told, so neither is written over the other (older content never comes back).
            // The stored content stays, `pending`, and the confirming read decides.
            if let Some(p) = prior {
                writes.push(restate(
                    conn,
                    obs,
                    &item.source,
                    p,
                    ReconStatus::Pending,
                    decision.reason(),
                    p.provider_updated_at,
                ));
                if let Some(k) = known.get_mut(&key) {
                    k.status = ReconStatus::Pending;
                }
            }
            metrics::counter!("billsync_observations_ignored_total", "provider" => provider,
                "kind" => obs.object_type.as_str(), "outcome" => decision.reason())
            .increment(1);
            continue;
        }
        if !decision.creates_version() {
            metrics::counter!("billsync_observations_ignored_total", "provider" => provider,
                "kind" => obs.object_type.as_str(), "outcome" => decision.reason())
            .increment(1);
            continue;
        }
        let expected = prior.map(|p| p.current.version);
        let version = expected.unwrap_or(0) + 1;
        let current = Current {
            version,
            content_hash: hash,
            order_key: obs.order_key,
            tie_rank: obs.tie_rank,
        };
        let mut new = write(
            conn,
            obs,
            &item.source,
            text,
            &current,
            expected,
            version,
            status,
            decision.reason(),
        );
        new.findings = quality::check(obs.object_type, &data, now_micros() / 1_000_000)
            .into_iter()
            .map(|f| {
                metrics::counter!("billsync_quality_findings_total", "provider" => provider,
                    "kind" => obs.object_type.as_str(), "code" => f.code)
                .increment(1);
                (f.code.to_owned(), f.message)
            })
            .collect();
        writes.push(new);
        known.insert(
            key,
            Known {
                current,
                status,
                data,
                deleted: obs.deleted,
                provider_updated_at: obs.provider_updated_at,
            },
        );
    }
    let batch = ApplyBatch {
        connection_id: conn.record.id.clone(),
        merchant_id: conn.record.merchant_id.clone(),
        fence: None,
        now: now_micros(),
        writes,
        applied_inbox_ids: Vec::new(),
        dead_letters: Vec::new(),
        observations: Vec::new(),
        checkpoints: Vec::new(),
        schedule_refetches: Vec::new(),
        settled_refetches: Vec::new(),
    };
    (batch, decisions)
}

/// A write that changes only an object's reconciliation status (no version).
pub fn status_write(
    conn: &LiveConnection,
    o: &StoredObject,
    status: ReconStatus,
    reason: &str,
) -> ObjectWrite {
    ObjectWrite {
        object_type: o.object_type,
        provider_id: o.provider_id.clone(),
        id: format!("{}:{}", conn.record.provider.as_str(), o.provider_id),
        expected_version: Some(o.version),
        version: o.version,
        status,
        deleted: o.deleted,
        data_text: o.data.to_string(),
        content_hash: o.content_hash.clone(),
        order_key: o.order_key,
        tie_rank: o.tie_rank,
        provider_updated_at: o.provider_updated_at,
        source: json!({ "kind": "status" }),
        reason: reason.to_owned(),
        findings: Vec::new(),
    }
}

/// A write that keeps the stored content and version and changes the status only.
fn restate(
    conn: &LiveConnection,
    obs: &Observation,
    source: &Value,
    stored: &Known,
    status: ReconStatus,
    reason: &str,
    provider_updated_at: i64,
) -> ObjectWrite {
    let version = stored.current.version;
    let mut w = write(
        conn,
        obs,
        source,
        stored.data.to_string(),
        &stored.current,
        Some(version),
        version,
        status,
        reason,
    );
    w.deleted = stored.deleted;
    w.provider_updated_at = provider_updated_at;
    w
}

#[allow(clippy::too_many_arguments)]
fn write(
    conn: &LiveConnection,
    obs: &Observation,
    source: &Value,
    data_text: String,
    current: &Current,
    expected_version: Option<i64>,
    version: i64,
    status: ReconStatus,
    reason: &str,
) -> ObjectWrite {
    ObjectWrite {
        object_type: obs.object_type,
        provider_id: obs.provider_id.clone(),
        id: format!("{}:{}", conn.record.provider.as_str(), obs.provider_id),
        expected_version,
        version,
        status,
        deleted: obs.deleted,
        data_text,
        content_hash: current.content_hash.clone(),
        order_key: current.order_key,
        tie_rank: current.tie_rank,
        provider_updated_at: obs.provider_updated_at,
        source: source.clone(),
        reason: reason.to_owned(),
        findings: Vec::new(),
    }
}

/// Metric label for a version's reason (a fixed set, so cardinality stays bounded).
pub fn reason_label(reason: &str) -> &'static str {
    [
        Decision::Create,
        Decision::Newer,
        Decision::TieBrokenByLifecycle,
        Decision::Ambiguous,
        Decision::Rederived,
        Decision::ApiAnswer,
    ]
    .into_iter()
    .map(Decision::reason)
    .find(|r| *r == reason)
    .unwrap_or("other")
}

/// `data` with the `carried` fields taken from the stored `prior` data: fields the
/// observation's source leaves out (see [`Observation::carried`]) keep their stored value.
fn carry_over(data: &Value, prior: &Value, carried: &[&str]) -> Value {
    let mut data = data.clone();
    if let (Value::Object(d), Value::Object(p)) = (&mut data, prior) {
        for field in carried {
            if let Some(v) = p.get(*field) {
                d.insert((*field).to_owned(), v.clone());
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_fields_keep_their_stored_value_and_the_rest_is_new() {
        let event = json!({"name": "New", "tax_ids": []});
        let stored = json!({"name": "Old", "tax_ids": [{"type": "eu_vat", "value": "DE1"}]});
        let merged = carry_over(&event, &stored, &["tax_ids"]);
        assert_eq!(merged["name"], "New");
        assert_eq!(merged["tax_ids"][0]["value"], "DE1");
        // Nothing stored to carry: the observation's own (empty) value stays.
        let merged = carry_over(&event, &json!({"name": "Old"}), &["tax_ids"]);
        assert_eq!(merged["tax_ids"], json!([]));
    }
}
