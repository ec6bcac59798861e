//! Test support (compiled for tests only): runs one recorded webhook vector
//! (`tests/data/<provider>_webhook_vectors.json`: headers, body, secrets, time, tolerance,
//! and the verdict of the provider's own code) through a provider's `verify`. Every
//! provider's vector test reads its file with [`vectors`] and checks [`verify`]'s answer.

use axum::http::{HeaderMap, HeaderName};
use serde_json::Value;

use super::{Provider, VerifyError};

/// The `vectors` of a vector file, at least `min` of them.
pub(crate) fn vectors(text: &str, min: usize) -> Vec<Value> {
    let all: Value = serde_json::from_str(text).expect("a vector file is JSON");
    let vectors = all["vectors"]
        .as_array()
        .expect("a vector file has `vectors`")
        .clone();
    assert!(vectors.len() >= min, "only {} vectors", vectors.len());
    vectors
}

/// `provider.verify` of the vector as it was sent.
pub(crate) fn verify(provider: &dyn Provider, v: &Value) -> Result<(), VerifyError> {
    let mut headers = HeaderMap::new();
    for (k, val) in v["headers"].as_object().into_iter().flatten() {
        headers.insert(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).expect("a header name"),
            val.as_str()
                .expect("a header value")
                .parse()
                .expect("a header value"),
        );
    }
    let secrets: Vec<String> = v["secrets"]
        .as_array()
        .expect("a vector has `secrets`")
        .iter()
        .map(|s| s.as_str().expect("a secret is a string").to_owned())
        .collect();
    provider.verify(
        &headers,
        v["body"]
            .as_str()
            .expect("a vector has a `body`")
            .as_bytes(),
        &secrets,
        v["now"].as_i64().expect("a vector has `now`"),
        v["tolerance_s"]
            .as_i64()
            .expect("a vector has `tolerance_s`"),
    )
}

/// Whether the vector's recorded verdict is `valid`.
pub(crate) fn expected_valid(v: &Value) -> bool {
    v["expected"] == "valid"
}

/// Every vector of `text` (at least `min`) gets its recorded verdict from `provider`: `Ok`
/// for a valid one, else `refusal`.
pub(crate) fn assert_verdicts(
    provider: &dyn Provider,
    text: &str,
    min: usize,
    refusal: VerifyError,
) {
    for v in &vectors(text, min) {
        let expected = if expected_valid(v) {
            Ok(())
        } else {
            Err(refusal)
        };
        assert_eq!(verify(provider, v), expected, "{}", v["id"]);
    }
}
