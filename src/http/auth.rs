//! Bearer-token auth for `/admin/*` and `/v1/*` (docs/api.md "Tokens"): who is calling (a
//! [`Principal`], put in the request's extensions for the handlers and the audit log) and
//! whether they may. Only tokens' SHA-256 digests are kept; the configured admin token is
//! compared in constant time, the others are found by digest in the store on every request,
//! so a revoked token fails on its next call on every node.

use axum::extract::{RawPathParams, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::RequestExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::store::TokenScope;

/// The token id the audit log gives the configured admin token (`BILLSYNC_ADMIN_TOKEN`).
pub const ADMIN_ENV_TOKEN_ID: &str = "admin-env";

pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Who made a request: the token that authenticated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `admin-env` for the configured token, else the id of a token made with `POST
    /// /admin/v1/tokens`. The audit log's actor.
    pub token_id: String,
    pub scope: TokenScope,
    /// A read token limited to one merchant.
    pub merchant_id: Option<String>,
}

impl Principal {
    /// The configured admin token.
    pub fn admin_env() -> Self {
        Principal {
            token_id: ADMIN_ENV_TOKEN_ID.to_owned(),
            scope: TokenScope::Admin,
            merchant_id: None,
        }
    }

    /// Whether this principal may call `path`, whose path parameters are `params`: `None`
    /// when it may, else why not.
    fn refusal(&self, path: &str, merchant: Option<&str>) -> Option<String> {
        if path.starts_with("/admin/") && self.scope != TokenScope::Admin {
            return Some("a read token cannot use the admin API".to_owned());
        }
        match (&self.merchant_id, merchant) {
            (Some(own), Some(asked)) if own != asked => {
                Some(format!("this token reads merchant `{own}` only"))
            }
            // A merchant-limited token on a route that names no merchant: nothing it may read.
            (Some(own), None) if !path.starts_with("/admin/") => {
                Some(format!("this token reads merchant `{own}` only"))
            }
            _ => None,
        }
    }
}

pub async fn require_bearer(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = presented else {
        return ApiError::unauthorized().into_response();
    };
    let digest = token_digest(token);
    let principal = if bool::from(digest.ct_eq(&app.admin_token_digest)) {
        Principal::admin_env()
    } else {
        match app.store.token_by_digest(&hex::encode(digest)).await {
            Ok(Some(t)) => Principal {
                token_id: t.id,
                scope: t.scope,
                merchant_id: t.merchant_id,
            },
            Ok(None) => return ApiError::unauthorized().into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        }
    };
    // Routed already (a route layer): the path parameters are the route's, percent-decoded.
    let merchant = match request.extract_parts::<RawPathParams>().await {
        Ok(params) => params
            .iter()
            .find(|(name, _)| *name == "merchant")
            .map(|(_, v)| v.to_owned()),
        Err(_) => None,
    };
    if let Some(why) = principal.refusal(request.uri().path(), merchant.as_deref()) {
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", why).into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(merchant: Option<&str>) -> Principal {
        Principal {
            token_id: "tok_1".into(),
            scope: TokenScope::Read,
            merchant_id: merchant.map(str::to_owned),
        }
    }

    #[test]
    fn a_read_token_reads_and_never_administers() {
        let p = read(None);
        assert!(p
            .refusal("/v1/merchants/m_1/invoices", Some("m_1"))
            .is_none());
        assert!(p
            .refusal("/v1/merchants/m_2/invoices", Some("m_2"))
            .is_none());
        assert!(p.refusal("/admin/v1/connections", None).is_some());
        assert!(p.refusal("/admin/v1/audit", None).is_some());
    }

    #[test]
    fn a_merchant_token_reads_its_merchant_only() {
        let p = read(Some("m_1"));
        assert!(p
            .refusal("/v1/merchants/m_1/changes", Some("m_1"))
            .is_none());
        assert!(p
            .refusal("/v1/merchants/m_2/changes", Some("m_2"))
            .is_some());
        assert!(p.refusal("/v1/somewhere_else", None).is_some());
    }

    #[test]
    fn an_admin_token_may_do_everything() {
        let p = Principal::admin_env();
        assert!(p.refusal("/admin/v1/tokens", None).is_none());
        assert!(p
            .refusal("/v1/merchants/m_9/invoices", Some("m_9"))
            .is_none());
    }
}
