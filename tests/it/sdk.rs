//! Running the providers' official Python SDKs (`tests/py/`) against `billsync sim`, and the
//! check every SDK listing shares: each live object of each stream exactly once.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Runs `tests/py/{script}` with the test Python, which must have `module` installed; its
/// stdout is one JSON document.
pub async fn run_sdk_script(script: &str, module: &str, args: &[&str]) -> Value {
    let python = crate::helpers::python_with(module);
    let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The ids of the first account's live objects, by stream.
pub fn live_ids_by_stream(truth: &Value) -> HashMap<String, HashSet<String>> {
    let mut expected: HashMap<String, HashSet<String>> = HashMap::new();
    for o in truth["accounts"][0]["objects"].as_array().unwrap() {
        if !o["deleted"].as_bool().unwrap() {
            expected
                .entry(o["stream"].as_str().unwrap().into())
                .or_default()
                .insert(o["id"].as_str().unwrap().into());
        }
    }
    expected
}

/// Asserts that `listed` (ids by stream) holds each id of `expected` exactly once and no
/// other, and that no expected stream went unlisted; returns how many were listed.
pub fn assert_listed_once(listed: &Value, mut expected: HashMap<String, HashSet<String>>) -> usize {
    let mut total = 0;
    for (stream, ids) in listed.as_object().expect("ids by stream") {
        let ids: Vec<String> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            ids.len(),
            unique.len(),
            "{stream}: an object was listed twice"
        );
        assert_eq!(
            unique,
            expected.remove(stream).unwrap_or_default(),
            "{stream}: not every object exactly once"
        );
        total += ids.len();
    }
    assert!(
        expected.is_empty(),
        "streams never listed: {:?}",
        expected.keys()
    );
    total
}

/// [`assert_listed_once`] against every live object of the first account.
pub fn assert_each_listed_once(truth: &Value, listed: &Value) -> usize {
    assert_listed_once(listed, live_ids_by_stream(truth))
}
