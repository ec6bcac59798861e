//! Zuora in `billsync sim`: Zuora's own Python SDK gets an OAuth token with client credentials
//! and lists every simulated object exactly once through the Object Query API, a sample callout
//! carries RFC 7617 Basic credentials and its notification id, and a chaos run (OAuth tokens,
//! thin callouts, refetches) converges on both stores.

use std::collections::{HashMap, HashSet};

use billsync::providers::ProviderKind;
use billsync::simulator::SimConfig;

use crate::both_backends;
use crate::helpers::*;
use crate::sdk::{assert_listed_once, run_sdk_script};
use crate::sim::start_sim;

both_backends!(zuora_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards);

async fn zuora_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(backend: Backend) {
    crate::chaos::chaos_run(backend, vec![ProviderKind::Zuora], 2, 20).await;
}

#[tokio::test]
async fn zuora_sdk_gets_a_token_and_lists_every_object_once_and_callouts_carry_basic_auth() {
    let sim = start_sim(SimConfig {
        providers: vec![ProviderKind::Zuora],
        history: 230,
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(80);
    let account = sim.sim.accounts().remove(0);
    let result = run_sdk_script(
        "zuora_client_check.py",
        "zuora_sdk",
        &[&format!("http://{}", sim.addr), &account.api_key],
    )
    .await;
    // Closed customers are canceled accounts, which stay listed.
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
    assert_eq!(result["token_obtained"], true);
    let reads = &result["reads"];
    assert!(
        reads["account_pages"].as_u64().unwrap() > 2,
        "accounts took one page: {reads}"
    );
    assert!(reads["invoice"].is_string(), "{reads}");
    assert!(reads["invoice_amount"].is_number(), "{reads}");
    assert!(
        reads["invoice_items"].as_u64().unwrap() > 0,
        "expand[]=invoiceitems: {reads}"
    );
    assert!(
        reads["subscription"].as_str().unwrap().starts_with("A-S"),
        "{reads}"
    );
    assert!(
        reads["bill_to_email"].is_string(),
        "expand[]=billto: {reads}"
    );
    assert_eq!(result["basic_scheme"], true);
    assert_eq!(result["basic_credentials_match"], true);
    assert_eq!(result["notification_id_header_matches_body"], true);
    let hook = &result["webhook"];
    for key in [
        "notificationId",
        "eventType",
        "eventTime",
        "objectType",
        "objectId",
    ] {
        assert!(hook[key].is_string(), "callout has no `{key}`: {hook}");
    }
    sim.stop();
}
