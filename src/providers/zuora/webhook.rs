//! Zuora webhooks, its callouts, as intake receives them (docs/providers/zuora.md, "Callouts"): the
//! delivery's identity is the `Zuora-Notification-Id` header (the same on every retry; not
//! `Zuora-Request-Id`, new per attempt), and the body is whatever the tenant's callout
//! template makes of its merge fields — billsync's documented JSON template, another JSON
//! template, or a legacy XML callout. Every authenticated callout is stored and answered 200
//! (the webhook route, docs/api-reference.md); what it names is read from the common merge-field names, and one
//! that names nothing billsync reads is only stored (and counted by the pair actor).
//!
//! XML is read with a strict scanner of leaf elements (`<InvoiceId>…</InvoiceId>`,
//! `<parameter name="InvoiceId">…</parameter>`), not a parser crate: billsync needs a handful
//! of id-shaped values from a body it never trusts, and takes a value only when it is plain
//! text of at most [`MAX_ID`] characters from `[A-Za-z0-9_-]`, so an entity, a CDATA section
//! or markup in a value is never mistaken for an id (such a callout is stored unmapped).

use axum::http::HeaderMap;
use serde_json::Value;
use sha2::Digest;

use super::mapping::{refund_id, Kind};
use crate::model::time::now_micros;
use crate::model::ObjectType;
use crate::providers::major_units::time_micros;
use crate::providers::{Envelope, ParseError};

/// The header Zuora sends with every callout, the same across its retries.
pub const NOTIFICATION_ID_HEADER: &str = "zuora-notification-id";

/// Longest id taken from a callout (Zuora ids are 32 hex; numbers are shorter).
const MAX_ID: usize = 64;

/// Longest event id or event type stored (the inbox's limit for every provider).
const MAX_TEXT: usize = 255;

/// How deep a JSON template's nesting is searched for merge fields.
const MAX_JSON_DEPTH: usize = 4;

/// Object kinds a callout can name, most specific first: a payment callout also names its
/// account and invoice, and the payment is what changed.
const SPECIFIC_FIRST: [Kind; 6] = [
    Kind::Refund,
    Kind::Payment,
    Kind::CreditMemo,
    Kind::Invoice,
    Kind::Subscription,
    Kind::Account,
];

/// The merge-field names (lower-case, without `.`, `_`, `-`) that carry each kind's key,
/// preferred first. Subscriptions: the number first (billsync's key; ids change with every
/// amendment), the id only when no number is given (the API reads a subscription by either).
fn keys_of(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Refund => &["refundid"],
        Kind::Payment => &["paymentid"],
        Kind::CreditMemo => &["creditmemoid", "memoid"],
        Kind::Invoice => &["invoiceid"],
        Kind::Subscription => &["subscriptionnumber", "subscriptionname", "subscriptionid"],
        Kind::Account => &["accountid"],
    }
}

/// A merge-field name as compared: `Invoice.Id`, `invoiceId`, `invoice_id` and `InvoiceID`
/// are one name.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '.' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The named values of a callout body: JSON string and number fields (with their parent's
/// name prefixed too, so `{"invoice": {"id": …}}` reads as `invoiceid`), or XML leaves.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn of(body: &[u8]) -> Fields {
        let mut out = Vec::new();
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            walk_json(&v, "", 0, &mut out);
        } else if let Ok(text) = std::str::from_utf8(body) {
            if text.trim_start().starts_with('<') {
                xml_leaves(text, &mut out);
            }
        }
        Fields(out)
    }

    fn get(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.0.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()))
    }

    /// The first value of `names` that has an id's shape.
    fn id(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| {
            self.0
                .iter()
                .filter(|(k, _)| k == n)
                .find(|(_, v)| id_shaped(v))
                .map(|(_, v)| v.clone())
        })
    }

    fn text(&self, names: &[&str]) -> Option<String> {
        self.get(names)
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TEXT && !s.chars().any(char::is_control))
            .map(str::to_owned)
    }
}

fn id_shaped(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_ID
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn walk_json(v: &Value, parent: &str, depth: usize, out: &mut Vec<(String, String)>) {
    let Value::Object(map) = v else {
        return;
    };
    for (k, v) in map {
        let key = normalize(k);
        let text = match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Object(_) if depth < MAX_JSON_DEPTH => {
                walk_json(v, &key, depth + 1, out);
                None
            }
            _ => None,
        };
        if let Some(text) = text {
            if !parent.is_empty() {
                out.push((format!("{parent}{key}"), text.clone()));
            }
            out.push((key, text));
        }
    }
}

/// Leaf elements of an XML text: `<Name>text</Name>` as (`name`, text), and
/// `<parameter name="Name">text</parameter>` (Zuora's legacy callout) as (`name`, text).
/// Anything else (attributes other than `name`, nested elements, comments) is skipped.
fn xml_leaves(text: &str, out: &mut Vec<(String, String)>) {
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(end) = rest.find('>') else {
            return;
        };
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with(['/', '?', '!']) || tag.ends_with('/') {
            continue;
        }
        let element = tag
            .split(|c: char| c.is_ascii_whitespace())
            .next()
            .unwrap_or_default();
        let Some(close) = rest.find('<') else {
            return;
        };
        // A leaf: its text runs to its own end tag.
        if !rest[close..].starts_with(&format!("</{element}>")) {
            continue;
        }
        let value = rest[..close].trim();
        let name = if element.eq_ignore_ascii_case("parameter") {
            attribute(tag, "name")
        } else {
            Some(element)
        };
        if let Some(name) = name {
            out.push((normalize(name), value.to_owned()));
        }
    }
}

/// The value of attribute `name` in a start tag's text (`parameter name="AccountId"`).
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}="))? + name.len() + 2;
    let quoted = &tag[at..];
    let quote = quoted.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let value = &quoted[1..];
    value.find(quote).map(|end| &value[..end])
}

/// The envelope of a callout: the id from the `Zuora-Notification-Id` header, else the
/// body's `notificationId`, else a digest of the body (a template without either still
/// dedupes its identical retries); the type from `eventType` (else `unknown`); the time from
/// `eventTime` (else now). Only a swept envelope (billsync's own, carrying `object`) must be
/// complete; any other authenticated body is a callout.
pub fn envelope(headers: &HeaderMap, body: &[u8]) -> Result<Envelope, ParseError> {
    if let Some(swept) = swept(body)? {
        return Ok(swept.0);
    }
    let fields = Fields::of(body);
    let header = headers
        .get(NOTIFICATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_TEXT && !s.chars().any(char::is_control))
        .map(str::to_owned);
    let event_id = header
        .or_else(|| fields.text(&["notificationid"]))
        .unwrap_or_else(|| {
            let mut digest = hex::encode(sha2::Sha256::digest(body));
            digest.truncate(32);
            format!("body:{digest}")
        });
    let event_type = fields
        .text(&["eventtype", "eventcategory", "event"])
        .unwrap_or_else(|| "unknown".to_owned());
    let occurred_at = fields
        .get(&["eventtime", "eventtimestamp", "timestamp"])
        .and_then(time_micros)
        .unwrap_or_else(now_micros);
    Ok(Envelope {
        event_id,
        event_type,
        occurred_at,
    })
}

/// A swept envelope (`{"notificationId", "eventType", "eventTime", "objectType", "object"}`,
/// made by `parse_sweep_page`): its envelope and the object it carries. `Ok(None)` for any
/// other body.
pub fn swept(body: &[u8]) -> Result<Option<(Envelope, Kind, Value)>, ParseError> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let Some(object) = map.remove("object").filter(Value::is_object) else {
        return Ok(None);
    };
    let text = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .filter(|s| s.len() <= MAX_TEXT)
            .map(str::to_owned)
            .ok_or_else(|| ParseError(format!("swept envelope has no string `{key}`")))
    };
    let envelope = Envelope {
        event_id: text("notificationId")?,
        event_type: text("eventType")?,
        occurred_at: map
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(time_micros)
            .ok_or_else(|| ParseError("swept envelope has no RFC 3339 `eventTime`".into()))?,
    };
    let kind = map
        .get("objectType")
        .and_then(Value::as_str)
        .and_then(Kind::parse)
        .ok_or_else(|| ParseError("swept object has no known `objectType`".into()))?;
    Ok(Some((envelope, kind, object)))
}

fn object_type(kind: Kind) -> ObjectType {
    match kind {
        Kind::Account => ObjectType::Customer,
        Kind::Invoice => ObjectType::Invoice,
        Kind::CreditMemo => ObjectType::CreditNote,
        Kind::Subscription => ObjectType::Subscription,
        Kind::Payment | Kind::Refund => ObjectType::Transaction,
    }
}

/// The kind an event name is about (`InvoicePosted` → invoice), if it names one.
fn kind_of_event(event_type: &str) -> Option<Kind> {
    let e = normalize(event_type);
    SPECIFIC_FIRST
        .into_iter()
        .find(|k| e.starts_with(&k.name().to_ascii_lowercase()))
}

/// The object a callout names, for the refetch: billsync's template (`objectType` +
/// `objectId`); else the kind its event type names, if the body has that kind's key; else
/// the most specific key the body has. `None`: the callout names nothing billsync reads.
pub fn reference(body: &[u8]) -> Option<(ObjectType, String)> {
    if swept(body).ok().flatten().is_some() {
        return None;
    }
    let fields = Fields::of(body);
    let named = |kind: Kind, id: String| {
        let id = if kind == Kind::Refund {
            refund_id(&id)
        } else {
            id
        };
        Some((object_type(kind), id))
    };
    if let Some(kind) = fields.get(&["objecttype"]).and_then(Kind::parse) {
        if let Some(id) = fields.id(&["objectid"]) {
            return named(kind, id);
        }
    }
    let hinted = fields
        .get(&["eventtype", "eventcategory", "event"])
        .and_then(kind_of_event);
    let kinds = hinted.into_iter().chain(SPECIFIC_FIRST);
    for kind in kinds {
        if let Some(id) = fields.id(keys_of(kind)) {
            return named(kind, id);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(NOTIFICATION_ID_HEADER, id.parse().unwrap());
        h.insert("zuora-request-id", "per-attempt-1".parse().unwrap());
        h
    }

    #[test]
    fn the_event_id_is_the_notification_header_then_the_body_then_a_digest() {
        let body = br#"{"notificationId":"body-id","eventType":"InvoicePosted","eventTime":"2026-11-01T10:00:00Z"}"#;
        let env = envelope(&with_header("2c92c0f8-hdr"), body).unwrap();
        assert_eq!(env.event_id, "2c92c0f8-hdr", "the header wins");
        assert_eq!(env.event_type, "InvoicePosted");
        assert_eq!(env.occurred_at, 1_793_527_200_000_000);
        assert_eq!(
            envelope(&HeaderMap::new(), body).unwrap().event_id,
            "body-id"
        );
        // A template with neither: a digest of the body, equal for equal bodies.
        let bare = br#"{"accountId":"8a8a0001"}"#;
        let a = envelope(&HeaderMap::new(), bare).unwrap();
        assert!(a.event_id.starts_with("body:"), "{}", a.event_id);
        assert_eq!(
            a.event_id,
            envelope(&HeaderMap::new(), bare).unwrap().event_id
        );
        assert_ne!(
            a.event_id,
            envelope(&HeaderMap::new(), br#"{"accountId":"8a8a0002"}"#)
                .unwrap()
                .event_id
        );
        assert_eq!(a.event_type, "unknown");
    }

    #[test]
    fn unknown_templates_and_xml_are_envelopes_too() {
        for body in [
            &br#"{"hello":"world"}"#[..],
            b"<callout><parameter name=\"AccountID\">8a8a0001</parameter></callout>",
            b"not even json",
            b"",
        ] {
            let env = envelope(&with_header("n-1"), body).unwrap();
            assert_eq!(env.event_id, "n-1");
        }
    }

    #[test]
    fn a_swept_envelope_must_be_complete() {
        let bad = br#"{"eventType":"billsync_sweep.invoice","eventTime":"2026-11-01T10:00:00Z","objectType":"Invoice","object":{"id":"i1"}}"#;
        assert!(envelope(&HeaderMap::new(), bad).is_err());
    }

    #[test]
    fn billsync_template_names_its_object() {
        let body = br#"{"notificationId":"n","eventType":"E","eventTime":"2026-11-01T10:00:00Z","objectType":"Refund","objectId":"9f"}"#;
        assert_eq!(
            reference(body),
            Some((ObjectType::Transaction, "refund-9f".into()))
        );
    }

    #[test]
    fn other_json_templates_are_read_by_merge_field_names() {
        for (body, want) in [
            (
                &br#"{"AccountId":"8a8a0001"}"#[..],
                (ObjectType::Customer, "8a8a0001"),
            ),
            (
                br#"{"eventType":"PaymentProcessed","accountId":"A1","invoiceId":"I1","paymentId":"P1"}"#,
                (ObjectType::Transaction, "P1"),
            ),
            (
                br#"{"eventType":"InvoicePosted","accountId":"A1","invoiceId":"I1","paymentId":"P1"}"#,
                (ObjectType::Invoice, "I1"),
            ),
            (
                br#"{"data":{"invoice":{"id":"I2"},"account":{"id":"A2"}}}"#,
                (ObjectType::Invoice, "I2"),
            ),
            (
                br#"{"creditMemoId":"C1","accountId":"A1"}"#,
                (ObjectType::CreditNote, "C1"),
            ),
            (
                br#"{"subscriptionId":"8a8asubv3","subscriptionNumber":"A-S00000007"}"#,
                (ObjectType::Subscription, "A-S00000007"),
            ),
            (
                br#"{"refund_id":"R1"}"#,
                (ObjectType::Transaction, "refund-R1"),
            ),
        ] {
            assert_eq!(
                reference(body),
                Some((want.0, want.1.to_owned())),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn xml_callouts_are_read_for_the_same_names() {
        let legacy = br#"<?xml version="1.0" encoding="UTF-8"?>
<callout>
  <parameter name="EventType">InvoicePosted</parameter>
  <parameter name="AccountID">8a8a0001</parameter>
  <parameter name="InvoiceID">8a8ainv1</parameter>
</callout>"#;
        assert_eq!(
            reference(legacy),
            Some((ObjectType::Invoice, "8a8ainv1".into()))
        );
        assert_eq!(
            envelope(&HeaderMap::new(), legacy).unwrap().event_type,
            "InvoicePosted"
        );
        let elements =
            b"<notification><Payment><Id>P9</Id></Payment><PaymentId>P9</PaymentId></notification>";
        assert_eq!(
            reference(elements),
            Some((ObjectType::Transaction, "P9".into()))
        );
    }

    #[test]
    fn callouts_that_name_nothing_or_no_id_shaped_value_name_nothing() {
        for body in [
            &br#"{"notificationId":"n","eventType":"E","eventTime":"2026-11-01T10:00:00Z"}"#[..],
            br#"{"objectType":"Usage","objectId":"u1"}"#,
            br#"{"accountId":"has space"}"#,
            br#"{"accountId":"<Account.Id>"}"#,
            b"<callout><parameter name=\"AccountID\">&lt;x&gt;</parameter></callout>",
            b"<callout><AccountId><![CDATA[A1]]></AccountId></callout>",
            b"<callout><AccountId>A1",
            b"plain text accountId=A1",
        ] {
            assert_eq!(reference(body), None, "{}", String::from_utf8_lossy(body));
        }
    }
}
