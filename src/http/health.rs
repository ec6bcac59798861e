//! `/healthz` (the process runs), `/readyz` (the store answers), `/metrics` (Prometheus).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::AppState;
use crate::api::{ErrorOut, HealthOut, ReadyOut};

/// `200` while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = HealthOut)))]
pub async fn healthz() -> Json<HealthOut> {
    Json(HealthOut {
        status: "ok".into(),
    })
}

/// `200` when the store answers, `503` otherwise.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, body = ReadyOut),
        (status = 503, description = "The store does not answer", body = ErrorOut),
    ))]
pub async fn readyz(State(app): State<AppState>) -> Response {
    match app.store.ping().await {
        Ok(()) => Json(ReadyOut {
            status: "ready".into(),
            store: app.store.backend().into(),
        })
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: store does not answer");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store does not answer",
            )
            .into_response()
        }
    }
}

/// Prometheus text exposition of the node's metrics.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}
