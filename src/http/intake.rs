//! Webhook intake: `POST /webhooks/{provider}/{connection_id}`. Finds the connection, checks
//! size and authenticity over the raw bytes, parses the envelope, and answers 200 only after
//! the raw event and its inbox row are committed (DESIGN invariant 1).

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::model::time::now_micros;
use crate::providers::{ProviderKind, VerifyError};
use crate::store::{IncomingEvent, IngestOutcome, RawBody};

/// Largest webhook body accepted (CONTRACT).
pub const MAX_BODY: usize = 1 << 20;

/// How much of an oversized body is still read (and discarded) before the 413, so that a
/// sender still writing its body reads our answer instead of a broken pipe.
const DRAIN_CAP: usize = 8 << 20;

/// How long an oversized body may take to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a webhook body was not read.
enum Unread {
    TooLarge,
    /// It broke off, or came too slowly (the server then answers `408` itself).
    Broken,
}

/// The body when it is at most [`MAX_BODY`] bytes; when it is larger, what a sender may
/// reasonably still be writing is drained first.
async fn read_limited(mut body: Body) -> Result<Bytes, Unread> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let data = frame
            .map_err(|_| Unread::Broken)?
            .into_data()
            .unwrap_or_default();
        if buf.len() + data.len() > MAX_BODY {
            let mut seen = buf.len() + data.len();
            let drain = async {
                while let Some(Ok(frame)) = body.frame().await {
                    seen += frame.into_data().map_or(0, |d| d.len());
                    if seen > DRAIN_CAP {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
            return Err(Unread::TooLarge);
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

pub async fn receive(
    State(app): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    // A path that does not even decode names no connection.
    let (provider, connection_id) = path.map(|Path(p)| p).unwrap_or_default();
    let label = ProviderKind::parse(&provider).map_or("unknown", ProviderKind::as_str);
    let (response, code) = match handle(&app, &provider, &connection_id, &headers, body).await {
        Ok(duplicate) => {
            let body = json!({ "received": true, "duplicate": duplicate });
            (
                (StatusCode::OK, Json(body)).into_response(),
                if duplicate { "duplicate" } else { "stored" },
            )
        }
        Err(e) => {
            tracing::info!(provider = label, connection_id = %connection_id, code = e.code, "webhook refused");
            let code = e.code;
            (e.into_response(), code)
        }
    };
    metrics::counter!("billsync_webhooks_total", "provider" => label, "code" => code).increment(1);
    metrics::histogram!("billsync_webhook_ack_seconds", "provider" => label)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Returns whether the event was a duplicate.
async fn handle(
    app: &AppState,
    provider: &str,
    connection_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<bool, ApiError> {
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_connection",
            "no connection with this id for this provider",
        )
    };
    let kind = ProviderKind::parse(provider).ok_or_else(unknown)?;
    let conn = app
        .connections
        .get(connection_id)
        .await?
        .ok_or_else(unknown)?;
    if conn.record.provider != kind {
        return Err(unknown());
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP as u64) {
        // Far too large to be worth reading: answer now and let the connection close.
        return Err(too_large());
    }
    let body = read_limited(body).await.map_err(|e| match e {
        Unread::TooLarge => too_large(),
        Unread::Broken => {
            ApiError::bad_request("incomplete_body", "the body broke off before its end")
        }
    })?;
    let now = now_micros();
    conn.provider
        .verify(
            headers,
            &body,
            &conn.webhook_secrets,
            now / 1_000_000,
            app.tolerance_secs,
        )
        .map_err(|e| match e {
            VerifyError::InvalidSignature => ApiError::bad_request(
                "invalid_signature",
                "no valid signature for any active secret",
            ),
            VerifyError::StaleTimestamp => ApiError::bad_request(
                "stale_timestamp",
                "the signed timestamp is outside the tolerance",
            ),
            VerifyError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "credentials missing or not valid",
            ),
        })?;
    let envelope = conn.provider.envelope(&body).map_err(|e| {
        ApiError::bad_request(
            "malformed_payload",
            format!("the body is not a {provider} event: {e}"),
        )
    })?;
    let event = IncomingEvent {
        connection_id: connection_id.to_owned(),
        provider_event_id: envelope.event_id,
        event_type: envelope.event_type,
        source: "webhook",
        received_at: now,
        // Compressed here, on this request's task: the writer commits many requests at once.
        body: RawBody::seal(&body).map_err(|e| {
            tracing::error!(error = %e, "cannot compress a webhook body; answering 503");
            ApiError::unavailable()
        })?,
    };
    match app.intake.submit(event).await {
        Ok(IngestOutcome::Stored { .. }) => Ok(false),
        Ok(IngestOutcome::Duplicate) => Ok(true),
        Err(()) => Err(ApiError::unavailable()),
    }
}
