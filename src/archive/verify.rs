//! `billsync archive verify`: walks the manifest chain from the first segment and re-hashes
//! every file, against the database's record of each segment. It reports, without stopping at
//! the first: a gap in the chain (a manifest missing), a manifest that does not hash to what
//! the next one (or the database) says, a file missing or modified, a file whose lines are not
//! what its manifest says, and an event archived twice.

use std::collections::{BTreeMap, HashSet};

use super::manifest::{self, Manifest};
use super::{Archive, ArchiveError};

/// One thing wrong with the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No manifest for this segment although later ones (or the database) say it exists.
    ManifestMissing {
        seq: i64,
    },
    ManifestUnreadable {
        key: String,
        why: String,
    },
    /// The manifest's bytes do not hash to what the next manifest or the database recorded.
    ChainBroken {
        key: String,
        why: String,
    },
    FileMissing {
        key: String,
        manifest: String,
    },
    FileModified {
        key: String,
        expected: String,
        found: String,
    },
    /// The file reads, but not as its manifest says (lines, events, connection).
    FileContent {
        key: String,
        why: String,
    },
    /// An event in two files (or twice in one).
    Duplicate {
        id: i64,
        key: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::ManifestMissing { seq } => {
                write!(f, "gap: the manifest of segment {seq} is missing")
            }
            Problem::ManifestUnreadable { key, why } => write!(f, "{key}: unreadable: {why}"),
            Problem::ChainBroken { key, why } => write!(f, "chain broken at {key}: {why}"),
            Problem::FileMissing { key, manifest } => {
                write!(f, "{key}: missing (listed by {manifest})")
            }
            Problem::FileModified {
                key,
                expected,
                found,
            } => write!(
                f,
                "{key}: modified: SHA-256 {found}, the manifest says {expected} (with Object \
                 Lock the archived version is still stored: restore it over the new one)"
            ),
            Problem::FileContent { key, why } => write!(f, "{key}: {why}"),
            Problem::Duplicate { id, key } => {
                write!(f, "{key}: raw event {id} is archived twice")
            }
        }
    }
}

/// What `verify` read and what it found wrong.
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub manifests: u64,
    pub files: u64,
    pub events: u64,
    pub bytes: u64,
    pub problems: Vec<Problem>,
}

impl Archive {
    /// Walks the chain; `progress` is called after each manifest with (done, total).
    pub async fn verify(
        &self,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<VerifyReport, ArchiveError> {
        let mut report = VerifyReport::default();
        let in_bucket: BTreeMap<i64, String> = self
            .bucket
            .list(&self.layout.manifests())
            .await?
            .into_iter()
            .filter_map(|k| Some((self.layout.manifest_seq(&k)?, k)))
            .collect();
        let recorded = self.store.segments_overlapping(i64::MIN, i64::MAX).await?;
        let recorded: BTreeMap<i64, String> = recorded
            .into_iter()
            .map(|s| (s.seq, s.manifest_sha256))
            .collect();
        let last = in_bucket
            .keys()
            .chain(recorded.keys())
            .max()
            .copied()
            .unwrap_or(0);
        // Event ids seen, per partition (an event has one receive time, so one partition):
        // memory is bounded by the largest partition, not the whole archive.
        let mut seen: BTreeMap<i64, HashSet<i64>> = BTreeMap::new();
        let mut prev_sha: Option<String> = None;
        for seq in 1..=last {
            progress(seq as u64 - 1, last as u64);
            let Some(key) = in_bucket.get(&seq) else {
                report.problems.push(Problem::ManifestMissing { seq });
                prev_sha = None;
                continue;
            };
            let Some(bytes) = self.bucket.get(key).await? else {
                report.problems.push(Problem::ManifestMissing { seq });
                prev_sha = None;
                continue;
            };
            report.manifests += 1;
            let sha = manifest::sha256_hex(&bytes);
            let m = match Manifest::parse(&bytes) {
                Ok(m) => m,
                Err(why) => {
                    report.problems.push(Problem::ManifestUnreadable {
                        key: key.clone(),
                        why,
                    });
                    prev_sha = Some(sha);
                    continue;
                }
            };
            if m.seq != seq {
                report.problems.push(Problem::ChainBroken {
                    key: key.clone(),
                    why: format!("it says it is segment {}", m.seq),
                });
            }
            // The previous manifest as this one names it (unknown after a gap: the gap is
            // reported already).
            let expected_prev = if seq == 1 { None } else { prev_sha.clone() };
            if (seq == 1 || prev_sha.is_some()) && m.prev_manifest_sha256 != expected_prev {
                report.problems.push(Problem::ChainBroken {
                    key: key.clone(),
                    why: format!(
                        "it names the previous manifest's hash {}, which is {}",
                        m.prev_manifest_sha256.as_deref().unwrap_or("(none)"),
                        expected_prev
                            .as_deref()
                            .unwrap_or("(none: it is the first)")
                    ),
                });
            }
            if let Some(db_sha) = recorded.get(&seq) {
                if *db_sha != sha {
                    report.problems.push(Problem::ChainBroken {
                        key: key.clone(),
                        why: format!(
                            "it hashes to {sha}, the database recorded {db_sha} when it was written"
                        ),
                    });
                }
            }
            prev_sha = Some(sha);
            let ids = seen.entry(m.partition_start_us).or_default();
            let mut events = 0;
            for file in &m.files {
                self.verify_file(key, file, ids, &mut report).await?;
                events += file.events;
            }
            if events != m.events {
                report.problems.push(Problem::ChainBroken {
                    key: key.clone(),
                    why: format!("its files hold {events} events, it says {}", m.events),
                });
            }
            // Partitions are archived oldest first: a partition well behind this one is done.
            let keep_from = m.partition_start_us - 2 * self.settings.partition_micros();
            seen.retain(|start, _| *start >= keep_from);
        }
        progress(last as u64, last as u64);
        Ok(report)
    }

    async fn verify_file(
        &self,
        manifest_key: &str,
        file: &manifest::FileEntry,
        ids: &mut HashSet<i64>,
        report: &mut VerifyReport,
    ) -> Result<(), ArchiveError> {
        let Some(data) = self.bucket.get(&file.key).await? else {
            report.problems.push(Problem::FileMissing {
                key: file.key.clone(),
                manifest: manifest_key.to_owned(),
            });
            return Ok(());
        };
        report.files += 1;
        report.bytes += data.len() as u64;
        let found = manifest::sha256_hex(&data);
        if found != file.sha256 {
            report.problems.push(Problem::FileModified {
                key: file.key.clone(),
                expected: file.sha256.clone(),
                found,
            });
            return Ok(());
        }
        let lines = match manifest::read_lines(&data) {
            Ok(lines) => lines,
            Err(why) => {
                report.problems.push(Problem::FileContent {
                    key: file.key.clone(),
                    why,
                });
                return Ok(());
            }
        };
        if lines.len() as i64 != file.events {
            report.problems.push(Problem::FileContent {
                key: file.key.clone(),
                why: format!("{} lines, the manifest says {}", lines.len(), file.events),
            });
        }
        for line in &lines {
            report.events += 1;
            if line.connection_id != file.connection_id {
                report.problems.push(Problem::FileContent {
                    key: file.key.clone(),
                    why: format!("event {} belongs to {}", line.id, line.connection_id),
                });
            }
            if !ids.insert(line.id) {
                report.problems.push(Problem::Duplicate {
                    id: line.id,
                    key: file.key.clone(),
                });
            }
        }
        Ok(())
    }
}
