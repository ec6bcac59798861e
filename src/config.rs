//! Configuration, read before anything runs: defaults, then an optional TOML file, then
//! environment variables (README "Configuration"). Every setting has one TOML key and one
//! variable (`BILLSYNC_` + the key in upper case; `SSL_CERT_FILE` for the CA bundle), listed
//! once in [`settings::SETTINGS`], from which `serve --help`, `billsync config` and
//! `billsync.example.toml` are made.

pub mod settings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use settings::{Setting, SETTINGS};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid at line {line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where a verified webhook goes before its 200 (`BILLSYNC_INTAKE`, docs/sqs-intake.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IntakeMode {
    /// Straight into the store (`raw_events` + `inbox`).
    #[default]
    Direct,
    /// Into the SQS queue `sqs_queue_url`; every node's workers move it into the store.
    Sqs,
}

/// Everything a node needs to run. Build with [`Config::load`] or [`Config::default`].
/// How log lines are written (`BILLSYNC_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Deserialize, Serialize)]
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
    /// Log filter (`BILLSYNC_LOG`), checked at load.
    pub log: String,
    /// `text` or `json` log lines (`BILLSYNC_LOG_FORMAT`).
    pub log_format: LogFormat,
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
    /// Milliseconds a small intake batch may wait for more while another is being committed
    /// (`BILLSYNC_INTAKE_LINGER_MS`; never with one writer).
    pub intake_linger_ms: u64,
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
    /// The S3 bucket raw events are archived to (`BILLSYNC_ARCHIVE_BUCKET`, docs/archive.md);
    /// unset: no archive, raw events stay in the database.
    pub archive_bucket: Option<String>,
    /// Key prefix of the archive in its bucket (`BILLSYNC_ARCHIVE_PREFIX`).
    pub archive_prefix: String,
    /// Length of an archive time partition, seconds (`BILLSYNC_ARCHIVE_PARTITION_SECS`).
    pub archive_partition_secs: u64,
    /// Archived raw events younger than this stay in the database, seconds
    /// (`BILLSYNC_ARCHIVE_HOT_WINDOW_SECS`).
    pub archive_hot_window_secs: u64,
    /// Seconds between `serve`'s archive passes; 0: only `billsync archive` archives
    /// (`BILLSYNC_ARCHIVE_INTERVAL_SECS`).
    pub archive_interval_secs: u64,
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
            log_format: LogFormat::Text,
            data_dir: PathBuf::from("./billsync-data"),
            secret_key: None,
            webhook_tolerance_secs: 300,
            intake_batch_max: 256,
            intake_writers: 0,
            intake_linger_ms: 10,
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
            archive_bucket: None,
            archive_prefix: "billsync".into(),
            archive_partition_secs: 86_400,
            archive_hot_window_secs: 90 * 86_400,
            archive_interval_secs: 3_600,
        }
    }
}

pub(crate) fn default_node_id() -> String {
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
                Self::from_toml(&text).map_err(|(line, message)| ConfigError::Parse {
                    path: path.display().to_string(),
                    line,
                    message,
                })?
            }
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check()?;
        Ok(config)
    }

    /// A configuration from TOML text over the defaults; an error is its line and message
    /// (an unknown key is named: `unknown field `nonsense`, expected one of ...`).
    pub fn from_toml(text: &str) -> Result<Config, (usize, String)> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let start = e.span().map_or(0, |span| span.start.min(text.len()));
            let line = text[..start].matches('\n').count() + 1;
            (line, e.message().trim().to_owned())
        })
    }

    /// The checks no single value can make on its own.
    fn check(&self) -> Result<(), ConfigError> {
        if self.lease_secs == 0 {
            return Err(ConfigError::Invalid {
                name: "BILLSYNC_LEASE_SECS",
                reason: "a lease of 0 seconds would lapse at once: use at least 1 (default 15)"
                    .into(),
            });
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return Err(ConfigError::Invalid {
                name: "BILLSYNC_LOG",
                reason: format!(
                    "`{}` is not a log filter ({e}); use a level such as `info` or \
                     directives such as `info,billsync=debug`",
                    self.log
                ),
            });
        }
        self.sqs_intake_queue()?;
        if self.archive_partition_secs == 0 {
            return Err(ConfigError::Invalid {
                name: "BILLSYNC_ARCHIVE_PARTITION_SECS",
                reason: "an archive partition of 0 seconds is empty: use at least 1 (default \
                         86400, a day)"
                    .into(),
            });
        }
        if self.archive_bucket.is_some() && !cfg!(feature = "archive") {
            return Err(ConfigError::Invalid {
                name: "BILLSYNC_ARCHIVE_BUCKET",
                reason: "the archive needs a build with the `archive` cargo feature (on by \
                         default); this one was built without it: unset it or rebuild"
                    .into(),
            });
        }
        Ok(())
    }

    /// Every setting's variable that is set overrides the value so far.
    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for setting in SETTINGS {
            if let Some(v) = var(setting.env) {
                (setting.set)(self, &v).map_err(|reason| ConfigError::Invalid {
                    name: setting.env,
                    reason,
                })?;
            }
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
    fn an_unknown_key_is_named_with_its_line() {
        let (line, message) = Config::from_toml("listen = \"127.0.0.1:7\"\nlisten_port = 9\n")
            .expect_err("an unknown key is refused");
        assert_eq!(line, 2);
        assert!(message.contains("listen_port"), "{message}");
    }

    #[test]
    fn a_bad_log_filter_is_an_error() {
        let mut c = Config::default();
        c.apply_env(|n| (n == "BILLSYNC_LOG").then(|| "info,billsync=loud".to_string()))
            .unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(
            err.contains("BILLSYNC_LOG") && err.contains("billsync=loud"),
            "{err}"
        );
        c.log = "info,billsync=debug".into();
        c.check().unwrap();
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
