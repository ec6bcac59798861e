//! The CLI's client of a running node's admin API (not part of the server): `billsync
//! connections ...` lists, shows, pauses, resumes, resyncs and replays connections, and
//! `billsync backfill` starts a job and draws its progress (objects, pages, rate, ETA) until it
//! ends. It reads the server's own answer types (`crate::api`); the routes are those of
//! docs/api-reference.md.
//!
//! Every request has a connect timeout and a whole-request timeout, and a failure names its
//! underlying cause (connection refused at host:port, TLS, timeout) found by walking the
//! error's sources ([`cause`]), never just "error sending request".

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::api::{BackfillIn, ConnectionListOut, ConnectionOut, JobProgressOut};
use thiserror::Error;

/// Time to open a TCP connection (and finish a TLS handshake) to the node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for one whole request to the node, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "cannot reach billsync at {target}: {cause}; is `billsync serve` running there (--target)?"
    )]
    Unreachable { target: String, cause: String },
    #[error(transparent)]
    Client(#[from] crate::outbound::OutboundError),
    #[error("billsync answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("billsync at {target} answered {status} with something that is not {expected}")]
    BadAnswer {
        target: String,
        status: u16,
        expected: &'static str,
    },
    #[error("`--since` must be RFC 3339 or YYYY-MM-DD, got `{0}`")]
    BadSince(String),
    #[error("the backfill failed: {0}")]
    JobFailed(String),
}

/// The underlying cause of a failed request, in a few words with the host and port: the
/// innermost source of the error (e.g. `Connection refused (os error 111)`), a TLS failure as
/// `crate::outbound::classify` names it, or the timeout that ran out.
pub fn cause(error: &reqwest::Error) -> String {
    use crate::outbound::FailureKind;
    let failure = crate::outbound::classify(error);
    let host = error
        .url()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| "no address".into());
    let mut root: &dyn std::error::Error = error;
    while let Some(inner) = root.source() {
        root = inner;
    }
    match failure.kind {
        FailureKind::Certificate | FailureKind::Tls => failure.message,
        FailureKind::Timeout if error.is_connect() => {
            format!(
                "no connection to {host} within {}s",
                CONNECT_TIMEOUT.as_secs()
            )
        }
        FailureKind::Timeout => format!("{host} did not answer in time ({root})"),
        FailureKind::Connect => format!("cannot connect to {host}: {root}"),
        _ => format!("{root} ({host})"),
    }
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

/// A node's admin API at a base URL, with its admin token.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client of the node at `target` (`http://127.0.0.1:8080`), with [`CONNECT_TIMEOUT`]
    /// and [`REQUEST_TIMEOUT`].
    pub fn new(target: &str, token: &str) -> Result<Self, ClientError> {
        let http = crate::outbound::client(&crate::outbound::OutboundConfig {
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            ..crate::outbound::OutboundConfig::default()
        })?;
        Ok(AdminClient {
            base: target.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    /// Sends a request to `path` (under the base URL) and returns the status and JSON body
    /// (`null` when the body is not JSON).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            target: self.base.clone(),
            cause: cause(&e),
        })?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// GET `path`, expecting 200; the JSON answer as it came.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await?;
        match status {
            200 => Ok(body),
            _ => Err(refused(status, &body)),
        }
    }

    /// POST `body` (or nothing) to `path`, expecting one of `ok`; the JSON answer as it came.
    pub async fn post(
        &self,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<(u16, Value), ClientError> {
        let (status, answer) = self.call(reqwest::Method::POST, path, body).await?;
        if ok.contains(&status) {
            Ok((status, answer))
        } else {
            Err(refused(status, &answer))
        }
    }

    /// Every connection (optionally one merchant's), page after page, as the node answered
    /// each (`data` of every page concatenated).
    pub async fn list_connections(
        &self,
        merchant: Option<&str>,
    ) -> Result<Vec<Value>, ClientError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = url::Url::parse("http://x/admin/v1/connections")
                .expect("a fixed, valid URL parses");
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("limit", "500");
                if let Some(m) = merchant {
                    query.append_pair("merchant_id", m);
                }
                if let Some(a) = &after {
                    query.append_pair("after", a);
                }
            }
            let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
            let page = self.get(&path).await?;
            let parsed: ConnectionListOut = serde_json::from_value(page.clone())
                .map_err(|_| self.bad_answer(200, "a connection list"))?;
            all.extend(page["data"].as_array().cloned().unwrap_or_default());
            match parsed.next_after {
                Some(next) if !parsed.data.is_empty() => after = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// A connection's view, as answered and parsed.
    pub async fn connection(&self, id: &str) -> Result<(Value, ConnectionOut), ClientError> {
        let body = self.get(&connection_path(id, "")).await?;
        let parsed = self.parse_connection(200, &body)?;
        Ok((body, parsed))
    }

    /// The answer parsed as a connection view.
    pub fn parse_connection(
        &self,
        status: u16,
        body: &Value,
    ) -> Result<ConnectionOut, ClientError> {
        serde_json::from_value(body.clone()).map_err(|_| self.bad_answer(status, "a connection"))
    }

    fn bad_answer(&self, status: u16, expected: &'static str) -> ClientError {
        ClientError::BadAnswer {
            target: self.base.clone(),
            status,
            expected,
        }
    }

    /// Starts (or attaches to the running) backfill of `connection` and shows progress until
    /// it is done. Returns the final progress.
    pub async fn backfill(
        &self,
        connection: &str,
        since: &str,
    ) -> Result<JobProgressOut, ClientError> {
        let since = normalize_since(since)?;
        let (status, _) = self
            .post(
                &connection_path(connection, "/backfill"),
                Some(&json(&BackfillIn { since })),
                &[202, 409],
            )
            .await?;
        if status == 409 {
            eprintln!("a backfill is already running for {connection}; following it");
        }
        let bar = ProgressBar::new(1000);
        // The percentage is part of the message, so it and the counts change in one redraw;
        // `wide_msg` cuts the line at the terminal's width.
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:20}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        loop {
            let (_, view) = self.connection(connection).await?;
            let Some(p) = view.backfill else {
                return Err(self.bad_answer(200, "a connection with a backfill"));
            };
            bar.set_message(progress_line(&p));
            bar.set_position((p.fraction_done.unwrap_or(0.0) * 1000.0) as u64);
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
}

/// A backfill's progress in at most 56 columns (80 with the spinner and bar): percentage,
/// objects, requests, pace and time left, large numbers shortened (`12.3M`).
pub fn progress_line(p: &JobProgressOut) -> String {
    let pct = (p.fraction_done.unwrap_or(0.0) * 100.0).clamp(0.0, 100.0);
    let eta = match p.eta_secs {
        None => "?".to_owned(),
        Some(s) if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        Some(s) if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) => format!("{s}s"),
    };
    format!(
        "{pct:>3.0}% {} obj {} req {}/s ETA {eta}",
        short(p.objects),
        short(p.requests.unwrap_or(0)),
        short(p.rate_per_sec.max(0.0) as i64),
    )
}

/// A count in at most 6 characters: `999999`, `1.2M`, `12.3G`.
fn short(n: i64) -> String {
    if n < 1_000_000 {
        n.to_string()
    } else if n < 1_000_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else {
        format!("{:.1}G", n as f64 / 1e9)
    }
}

/// `/admin/v1/connections/{id}{tail}`, the id escaped as one path segment.
pub fn connection_path(id: &str, tail: &str) -> String {
    let mut url =
        url::Url::parse("http://x/admin/v1/connections/").expect("a fixed, valid URL parses");
    url.path_segments_mut()
        .expect("an http URL has path segments")
        .pop_if_empty()
        .push(id);
    format!("{}{tail}", url.path())
}

/// A request body as JSON (the API's `*In` types serialize without fail).
pub fn json(body: &impl serde::Serialize) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

fn refused(status: u16, body: &Value) -> ClientError {
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("no message")
        .to_owned();
    let message = match status {
        401 => {
            format!("{message}; set BILLSYNC_ADMIN_TOKEN (or --token) to the node's admin token")
        }
        _ => message,
    };
    ClientError::Refused { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_fits_80_columns_whatever_the_numbers() {
        let mut p = JobProgressOut {
            state: "running".into(),
            objects: 250_000_000,
            rate_per_sec: 123_456.7,
            eta_secs: Some(1_000_000),
            job: None,
            pages: Some(9_999_999),
            requests: Some(9_999_999_999),
            fraction_done: Some(0.371),
            windows: None,
            windows_done: None,
            since: None,
            started_at: None,
            finished_at: None,
            error: None,
            streams: Default::default(),
        };
        let line = progress_line(&p);
        // The spinner, a space, the 22-column bar and a space come before it.
        assert!(line.len() + 24 <= 80, "{} columns: {line}", line.len() + 24);
        assert!(line.starts_with(" 37% 250.0M obj 10.0G req"), "{line}");
        assert!(line.ends_with("ETA 277h46m"), "{line}");
        p.eta_secs = None;
        p.fraction_done = None;
        assert_eq!(
            progress_line(&p),
            "  0% 250.0M obj 10.0G req 123456/s ETA ?"
        );
    }

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

    #[test]
    fn connection_ids_are_one_path_segment() {
        assert_eq!(
            connection_path("conn_1", "/pause"),
            "/admin/v1/connections/conn_1/pause"
        );
        assert_eq!(connection_path("a/b", ""), "/admin/v1/connections/a%2Fb");
    }

    #[tokio::test]
    async fn a_refused_node_is_named_with_host_port_and_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = AdminClient::new(&format!("http://127.0.0.1:{port}"), "t").unwrap();
        let e = client
            .get("/admin/v1/connections")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(e.to_lowercase().contains("connection refused"), "{e}");
        assert!(!e.contains("error sending request"), "{e}");
    }
}
