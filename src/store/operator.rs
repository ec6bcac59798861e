//! What operators do through the admin API beyond connections: tokens, the audit log, dead
//! letters, reads of one object on demand and the replay preview (docs/api.md "Tokens", "Audit log", "Dead letters"). A part of the [`super::Store`]
//! trait kept apart so the main SQL file need not grow; written once in `sql_operator.rs`.

use async_trait::async_trait;
use serde_json::Value;

use super::column_decode::{ByName, JsonText};
use super::{AuditEntry, InboxItem, StoreError};
use crate::model::ObjectType;

/// What a token may do: `admin` everything, `read` the read API only (maybe one merchant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    Admin,
    Read,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Admin => "admin",
            TokenScope::Read => "read",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(TokenScope::Admin),
            "read" => Some(TokenScope::Read),
            _ => None,
        }
    }
}

/// A token as stored: its digest, never the token.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "ByName<TokenScope>")]
    pub scope: TokenScope,
    /// A read token limited to one merchant.
    pub merchant_id: Option<String>,
    /// Hex SHA-256 of the token.
    pub digest: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// One entry of the audit log as read back.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: i64,
    /// The token id that acted (`admin-env` for the configured token, `cli:USER` for the CLI
    /// acting on the store directly).
    pub actor: String,
    pub action: String,
    pub target: String,
    #[sqlx(try_from = "JsonText")]
    pub detail: Value,
}

/// An inbox item that kept failing, set aside with its last error.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub connection_id: String,
    pub provider_event_id: String,
    pub event_type: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub dead_at: i64,
}

/// Tokens, audit log and dead letters. Every change is audited in its own transaction.
#[async_trait]
pub trait OperatorStore: Send + Sync + 'static {
    /// Stores a new token (its digest), audited.
    async fn insert_token(&self, token: &TokenRecord, audit: &AuditEntry)
        -> Result<(), StoreError>;

    /// The token with this digest, unless revoked.
    async fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Every token, revoked ones included, in id order.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token, audited; `false` when there is no such token or it was revoked before.
    async fn revoke_token(&self, id: &str, audit: &AuditEntry) -> Result<bool, StoreError>;

    /// Audit entries after `after` (a `seq`), oldest first.
    async fn audit_log(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>, StoreError>;

    /// Dead letters in id order, optionally one connection's, after `after` (an id).
    async fn dead_letters(
        &self,
        connection_id: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// One dead letter.
    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError>;

    /// Puts a dead letter back into the inbox, due now with its attempts reset, audited and
    /// announced to the node that owns its connection. `false` when it is not dead (any more).
    async fn retry_dead_letter(&self, id: i64, audit: &AuditEntry) -> Result<bool, StoreError>;

    /// The raw events a replay of `[from, to]` would queue, in the order it would queue them,
    /// as inbox items marked `replay` (inbox id 0: nothing is queued). At most `limit`.
    async fn raw_events_between(
        &self,
        connection_id: &str,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<InboxItem>, StoreError>;

    /// Asks for a read of one object from the provider now (real-time priority; a read already
    /// due later is moved to now), audited and announced to the node that owns the connection.
    async fn request_refetch(
        &self,
        connection_id: &str,
        object_type: ObjectType,
        provider_id: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// Drops a dead letter from the inbox, audited; the raw event stays. `false` when it is
    /// not dead (any more).
    async fn discard_dead_letter(&self, id: i64, audit: &AuditEntry) -> Result<bool, StoreError>;
}
