//! The `billsync` binary as a user meets it: `--version`, completions, `serve --help`'s list of
//! settings, configuration errors, errors at start as one sentence naming what to fix (a
//! refused Postgres by host and port, an SQLite path that cannot be written), and the
//! `connections` commands against a running node.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{spawn_app, Backend, TOKEN};

/// Runs the binary with a clean environment for the settings (no `BILLSYNC_*` from the
/// shell, no backtrace) plus `env`.
fn billsync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billsync"));
    for (key, _) in std::env::vars() {
        if key.starts_with("BILLSYNC_") || key == "RUST_BACKTRACE" || key == "RUST_LIB_BACKTRACE" {
            command.env_remove(key);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    command
        .current_dir(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the billsync binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The error line of a failed run: exactly one line, starting `error: `.
fn one_sentence(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure: {}", stdout(out));
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn version_names_the_commit_and_completions_cover_the_commands() {
    let out = billsync(&["--version"], &[]);
    assert!(out.status.success());
    let version = stdout(&out);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    assert!(version.contains(billsync::COMMIT), "{version}");
    for shell in ["bash", "zsh", "fish"] {
        let out = billsync(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(
            script.contains("connections") && script.contains("backfill"),
            "{shell}"
        );
    }
}

#[test]
fn serve_help_lists_every_setting() {
    let out = billsync(&["serve", "--help"], &[]);
    assert!(out.status.success());
    let help = stdout(&out);
    for setting in billsync::config::SETTINGS {
        assert!(
            help.contains(setting.env),
            "{} missing: {help}",
            setting.env
        );
        assert!(help.contains(setting.key), "{} missing", setting.key);
    }
}

#[test]
fn a_refused_postgres_is_named_by_host_and_port_at_once() {
    let port = free_port();
    let url = format!("postgres://billsync:pw@127.0.0.1:{port}/billsync");
    for command in ["migrate", "serve"] {
        let started = Instant::now();
        let out = billsync(
            &[command],
            &[
                ("BILLSYNC_DATABASE_URL", &url),
                ("BILLSYNC_LISTEN", "127.0.0.1:0"),
            ],
        );
        let line = one_sentence(&out);
        assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
        assert!(line.contains("connection refused"), "{line}");
        assert!(
            line.contains("BILLSYNC_DATABASE_URL"),
            "what to try: {line}"
        );
        assert!(!line.contains("pw"), "the password is never shown: {line}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{command} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn an_sqlite_path_that_cannot_be_written_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A file where a directory should be: refused even to root, unlike file permissions.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let db = blocker.join("data/billsync.db");
    let url = format!("sqlite://{}", db.display());
    for command in ["migrate", "serve"] {
        let out = billsync(
            &[command],
            &[
                ("BILLSYNC_DATABASE_URL", &url),
                ("BILLSYNC_LISTEN", "127.0.0.1:0"),
            ],
        );
        let line = one_sentence(&out);
        assert!(line.contains(&db.display().to_string()), "{line}");
        assert!(
            line.contains("BILLSYNC_DATABASE_URL"),
            "what to try: {line}"
        );
    }
}

#[test]
fn configuration_errors_name_the_setting_and_say_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("billsync.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nlisten_port = 9\n").unwrap();
    let line = one_sentence(&billsync(
        &["--config", file.to_str().unwrap(), "serve"],
        &[],
    ));
    assert!(
        line.contains("listen_port") && line.contains("line 2"),
        "{line}"
    );

    let missing = dir.path().join("missing.toml");
    let line = one_sentence(&billsync(
        &["--config", missing.to_str().unwrap(), "migrate"],
        &[],
    ));
    assert!(line.contains("missing.toml"), "{line}");
    assert_eq!(
        line.matches("No such file").count(),
        1,
        "the cause once: {line}"
    );

    let line = one_sentence(&billsync(
        &["migrate"],
        &[("BILLSYNC_LOG", "info,billsync=loud")],
    ));
    assert!(
        line.contains("BILLSYNC_LOG") && line.contains("billsync=loud"),
        "{line}"
    );

    let line = one_sentence(&billsync(
        &["migrate"],
        &[("BILLSYNC_CONFIRM_AFTER_SECS", "soon")],
    ));
    assert!(line.contains("BILLSYNC_CONFIRM_AFTER_SECS"), "{line}");
}

#[test]
fn a_backtrace_only_when_asked_for() {
    let url = format!("postgres://u@127.0.0.1:{}/x", free_port());
    let out = billsync(&["migrate"], &[("BILLSYNC_DATABASE_URL", &url)]);
    one_sentence(&out);
    let out = billsync(
        &["migrate"],
        &[("BILLSYNC_DATABASE_URL", &url), ("RUST_BACKTRACE", "1")],
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.lines().count() > 1,
        "{err}"
    );
}

#[test]
fn config_prints_the_effective_configuration_with_secrets_masked() {
    let out = billsync(
        &["config"],
        &[
            ("BILLSYNC_ADMIN_TOKEN", "very-secret-token"),
            ("BILLSYNC_DATABASE_URL", "postgres://u:hunter2@db:5432/b"),
            ("BILLSYNC_LEASE_SECS", "42"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains("very-secret-token") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(text.contains("lease_secs = 42"), "{text}");
    assert!(text.contains("postgres://u:***@db:5432/b"), "{text}");
}

#[tokio::test]
async fn connections_commands_over_the_admin_api() {
    let app = spawn_app(Backend::Sqlite).await;
    let conn = app.stripe_connection().await;
    let target = app.url("");
    let run = |args: Vec<String>| {
        let target = target.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut all: Vec<&str> = vec!["connections", "--target", &target, "--token", TOKEN];
                all.extend(args.iter().map(String::as_str));
                billsync(&all, &[])
            })
            .await
            .unwrap()
        }
    };
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    let out = run(s(&["list"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    assert!(list.starts_with("CONNECTION"), "{list}");
    assert!(
        list.contains(&conn.id) && list.contains(&conn.merchant_id),
        "{list}"
    );

    let out = run(s(&["list", "--json"])).await;
    let json: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["connection_id"] == conn.id.as_str()));

    let out = run(s(&["pause", &conn.id])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("state: paused"), "{}", stdout(&out));
    let out = run(s(&["status", &conn.id, "--json"])).await;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["state"], "paused");
    let out = run(s(&["resume", &conn.id])).await;
    assert!(stdout(&out).contains("state: active"), "{}", stdout(&out));

    let out = run(s(&[
        "replay",
        &conn.id,
        "--from",
        "2024-01-01",
        "--to",
        "2030-01-01",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("replay queued for"),
        "{}",
        stdout(&out)
    );
    let out = run(s(&[
        "resync",
        &conn.id,
        "--since",
        "2024-01-01",
        "--types",
        "customer",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("resync started for"),
        "{}",
        stdout(&out)
    );

    let out = run(s(&["status", "conn_nope"])).await;
    let line = one_sentence(&out);
    assert!(line.contains("404"), "{line}");

    let port = free_port();
    let out = tokio::task::spawn_blocking(move || {
        let target = format!("http://127.0.0.1:{port}");
        billsync(
            &["connections", "list", "--target", &target, "--token", "t"],
            &[],
        )
    })
    .await
    .unwrap();
    let line = one_sentence(&out);
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.to_lowercase().contains("connection refused"), "{line}");
    assert!(!line.contains("error sending request"), "{line}");
    app.stop().await;
}

#[test]
fn a_secret_key_that_cannot_open_the_stored_secrets_stops_the_node_naming_key_and_connections() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("store/billsync.db").display()
    );
    let first = dir.path().join("first");
    let env_first = [
        ("BILLSYNC_DATABASE_URL", url.as_str()),
        ("BILLSYNC_DATA_DIR", first.to_str().unwrap()),
        ("USER", "ops-alice"),
    ];
    let out = billsync(
        &[
            "connect",
            "--merchant-id",
            "m_key",
            "--provider",
            "stripe",
            "--account-id",
            "acct_1",
            "--webhook-secret",
            "whsec_1",
            "--api-key",
            "sk_test_1",
        ],
        &env_first,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = view["connection_id"].as_str().unwrap().to_owned();
    // The CLI acted on the store directly: the audit log names it and the OS user.
    let actors: Vec<(String, String)> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_as("SELECT actor, action FROM audit_log")
            .fetch_all(&mut db)
            .await
            .unwrap()
    });
    assert_eq!(
        actors,
        [("cli:ops-alice".to_owned(), "connection.create".to_owned())]
    );

    // Another data directory makes another key, which cannot open the stored secrets.
    let second = dir.path().join("second");
    let out = billsync(
        &["serve"],
        &[
            ("BILLSYNC_DATABASE_URL", url.as_str()),
            ("BILLSYNC_DATA_DIR", second.to_str().unwrap()),
            ("BILLSYNC_LISTEN", "127.0.0.1:0"),
            ("BILLSYNC_ADMIN_TOKEN", TOKEN),
        ],
    );
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(!out.status.success());
    let key_file = second.join("secret.key");
    assert!(line.contains(&key_file.display().to_string()), "{line}");
    assert!(line.contains(&id), "{line}");
}
