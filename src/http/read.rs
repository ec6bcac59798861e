//! Read API (`/v1/merchants/{m}/...`): canonical objects, their versions, `as_of` reads, lists
//! with stable cursors, and the merchant's change feed.

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::query::{decode_cursor, encode_cursor, invalid, Params};
use super::AppState;
use crate::model::time::micros_to_rfc3339;
use crate::model::{ObjectType, ReconStatus};
use crate::store::{ChangeView, ListQuery, ObjectView, VersionView};

fn collection(name: &str) -> Result<ObjectType, ApiError> {
    ObjectType::from_collection(name).ok_or_else(|| {
        ApiError::not_found(
            "unknown collection: use customers, invoices, credit_notes, subscriptions or transactions",
        )
    })
}

fn object_json(o: &ObjectView) -> Value {
    json!({
        "id": o.id,
        "merchant_id": o.merchant_id,
        "connection_id": o.connection_id,
        "object_type": o.object_type.as_str(),
        "version": o.version,
        "reconciliation_status": o.status.as_str(),
        "deleted": o.deleted,
        "provider_updated_at": micros_to_rfc3339(o.provider_updated_at),
        "updated_at": micros_to_rfc3339(o.updated_at),
        "data": o.data,
    })
}

fn version_json(v: &VersionView) -> Value {
    json!({
        "version": v.version,
        "recorded_at": micros_to_rfc3339(v.recorded_at),
        "deleted": v.deleted,
        "reconciliation_status": v.status.as_str(),
        "provider_updated_at": micros_to_rfc3339(v.provider_updated_at),
        "data": v.data,
        "source": v.source,
        "reason": v.reason,
    })
}

fn change_json(c: &ChangeView) -> Value {
    json!({
        "seq": c.seq,
        "id": c.id,
        "connection_id": c.connection_id,
        "object_type": c.object_type.as_str(),
        "version": c.version,
        "deleted": c.deleted,
        "recorded_at": micros_to_rfc3339(c.recorded_at),
    })
}

pub async fn get_object(
    State(app): State<AppState>,
    Path((merchant, coll, id)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let object_type = collection(&coll)?;
    let as_of = Params::parse(q.as_deref())?.time("as_of")?;
    let object = app
        .store
        .read_object(&merchant, object_type, &id, as_of)
        .await?
        .ok_or_else(|| ApiError::not_found("no such object"))?;
    Ok(Json(object_json(&object)))
}

pub async fn list_objects(
    State(app): State<AppState>,
    Path((merchant, coll)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let object_type = collection(&coll)?;
    let params = Params::parse(q.as_deref())?;
    let status = params
        .get("status")
        .map(|s| {
            ReconStatus::parse(s)
                .ok_or_else(|| invalid("status", "must be pending, converged, drifted or failed"))
        })
        .transpose()?;
    let query = ListQuery {
        updated_after: params.time("updated_after")?,
        status,
        after: params.get("cursor").map(decode_cursor).transpose()?,
        limit: params.limit(100, 1000)?,
    };
    let page = app
        .store
        .list_objects(&merchant, object_type, &query)
        .await?;
    let next_cursor = match page.last() {
        Some(last) if page.len() as i64 == query.limit => {
            Some(encode_cursor(last.updated_at, &last.id))
        }
        _ => None,
    };
    let data: Vec<Value> = page.iter().map(object_json).collect();
    Ok(Json(json!({ "data": data, "next_cursor": next_cursor })))
}

pub async fn versions(
    State(app): State<AppState>,
    Path((merchant, coll, id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let object_type = collection(&coll)?;
    let versions = app
        .store
        .object_versions(&merchant, object_type, &id)
        .await?;
    if versions.is_empty() {
        return Err(ApiError::not_found("no such object"));
    }
    let data: Vec<Value> = versions.iter().map(version_json).collect();
    Ok(Json(json!({ "data": data })))
}

pub async fn changes(
    State(app): State<AppState>,
    Path(merchant): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let after = params.int("after", 0)?;
    let limit = params.limit(100, 1000)?;
    let page = app.store.changes(&merchant, after, limit).await?;
    let next_after = page.last().map_or(after, |c| c.seq);
    let data: Vec<Value> = page.iter().map(change_json).collect();
    Ok(Json(json!({ "data": data, "next_after": next_after })))
}
