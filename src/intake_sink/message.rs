//! The SQS intake message: one verified webhook as compact JSON, carrying what
//! `Store::ingest` needs and nothing more. Written by the webhook handler's
//! [`super::IntakeSink`], read by the workers that move messages into the store
//! ([`super::sqs`]); a message that does not read back is poison and goes to the DLQ.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{IntakeError, Verified};
use crate::store::{IncomingEvent, RawBody};

/// The format's version: a worker refuses a message of another (it goes to the DLQ rather
/// than being stored wrong).
const VERSION: u32 = 1;

/// One webhook on the queue. Field names are short: SQS bills by the 64 KiB chunk.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueuedEvent {
    v: u32,
    /// The connection the webhook was verified for.
    c: String,
    /// The provider's event id (the idempotency key with the connection).
    e: String,
    /// The provider's event type.
    t: String,
    /// When the webhook arrived at billsync, microseconds since the epoch (not when the
    /// worker moved it: ordering and latency count from arrival).
    r: i64,
    /// The body exactly as received, base64.
    b: String,
}

impl QueuedEvent {
    pub fn new(event: &Verified) -> Self {
        QueuedEvent {
            v: VERSION,
            c: event.connection_id.clone(),
            e: event.provider_event_id.clone(),
            t: event.event_type.clone(),
            r: event.received_at,
            b: STANDARD.encode(&event.body),
        }
    }

    /// The message body.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings and integers serializes")
    }

    /// The event a message body holds, sealed for `raw_events` (the compression happens on
    /// the worker, off the webhook's path to its 200).
    pub fn decode(text: &str) -> Result<IncomingEvent, IntakeError> {
        let m: QueuedEvent = serde_json::from_str(text)
            .map_err(|e| IntakeError::Message(format!("not JSON of an intake message: {e}")))?;
        if m.v != VERSION {
            return Err(IntakeError::Message(format!(
                "format version {} (this build reads {VERSION})",
                m.v
            )));
        }
        let body = STANDARD
            .decode(&m.b)
            .map_err(|e| IntakeError::Message(format!("body is not base64: {e}")))?;
        Ok(IncomingEvent {
            connection_id: m.c,
            provider_event_id: m.e,
            event_type: m.t,
            source: "webhook",
            received_at: m.r,
            body: RawBody::seal(&body)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> Verified {
        Verified {
            connection_id: "conn_1".into(),
            provider_event_id: "evt_1".into(),
            event_type: "customer.updated".into(),
            received_at: 1_700_000_000_123_456,
            body: bytes::Bytes::from_static(b"{\"id\":\"evt_1\"}"),
        }
    }

    #[test]
    fn a_message_reads_back_as_the_event_received() {
        let text = QueuedEvent::new(&verified()).encode();
        let e = QueuedEvent::decode(&text).unwrap();
        assert_eq!(e.connection_id, "conn_1");
        assert_eq!(e.provider_event_id, "evt_1");
        assert_eq!(e.event_type, "customer.updated");
        assert_eq!(e.received_at, 1_700_000_000_123_456);
        assert_eq!(e.source, "webhook");
        let direct = RawBody::seal(b"{\"id\":\"evt_1\"}").unwrap();
        assert_eq!(e.body.sha256(), direct.sha256());
    }

    #[test]
    fn garbage_and_other_versions_are_refused() {
        for bad in [
            "not json",
            "{}",
            r#"{"v":2,"c":"c","e":"e","t":"t","r":1,"b":""}"#,
            r#"{"v":1,"c":"c","e":"e","t":"t","r":1,"b":"%%%"}"#,
        ] {
            assert!(
                matches!(QueuedEvent::decode(bad), Err(IntakeError::Message(_))),
                "{bad} was accepted"
            );
        }
    }
}
