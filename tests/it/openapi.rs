//! The API description: `GET /openapi.json` names every route the server has, passes
//! `openapi-spec-validator`, equals the committed `docs/openapi.json`, and schemathesis,
//! fuzzing a live node from it on both stores, finds no 5xx and no answer that breaks it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{python_with, spawn_app, Backend, TOKEN};

/// Every route of the public API as the router serves it (method, OpenAPI path).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/admin/v1/connections"),
    ("get", "/admin/v1/connections"),
    ("get", "/admin/v1/connections/{id}"),
    ("patch", "/admin/v1/connections/{id}"),
    ("post", "/admin/v1/connections/{id}/pause"),
    ("post", "/admin/v1/connections/{id}/resume"),
    ("post", "/admin/v1/connections/{id}/backfill"),
    ("post", "/admin/v1/connections/{id}/resync"),
    ("post", "/admin/v1/connections/{id}/replay"),
    ("post", "/admin/v1/connections/{id}/refetch"),
    ("delete", "/admin/v1/connections/{id}"),
    ("get", "/admin/v1/cluster"),
    ("post", "/admin/v1/tokens"),
    ("get", "/admin/v1/tokens"),
    ("delete", "/admin/v1/tokens/{token_id}"),
    ("get", "/admin/v1/audit"),
    ("get", "/admin/v1/dead_letters"),
    ("post", "/admin/v1/dead_letters/{id}/retry"),
    ("post", "/admin/v1/dead_letters/{id}/discard"),
    ("post", "/webhooks/{provider}/{connection_id}"),
    ("get", "/v1/merchants/{merchant_id}/{collection}"),
    ("get", "/v1/merchants/{merchant_id}/{collection}/{id}"),
    (
        "get",
        "/v1/merchants/{merchant_id}/{collection}/{id}/versions",
    ),
    ("get", "/v1/merchants/{merchant_id}/changes"),
    ("get", "/v1/merchants/{merchant_id}/sync-status"),
    ("get", "/v1/merchants/{merchant_id}/quality_findings"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_valid_complete_and_committed() {
    let app = spawn_app(Backend::Sqlite).await;
    // No token needed.
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let served = r.text().await.unwrap();
    let doc: Value = serde_json::from_str(&served).expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "patch", "put", "delete"].contains(&k.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, expected,
        "the document's routes differ from the server's"
    );
    // Every operation answers errors in the one error shape of docs/api.md.
    for (method, path) in &expected {
        let responses = doc["paths"][path][method]["responses"].as_object().unwrap();
        for (status, answer) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    answer["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorOut",
                    "{method} {path} {status}"
                );
            }
        }
    }

    // The committed copy is what the code serves (regenerate: `billsync openapi --out
    // docs/openapi.json`).
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .expect("docs/openapi.json is committed");
    assert!(
        committed == served,
        "docs/openapi.json is stale: run `cargo run --release -- openapi --out docs/openapi.json` and commit it"
    );

    // And so is the Markdown reference written from it.
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/api-reference.md"
    ))
    .expect("docs/api-reference.md is committed");
    assert!(
        reference == billsync::http::openapi_reference::markdown(&doc),
        "docs/api-reference.md is stale: run `cargo run --release -- openapi --markdown --out docs/api-reference.md` and commit it"
    );

    // openapi-spec-validator (PyPI) accepts it as OpenAPI 3.1.
    let python = python_with("openapi_spec_validator");
    let file = app.db.dir.path().join("openapi.json");
    std::fs::write(&file, &served).unwrap();
    let out = tokio::process::Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .await
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
}

/// Schemathesis generates requests for every operation from the served document (valid and
/// invalid inputs, with the admin token) against a live node, and checks every answer: no
/// 5xx, a documented status, the documented content type and body schema.
async fn schemathesis_finds_nothing(backend: Backend) {
    let python = python_with("schemathesis");
    let app = spawn_app(backend).await;
    // Something to find: a connection and an object, so not every call is a 404.
    let conn = app.stripe_connection().await;
    // And one for `DELETE /admin/v1/connections/{id}` alone: deleting `conn` in an early phase
    // would leave every later call on it a `409` (a deleted connection), so what the fuzzing
    // phase reaches would depend on whether it happens to create a valid connection itself.
    let doomed = app.stripe_connection().await;
    let body = crate::helpers::stripe_event(
        "evt_openapi_1",
        "customer.created",
        crate::helpers::now_secs(),
        crate::helpers::customer("cus_openapi_1", "a@example.com"),
    );
    app.send(&conn, &body, 200).await;
    app.settle().await;

    // Half the generated ids are these real ones, so calls reach past the 404s: `conn` for every
    // operation on a connection but its deletion, which gets `doomed`.
    let config = app.db.dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[dictionaries.connections]
values = ["{conn}"]
[dictionaries.doomed]
values = ["{doomed}"]
[dictionaries.merchants]
values = ["{merchant}"]
[dictionaries.objects]
values = ["stripe:cus_openapi_1"]

[[operations]]
include-path-regex = "^/admin/v1/connections/"
exclude-method = "DELETE"
parameters = {{ "path.id" = {{ dictionary = "connections", probability = 0.5 }} }}

[[operations]]
include-path-regex = "^/admin/v1/connections/"
include-method = "DELETE"
parameters = {{ "path.id" = {{ dictionary = "doomed", probability = 0.5 }} }}

[[operations]]
include-path-regex = "^/v1/merchants/"
parameters = {{ "path.merchant_id" = {{ dictionary = "merchants", probability = 0.5 }}, "path.id" = {{ dictionary = "objects", probability = 0.5 }} }}

[[operations]]
include-path-regex = "^/webhooks/"
parameters = {{ "path.connection_id" = {{ dictionary = "connections", probability = 0.5 }} }}
"#,
            conn = conn.id,
            doomed = doomed.id,
            merchant = conn.merchant_id,
        ),
    )
    .unwrap();
    let report = app.db.dir.path().join("schemathesis");
    let schemathesis = std::path::Path::new(&python).with_file_name("schemathesis");
    let out = tokio::process::Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,negative_data_rejection",
        ])
        .args([
            "--max-examples",
            "30",
            "--seed",
            "20261207",
            // One worker: with two, schemathesis's threads race in Python (hypothesis's lambda
            // descriptions, a lazy import) and report "Runtime Error"s that are not billsync's.
            "--workers",
            "1",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--request-timeout", "10", "--no-color"])
        .args(["--report", "ndjson", "--report-dir"])
        .arg(&report)
        .env("NO_COLOR", "1")
        // It keeps a cache (`.schemathesis/`) in its working directory: not in the checkout.
        .current_dir(app.db.dir.path())
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = stdout.lines().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    eprintln!("schemathesis on {backend:?}:\n{}", tail.join("\n"));
    assert!(
        out.status.success(),
        "schemathesis found failures on {backend:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran, and reached past authentication and lookups: count the answers it got
    // by status from its event log.
    let log: String = std::fs::read_dir(&report)
        .expect("schemathesis wrote its report")
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for part in log.split("\"status_code\":").skip(1) {
        let digits: String = part
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(status) = digits.parse() {
            *by_status.entry(status).or_default() += 1;
        }
    }
    let requests: usize = by_status.values().sum();
    eprintln!("schemathesis on {backend:?}: {requests} requests, answers by status {by_status:?}");
    assert!(requests > 500, "schemathesis made only {requests} requests");
    for status in [200, 202, 400, 404] {
        assert!(
            by_status.contains_key(&status),
            "no {status} answer among schemathesis's requests: {by_status:?}"
        );
    }
    app.stop().await;
}

crate::both_backends!(schemathesis_finds_nothing);

/// What the document says `data` is holds for what the mappings really make: each canonical
/// `data` of the golden file (tests/fixtures/canonical, 1,372 provider objects of all six
/// providers) is exactly one of the alternatives of `ObjectOut.data`, the kind its
/// `object_type` names, and so is `{}`, the `data` of an object deleted before any of its
/// content was seen (a deletion stub's `null` is never stored). Checked with `jsonschema`
/// (PyPI, JSON Schema 2020-12), the validator family schemathesis checks answers with.
#[test]
fn every_canonical_data_is_the_kind_its_object_type_names() {
    let golden: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/canonical/golden.json"
        ))
        .expect("golden.json"),
    )
    .expect("golden.json is JSON");
    let mut samples: Vec<Value> = golden["outcomes"]
        .as_array()
        .expect("an `outcomes` list")
        .iter()
        .filter_map(|o| {
            let outcome = &o["outcome"];
            let data: Value = serde_json::from_str(outcome["data_text"].as_str()?).ok()?;
            (!data.is_null())
                .then(|| serde_json::json!({"object_type": outcome["object_type"], "data": data}))
        })
        .collect();
    assert!(samples.len() > 1000, "only {} samples", samples.len());
    samples.push(serde_json::json!({"object_type": null, "data": {}}));

    let dir = tempfile::tempdir().expect("temp dir");
    let doc = dir.path().join("openapi.json");
    std::fs::write(&doc, billsync::http::openapi::document_json()).unwrap();
    let input = dir.path().join("samples.json");
    std::fs::write(&input, serde_json::to_string(&samples).unwrap()).unwrap();
    // Prints one line per sample that is not exactly its own kind, then the count checked.
    const SCRIPT: &str = r##"
import json, sys
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
doc = json.load(open(sys.argv[1]))
registry = Registry().with_resource("urn:doc", Resource(doc, DRAFT202012))
schema = doc["components"]["schemas"]["ObjectOut"]["properties"]["data"]
kinds = {"customer": "Customer", "invoice": "Invoice", "credit_note": "CreditNote",
         "subscription": "Subscription", "transaction": "Transaction", None: "DeletedUnseen"}
def name(alt):
    return alt["$ref"].rsplit("/", 1)[-1] if "$ref" in alt else alt.get("title")
def rebased(s):
    return json.loads(json.dumps(s).replace('"#/components', '"urn:doc#/components'))
alternatives = [(name(a), Draft202012Validator(rebased(a), registry=registry)) for a in schema["oneOf"]]
whole = Draft202012Validator(rebased(schema), registry=registry)
samples = json.load(open(sys.argv[2]))
for s in samples:
    matched = [n for n, v in alternatives if v.is_valid(s["data"])]
    if matched != [kinds[s["object_type"]]] or not whole.is_valid(s["data"]):
        print("NOT ITS KIND", s["object_type"], matched, json.dumps(s["data"])[:300])
print("checked", len(samples))
"##;
    let out = std::process::Command::new(crate::helpers::python_with("jsonschema"))
        .args(["-c", SCRIPT])
        .arg(&doc)
        .arg(&input)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("checked {}", samples.len()),
        "some data is not (only) the kind its object_type names"
    );
}
