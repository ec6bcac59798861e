//! The canonical model keeps what is stored: provider objects of all six providers (the
//! simulator's objects as each provider holds them, with their separately read parts merged
//! in, and Stripe's OpenAPI fixtures) map to exactly the canonical `data`, serialized text and
//! content hash of `tests/fixtures/canonical/golden.json`, which was recorded by the mappings
//! that built `data` with `json!` literals, before the typed model (`billsync::model::canonical`).
//! An upgrade therefore makes no new version of an unchanged object: replaying a database the
//! previous release made (`replay.db.zst`) changes nothing.
//!
//! `tests/fixtures/canonical/inputs.json` is regenerated (it should not need to be) with
//! `BILLSYNC_REGENERATE=1 cargo test --release --test it -- --ignored canonical_inputs`; the
//! golden file with `BILLSYNC_BLESS=1` on `canonical_data_and_hash_equal_the_golden_file` —
//! only ever from a mapping whose output is meant to change.

use std::collections::BTreeMap;
use std::path::PathBuf;

use billsync::model::content_hash;
use billsync::providers::{for_kind, ProviderKind};
use billsync_sim::{Clock, SimConfig};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_on, Backend, TestDb};
use crate::sim::start_sim;

/// The read time every input is mapped at (µs): orders objects that carry no time of their own.
const READ_AT: i64 = 1_800_000_000_000_000;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/canonical")
        .join(name)
}

fn provider(name: &str) -> ProviderKind {
    ProviderKind::ALL
        .into_iter()
        .find(|k| k.as_str() == name)
        .unwrap_or_else(|| panic!("unknown provider `{name}` in the inputs"))
}

/// What mapping one input gives, in full: the observation, nothing, or the error's text.
fn outcome(kind: ProviderKind, object: &Value) -> Value {
    match for_kind(kind).observe_object(object, READ_AT) {
        Ok(Some(o)) => json!({
            "object_type": o.object_type.as_str(),
            "provider_id": o.provider_id,
            "deleted": o.deleted,
            "order_key": o.order_key,
            "tie_rank": o.tie_rank,
            "provider_updated_at": o.provider_updated_at,
            "carried": o.carried,
            "data_text": o.data.to_string(),
            "content_hash": content_hash(&o.data, o.deleted),
        }),
        Ok(None) => json!({"none": true}),
        Err(e) => json!({"error": e.to_string()}),
    }
}

#[test]
fn canonical_data_and_hash_equal_the_golden_file() {
    let inputs: Value =
        serde_json::from_slice(&std::fs::read(fixture("inputs.json")).expect("inputs.json"))
            .expect("inputs are JSON");
    let inputs = inputs["inputs"].as_array().expect("an `inputs` list");
    let outcomes: Vec<Value> = inputs
        .iter()
        .map(|i| {
            let kind = provider(i["provider"].as_str().expect("provider"));
            json!({"provider": kind.as_str(), "source": i["source"], "outcome": outcome(kind, &i["object"])})
        })
        .collect();
    if std::env::var_os("BILLSYNC_BLESS").is_some() {
        // One outcome a line: a changed outcome is one changed line of the diff.
        let lines: Vec<String> = outcomes.iter().map(Value::to_string).collect();
        let text = format!("{{\"outcomes\": [\n{}\n]}}\n", lines.join(",\n"));
        std::fs::write(fixture("golden.json"), text).expect("write golden.json");
        return;
    }
    let golden: Value =
        serde_json::from_slice(&std::fs::read(fixture("golden.json")).expect("golden.json"))
            .expect("golden is JSON");
    let golden = golden["outcomes"].as_array().expect("an `outcomes` list");
    assert_eq!(golden.len(), outcomes.len(), "one outcome per input");
    let mut mapped: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (n, (got, want)) in outcomes.iter().zip(golden).enumerate() {
        // The text is what is stored and hashed: equal values are not enough (key order,
        // number forms, null versus absent).
        assert_eq!(
            got["outcome"]["data_text"], want["outcome"]["data_text"],
            "input {n} ({}, {}): stored `data` text changed",
            got["provider"], got["source"]
        );
        assert_eq!(got, want, "input {n}: the mapping's outcome changed");
        if let Some(t) = got["outcome"]["object_type"].as_str() {
            *mapped
                .entry((got["provider"].as_str().unwrap().to_owned(), t.to_owned()))
                .or_default() += 1;
        }
    }
    // The inputs cover every provider's every canonical kind (Paddle has no transactions:
    // its transactions are invoices).
    for kind in ProviderKind::ALL {
        for t in billsync::model::ObjectType::ALL {
            if kind == ProviderKind::Paddle && t == billsync::model::ObjectType::Transaction {
                continue;
            }
            let n = mapped
                .get(&(kind.as_str().to_owned(), t.as_str().to_owned()))
                .copied()
                .unwrap_or(0);
            assert!(
                n > 0,
                "no {} {} among the inputs",
                kind.as_str(),
                t.as_str()
            );
        }
    }
}

/// A database the previous release made (`tests/fixtures/canonical/replay.db.zst` and the key
/// its connection secrets are sealed with, `replay.db.key`: six providers' live webhooks into
/// SQLite, made at the commit that added the golden file, before the typed model): replaying
/// every connection over all time with this release's mappings changes no object and makes no
/// version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_database_of_the_previous_release_makes_no_new_version() {
    let db = TestDb::new(Backend::Sqlite).await;
    let packed = std::fs::read(fixture("replay.db.zst")).expect("replay.db.zst");
    let bytes = zstd::decode_all(&packed[..]).expect("replay.db.zst is zstd");
    std::fs::write(db.dir.path().join("billsync.db"), bytes).expect("write the database");
    std::fs::create_dir_all(db.dir.path().join("data")).expect("data dir");
    std::fs::copy(
        fixture("replay.db.key"),
        db.dir.path().join("data/secret.key"),
    )
    .expect("the key of the database");
    let app = spawn_app_on(db).await;
    let versions = "SELECT COUNT(*) FROM object_versions";
    let before = app.db.count(versions).await;
    assert!(before > 100, "only {before} versions in the fixture");
    let conns = app.get_json("/admin/v1/connections", 200).await;
    let ids: Vec<&str> = conns["data"]
        .as_array()
        .expect("connections")
        .iter()
        .filter_map(|c| c["connection_id"].as_str())
        .collect();
    assert_eq!(ids.len(), ProviderKind::ALL.len(), "{conns}");
    let range = json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"});
    let mut queued = 0;
    for id in &ids {
        let path = format!("/admin/v1/connections/{id}/replay");
        let mut dry = range.clone();
        dry["dry_run"] = json!(true);
        let r = app.admin_post(&path, &dry).await;
        assert_eq!(r.status().as_u16(), 200, "dry run of {id}");
        let preview: Value = r.json().await.expect("preview");
        assert_eq!(
            preview["changes"],
            json!([]),
            "{id} would change: {preview}"
        );
        assert_eq!(preview["unmappable"], 0, "{id}: {preview}");
        let r = app.admin_post(&path, &range).await;
        assert!(r.status().is_success(), "replay of {id}: {}", r.status());
        let out: Value = r.json().await.expect("replay answer");
        queued += out["replay"]["raw_events_queued"]
            .as_u64()
            .expect("raw_events_queued");
    }
    assert!(queued > 100, "only {queued} raw events replayed");
    app.settle().await;
    assert_eq!(
        app.db.count(versions).await,
        before,
        "the replay made versions"
    );
    app.stop().await;
}

/// Customer parts each provider keeps as separate resources, merged into their customer as the
/// API sub-reads do: (provider, part stream, the part's customer field, the name held under).
const PARTS: &[(&str, &str, &str, &str)] = &[
    ("paddle", "addresses", "customer_id", "addresses"),
    ("paddle", "businesses", "customer_id", "businesses"),
    (
        "maxio",
        "payment_profiles",
        "customer_id",
        "payment_profiles",
    ),
];

/// The simulator's objects of every provider as they go to `observe_object`: Maxio's wrapped in
/// their resource name, customers with their parts.
fn sim_inputs(truth: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for account in truth["accounts"].as_array().unwrap() {
        let p = account["provider"].as_str().unwrap();
        let objects = account["objects"].as_array().unwrap();
        let mut parts: BTreeMap<(String, &str), Vec<Value>> = BTreeMap::new();
        for o in objects {
            for (provider, stream, field, held) in PARTS {
                if *provider == p && o["stream"] == *stream {
                    let owner = match &o["object"][field] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    parts
                        .entry((owner, held))
                        .or_default()
                        .push(o["object"].clone());
                }
            }
        }
        for o in objects {
            let stream = o["stream"].as_str().unwrap();
            if PARTS.iter().any(|(pr, s, _, _)| *pr == p && *s == stream) {
                continue;
            }
            let mut object = o["object"].clone();
            let own_id = match &object["id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            for ((owner, held), items) in &parts {
                if *owner == own_id {
                    object[*held] = Value::Array(items.clone());
                }
            }
            // Maxio's objects are held wrapped in their resource name, as its API answers.
            if p == "maxio" && object.as_object().is_some_and(|m| m.len() != 1) {
                let resource = stream.strip_suffix('s').unwrap_or(stream);
                object = json!({ resource: object });
            }
            out.push(json!({"provider": p, "source": format!("sim:{stream}"), "object": object}));
        }
    }
    out
}

/// Stripe's OpenAPI fixtures, one of each resource (`tests/data/stripe-openapi-fixtures3.json`).
fn stripe_fixture_inputs() -> Vec<Value> {
    let text = include_str!("../data/stripe-openapi-fixtures3.json");
    let all: Value = serde_json::from_str(text).unwrap();
    all["resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| {
            matches!(
                name.as_str(),
                "customer" | "invoice" | "credit_note" | "subscription" | "charge" | "refund"
            )
        })
        .map(|(name, object)| {
            json!({"provider": "stripe", "source": format!("openapi:{name}"), "object": object})
        })
        .collect()
}

/// Shapes the simulator does not make: other API versions, legacy spellings, nulls and
/// absences, kinds it has not (Recurly credit invoices), errors.
fn edge_inputs() -> Vec<Value> {
    let edge = |p: &str, name: &str, object: Value| json!({"provider": p, "source": format!("edge:{name}"), "object": object});
    vec![
        edge(
            "stripe",
            "deleted_stub",
            json!({"id": "cus_1", "object": "customer", "deleted": true}),
        ),
        edge(
            "stripe",
            "customer_nulls",
            json!({"id": "cus_2", "object": "customer", "email": null,
            "address": {"line1": null, "country": "DE"}, "tax_ids": {"object": "list", "data": [
            {"type": "eu_vat", "value": "DE1"}, {"type": null}]}, "tax_exempt": "reverse"}),
        ),
        edge(
            "stripe",
            "invoice_2025",
            json!({"id": "in_2", "object": "invoice", "customer": {"id": "cus_2"},
            "parent": {"subscription_details": {"subscription": "sub_9"}}, "status": null,
            "currency": "jpy", "total_taxes": [{"amount": 7}, {"amount": 3}],
            "status_transitions": {"finalized_at": 1700000000}, "lines": [{"id": "il_1",
            "amount": 5, "quantity": null, "tax_amounts": [{"amount": 1}]}, {"id": "il_2", "period": {"start": 1}}]}),
        ),
        edge(
            "stripe",
            "invoice_bad_amount",
            json!({"id": "in_3", "object": "invoice", "total": "12.00"}),
        ),
        edge(
            "stripe",
            "invoice_bad_currency",
            json!({"id": "in_4", "object": "invoice", "currency": "euro"}),
        ),
        edge(
            "stripe",
            "subscription_item_periods",
            json!({"id": "sub_2", "object": "subscription",
            "items": {"data": [{"id": "si_1", "current_period_start": 1700000000,
            "current_period_end": 1702592000, "price": {"id": "price_1", "currency": "gbp"}, "quantity": 3}]}}),
        ),
        edge(
            "stripe",
            "refund_pending",
            json!({"id": "re_1", "object": "refund", "charge": null,
            "status": "pending", "amount": 100, "currency": "usd", "created": 1700000000}),
        ),
        edge(
            "stripe",
            "charge_refunded",
            json!({"id": "ch_1", "object": "charge", "amount": 100,
            "amount_refunded": 40, "status": null, "invoice": {"id": "in_1"}}),
        ),
        edge(
            "stripe",
            "credit_note_old_taxes",
            json!({"id": "cn_1", "object": "credit_note",
            "tax_amounts": [{"amount": 2}], "total": 12, "reason": null, "status": "void"}),
        ),
        edge(
            "recurly",
            "credit_invoice",
            json!({"id": "rxcred1", "object": "invoice", "type": "credit",
            "state": "closed", "origin": "refund", "currency": "usd", "previous_invoice_id": "rxinv1",
            "account": {"id": "o1xyzabc"}, "subtotal": -5.5, "tax": -0.5, "total": -6.0,
            "line_items": [{"id": "li2", "subtotal": -5.5, "tax": -0.5, "quantity": 2.0,
            "start_date": "2026-11-01"}], "created_at": "2026-11-01T10:00:00+02:00",
            "updated_at": "2026-11-01T10:05:00Z"}),
        ),
        edge(
            "recurly",
            "voided_credit_invoice",
            json!({"id": "rxcred2", "object": "invoice", "type": "credit",
            "state": "voided", "currency": "JPY", "total": 600, "line_items": [{"id": "li3", "amount": 600}]}),
        ),
        edge(
            "recurly",
            "account_billing_info",
            json!({"id": "a1", "object": "account", "company": "Co",
            "tax_exempt": true, "vat_number": "DE1", "deleted_at": "2026-01-01T00:00:00Z",
            "address": {"street1": null, "city": null},
            "billing_info": {"vat_number": "FR2", "address": {"country": "FR"}}}),
        ),
        edge(
            "recurly",
            "subscription_add_ons",
            json!({"id": "s1", "object": "subscription", "state": "expired",
            "currency": "eur", "quantity": 2.5, "plan": {"code": "gold"}, "canceled_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-02-01", "add_ons": [{"id": "ao1", "add_on": {"code": "seats"}, "quantity": 5}]}),
        ),
        edge(
            "recurly",
            "verify_transaction",
            json!({"id": "t1", "object": "transaction", "type": "verify"}),
        ),
        edge(
            "recurly",
            "transaction_no_currency",
            json!({"id": "t2", "object": "transaction", "type": "refund"}),
        ),
        edge(
            "paddle",
            "customer_parts",
            json!({"id": "ctm_01", "email": "a@example.com", "status": "active",
            "updated_at": "2025-01-01T00:00:00Z",
            "addresses": [{"id": "add_02", "status": "active", "first_line": "2 Main St", "region": null,
                "country_code": "DE", "updated_at": "2025-03-01T00:00:00Z"},
                {"id": "add_01", "status": "archived", "first_line": "1 Old St"}],
            "businesses": [{"id": "biz_2", "status": "active", "tax_identifier": "DE123"},
                {"id": "biz_1", "status": "active", "tax_identifier": ""}]}),
        ),
        edge(
            "paddle",
            "customer_event",
            json!({"id": "ctm_02", "status": "archived", "name": "N",
            "updated_at": "2025-01-01T00:00:00+01:00"}),
        ),
        edge(
            "paddle",
            "adjustment_items",
            json!({"id": "adj_01", "transaction_id": "txn_01",
            "status": "pending_approval", "currency_code": "usd", "totals": {"subtotal": "500", "tax": "50", "total": "550"},
            "items": [{"id": "adjitm_1", "type": "partial", "totals": {"subtotal": "500", "tax": "50"}}]}),
        ),
        edge(
            "paddle",
            "transaction_legacy_total",
            json!({"id": "txn_02", "status": "past_due",
            "details": {"totals": {"total": "1190"}, "line_items": [{"id": "txnitm_1", "quantity": 1}]},
            "billing_period": {"starts_at": "2025-11-01T00:00:00.5+01:00"}}),
        ),
        edge(
            "paddle",
            "transaction_bad_amount",
            json!({"id": "txn_03", "status": "billed",
            "details": {"totals": {"tax": "1.90"}}}),
        ),
        edge(
            "chargebee",
            "customer_company",
            json!({"object": "customer", "id": "c1", "company": "Co",
            "taxability": "exempt", "vat_number": "DE1", "billing_address": {"state": "Bavaria", "zip": "1"},
            "resource_version": 1700000000123_i64, "deleted": true}),
        ),
        edge(
            "chargebee",
            "subscription_plan",
            json!({"object": "subscription", "id": "s1", "status": "cancelled",
            "plan_id": "basic", "plan_quantity": "2", "cancelled_at": 1700000000, "updated_at": 1700000000}),
        ),
        edge(
            "chargebee",
            "subscription_unknown_status",
            json!({"object": "subscription", "id": "s2", "status": "weird"}),
        ),
        edge(
            "chargebee",
            "credit_note_taxes",
            json!({"object": "credit_note", "id": "cn1", "status": "voided",
            "create_reason_code": "Other", "taxes": [{"amount": 5}], "line_items": [{"id": "l1",
            "amount": "100", "tax_amount": 5, "date_from": 1700000000}]}),
        ),
        edge(
            "chargebee",
            "refund_linked",
            json!({"object": "transaction", "id": "t1", "type": "refund",
            "currency_code": "eur", "amount": 100, "linked_invoices": [{"invoice_id": 42}]}),
        ),
        edge(
            "maxio",
            "customer_profiles",
            json!({"customer": {"id": 7, "first_name": "Ada",
            "tax_exempt": "true", "address": "1 Warehouse Way", "country": "NL",
            "updated_at": "2024-06-20 12:00:00 -0400", "payment_profiles": [
            {"id": 71, "billing_address": "New St 2", "billing_country": "FR"}]}}),
        ),
        edge(
            "maxio",
            "subscription_price_point",
            json!({"subscription": {"id": 8, "state": "on_hold",
            "product_price_point_id": 99, "product": {"id": 5}, "customer": {"id": 7},
            "delayed_cancel_at": "2024-07-01T00:00:00-04:00", "currency": "usd"}}),
        ),
        edge(
            "maxio",
            "invoice_customer_embedded",
            json!({"invoice": {"uid": "inv_1", "status": "canceled",
            "currency": "JPY", "total_amount": "1000.0", "customer": {"id": 7},
            "line_items": [{"uid": "li_1", "description": "D", "quantity": "2.5",
            "period_range_start": "2024-01-15T10:00:00Z"}]}}),
        ),
        edge(
            "maxio",
            "transaction_info",
            json!({"transaction": {"id": 9, "transaction_type": "info"}}),
        ),
        edge(
            "maxio",
            "transaction_refund",
            json!({"transaction": {"id": 10, "type": "refund",
            "success": "false", "amount_in_cents": 500, "invoice_uid": "inv_1", "customer_id": 7,
            "created_at": "2024-06-20T12:00:00-04:00"}}),
        ),
        edge(
            "zuora",
            "account_legacy",
            json!({"Id": "8a1", "AccountNumber": "A1", "Name": "Legacy",
            "Status": "Suspended", "VATId": "GB9", "BillToContact": {"personalEmail": "p@x", "country": "GB"},
            "UpdatedDate": "2026-11-01T02:00:00-08:00"}),
        ),
        edge(
            "zuora",
            "account_no_status",
            json!({"id": "8a2", "accountNumber": "A2"}),
        ),
        edge(
            "zuora",
            "invoice_no_payment_amount",
            json!({"id": "i1", "invoiceNumber": "INV1",
            "status": "Posted", "currency": "EUR", "amount": 10.0, "balance": 4.0,
            "invoiceItems": [{"id": "ii1", "subscriptionNumber": "S1", "chargeName": "C", "quantity": 1.0,
            "amountWithoutTax": 8.0, "taxAmount": 2.0, "serviceStartDate": "2026-01-01"}]}),
        ),
        edge(
            "zuora",
            "credit_memo_legacy",
            json!({"Id": "cm1", "MemoNumber": "CM1", "Status": "Canceled",
            "Currency": "USD", "Amount": 3.0, "ReasonCode": "Goodwill"}),
        ),
        edge(
            "zuora",
            "subscription_cancelled",
            json!({"subscriptionNumber": "S1", "status": "Cancelled",
            "subscriptionEndDate": "2026-12-01", "ratePlans": [{"id": "rp1", "productRatePlanId": "prp1",
            "ratePlanCharges": [{"quantity": 4}]}, {"id": "rp2"}]}),
        ),
        edge(
            "zuora",
            "refund_no_currency",
            json!({"id": "r1", "refundNumber": "R1"}),
        ),
        edge(
            "zuora",
            "payment_applied",
            json!({"id": "p1", "paymentNumber": "P1", "currency": "usd",
            "amount": 12.5, "status": "Error", "paymentApplications": [{"invoiceId": "i1"}],
            "createdDate": "2026-01-01T00:00:00Z"}),
        ),
    ]
}

#[tokio::test]
#[ignore = "regenerates the committed inputs; run by hand with BILLSYNC_REGENERATE=1"]
async fn canonical_inputs() {
    if std::env::var_os("BILLSYNC_REGENERATE").is_none() {
        return;
    }
    let sim = start_sim(SimConfig {
        accounts: ProviderKind::ALL.len() * 2,
        seed: 22,
        clock: Clock::Fixed(1_750_000_000),
        history: 40,
        providers: billsync_sim::SimProvider::ALL.to_vec(),
        ..SimConfig::default()
    })
    .await;
    sim.sim.step(60);
    let mut inputs = stripe_fixture_inputs();
    inputs.extend(edge_inputs());
    inputs.extend(sim_inputs(&sim.sim.truth(false)));
    sim.stop();
    let text = serde_json::to_string(&json!({ "inputs": inputs })).unwrap();
    std::fs::create_dir_all(fixture("")).unwrap();
    std::fs::write(fixture("inputs.json"), text + "\n").expect("write inputs.json");
}
