//! Canonical object kinds, reconciliation states, and one observed state of an object.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical kinds of object billsync keeps (docs/api.md, "What `data` holds").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    Customer,
    Invoice,
    CreditNote,
    Subscription,
    Transaction,
}

impl ObjectType {
    pub const ALL: [ObjectType; 5] = [
        ObjectType::Customer,
        ObjectType::Invoice,
        ObjectType::CreditNote,
        ObjectType::Subscription,
        ObjectType::Transaction,
    ];

    /// The singular name used in `object_type` fields and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Customer => "customer",
            ObjectType::Invoice => "invoice",
            ObjectType::CreditNote => "credit_note",
            ObjectType::Subscription => "subscription",
            ObjectType::Transaction => "transaction",
        }
    }

    /// The plural collection name used in read API paths.
    pub fn collection(self) -> &'static str {
        match self {
            ObjectType::Customer => "customers",
            ObjectType::Invoice => "invoices",
            ObjectType::CreditNote => "credit_notes",
            ObjectType::Subscription => "subscriptions",
            ObjectType::Transaction => "transactions",
        }
    }

    pub fn parse(name: &str) -> Option<ObjectType> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    pub fn from_collection(name: &str) -> Option<ObjectType> {
        Self::ALL.into_iter().find(|t| t.collection() == name)
    }
}

/// How far the provider API is known to agree with the stored content (docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReconStatus {
    Pending,
    Converged,
    Drifted,
    Failed,
}

impl ReconStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconStatus::Pending => "pending",
            ReconStatus::Converged => "converged",
            ReconStatus::Drifted => "drifted",
            ReconStatus::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<ReconStatus> {
        [
            ReconStatus::Pending,
            ReconStatus::Converged,
            ReconStatus::Drifted,
            ReconStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// One observed state of one provider object, already mapped to canonical fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub object_type: ObjectType,
    /// The provider's own id (`in_123`), without the `stripe:` prefix.
    pub provider_id: String,
    /// Canonical `data` (docs/api.md, "What `data` holds").
    pub data: Value,
    pub deleted: bool,
    /// The provider's ordering value for this state, in microseconds (event time for Stripe,
    /// the object's update time or version counter elsewhere). Larger is newer.
    pub order_key: i64,
    /// A tie-break for equal `order_key`s from the object's own lifecycle (e.g. an invoice that
    /// is `paid` is later than one that is `open`). Equal ranks cannot be ordered.
    pub tie_rank: i64,
    /// The provider's time of the change, microseconds (`provider_updated_at`, docs/api-reference.md).
    pub provider_updated_at: i64,
    /// Canonical `data` fields this observation cannot know because its source leaves them
    /// out (a Stripe event's customer has no `tax_ids`; a Paddle event's customer no
    /// address): they are carried over from the stored version rather than emptied.
    pub carried: &'static [&'static str],
}

/// A stable hash of an object's stored content (`data` and `deleted`): equal hashes mean a
/// duplicate or identical re-read, which must never create a version.
pub fn content_hash(data: &Value, deleted: bool) -> String {
    // serde_json's default map is ordered by key, so serialization is canonical.
    content_hash_of_text(&data.to_string(), deleted)
}

/// [`content_hash`] of already serialized `data`.
pub fn content_hash_of_text(data_text: &str, deleted: bool) -> String {
    let mut hasher = Sha256::new();
    hasher.update(if deleted { b"1" } else { b"0" });
    hasher.update(data_text.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip() {
        for t in ObjectType::ALL {
            assert_eq!(ObjectType::parse(t.as_str()), Some(t));
            assert_eq!(ObjectType::from_collection(t.collection()), Some(t));
        }
        assert_eq!(ObjectType::parse("invoices"), None);
    }

    #[test]
    fn content_hash_ignores_key_order_but_not_values_or_deletion() {
        let a = json!({"a": 1, "b": {"c": 2, "d": 3}});
        let b: Value = serde_json::from_str(r#"{"b":{"d":3,"c":2},"a":1}"#).unwrap();
        assert_eq!(content_hash(&a, false), content_hash(&b, false));
        assert_ne!(content_hash(&a, false), content_hash(&a, true));
        assert_ne!(
            content_hash(&a, false),
            content_hash(&json!({"a": 2}), false)
        );
    }
}
