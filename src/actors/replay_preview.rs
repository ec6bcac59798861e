//! The replay preview (`POST /admin/v1/connections/{id}/replay` with `"dry_run": true`): what a
//! replay of a range would change, worked out as the pair actor would apply it (the same
//! mapping of each stored event, the same decisions in the same order) and written nowhere.
//! Nothing is counted in the metrics either: the decisions run under a recorder that drops
//! everything.

use std::collections::BTreeMap;

use serde_json::Value;
use thiserror::Error;

use super::apply::{decide_known, read_known, Sourced};
use super::pair::{map_event, observe_page};
use crate::connections::LiveConnection;
use crate::model::ObjectType;
use crate::store::{Store, StoreError};

/// The most raw events one preview reads (all are held in memory at once).
pub const MAX_EVENTS: i64 = 50_000;

#[derive(Debug, Error)]
pub enum PreviewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the range holds more than {MAX_EVENTS} raw events: preview a narrower one")]
    TooLarge,
}

/// One object a replay would give new versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub object_type: ObjectType,
    /// The stored version; `None` when the replay would create the object.
    pub version_now: Option<i64>,
    /// Its version after the replay.
    pub version_after: i64,
    pub deleted_after: bool,
    /// The top-level fields of `data` whose values would differ, sorted.
    pub fields: Vec<String>,
}

/// What a replay of the range would do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preview {
    /// Raw events in the range (what the replay would queue).
    pub raw_events: usize,
    /// Of those, how many the current mapping cannot read (the replay would dead-letter them).
    pub unmappable: usize,
    /// Objects that would get new versions, in id order.
    pub changes: Vec<Change>,
}

pub async fn preview(
    store: &dyn Store,
    conn: &LiveConnection,
    from: i64,
    to: i64,
) -> Result<Preview, PreviewError> {
    let items = store
        .raw_events_between(&conn.record.id, from, to, MAX_EVENTS + 1)
        .await?;
    if items.len() as i64 > MAX_EVENTS {
        return Err(PreviewError::TooLarge);
    }
    let mut sourced: Vec<Sourced> = Vec::new();
    let mut unmappable = 0;
    for item in &items {
        let mapped = if item.source == "api" {
            observe_page(conn, item)
        } else {
            map_event(conn, item).map(|one| one.into_iter().collect())
        };
        match mapped {
            Ok(mut objects) => sourced.append(&mut objects),
            Err(_) => unmappable += 1,
        }
    }
    let known = read_known(store, conn, &sourced).await?;
    let before: BTreeMap<String, (i64, Value)> = known
        .iter()
        .map(|((kind, provider_id), k)| {
            let (version, data) = k.version_and_data();
            (
                canonical_id(conn, *kind, provider_id),
                (version, data.clone()),
            )
        })
        .collect();
    let recorder = metrics::NoopRecorder;
    let (batch, _) =
        metrics::with_local_recorder(&recorder, || decide_known(conn, &sourced, known));
    // The last new version of each object is what the replay leaves.
    let mut after: BTreeMap<String, Change> = BTreeMap::new();
    for w in batch.writes.iter().filter(|w| w.is_new_version()) {
        let now = before.get(&w.id);
        let data: Value = serde_json::from_str(&w.data_text).unwrap_or(Value::Null);
        after.insert(
            w.id.clone(),
            Change {
                id: w.id.clone(),
                object_type: w.object_type,
                version_now: now.map(|(v, _)| *v),
                version_after: w.version,
                deleted_after: w.deleted,
                fields: changed_fields(now.map(|(_, d)| d), &data),
            },
        );
    }
    Ok(Preview {
        raw_events: items.len(),
        unmappable,
        changes: after.into_values().collect(),
    })
}

/// `{provider}:{provider_id}`, as the writes name objects (the kind is not part of it).
fn canonical_id(conn: &LiveConnection, _kind: ObjectType, provider_id: &str) -> String {
    format!("{}:{}", conn.record.provider.as_str(), provider_id)
}

/// The top-level keys whose values differ between `before` (none: every key) and `after`.
fn changed_fields(before: Option<&Value>, after: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let old = before.and_then(Value::as_object).unwrap_or(&empty);
    let new = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_fields_names_what_differs_and_only_that() {
        let before = json!({"email": "a@x", "name": "A", "gone": 1});
        let after = json!({"email": "b@x", "name": "A", "new": true});
        assert_eq!(
            changed_fields(Some(&before), &after),
            vec!["email", "gone", "new"]
        );
        assert_eq!(changed_fields(None, &json!({"a": 1})), vec!["a"]);
        assert!(changed_fields(Some(&before), &before).is_empty());
    }
}
