//! The raw archive (docs/archive.md): raw events leave the hot database for S3, where Object
//! Lock keeps them immutable for the retention period, and come back for a replay.
//!
//! Its place in the flow: intake appends to `raw_events`; a pass of the archive (`billsync
//! archive`, and a task in `serve` every `archive_interval_secs`) then
//!
//! 1. adopts any manifest written before a crash but not yet recorded ([`pass`]);
//! 2. writes each closed time partition's unarchived events as a *segment*: zstd-compressed
//!    JSON lines, one file per connection ([`manifest::ArchivedEvent`]), and a manifest listing
//!    the files with their SHA-256 and the previous manifest's hash ([`manifest::Manifest`]);
//! 3. records the segment and marks its events in one transaction, only after S3 confirmed
//!    every write;
//! 4. trims marked events older than the hot window: the one audited path by which a raw
//!    event leaves the database (the table's guard refuses any other delete).
//!
//! [`verify`] walks the chain and re-hashes every file; [`restore`] puts a range's events back
//! for a replay past the hot window.

pub mod bucket;
pub mod manifest;
pub mod pass;
pub mod restore;
pub mod schedule;
pub mod verify;

use std::sync::Arc;

use thiserror::Error;

use crate::store::{Store, StoreError};

pub use bucket::Bucket;
pub use pass::PassReport;
pub use verify::{Problem, VerifyReport};

/// Errors of the archive.
#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot {op} {location}: {cause}")]
    S3 {
        op: &'static str,
        location: String,
        cause: String,
    },
    #[error("the archive is not consistent: {0} (run `billsync archive verify`)")]
    Inconsistent(String),
    #[error(
        "segment {0}'s manifest was written by another archiver first; this pass stops (the \
         next pass adopts it)"
    )]
    Raced(i64),
}

/// The archive's settings (`archive_*` in the configuration).
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    pub bucket: String,
    pub prefix: String,
    /// Length of a time partition, seconds (a day by default).
    pub partition_secs: u64,
    /// Raw events younger than this stay in the database after they are archived, seconds.
    pub hot_window_secs: u64,
}

impl ArchiveSettings {
    /// The archive a configuration names; `None` without a bucket.
    pub fn from_config(config: &crate::config::Config) -> Option<ArchiveSettings> {
        Some(ArchiveSettings {
            bucket: config.archive_bucket.clone()?,
            prefix: config.archive_prefix.clone(),
            partition_secs: config.archive_partition_secs,
            hot_window_secs: config.archive_hot_window_secs,
        })
    }

    pub fn partition_micros(&self) -> i64 {
        (self.partition_secs.max(1) as i64).saturating_mul(1_000_000)
    }

    pub fn hot_window_micros(&self) -> i64 {
        (self.hot_window_secs as i64).saturating_mul(1_000_000)
    }
}

/// The archive of one store: its bucket, its layout and its settings.
#[derive(Clone)]
pub struct Archive {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bucket: Bucket,
    pub(crate) layout: manifest::Layout,
    pub(crate) settings: ArchiveSettings,
}

impl Archive {
    pub async fn connect(store: Arc<dyn Store>, settings: ArchiveSettings) -> Archive {
        Archive {
            bucket: Bucket::connect(&settings.bucket).await,
            layout: manifest::Layout::new(&settings.prefix),
            store,
            settings,
        }
    }

    pub fn settings(&self) -> &ArchiveSettings {
        &self.settings
    }

    /// The oldest receive time still kept in the database once trimmed (microseconds):
    /// a replay from before it reads the archive.
    pub fn hot_edge(&self, now: i64) -> i64 {
        now.saturating_sub(self.settings.hot_window_micros())
    }
}
