//! Configuration: defaults, then an optional TOML file, then `BILLSYNC_*` variables (README "Configuration").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("could not read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where a verified webhook goes before its 200 (`BILLSYNC_INTAKE`, docs/sqs-intake.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntakeMode {
    /// Straight into the store (`raw_events` + `inbox`).
    #[default]
    Direct,
    /// Into the SQS queue `sqs_queue_url`; every node's workers move it into the store.
    Sqs,
}

/// Everything a node needs to run. Build with [`Config::load`] or [`Config::default`].
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address (`BILLSYNC_LISTEN`).
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://...` (`BILLSYNC_DATABASE_URL`).
    pub database_url: String,
    /// Bearer token for admin and read APIs (`BILLSYNC_ADMIN_TOKEN`); generated when unset.
    pub admin_token: Option<String>,
    /// This node's name (`BILLSYNC_NODE_ID`).
    pub node_id: String,
    /// Cluster: how long a node's shard leases last without renewal, seconds
    /// (`BILLSYNC_LEASE_SECS`). A dead node's work is taken over after about this long.
    pub lease_secs: u64,
    /// Log filter (`BILLSYNC_LOG`).
    pub log: String,
    /// Where the embedded store and the generated secret key live (`BILLSYNC_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Base64 32-byte key sealing connection secrets (`BILLSYNC_SECRET_KEY`); when unset, a
    /// key file `secret.key` is created in `data_dir`.
    pub secret_key: Option<String>,
    /// Webhook timestamp tolerance in seconds.
    pub webhook_tolerance_secs: i64,
    /// Most events one intake transaction commits.
    pub intake_batch_max: usize,
    /// Concurrent intake transactions (1 fits SQLite's single writer).
    pub intake_writers: usize,
    /// Seconds without work before a pair actor stops.
    pub actor_idle_secs: u64,
    /// Apply attempts before an inbox row is dead-lettered.
    pub inbox_max_attempts: i64,
    /// Talk to provider APIs in the background: confirm what webhooks changed, sweep for what
    /// they missed. Off only for offline demos and tests without a provider.
    pub provider_sync: bool,
    /// Seconds between reconciliation sweeps of a connection that names no interval.
    pub reconcile_interval_secs: u64,
    /// Seconds before the first confirmation read.
    pub confirm_after_secs: u64,
    /// Seconds after which an unconfirmed object is marked `failed`.
    pub confirm_window_secs: u64,
    /// Timeout of one provider API request, seconds.
    pub provider_timeout_secs: u64,
    /// Timeout to connect to a provider API (TCP and TLS handshake), seconds.
    pub provider_connect_timeout_secs: u64,
    /// A PEM bundle trusted for provider APIs on top of the built-in and platform roots
    /// (`SSL_CERT_FILE`).
    pub ssl_cert_file: Option<PathBuf>,
    /// Allow `http://` provider API bases that are not loopback (`BILLSYNC_ALLOW_PLAIN_HTTP`).
    pub allow_plain_http: bool,
    /// Seconds a client has to send a request's headers, counted from when it connects or,
    /// on a kept-alive connection, from the first byte of the request
    /// (`BILLSYNC_HTTP_HEADER_TIMEOUT_SECS`). Past it the connection is closed.
    pub http_header_timeout_secs: u64,
    /// Seconds a client has to send a request's whole body once its headers are in, and to
    /// take each part of an answer it has stopped reading (`BILLSYNC_HTTP_BODY_TIMEOUT_SECS`).
    /// A late body is answered `408` and the connection closed.
    pub http_body_timeout_secs: u64,
    /// Seconds a kept-alive connection may sit between requests (`BILLSYNC_HTTP_IDLE_TIMEOUT_SECS`).
    pub http_idle_timeout_secs: u64,
    /// Most client connections open at once (`BILLSYNC_HTTP_MAX_CONNECTIONS`); 0 derives it
    /// from the open-file limit, keeping a reserve for the database, provider APIs and logs.
    /// At the cap a newcomer is still served: the connection that has waited longest without
    /// sending a complete request is closed to make room.
    pub http_max_connections: usize,
    /// `direct` or `sqs` (`BILLSYNC_INTAKE`).
    pub intake: IntakeMode,
    /// The SQS intake queue's URL (`BILLSYNC_SQS_QUEUE_URL`); needed when `intake` is `sqs`.
    pub sqs_queue_url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("node_id", &self.node_id)
            .field("data_dir", &self.data_dir)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://./billsync-data/billsync.db".into(),
            admin_token: None,
            node_id: default_node_id(),
            lease_secs: 15,
            log: "info".into(),
            data_dir: PathBuf::from("./billsync-data"),
            secret_key: None,
            webhook_tolerance_secs: 300,
            intake_batch_max: 256,
            intake_writers: 0,
            actor_idle_secs: 30,
            inbox_max_attempts: 10,
            provider_sync: true,
            reconcile_interval_secs: 300,
            confirm_after_secs: 2,
            confirm_window_secs: 15 * 60,
            provider_timeout_secs: 10,
            provider_connect_timeout_secs: 5,
            ssl_cert_file: None,
            allow_plain_http: false,
            http_header_timeout_secs: 10,
            http_body_timeout_secs: 30,
            http_idle_timeout_secs: 60,
            http_max_connections: 0,
            intake: IntakeMode::Direct,
            sqs_queue_url: None,
        }
    }
}

fn boolean(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!("`{v}` is not true or false"),
        }),
    }
}

fn number<T: std::str::FromStr>(name: &'static str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: format!("`{v}` is not a whole number"),
    })
}

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}

/// A database URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Config {
    /// Defaults, overlaid by the TOML file (when given), overlaid by the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match file {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.display().to_string(),
                    source,
                })?
            }
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.sqs_intake_queue()?;
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = var("BILLSYNC_LISTEN") {
            self.listen = v.parse().map_err(|e| ConfigError::Invalid {
                name: "BILLSYNC_LISTEN",
                reason: format!("{e} (expected HOST:PORT, e.g. 127.0.0.1:8080)"),
            })?;
        }
        if let Some(v) = var("BILLSYNC_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = var("BILLSYNC_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
            self.admin_token = Some(v);
        }
        if let Some(v) = var("BILLSYNC_NODE_ID") {
            self.node_id = v;
        }
        if let Some(v) = var("BILLSYNC_LEASE_SECS") {
            self.lease_secs = number("BILLSYNC_LEASE_SECS", &v)?;
        }
        if self.lease_secs == 0 {
            return Err(ConfigError::Invalid {
                name: "BILLSYNC_LEASE_SECS",
                reason: "a lease of 0 seconds would lapse at once: use at least 1 (default 15)"
                    .into(),
            });
        }
        if let Some(v) = var("BILLSYNC_LOG") {
            self.log = v;
        }
        if let Some(v) = var("BILLSYNC_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = var("BILLSYNC_SECRET_KEY").filter(|v| !v.is_empty()) {
            self.secret_key = Some(v);
        }
        if let Some(v) = var("BILLSYNC_PROVIDER_SYNC") {
            self.provider_sync = boolean("BILLSYNC_PROVIDER_SYNC", &v)?;
        }
        if let Some(v) = var("BILLSYNC_ALLOW_PLAIN_HTTP") {
            self.allow_plain_http = boolean("BILLSYNC_ALLOW_PLAIN_HTTP", &v)?;
        }
        if let Some(v) = var("BILLSYNC_HTTP_HEADER_TIMEOUT_SECS") {
            self.http_header_timeout_secs = number("BILLSYNC_HTTP_HEADER_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = var("BILLSYNC_HTTP_BODY_TIMEOUT_SECS") {
            self.http_body_timeout_secs = number("BILLSYNC_HTTP_BODY_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = var("BILLSYNC_HTTP_IDLE_TIMEOUT_SECS") {
            self.http_idle_timeout_secs = number("BILLSYNC_HTTP_IDLE_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = var("BILLSYNC_HTTP_MAX_CONNECTIONS") {
            self.http_max_connections = number("BILLSYNC_HTTP_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = var("BILLSYNC_INTAKE") {
            self.intake = match v.trim() {
                "direct" => IntakeMode::Direct,
                "sqs" => IntakeMode::Sqs,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "BILLSYNC_INTAKE",
                        reason: format!("`{v}` is neither `direct` nor `sqs`"),
                    })
                }
            };
        }
        if let Some(v) = var("BILLSYNC_SQS_QUEUE_URL").filter(|v| !v.is_empty()) {
            self.sqs_queue_url = Some(v);
        }
        if let Some(v) = var("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
            self.ssl_cert_file = Some(PathBuf::from(v));
        }
        Ok(())
    }

    /// How this node's provider API clients are made.
    pub fn outbound(&self) -> crate::outbound::OutboundConfig {
        crate::outbound::OutboundConfig {
            extra_ca_file: self.ssl_cert_file.clone(),
            connect_timeout: std::time::Duration::from_secs(
                self.provider_connect_timeout_secs.max(1),
            ),
            request_timeout: std::time::Duration::from_secs(self.provider_timeout_secs.max(1)),
        }
    }

    /// The HTTP server's bounded times (at least a second each).
    pub fn http_timeouts(&self) -> crate::http::Timeouts {
        let secs = |s: u64| std::time::Duration::from_secs(s.max(1));
        crate::http::Timeouts {
            header: secs(self.http_header_timeout_secs),
            body: secs(self.http_body_timeout_secs),
            idle: secs(self.http_idle_timeout_secs),
        }
    }

    /// The SQS intake queue's URL when intake is `sqs` (`None` for `direct`); an error naming
    /// what to set when `sqs` lacks its queue or this build lacks the `sqs` feature.
    pub fn sqs_intake_queue(&self) -> Result<Option<&str>, ConfigError> {
        if self.intake == IntakeMode::Direct {
            return Ok(None);
        }
        if !cfg!(feature = "sqs") {
            return Err(ConfigError::Invalid {
                name: "BILLSYNC_INTAKE",
                reason: "`sqs` needs a build with the `sqs` cargo feature (on by default); \
                         this one was built without it: set BILLSYNC_INTAKE=direct or rebuild"
                    .into(),
            });
        }
        match self.sqs_queue_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => Ok(Some(url)),
            _ => Err(ConfigError::Invalid {
                name: "BILLSYNC_SQS_QUEUE_URL",
                reason: "BILLSYNC_INTAKE=sqs needs the intake queue's URL: set \
                         BILLSYNC_SQS_QUEUE_URL (e.g. https://sqs.eu-west-1.amazonaws.com/123456789012/billsync-intake)"
                    .into(),
            }),
        }
    }

    /// Concurrent intake transactions: as configured, else 1 for SQLite and 4 for Postgres.
    pub fn intake_writer_count(&self) -> usize {
        match self.intake_writers {
            0 if self.database_url.starts_with("sqlite:") => 1,
            0 => 4,
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_over_defaults_and_bad_values_are_named() {
        let mut c = Config::default();
        c.apply_env(|n| (n == "BILLSYNC_LISTEN").then(|| "127.0.0.1:9".to_string()))
            .unwrap();
        assert_eq!(c.listen.port(), 9);
        let err = c
            .apply_env(|n| (n == "BILLSYNC_LISTEN").then(|| "nope".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("BILLSYNC_LISTEN"));
    }

    #[test]
    fn http_timeouts_come_from_the_environment_and_toml() {
        let mut c = Config::default();
        assert_eq!(c.http_timeouts().header.as_secs(), 10);
        c.apply_env(|n| (n == "BILLSYNC_HTTP_BODY_TIMEOUT_SECS").then(|| "7".to_string()))
            .unwrap();
        assert_eq!(c.http_timeouts().body.as_secs(), 7);
        let err = c
            .apply_env(|n| (n == "BILLSYNC_HTTP_IDLE_TIMEOUT_SECS").then(|| "soon".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("BILLSYNC_HTTP_IDLE_TIMEOUT_SECS"));
        let c: Config =
            toml::from_str("http_header_timeout_secs = 0\nhttp_max_connections = 100").unwrap();
        assert_eq!(c.http_timeouts().header.as_secs(), 1, "at least a second");
        assert_eq!(c.http_max_connections, 100);
    }

    #[test]
    fn toml_file_is_read_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:7\"\nlog = \"debug\"\n").unwrap();
        let c: Config = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(c.listen.port(), 7);
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    }

    #[test]
    fn sqs_intake_needs_its_queue_url() {
        let mut c = Config::default();
        assert_eq!(c.sqs_intake_queue().unwrap(), None, "direct by default");
        c.apply_env(|n| (n == "BILLSYNC_INTAKE").then(|| "sqs".to_string()))
            .unwrap();
        let err = c.sqs_intake_queue().unwrap_err().to_string();
        if cfg!(feature = "sqs") {
            assert!(err.contains("set BILLSYNC_SQS_QUEUE_URL"), "{err}");
        } else {
            assert!(err.contains("`sqs` cargo feature"), "{err}");
        }
        c.apply_env(|n| {
            (n == "BILLSYNC_SQS_QUEUE_URL").then(|| "http://127.0.0.1:1/q".to_string())
        })
        .unwrap();
        assert_eq!(
            c.sqs_intake_queue().ok().flatten(),
            cfg!(feature = "sqs").then_some("http://127.0.0.1:1/q")
        );
        let err = c
            .apply_env(|n| (n == "BILLSYNC_INTAKE").then(|| "kafka".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("BILLSYNC_INTAKE"));
        let c: Config = toml::from_str("intake = \"sqs\"\nsqs_queue_url = \"u\"").unwrap();
        assert_eq!(c.intake, IntakeMode::Sqs);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
