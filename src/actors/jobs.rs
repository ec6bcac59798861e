//! Pull jobs as data: how a backfill or resync is split into windows (one cursor stream each,
//! so many requests can be in flight within one connection's budget), and how far it got.

use std::collections::BTreeMap;

use crate::api::{JobProgressOut, StreamProgressOut};
use crate::model::time::micros_to_rfc3339;
use crate::store::{SyncJob, SyncWindow};

/// Windows per list endpoint for a connection allowed `rate_per_sec`: as many as the pull
/// keeps requests in flight, so that even when one kind holds most of the history and the
/// others are done, its windows alone still use the budget (each window is one cursor: one
/// request at a time). At least 4 (a crash loses at most a window's progress of a page), at
/// most 32: every window costs at least one request.
pub fn windows_per_stream(rate_per_sec: u32) -> i64 {
    super::pull::max_in_flight(rate_per_sec).clamp(4, 32) as i64
}

/// Splits `[since, until)` (unix seconds) into `parts` equal windows for each stream.
pub fn plan(job: &str, streams: &[&str], since: i64, until: i64, parts: i64) -> Vec<SyncWindow> {
    let span = (until - since).max(1);
    let parts = parts.min(span).max(1);
    let mut windows = Vec::new();
    for stream in streams {
        for i in 0..parts {
            let start = since + span * i / parts;
            let end = since + span * (i + 1) / parts;
            windows.push(SyncWindow {
                job: job.to_owned(),
                stream: (*stream).to_owned(),
                window_start: start,
                window_end: end,
                cursor: None,
                reached: None,
                done: false,
                objects: 0,
                pages: 0,
                requests: 0,
            });
        }
    }
    windows
}

/// `{"state", "objects", "rate_per_sec", "eta_secs", ...}` for the admin API (docs/api.md).
pub fn progress(job: Option<&SyncJob>, windows: &[SyncWindow], now: i64) -> JobProgressOut {
    let Some(job) = job else {
        return JobProgressOut {
            state: "idle".into(),
            objects: 0,
            rate_per_sec: 0.0,
            eta_secs: None,
            job: None,
            pages: None,
            requests: None,
            fraction_done: None,
            windows: None,
            windows_done: None,
            since: None,
            started_at: None,
            finished_at: None,
            error: None,
            streams: BTreeMap::new(),
        };
    };
    let objects: i64 = windows.iter().map(|w| w.objects).sum();
    let elapsed = (job.finished_at.unwrap_or(now) - job.started_at).max(1) as f64 / 1e6;
    let rate = objects as f64 / elapsed;
    // Lists walk each window from its newest end to its oldest: the share of time covered
    // estimates how much is left.
    let (covered, total) = windows.iter().fold((0.0, 0.0), |(c, t), w| {
        let span = (w.window_end - w.window_start).max(1) as f64;
        let done = if w.done {
            span
        } else {
            w.reached.map_or(0.0, |r| {
                (w.window_end - r).clamp(0, w.window_end - w.window_start) as f64
            })
        };
        (c + done, t + span)
    });
    let fraction = if total > 0.0 { covered / total } else { 0.0 };
    let eta_secs = match job.state.as_str() {
        "running" if fraction > 0.0 => Some((elapsed * (1.0 - fraction) / fraction).round() as i64),
        "running" => None,
        _ => Some(0),
    };
    let mut streams: BTreeMap<String, StreamProgressOut> = BTreeMap::new();
    for w in windows {
        let entry = streams.entry(w.stream.clone()).or_default();
        entry.windows += 1;
        entry.windows_done += i64::from(w.done);
        entry.objects += w.objects;
        entry.pages += w.pages;
        entry.requests += w.requests;
    }
    JobProgressOut {
        state: job.state.clone(),
        objects,
        rate_per_sec: (rate * 10.0).round() / 10.0,
        eta_secs,
        job: Some(job.job.clone()),
        pages: Some(windows.iter().map(|w| w.pages).sum()),
        requests: Some(windows.iter().map(|w| w.requests).sum()),
        fraction_done: Some((fraction * 1000.0).round() / 1000.0),
        windows: Some(windows.len() as i64),
        windows_done: Some(windows.iter().filter(|w| w.done).count() as i64),
        since: micros_to_rfc3339(job.since * 1_000_000),
        started_at: micros_to_rfc3339(job.started_at),
        finished_at: job.finished_at.and_then(micros_to_rfc3339),
        error: job.error.clone(),
        streams,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_the_range_without_gaps() {
        let w = plan("backfill", &["a", "b"], 100, 1_000, 8);
        assert_eq!(w.len(), 16);
        let a: Vec<&SyncWindow> = w.iter().filter(|w| w.stream == "a").collect();
        assert_eq!(a[0].window_start, 100);
        assert_eq!(a[7].window_end, 1_000);
        for pair in a.windows(2) {
            assert_eq!(pair[0].window_end, pair[1].window_start);
        }
        assert_eq!(
            plan("x", &["a"], 10, 12, 8).len(),
            2,
            "tiny ranges get fewer windows"
        );
    }

    #[test]
    fn windows_follow_the_connections_rate() {
        assert_eq!(windows_per_stream(2), 4, "a 2 req/s connection");
        assert_eq!(windows_per_stream(25), 8, "Stripe's default");
        assert_eq!(windows_per_stream(100), 32, "a 100 req/s quota");
        assert_eq!(windows_per_stream(100_000), 32);
    }

    #[test]
    fn progress_estimates_from_covered_time() {
        let job = SyncJob {
            connection_id: "c".into(),
            job: "backfill".into(),
            state: "running".into(),
            since: 0,
            until: 100,
            started_at: 0,
            finished_at: None,
            error: None,
        };
        let mut w = plan("backfill", &["a"], 0, 100, 8);
        for x in w.iter_mut().take(4) {
            x.done = true;
            x.objects = 10;
        }
        let p = progress(Some(&job), &w, 10_000_000);
        assert_eq!(p.objects, 40);
        assert_eq!(p.fraction_done, Some(0.5));
        assert_eq!(p.eta_secs, Some(10));
        assert_eq!(p.streams["a"].windows_done, 4);
        assert_eq!(progress(None, &[], 0).state, "idle");
    }
}
