//! `GET /admin/v1/cluster` (CONTRACT "Cluster"): the live nodes and their shards.

use axum::extract::State;
use axum::Json;

use super::error::ApiError;
use super::AppState;
use crate::cluster::view::ClusterOut;

pub async fn cluster(State(app): State<AppState>) -> Result<Json<ClusterOut>, ApiError> {
    Ok(Json(app.membership.describe().await?))
}
