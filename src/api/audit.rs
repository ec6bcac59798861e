//! The audit log (`GET /admin/v1/audit`): every admin action, who did it, in order
//! (docs/api.md "Audit log").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One admin action.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AuditEntryOut {
    /// Position in the log: rises with every entry; page with `after`.
    pub seq: i64,
    /// RFC 3339.
    #[schema(required)]
    pub at: Option<String>,
    /// Who: a token id, `admin-env` for the configured admin token, or `cli:USER` for the CLI
    /// acting on the store directly.
    pub token_id: String,
    /// E.g. `connection.create`, `connection.pause`, `token.create`, `dead_letter.retry`.
    pub action: String,
    /// The connection, token or dead letter acted on.
    pub target: String,
    /// What was asked, never a secret.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// `GET /admin/v1/audit`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AuditListOut {
    pub data: Vec<AuditEntryOut>,
    /// Pass as `after` for the next page; `null` on the last page.
    #[schema(required)]
    pub next_after: Option<i64>,
}
