//! `billsync sim` as Chargebee: Chargebee's own Python SDK lists every simulated resource once
//! (both in its default order and as billsync pulls) and reads a delivered webhook whose HTTP
//! Basic credentials check out, and billsync converges with it under chaos.

use billsync::providers::ProviderKind;
use billsync_sim::SimConfig;

use crate::both_backends;
use crate::helpers::*;
use crate::sdk::{assert_each_listed_once, run_sdk_script};
use crate::sim::start_sim;

both_backends!(chargebee_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards);

async fn chargebee_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(
    backend: Backend,
) {
    crate::chaos::chaos_run(backend, vec![ProviderKind::Chargebee], 2, 20).await;
}

#[tokio::test]
async fn chargebee_sdk_lists_every_resource_once_and_reads_an_authenticated_webhook() {
    let sim = start_sim(SimConfig {
        history: 230,
        providers: vec![billsync_sim::SimProvider::Chargebee],
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(80);
    let account = sim.sim.accounts().remove(0);
    let result = run_sdk_script(
        "chargebee_client_check.py",
        "chargebee",
        &[&format!("http://{}", sim.addr), &account.api_key],
    )
    .await;
    let truth = sim.sim.truth(false);
    let total = assert_each_listed_once(&truth, &result["ids"]);
    assert!(total > 200, "only {total} resources listed");
    // Sorted by update with `include_deleted`, deleted resources are listed too.
    let listed: usize = result["ids_by_update"]
        .as_object()
        .unwrap()
        .values()
        .map(|ids| ids.as_array().unwrap().len())
        .sum();
    let all = truth["accounts"][0]["objects"].as_array().unwrap().len();
    assert_eq!(
        listed, all,
        "include_deleted did not list every resource once"
    );
    assert!(
        result["events"].as_u64().unwrap() > 80,
        "events: {}",
        result["events"]
    );
    assert!(result["webhook_event_id"]
        .as_str()
        .unwrap()
        .starts_with("ev_"));
    assert_eq!(result["authenticated"], true);
    assert_eq!(result["wrong_refused"], true);
    sim.stop();
}
