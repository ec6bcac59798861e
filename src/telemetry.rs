//! Logs (`tracing`) and metrics (`metrics` with a Prometheus exporter) for the whole node.
//! Every family is described and registered at start from [`catalogue::FAMILIES`] (the table
//! `docs/metrics.md` mirrors), with the label sets known up front, so `/metrics` of a fresh
//! node already has HELP, TYPE and a zero for each; [`gauges`] publishes what only the store
//! knows (ages of the oldest pending work). Labels never carry a merchant or connection id.

pub mod catalogue;
pub mod gauges;

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::model::{ObjectType, ProviderKind};
use catalogue::{Family, Kind, FAMILIES};

/// Fine latency buckets in seconds, 0.5 ms to 10 min, dense around 2 min (the webhook to
/// queryable SLO: P95 under 120 s, which must be a bucket edge to be measured exactly).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
    30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 450.0, 600.0,
];

/// Convergence buckets in seconds, 0.5 s to 2 h, dense around 30 min (the SLO: 99.9% of
/// changes confirmed within 1,800 s, a bucket edge).
const CONVERGENCE_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0,
    2400.0, 3600.0, 5400.0, 7200.0,
];

/// Buckets for counts of items (batch sizes).
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// The bucket list of a histogram family.
fn buckets(family: &Family) -> &'static [f64] {
    match (family.name, family.unit) {
        ("billsync_convergence_seconds", _) => CONVERGENCE_BUCKETS,
        (_, metrics::Unit::Count) => COUNT_BUCKETS,
        _ => LATENCY_BUCKETS,
    }
}

/// The process-wide Prometheus recorder (installed on first use; later calls share it), with
/// every family of the catalogue described and registered.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for family in FAMILIES.iter().filter(|f| f.kind == Kind::Histogram) {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full(family.name.into()), buckets(family))
                    .expect("every bucket list above is non-empty");
            }
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (an embedding program's): keep ours detached.
                Err(_) => return PrometheusBuilder::new().build_recorder().handle(),
            };
            describe();
            register();
            handle
        })
        .clone()
}

/// HELP (with the unit) of every family.
fn describe() {
    for f in FAMILIES {
        match f.kind {
            Kind::Counter => metrics::describe_counter!(f.name, f.unit, f.help),
            Kind::Gauge => metrics::describe_gauge!(f.name, f.unit, f.help),
            Kind::Histogram => metrics::describe_histogram!(f.name, f.unit, f.help),
        }
    }
}

/// Webhook answer codes (`http/intake.rs` and `docs/api-reference.md`).
const WEBHOOK_CODES: &[&str] = &[
    "stored",
    "duplicate",
    "invalid_signature",
    "stale_timestamp",
    "invalid_credentials",
    "unknown_connection",
    "malformed_payload",
    "payload_too_large",
    "unavailable",
];
/// Purposes of provider requests (`actors::limiter::Priority::as_str`).
const REQUEST_KINDS: &[&str] = &["refetch", "incremental", "reconcile", "backfill"];
/// Outcomes of provider requests (`actors/fetch.rs`).
const REQUEST_OUTCOMES: &[&str] = &[
    "ok",
    "rate_limited",
    "server_error",
    "timeout",
    "error",
    "tls_error",
    "unauthorized",
    "refused",
];

/// How long a provider's events API keeps events, for the providers whose sweep reads one
/// (docs/providers/stripe.md, docs/providers/paddle.md); the others sweep by update time.
pub fn events_retention_secs(provider: ProviderKind) -> Option<u64> {
    const DAY: u64 = 86_400;
    match provider {
        ProviderKind::Stripe => Some(30 * DAY),
        ProviderKind::Paddle => Some(90 * DAY),
        _ => None,
    }
}

/// Zero series for every label set known at start, and the build and retention constants.
/// Label sets with an open value (a version's outcome, a finding's code) get one series per
/// provider and object type; the others appear at their first event.
fn register() {
    use metrics::{counter, gauge, histogram};
    let commit = option_env!("BILLSYNC_COMMIT").unwrap_or("unknown");
    gauge!("billsync_build_info", "version" => env!("CARGO_PKG_VERSION"), "commit" => commit)
        .set(1.0);
    for f in FAMILIES
        .iter()
        .filter(|f| f.labels.is_empty() && f.only_with.is_none())
    {
        match f.kind {
            Kind::Counter => counter!(f.name).increment(0),
            Kind::Gauge => gauge!(f.name).set(0.0),
            Kind::Histogram => drop(histogram!(f.name)),
        }
    }
    for kind in ["realtime", "reconciliation"] {
        gauge!("billsync_confirmation_oldest_pending_age_seconds", "kind" => kind).set(0.0);
    }
    for change in ["acquired", "lost", "released"] {
        counter!("billsync_lease_changes_total", "change" => change).increment(0);
    }
    for reason in ["header_timeout", "idle_timeout", "send_timeout", "evicted"] {
        counter!("billsync_http_connections_closed_total", "reason" => reason).increment(0);
    }
    for provider in ProviderKind::ALL {
        let p = provider.as_str();
        for code in WEBHOOK_CODES {
            counter!("billsync_webhooks_total", "provider" => p, "code" => *code).increment(0);
        }
        for name in [
            "billsync_webhook_ack_seconds",
            "billsync_webhook_queryable_seconds",
            "billsync_apply_latency_seconds",
            "billsync_convergence_seconds",
        ] {
            drop(histogram!(name, "provider" => p));
        }
        for name in [
            "billsync_webhooks_unmapped_total",
            "billsync_dead_letters_total",
            "billsync_sweep_missed_events_total",
            "billsync_pulled_objects_total",
        ] {
            counter!(name, "provider" => p).increment(0);
        }
        for outcome in ["ok", "failed"] {
            counter!("billsync_sweeps_total", "provider" => p, "outcome" => outcome).increment(0);
        }
        for kind in REQUEST_KINDS {
            drop(histogram!("billsync_limiter_wait_seconds", "provider" => p, "kind" => *kind));
            for outcome in REQUEST_OUTCOMES {
                counter!("billsync_provider_requests_total", "provider" => p, "kind" => *kind,
                    "outcome" => *outcome)
                .increment(0);
            }
        }
        for object in ObjectType::ALL {
            let kind = object.as_str();
            counter!("billsync_confirmations_failed_total", "provider" => p, "kind" => kind)
                .increment(0);
            counter!("billsync_versions_total", "provider" => p, "kind" => kind,
                "outcome" => "first_seen")
            .increment(0);
            counter!("billsync_observations_ignored_total", "provider" => p, "kind" => kind,
                "outcome" => "unchanged")
            .increment(0);
            counter!("billsync_quality_findings_total", "provider" => p, "kind" => kind,
                "code" => "negative_amount")
            .increment(0);
        }
        for name in [
            "billsync_backfill_jobs_running",
            "billsync_backfill_oldest_progress_age_seconds",
            "billsync_sweep_position_age_seconds",
        ] {
            gauge!(name, "provider" => p).set(0.0);
        }
        if let Some(secs) = events_retention_secs(provider) {
            gauge!("billsync_provider_events_retention_seconds", "provider" => p).set(secs as f64);
        }
    }
}

/// Installs the global log subscriber with `filter` (e.g. `info,billsync=debug`). Set
/// `BILLSYNC_LOG_FORMAT=json` for one JSON object per line. Colours only when the log goes to
/// a terminal and `NO_COLOR` is unset (a file or journald gets no escape codes). A second call
/// does nothing.
pub fn init_logging(filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("BILLSYNC_LOG_FORMAT").is_ok_and(|f| f == "json");
    // The subscriber's default writer is stdout.
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `(name, type)` of every family in a Prometheus text exposition, from its TYPE lines.
    fn exposed(text: &str) -> BTreeSet<(String, String)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, t)| (n.to_owned(), t.to_owned()))
            .collect()
    }

    #[test]
    fn every_catalogued_family_is_exposed_with_help_and_type_and_nothing_else() {
        let text = metrics_handle().render();
        let catalogued: BTreeSet<(String, String)> = FAMILIES
            .iter()
            .map(|f| (f.name.to_owned(), f.kind.as_str().to_owned()))
            .collect();
        let exposed = exposed(&text);
        let always: BTreeSet<_> = FAMILIES
            .iter()
            .filter(|f| f.only_with.is_none())
            .map(|f| (f.name.to_owned(), f.kind.as_str().to_owned()))
            .collect();
        let missing: Vec<_> = always.difference(&exposed).collect();
        assert!(missing.is_empty(), "not exposed at start: {missing:?}");
        let unknown: Vec<_> = exposed.difference(&catalogued).collect();
        assert!(
            unknown.is_empty(),
            "exposed but not catalogued: {unknown:?}"
        );
        for f in FAMILIES.iter().filter(|f| f.only_with.is_none()) {
            assert!(
                text.contains(&format!("# HELP {} ", f.name)),
                "{} has no HELP",
                f.name
            );
        }
        assert!(text.contains(&format!(
            "billsync_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn the_slo_thresholds_are_bucket_edges() {
        assert!(LATENCY_BUCKETS.contains(&120.0) && LATENCY_BUCKETS.contains(&600.0));
        assert!(CONVERGENCE_BUCKETS.contains(&1800.0) && CONVERGENCE_BUCKETS.contains(&7200.0));
        let text = metrics_handle().render();
        assert!(text.contains(
            "billsync_webhook_queryable_seconds_bucket{provider=\"stripe\",le=\"120\"} 0"
        ));
        assert!(
            text.contains("billsync_convergence_seconds_bucket{provider=\"stripe\",le=\"1800\"} 0")
        );
    }

    /// docs/metrics.md lists exactly the catalogue: name, type, labels and unit of each family.
    #[test]
    fn the_docs_catalogue_is_the_code_catalogue() {
        let doc = include_str!("../docs/metrics.md");
        let documented: BTreeSet<String> = doc
            .lines()
            .filter(|l| l.starts_with("| `billsync_"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                format!(
                    "{} {} {} {}",
                    cells[1].trim_matches('`'),
                    cells[2],
                    cells[3],
                    cells[4]
                )
            })
            .collect();
        let catalogued: BTreeSet<String> = FAMILIES
            .iter()
            .map(|f| {
                let labels = if f.labels.is_empty() {
                    "—".to_owned()
                } else {
                    f.labels.join(", ")
                };
                let unit = if f.unit == metrics::Unit::Seconds {
                    "seconds"
                } else {
                    "count"
                };
                format!("{} {} {labels} {unit}", f.name, f.kind.as_str())
            })
            .collect();
        let undocumented: Vec<_> = catalogued.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&catalogued).collect();
        assert!(
            undocumented.is_empty() && stale.is_empty(),
            "docs/metrics.md differs from src/telemetry/catalogue.rs: missing {undocumented:?}, \
             not in the code {stale:?}"
        );
    }
}
