//! `serve`'s archive task: a pass every `archive_interval_secs` (the first a minute after
//! start, or sooner with a shorter interval), counted in the `billsync_archive_*` metrics.
//! In a cluster every node runs it; two passes at once are safe (a segment's manifest is
//! written only if new, and a pass that loses stops: `ArchiveError::Raced`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::pass::Hold;
use super::Archive;

/// The task; returns when `cancel` fires (a pass under way is finished first).
pub async fn run(archive: Archive, every: Duration, cancel: CancellationToken) {
    metrics::counter!("billsync_archive_passes_total", "outcome" => "ok").increment(0);
    metrics::counter!("billsync_archive_passes_total", "outcome" => "error").increment(0);
    metrics::counter!("billsync_archive_events_total").increment(0);
    metrics::counter!("billsync_archive_trimmed_total").increment(0);
    metrics::gauge!("billsync_archive_last_success_timestamp_seconds").set(0.0);
    let mut wait = every.min(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = every;
        match archive.run_pass("archive", Hold::default()).await {
            Ok(report) => {
                metrics::counter!("billsync_archive_passes_total", "outcome" => "ok").increment(1);
                metrics::counter!("billsync_archive_events_total")
                    .increment(report.events_archived);
                metrics::counter!("billsync_archive_trimmed_total").increment(report.trimmed);
                metrics::gauge!("billsync_archive_last_success_timestamp_seconds")
                    .set(crate::model::time::now_micros() as f64 / 1e6);
                if report.segments + report.trimmed + report.adopted > 0 {
                    tracing::info!(%report, "archive pass done");
                }
            }
            Err(e) => {
                metrics::counter!("billsync_archive_passes_total", "outcome" => "error")
                    .increment(1);
                tracing::error!(error = %e, "archive pass failed; the next one retries");
            }
        }
    }
}
