//! `GET /v1/merchants/{m}/quality_findings`: the data-quality findings of a merchant's objects,
//! filtered and paged (docs/api.md "Data quality"). Findings are recorded by the apply path
//! (`crate::actors::apply`, `crate::actors::cross_check`); this only reads them.

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::Value;

use super::error::ApiError;
use super::query::{invalid, Params};
use super::AppState;
use crate::api::{ErrorOut, QualityFindingListOut, QualityFindingOut};
use crate::model::time::micros_to_rfc3339;
use crate::model::ObjectType;
use crate::store::{FindingKey, FindingQuery, FindingRecord};

/// A merchant's data-quality findings, oldest first.
#[utoipa::path(get, path = "/v1/merchants/{merchant_id}/quality_findings", tag = "objects", operation_id = "list_quality_findings",
    params(
        ("merchant_id" = String, Path),
        ("object_type" = Option<ObjectType>, Query, description = "Only findings on objects of this kind"),
        ("code" = Option<String>, Query, description = "Only this check (docs/api.md \"Data quality\")"),
        ("connection_id" = Option<String>, Query, description = "Only this connection's objects"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339: recorded at or after"),
        ("after" = Option<String>, Query, description = "The `next_after` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
    ),
    responses(
        (status = 200, body = QualityFindingListOut),
        (status = 400, description = "A filter is not valid: the message names it", body = ErrorOut),
    ))]
pub async fn list(
    State(app): State<AppState>,
    Path(merchant): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<QualityFindingListOut>, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let object_type = params
        .get("object_type")
        .map(|t| {
            ObjectType::parse(t).ok_or_else(|| {
                invalid(
                    "object_type",
                    "must be customer, invoice, credit_note, subscription or transaction",
                )
            })
        })
        .transpose()?;
    let query = FindingQuery {
        merchant_id: merchant,
        object_type,
        code: params.get("code").map(str::to_owned),
        connection_id: params.get("connection_id").map(str::to_owned),
        since: params.time("since")?,
        after: params.get("after").map(decode_after).transpose()?,
        limit: params.limit(100, 1000)?,
    };
    let found = app.store.quality_findings(&query).await?;
    let next_after = match found.last() {
        Some(last) if found.len() as i64 == query.limit => Some(encode_after(last)),
        _ => None,
    };
    Ok(Json(QualityFindingListOut {
        data: found.iter().map(view).collect(),
        next_after,
    }))
}

fn view(f: &FindingRecord) -> QualityFindingOut {
    QualityFindingOut {
        id: f.id.clone(),
        object_type: f.object_type,
        version: f.version,
        code: f.code.clone(),
        message: f.message.clone(),
        connection_id: f.connection_id.clone(),
        recorded_at: micros_to_rfc3339(f.recorded_at),
    }
}

/// The opaque `next_after`: the page's last row in listing order.
fn encode_after(f: &FindingRecord) -> String {
    let key = (
        f.recorded_at,
        &f.connection_id,
        f.object_type.as_str(),
        &f.provider_id,
        f.version,
        &f.code,
    );
    B64.encode(serde_json::to_string(&key).unwrap_or_default())
}

fn decode_after(text: &str) -> Result<FindingKey, ApiError> {
    let bad = || invalid("after", "is not a `next_after` this API returned");
    let bytes = B64.decode(text).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let (recorded_at, connection_id, object_type, provider_id, version, code) =
        serde_json::from_value::<(i64, String, String, String, i64, String)>(v)
            .map_err(|_| bad())?;
    Ok(FindingKey {
        recorded_at,
        connection_id,
        object_type,
        provider_id,
        version,
        code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_round_trips_and_garbage_is_refused() {
        let f = FindingRecord {
            connection_id: "c|1".into(),
            object_type: ObjectType::CreditNote,
            provider_id: "cn_1".into(),
            id: "stripe:cn_1".into(),
            version: 3,
            code: "credit_exceeds_invoice".into(),
            message: String::new(),
            recorded_at: 42,
        };
        let key = decode_after(&encode_after(&f)).unwrap();
        assert_eq!(
            (
                key.recorded_at,
                key.connection_id.as_str(),
                key.object_type.as_str()
            ),
            (42, "c|1", "credit_note")
        );
        assert_eq!((key.provider_id.as_str(), key.version), ("cn_1", 3));
        assert!(decode_after("!!").is_err());
        assert!(decode_after(&B64.encode("[1]")).is_err());
    }
}
