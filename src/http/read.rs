//! Read API (`/v1/merchants/{m}/...`): canonical objects, their versions, `as_of` reads, lists
//! with stable cursors, and the merchant's change feed.

use axum::extract::{Path, RawQuery, State};
use axum::Json;

use super::error::ApiError;
use super::query::{decode_cursor, encode_cursor, invalid, Params};
use super::AppState;
use crate::api::objects::Collection;
use crate::api::{
    ChangeListOut, ChangeOut, ErrorOut, ObjectListOut, ObjectOut, VersionListOut, VersionOut,
};
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

fn object_out(o: &ObjectView) -> ObjectOut {
    ObjectOut {
        id: o.id.clone(),
        merchant_id: o.merchant_id.clone(),
        connection_id: o.connection_id.clone(),
        object_type: o.object_type,
        version: o.version,
        reconciliation_status: o.status,
        deleted: o.deleted,
        provider_updated_at: micros_to_rfc3339(o.provider_updated_at),
        updated_at: micros_to_rfc3339(o.updated_at),
        data: o.data.clone(),
    }
}

fn version_out(v: &VersionView) -> VersionOut {
    VersionOut {
        version: v.version,
        recorded_at: micros_to_rfc3339(v.recorded_at),
        deleted: v.deleted,
        reconciliation_status: v.status,
        provider_updated_at: micros_to_rfc3339(v.provider_updated_at),
        data: v.data.clone(),
        source: v.source.clone(),
        reason: v.reason.clone(),
    }
}

fn change_out(c: &ChangeView) -> ChangeOut {
    ChangeOut {
        seq: c.seq,
        id: c.id.clone(),
        connection_id: c.connection_id.clone(),
        object_type: c.object_type,
        version: c.version,
        deleted: c.deleted,
        recorded_at: micros_to_rfc3339(c.recorded_at),
    }
}

/// One canonical object: current, or the version current at `as_of`.
#[utoipa::path(get, path = "/v1/merchants/{merchant_id}/{collection}/{id}", tag = "objects",
    params(
        ("merchant_id" = String, Path),
        ("collection" = Collection, Path),
        ("id" = String, Path, description = "`{provider}:{provider_object_id}`"),
        ("as_of" = Option<String>, Query, format = DateTime, description = "RFC 3339: the version that was current then"),
    ),
    responses(
        (status = 200, body = ObjectOut),
        (status = 404, description = "No such object or collection", body = ErrorOut),
    ))]
pub async fn get_object(
    State(app): State<AppState>,
    Path((merchant, coll, id)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<ObjectOut>, ApiError> {
    let object_type = collection(&coll)?;
    let as_of = Params::parse(q.as_deref())?.time("as_of")?;
    let object = app
        .store
        .read_object(&merchant, object_type, &id, as_of)
        .await?
        .ok_or_else(|| ApiError::not_found("no such object"))?;
    Ok(Json(object_out(&object)))
}

/// A page of a collection, ordered by `updated_at` then `id`; paging while writes happen
/// never skips or repeats an object that did not change meanwhile.
#[utoipa::path(get, path = "/v1/merchants/{merchant_id}/{collection}", tag = "objects",
    params(
        ("merchant_id" = String, Path),
        ("collection" = Collection, Path),
        ("updated_after" = Option<String>, Query, format = DateTime, description = "RFC 3339"),
        ("status" = Option<ReconStatus>, Query),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = ObjectListOut),
        (status = 404, description = "No such collection", body = ErrorOut),
    ))]
pub async fn list_objects(
    State(app): State<AppState>,
    Path((merchant, coll)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<ObjectListOut>, ApiError> {
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
    Ok(Json(ObjectListOut {
        data: page.iter().map(object_out).collect(),
        next_cursor,
    }))
}

/// Every stored version of an object, oldest first, with what produced it and why it won.
#[utoipa::path(get, path = "/v1/merchants/{merchant_id}/{collection}/{id}/versions", tag = "objects",
    params(
        ("merchant_id" = String, Path),
        ("collection" = Collection, Path),
        ("id" = String, Path, description = "`{provider}:{provider_object_id}`"),
    ),
    responses(
        (status = 200, body = VersionListOut),
        (status = 404, description = "No such object or collection", body = ErrorOut),
    ))]
pub async fn versions(
    State(app): State<AppState>,
    Path((merchant, coll, id)): Path<(String, String, String)>,
) -> Result<Json<VersionListOut>, ApiError> {
    let object_type = collection(&coll)?;
    let versions = app
        .store
        .object_versions(&merchant, object_type, &id)
        .await?;
    if versions.is_empty() {
        return Err(ApiError::not_found("no such object"));
    }
    Ok(Json(VersionListOut {
        data: versions.iter().map(version_out).collect(),
    }))
}

/// The merchant's change feed: every new version in commit order.
#[utoipa::path(get, path = "/v1/merchants/{merchant_id}/changes", tag = "objects",
    params(
        ("merchant_id" = String, Path),
        ("after" = Option<i64>, Query, minimum = 0, description = "The last `seq` seen (default 0)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses((status = 200, body = ChangeListOut)))]
pub async fn changes(
    State(app): State<AppState>,
    Path(merchant): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<ChangeListOut>, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let after = params.int("after", 0)?;
    let limit = params.limit(100, 1000)?;
    let page = app.store.changes(&merchant, after, limit).await?;
    let next_after = page.last().map_or(after, |c| c.seq);
    Ok(Json(ChangeListOut {
        data: page.iter().map(change_out).collect(),
        next_after,
    }))
}
