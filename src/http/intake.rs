//! Webhook intake: `POST /webhooks/{provider}/{connection_id}`. Finds the connection, checks size
//! and authenticity over the raw bytes, parses the envelope, and answers 200 only after the event
//! is durable: its raw event and inbox row committed (docs/architecture.md, invariant 1), or, with
//! `BILLSYNC_INTAKE=sqs`, accepted by the intake queue (`crate::intake_sink`).

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::BytesMut;
use http_body_util::BodyExt;

use super::error::ApiError;
use super::AppState;
use crate::api::{ErrorOut, WebhookReceivedOut};
use crate::intake_sink::{Accepted, IntakeError, Verified};
use crate::model::time::now_micros;
use crate::providers::{ProviderKind, VerifyError};
use crate::store::ConnectionState;

/// Largest webhook body accepted (docs/api.md).
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

/// Deepest nesting accepted in a webhook body, for every provider alike: real events nest
/// fewer than 10 levels, and a parser walking 10,000 is a way to make the apply fail later.
pub const MAX_DEPTH: usize = 64;

/// Whether a JSON body (or a form body's bracketed keys, Maxio) nests deeper than
/// [`MAX_DEPTH`]. A byte scan: brackets inside JSON strings do not count.
fn nested_too_deep(body: &[u8]) -> bool {
    let json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    if !json {
        // `a[b][c]=...`, percent-encoded or not: the most brackets in one key.
        return body
            .split(|b| *b == b'&')
            .map(|pair| {
                let key = pair.split(|b| *b == b'=').next().unwrap_or_default();
                key.iter().filter(|b| **b == b'[').count()
                    + key
                        .windows(3)
                        .filter(|w| w.eq_ignore_ascii_case(b"%5b"))
                        .count()
            })
            .any(|depth| depth > MAX_DEPTH);
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Which id of the event, if any, holds a control character (a NUL cannot even be stored in
/// a Postgres text column): refused at intake on both stores alike. The object's id is read
/// only when the body could hold one: JSON escapes (`\u0000`-`\u001f`) or percent-encoded
/// control bytes, so the common event pays for a byte scan only.
fn control_character_in_ids(
    provider: &dyn crate::providers::Provider,
    envelope: &crate::providers::Envelope,
    body: &[u8],
) -> Option<&'static str> {
    let bad = |s: &str| s.chars().any(char::is_control);
    if bad(&envelope.event_id) {
        return Some("event id");
    }
    if bad(&envelope.event_type) {
        return Some("event type");
    }
    let maybe = body.windows(5).any(|w| {
        w[0] == b'\\' && w[1] == b'u' && w[2] == b'0' && w[3] == b'0' && matches!(w[4], b'0' | b'1')
    }) || body
        .windows(2)
        .any(|w| w[0] == b'%' && matches!(w[1], b'0' | b'1'));
    if !maybe {
        return None;
    }
    let object_id = match provider.observe(body) {
        Ok(Some(o)) => Some(o.provider_id),
        _ => provider.thin_reference(body).map(|(_, id)| id),
    };
    object_id.filter(|id| bad(id)).map(|_| "object id")
}

/// A provider's webhook, its headers and body unchanged. `200` only once the event is durably
/// stored (or was already).
#[utoipa::path(post, path = "/webhooks/{provider}/{connection_id}", tag = "webhooks", security(()),
    params(
        ("provider" = ProviderKind, Path),
        ("connection_id" = String, Path),
    ),
    request_body(content = Object, description = "The provider's event, as the provider sent it", content_type = "application/json"),
    responses(
        (status = 200, description = "Durably stored, or already stored (a duplicate)", body = WebhookReceivedOut),
        (status = 400, description = "`invalid_signature`, `stale_timestamp` or `malformed_payload`; nothing is stored", body = ErrorOut),
        (status = 401, description = "`invalid_credentials` (HTTP Basic providers); nothing is stored", body = ErrorOut),
        (status = 404, description = "`unknown_connection`", body = ErrorOut),
        (status = 413, description = "`payload_too_large`: over 1 MiB", body = ErrorOut),
        (status = 503, description = "`unavailable`: cannot be stored durably now; the provider retries", body = ErrorOut),
    ))]
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
            let body = WebhookReceivedOut {
                received: true,
                duplicate,
            };
            (
                (StatusCode::OK, Json(body)).into_response(),
                if duplicate { "duplicate" } else { "stored" },
            )
        }
        Err(e) => {
            // The connection id comes from the URL: logged escaped, never as raw text.
            tracing::info!(provider = label, connection_id = ?connection_id, code = e.code, "webhook refused");
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
    // An archived connection's path answers as if it never existed (docs/api-reference.md).
    if conn.record.provider != kind || conn.record.state == ConnectionState::Archived {
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
    if nested_too_deep(&body) {
        return Err(ApiError::bad_request(
            "malformed_payload",
            format!("the body nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    let envelope = conn
        .provider
        .envelope_with_headers(headers, &body)
        .map_err(|e| {
            ApiError::bad_request(
                "malformed_payload",
                format!("the body is not a {provider} event: {e}"),
            )
        })?;
    if let Some(what) = control_character_in_ids(conn.provider, &envelope, &body) {
        return Err(ApiError::bad_request(
            "malformed_payload",
            format!("the {what} contains a control character"),
        ));
    }
    let event = Verified {
        connection_id: connection_id.to_owned(),
        provider_event_id: envelope.event_id,
        event_type: envelope.event_type,
        received_at: now,
        body,
    };
    match app.intake.submit(event).await {
        Ok(Accepted::Duplicate) => Ok(true),
        Ok(Accepted::Stored | Accepted::Queued) => Ok(false),
        Err(e) => {
            if let IntakeError::Seal(e) = &e {
                tracing::error!(error = %e, "cannot compress a webhook body; answering 503");
            }
            Err(ApiError::unavailable())
        }
    }
}
