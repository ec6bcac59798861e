//! The metrics and alerting deliverables (docs/metrics.md, deploy/prometheus/): the alert rules
//! pass `promtool check rules` and their unit tests, `/metrics` passes `promtool check metrics`
//! on a fresh `billsync serve` and after a simulator run, lists exactly the catalogue of
//! docs/metrics.md, and has every metric an alert expression names.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use billsync_sim::{Clock, SimConfig};

use crate::cluster_harness::{spawn_serve, wait_ready};
use crate::helpers::*;
use crate::sim::{connect, start_sim, wait_for};

const RULES: &str = "deploy/prometheus/billsync.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/tests";
const DASHBOARD: &str = "deploy/grafana/billsync.json";

#[test]
fn the_dashboard_is_grafana_json_with_queries() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(DASHBOARD))
        .expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let queries = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty()))
        .count();
    assert!(queries >= 30, "{queries} queries");
    assert!(!text.contains("connection_id") && !text.contains("merchant_id"));
}

/// promtool: `BILLSYNC_TEST_PROMTOOL` (scripts/test installs Debian's `prometheus` package and
/// sets it), else `promtool` on the PATH.
fn promtool() -> String {
    let tool = std::env::var("BILLSYNC_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let found = Command::new(&tool).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "promtool not found (`{tool}`): run scripts/test, which installs it, or set BILLSYNC_TEST_PROMTOOL"
    );
    tool
}

/// Runs promtool with `args` (and `stdin`), asserting success; answers its output.
fn run_promtool(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(promtool())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    let mut input = child.stdin.take().expect("promtool's stdin is piped");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write to promtool");
    drop(input);
    let out = child.wait_with_output().expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The metric families an exposition declares (`# TYPE` lines).
fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// The families docs/metrics.md lists, without those exposed only when a part is configured.
fn catalogue(always_only: bool) -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"))
            .expect("docs/metrics.md");
    doc.lines()
        .filter(|l| l.starts_with("| `billsync_"))
        .filter(|l| !(always_only && l.contains("Only with")))
        .filter_map(|l| l.split('`').nth(1))
        .map(str::to_owned)
        .collect()
}

/// Every `billsync_*` metric `file` (the alert rules, the dashboard) names, as its family (a
/// histogram's `_bucket`, `_count` and `_sum` series belong to the family without the suffix).
fn named_metrics(file: &str, exposed: &BTreeSet<String>) -> BTreeSet<String> {
    let rules = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .expect("the rules or dashboard file");
    let mut names = BTreeSet::new();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find("billsync_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| exposed.contains(*f)))
                .unwrap_or(name);
            names.insert(family.to_owned());
            rest = &tail[end..];
        }
    }
    assert!(
        names.len() > 10,
        "too few metrics found in the rules: {names:?}"
    );
    names
}

/// The exposition passes promtool, declares exactly the catalogue's families (those of
/// `extra` allowed besides), and has every metric an alert or a dashboard panel names.
fn check_exposition(text: &str, extra: &BTreeSet<String>) {
    run_promtool(&["check", "metrics"], Some(text));
    let exposed = families(text);
    let catalogued = catalogue(true);
    let missing: Vec<_> = catalogued.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "in docs/metrics.md, not exposed: {missing:?}"
    );
    let documented = catalogue(false);
    let uncatalogued: Vec<_> = exposed
        .difference(&documented)
        .filter(|f| !extra.contains(*f))
        .collect();
    assert!(
        uncatalogued.is_empty(),
        "exposed, not in docs/metrics.md: {uncatalogued:?}"
    );
    for file in [RULES, DASHBOARD] {
        let unknown: Vec<_> = named_metrics(file, &exposed)
            .into_iter()
            .filter(|m| !exposed.contains(m))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics /metrics lacks: {unknown:?}"
        );
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let checked = run_promtool(&["check", "rules", RULES], None);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let mut tests: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(RULE_TESTS))
            .expect("the rule tests folder")
            .map(|e| {
                format!(
                    "{RULE_TESTS}/{}",
                    e.expect("a dir entry").file_name().to_string_lossy()
                )
            })
            .filter(|p| p.ends_with(".yml"))
            .collect();
    tests.sort();
    assert!(tests.len() >= 2, "rule tests: {tests:?}");
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    run_promtool(&args, None);
}

/// Every alert of the rules file has a unit test that expects it to fire, and its runbook.
#[test]
fn every_alert_is_fired_by_a_unit_test_and_has_a_runbook() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join(RULES)).expect("the rules file");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 13, "alerts: {alerts:?}");
    let mut tests = String::new();
    for entry in std::fs::read_dir(root.join(RULE_TESTS)).expect("the rule tests folder") {
        tests += &std::fs::read_to_string(entry.expect("a dir entry").path()).expect("a rule test");
    }
    for alert in alerts {
        let runbook = format!("docs/runbooks/{alert}.md");
        assert!(
            rules.contains(&format!("runbook_url: {runbook}")),
            "{alert} links no runbook"
        );
        assert!(root.join(&runbook).exists(), "{runbook} is missing");
        assert!(
            tests.contains(&format!("runbook_url: {runbook}")),
            "no unit test expects {alert} to fire"
        );
        assert!(
            tests.contains(&format!("alertname: {alert}, exp_alerts: []")),
            "no unit test keeps {alert} silent on healthy series"
        );
    }
}

/// A `billsync serve` process on `backend` that has done nothing yet: its exposition.
async fn fresh_node_metrics(backend: Backend) -> (String, TestDb) {
    let db = TestDb::new(backend).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let node = spawn_serve(&db, "fresh", port, &[]);
    wait_ready(&node, 60).await;
    // The store gauges' first reading (at start, then every 5 s).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = reqwest::get(format!("{}/metrics", node.url()))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    drop(node);
    (text, db)
}

#[tokio::test]
async fn fresh_node_on_sqlite_exposes_every_family_with_help_and_passes_promtool() {
    let (text, db) = fresh_node_metrics(Backend::Sqlite).await;
    check_exposition(&text, &BTreeSet::new());
    assert_eq!(metric_in(&text, "billsync_build_info"), Some(1.0));
    assert_eq!(
        metric_in(&text, "billsync_cluster_nodes"),
        Some(1.0),
        "one SQLite node is a cluster of one"
    );
    assert_eq!(
        metric_in(
            &text,
            "billsync_webhooks_total{provider=\"stripe\",code=\"invalid_signature\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric_in(
            &text,
            "billsync_provider_events_retention_seconds{provider=\"stripe\"}"
        ),
        Some(2_592_000.0)
    );
    assert!(!text.contains("connection_id") && !text.contains("merchant"));
    // The store gauges' statements run on this backend.
    let reading = billsync::telemetry::gauges::open(&db.url)
        .expect("a gauge pool")
        .read()
        .await
        .expect("the gauge statements run on SQLite");
    assert_eq!(reading.oldest_inbox, None);
}

#[tokio::test]
async fn fresh_node_on_postgres_passes_promtool_and_its_gauge_statements_run() {
    let (text, db) = fresh_node_metrics(Backend::Postgres).await;
    check_exposition(&text, &BTreeSet::new());
    let reading = billsync::telemetry::gauges::open(&db.url)
        .expect("a gauge pool")
        .read()
        .await
        .expect("the gauge statements run on Postgres");
    assert!(reading.running_jobs.is_empty());
}

/// After a simulator run (webhooks, confirmations against the simulated API), the exposition
/// still passes promtool and the catalogue, and the SLO histograms have counted.
#[tokio::test]
async fn exposition_after_a_simulator_run_passes_promtool() {
    let app = synced_app(Backend::Sqlite).await;
    let sim = start_sim(SimConfig {
        accounts: 1,
        history: 20,
        clock: Clock::Fixed(chrono::Utc::now().timestamp() - 86_400),
        ..SimConfig::default()
    })
    .await;
    connect(&sim, &app, None).await;
    let changed = sim.sim.step(30);
    wait_for("deliveries", 20, || {
        sim.sim.stats().webhooks_sent as usize >= changed
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let queryable = app
            .metric("billsync_webhook_queryable_seconds_count")
            .await
            .unwrap_or(0.0);
        let converged = app
            .metric("billsync_convergence_seconds_count")
            .await
            .unwrap_or(0.0);
        if queryable > 0.0 && converged > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no webhook->queryable ({queryable}) or convergence ({converged}) observation"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    check_exposition(&text, &BTreeSet::new());
    sim.stop();
}
