//! The simulator's HTTP client for `verify` (the simulator's control API and billsync's read
//! API) and the sentences its failures are reported in. The same trust as billsync's outbound
//! calls (its src/outbound.rs, README "Provider APIs over HTTPS"): reqwest over rustls with
//! Mozilla's roots and the platform's store, plus every certificate of the PEM bundle named by
//! `SSL_CERT_FILE`; an unreadable or empty bundle is an error, never ignored.

use std::path::Path;
use std::time::Duration;

use thiserror::Error;

/// Time to open a connection and finish the TLS handshake (as billsync's admin client).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for one whole request, answer included (as billsync's admin client).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no client could be made.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The bundle `SSL_CERT_FILE` names is unreadable or holds no certificate.
    #[error("the CA bundle {path} (SSL_CERT_FILE) {why}")]
    CaBundle { path: String, why: String },
    #[error("cannot build the HTTPS client: {0}")]
    Build(String),
}

/// A client with [`CONNECT_TIMEOUT`] and [`REQUEST_TIMEOUT`] that trusts as described at the
/// top of this module; `SSL_CERT_FILE` is read now.
pub fn client() -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("billsync-sim/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(bundle) = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
        for certificate in bundle_certificates(Path::new(&bundle))? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| ClientError::Build(cause(&e)))
}

/// Every certificate of the PEM file at `path`; none is an error.
fn bundle_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let refused = |why: String| ClientError::CaBundle {
        path: path.display().to_string(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| refused(format!("cannot be read: {e}")))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(certificates),
        _ => Err(refused("holds no PEM certificate".into())),
    }
}

/// A failed request as one sentence: where it went, what kind of failure, and the innermost
/// cause of the error chain (a certificate problem is named by rustls there).
pub fn cause(error: &reqwest::Error) -> String {
    let place = match error.url() {
        Some(url) => match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => url.to_string(),
        },
        None => "no address".to_owned(),
    };
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    if error.is_timeout() && error.is_connect() {
        format!(
            "no connection to {place} within {}s",
            CONNECT_TIMEOUT.as_secs()
        )
    } else if error.is_timeout() {
        format!("{place} did not answer in time ({innermost})")
    } else if error.is_connect() {
        format!("cannot connect to {place}: {innermost}")
    } else {
        format!("{innermost} ({place})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_certificates_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("billsync-sim-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = bundle_certificates(&empty).unwrap_err();
        assert!(
            err.to_string().ends_with("holds no PEM certificate"),
            "{err}"
        );
        let missing = dir.join("missing.pem");
        let err = bundle_certificates(&missing).unwrap_err();
        assert!(
            err.to_string()
                .contains("missing.pem (SSL_CERT_FILE) cannot be read"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
