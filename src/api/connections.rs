//! `/admin/v1/connections...`: the bodies that register and change a connection and start its
//! jobs, and the connection as answered (never a secret).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::jobs::JobProgressOut;
use crate::model::ObjectType;
use crate::model::ProviderKind;
use crate::store::ConnectionState;

/// `POST /admin/v1/connections`: one merchant's account at one provider.
///
/// Validated field by field by `crate::connections` (a `400` names the field); a unit test
/// there checks that it reads exactly the fields declared here.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ConnectionIn {
    /// Your id for the merchant: no control characters, no surrounding white space.
    #[schema(min_length = 1, max_length = 512)]
    pub merchant_id: String,
    pub provider: ProviderKind,
    /// The merchant's account at the provider (Stripe `acct_…`, a Chargebee site, …).
    #[schema(min_length = 1, max_length = 512)]
    pub account_id: String,
    /// Active webhook secrets (several during a rotation). For providers that authenticate
    /// webhooks with HTTP Basic (Chargebee, Zuora when so configured), `username:password`.
    #[schema(min_items = 1, max_items = 16)]
    pub webhook_secrets: Vec<String>,
    /// The key billsync reads the provider API with.
    #[schema(min_length = 1, max_length = 512)]
    pub api_key: String,
    /// The provider API's base; its real host when absent. `http://` only for loopback
    /// unless `BILLSYNC_ALLOW_PLAIN_HTTP=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    /// Requests per second to the provider API; the provider's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100_000)]
    pub rate_limit_per_sec: Option<i64>,
    /// Seconds between reconciliation sweeps; the configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 604_800)]
    pub reconcile_interval_secs: Option<i64>,
    /// The provider API version billsync requests and parses (Stripe's `Stripe-Version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// `PATCH /admin/v1/connections/{id}`: only the fields present change; `null` puts an
/// optional setting back to its default. Any other field is a `400`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ConnectionPatchIn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 16)]
    pub webhook_secrets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100_000)]
    pub rate_limit_per_sec: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 604_800)]
    pub reconcile_interval_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// `POST .../backfill`: every object kind changed since `since`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BackfillIn {
    /// RFC 3339, in the past.
    #[schema(format = DateTime)]
    pub since: String,
}

/// `POST .../resync`: a targeted re-pull of some object kinds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ResyncIn {
    #[schema(min_items = 1)]
    pub object_types: Vec<ObjectType>,
    /// RFC 3339, in the past.
    #[schema(format = DateTime)]
    pub since: String,
}

/// `POST .../replay`: re-derive objects from the raw events stored in `[from, to]`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReplayIn {
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub from: String,
    /// RFC 3339, not before `from`.
    #[schema(format = DateTime)]
    pub to: String,
    /// Change nothing: answer `200` with the objects the replay would change and how.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// `POST /admin/v1/connections/{id}/refetch`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RefetchIn {
    pub object_type: ObjectType,
    /// The canonical id (`stripe:cus_1`) or the provider's own (`cus_1`).
    pub id: String,
}

/// A read of one object, due now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RefetchOut {
    pub connection_id: String,
    pub object_type: ObjectType,
    /// The canonical id.
    pub id: String,
    /// RFC 3339.
    #[schema(required)]
    pub due_at: Option<String>,
}

/// The answer to a replay with `"dry_run": true`: nothing was queued or written.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReplayPreviewOut {
    pub dry_run: bool,
    /// Raw events in the range: what the replay would queue.
    pub raw_events: i64,
    /// Of those, how many the current mapping cannot read (the replay would dead-letter them).
    pub unmappable: i64,
    /// Every object the replay would give a new version, in id order.
    pub changes: Vec<ReplayChangeOut>,
}

/// One object a replay would change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReplayChangeOut {
    pub id: String,
    pub object_type: ObjectType,
    /// The stored version; `null` when the replay would create the object.
    #[schema(required)]
    pub version_now: Option<i64>,
    pub version_after: i64,
    pub deleted_after: bool,
    /// Top-level fields of `data` whose values would differ.
    pub fields: Vec<String>,
}

/// A connection as every admin call answers it: never a secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ConnectionOut {
    pub connection_id: String,
    pub merchant_id: String,
    pub provider: ProviderKind,
    pub account_id: String,
    pub state: ConnectionState,
    /// Where the provider posts this connection's webhooks.
    pub webhook_path: String,
    #[schema(required)]
    pub api_base_url: Option<String>,
    #[schema(required)]
    pub rate_limit_per_sec: Option<i64>,
    #[schema(required)]
    pub reconcile_interval_secs: Option<i64>,
    #[schema(required)]
    pub api_version: Option<String>,
    /// RFC 3339.
    #[schema(required)]
    pub created_at: Option<String>,
    /// RFC 3339: when a change of this connection was last applied.
    #[schema(required)]
    pub last_applied_at: Option<String>,
    /// The last failure of its provider API, if any was seen.
    #[schema(required)]
    pub last_provider_error: Option<ProviderErrorOut>,
    /// `GET` of one connection, and the answer of `backfill`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<JobProgressOut>,
    /// `GET` of one connection, and the answer of `resync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync: Option<JobProgressOut>,
    /// The answer of `replay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayOut>,
}

/// A failure of a connection's provider API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ProviderErrorOut {
    /// `tls_certificate`, `tls`, `connect`, `timeout`, `http_status` or `other`.
    pub kind: String,
    pub message: String,
    /// RFC 3339.
    #[schema(required)]
    pub at: Option<String>,
}

/// What a replay queued.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReplayOut {
    pub raw_events_queued: u64,
    /// Of those, how many were read back from the S3 archive (the range reaches past the hot
    /// window; docs/archive.md).
    #[serde(default)]
    pub raw_events_restored: u64,
}

/// `GET /admin/v1/connections`: a page of connections in id order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ConnectionListOut {
    pub data: Vec<ConnectionOut>,
    /// Pass as `after` for the next page; `null` on the last.
    #[schema(required)]
    pub next_after: Option<String>,
}
