//! Stripe signature vectors made by Stripe's own code (the official `stripe` Python package;
//! see `scripts/gen-stripe-vectors.py`), checked against billsync's verifier and signer.

use billsync::providers::stripe::{sign, SIGNATURE};
use billsync::providers::VerifyError;
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let text = include_str!("../data/stripe_webhook_vectors.json");
    let file: Value = serde_json::from_str(text).expect("vectors are JSON");
    file["vectors"]
        .as_array()
        .expect("a `vectors` list")
        .clone()
}

#[test]
fn stripe_sdk_vectors_get_the_sdk_verdict() {
    let vectors = vectors();
    assert!(vectors.len() >= 10, "the vector file is incomplete");
    for v in &vectors {
        let id = v["id"].as_str().unwrap();
        let result = SIGNATURE.verify(
            v["header"].as_str().unwrap(),
            v["body"].as_str().unwrap().as_bytes(),
            &[v["secret"].as_str().unwrap().to_owned()],
            v["now"].as_i64().unwrap(),
            v["tolerance_s"].as_i64().unwrap(),
        );
        let expected = match v["reason"].as_str().unwrap() {
            "valid" => Ok(()),
            "stale_timestamp" => Err(VerifyError::StaleTimestamp),
            _ => Err(VerifyError::InvalidSignature),
        };
        assert_eq!(result, expected, "vector {id}");
        assert_eq!(result.is_ok(), v["expected"] == "valid", "vector {id}");
    }
}

#[test]
fn own_signer_reproduces_the_sdk_headers_byte_for_byte() {
    let mut checked = 0;
    for v in vectors() {
        let header = v["header"].as_str().unwrap();
        let single_v1 = header.matches("v1=").count() == 1 && header.split(',').count() == 2;
        if v["expected"] != "valid" || !single_v1 {
            continue;
        }
        let t: i64 = header
            .split(',')
            .next()
            .unwrap()
            .trim_start_matches("t=")
            .parse()
            .unwrap();
        let ours = sign(
            v["secret"].as_str().unwrap(),
            t,
            v["body"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(ours, header, "vector {}", v["id"]);
        checked += 1;
    }
    assert!(checked >= 2);
}
