//! One node per SQLite file: `serve` on a SQLite store holds an exclusive advisory lock
//! (`flock(LOCK_EX | LOCK_NB)`) on `<database file>.lock` for as long as the node runs, so a
//! second `serve` on the same file stops at once with an error that names the file, instead
//! of becoming a second writer (docs/cluster.md: a SQLite store serves exactly
//! one node).
//!
//! flock belongs to the open file description, so the lock is released when the node's
//! [`NodeLock`] drops or its process dies (even by `kill -9`), and a second `run` inside the
//! same process (which opens the file again) is refused like a second process.
//! `billsync migrate` and tools that open the store directly take no lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;

use super::StoreError;

/// The lock a serving node holds on its SQLite file; released on drop.
#[derive(Debug)]
pub struct NodeLock {
    _file: File,
    path: PathBuf,
}

impl NodeLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the node lock when `database_url` names a SQLite file; `None` for Postgres (a
/// cluster of nodes shares it) and for in-memory SQLite (nothing to share).
pub fn lock_node(database_url: &str) -> Result<Option<NodeLock>, StoreError> {
    if !database_url.starts_with("sqlite:")
        || database_url.contains(":memory:")
        || database_url.contains("mode=memory")
    {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(database_url)?;
    let mut path = options.get_filename().as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(sqlx::Error::Io)?;
    // SAFETY: flock on a descriptor this function owns; it touches no memory.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(StoreError::InUse(path.display().to_string()));
        }
        return Err(sqlx::Error::Io(err).into());
    }
    Ok(Some(NodeLock { _file: file, path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a/b.db").display());
        let first = lock_node(&url).unwrap().expect("a SQLite file is locked");
        assert!(first.path().ends_with("a/b.db.lock"));
        let second = lock_node(&url).unwrap_err();
        assert!(
            second.to_string().contains("b.db.lock"),
            "the error names the file: {second}"
        );
        let other = format!("sqlite://{}", dir.path().join("c.db").display());
        assert!(lock_node(&other).unwrap().is_some(), "another file is free");
        drop(first);
        assert!(lock_node(&url).unwrap().is_some(), "free again after drop");
    }

    #[test]
    fn postgres_and_in_memory_stores_take_no_lock() {
        assert!(lock_node("postgres://u@h/db").unwrap().is_none());
        assert!(lock_node("sqlite::memory:").unwrap().is_none());
    }
}
