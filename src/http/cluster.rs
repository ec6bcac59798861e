//! `GET /admin/v1/cluster` (docs/cluster.md): the live nodes and their shards.

use axum::extract::State;
use axum::Json;

use super::error::ApiError;
use super::AppState;
use crate::api::ClusterOut;

/// The live nodes and how many shards each holds; any node answers the same.
#[utoipa::path(get, path = "/admin/v1/cluster", tag = "cluster",
    responses((status = 200, body = ClusterOut)))]
pub async fn cluster(State(app): State<AppState>) -> Result<Json<ClusterOut>, ApiError> {
    Ok(Json(app.membership.describe().await?))
}
