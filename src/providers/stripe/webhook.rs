//! Stripe webhooks: the signature, checked at intake, and the `evt_` envelope (the envelope alone
//! at intake; the event with its snapshot when it is applied). Signatures: `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=...]`, HMAC-SHA256
//! over `"{t}.{raw body}"` keyed with the whole `whsec_...` string, any active secret.

use serde_json::Value;

use crate::model::time::secs_to_micros;
use crate::providers::json_answer;
use crate::providers::signing::{hex_mac, timestamped, Replay, Scheme};
use crate::providers::{Envelope, ParseError, VerifyError};

/// The `Stripe-Signature` header, checked the way Stripe's own SDK does: parse, require a
/// `t=` and at least one `v1=`, accept if any `v1` matches any secret (constant time), then
/// refuse timestamps older than the tolerance (future timestamps pass, as in the SDK).
pub const SIGNATURE: Scheme = Scheme::timestamped(read_header, 1, ".", Replay::PastOnlyAfter);

/// `t=<unix s>,v1=<hex>[,v1=...]`, exactly as Stripe's SDK reads it: no trimming, so `, v1=`
/// names no `v1` scheme.
fn read_header(header: &str) -> Result<(&str, i64, Vec<[u8; 32]>), VerifyError> {
    timestamped(header.split(','), "t", "v1")
}

/// Makes a `Stripe-Signature` header value (for tests and benchmarks; the simulator signs with its own code).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    format!("t={t},v1={}", hex_mac(secret, &[t.as_bytes(), b".", body]))
}

/// The parts of a Stripe event billsync reads.
pub(super) struct StripeEvent {
    pub(super) event_type: String,
    pub(super) created: i64,
    pub(super) object: Option<Value>,
}

/// The top-level fields of an event; everything else (the snapshot) is skipped unparsed.
#[derive(serde::Deserialize)]
struct Head {
    id: Option<Value>,
    object: Option<Value>,
    #[serde(rename = "type")]
    event_type: Option<Value>,
    created: Option<Value>,
}

/// Checks an event's identifying fields: (id, type, created).
fn check_head<'a>(
    id: Option<&'a Value>,
    object: Option<&'a Value>,
    event_type: Option<&'a Value>,
    created: Option<&'a Value>,
) -> Result<(&'a str, &'a str, i64), ParseError> {
    let id =
        json_answer::event_text(id).ok_or_else(|| ParseError("event has no string `id`".into()))?;
    if object.and_then(Value::as_str) != Some("event") {
        return Err(ParseError("`object` is not \"event\"".into()));
    }
    let event_type = json_answer::event_text(event_type)
        .ok_or_else(|| ParseError("event has no string `type`".into()))?;
    let created = created
        .and_then(Value::as_i64)
        .ok_or_else(|| ParseError("event has no integer `created`".into()))?;
    Ok((id, event_type, created))
}

/// The envelope alone, at intake: the snapshot is skipped rather than built as a tree (it is
/// parsed when the event is applied), which was most of the JSON work of answering a webhook.
pub(super) fn parse_envelope(body: &[u8]) -> Result<Envelope, ParseError> {
    let head: Head = serde_json::from_slice(body).map_err(|e| match e.classify() {
        // serde's data errors quote the value they met (`invalid type: string "..."`), and
        // this message is a webhook's answer: it never echoes the payload (docs/api.md "Errors").
        serde_json::error::Category::Data => ParseError("body is not a JSON object".into()),
        _ => ParseError(format!("body is not JSON: {e}")),
    })?;
    if body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|b| *b != b'{')
    {
        return Err(ParseError("body is not a JSON object".into()));
    }
    let (id, event_type, created) = check_head(
        head.id.as_ref(),
        head.object.as_ref(),
        head.event_type.as_ref(),
        head.created.as_ref(),
    )?;
    Ok(Envelope {
        event_id: id.to_owned(),
        event_type: event_type.to_owned(),
        occurred_at: secs_to_micros(created),
    })
}

pub(super) fn parse_event(body: &[u8]) -> Result<StripeEvent, ParseError> {
    let mut value = json_answer::parse(body, "body")?;
    let (_, event_type, created) = check_head(
        value.get("id"),
        value.get("object"),
        value.get("type"),
        value.get("created"),
    )?;
    let event_type = event_type.to_owned();
    // The snapshot is moved out of the parsed body, not copied.
    let object = value
        .get_mut("data")
        .and_then(|d| d.get_mut("object"))
        .filter(|o| o.is_object())
        .map(Value::take);
    Ok(StripeEvent {
        event_type,
        created,
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::super::INFO;
    use super::*;
    use crate::providers::field_checks::assert_envelopes;
    use proptest::prelude::*;

    const SECRET: &str = "whsec_test";

    #[test]
    fn own_signature_verifies_and_any_secret_may_match() {
        let header = sign(SECRET, 1000, b"{}");
        let secrets = vec!["whsec_old".to_string(), SECRET.to_string()];
        assert_eq!(
            SIGNATURE.verify(&header, b"{}", &secrets, 1000, 300),
            Ok(())
        );
        assert_eq!(
            SIGNATURE.verify(&header, b"{ }", &secrets, 1000, 300),
            Err(VerifyError::InvalidSignature)
        );
        assert_eq!(
            SIGNATURE.verify(&header, b"{}", &secrets, 1301, 300),
            Err(VerifyError::StaleTimestamp)
        );
    }

    #[test]
    fn stale_is_only_reported_for_a_valid_signature() {
        let header = sign("whsec_other", 1000, b"{}");
        assert_eq!(
            SIGNATURE.verify(&header, b"{}", &[SECRET.into()], 99_999, 300),
            Err(VerifyError::InvalidSignature)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(header in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = SIGNATURE.verify(&header, &body, &[SECRET.into()], 1000, 300);
        }
    }

    #[test]
    fn envelope_needs_id_type_created_and_event_object() {
        let ok =
            br#"{"id":"evt_1","object":"event","type":"x.y","created":5,"data":{"object":{}}}"#;
        assert_envelopes(
            &INFO,
            ok,
            ("evt_1", "x.y", 5_000_000),
            &[
                br#"{"object":"event","type":"x","created":5}"#,
                br#"{"id":"evt_1","object":"charge","type":"x","created":5}"#,
                br#"{"id":"evt_1","object":"event","created":5}"#,
                br#"{"id":"evt_1","object":"event","type":"x","created":"5"}"#,
                b"not json",
                b"[]",
            ],
        );
    }
}
