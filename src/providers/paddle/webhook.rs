//! Paddle Billing webhooks: the signature, checked at intake, and the `evt_` envelope (`event_id`,
//! `event_type`, `occurred_at`, the entity under `data`). Signatures: `Paddle-Signature: ts=<unix s>;h1=<hex>[;h1=...]`,
//! HMAC-SHA256 over `"{ts}:{raw body}"` (a colon, not Stripe's dot) keyed with the whole
//! `pdl_ntfset_...` secret; any `h1` against any active secret.

use crate::model::time::parse_rfc3339;
use crate::providers::json_answer;
use crate::providers::signing::{hex_mac, timestamped, Replay, Scheme};
use crate::providers::{CarriedEvent, Envelope, ParseError, VerifyError};

/// The `Paddle-Signature` header, checked as paddle-python-sdk's `Verifier` does, except
/// that unknown keys are ignored rather than refused (a future `h2` must not break intake):
/// the timestamp must be within the tolerance either way (the SDK checks the clock before
/// the HMAC), then any `h1` may match any secret.
pub const SIGNATURE: Scheme = Scheme::timestamped(read_header, 1, ":", Replay::BothWaysFirst);

/// `ts=<unix s>;h1=<hex>[;h1=...]`, items trimmed.
fn read_header(header: &str) -> Result<(&str, i64, Vec<[u8; 32]>), VerifyError> {
    timestamped(header.split(';').map(str::trim), "ts", "h1")
}

/// A `Paddle-Signature` header for `body` at `ts` (for tests; the simulator signs with its own code).
pub fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
    let ts = ts.to_string();
    format!(
        "ts={ts};h1={}",
        hex_mac(secret, &[ts.as_bytes(), b":", body])
    )
}

/// A Paddle event: its envelope, and the entity after the change (`data`).
pub(super) fn parse_event(body: &[u8]) -> Result<CarriedEvent, ParseError> {
    let v = json_answer::parse(body, "body")?;
    let text = |key: &str| {
        json_answer::event_text(v.get(key))
            .ok_or_else(|| ParseError(format!("event has no string `{key}`")))
    };
    // `event_id` is the dedupe key; `notification_id` differs per destination and delivery.
    let id = text("event_id")?.to_owned();
    let event_type = text("event_type")?.to_owned();
    let occurred_at = parse_rfc3339(text("occurred_at")?)
        .ok_or_else(|| ParseError("`occurred_at` is not RFC 3339".into()))?;
    let data = v.get("data").filter(|d| d.is_object()).cloned();
    let envelope = Envelope {
        event_id: id,
        event_type,
        occurred_at,
    };
    Ok(CarriedEvent {
        envelope,
        object: data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_future_timestamps_are_stale_not_invalid() {
        let h = sign("s", 100, b"{}");
        let secrets = ["s".to_owned()];
        let stale = Err(VerifyError::StaleTimestamp);
        for (now, verdict) in [(400, stale), (90, stale), (102, Ok(()))] {
            assert_eq!(
                SIGNATURE.verify(&h, b"{}", &secrets, now, 5),
                verdict,
                "{now}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_garbage_never_verify_or_panic() {
        let secrets = ["s".to_owned()];
        let good = sign("s", 100, b"{}");
        assert_eq!(
            SIGNATURE.verify(&format!("{good};h2=abc"), b"{}", &secrets, 100, 5),
            Ok(())
        );
        for h in ["", "ts=;h1=", "ts=abc;h1=00", "h1=00", ";;;", "ts=100"] {
            assert!(SIGNATURE.verify(h, b"{}", &secrets, 100, 5).is_err(), "{h}");
        }
    }
}
