//! Plain records the store takes and returns.

use serde_json::Value;

use super::column_decode::{ByName, JsonText, ZstdFrame};
use crate::model::ProviderKind;
use crate::model::{ObjectType, ReconStatus};

/// Whether a connection is processed (`active`) or stopped by an operator (`paused`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    Active,
    Paused,
    /// Deleted through the admin API: nothing is processed and its webhook path answers 404,
    /// but its history stays readable and its merchant-provider pair stays taken.
    Archived,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Active => "active",
            ConnectionState::Paused => "paused",
            ConnectionState::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(ConnectionState::Active),
            "paused" => Some(ConnectionState::Paused),
            "archived" => Some(ConnectionState::Archived),
            _ => None,
        }
    }
}

/// A connection as stored: secrets stay sealed (see `crate::secrets`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConnectionRecord {
    pub id: String,
    pub merchant_id: String,
    #[sqlx(try_from = "ByName<ProviderKind>")]
    pub provider: ProviderKind,
    pub account_id: String,
    pub sealed_webhook_secrets: Vec<u8>,
    pub sealed_api_key: Option<Vec<u8>>,
    pub api_base_url: Option<String>,
    pub rate_limit_per_sec: Option<i64>,
    pub reconcile_interval_secs: Option<i64>,
    pub api_version: Option<String>,
    #[sqlx(try_from = "ByName<ConnectionState>")]
    pub state: ConnectionState,
    pub lease_epoch: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_applied_at: Option<i64>,
    /// The last failure of its provider API, if any was seen.
    #[sqlx(flatten, try_from = "ProviderFaultColumns")]
    pub last_provider_error: Option<ProviderFault>,
}

/// A failure of a connection's provider API, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFault {
    /// `tls_certificate`, `tls`, `connect`, `timeout`, `http_status`, `other`.
    pub kind: String,
    pub message: String,
    pub at: i64,
}

/// The columns of `connections` a [`ProviderFault`] is kept in, as read: there is one when
/// `last_provider_error` (its message) is set.
#[derive(sqlx::FromRow)]
struct ProviderFaultColumns {
    last_provider_error_kind: Option<String>,
    last_provider_error: Option<String>,
    last_provider_error_at: Option<i64>,
}

impl From<ProviderFaultColumns> for Option<ProviderFault> {
    fn from(columns: ProviderFaultColumns) -> Self {
        let message = columns.last_provider_error?;
        Some(ProviderFault {
            kind: columns.last_provider_error_kind.unwrap_or_default(),
            message,
            at: columns.last_provider_error_at.unwrap_or_default(),
        })
    }
}

/// One admin action for the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
}

/// A verified event (webhook body or API observation) to store as received.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub connection_id: String,
    pub provider_event_id: String,
    pub event_type: String,
    /// `webhook`, `api` or `sweep`.
    pub source: &'static str,
    pub received_at: i64,
    pub body: RawBody,
}

/// A body as `raw_events` keeps it: zstd-compressed, with the SHA-256 of the bytes received.
///
/// Sealed where the body arrives (a webhook's request task, a pull's fetch task), not by the
/// writer that commits it: an intake writer commits for every request waiting, and while it
/// compressed their bodies one after another its store connection sat idle (SQLite has one).
#[derive(Debug, Clone)]
pub struct RawBody {
    zstd: Vec<u8>,
    sha256: String,
}

impl RawBody {
    pub fn seal(body: &[u8]) -> Result<Self, super::StoreError> {
        Ok(RawBody {
            zstd: super::raw_body::compress(body)?,
            sha256: super::sql::sha256_hex(body),
        })
    }

    /// The zstd frame stored.
    pub fn zstd(&self) -> &[u8] {
        &self.zstd
    }

    /// Hex SHA-256 of the body as received.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    Stored { raw_event_id: i64 },
    Duplicate,
}

/// An inbox row ready to apply.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxItem {
    pub inbox_id: i64,
    pub raw_event_id: i64,
    pub provider_event_id: String,
    pub event_type: String,
    pub source: String,
    pub received_at: i64,
    pub attempts: i64,
    /// Queued by `replay`: the event was applied before and is re-derived now.
    pub replay: bool,
    /// The raw body, decompressed.
    #[sqlx(rename = "body_zstd", try_from = "ZstdFrame")]
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct InboxDepth {
    pub pending: i64,
    pub dead: i64,
}

/// An object's stored state, as the pair actor needs it to decide.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredObject {
    #[sqlx(try_from = "ByName<ObjectType>")]
    pub object_type: ObjectType,
    pub provider_id: String,
    pub version: i64,
    #[sqlx(try_from = "ByName<ReconStatus>")]
    pub status: ReconStatus,
    pub deleted: bool,
    #[sqlx(try_from = "JsonText")]
    pub data: Value,
    pub content_hash: String,
    pub order_key: i64,
    pub tie_rank: i64,
    pub provider_updated_at: i64,
}

/// One write to an object, checked against the version the writer read.
#[derive(Debug, Clone)]
pub struct ObjectWrite {
    pub object_type: ObjectType,
    pub provider_id: String,
    /// The canonical id, `{provider}:{provider_id}`.
    pub id: String,
    /// The version the writer read (`None`: the object must not exist yet).
    pub expected_version: Option<i64>,
    /// Equal to `expected_version` for a status-only change; one more for a new version.
    pub version: i64,
    pub status: ReconStatus,
    pub deleted: bool,
    /// The canonical data, serialized (what is stored and hashed), computed once.
    pub data_text: String,
    pub content_hash: String,
    pub order_key: i64,
    pub tie_rank: i64,
    pub provider_updated_at: i64,
    /// What produced the version (raw event, API read).
    pub source: Value,
    /// Why it won (`Decision::reason`).
    pub reason: String,
    /// Data-quality checks this version fails (`code`, `message`); stored with it.
    pub findings: Vec<(String, String)>,
}

impl ObjectWrite {
    pub fn is_new_version(&self) -> bool {
        self.expected_version != Some(self.version)
    }
}

/// Everything one apply step of a pair actor commits at once.
#[derive(Debug, Clone)]
pub struct ApplyBatch {
    pub connection_id: String,
    pub merchant_id: String,
    /// The lease the writing node holds on the connection's shard; the store refuses the
    /// batch when it is no longer current. `None` on a store that serves one node.
    pub fence: Option<super::Fence>,
    pub now: i64,
    pub writes: Vec<ObjectWrite>,
    /// Inbox rows this batch applies (deleted in the same transaction).
    pub applied_inbox_ids: Vec<i64>,
    /// Inbox rows that can never apply (kept, marked dead, with the reason).
    pub dead_letters: Vec<(i64, String)>,
    /// API observations to keep as raw events (no inbox rows: they are applied here).
    pub observations: Vec<IncomingEvent>,
    /// The pull windows this batch advances, checkpointed with their objects.
    pub checkpoints: Vec<WindowCheckpoint>,
    /// Objects to read back from the provider API. One already scheduled keeps its row and
    /// is read at the later of the two due times: a read too early for either can settle
    /// neither (a sweep's find waits out the API lag; a confirmation due sooner must not
    /// answer for it with the state from before the change).
    pub schedule_refetches: Vec<Refetch>,
    /// Confirmations that are settled (the object converged or failed), as they were read.
    /// One whose row was moved later while its read was in flight stays, to be read again.
    pub settled_refetches: Vec<Refetch>,
}

impl ApplyBatch {
    /// The lease epoch stored with the objects it writes (1 on a store that serves one node).
    pub fn writer_epoch(&self) -> i64 {
        self.fence.map_or(1, |f| f.epoch)
    }
}

/// A pending confirmation read of one object.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Refetch {
    #[sqlx(try_from = "ByName<ObjectType>")]
    pub object_type: ObjectType,
    pub provider_id: String,
    pub due_at: i64,
    pub attempts: i64,
    pub first_seen_at: i64,
    /// Which due reads come first: [`Refetch::REAL_TIME`] (a webhook's change or the read a
    /// thin webhook needs) before [`Refetch::RECONCILE`] (what a sweep found). An object
    /// scheduled both ways keeps the higher priority.
    pub priority: i64,
}

impl Refetch {
    pub const REAL_TIME: i64 = 0;
    pub const RECONCILE: i64 = 1;
}

/// A pull job (`backfill`, `resync`) of one connection.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SyncJob {
    pub connection_id: String,
    pub job: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// The time range it pulls, unix seconds `[since, until)`.
    pub since: i64,
    pub until: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

/// One cursor stream of a job: a list endpoint over a time window.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SyncWindow {
    pub job: String,
    pub stream: String,
    pub window_start: i64,
    pub window_end: i64,
    pub cursor: Option<String>,
    /// The provider time the window's walk has reached (progress).
    pub reached: Option<i64>,
    pub done: bool,
    pub objects: i64,
    pub pages: i64,
    pub requests: i64,
}

/// Progress of one window after a page, written with the page's objects.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowCheckpoint {
    pub job: String,
    pub stream: String,
    pub window_start: i64,
    pub cursor: Option<String>,
    pub reached: Option<i64>,
    pub done: bool,
    pub objects: i64,
    pub requests: i64,
}

/// An object as the read API shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ObjectView {
    pub id: String,
    pub merchant_id: String,
    pub connection_id: String,
    #[sqlx(try_from = "ByName<ObjectType>")]
    pub object_type: ObjectType,
    pub version: i64,
    #[sqlx(try_from = "ByName<ReconStatus>")]
    pub status: ReconStatus,
    pub deleted: bool,
    pub provider_updated_at: i64,
    pub updated_at: i64,
    #[sqlx(try_from = "JsonText")]
    pub data: Value,
}

/// Filters and position of a list page.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub updated_after: Option<i64>,
    pub status: Option<ReconStatus>,
    /// Keyset position: the (`updated_at`, `id`) of the last object of the previous page.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct VersionView {
    pub version: i64,
    pub recorded_at: i64,
    pub deleted: bool,
    #[sqlx(try_from = "ByName<ReconStatus>")]
    pub status: ReconStatus,
    pub provider_updated_at: i64,
    #[sqlx(try_from = "JsonText")]
    pub data: Value,
    #[sqlx(try_from = "JsonText")]
    pub source: Value,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChangeView {
    pub seq: i64,
    pub id: String,
    pub connection_id: String,
    #[sqlx(try_from = "ByName<ObjectType>")]
    pub object_type: ObjectType,
    pub version: i64,
    pub deleted: bool,
    pub recorded_at: i64,
}

/// A connection's reconciliation sweep state.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Sweep {
    /// Unix seconds: changes before this were swept (the next sweep starts a bit earlier).
    pub position: i64,
    pub next_run_at: i64,
    pub last_run_at: Option<i64>,
    /// Events the last sweep found that no webhook had delivered.
    pub last_found: i64,
    pub total_found: i64,
    /// Where the next sweep resumes in a provider's events list walked by cursor (Paddle:
    /// the last event id read); `None` for providers swept by time.
    #[sqlx(rename = "resume_cursor")]
    pub cursor: Option<String>,
}

/// Objects of one connection, kind and status (sync-status report).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StatusCount {
    pub connection_id: String,
    #[sqlx(try_from = "ByName<ObjectType>")]
    pub object_type: ObjectType,
    #[sqlx(try_from = "ByName<ReconStatus>")]
    pub status: ReconStatus,
    pub count: i64,
    /// Oldest `provider_updated_at` among them, microseconds.
    pub oldest: i64,
}

/// Unfinished work of one connection (sync-status report).
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct Backlog {
    pub inbox: i64,
    /// Oldest unapplied inbox row, microseconds.
    pub oldest_inbox: Option<i64>,
    pub refetches: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_fault_is_read_when_its_message_is_stored() {
        let columns = |kind: Option<&str>, message: Option<&str>, at: Option<i64>| {
            Option::<ProviderFault>::from(ProviderFaultColumns {
                last_provider_error_kind: kind.map(str::to_owned),
                last_provider_error: message.map(str::to_owned),
                last_provider_error_at: at,
            })
        };
        assert_eq!(columns(Some("tls"), None, Some(5)), None);
        assert_eq!(
            columns(None, Some("refused"), None),
            Some(ProviderFault {
                kind: String::new(),
                message: "refused".into(),
                at: 0
            })
        );
    }

    #[test]
    fn a_sealed_body_keeps_the_bytes_received_and_their_sha256() {
        let sealed = RawBody::seal(b"abc").unwrap();
        assert_eq!(
            super::super::raw_body::decompress(sealed.zstd()).unwrap(),
            b"abc"
        );
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            sealed.sha256(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
