//! `billsync sim` as Paddle Billing: Paddle's own Python SDK lists every simulated entity once
//! and verifies a simulator-signed webhook, and billsync converges with it under chaos.

use std::collections::{HashMap, HashSet};

use billsync::providers::ProviderKind;
use billsync::simulator::SimConfig;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;
use crate::sim::start_sim;

both_backends!(paddle_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards);

async fn paddle_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(backend: Backend) {
    crate::chaos::chaos_run(backend, vec![ProviderKind::Paddle], 2, 20).await;
}

/// Runs `tests/py/{script}` with the test Python, which must have `module` installed.
pub async fn run_sdk_script(script: &str, module: &str, args: &[&str]) -> Value {
    let python = std::env::var("BILLSYNC_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("this test runs the provider's official Python SDK: run scripts/test, or set BILLSYNC_TEST_PYTHON to a python with `{module}` installed")
    });
    let check = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .expect("run python");
    assert!(
        check.status.success(),
        "{python} cannot import `{module}` (the provider's official SDK): install it as scripts/test does"
    );
    let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the script")
}

/// Asserts that every list of `listed` holds each live object of that stream of the first
/// account exactly once; returns how many were listed.
pub fn assert_each_listed_once(truth: &Value, listed: &Value) -> usize {
    let mut expected: HashMap<String, HashSet<String>> = HashMap::new();
    for o in truth["accounts"][0]["objects"].as_array().unwrap() {
        if !o["deleted"].as_bool().unwrap() {
            expected
                .entry(o["stream"].as_str().unwrap().into())
                .or_default()
                .insert(o["id"].as_str().unwrap().into());
        }
    }
    let mut total = 0;
    for (stream, ids) in listed.as_object().unwrap() {
        let ids: Vec<String> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            ids.len(),
            unique.len(),
            "{stream}: an object was listed twice"
        );
        assert_eq!(
            unique,
            expected.remove(stream).unwrap_or_default(),
            "{stream}: not every object exactly once"
        );
        total += ids.len();
    }
    assert!(
        expected.is_empty(),
        "streams never listed: {:?}",
        expected.keys()
    );
    total
}

#[tokio::test]
async fn paddle_sdk_lists_every_entity_once_and_verifies_a_webhook() {
    let sim = start_sim(SimConfig {
        history: 230,
        providers: vec![ProviderKind::Paddle],
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(80);
    let account = sim.sim.accounts().remove(0);
    let result = run_sdk_script(
        "paddle_client_check.py",
        "paddle_billing",
        &[&format!("http://{}", sim.addr), &account.api_key],
    )
    .await;
    let total = assert_each_listed_once(&sim.sim.truth(false), &result["ids"]);
    assert!(total > 200, "only {total} entities listed");
    assert!(
        !result["ids"]["adjustments"].as_array().unwrap().is_empty(),
        "no adjustments"
    );
    assert!(
        result["events"].as_u64().unwrap() > 80,
        "events: {}",
        result["events"]
    );
    assert_eq!(
        result["verified"], true,
        "Paddle's Verifier refused the simulator's signature"
    );
    assert_eq!(result["tampered_refused"], true);
    assert!(result["webhook_event_id"]
        .as_str()
        .unwrap()
        .starts_with("evt_"));
    sim.stop();
}
