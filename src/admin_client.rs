//! The CLI's client of a running node's admin API (not part of the server): `billsync
//! backfill` starts a job and draws its progress (objects, pages, rate, ETA) until it ends.
//! It reads the server's own answer types (`crate::api`).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::api::{BackfillIn, ConnectionOut, JobProgressOut};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach billsync at {0}: {1}")]
    Unreachable(String, crate::outbound::Failure),
    #[error(transparent)]
    Client(#[from] crate::outbound::OutboundError),
    #[error("billsync answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("`--since` must be RFC 3339 or YYYY-MM-DD, got `{0}`")]
    BadSince(String),
    #[error("the backfill failed: {0}")]
    JobFailed(String),
}

/// `2024-01-31` or an RFC 3339 time, as RFC 3339.
pub fn normalize_since(since: &str) -> Result<String, ClientError> {
    if crate::model::time::parse_rfc3339(since).is_some() {
        return Ok(since.to_owned());
    }
    let with_time = format!("{since}T00:00:00Z");
    if crate::model::time::parse_rfc3339(&with_time).is_some() {
        return Ok(with_time);
    }
    Err(ClientError::BadSince(since.to_owned()))
}

async fn call(request: reqwest::RequestBuilder, target: &str) -> Result<(u16, Value), ClientError> {
    let response = request
        .send()
        .await
        .map_err(|e| ClientError::Unreachable(target.to_owned(), crate::outbound::classify(&e)))?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn refused(status: u16, body: &Value) -> ClientError {
    ClientError::Refused {
        status,
        message: body["error"]["message"]
            .as_str()
            .unwrap_or("no message")
            .to_owned(),
    }
}

/// Starts (or attaches to the running) backfill of `connection` and shows progress until it
/// is done. Returns the final progress.
pub async fn backfill(
    target: &str,
    token: &str,
    connection: &str,
    since: &str,
) -> Result<JobProgressOut, ClientError> {
    let client = crate::outbound::client(&crate::outbound::OutboundConfig::default())?;
    let base = target.trim_end_matches('/');
    let since = normalize_since(since)?;
    let (status, body) = call(
        client
            .post(format!("{base}/admin/v1/connections/{connection}/backfill"))
            .bearer_auth(token)
            .json(&BackfillIn { since }),
        target,
    )
    .await?;
    match status {
        202 => {}
        409 => eprintln!("a backfill is already running for {connection}; following it"),
        _ => return Err(refused(status, &body)),
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    loop {
        let (status, body) = call(
            client
                .get(format!("{base}/admin/v1/connections/{connection}"))
                .bearer_auth(token),
            target,
        )
        .await?;
        if status != 200 {
            return Err(refused(status, &body));
        }
        let Some(p) = serde_json::from_value::<ConnectionOut>(body)
            .ok()
            .and_then(|c| c.backfill)
        else {
            return Err(ClientError::Refused {
                status,
                message: "the answer is not a connection with a backfill".into(),
            });
        };
        bar.set_position((p.fraction_done.unwrap_or(0.0) * 1000.0) as u64);
        let eta = p.eta_secs.map_or("?".to_owned(), |s| format!("{s}s"));
        bar.set_message(format!(
            "{} objects, {} pages, {} req, {:.0} obj/s, ETA {eta}",
            p.objects,
            p.pages.unwrap_or(0),
            p.requests.unwrap_or(0),
            p.rate_per_sec
        ));
        match p.state.as_str() {
            "done" => {
                bar.finish();
                return Ok(p);
            }
            "failed" => {
                bar.abandon();
                return Err(ClientError::JobFailed(
                    p.error.unwrap_or_else(|| "unknown".into()),
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dates_and_times() {
        assert_eq!(
            normalize_since("2024-01-31").unwrap(),
            "2024-01-31T00:00:00Z"
        );
        assert_eq!(
            normalize_since("2024-01-31T10:00:00Z").unwrap(),
            "2024-01-31T10:00:00Z"
        );
        assert!(normalize_since("last year").is_err());
    }
}
