//! Zuora in `billsync sim`: Zuora's own Python SDK gets an OAuth token with client credentials
//! and lists every simulated object exactly once through the Object Query API, a sample callout
//! carries RFC 7617 Basic credentials and its notification id, and a chaos run (OAuth tokens,
//! thin callouts, refetches) converges on both stores. The simulator is as unhelpful as
//! docs/providers/zuora.md says Zuora is (expansions cut at `pageSize`, payment applications
//! only when expanded, canceled accounts kept), and billsync gets each of those right through
//! backfill, callouts and sweeps; callouts in templates billsync does not know are stored.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use billsync::providers::ProviderKind;
use billsync_sim::{SimConfig, SimHandle, Target};
use serde_json::{json, Value};

use crate::backfill::{start_backfill, wait_backfill};
use crate::both_backends;
use crate::chaos::wait_converged;
use crate::helpers::*;
use crate::sdk::{assert_listed_once, run_sdk_script};
use crate::sim::{start_sim, start_tls_sim};

both_backends!(
    zuora_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards,
    zuora_backfill_callouts_and_sweeps_keep_long_invoices_applied_payments_and_canceled_states,
    zuora_callouts_in_any_template_are_stored_answered_200_and_counted,
);

async fn zuora_chaos_run_ends_equal_to_the_truth_converged_and_never_backwards(backend: Backend) {
    crate::chaos::chaos_run(backend, vec![ProviderKind::Zuora], 2, 20).await;
}

#[tokio::test]
async fn zuora_sdk_gets_a_token_and_lists_every_object_once_and_callouts_carry_basic_auth() {
    let sim = start_sim(SimConfig {
        providers: vec![billsync_sim::SimProvider::Zuora],
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
    assert!(
        reads["payments_naming_an_invoice"].as_u64().unwrap() > 0,
        "expand[]=paymentapplications: {reads}"
    );
    let expanded = reads["longest_invoice_expanded_items"].as_u64().unwrap();
    assert!(expanded <= 50, "an expansion is cut at pageSize: {reads}");
    assert!(
        reads["longest_invoice_items_listed"].as_u64().unwrap() >= expanded,
        "{reads}"
    );
    assert_eq!(reads["longest_invoice_items_name_it"], true, "{reads}");
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

/// A bearer token for the sim account's client credentials.
async fn token(sim: &SimHandle, api_key: &str) -> String {
    let (id, secret) = api_key.split_once(':').unwrap();
    let r: Value = reqwest::Client::new()
        .post(format!("http://{}/zuora/oauth/token", sim.addr))
        .form(&[
            ("client_id", id),
            ("client_secret", secret),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_owned()
}

async fn zget(sim: &SimHandle, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("http://{}/zuora{path}", sim.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The truth's objects of one list (the simulator's whole objects).
fn truth_of(sim: &SimHandle, stream: &str) -> Vec<(bool, Value)> {
    sim.sim.truth(false)["accounts"][0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["stream"] == stream)
        .map(|o| (o["deleted"].as_bool().unwrap(), o["object"].clone()))
        .collect()
}

fn items_of(o: &Value, field: &str) -> usize {
    o[field].as_array().map_or(0, Vec::len)
}

/// The simulator's Zuora as docs/providers/zuora.md describes Zuora: an expanded array holds
/// at most `pageSize` entries (default 10) and the rest is read from `invoice-items` (which
/// needs a filter); payments carry `paymentApplications` only when expanded; a canceled
/// account stays, not deleted; a canceled invoice has paid nothing.
#[tokio::test]
async fn zuora_sim_cuts_expansions_omits_applications_and_keeps_canceled_accounts() {
    let sim = start_sim(SimConfig {
        providers: vec![billsync_sim::SimProvider::Zuora],
        history: 300,
        seed: 3,
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(400);
    let account = sim.sim.accounts().remove(0);
    let token = token(&sim, &account.api_key).await;

    // Expansions cut at pageSize; the whole list from invoice-items.
    let invoices = truth_of(&sim, "invoices");
    let (_, long) = invoices
        .iter()
        .filter(|(_, o)| items_of(o, "invoiceItems") > 50)
        .max_by_key(|(_, o)| items_of(o, "invoiceItems"))
        .expect("an invoice with more than 50 items");
    let (id, n) = (long["id"].as_str().unwrap(), items_of(long, "invoiceItems"));
    let (_, by_default) = zget(
        &sim,
        &token,
        &format!("/object-query/invoices/{id}?expand[]=invoiceitems"),
    )
    .await;
    assert_eq!(
        items_of(&by_default, "invoiceItems"),
        10,
        "default pageSize 10"
    );
    let (_, at_50) = zget(
        &sim,
        &token,
        &format!("/object-query/invoices/{id}?expand[]=invoiceitems&pageSize=50"),
    )
    .await;
    assert_eq!(items_of(&at_50, "invoiceItems"), 50);
    let (_, unexpanded) = zget(&sim, &token, &format!("/object-query/invoices/{id}")).await;
    assert!(unexpanded.get("invoiceItems").is_none());
    let mut listed = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = zget(
            &sim,
            &token,
            &format!("/object-query/invoice-items?pageSize=50&filter[]=invoiceid.EQ:{id}{cursor}"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        listed.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].clone()),
        );
        match page["nextPage"].as_str() {
            Some(c) => cursor = format!("&cursor={}", urlencoding(c)),
            None => break,
        }
    }
    let whole: Vec<Value> = long["invoiceItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(listed.len(), n);
    assert_eq!(listed, whole, "every item, in the invoice's order");
    let (status, _) = zget(&sim, &token, "/object-query/invoice-items").await;
    assert_eq!(status, 400, "Zuora requires a filter[] on invoice items");

    // Payment applications only when expanded.
    let payments = truth_of(&sim, "payments");
    let (_, applied) = payments
        .iter()
        .find(|(_, p)| items_of(p, "paymentApplications") > 0)
        .expect("a payment applied to an invoice");
    let pid = applied["id"].as_str().unwrap();
    let (_, plain) = zget(&sim, &token, &format!("/object-query/payments/{pid}")).await;
    assert!(plain.get("paymentApplications").is_none(), "{plain}");
    assert!(
        plain.get("invoiceId").is_none(),
        "Zuora payments have no invoiceId"
    );
    let (_, expanded) = zget(
        &sim,
        &token,
        &format!("/object-query/payments/{pid}?expand[]=paymentapplications"),
    )
    .await;
    assert_eq!(
        expanded["paymentApplications"][0]["invoiceId"],
        applied["paymentApplications"][0]["invoiceId"]
    );

    // Canceled accounts stay (not deleted), canceled invoices paid nothing.
    let accounts = truth_of(&sim, "accounts");
    let (deleted, canceled) = accounts
        .iter()
        .find(|(_, a)| a["status"] == "Canceled")
        .expect("a canceled account");
    assert!(!deleted, "a canceled account is not deleted");
    let (status, _) = zget(
        &sim,
        &token,
        &format!(
            "/object-query/accounts/{}",
            canceled["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (_, void) = invoices
        .iter()
        .find(|(_, i)| i["status"] == "Canceled")
        .expect("a canceled invoice");
    assert_eq!(void["balance"], 0.0);
    assert_eq!(void["paymentAmount"], 0.0);
    sim.stop();
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What billsync must show for the simulator's objects of each finding: long invoices with
/// every line, payments naming their invoice, canceled invoices unpaid, canceled accounts
/// kept with their status. Returns how many of each it checked.
async fn check_findings(sim: &SimHandle, app: &TestApp, merchant: &str) -> [usize; 4] {
    let mut counts = [0; 4];
    for (_, inv) in truth_of(sim, "invoices") {
        let id = format!("zuora:{}", inv["id"].as_str().unwrap());
        let n = items_of(&inv, "invoiceItems");
        if n > 50 {
            let got = app.object(merchant, "invoices", &id).await.expect("stored");
            assert_eq!(items_of(&got["data"], "lines"), n, "{id}: lines");
            counts[0] += 1;
        }
        if inv["status"] == "Canceled" {
            let got = app.object(merchant, "invoices", &id).await.expect("stored");
            assert_eq!(got["data"]["status"], "void");
            assert_eq!(
                got["data"]["amount_paid"], 0,
                "{id}: a canceled invoice is not paid"
            );
            counts[1] += 1;
        }
    }
    for (_, pay) in truth_of(sim, "payments") {
        if let Some(invoice) = pay["paymentApplications"][0]["invoiceId"].as_str() {
            let id = format!("zuora:{}", pay["id"].as_str().unwrap());
            let got = app
                .object(merchant, "transactions", &id)
                .await
                .expect("stored");
            assert_eq!(
                got["data"]["invoice_id"],
                format!("zuora:{invoice}"),
                "{id}"
            );
            counts[2] += 1;
        }
    }
    for (_, acc) in truth_of(sim, "accounts") {
        if acc["status"] == "Canceled" {
            let id = format!("zuora:{}", acc["id"].as_str().unwrap());
            let got = app
                .object(merchant, "customers", &id)
                .await
                .expect("stored");
            assert_eq!(
                got["deleted"], false,
                "{id}: a canceled account is not deleted"
            );
            assert_eq!(got["data"]["status"], "canceled");
            counts[3] += 1;
        }
    }
    counts
}

/// Each finding through each path: a backfill of history (long invoices), callouts (thin:
/// each is a confirmation read of the object), then sweeps alone (every callout dropped).
/// After each, `verify` finds every object equal to the simulator's whole object.
async fn zuora_backfill_callouts_and_sweeps_keep_long_invoices_applied_payments_and_canceled_states(
    backend: Backend,
) {
    let db = TestDb::new(backend).await;
    let app = spawn_app_with(db, |c| {
        c.provider_sync = true;
        c.confirm_after_secs = 1;
        c.provider_timeout_secs = 2;
    })
    .await;
    let sim = start_tls_sim(SimConfig {
        providers: vec![billsync_sim::SimProvider::Zuora],
        history: 300,
        seed: 3,
        ..SimConfig::default()
    })
    .await;
    let base = format!("http://{}", app.addr);
    sim.sim
        .register_with(
            Target {
                url: base.clone(),
                token: TOKEN.into(),
            },
            &json!({"reconcile_interval_secs": 2, "rate_limit_per_sec": 200}),
        )
        .await
        .expect("register");
    let account = sim.sim.accounts().remove(0);
    let (conn, merchant) = (account.connection_id.unwrap(), account.merchant_id);
    let merchants = vec![merchant.clone()];

    // Backfill: history only.
    start_backfill(&app.client, &base, &conn).await;
    wait_backfill(&app.client, &base, &conn, 120, |b| b["state"] == "done").await;
    wait_converged(&sim, &app, &merchants, 120).await;
    let backfilled = check_findings(&sim, &app, &merchant).await;
    assert!(
        backfilled[0] > 0,
        "no long invoice in the history: {backfilled:?}"
    );

    // Callouts.
    sim.sim.step(300);
    wait_converged(&sim, &app, &merchants, 120).await;
    let called_out = check_findings(&sim, &app, &merchant).await;

    // Sweeps alone.
    sim.sim.set_knobs(&json!({"webhook_drop": 1.0})).unwrap();
    sim.sim.step(300);
    wait_converged(&sim, &app, &merchants, 120).await;
    let swept = check_findings(&sim, &app, &merchant).await;
    println!("zuora findings ({backend:?}) [long, void, applied, canceled]: backfill {backfilled:?}, callouts {called_out:?}, sweeps {swept:?}");
    for (i, what) in [
        "long invoices",
        "canceled invoices",
        "applied payments",
        "canceled accounts",
    ]
    .iter()
    .enumerate()
    {
        assert!(swept[i] > 0, "no {what} checked: {swept:?}");
    }
    assert!(called_out[2] > 0, "no callout brought an applied payment");
    assert!(
        swept[2] > called_out[2],
        "no sweep brought an applied payment"
    );
    sim.stop();
    app.stop().await;
}

/// The `billsync_webhooks_unmapped_total{provider="zuora"}` value in `/metrics`.
async fn unmapped(app: &TestApp) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("billsync_webhooks_unmapped_total{provider=\"zuora\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Finding (issue 19): an authenticated callout not in billsync's template (no
/// `notificationId`, another JSON shape, legacy XML) was answered 400 and lost. The delivery
/// id is the `Zuora-Notification-Id` header (retries are duplicates though `Zuora-Request-Id`
/// changes); every template is stored and answered 200, and one naming nothing is counted.
async fn zuora_callouts_in_any_template_are_stored_answered_200_and_counted(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .admin_post(
            "/admin/v1/connections",
            &json!({"merchant_id": "m_zuora_templates", "provider": "zuora", "account_id": "tenant_1",
                    "webhook_secrets": ["billsync:s3cret"], "api_key": "client:secret",
                    "api_base_url": "https://rest.example.com"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let conn = r.json::<Value>().await.unwrap()["connection_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let basic = base64::engine::general_purpose::STANDARD.encode("billsync:s3cret");
    let post =
        |body: &'static str, notification: Option<&'static str>, attempt: u32, auth: &str| {
            let mut req = app
                .client
                .post(app.url(&format!("/webhooks/zuora/{conn}")))
                .header("authorization", format!("Basic {auth}"))
                .header("zuora-request-id", format!("attempt-{attempt}"))
                .body(body);
            if let Some(n) = notification {
                req = req.header("zuora-notification-id", n);
            }
            async move {
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
    let before = unmapped(&app).await;
    let minimal = r#"{"eventType":"AccountUpdated","accountId":"8a8a0001"}"#;
    let (s, a) = post(minimal, Some("n-1"), 1, &basic).await;
    assert_eq!((s, a["duplicate"].clone()), (200, json!(false)), "{a}");
    // Zuora's retry: the same notification id, a new request id.
    let (s, a) = post(minimal, Some("n-1"), 2, &basic).await;
    assert_eq!((s, a["duplicate"].clone()), (200, json!(true)), "{a}");
    let xml = r#"<?xml version="1.0"?><callout><parameter name="InvoiceID">8a8ainv1</parameter></callout>"#;
    assert_eq!(post(xml, Some("n-2"), 1, &basic).await.0, 200);
    let nothing = r#"{"message":"hello from a template billsync does not know"}"#;
    assert_eq!(post(nothing, Some("n-3"), 1, &basic).await.0, 200);
    // Neither header nor body id: the body's digest dedupes its identical retries.
    let bare = "<callout><parameter name=\"Note\">x</parameter></callout>";
    assert_eq!(post(bare, None, 1, &basic).await.1["duplicate"], false);
    assert_eq!(post(bare, None, 2, &basic).await.1["duplicate"], true);
    // Authentication still decides first.
    let wrong = base64::engine::general_purpose::STANDARD.encode("billsync:wrong");
    assert_eq!(post(nothing, Some("n-4"), 1, &wrong).await.0, 401);
    app.settle().await;
    assert_eq!(app.raw_event_count(&conn).await, 4);
    let after = unmapped(&app).await;
    assert!(
        after - before >= 2.0,
        "the two callouts naming nothing are counted: {before} → {after}"
    );
    app.stop().await;
}
