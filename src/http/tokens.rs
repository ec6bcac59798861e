//! Admin API for tokens (`/admin/v1/tokens`): make a scoped token (shown once, stored as its
//! digest), list them, revoke one (docs/api.md "Tokens"). Checked on every request by
//! `super::auth`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::auth::{token_digest, Principal};
use super::error::ApiError;
use super::AppState;
use crate::api::{ErrorOut, Scope, TokenCreatedOut, TokenIn, TokenListOut, TokenOut};
use crate::model::random_token;
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::store::{AuditEntry, TokenRecord, TokenScope};

/// Make a token. The answer is the only time the token is shown.
#[utoipa::path(post, path = "/admin/v1/tokens", tag = "tokens", operation_id = "create_token",
    request_body = TokenIn,
    responses((status = 201, description = "Made; keep `token` now", body = TokenCreatedOut)))]
pub async fn create(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: TokenIn = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("body: {e}")))?;
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "must be 1 to 200 characters"));
    }
    let scope = match input.scope {
        Scope::Admin => TokenScope::Admin,
        Scope::Read => TokenScope::Read,
    };
    if let Some(m) = &input.merchant_id {
        if scope == TokenScope::Admin {
            return Err(invalid("merchant_id", "limits read tokens only"));
        }
        if m.is_empty() || m.len() > 200 {
            return Err(invalid("merchant_id", "must be 1 to 200 characters"));
        }
    }
    let token = format!("bst_{}", random_token(40));
    let record = TokenRecord {
        id: format!("tok_{}", random_token(16)),
        name: name.to_owned(),
        scope,
        merchant_id: input.merchant_id.clone(),
        digest: hex::encode(token_digest(&token)),
        created_at: now_micros(),
        revoked_at: None,
    };
    let audit = AuditEntry {
        at: record.created_at,
        actor: who.token_id,
        action: "token.create".into(),
        target: record.id.clone(),
        detail: json!({ "name": record.name, "scope": scope.as_str(), "merchant_id": record.merchant_id }),
    };
    app.store.insert_token(&record, &audit).await?;
    tracing::info!(token_id = %record.id, scope = scope.as_str(), "token made");
    let answer = TokenCreatedOut {
        token_info: view(&record),
        token,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Every token, revoked ones included; never a secret.
#[utoipa::path(get, path = "/admin/v1/tokens", tag = "tokens", operation_id = "list_tokens",
    responses((status = 200, body = TokenListOut)))]
pub async fn list(State(app): State<AppState>) -> Result<Json<TokenListOut>, ApiError> {
    let tokens = app.store.list_tokens().await?;
    Ok(Json(TokenListOut {
        data: tokens.iter().map(view).collect(),
    }))
}

/// Revoke a token: its next call, on any node, gets `401`.
#[utoipa::path(delete, path = "/admin/v1/tokens/{token_id}", tag = "tokens", operation_id = "revoke_token",
    params(("token_id" = String, Path, description = "The token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No working token with this id", body = ErrorOut),
    ))]
pub async fn revoke(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(token_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let audit = AuditEntry {
        at: now_micros(),
        actor: who.token_id,
        action: "token.revoke".into(),
        target: token_id.clone(),
        detail: json!({}),
    };
    if !app.store.revoke_token(&token_id, &audit).await? {
        return Err(ApiError::not_found("no working token with this id"));
    }
    tracing::info!(token_id = %token_id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

fn view(t: &TokenRecord) -> TokenOut {
    TokenOut {
        token_id: t.id.clone(),
        name: t.name.clone(),
        scope: match t.scope {
            TokenScope::Admin => Scope::Admin,
            TokenScope::Read => Scope::Read,
        },
        merchant_id: t.merchant_id.clone(),
        created_at: micros_to_rfc3339(t.created_at),
        revoked_at: t.revoked_at.and_then(micros_to_rfc3339),
    }
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::bad_request("invalid_request", format!("`{field}` {message}"))
}
