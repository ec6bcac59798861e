//! Recurly in `billsync sim`: Recurly's own Python client (strict mode) lists every simulated
//! object exactly once, reads each kind back by the handle billsync fetches with, pages a long
//! invoice's line items and reads a billing info; a sample webhook passes Recurly's documented
//! signature check; the simulator behaves as `docs/providers/recurly.md` says (first line
//! items embedded, billing info, balances, references by `id`); billsync gets each of those
//! fields right through a backfill, through webhooks (a `billing_info.updated` one too) and
//! through sweeps; and a chaos run converges on both stores.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use billsync::model::money::json_major_to_minor;
use billsync::providers::ProviderKind;
use billsync_sim::{SimConfig, SimHandle, Target};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::sdk::{assert_listed_once, run_sdk_script};
use crate::sim::start_sim;

both_backends!(
    recurly_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards,
    recurly_backfill_brings_owed_amounts_references_billing_info_and_every_line,
    recurly_webhooks_bring_the_same_fields_and_billing_info_updated_rereads_the_account,
    recurly_sweeps_bring_the_same_fields_without_any_webhook,
);

async fn recurly_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(backend: Backend) {
    crate::chaos::chaos_run(backend, vec![ProviderKind::Recurly], 2, 20).await;
}

#[tokio::test]
async fn recurly_client_lists_every_object_once_reads_by_handle_and_the_webhook_signature_verifies()
{
    let sim = start_sim(SimConfig {
        providers: vec![billsync_sim::SimProvider::Recurly],
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
    // Strict mode accepted every answer, the long invoice's pages and a billing info.
    let truth_object = |id: &Value| {
        truth["accounts"][0]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["object"]["id"] == *id)
            .map(|o| o["object"].clone())
            .unwrap_or_else(|| panic!("{id} not in the truth"))
    };
    assert_eq!(reads["long_invoice_embedded"], 10, "{reads}");
    let whole: Vec<Value> = truth_object(&reads["long_invoice"])["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].clone())
        .collect();
    assert!(whole.len() > 10);
    assert_eq!(
        reads["long_invoice_lines"],
        json!(whole),
        "every line, in order"
    );
    assert!(reads["billing_info_vat"].is_string() || reads["billing_info_vat"].is_null());
    assert_eq!(
        reads["billing_info_vat"],
        reads["billing_info_embedded_vat"]
    );
    assert_eq!(
        reads["refund_previous_type"], "charge",
        "a refund names a charge invoice"
    );
    assert_eq!(result["webhook_verified"], true);
    assert_eq!(result["tampered_refused"], true);
    let hook = &result["webhook"];
    for key in ["id", "object_type", "site_id", "event_type", "event_time"] {
        assert!(hook[key].is_string(), "webhook has no `{key}`: {hook}");
    }
    sim.stop();
}

/// An object of the sim's truth for account 0: (stream, handle, object).
fn truth_objects(sim: &SimHandle) -> Vec<(String, String, Value)> {
    let truth = sim.sim.truth(false);
    truth["accounts"][0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["deleted"] != true)
        .map(|o| {
            (
                o["stream"].as_str().unwrap().to_owned(),
                o["id"].as_str().unwrap().to_owned(),
                o["object"].clone(),
            )
        })
        .collect()
}

/// An account that keeps its address only on `billing_info` (docs page, "Tax IDs and
/// addresses").
fn billing_info_only(account: &Value) -> bool {
    account["billing_info"].is_object() && account["address"]["country"].is_null()
}

#[tokio::test]
async fn recurly_sim_embeds_ten_line_items_pages_the_rest_and_keeps_billing_info_as_documented() {
    let sim = start_sim(SimConfig {
        providers: vec![billsync_sim::SimProvider::Recurly],
        history: 300,
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(150);
    let key = sim.sim.accounts()[0].api_key.clone();
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client
            .get(format!("http://{}/recurly{path}", sim.addr))
            .basic_auth(&key, Some(""))
            .header("Accept", "application/vnd.recurly.v2021-02-25");
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let objects = truth_objects(&sim);
    // Line items: the first ten embedded, `has_more_line_items`, the rest paged.
    let (_, number, long) = objects
        .iter()
        .find(|(s, _, o)| s == "invoices" && o["line_items"].as_array().unwrap().len() > 10)
        .expect("a long invoice");
    let id = long["id"].as_str().unwrap();
    let whole = long["line_items"].as_array().unwrap();
    assert_eq!(long["has_more_line_items"], false, "the truth is whole");
    for path in [
        format!("/invoices/{id}"),
        format!("/invoices/number-{number}"),
    ] {
        let (status, one) = get(path).await;
        assert_eq!(status, 200);
        assert_eq!(one["has_more_line_items"], true);
        assert_eq!(one["line_items"].as_array().unwrap()[..], whole[..10]);
    }
    let mut paged = Vec::new();
    let mut next = Some(format!("/invoices/{id}/line_items?limit=7&order=asc"));
    while let Some(path) = next.take() {
        let (status, page) = get(path).await;
        assert_eq!(status, 200, "{page}");
        assert!(page["data"].as_array().unwrap().len() <= 7);
        paged.extend(page["data"].as_array().unwrap().iter().cloned());
        next = page["next"].as_str().map(str::to_owned);
        assert_eq!(page["has_more"], next.is_some());
    }
    assert_eq!(paged[..], whole[..], "every line, in invoice order");
    let (_, newest_first) = get(format!("/invoices/{id}/line_items")).await;
    assert_eq!(
        newest_first["data"][0],
        *whole.last().unwrap(),
        "default order desc"
    );
    let (_, list) = get("/invoices?limit=200".into()).await;
    for inv in list["data"].as_array().unwrap() {
        let n = inv["line_items"].as_array().unwrap().len();
        assert!(n <= 10, "a list embeds at most ten lines");
        if inv["has_more_line_items"] == true {
            assert_eq!(n, 10, "{inv}");
        }
    }
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["has_more_line_items"] == true),
        "a listed invoice has more lines"
    );
    // Billing info: an automatically collected account keeps VAT number and address there.
    let (_, code, auto) = objects
        .iter()
        .find(|(s, _, o)| {
            s == "accounts" && billing_info_only(o) && o["billing_info"]["vat_number"].is_string()
        })
        .expect("an account with VAT number and address only on billing_info");
    let (_, read) = get(format!("/accounts/code-{code}")).await;
    assert_eq!(
        read["id"], auto["id"],
        "a handle reads the account with its id"
    );
    assert_ne!(read["vat_number"], auto["billing_info"]["vat_number"]);
    assert!(read["address"]["country"].is_null());
    assert!(read["billing_info"]["address"]["country"].is_string());
    let (status, billing) = get(format!(
        "/accounts/{}/billing_info",
        auto["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(billing["vat_number"], auto["billing_info"]["vat_number"]);
    let (_, _, manual) = objects
        .iter()
        .find(|(s, _, o)| s == "accounts" && o["billing_info"].is_null())
        .expect("a manually collected account");
    assert!(manual["vat_number"].is_string() || manual["address"]["country"].is_string());
    let (status, _) = get(format!(
        "/accounts/{}/billing_info",
        manual["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(status, 404, "no billing info");
    // Owed amounts: `balance` is 0 once paid or voided, the rest of the total otherwise.
    for (_, _, inv) in objects
        .iter()
        .filter(|(s, _, o)| s == "invoices" && o["type"] == "charge")
    {
        let cur = inv["currency"].as_str().unwrap();
        let minor = |k: &str| json_major_to_minor(&inv[k], cur).unwrap();
        match inv["state"].as_str().unwrap() {
            "paid" | "voided" => assert_eq!(minor("balance"), 0, "{inv}"),
            _ => assert_eq!(minor("balance"), minor("total") - minor("paid"), "{inv}"),
        }
    }
    // References name objects by `id`: subscriptions, the refunded invoice, the account.
    let (_, _, with_sub) = objects
        .iter()
        .find(|(s, _, o)| s == "invoices" && o["subscription_ids"][0].is_string())
        .expect("a subscription invoice");
    let (status, sub) = get(format!(
        "/subscriptions/{}",
        with_sub["subscription_ids"][0].as_str().unwrap()
    ))
    .await;
    assert_eq!((status, &sub["object"]), (200, &json!("subscription")));
    let (_, _, refund) = objects
        .iter()
        .find(|(s, _, o)| s == "invoices" && o["previous_invoice_id"].is_string())
        .expect("a refund invoice");
    assert_eq!(refund["type"], "credit");
    let (status, charged) = get(format!(
        "/invoices/{}",
        refund["previous_invoice_id"].as_str().unwrap()
    ))
    .await;
    assert_eq!((status, &charged["type"]), (200, &json!("charge")));
    let (status, owner) = get(format!(
        "/accounts/{}",
        refund["account"]["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!((status, &owner["code"]), (200, &refund["account"]["code"]));
    sim.stop();
}

/// A Recurly sim with `history` objects, registered with `app` (sweeps every
/// `reconcile_secs`); returns it with the merchant and connection ids.
async fn recurly_sim(
    app: &TestApp,
    history: usize,
    reconcile_secs: u64,
) -> (SimHandle, String, String) {
    let sim = start_sim(SimConfig {
        providers: vec![billsync_sim::SimProvider::Recurly],
        history,
        seed: 19,
        ..SimConfig::default()
    })
    .await;
    sim.sim
        .register_with(
            Target {
                url: format!("http://{}", app.addr),
                token: TOKEN.into(),
            },
            &json!({"reconcile_interval_secs": reconcile_secs, "rate_limit_per_sec": 200}),
        )
        .await
        .expect("register");
    let account = sim.sim.accounts().remove(0);
    let conn = account.connection_id.expect("registered");
    (sim, account.merchant_id, conn)
}

/// What [`assert_fields_right`] found of each finding, so a test knows it was exercised.
#[derive(Debug, Default)]
struct Seen {
    billing_info_vat: usize,
    billing_info_address: usize,
    long_invoices: usize,
    owed: usize,
    settled: usize,
    subscription_refs: usize,
    credited_invoices: usize,
}

/// Every Recurly finding of issue 19, object by object against the sim's truth: customers
/// keyed by API `id` (never the code) with the VAT number and address of `billing_info`;
/// invoices with every line, `amount_due` the balance, `subscription_id` a stored
/// subscription; credit notes naming a stored invoice.
async fn assert_fields_right(app: &TestApp, sim: &SimHandle, merchant: &str) -> Seen {
    let mut seen = Seen::default();
    let read = |collection: &'static str, id: String| async move {
        app.object(merchant, collection, &format!("recurly:{id}"))
            .await
    };
    for (stream, handle, o) in truth_objects(sim) {
        let id = o["id"].as_str().unwrap().to_owned();
        match (stream.as_str(), o["type"].as_str()) {
            ("accounts", _) => {
                let c = read("customers", id.clone())
                    .await
                    .expect("customer by API id");
                assert!(
                    read("customers", handle).await.is_none(),
                    "no customer keyed by code"
                );
                let tax: Vec<&str> = c["data"]["tax_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["value"].as_str().unwrap())
                    .collect();
                if let Some(vat) = o["billing_info"]["vat_number"].as_str() {
                    assert_eq!(tax.first(), Some(&vat), "{id}: billing info VAT first: {c}");
                    seen.billing_info_vat += 1;
                }
                if let Some(vat) = o["vat_number"].as_str() {
                    assert!(tax.contains(&vat), "{id}: account VAT: {c}");
                }
                if billing_info_only(&o) && o["billing_info"]["address"]["country"].is_string() {
                    assert_eq!(
                        c["data"]["address"]["country"], o["billing_info"]["address"]["country"],
                        "{id}: the billing info address: {c}"
                    );
                    assert_eq!(
                        c["data"]["address"]["line1"],
                        o["billing_info"]["address"]["street1"]
                    );
                    seen.billing_info_address += 1;
                }
            }
            ("invoices", Some("credit")) => {
                let cn = read("credit_notes", id.clone())
                    .await
                    .expect("credit note by API id");
                if let Some(prev) = o["previous_invoice_id"].as_str() {
                    assert_eq!(cn["data"]["invoice_id"], format!("recurly:{prev}"), "{cn}");
                    assert!(
                        read("invoices", prev.to_owned()).await.is_some(),
                        "credited invoice stored"
                    );
                    seen.credited_invoices += 1;
                }
            }
            ("invoices", _) => {
                let inv = read("invoices", id.clone())
                    .await
                    .expect("invoice by API id");
                assert!(
                    read("invoices", handle).await.is_none(),
                    "no invoice keyed by number"
                );
                let d = &inv["data"];
                let lines = o["line_items"].as_array().unwrap();
                assert_eq!(
                    d["lines"].as_array().unwrap().len(),
                    lines.len(),
                    "{id}: every line"
                );
                if lines.len() > 10 {
                    seen.long_invoices += 1;
                }
                let cur = o["currency"].as_str().unwrap();
                let balance = json_major_to_minor(&o["balance"], cur).unwrap();
                assert_eq!(d["amount_due"], balance, "{id}: the balance is owed: {inv}");
                if matches!(o["state"].as_str(), Some("paid" | "voided")) {
                    assert_eq!(d["amount_due"], 0);
                    seen.settled += 1;
                } else if balance > 0 {
                    seen.owed += 1;
                }
                if let Some(sub) = o["subscription_ids"][0].as_str() {
                    assert_eq!(d["subscription_id"], format!("recurly:{sub}"), "{inv}");
                    assert!(
                        read("subscriptions", sub.to_owned()).await.is_some(),
                        "subscription stored"
                    );
                    seen.subscription_refs += 1;
                }
            }
            ("subscriptions", _) => {
                assert!(
                    read("subscriptions", id).await.is_some(),
                    "subscription by API id"
                );
            }
            _ => {
                assert!(
                    read("transactions", id).await.is_some(),
                    "transaction by API id"
                );
            }
        }
    }
    seen
}

fn assert_every_finding_exercised(seen: &Seen) {
    assert!(seen.billing_info_vat > 0, "{seen:?}");
    assert!(seen.billing_info_address > 0, "{seen:?}");
    assert!(seen.long_invoices > 0, "{seen:?}");
    assert!(seen.settled > 0 && seen.owed > 0, "{seen:?}");
    assert!(seen.subscription_refs > 0, "{seen:?}");
    assert!(seen.credited_invoices > 0, "{seen:?}");
}

async fn recurly_backfill_brings_owed_amounts_references_billing_info_and_every_line(
    backend: Backend,
) {
    let app = synced_app(backend).await;
    // No sweeps and no webhooks: only the backfill can bring the objects, old (all settled)
    // and recent (open invoices, subscriptions, refunds).
    let (sim, merchant, conn) = recurly_sim(&app, 400, 3600).await;
    sim.sim.set_knobs(&json!({"webhook_drop": 1.0})).unwrap();
    sim.sim.step(300);
    let base = format!("http://{}", app.addr);
    crate::backfill::start_backfill(&app.client, &base, &conn).await;
    crate::backfill::wait_backfill(&app.client, &base, &conn, 120, |b| b["state"] == "done").await;
    crate::chaos::wait_converged(&sim, &app, std::slice::from_ref(&merchant), 60).await;
    let seen = assert_fields_right(&app, &sim, &merchant).await;
    assert_every_finding_exercised(&seen);
    assert_eq!(sim.sim.stats().webhooks_sent, 0, "no webhook was sent");
    sim.stop();
    app.stop().await;
}

async fn recurly_webhooks_bring_the_same_fields_and_billing_info_updated_rereads_the_account(
    backend: Backend,
) {
    let app = synced_app(backend).await;
    // No history and no sweeps: everything arrives through thin webhooks and their reads.
    let (sim, merchant, conn) = recurly_sim(&app, 0, 3600).await;
    sim.sim.step(400);
    crate::chaos::wait_converged(&sim, &app, std::slice::from_ref(&merchant), 90).await;
    let seen = assert_fields_right(&app, &sim, &merchant).await;
    assert_every_finding_exercised(&seen);

    // A VAT number added to an account's billing info, announced only as
    // `billing_info.updated` (Recurly sends no `account.updated` for it).
    sim.sim.set_knobs(&json!({"webhook_drop": 1.0})).unwrap();
    let (_, code, account) = truth_objects(&sim)
        .into_iter()
        .find(|(s, _, o)| s == "accounts" && o["billing_info"].is_object())
        .expect("an account with billing info");
    let mut billing = account["billing_info"].clone();
    billing["vat_number"] = json!("NL123456789B01");
    assert!(sim.sim.edit(0, &code, &json!({"billing_info": billing})));
    let body = json!({
        "id": "billinginfo0001", "object_type": "billing_info", "site_id": "site00000001",
        "event_type": "updated", "event_time": billsync::model::time::secs_to_rfc3339(now_secs()),
        "account_code": code,
    })
    .to_string();
    let secret = sim.sim.accounts()[0].webhook_secret.clone();
    let r = app
        .client
        .post(format!("http://{}/webhooks/recurly/{conn}", app.addr))
        .header(
            "recurly-signature",
            billsync::providers::recurly::sign(&secret, now_secs() * 1000, body.as_bytes()),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let id = format!("recurly:{}", account["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = app.object(&merchant, "customers", &id).await.unwrap();
        if c["data"]["tax_ids"][0]["value"] == "NL123456789B01" {
            assert_eq!(c["reconciliation_status"], "converged");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the billing info change never arrived: {c}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sim.stop();
    app.stop().await;
}

async fn recurly_sweeps_bring_the_same_fields_without_any_webhook(backend: Backend) {
    let app = synced_app(backend).await;
    let (sim, merchant, _) = recurly_sim(&app, 0, 2).await;
    // Every change is visible only through the API lists the sweeps walk.
    sim.sim.set_knobs(&json!({"webhook_drop": 1.0})).unwrap();
    sim.sim.step(400);
    crate::chaos::wait_converged(&sim, &app, std::slice::from_ref(&merchant), 90).await;
    let seen = assert_fields_right(&app, &sim, &merchant).await;
    assert_every_finding_exercised(&seen);
    assert_eq!(sim.sim.stats().webhooks_sent, 0, "no webhook was sent");
    sim.stop();
    app.stop().await;
}
