//! The HTTP error shape (docs/api.md "Errors"): `{"error": {"code", "message"}}`. Messages never
//! carry a secret, a signature or a raw payload. Handlers answer with [`ApiError`]; every
//! other error answer (axum's rejections and fallbacks) is put in the same shape by the
//! [`contract_errors`] middleware, and hyper's own answers to heads it cannot parse by the
//! server's socket guard (`guarded_io`), both with [`ApiError::for_status`].

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::connections::ConnectionError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }

    /// The error for a bare status made by something other than a handler: a code per status
    /// and a fixed message, so nothing of the request is ever echoed.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => (
                "bad_request",
                "the request is malformed (its path, query, headers or body)",
            ),
            401 => return Self::unauthorized(),
            403 => ("forbidden", "this token may not do this"),
            404 => ("not_found", "no such route"),
            405 => ("method_not_allowed", "method not allowed on this route"),
            408 => ("request_timeout", "the request did not arrive in time"),
            411 => ("length_required", "this request needs a content-length"),
            413 => (
                "payload_too_large",
                "the body is larger than this route accepts",
            ),
            414 => ("uri_too_long", "the request target is too long"),
            415 => (
                "unsupported_media_type",
                "this route does not accept this content type",
            ),
            417 => ("expectation_failed", "the expectation cannot be met"),
            422 => ("unprocessable_entity", "the body cannot be processed"),
            429 => ("too_many_requests", "too many requests; retry later"),
            431 => ("headers_too_large", "the request's headers are too large"),
            500 => ("internal", "internal error"),
            501 => ("not_implemented", "not implemented"),
            503 => return Self::unavailable(),
            505 => (
                "http_version_not_supported",
                "this HTTP version is not supported",
            ),
            _ if status.is_server_error() => ("server_error", "the server failed to answer"),
            _ => ("client_error", "the request cannot be served"),
        };
        Self::new(status, code, message)
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the store cannot durably accept this now; retry later",
        )
    }
}

/// Marks an answer already in the one error shape (docs/api.md "Errors"), which [`contract_errors`] leaves as it is.
#[derive(Clone, Copy)]
struct ContractShaped;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(ContractShaped);
        if self.status == StatusCode::UNAUTHORIZED && self.code == "invalid_credentials" {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"billsync\""),
            );
        }
        response
    }
}

/// Headers of an error answer that still hold once its body is replaced.
const KEPT_HEADERS: [HeaderName; 4] = [
    header::ALLOW,
    header::WWW_AUTHENTICATE,
    header::RETRY_AFTER,
    header::CONNECTION,
];

/// Middleware (outermost on the router): an error answer not made by [`ApiError`] (axum's
/// text rejections: body over the limit, bad percent-encoding, ...) becomes the error
/// JSON for its status.
pub async fn contract_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<ContractShaped>().is_some()
    {
        return response;
    }
    let mut shaped = ApiError::for_status(status).into_response();
    for name in KEPT_HEADERS {
        if let Some(value) = response.headers().get(&name) {
            shaped.headers_mut().insert(name, value.clone());
        }
    }
    shaped
}

/// The error body (docs/api.md) for a bare `status` (see [`ApiError::for_status`]), as bytes.
pub fn contract_body(status: StatusCode) -> Vec<u8> {
    let e = ApiError::for_status(status);
    json!({ "error": { "code": e.code, "message": e.message } })
        .to_string()
        .into_bytes()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        ApiError::unavailable()
    }
}

impl From<ConnectionError> for ApiError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Invalid { field, message } => {
                ApiError::bad_request("invalid_request", format!("`{field}` {message}"))
            }
            e @ ConnectionError::PairTaken { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "{e}; a merchant has one connection per provider (register another account \
                     under another merchant id)"
                ),
            ),
            ConnectionError::Store(e) => e.into(),
            ConnectionError::Secrets(e) => {
                tracing::error!(error = %e, "connection secrets cannot be opened");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "connection secrets cannot be opened with this node's key",
                )
            }
        }
    }
}
