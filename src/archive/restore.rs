//! Restoring a connection's archived raw events of a time range into the database, for a
//! replay of a range past the hot window (`POST /admin/v1/connections/{id}/replay`). Only the
//! connection's own files of the segments whose partitions overlap the range are read; each
//! manifest must hash to what the database recorded and each file to what its manifest says,
//! and each body to its recorded SHA-256, before anything is put back.

use super::manifest::{self, Manifest};
use super::{Archive, ArchiveError};

/// Events put back per transaction.
const BATCH: usize = 500;

impl Archive {
    /// Puts back the archived events of `connection_id` received in `[from, to]` that are no
    /// longer in the database; returns how many. They stay marked as archived, so the next
    /// trim removes them again once replayed.
    pub async fn restore(
        &self,
        connection_id: &str,
        from: i64,
        to: i64,
    ) -> Result<u64, ArchiveError> {
        let mut restored = 0;
        for segment in self.store.segments_overlapping(from, to).await? {
            let bytes = self
                .bucket
                .get(&segment.manifest_key)
                .await?
                .ok_or_else(|| {
                    ArchiveError::Inconsistent(format!("{} is missing", segment.manifest_key))
                })?;
            if manifest::sha256_hex(&bytes) != segment.manifest_sha256 {
                return Err(ArchiveError::Inconsistent(format!(
                    "{} is not the manifest recorded for segment {}",
                    segment.manifest_key, segment.seq
                )));
            }
            let m = Manifest::parse(&bytes).map_err(|e| {
                ArchiveError::Inconsistent(format!("{}: {e}", segment.manifest_key))
            })?;
            for file in m.files.iter().filter(|f| f.connection_id == connection_id) {
                let data = self.bucket.get(&file.key).await?.ok_or_else(|| {
                    ArchiveError::Inconsistent(format!("{} is missing", file.key))
                })?;
                if manifest::sha256_hex(&data) != file.sha256 {
                    return Err(ArchiveError::Inconsistent(format!(
                        "{} does not hash to what {} says",
                        file.key, segment.manifest_key
                    )));
                }
                let events = manifest::read_lines(&data)
                    .map_err(|e| ArchiveError::Inconsistent(format!("{}: {e}", file.key)))?
                    .into_iter()
                    .filter(|e| e.received_at_us >= from && e.received_at_us <= to)
                    .map(|e| e.to_stored())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ArchiveError::Inconsistent(format!("{}: {e}", file.key)))?;
                for batch in events.chunks(BATCH) {
                    restored += self.store.restore_raw_events(batch, segment.seq).await?;
                }
            }
        }
        if restored > 0 {
            tracing::info!(
                connection_id,
                restored,
                "raw events restored from the archive"
            );
        }
        Ok(restored)
    }
}
