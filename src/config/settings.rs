//! The one table of settings: each setting's TOML key, environment variable, default, meaning
//! and how a variable's text sets it. `Config::load` reads the environment through it; `serve
//! --help` ([`help`]), `billsync config` ([`effective`]) and `billsync.example.toml`
//! ([`example_toml`]) are made from it, so none of them can miss a setting.

use std::path::PathBuf;

use super::{Config, IntakeMode, LogFormat};

/// One setting.
pub struct Setting {
    /// The TOML key (and the `Config` field).
    pub key: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The default, in words when it is not a plain value.
    pub default: &'static str,
    /// What it does, in one sentence.
    pub help: &'static str,
    /// How `billsync config` shows it.
    pub shown: Shown,
    /// Sets the value from a variable's text; an error says why the text is not valid.
    pub set: fn(&mut Config, &str) -> Result<(), String>,
}

/// How a setting's value may be printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Plain,
    /// Never printed: `***` when set.
    Secret,
    /// A URL whose password is masked.
    UrlPassword,
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("`{v}` is not true or false")),
    }
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("`{v}` is not a whole number"))
}

/// An optional text: an empty variable leaves the value as it was (unset stays unset).
fn optional(v: &str) -> Option<String> {
    Some(v.to_owned()).filter(|v| !v.is_empty())
}

macro_rules! setting {
    ($key:literal, $env:literal, $default:literal, $help:literal, $shown:ident, $set:expr) => {
        Setting {
            key: $key,
            env: $env,
            default: $default,
            help: $help,
            shown: Shown::$shown,
            set: $set,
        }
    };
}

/// Every setting, in the order they are listed.
pub const SETTINGS: &[Setting] = &[
    setting!("listen", "BILLSYNC_LISTEN", "127.0.0.1:8080", "HTTP listen address (HOST:PORT).", Plain,
        |c, v| { c.listen = v.trim().parse().map_err(|e| format!("{e} (expected HOST:PORT, e.g. 127.0.0.1:8080)"))?; Ok(()) }),
    setting!("database_url", "BILLSYNC_DATABASE_URL", "sqlite://./billsync-data/billsync.db", "The store: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB.", UrlPassword,
        |c, v| { c.database_url = v.to_owned(); Ok(()) }),
    setting!("admin_token", "BILLSYNC_ADMIN_TOKEN", "generated at first start, printed once", "Bearer token for /admin/* and /v1/*.", Secret,
        |c, v| { if let Some(v) = optional(v) { c.admin_token = Some(v); } Ok(()) }),
    setting!("node_id", "BILLSYNC_NODE_ID", "host name + pid", "This node's name in a cluster.", Plain,
        |c, v| { c.node_id = v.to_owned(); Ok(()) }),
    setting!("lease_secs", "BILLSYNC_LEASE_SECS", "15", "Cluster: seconds a node's shard leases last without renewal (docs/cluster.md).", Plain,
        |c, v| { c.lease_secs = number(v)?; Ok(()) }),
    setting!("log", "BILLSYNC_LOG", "info", "Log filter, e.g. info,billsync=debug.", Plain,
        |c, v| { c.log = v.to_owned(); Ok(()) }),
    setting!("log_format", "BILLSYNC_LOG_FORMAT", "text", "Log lines as text or json.", Plain,
        |c, v| { c.log_format = match v.trim() { "text" | "" => LogFormat::Text, "json" => LogFormat::Json, _ => return Err(format!("`{v}` is neither `text` nor `json`")) }; Ok(()) }),
    setting!("data_dir", "BILLSYNC_DATA_DIR", "./billsync-data", "Where the generated secret key (secret.key) lives.", Plain,
        |c, v| { c.data_dir = PathBuf::from(v); Ok(()) }),
    setting!("secret_key", "BILLSYNC_SECRET_KEY", "the key file secret.key in data_dir, created at first start", "Base64 32-byte key sealing connection secrets (AES-256-GCM).", Secret,
        |c, v| { if let Some(v) = optional(v) { c.secret_key = Some(v); } Ok(()) }),
    setting!("provider_sync", "BILLSYNC_PROVIDER_SYNC", "true", "Call provider APIs in the background: confirm webhooks' changes, sweep for missed ones (false for offline demos).", Plain,
        |c, v| { c.provider_sync = boolean(v)?; Ok(()) }),
    setting!("allow_plain_http", "BILLSYNC_ALLOW_PLAIN_HTTP", "false", "Accept http:// provider API bases that are not loopback.", Plain,
        |c, v| { c.allow_plain_http = boolean(v)?; Ok(()) }),
    setting!("ssl_cert_file", "SSL_CERT_FILE", "none", "A PEM bundle trusted for provider APIs on top of the built-in and platform roots.", Plain,
        |c, v| { if let Some(v) = optional(v) { c.ssl_cert_file = Some(PathBuf::from(v)); } Ok(()) }),
    setting!("provider_connect_timeout_secs", "BILLSYNC_PROVIDER_CONNECT_TIMEOUT_SECS", "5", "Seconds to connect to a provider API (TCP and TLS handshake).", Plain,
        |c, v| { c.provider_connect_timeout_secs = number(v)?; Ok(()) }),
    setting!("provider_timeout_secs", "BILLSYNC_PROVIDER_TIMEOUT_SECS", "10", "Seconds for one whole provider API request.", Plain,
        |c, v| { c.provider_timeout_secs = number(v)?; Ok(()) }),
    setting!("reconcile_interval_secs", "BILLSYNC_RECONCILE_INTERVAL_SECS", "300", "Seconds between reconciliation sweeps of a connection that names no interval.", Plain,
        |c, v| { c.reconcile_interval_secs = number(v)?; Ok(()) }),
    setting!("confirm_after_secs", "BILLSYNC_CONFIRM_AFTER_SECS", "2", "Seconds before the first confirmation read of a webhook's change.", Plain,
        |c, v| { c.confirm_after_secs = number(v)?; Ok(()) }),
    setting!("confirm_window_secs", "BILLSYNC_CONFIRM_WINDOW_SECS", "900", "Seconds after which an unconfirmed object is marked failed.", Plain,
        |c, v| { c.confirm_window_secs = number(v)?; Ok(()) }),
    setting!("webhook_tolerance_secs", "BILLSYNC_WEBHOOK_TOLERANCE_SECS", "300", "Seconds a signed webhook's timestamp may be off.", Plain,
        |c, v| { c.webhook_tolerance_secs = number(v)?; Ok(()) }),
    setting!("intake", "BILLSYNC_INTAKE", "direct", "direct (webhooks committed to the store) or sqs (through an SQS queue; docs/sqs-intake.md).", Plain,
        |c, v| { c.intake = match v.trim() { "direct" => IntakeMode::Direct, "sqs" => IntakeMode::Sqs, _ => return Err(format!("`{v}` is neither `direct` nor `sqs`")) }; Ok(()) }),
    setting!("sqs_queue_url", "BILLSYNC_SQS_QUEUE_URL", "none", "The intake queue when intake is sqs (region and credentials from the AWS environment).", Plain,
        |c, v| { if let Some(v) = optional(v) { c.sqs_queue_url = Some(v); } Ok(()) }),
    setting!("archive_bucket", "BILLSYNC_ARCHIVE_BUCKET", "none", "S3 bucket (with Object Lock) raw events are archived to, past the hot window trimmed from the database (docs/archive.md); unset: no archive.", Plain,
        |c, v| { if let Some(v) = optional(v) { c.archive_bucket = Some(v); } Ok(()) }),
    setting!("archive_prefix", "BILLSYNC_ARCHIVE_PREFIX", "billsync", "Key prefix of the archive in its bucket.", Plain,
        |c, v| { c.archive_prefix = v.trim().to_owned(); Ok(()) }),
    setting!("archive_partition_secs", "BILLSYNC_ARCHIVE_PARTITION_SECS", "86400", "Seconds in one archive time partition (UTC days by default); a partition is archived once closed.", Plain,
        |c, v| { c.archive_partition_secs = number(v)?; Ok(()) }),
    setting!("archive_hot_window_secs", "BILLSYNC_ARCHIVE_HOT_WINDOW_SECS", "7776000", "Seconds archived raw events stay in the database (90 days); older ones are trimmed, and a replay of them reads the archive.", Plain,
        |c, v| { c.archive_hot_window_secs = number(v)?; Ok(()) }),
    setting!("archive_interval_secs", "BILLSYNC_ARCHIVE_INTERVAL_SECS", "3600", "Seconds between serve's archive passes when a bucket is set (0: only `billsync archive` archives).", Plain,
        |c, v| { c.archive_interval_secs = number(v)?; Ok(()) }),
    setting!("intake_batch_max", "BILLSYNC_INTAKE_BATCH_MAX", "256", "Most webhooks one intake transaction commits.", Plain,
        |c, v| { c.intake_batch_max = number(v)?; Ok(()) }),
    setting!("intake_writers", "BILLSYNC_INTAKE_WRITERS", "0", "Concurrent intake transactions (0: 1 on SQLite, 4 on Postgres).", Plain,
        |c, v| { c.intake_writers = number(v)?; Ok(()) }),
    setting!("intake_linger_ms", "BILLSYNC_INTAKE_LINGER_MS", "10", "Milliseconds a small intake batch waits for more webhooks while another intake transaction is committing (0: never; one writer never waits).", Plain,
        |c, v| { c.intake_linger_ms = number(v)?; Ok(()) }),
    setting!("actor_idle_secs", "BILLSYNC_ACTOR_IDLE_SECS", "30", "Seconds without work before a connection's actor stops.", Plain,
        |c, v| { c.actor_idle_secs = number(v)?; Ok(()) }),
    setting!("inbox_max_attempts", "BILLSYNC_INBOX_MAX_ATTEMPTS", "10", "Apply attempts before an event is dead-lettered.", Plain,
        |c, v| { c.inbox_max_attempts = number(v)?; Ok(()) }),
    setting!("http_header_timeout_secs", "BILLSYNC_HTTP_HEADER_TIMEOUT_SECS", "10", "Seconds a client has to send a request's headers.", Plain,
        |c, v| { c.http_header_timeout_secs = number(v)?; Ok(()) }),
    setting!("http_body_timeout_secs", "BILLSYNC_HTTP_BODY_TIMEOUT_SECS", "30", "Seconds a client has to send a request's whole body (and to take an answer).", Plain,
        |c, v| { c.http_body_timeout_secs = number(v)?; Ok(()) }),
    setting!("http_idle_timeout_secs", "BILLSYNC_HTTP_IDLE_TIMEOUT_SECS", "60", "Seconds a kept-alive connection may sit between requests.", Plain,
        |c, v| { c.http_idle_timeout_secs = number(v)?; Ok(()) }),
    setting!("http_max_connections", "BILLSYNC_HTTP_MAX_CONNECTIONS", "0", "Most client connections open at once (0: derived from the open-file limit).", Plain,
        |c, v| { c.http_max_connections = number(v)?; Ok(()) }),
];

/// The settings as `serve --help` lists them: variable, TOML key, default, meaning.
pub fn help() -> String {
    let mut out = String::from(
        "Configuration (environment variable, TOML key in --config, default; the environment wins):\n",
    );
    for s in SETTINGS {
        out.push_str(&format!(
            "  {} ({}; default: {})\n      {}\n",
            s.env, s.key, s.default, s.help
        ));
    }
    out
}

/// A configuration as TOML values by key (unset optional settings are absent).
fn values(config: &Config) -> toml::Table {
    // Every field is a string, number, boolean or an Option of one: it serializes.
    toml::Table::try_from(config).expect("a Config serializes to a TOML table")
}

/// Each setting with its effective value as TOML text, secrets masked (`None`: unset).
pub fn effective(config: &Config) -> Vec<(&'static Setting, Option<String>)> {
    let values = values(config);
    SETTINGS
        .iter()
        .map(|s| {
            let shown = values.get(s.key).map(|v| match (s.shown, v) {
                (Shown::Secret, _) => "\"***\"".to_owned(),
                (Shown::UrlPassword, toml::Value::String(url)) => {
                    toml::Value::String(super::redact_url(url)).to_string()
                }
                _ => v.to_string(),
            });
            (s, shown)
        })
        .collect()
}

/// The effective configuration as commented TOML, secrets masked (`billsync config`).
pub fn effective_toml(config: &Config) -> String {
    let mut out = String::new();
    for (s, value) in effective(config) {
        match value {
            Some(v) => out.push_str(&format!("{} = {v}  # {}\n", s.key, s.env)),
            None => out.push_str(&format!("# {} is unset  # {}\n", s.key, s.env)),
        }
    }
    out
}

/// The commented example file, every setting at its default (`billsync.example.toml`).
pub fn example_toml() -> String {
    let mut out = String::from(
        "# billsync configuration: `billsync serve --config billsync.example.toml`.\n\
         # Every key can also be set by its environment variable, which wins over this file.\n\
         # Unknown keys are refused. Regenerate with `billsync config --example`.\n",
    );
    let defaults = values(&Config::default());
    for s in SETTINGS {
        out.push_str(&format!(
            "\n# {}\n# {} (default: {})\n",
            s.help, s.env, s.default
        ));
        match defaults.get(s.key) {
            Some(_) if s.key == "node_id" => out.push_str("# node_id = \"node-a\"\n"),
            Some(v) => out.push_str(&format!("{} = {v}\n", s.key)),
            None => out.push_str(&format!("# {} = \"\"\n", s.key)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration with every optional setting set, so that every field serializes.
    fn full() -> Config {
        Config {
            admin_token: Some("tok".into()),
            secret_key: Some("key".into()),
            ssl_cert_file: Some("/ca.pem".into()),
            sqs_queue_url: Some("https://sqs/q".into()),
            archive_bucket: Some("archive".into()),
            database_url: "postgres://u:pw@db:5432/b".into(),
            ..Config::default()
        }
    }

    #[test]
    fn the_table_lists_every_field_once_with_one_variable() {
        let fields: Vec<String> = values(&full()).keys().cloned().collect();
        let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        for f in &fields {
            assert!(keys.contains(&f.as_str()), "{f} is not in SETTINGS");
        }
        assert_eq!(
            keys.len(),
            fields.len(),
            "a key listed twice or not a field"
        );
        for s in SETTINGS {
            let expected = format!("BILLSYNC_{}", s.key.to_uppercase());
            assert!(s.env == expected || s.env == "SSL_CERT_FILE", "{}", s.env);
        }
    }

    #[test]
    fn every_variable_sets_its_key() {
        let mut c = Config::default();
        c.apply_env(|n| {
            Some(match n {
                "BILLSYNC_LISTEN" => "127.0.0.1:9".into(),
                "BILLSYNC_LOG_FORMAT" => "json".into(),
                "BILLSYNC_INTAKE" => "direct".into(),
                "BILLSYNC_PROVIDER_SYNC" | "BILLSYNC_ALLOW_PLAIN_HTTP" => "false".into(),
                n if n.ends_with("_SECS")
                    || n.ends_with("_MAX")
                    || n.ends_with("_WRITERS")
                    || n.ends_with("_MS")
                    || n.ends_with("_ATTEMPTS")
                    || n.ends_with("_CONNECTIONS") =>
                {
                    "7".into()
                }
                _ => "x".into(),
            })
        })
        .unwrap();
        assert_eq!(c.confirm_after_secs, 7);
        assert_eq!(c.provider_connect_timeout_secs, 7);
        assert_eq!(c.inbox_max_attempts, 7);
        assert_eq!(c.intake_linger_ms, 7);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.sqs_queue_url.as_deref(), Some("x"));
        let err = Config::default()
            .apply_env(|n| (n == "BILLSYNC_CONFIRM_WINDOW_SECS").then(|| "soon".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BILLSYNC_CONFIRM_WINDOW_SECS") && err.contains("soon"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_masked_in_the_effective_configuration() {
        let text = effective_toml(&full());
        assert!(
            !text.contains("tok\"") && !text.contains("\"key\"") && !text.contains(":pw@"),
            "{text}"
        );
        assert!(text.contains("admin_token = \"***\""), "{text}");
        assert!(text.contains("postgres://u:***@db:5432/b"), "{text}");
        assert!(
            text.contains("listen = \"127.0.0.1:8080\"  # BILLSYNC_LISTEN"),
            "{text}"
        );
        let unset = effective_toml(&Config::default());
        assert!(unset.contains("# admin_token is unset"), "{unset}");
    }

    #[test]
    fn help_names_every_variable() {
        let help = help();
        for s in SETTINGS {
            assert!(help.contains(s.env) && help.contains(s.key), "{}", s.env);
        }
    }

    #[test]
    fn the_example_file_is_the_generated_one_parses_and_lists_every_key() {
        let file = include_str!("../../billsync.example.toml");
        assert_eq!(
            file,
            example_toml(),
            "regenerate: billsync config --example > billsync.example.toml"
        );
        let parsed = Config::from_toml(file).expect("the example parses");
        assert_eq!(parsed.listen, Config::default().listen);
        for s in SETTINGS {
            let listed = file.lines().any(|l| {
                l.starts_with(&format!("{} = ", s.key)) || l.starts_with(&format!("# {} = ", s.key))
            });
            assert!(listed, "{} is not in billsync.example.toml", s.key);
        }
    }
}
