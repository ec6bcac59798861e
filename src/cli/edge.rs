//! Errors at the binary's edge: one sentence saying what was being done, the cause once, and
//! what to try; a backtrace only when `RUST_BACKTRACE` asks for one. Also the store checks made
//! before a store is opened, so that a Postgres that refuses names its host and port at once
//! (instead of a pool timing out after 10 s) and an SQLite file that cannot be written names
//! its path.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::bail;

/// Prints `error` as one line on standard error, and its backtrace when asked for.
pub fn report(error: &anyhow::Error) {
    eprintln!("error: {}", sentence(error));
    let asked = std::env::var("RUST_BACKTRACE").is_ok_and(|v| !v.is_empty() && v != "0");
    if asked {
        eprintln!("\n{}", error.backtrace());
    }
}

/// The error and its causes in one line, each said once: a cause whose text the line already
/// holds (an error that prints its source, then the source itself) is left out.
pub fn sentence(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.trim().trim_end_matches('.');
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line.replace('\n', " ")
}

/// How long the check of a Postgres address waits for a TCP connection.
const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks that the store `url` names can be reached or written before it is opened: a TCP
/// connection to a Postgres server, or a writable SQLite file and directory.
pub async fn check_store(url: &str) -> anyhow::Result<()> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        check_postgres(url).await
    } else if url.starts_with("sqlite:") {
        check_sqlite(url)
    } else {
        Ok(())
    }
}

/// The host and port a Postgres URL connects to over TCP (none for a Unix socket).
fn postgres_address(url: &str) -> Option<(String, u16)> {
    let parsed = url::Url::parse(url).ok()?;
    let query_host = parsed
        .query_pairs()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.into_owned());
    let host = match (parsed.host_str().filter(|h| !h.is_empty()), query_host) {
        (_, Some(h)) if h.starts_with('/') => return None,
        (Some(h), _) => h.trim_matches(['[', ']']).to_owned(),
        (None, Some(h)) => h,
        (None, None) => "localhost".to_owned(),
    };
    Some((host, parsed.port().unwrap_or(5432)))
}

async fn check_postgres(url: &str) -> anyhow::Result<()> {
    let Some((host, port)) = postgres_address(url) else {
        return Ok(());
    };
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    let why = match tokio::time::timeout(POSTGRES_CONNECT_TIMEOUT, connect).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", POSTGRES_CONNECT_TIMEOUT.as_secs()),
    };
    bail!(
        "cannot connect to Postgres at {host}:{port} ({why}); start Postgres there or correct \
         the host and port in BILLSYNC_DATABASE_URL"
    )
}

/// The file an SQLite URL names (none for an in-memory database).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    let text = path.to_string_lossy();
    let in_memory = text.starts_with(":memory:")
        || text.starts_with("file:sqlx-in-memory")
        || url.contains("mode=memory");
    (!text.is_empty() && !in_memory).then(|| path.to_path_buf())
}

fn check_sqlite(url: &str) -> anyhow::Result<()> {
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let hint = "choose a writable path in BILLSYNC_DATABASE_URL (sqlite://PATH) or give this \
                user write access";
    if let Err(e) = std::fs::create_dir_all(&dir) {
        bail!(
            "cannot create the directory {} for the SQLite store {} ({e}); {hint}",
            dir.display(),
            path.display()
        );
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
    {
        bail!(
            "cannot open the SQLite store {} for writing ({e}); {hint}",
            path.display()
        );
    }
    // SQLite also writes its journal (`-wal`, `-shm`) beside the file.
    if let Err(e) = writable_dir(&dir) {
        bail!(
            "cannot write in {}, where the SQLite store {} keeps its journal ({e}); {hint}",
            dir.display(),
            path.display()
        );
    }
    Ok(())
}

fn writable_dir(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".billsync-write-check-{}", std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        let io = std::io::Error::other("Permission denied (os error 13)");
        #[derive(Debug, thiserror::Error)]
        #[error("could not read x: {source}")]
        struct Read {
            source: std::io::Error,
        }
        let e = anyhow::Error::new(Read { source: io }).context("cannot start");
        assert_eq!(
            sentence(&e),
            "cannot start: could not read x: Permission denied (os error 13)"
        );
    }

    #[test]
    fn postgres_addresses() {
        assert_eq!(
            postgres_address("postgres://u:p@db.example:6543/x"),
            Some(("db.example".into(), 6543))
        );
        assert_eq!(
            postgres_address("postgres://u@localhost/x"),
            Some(("localhost".into(), 5432))
        );
        assert_eq!(
            postgres_address("postgres:///x?host=/var/run/postgresql"),
            None
        );
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://./d/b.db"),
            Some(PathBuf::from("./d/b.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
