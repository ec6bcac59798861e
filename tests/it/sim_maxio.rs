//! The simulator's Maxio: Maxio's own Python SDK pages through every object once and reads the
//! events APIs; a delivered webhook verifies with Maxio's documented signature; and a chaos run
//! against it converges on both stores.

use std::collections::{HashMap, HashSet};

use billsync::providers::ProviderKind;
use billsync_sim::SimConfig;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::sim::start_sim;

both_backends!(maxio_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards);

async fn maxio_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(backend: Backend) {
    crate::chaos::chaos_run(backend, vec![ProviderKind::Maxio], 2, 20).await;
}

#[tokio::test]
async fn maxio_sdk_lists_every_object_once_and_a_webhook_verifies_as_documented() {
    let python = crate::helpers::python_with("advancedbilling");
    let sim = start_sim(SimConfig {
        history: 230,
        providers: vec![billsync_sim::SimProvider::Maxio],
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(150);
    let account = sim.sim.accounts().remove(0);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/py/maxio_client_check.py"
    );
    let out = tokio::process::Command::new(&python)
        .args([script, &format!("http://{}", sim.addr), &account.api_key])
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "Maxio's SDK failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("JSON from the script");
    let truth = sim.sim.truth(false);
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
    for (stream, ids) in result["ids"].as_object().unwrap() {
        // Numeric ids (customers, subscriptions) come back as numbers, uids as text.
        let listed: Vec<String> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect();
        let unique: HashSet<String> = listed.iter().cloned().collect();
        assert_eq!(
            listed.len(),
            unique.len(),
            "{stream}: an object was listed twice"
        );
        assert_eq!(
            unique,
            expected.remove(stream.as_str()).unwrap_or_default(),
            "{stream}: not every object exactly once"
        );
        assert!(
            !listed.is_empty() || stream == "credit_notes",
            "{stream}: nothing listed"
        );
        total += listed.len();
    }
    assert!(total > 150, "only {total} objects listed");
    assert!(
        expected.keys().all(|k| k == "transactions"),
        "streams the SDK did not list (it has no transactions endpoint): {:?}",
        expected.keys()
    );
    // Payment profiles: one per customer, bar one in five, each with the customer's billing
    // country, read through the SDK's own model (docs/providers/maxio.md, "Addresses").
    let mut with_profile = 0;
    for o in truth["accounts"][0]["objects"].as_array().unwrap() {
        if o["stream"] != "customers" || o["deleted"] == true {
            continue;
        }
        let c = &o["object"]["customer"];
        let countries: Vec<Value> = c["payment_profiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["billing_country"].clone())
            .collect();
        with_profile += usize::from(!countries.is_empty());
        assert_eq!(
            result["billing_countries"][o["id"].as_str().unwrap()],
            json!(countries)
        );
    }
    assert!(
        with_profile > 5,
        "only {with_profile} customers with a payment profile"
    );
    for (kind, id) in result["reads"].as_object().unwrap() {
        assert!(!id.is_null() || kind == "credit_note", "{kind} not read");
    }
    assert!(
        result["events"].as_u64().unwrap() > 0,
        "no Events API events"
    );
    assert_eq!(result["event_ids_ascending"], true);
    assert!(result["invoice_events"].as_u64().unwrap() > 0);
    assert!(result["invoice_event_types"]
        .as_array()
        .unwrap()
        .contains(&json!("issue_invoice")));
    assert_eq!(result["webhook_valid"], true, "{result}");
    assert_eq!(result["tampered_refused"], true);
    assert_eq!(
        result["webhook_content_type"],
        "application/x-www-form-urlencoded"
    );
    assert!(result["webhook_id"]
        .as_str()
        .is_some_and(|id| id.parse::<u64>().is_ok()));
    sim.stop();
}

#[tokio::test]
async fn maxio_api_pages_filters_by_update_time_and_answers_its_errors() {
    let sim = start_sim(SimConfig {
        history: 60,
        providers: vec![billsync_sim::SimProvider::Maxio],
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(100);
    let key = sim.sim.accounts()[0].api_key.clone();
    let client = reqwest::Client::new();
    let get = |path: &str, user: &str| {
        client
            .get(format!("http://{}/maxio{path}", sim.addr))
            .basic_auth(user, Some("x"))
            .send()
    };
    let r = get("/customers.json", "wrong").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), "HTTP Basic: Access denied.\n");
    // Pages of at most 200, however many are asked for.
    let all: Vec<Value> = get("/subscriptions.json?per_page=500", &key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(all.len() <= 200 && !all.is_empty());
    let first: Vec<Value> = get("/subscriptions.json?per_page=2&page=1", &key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second: Vec<Value> = get("/subscriptions.json?per_page=2&page=2", &key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert_ne!(first[0], second[0], "page 2 is not page 1");
    // A window after every update is empty; invoices leave line items out unless asked.
    let none: Vec<Value> = get(
        "/subscriptions.json?date_field=updated_at&start_datetime=2999-01-01%2000:00:00",
        &key,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(none.is_empty());
    let bare: Value = get("/invoices.json", &key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let full: Value = get("/invoices.json?line_items=true", &key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(bare["invoices"][0].get("line_items").is_none());
    assert!(full["invoices"][0]["line_items"].is_array());
    let uid = full["invoices"][0]["uid"].as_str().unwrap().to_owned();
    assert!(uid.starts_with("inv_"));
    let one: Value = get(&format!("/invoices/{uid}.json"), &key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        one["uid"],
        uid.as_str(),
        "a read answers the invoice unwrapped"
    );
    assert!(one["total_amount"].as_str().unwrap().contains('.'));
    let missing = get("/customers/1.json", &key).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<Value>().await.unwrap()["errors"].is_array());
    // The invoice events API starts after `since_id`, exclusive.
    let events: Value = get("/invoices/events.json", &key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first_id = events["events"][0]["id"].as_i64().unwrap();
    let after: Value = get(&format!("/invoices/events.json?since_id={first_id}"), &key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(after["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"].as_i64().unwrap() > first_id));
    sim.stop();
}
