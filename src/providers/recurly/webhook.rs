//! Recurly webhooks: the signature, checked at intake before anything is stored, and the thin
//! JSON envelope (`parse_event`, also of swept objects' synthetic envelopes). Signatures:
//! `recurly-signature: <unix ms>,<hex>[,<hex>...]`, HMAC-SHA256 over `"{ms}.{raw body}"` keyed
//! with the endpoint's secret key string. Mirrors recurly-client-ruby
//! `Recurly::Webhooks.verify_signature`: the timestamp (milliseconds) is checked first, past
//! and future, then any signature may match any active secret, compared in constant time.

use serde_json::Value;

use super::api::SWEEP_OBJECT_TYPE;
use crate::model::time::parse_rfc3339;
use crate::providers::major_units::Fields;
use crate::providers::signing::{hex_mac, hex_signature, Replay, Scheme};
use crate::providers::{CarriedEvent, Envelope, ParseError, VerifyError};

/// The `recurly-signature` header: the timestamp (milliseconds) is checked first, past and
/// future, then any signature may match any active secret.
pub const SIGNATURE: Scheme = Scheme::timestamped(read_header, 1000, ".", Replay::BothWaysFirst);

/// `<unix ms>,<hex>[,<hex>...]`: a timestamp of digits alone, then the signatures.
fn read_header(header: &str) -> Result<(&str, i64, Vec<[u8; 32]>), VerifyError> {
    let mut parts = header.split(',');
    let timestamp = parts.next().unwrap_or("").trim();
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::InvalidSignature);
    }
    let ms: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::InvalidSignature)?;
    let signatures = parts.filter_map(|s| hex_signature(s.trim())).collect();
    Ok((timestamp, ms, signatures))
}

/// Makes a `recurly-signature` header value (for tests; the simulator signs with its own code).
pub fn sign(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let ms = timestamp_ms.to_string();
    format!("{ms},{}", hex_mac(secret, &[ms.as_bytes(), b".", body]))
}

/// A Recurly webhook (or swept object envelope): its envelope (the type is
/// `{object_type}.{event_type}`) and, for a swept one, the object.
pub(super) fn parse_event(body: &[u8]) -> Result<CarriedEvent, ParseError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("body is not JSON (XML webhooks are unsigned): {e}")))?;
    let e = Fields(&value);
    let text = |key: &str| {
        e.s(key)
            .filter(|s| s.len() <= 255)
            .map(str::to_owned)
            .ok_or_else(|| ParseError(format!("event has no string `{key}`")))
    };
    let id = text("id")?;
    let object_type = text("object_type")?;
    let event_type = text("event_type")?;
    let occurred_at = e
        .s("event_time")
        .and_then(parse_rfc3339)
        .ok_or_else(|| ParseError("event has no RFC 3339 `event_time`".into()))?;
    let object = if object_type == SWEEP_OBJECT_TYPE {
        Some(
            e.get("object")
                .filter(|o| o.is_object())
                .cloned()
                .ok_or_else(|| ParseError("swept event has no `object`".into()))?,
        )
    } else {
        None
    };
    let envelope = Envelope {
        event_id: id,
        event_type: format!("{object_type}.{event_type}"),
        occurred_at,
    };
    Ok(CarriedEvent { envelope, object })
}

#[cfg(test)]
mod tests {
    use super::super::tests::OFFICIAL_BODY;
    use super::super::INFO;
    use super::*;
    use crate::providers::field_checks::assert_envelopes;
    use proptest::prelude::*;

    #[test]
    fn official_ruby_spec_vector_is_valid_at_its_time_and_stale_later() {
        let secret = "354fab5bd35f5a0d50845ee7e30165244468b13c2c343f104e4e730a59326d9d".to_owned();
        let body = br#"{"id":"rjxwmwedwqug","object_type":"account","site_id":"qc326l1hl8k9","event_type":"created","event_time":"2022-09-13T21:18:40Z","account_code":"adfas23zzz14123"}"#;
        let header =
            "1663103925004,ad24699f3beaa24c9af2cc7ada3ce4c835da0090194241b9d3add83d27f14bc3";
        assert_eq!(
            SIGNATURE.verify(header, body, std::slice::from_ref(&secret), 1663103925, 300),
            Ok(())
        );
        assert_eq!(
            SIGNATURE.verify(header, body, &[secret], 1663103925 + 301, 300),
            Err(VerifyError::StaleTimestamp)
        );
    }

    #[test]
    fn timestamp_is_checked_before_the_signature_past_and_future() {
        let header = sign("other", 1_000_000, b"{}");
        assert_eq!(
            SIGNATURE.verify(&header, b"{}", &["s".into()], 1000 + 301, 300),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            SIGNATURE.verify(&header, b"{}", &["s".into()], 1000 - 301, 300),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            SIGNATURE.verify(&header, b"{}", &["s".into()], 1000, 300),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn seconds_instead_of_milliseconds_is_stale() {
        let header = sign("s", 1_793_527_200, b"{}");
        assert_eq!(
            SIGNATURE.verify(&header, b"{}", &["s".into()], 1_793_527_200, 300),
            Err(VerifyError::StaleTimestamp)
        );
    }

    #[test]
    fn garbled_headers_are_invalid_signatures() {
        for h in ["", ",abc", "12x4,00", "-5,00", "1000000"] {
            assert_eq!(
                SIGNATURE.verify(h, b"{}", &["s".into()], 1000, 300),
                Err(VerifyError::InvalidSignature),
                "{h}"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(header in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = SIGNATURE.verify(&header, &body, &["s".into()], 1000, 300);
        }
    }

    #[test]
    fn envelope_reads_id_type_and_event_time() {
        let at = parse_rfc3339("2022-09-13T21:18:40Z").unwrap();
        assert_envelopes(
            &INFO,
            OFFICIAL_BODY,
            ("rjxwmwedwqug", "account.created", at),
            &[
                br#"{"object_type":"account","event_type":"created","event_time":"2022-09-13T21:18:40Z"}"#,
                br#"{"id":"x","object_type":"account","event_type":"created","event_time":"yesterday"}"#,
                br#"{"id":"x","object_type":"account","event_time":"2022-09-13T21:18:40Z"}"#,
                b"<?xml version=\"1.0\"?><new_account_notification/>",
            ],
        );
    }
}
