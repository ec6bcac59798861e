//! Outbound HTTPS: the one way billsync reaches a provider API (and the CLI reaches a node).
//!
//! Every client is reqwest over rustls (ring provider). Certificates are verified against
//! Mozilla's roots (bundled), the platform's store, and every certificate of the bundle named
//! by `SSL_CERT_FILE`; `HTTPS_PROXY`/`NO_PROXY` are honoured by reqwest itself. A request has a
//! connect timeout and a whole-request timeout. Plain `http://` goes only to loopback unless
//! `BILLSYNC_ALLOW_PLAIN_HTTP=true`, so an API key never leaves the machine in clear text by
//! accident. A failure is classified ([`FailureKind`]) so that a certificate problem is named
//! as one in the log, the connection's view and `billsync doctor` (README, "Provider APIs
//! over HTTPS").

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum OutboundError {
    #[error("cannot read the CA bundle {path} (SSL_CERT_FILE): {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the CA bundle {path} (SSL_CERT_FILE) holds no PEM certificate")]
    CaEmpty { path: String },
    #[error("cannot build the HTTPS client: {0}")]
    Build(String),
}

/// How outbound clients are made.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Extra CA bundle (PEM) trusted on top of the built-in and platform roots.
    pub extra_ca_file: Option<PathBuf>,
    /// Time to open a TCP connection and finish the TLS handshake.
    pub connect_timeout: Duration,
    /// Time for a whole request, answer included.
    pub request_timeout: Duration,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            extra_ca_file: std::env::var_os("SSL_CERT_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A client that verifies certificates as described at the top of this module.
pub fn client(config: &OutboundConfig) -> Result<reqwest::Client, OutboundError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout)
        .user_agent(concat!("billsync/", env!("CARGO_PKG_VERSION")))
        // Retries and redirects would bypass the connection's limiter and its accounting.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60));
    if let Some(path) = &config.extra_ca_file {
        for cert in read_ca_bundle(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| OutboundError::Build(chain(&e)))
}

/// The certificates of a PEM bundle; an unreadable or empty file is an error, never ignored.
fn read_ca_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, OutboundError> {
    let pem = std::fs::read(path).map_err(|source| OutboundError::CaFile {
        path: path.display().to_string(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default();
    if certs.is_empty() {
        return Err(OutboundError::CaEmpty {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// Why a base URL may not be used for a provider API, if it may not.
pub fn refuse_base_url(url: &str, allow_plain_http: bool) -> Option<String> {
    let parsed = match url::Url::parse(url) {
        Ok(u) if u.has_host() => u,
        _ => return Some("must be an https URL".into()),
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("must not carry a user name or password (credentials go in `api_key`)".into());
    }
    match parsed.scheme() {
        "https" => None,
        "http" if allow_plain_http || is_loopback(&parsed) => None,
        "http" => Some(
            "must be https: plain http is allowed only to loopback addresses \
             (set BILLSYNC_ALLOW_PLAIN_HTTP=true to allow it elsewhere)"
                .into(),
        ),
        _ => Some("must be an https URL".into()),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// What kind of failure a request met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server's certificate was not accepted (unknown issuer, expired, wrong name...).
    Certificate,
    /// The TLS handshake failed for another reason.
    Tls,
    /// No TCP connection (refused, unreachable, DNS).
    Connect,
    Timeout,
    /// The provider answered, but not with success.
    Status,
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Certificate => "tls_certificate",
            FailureKind::Tls => "tls",
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Status => "http_status",
            FailureKind::Other => "other",
        }
    }
}

/// A failed request, classified, with a sentence that names the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Classifies a reqwest error by walking its sources: a rustls error is a TLS failure (a
/// certificate one when it is about the peer's certificate), never a generic send error.
pub fn classify(error: &reqwest::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(e) = source {
        if let Some(tls) = rustls_error(e) {
            let kind = match tls {
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                    FailureKind::Certificate
                }
                _ => FailureKind::Tls,
            };
            let what = if kind == FailureKind::Certificate {
                "TLS certificate not accepted"
            } else {
                "TLS handshake failed"
            };
            return Failure {
                kind,
                message: format!("{what}: {tls} ({})", host_of(error)),
            };
        }
        source = e.source();
    }
    let (kind, what) = if error.is_timeout() {
        (FailureKind::Timeout, "timed out")
    } else if error.is_connect() {
        (FailureKind::Connect, "cannot connect")
    } else {
        (FailureKind::Other, "request failed")
    };
    Failure {
        kind,
        message: format!("{what}: {} ({})", chain(error), host_of(error)),
    }
}

/// The rustls error in `e`, also where it is wrapped in I/O errors (hyper-rustls wraps
/// tokio-rustls' `io::Error` in another, and `io::Error::source` skips the wrapped error).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}

fn host_of(error: &reqwest::Error) -> String {
    error
        .url()
        .map(|u| match (u.host_str(), u.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => u.scheme().to_owned(),
        })
        .unwrap_or_else(|| "no URL".into())
}

/// An error and its sources in one line, each said once.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        for ok in [
            "https://api.stripe.com",
            "http://127.0.0.1:12111/stripe",
            "http://localhost:9/x",
            "http://[::1]:9",
            "http://127.9.9.9",
        ] {
            assert_eq!(refuse_base_url(ok, false), None, "{ok}");
        }
        for bad in [
            "http://api.example.com",
            "http://10.0.0.1",
            "ftp://x",
            "not a url",
            "https://user:pw@api.example.com",
        ] {
            assert!(refuse_base_url(bad, false).is_some(), "{bad}");
        }
        assert_eq!(refuse_base_url("http://api.example.com", true), None);
        assert!(refuse_base_url("https://u:p@h", true).is_some());
    }

    #[test]
    fn an_unreadable_or_empty_ca_bundle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = OutboundConfig {
            extra_ca_file: Some(dir.path().join("nope.pem")),
            ..OutboundConfig::default()
        };
        let e = client(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.pem") && e.contains("SSL_CERT_FILE"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here").unwrap();
        let e = client(&OutboundConfig {
            extra_ca_file: Some(empty),
            ..OutboundConfig::default()
        })
        .unwrap_err();
        assert!(matches!(e, OutboundError::CaEmpty { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_named_with_its_host_and_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = client(&OutboundConfig {
            extra_ca_file: None,
            ..OutboundConfig::default()
        })
        .unwrap();
        let e = c
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let f = classify(&e);
        assert_eq!(f.kind, FailureKind::Connect, "{f:?}");
        assert!(f.message.contains(&format!("127.0.0.1:{port}")), "{f:?}");
    }
}
