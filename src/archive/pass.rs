//! One pass of the archive (`billsync archive`, and `serve`'s task): adopt what a crash left
//! written but unrecorded, archive every closed partition's unarchived events as segments,
//! then trim archived events past the hot window. Order is the guarantee: an event is marked
//! only after S3 confirmed its file and its manifest, and only a marked event is trimmed, so a
//! crash at any point loses nothing; a manifest written but not recorded is adopted by the
//! next pass instead of being written again.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use super::bucket::Written;
use super::manifest::{self, ArchivedEvent, FileEntry, Manifest};
use super::{Archive, ArchiveError};
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::store::{AuditEntry, RawEventCursor, SegmentRecord, StoredRawEvent};

/// Raw events read per page.
const PAGE: i64 = 1_000;

/// Most events in one segment: bounds the ids held and the marking transaction; a larger
/// partition continues in the next segment.
const SEGMENT_MAX_EVENTS: usize = 200_000;

/// A data file is closed past this many uncompressed bytes (the next part follows).
const PART_MAX_BYTES: usize = 64 << 20;

/// Archived events deleted per trim transaction.
const TRIM_BATCH: i64 = 5_000;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Manifests found written but unrecorded (a crash between write and record), recorded now.
    pub adopted: u64,
    pub segments: u64,
    pub events_archived: u64,
    pub files: u64,
    pub bytes: u64,
    pub trimmed: u64,
}

impl std::fmt::Display for PassReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events archived in {} segments ({} files, {} bytes), {} trimmed past the hot \
             window, {} manifests adopted",
            self.events_archived, self.segments, self.files, self.bytes, self.trimmed, self.adopted
        )
    }
}

/// A data file being written: one connection's events, compressed as they come.
struct Part {
    connection_id: String,
    number: u32,
    encoder: zstd::Encoder<'static, Vec<u8>>,
    raw_bytes: usize,
    events: i64,
    first_id: i64,
    last_id: i64,
}

impl Part {
    fn new(connection_id: &str, number: u32) -> Part {
        Part {
            connection_id: connection_id.to_owned(),
            number,
            encoder: zstd::Encoder::new(Vec::new(), 3).expect("zstd level 3 is valid"),
            raw_bytes: 0,
            events: 0,
            first_id: 0,
            last_id: 0,
        }
    }

    fn push(&mut self, e: &StoredRawEvent) -> Result<(), ArchiveError> {
        let mut line = serde_json::to_vec(&ArchivedEvent::from_stored(e)?)
            .expect("an archived event serializes");
        line.push(b'\n');
        self.encoder
            .write_all(&line)
            .expect("writing into a Vec does not fail");
        self.raw_bytes += line.len();
        if self.events == 0 {
            self.first_id = e.id;
        }
        self.events += 1;
        self.last_id = e.id;
        Ok(())
    }
}

/// How a pass may be held for a test: after a segment's writes, before its record.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hold {
    pub after_upload: Option<Duration>,
}

impl Archive {
    /// One pass: adopt, archive closed partitions, trim. `actor` is the audit log's actor of
    /// the trim (`archive` for serve's task, `cli:USER` for the command).
    pub async fn run_pass(&self, actor: &str, hold: Hold) -> Result<PassReport, ArchiveError> {
        let mut report = PassReport::default();
        let mut head = self.store.last_segment().await?;
        while let Some(adopted) = self.adopt_next(head.as_ref()).await? {
            report.adopted += 1;
            head = Some(adopted);
        }
        let now = now_micros();
        let width = self.settings.partition_micros();
        let closed_before = now - now.rem_euclid(width);
        while let Some(oldest) = self.store.oldest_unarchived(closed_before).await? {
            let start = oldest - oldest.rem_euclid(width);
            let segment = self
                .write_segment(head.as_ref(), start, start + width, hold, &mut report)
                .await?;
            head = Some(segment);
        }
        report.trimmed = self.trim(now, actor).await?;
        Ok(report)
    }

    /// Records the manifest after `head` if S3 has it but the database does not: what a crash
    /// between a segment's writes and its record leaves. Its events are marked as the manifest
    /// lists them (every file re-hashed first), so they are never archived twice.
    async fn adopt_next(
        &self,
        head: Option<&SegmentRecord>,
    ) -> Result<Option<SegmentRecord>, ArchiveError> {
        let seq = head.map_or(1, |h| h.seq + 1);
        let key = self.layout.manifest(seq);
        let Some(bytes) = self.bucket.get(&key).await? else {
            return Ok(None);
        };
        let m = Manifest::parse(&bytes)
            .map_err(|e| ArchiveError::Inconsistent(format!("manifest {key}: {e}")))?;
        if m.seq != seq
            || m.prev_manifest_sha256.as_deref() != head.map(|h| h.manifest_sha256.as_str())
        {
            return Err(ArchiveError::Inconsistent(format!(
                "manifest {key} does not follow segment {} recorded in the database",
                seq - 1
            )));
        }
        let mut ids = Vec::with_capacity(m.events as usize);
        for file in &m.files {
            let data = self.bucket.get(&file.key).await?.ok_or_else(|| {
                ArchiveError::Inconsistent(format!("{} (listed by {key}) is missing", file.key))
            })?;
            if manifest::sha256_hex(&data) != file.sha256 {
                return Err(ArchiveError::Inconsistent(format!(
                    "{} does not hash to what {key} says",
                    file.key
                )));
            }
            let lines = manifest::read_lines(&data)
                .map_err(|e| ArchiveError::Inconsistent(format!("{}: {e}", file.key)))?;
            ids.extend(lines.iter().map(|l| l.id));
        }
        let record = SegmentRecord {
            seq,
            partition_start: m.partition_start_us,
            partition_end: m.partition_end_us,
            manifest_key: key.clone(),
            manifest_sha256: manifest::sha256_hex(&bytes),
            events: m.events,
            recorded_at: now_micros(),
        };
        let marked = self.store.record_segment(&record, &ids).await?;
        tracing::warn!(
            seq,
            manifest = %key,
            events = m.events,
            marked,
            "adopted a segment written before a crash and not recorded"
        );
        Ok(Some(record))
    }

    /// Writes the next segment of partition `[start, end)`: its files, then its manifest,
    /// then (S3 having confirmed both) its record and the marking of its events.
    async fn write_segment(
        &self,
        head: Option<&SegmentRecord>,
        start: i64,
        end: i64,
        hold: Hold,
        report: &mut PassReport,
    ) -> Result<SegmentRecord, ArchiveError> {
        let seq = head.map_or(1, |h| h.seq + 1);
        let run = hex::encode(rand::random::<[u8; 4]>());
        let mut files: Vec<FileEntry> = Vec::new();
        let mut ids: Vec<i64> = Vec::new();
        let mut part: Option<Part> = None;
        let mut cursor = RawEventCursor::default();
        'pages: loop {
            let page = self
                .store
                .unarchived_page(start, end, &cursor, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            cursor = RawEventCursor {
                connection_id: last.connection_id.clone(),
                id: last.id,
            };
            for e in &page {
                let full = part.as_ref().is_some_and(|p| {
                    p.connection_id != e.connection_id || p.raw_bytes >= PART_MAX_BYTES
                });
                if full {
                    let done = part.take().expect("checked above");
                    let next = if done.connection_id == e.connection_id {
                        done.number + 1
                    } else {
                        0
                    };
                    files.push(self.upload(done, start, seq, &run).await?);
                    part = Some(Part::new(&e.connection_id, next));
                }
                part.get_or_insert_with(|| Part::new(&e.connection_id, 0))
                    .push(e)?;
                ids.push(e.id);
                if ids.len() >= SEGMENT_MAX_EVENTS {
                    break 'pages;
                }
            }
        }
        if let Some(done) = part.take() {
            files.push(self.upload(done, start, seq, &run).await?);
        }
        let m = Manifest {
            format: manifest::FORMAT.to_owned(),
            seq,
            partition_start_us: start,
            partition_end_us: end,
            partition: micros_to_rfc3339(start).unwrap_or_default(),
            created_at_us: now_micros(),
            prev_manifest_sha256: head.map(|h| h.manifest_sha256.clone()),
            events: ids.len() as i64,
            files,
        };
        let key = self.layout.manifest(seq);
        let bytes = m.to_bytes();
        let sha = manifest::sha256_hex(&bytes);
        if self.bucket.put_new(&key, bytes, "application/json").await? == Written::Exists {
            return Err(ArchiveError::Raced(seq));
        }
        tracing::info!(seq, manifest = %key, "segment written");
        if let Some(pause) = hold.after_upload {
            tracing::warn!(
                seq,
                secs = pause.as_secs(),
                "holding between the archive write and its record"
            );
            tokio::time::sleep(pause).await;
        }
        let record = SegmentRecord {
            seq,
            partition_start: start,
            partition_end: end,
            manifest_key: key.clone(),
            manifest_sha256: sha,
            events: m.events,
            recorded_at: now_micros(),
        };
        let marked = self.store.record_segment(&record, &ids).await?;
        if marked != ids.len() as u64 {
            return Err(ArchiveError::Inconsistent(format!(
                "segment {seq} archived {} events but {marked} were left to mark",
                ids.len()
            )));
        }
        report.segments += 1;
        report.events_archived += marked;
        report.files += m.files.len() as u64;
        report.bytes += m.files.iter().map(|f| f.bytes).sum::<u64>();
        tracing::info!(
            seq,
            partition = %m.partition,
            events = m.events,
            files = m.files.len(),
            "segment recorded"
        );
        Ok(record)
    }

    async fn upload(
        &self,
        part: Part,
        start: i64,
        seq: i64,
        run: &str,
    ) -> Result<FileEntry, ArchiveError> {
        let key = self
            .layout
            .data_file(start, seq, run, &part.connection_id, part.number);
        let data = part
            .encoder
            .finish()
            .expect("finishing into a Vec does not fail");
        let entry = FileEntry {
            key: key.clone(),
            connection_id: part.connection_id,
            events: part.events,
            first_id: part.first_id,
            last_id: part.last_id,
            bytes: data.len() as u64,
            sha256: manifest::sha256_hex(&data),
            version_id: None,
        };
        match self.bucket.put_new(&key, data, "application/zstd").await? {
            Written::New { version_id } => Ok(FileEntry {
                version_id,
                ..entry
            }),
            // The key carries this attempt's random tag: only this attempt writes it.
            Written::Exists => Err(ArchiveError::Inconsistent(format!("{key} already exists"))),
        }
    }

    /// Deletes archived events received before the hot window, in audited batches.
    async fn trim(&self, now: i64, actor: &str) -> Result<u64, ArchiveError> {
        let before = self.hot_edge(now);
        let audit = AuditEntry {
            at: now,
            actor: actor.to_owned(),
            action: "raw_events.trim".into(),
            target: "raw_events".into(),
            detail: json!({
                "received_before": micros_to_rfc3339(before),
                "hot_window_secs": self.settings.hot_window_secs,
                "bucket": self.bucket.name(),
            }),
        };
        let mut trimmed = 0;
        loop {
            let n = self.store.trim_archived(before, TRIM_BATCH, &audit).await?;
            trimmed += n;
            if n < TRIM_BATCH as u64 {
                return Ok(trimmed);
            }
        }
    }
}
