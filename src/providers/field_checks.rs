//! Test support (compiled for tests only): checks what a provider made against what a test
//! expects, naming what differs: the envelope it reads from webhooks ([`assert_envelopes`]),
//! the object a thin event names instead of carrying it ([`assert_thin`]), the canonical
//! fields of a mapped object ([`assert_fields`], [`assert_observed`]) and the path and query
//! of an API request ([`assert_request`], [`assert_query`]). Provider tests state an
//! expectation as one table rather than an assertion a field.

use serde_json::Value;

use super::{ApiRequest, Envelope, Provider};
use crate::model::{ObjectType, Observation};

/// `provider` reads `body`'s envelope as `(event_id, event_type, occurred_at)` and refuses
/// every body of `bad` as no event.
#[track_caller]
pub(crate) fn assert_envelopes(
    provider: &dyn Provider,
    body: &[u8],
    (event_id, event_type, occurred_at): (&str, &str, i64),
    bad: &[&[u8]],
) {
    let expected = Envelope {
        event_id: event_id.to_owned(),
        event_type: event_type.to_owned(),
        occurred_at,
    };
    assert_eq!(provider.envelope(body), Ok(expected));
    for body in bad {
        let read = provider.envelope(body);
        assert!(read.is_err(), "{}: {read:?}", String::from_utf8_lossy(body));
    }
}

/// `provider` maps nothing from the event `body` and names the object `object_type` keyed
/// `provider_id` to fetch instead (a thin event, or one that shows its object only in part).
#[track_caller]
pub(crate) fn assert_thin(
    provider: &dyn Provider,
    body: &[u8],
    object_type: ObjectType,
    provider_id: &str,
) {
    assert_eq!(provider.observe(body), Ok(None));
    assert_eq!(
        provider.thin_reference(body),
        Some((object_type, provider_id.to_owned()))
    );
}

/// Every field of `expected` (a JSON object) has its value in `data`; a key starting with
/// `/` is a JSON pointer into `data` (`/lines/0/amount`), and a field `data` lacks reads as
/// `null`, as indexing does.
#[track_caller]
pub(crate) fn assert_fields(data: &Value, expected: Value) {
    let Value::Object(fields) = expected else {
        panic!("expected fields are a JSON object, not {expected}");
    };
    for (key, want) in &fields {
        let got = if key.starts_with('/') {
            data.pointer(key)
        } else {
            data.get(key)
        };
        assert_eq!(got.unwrap_or(&Value::Null), want, "field `{key}`");
    }
}

/// `obs` is the `object_type` keyed `provider_id`, and its data has `fields`.
#[track_caller]
pub(crate) fn assert_observed(
    obs: &Observation,
    object_type: ObjectType,
    provider_id: &str,
    fields: Value,
) {
    assert_eq!(
        (obs.object_type, obs.provider_id.as_str()),
        (object_type, provider_id)
    );
    assert_fields(&obs.data, fields);
}

/// `request` reads `path`, with every pair of `query` in its query ([`assert_query`]).
#[track_caller]
pub(crate) fn assert_request(request: &ApiRequest, path: &str, query: &str) {
    assert_eq!(request.path, path);
    assert_query(request, query);
}

/// `request` has every pair of `query` in its query, among others. `query` is written as a
/// query string, unencoded (`limit=100&filter[]=updateddate.GE:…`); a pair's value runs from
/// its first `=` to the next `&`.
#[track_caller]
pub(crate) fn assert_query(request: &ApiRequest, query: &str) {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        assert!(
            request.query.iter().any(|(k, v)| k == key && v == value),
            "no `{key}={value}` in {:?}",
            request.query
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_are_read_by_name_or_pointer_and_absent_ones_are_null() {
        let data = json!({"total": 5, "lines": [{"amount": 3}], "memo": null});
        assert_fields(
            &data,
            json!({"total": 5, "/lines/0/amount": 3, "memo": null, "absent": null}),
        );
        for wrong in [
            json!({"total": 6}),
            json!({"/lines/1/amount": 3}),
            json!({"absent": 0}),
        ] {
            let caught = std::panic::catch_unwind(|| assert_fields(&data, wrong.clone()));
            assert!(caught.is_err(), "{wrong}");
        }
    }

    #[test]
    fn an_envelope_is_read_whole_and_bad_bodies_are_refused() {
        let stripe = crate::providers::for_kind(crate::model::ProviderKind::Stripe);
        let body = br#"{"id":"evt_1","object":"event","type":"x.y","created":5}"#;
        assert_envelopes(stripe, body, ("evt_1", "x.y", 5_000_000), &[b"[]", b"{}"]);
        for (expected, bad) in [
            (("evt_2", "x.y", 5_000_000), &[][..]),
            (("evt_1", "x.y", 5_000_000), &[&body[..]][..]),
        ] {
            let check = || assert_envelopes(stripe, body, expected, bad);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
            assert!(caught.is_err(), "{expected:?}");
        }
    }

    #[test]
    fn a_query_has_each_pair_named_among_others() {
        let request = ApiRequest {
            path: "/v1/x".into(),
            query: vec![("limit".into(), "10".into()), ("a".into(), "b".into())],
        };
        assert_query(&request, "a=b&limit=10");
        assert_query(&request, "");
        for wrong in ["limit=11", "a", "a=b=", "limit=10&x=y"] {
            let caught = std::panic::catch_unwind(|| assert_query(&request, wrong));
            assert!(caught.is_err(), "{wrong}");
        }
    }
}
