//! Every metric family the node exposes, one row each: name, type, unit, labels and meaning.
//! `telemetry::metrics_handle` describes and registers them all at start from this table, so
//! `/metrics` of a fresh node shows every family with HELP and TYPE; `docs/metrics.md` is the
//! same table for people, and a test keeps the two equal.
//!
//! Labels are provider, kind, code, outcome, reason, change, queue, version and commit: never a
//! merchant or connection id (8,000 merchants would be 8,000 series per family).

use metrics::Unit;

/// What Prometheus type a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The word Prometheus writes after `# TYPE name`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    /// Exposed only when a part of the node is configured (e.g. the SQS intake): `None` for
    /// families every node exposes from its start.
    pub only_with: Option<&'static str>,
}

const fn family(
    name: &'static str,
    kind: Kind,
    unit: Unit,
    labels: &'static [&'static str],
    help: &'static str,
) -> Family {
    Family {
        name,
        kind,
        unit,
        labels,
        help,
        only_with: None,
    }
}

use Kind::{Counter, Gauge, Histogram};
use Unit::{Count, Seconds};

/// The families, grouped by the part of the flow that emits them.
pub const FAMILIES: &[Family] = &[
    family("billsync_build_info", Gauge, Count, &["version", "commit"],
        "Always 1; the labels name the running build (crate version and git commit)."),
    // Intake: webhooks in.
    family("billsync_webhooks_total", Counter, Count, &["provider", "code"],
        "Webhook requests answered, by answer code: stored, duplicate, or the error code (invalid_signature, stale_timestamp, invalid_credentials, unknown_connection, malformed_payload, ...)."),
    family("billsync_webhook_ack_seconds", Histogram, Seconds, &["provider"],
        "Time from a webhook request's arrival to its answer (the provider's view of billsync)."),
    family("billsync_intake_commit_seconds", Histogram, Seconds, &[],
        "Time of one group commit of received webhooks to the store."),
    family("billsync_intake_batch_size", Histogram, Count, &[],
        "Webhooks stored by one group commit."),
    family("billsync_inbox_depth", Gauge, Count, &[],
        "Inbox rows waiting to be applied (not dead-lettered), all connections."),
    family("billsync_inbox_dead_letters", Gauge, Count, &[],
        "Dead-lettered inbox rows (GET /admin/v1/dead_letters lists them)."),
    family("billsync_inbox_oldest_pending_age_seconds", Gauge, Seconds, &[],
        "Age of the oldest inbox row of an active connection still waiting to be applied; 0 when none waits."),
    family("billsync_inbox_announcements_total", Counter, Count, &[],
        "Inbox rows announced to the node that owns their connection (cluster)."),
    // Apply: the pair actors.
    family("billsync_webhook_queryable_seconds", Histogram, Seconds, &["provider"],
        "Time from a webhook's receipt to the commit that makes its change queryable (the P95 < 2 min SLO); webhooks only, replays and sweeps excluded."),
    family("billsync_apply_latency_seconds", Histogram, Seconds, &["provider"],
        "Time from any inbox row's receipt (webhook, sweep, replay) to the commit that applied it."),
    family("billsync_apply_yield_seconds", Histogram, Seconds, &[],
        "Time a pair actor waited for its turn at the apply group commit."),
    family("billsync_apply_commit_seconds", Histogram, Seconds, &[],
        "Time of one group commit of applied changes to the store."),
    family("billsync_versions_total", Counter, Count, &["provider", "kind", "outcome"],
        "New object versions stored, by object type and the rule that made them win."),
    family("billsync_observations_ignored_total", Counter, Count, &["provider", "kind", "outcome"],
        "Observations that made no new version, by object type and why (unchanged, older_than_stored, ...)."),
    family("billsync_quality_findings_total", Counter, Count, &["provider", "kind", "code"],
        "Data-quality findings on stored versions, by object type and check."),
    family("billsync_webhooks_unmapped_total", Counter, Count, &["provider"],
        "Stored webhooks that map to no object and name none to read (an unmapped event type)."),
    family("billsync_dead_letters_total", Counter, Count, &["provider"],
        "Inbox rows dead-lettered because they could not be mapped."),
    family("billsync_fenced_writes_total", Counter, Count, &[],
        "Apply batches refused because the node no longer holds the connection's lease."),
    family("billsync_live_actors", Gauge, Count, &[],
        "Pair actors running on this node (one per active connection it owns)."),
    // Confirmations and reconciliation: reads of the provider API.
    family("billsync_convergence_seconds", Histogram, Seconds, &["provider"],
        "Time from a change being seen to the provider API agreeing with it (the 99.9% within 30 min SLO)."),
    family("billsync_confirmations_failed_total", Counter, Count, &["provider", "kind"],
        "Objects that could not be confirmed with the provider API within the confirmation window (marked failed)."),
    family("billsync_confirmation_oldest_pending_age_seconds", Gauge, Seconds, &["kind"],
        "Age of the oldest pending provider read of an active connection: kind realtime (confirmations of webhook changes) or reconciliation (objects a sweep found); 0 when none."),
    family("billsync_provider_requests_total", Counter, Count, &["provider", "kind", "outcome"],
        "Provider API requests, by purpose (refetch, incremental, reconcile, backfill) and outcome (ok, rate_limited, server_error, timeout, error, tls_error, unauthorized, refused)."),
    family("billsync_limiter_wait_seconds", Histogram, Seconds, &["provider", "kind"],
        "Time a provider request waited for the connection's rate limiter."),
    family("billsync_sweeps_total", Counter, Count, &["provider", "outcome"],
        "Reconciliation sweeps finished, ok or failed."),
    family("billsync_sweep_missed_events_total", Counter, Count, &["provider"],
        "Events a sweep found that no webhook had delivered."),
    family("billsync_sweep_position_age_seconds", Gauge, Seconds, &["provider"],
        "Age of the oldest sweep position among active connections: how far back the next sweep must read the provider's events."),
    family("billsync_provider_events_retention_seconds", Gauge, Seconds, &["provider"],
        "How long the provider keeps events its events API serves (Stripe 30 days, Paddle 90 days); providers swept by update time have none."),
    family("billsync_pulled_objects_total", Counter, Count, &["provider"],
        "Objects read by backfill and resync pulls."),
    family("billsync_backfill_jobs_running", Gauge, Count, &["provider"],
        "Backfill and resync jobs running on active connections."),
    family("billsync_backfill_oldest_progress_age_seconds", Gauge, Seconds, &["provider"],
        "Time since the least recently progressing running job last recorded progress; 0 when none runs."),
    // Cluster.
    family("billsync_cluster_nodes", Gauge, Count, &[],
        "Nodes this node sees in the cluster (itself included; 1 on SQLite)."),
    family("billsync_cluster_shards_owned", Gauge, Count, &[],
        "Shards whose lease this node holds."),
    family("billsync_lease_changes_total", Counter, Count, &["change"],
        "Shard leases acquired, lost or released by this node."),
    // HTTP server.
    family("billsync_http_connections_open", Gauge, Count, &[],
        "Open client connections."),
    family("billsync_http_connections_refused_total", Counter, Count, &[],
        "Client connections refused at the connection cap."),
    family("billsync_http_connections_closed_total", Counter, Count, &["reason"],
        "Client connections the server closed itself (header_timeout, idle_timeout, send_timeout, evicted)."),
    // Store upkeep (Postgres).
    family("billsync_inbox_vacuum_seconds", Histogram, Seconds, &[],
        "Time of one VACUUM of the inbox the Postgres store runs itself."),
    family("billsync_analyze_seconds", Histogram, Seconds, &[],
        "Time of one ANALYZE the Postgres store runs itself."),
    // SQS intake.
    family("billsync_sqs_sent_total", Counter, Count, &[],
        "Webhooks sent to the SQS intake queue."),
    family("billsync_sqs_send_errors_total", Counter, Count, &[],
        "Failed sends to the SQS intake queue."),
    family("billsync_sqs_too_large_total", Counter, Count, &[],
        "Webhooks too large for an SQS message."),
    family("billsync_sqs_receive_errors_total", Counter, Count, &[],
        "Failed receives from the SQS intake queue."),
    family("billsync_sqs_store_retries_total", Counter, Count, &[],
        "Retries of storing received SQS messages."),
    family("billsync_sqs_moved_total", Counter, Count, &[],
        "SQS messages stored and deleted from the queue."),
    family("billsync_sqs_poison_total", Counter, Count, &[],
        "SQS messages that are not webhooks billsync can store."),
    Family {
        only_with: Some("the SQS intake"),
        ..family("billsync_sqs_dead_letter_depth", Gauge, Count, &["queue"],
            "Messages in the SQS intake's dead-letter queue.")
    },
    // The raw archive (docs/archive.md): exposed by nodes that archive on a schedule.
    Family {
        only_with: Some("the raw archive"),
        ..family("billsync_archive_passes_total", Counter, Count, &["outcome"],
            "Archive passes of this node (outcome ok or error).")
    },
    Family {
        only_with: Some("the raw archive"),
        ..family("billsync_archive_events_total", Counter, Count, &[],
            "Raw events written to the S3 archive.")
    },
    Family {
        only_with: Some("the raw archive"),
        ..family("billsync_archive_trimmed_total", Counter, Count, &[],
            "Archived raw events trimmed from the database past the hot window.")
    },
    Family {
        only_with: Some("the raw archive"),
        ..family("billsync_archive_last_success_timestamp_seconds", Gauge, Seconds, &[],
            "Unix time of this node's last archive pass that succeeded.")
    },
];
