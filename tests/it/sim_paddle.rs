//! `billsync sim` as Paddle Billing: Paddle's own Python SDK lists every simulated entity once
//! and verifies a simulator-signed webhook, and billsync converges with it under chaos.

use billsync::providers::ProviderKind;
use billsync::simulator::SimConfig;

use crate::both_backends;
use crate::helpers::*;
use crate::sdk::{assert_each_listed_once, run_sdk_script};
use crate::sim::start_sim;

both_backends!(paddle_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards);

async fn paddle_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(backend: Backend) {
    crate::chaos::chaos_run(backend, vec![ProviderKind::Paddle], 2, 20).await;
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
