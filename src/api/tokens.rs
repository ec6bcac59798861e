//! Tokens (`/admin/v1/tokens`): scoped bearer tokens besides the configured admin token
//! (docs/api.md "Tokens").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a token may do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything, the admin API included.
    Admin,
    /// The read API only (`/v1/*`), maybe one merchant's.
    Read,
}

/// `POST /admin/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenIn {
    /// What the token is for (1 to 200 characters), shown in lists and the audit log.
    pub name: String,
    pub scope: Scope,
    /// Limits a `read` token to this merchant's `/v1/merchants/{merchant}/...` paths.
    #[serde(default)]
    pub merchant_id: Option<String>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TokenOut {
    pub token_id: String,
    pub name: String,
    pub scope: Scope,
    #[schema(required)]
    pub merchant_id: Option<String>,
    /// RFC 3339.
    #[schema(required)]
    pub created_at: Option<String>,
    /// RFC 3339; `null` while the token works.
    #[schema(required)]
    pub revoked_at: Option<String>,
}

/// The answer to `POST /admin/v1/tokens`: the only time the token itself is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TokenCreatedOut {
    #[serde(flatten)]
    pub token_info: TokenOut,
    /// The bearer token. Only its SHA-256 is stored: keep it now, it cannot be shown again.
    pub token: String,
}

/// `GET /admin/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TokenListOut {
    pub data: Vec<TokenOut>,
}
