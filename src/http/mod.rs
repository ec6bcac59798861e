//! HTTP: webhook intake, the read API, the admin API, health and metrics, on one axum router,
//! served by our own loop over hyper ([`serve`]) with bounded times and a connection cap.

mod admin;
mod audit;
mod auth;
mod cluster;
mod conn_service;
mod conn_watch;
mod dead_letters;
pub mod error;
pub mod fdlimit;
mod guarded_io;
mod health;
pub mod intake;
pub mod openapi;
pub mod openapi_reference;
mod quality;
mod query;
mod read;
mod refetch;
mod replay;
mod serve;
mod status;
mod tokens;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{middleware, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;

pub use auth::{token_digest, Principal, ADMIN_ENV_TOKEN_ID};
pub use conn_watch::Timeouts;
pub use error::ApiError;
pub use serve::{serve, Limits};

use crate::actors::SupervisorHandle;
use crate::connections::Connections;
use crate::intake_sink::IntakeSink;
use crate::store::Store;

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub connections: Arc<Connections>,
    pub intake: IntakeSink,
    pub supervisor: SupervisorHandle,
    pub admin_token_digest: [u8; 32],
    pub metrics: PrometheusHandle,
    pub tolerance_secs: i64,
    /// This node's cluster, for `GET /admin/v1/cluster`.
    pub membership: crate::cluster::view::Membership,
    /// The raw archive, when a bucket is configured: a replay past the hot window reads it.
    #[cfg(feature = "archive")]
    pub archive: Option<crate::archive::Archive>,
}

/// Admin API bodies are small JSON documents.
const ADMIN_BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route(
            "/admin/v1/connections",
            post(admin::create).get(admin::list),
        )
        .route(
            "/admin/v1/connections/{id}",
            get(admin::get).patch(admin::update).delete(admin::archive),
        )
        .route("/admin/v1/connections/{id}/pause", post(admin::pause))
        .route("/admin/v1/connections/{id}/resume", post(admin::resume))
        .route("/admin/v1/connections/{id}/backfill", post(admin::backfill))
        .route("/admin/v1/connections/{id}/resync", post(admin::resync))
        .route("/admin/v1/connections/{id}/replay", post(replay::replay))
        .route("/admin/v1/connections/{id}/refetch", post(refetch::refetch))
        .route("/admin/v1/cluster", get(cluster::cluster))
        .route("/admin/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/admin/v1/tokens/{token_id}", delete(tokens::revoke))
        .route("/admin/v1/audit", get(audit::list))
        .route("/admin/v1/dead_letters", get(dead_letters::list))
        .route(
            "/admin/v1/dead_letters/{id}/retry",
            post(dead_letters::retry),
        )
        .route(
            "/admin/v1/dead_letters/{id}/discard",
            post(dead_letters::discard),
        )
        .layer(DefaultBodyLimit::max(ADMIN_BODY_LIMIT));
    let read = Router::new()
        .route("/v1/merchants/{merchant}/changes", get(read::changes))
        .route(
            "/v1/merchants/{merchant}/quality_findings",
            get(quality::list),
        )
        .route(
            "/v1/merchants/{merchant}/sync-status",
            get(status::sync_status),
        )
        .route(
            "/v1/merchants/{merchant}/{collection}",
            get(read::list_objects),
        )
        .route(
            "/v1/merchants/{merchant}/{collection}/{id}",
            get(read::get_object),
        )
        .route(
            "/v1/merchants/{merchant}/{collection}/{id}/versions",
            get(read::versions),
        );
    let authed = admin
        .merge(read)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ));
    Router::new()
        .route(
            "/webhooks/{provider}/{connection_id}",
            post(intake::receive),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .merge(authed)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        // Intake reads its own body with the 1 MiB limit of docs/api-reference.md and a JSON 413.
        .layer(DefaultBodyLimit::disable())
        // Every error answer in the one error shape (docs/api.md "Errors"), whoever made it.
        .layer(middleware::map_response(error::contract_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
