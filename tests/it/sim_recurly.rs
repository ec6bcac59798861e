//! Recurly in `billsync sim`: Recurly's own Python client lists every simulated object exactly
//! once and reads each kind back by the handle billsync fetches with, a sample webhook passes
//! Recurly's documented signature check, and a chaos run converges on both stores.

use std::collections::{HashMap, HashSet};

use billsync::providers::ProviderKind;
use billsync::simulator::SimConfig;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;
use crate::sim::start_sim;

both_backends!(recurly_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards);

async fn recurly_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(backend: Backend) {
    crate::chaos::chaos_run(backend, vec![ProviderKind::Recurly], 2, 20).await;
}

/// Runs `tests/py/{script}` with the test Python; its stdout is one JSON document.
pub async fn run_client_check(script: &str, package: &str, args: &[&str]) -> Value {
    let python = std::env::var("BILLSYNC_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("this test runs {package}'s official Python client: run scripts/test, or set BILLSYNC_TEST_PYTHON to a python with `{package}` installed")
    });
    let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .await
        .expect("run python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "{python} has no `{package}`: run scripts/test (its venv step installs it): {stderr}"
    );
    assert!(out.status.success(), "{script} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Asserts the client listed each stream's objects exactly once: `expected` by stream.
pub fn assert_listed_once(result: &Value, mut expected: HashMap<String, HashSet<String>>) -> usize {
    let mut total = 0;
    for (stream, ids) in result["ids"].as_object().expect("ids") {
        let listed: Vec<String> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect();
        let unique: HashSet<String> = listed.iter().cloned().collect();
        assert_eq!(
            listed.len(),
            unique.len(),
            "{stream}: an object was listed twice"
        );
        assert_eq!(
            unique,
            expected.remove(stream).unwrap_or_default(),
            "{stream}: not every object exactly once"
        );
        total += listed.len();
    }
    assert!(
        expected.is_empty(),
        "streams never listed: {:?}",
        expected.keys()
    );
    total
}

#[tokio::test]
async fn recurly_client_lists_every_object_once_reads_by_handle_and_the_webhook_signature_verifies()
{
    let sim = start_sim(SimConfig {
        providers: vec![ProviderKind::Recurly],
        history: 230,
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(80);
    let account = sim.sim.accounts().remove(0);
    let result = run_client_check(
        "recurly_client_check.py",
        "recurly",
        &[&format!("http://{}", sim.addr), &account.api_key],
    )
    .await;
    // Closed accounts stay listed at Recurly (state `inactive`), so every object counts.
    let truth = sim.sim.truth(false);
    let mut expected: HashMap<String, HashSet<String>> = HashMap::new();
    for o in truth["accounts"][0]["objects"].as_array().unwrap() {
        expected
            .entry(o["stream"].as_str().unwrap().into())
            .or_default()
            .insert(o["id"].as_str().unwrap().into());
    }
    let total = assert_listed_once(&result, expected);
    assert!(total > 200, "only {total} objects listed");
    let reads = &result["reads"];
    for kind in ["account", "invoice", "subscription", "transaction"] {
        assert!(reads[kind].is_string(), "no {kind} read back: {reads}");
    }
    assert!(reads["invoice_total"].is_number(), "{reads}");
    assert_eq!(
        result["not_found_error"], true,
        "a 404 is the client's NotFoundError"
    );
    assert_eq!(result["created_at_is_datetime"], true);
    assert_eq!(result["webhook_verified"], true);
    assert_eq!(result["tampered_refused"], true);
    let hook = &result["webhook"];
    for key in ["id", "object_type", "site_id", "event_type", "event_time"] {
        assert!(hook[key].is_string(), "webhook has no `{key}`: {hook}");
    }
    sim.stop();
}
