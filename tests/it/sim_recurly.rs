//! Recurly in `billsync sim`: Recurly's own Python client lists every simulated object exactly
//! once and reads each kind back by the handle billsync fetches with, a sample webhook passes
//! Recurly's documented signature check, and a chaos run converges on both stores.

use std::collections::{HashMap, HashSet};

use billsync::providers::ProviderKind;
use billsync::simulator::SimConfig;

use crate::both_backends;
use crate::helpers::*;
use crate::sdk::{assert_listed_once, run_sdk_script};
use crate::sim::start_sim;

both_backends!(recurly_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards);

async fn recurly_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(backend: Backend) {
    crate::chaos::chaos_run(backend, vec![ProviderKind::Recurly], 2, 20).await;
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
    let result = run_sdk_script(
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
    let total = assert_listed_once(&result["ids"], expected);
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
