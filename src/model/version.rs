//! The version rule (docs/architecture.md, invariant 4): objects only move forward, duplicates
//! never version.
//!
//! Pure decision logic; the pair actor feeds it the stored state and an observation and
//! writes whatever it decides.

use super::object::{content_hash, Observation};

/// What the store holds now for an object, as far as ordering is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub version: i64,
    pub content_hash: String,
    pub order_key: i64,
    pub tie_rank: i64,
}

/// Why an observation did or did not become the current content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// First sight of the object: version 1.
    Create,
    /// Newer than what is stored: a new version.
    Newer,
    /// Same provider time, but later in the object's lifecycle: a new version, still unconfirmed.
    TieBrokenByLifecycle,
    /// Same provider time and lifecycle stage with different content: cannot be ordered. The
    /// stored content stays (no version: it could be the older of the two coming back), the
    /// object is `pending`, and the provider API decides.
    Ambiguous,
    /// A replayed event tying with the stored snapshot (it is the same event): the content
    /// the current mapping derives replaces what an older one stored.
    Rederived,
    /// An API read tying with the stored snapshot: the provider's answer is written.
    ApiAnswer,
    /// Same content as stored: no version (a duplicate or an identical re-read).
    Unchanged,
    /// Older than what is stored: ignored, the version never goes back.
    Older,
}

impl Decision {
    /// Whether this decision writes a new version.
    pub fn creates_version(self) -> bool {
        matches!(
            self,
            Decision::Create
                | Decision::Newer
                | Decision::TieBrokenByLifecycle
                | Decision::Rederived
                | Decision::ApiAnswer
        )
    }

    /// The `reason` recorded with the version (the versions route, docs/api-reference.md).
    pub fn reason(self) -> &'static str {
        match self {
            Decision::Create => "first_seen",
            Decision::Newer => "newer_than_stored",
            Decision::TieBrokenByLifecycle => "same_time_later_lifecycle",
            Decision::Ambiguous => "same_time_unordered_pending_confirmation",
            Decision::Rederived => "replayed_with_current_mapping",
            Decision::ApiAnswer => "same_time_read_from_api",
            Decision::Unchanged => "unchanged",
            Decision::Older => "older_than_stored",
        }
    }
}

/// The lifecycle rank of a snapshot that an event announces as its object's creation: lower
/// than any other, since a `*.created` snapshot is never newer than another snapshot of the
/// same object (a same-second `customer.updated` arriving first must not be overwritten by it).
pub const CREATED_RANK: i64 = i64::MIN;

/// Whether an event type announces its object's creation (`customer.created`,
/// `subscription_created`, `Subscription.Created`): its last word is "created".
pub fn announces_creation(event_type: &str) -> bool {
    event_type
        .rsplit(['.', '_'])
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("created"))
}

/// Decides what an observation does to the stored object.
pub fn decide(current: Option<&Current>, obs: &Observation) -> Decision {
    decide_with_hash(current, obs, &content_hash(&obs.data, obs.deleted))
}

/// [`decide`], with the observation's content hash already computed.
pub fn decide_with_hash(current: Option<&Current>, obs: &Observation, obs_hash: &str) -> Decision {
    let Some(cur) = current else {
        return Decision::Create;
    };
    if obs_hash == cur.content_hash {
        return Decision::Unchanged;
    }
    match obs.order_key.cmp(&cur.order_key) {
        std::cmp::Ordering::Greater => Decision::Newer,
        std::cmp::Ordering::Less => Decision::Older,
        std::cmp::Ordering::Equal => match obs.tie_rank.cmp(&cur.tie_rank) {
            std::cmp::Ordering::Greater => Decision::TieBrokenByLifecycle,
            std::cmp::Ordering::Less => Decision::Older,
            std::cmp::Ordering::Equal => Decision::Ambiguous,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectType;
    use serde_json::json;

    fn obs(order_key: i64, tie_rank: i64, status: &str) -> Observation {
        Observation {
            object_type: ObjectType::Invoice,
            provider_id: "in_1".into(),
            data: json!({ "status": status }),
            deleted: false,
            order_key,
            tie_rank,
            provider_updated_at: order_key,
            carried: &[],
        }
    }

    fn stored(o: &Observation, version: i64) -> Current {
        Current {
            version,
            content_hash: content_hash(&o.data, o.deleted),
            order_key: o.order_key,
            tie_rank: o.tie_rank,
        }
    }

    #[test]
    fn creation_events_are_told_by_their_last_word() {
        for t in [
            "customer.created",
            "subscription_created",
            "Invoice.Created",
        ] {
            assert!(announces_creation(t), "{t}");
        }
        for t in [
            "customer.updated",
            "created.customer",
            "invoice.paid",
            "recreated",
        ] {
            assert!(!announces_creation(t), "{t}");
        }
        // Ranked below every other snapshot of the same second, in either arrival order.
        let updated = obs(10, 0, "updated");
        let created = obs(10, CREATED_RANK, "created");
        assert_eq!(
            decide(Some(&stored(&updated, 2)), &created),
            Decision::Older
        );
        assert_eq!(
            decide(Some(&stored(&created, 1)), &updated),
            Decision::TieBrokenByLifecycle
        );
    }

    #[test]
    fn first_observation_creates() {
        assert_eq!(decide(None, &obs(1, 0, "open")), Decision::Create);
    }

    #[test]
    fn identical_content_never_versions_even_if_newer() {
        let a = obs(1, 0, "open");
        assert_eq!(
            decide(Some(&stored(&a, 1)), &obs(5, 0, "open")),
            Decision::Unchanged
        );
    }

    #[test]
    fn older_snapshot_is_ignored() {
        let cur = stored(&obs(10, 0, "paid"), 2);
        assert_eq!(decide(Some(&cur), &obs(9, 2, "open")), Decision::Older);
    }

    #[test]
    fn same_second_is_ordered_by_lifecycle_then_ambiguous() {
        let cur = stored(&obs(10, 1, "open"), 1);
        assert_eq!(
            decide(Some(&cur), &obs(10, 2, "paid")),
            Decision::TieBrokenByLifecycle
        );
        let cur = stored(&obs(10, 2, "paid"), 2);
        assert_eq!(decide(Some(&cur), &obs(10, 1, "open")), Decision::Older);
        let cur = stored(&obs(10, 1, "open"), 1);
        assert_eq!(
            decide(Some(&cur), &obs(10, 1, "open-edited")),
            Decision::Ambiguous
        );
        assert!(!Decision::Ambiguous.creates_version());
        assert!(!Decision::Older.creates_version());
    }
}
