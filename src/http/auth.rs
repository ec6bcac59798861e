//! Bearer-token auth for `/admin/*` and `/v1/*` (docs/api.md "Tokens"). Only the token's SHA-256
//! is kept; comparison is constant-time.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub async fn require_bearer(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if bool::from(token_digest(token).ct_eq(&app.admin_token_digest)) => {
            next.run(request).await
        }
        _ => ApiError::unauthorized().into_response(),
    }
}
