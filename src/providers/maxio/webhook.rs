//! Maxio webhooks: the HMAC-SHA256 signature header (intake's authenticity check; no timestamp,
//! see `super` on replay), the Rails/Rack form encoding of the body, decoded only after
//! verification, and the one `Event` shape read from a webhook, an invoice event or an Events
//! API event (both from sweeps); which payload object an event is about, and which customer
//! webhooks are read whole.

use serde_json::{json, Map, Value};

use super::mapping::RESOURCES;
use crate::model::ObjectType;
use crate::providers::json_answer::event_text;
use crate::providers::minor_units::id_text;
use crate::providers::signing::{check, hex_mac, hex_signature};
use crate::providers::{ParseError, VerifyError};

pub(super) const SIGNATURE_HEADER: &str = "x-chargify-webhook-signature-hmac-sha-256";

/// Verifies `X-Chargify-Webhook-Signature-Hmac-Sha-256: <hex>` = HMAC-SHA256(key = the site's
/// shared key, message = the raw form-encoded body). There is no timestamp (see the module
/// doc of `super` on replay), so there is no replay window. Rotation: every active secret is tried,
/// in constant time.
pub fn verify_signature(header: &str, body: &[u8], secrets: &[String]) -> Result<(), VerifyError> {
    let sig = hex_signature(header.trim()).ok_or(VerifyError::InvalidSignature)?;
    check(secrets, &[body], &[sig])
}

/// Makes the signature header value (for tests; the simulator signs with its own code).
pub fn sign(secret: &str, body: &[u8]) -> String {
    hex_mac(secret, &[body])
}

/// Decodes a Rails/Rack-style form body (`a[b][c]=v`, `a[][x]=v`) into nested JSON strings.
pub fn decode_form(body: &[u8]) -> Result<Value, ParseError> {
    let mut root = Map::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        let (head, rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (&key[..], ""),
        };
        if head.is_empty() {
            return Err(ParseError(format!("form key `{key}` has no name")));
        }
        let mut path = vec![head.to_owned()];
        let mut rest = rest;
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else {
                return Err(ParseError(format!("form key `{key}` has an open bracket")));
            };
            path.push(stripped[..end].to_owned());
            rest = &stripped[end + 1..];
        }
        if !rest.is_empty() {
            return Err(ParseError(format!("form key `{key}` is malformed")));
        }
        insert(&mut root, &path, Value::String(value.into_owned()))?;
    }
    Ok(Value::Object(root))
}

fn insert(map: &mut Map<String, Value>, path: &[String], value: Value) -> Result<(), ParseError> {
    let (first, rest) = match path.split_first() {
        Some(x) => x,
        None => return Ok(()),
    };
    if rest.is_empty() {
        map.insert(first.clone(), value);
        return Ok(());
    }
    if rest[0].is_empty() {
        // `a[]...`: an array. `a[]=v` appends a value; `a[][k]=v` fills the last element
        // unless it already has `k`, then starts a new one (Rack's rule).
        let items = nested(map, first, Value::as_array_mut, "is both array and not")?;
        let tail = &rest[1..];
        if tail.is_empty() {
            items.push(value);
            return Ok(());
        }
        let start_new = match items.last() {
            Some(Value::Object(m)) => m.contains_key(&tail[0]) && tail.len() == 1,
            _ => true,
        };
        if start_new {
            items.push(Value::Object(Map::new()));
        }
        let Some(Value::Object(m)) = items.last_mut() else {
            return Err(ParseError(format!(
                "form key `{first}` mixes values and objects"
            )));
        };
        return insert(m, tail, value);
    }
    let m = nested(map, first, Value::as_object_mut, "is both value and object")?;
    insert(m, rest, value)
}

/// The array or object (as `kind` reads it) at `key`, an empty one put there when the key is
/// new; `Err` when the key holds another kind already (a form that uses it both ways), saying
/// `clash`.
fn nested<'m, T: Default + Into<Value>>(
    map: &'m mut Map<String, Value>,
    key: &str,
    kind: fn(&mut Value) -> Option<&mut T>,
    clash: &str,
) -> Result<&'m mut T, ParseError> {
    let entry = map
        .entry(key.to_owned())
        .or_insert_with(|| T::default().into());
    kind(entry).ok_or_else(|| ParseError(format!("form key `{key}` {clash}")))
}

/// A webhook (form-encoded, `id`, `event`, `payload[...]`) or an Events API event (JSON, from
/// sweeps), read into one shape.
pub(super) struct Event {
    pub(super) id: String,
    pub(super) event_type: String,
    pub(super) payload: Value,
}

pub(super) fn parse_event(body: &[u8]) -> Result<Event, ParseError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ParseError(format!("body is not JSON: {e}")))?;
        if v.get("event_type").is_some() {
            // An invoice event (`/invoices/events.json`): the invoice as it was, and for
            // `create_credit_note` the credit note (`event_data`).
            let id = id_text(v.get("id"))
                .ok_or_else(|| ParseError("invoice event has no `id`".into()))?;
            let kind = event_text(v.get("event_type"))
                .ok_or_else(|| ParseError("invoice event has no `event_type`".into()))?;
            let mut payload = Map::new();
            payload.insert(
                "created_at".into(),
                v.get("timestamp").cloned().unwrap_or(Value::Null),
            );
            if kind == "create_credit_note" {
                if let Some(cn) = v.get("event_data").filter(|d| d.is_object()) {
                    payload.insert("credit_note".into(), cn.clone());
                }
            } else if let Some(inv) = v.get("invoice").filter(|i| i.get("currency").is_some()) {
                payload.insert("invoice".into(), inv.clone());
            }
            return Ok(Event {
                // Invoice event ids are their own series.
                id: format!("invoice_event:{id}"),
                event_type: kind.to_owned(),
                payload: Value::Object(payload),
            });
        }
        // An Events API event `{"event": {...}}` or `{...}`: no object snapshot, only ids.
        let e = v.get("event").unwrap_or(&v);
        let id = id_text(e.get("id")).ok_or_else(|| ParseError("event has no `id`".into()))?;
        let key =
            event_text(e.get("key")).ok_or_else(|| ParseError("event has no `key`".into()))?;
        return Ok(Event {
            // Events API ids and webhook ids are different series: keep them apart.
            id: format!("event:{id}"),
            event_type: key.to_owned(),
            payload: json!({
                "created_at": e.get("created_at"),
                "customer_id": e.get("customer_id"),
                "subscription_id": e.get("subscription_id"),
            }),
        });
    }
    let mut form = decode_form(body)?;
    // Rails form-encodes nil as an empty value (`payload[subscription][product]=`).
    drop_empty(&mut form);
    let id = event_text(form.get("id")).ok_or_else(|| ParseError("webhook has no `id`".into()))?;
    let event =
        event_text(form.get("event")).ok_or_else(|| ParseError("webhook has no `event`".into()))?;
    Ok(Event {
        id: id.to_owned(),
        event_type: event.to_owned(),
        payload: form.get("payload").cloned().unwrap_or(Value::Null),
    })
}

/// Removes empty-string leaves (form-encoded nils) and the objects left empty by it.
fn drop_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(drop_empty);
            m.retain(|_, x| !(x.as_str() == Some("") || x.as_object().is_some_and(Map::is_empty)));
        }
        Value::Array(items) => items.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

/// The payload object an event is about.
pub(super) fn primary_resource(event_type: &str, payload: &Value) -> Option<&'static str> {
    let by_name = if event_type.starts_with("payment_") || event_type.starts_with("refund_") {
        Some("transaction")
    } else if event_type.starts_with("invoice_") {
        Some("invoice")
    } else if event_type.starts_with("customer_") {
        Some("customer")
    } else {
        None
    };
    by_name
        .filter(|r| payload.get(r).is_some_and(Value::is_object))
        .or_else(|| {
            RESOURCES
                .iter()
                .map(|(r, _)| *r)
                .find(|r| payload.get(r).is_some_and(Value::is_object))
        })
}

/// The customer a webhook or invoice event announces a change of (`customer_create`,
/// `customer_update`): read whole, since its payload lacks the payment profiles that hold its
/// billing address. Deletions and Events API events are not.
pub(super) fn customer_to_read(body: &[u8]) -> Option<(ObjectType, String)> {
    let e = parse_event(body).ok()?;
    if e.id.starts_with("event:") || e.event_type == "customer_delete" {
        return None;
    }
    if primary_resource(&e.event_type, &e.payload)? != "customer" {
        return None;
    }
    let id = id_text(e.payload.get("customer")?.get("id"))?;
    Some((ObjectType::Customer, id))
}

#[cfg(test)]
mod tests {
    use super::super::INFO;
    use super::*;
    use crate::model::time::parse_rfc3339;
    use crate::providers::field_checks::{assert_observed, assert_thin};
    use crate::providers::Provider;
    use axum::http::HeaderMap;

    /// The first vector's body is a real-looking webhook (see `webhook_vectors`).
    const VECTORS: &str = include_str!("../../../tests/data/maxio_webhook_vectors.json");

    fn vector_body() -> Vec<u8> {
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        all["vectors"][0]["body"]
            .as_str()
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn a_missing_header_is_an_invalid_signature_and_own_signatures_verify() {
        // Maxio's only refusal is an invalid signature (it signs no timestamp); its vectors
        // are checked with every provider's (`webhook_vectors`).
        assert_eq!(
            INFO.verify(&HeaderMap::new(), b"id=1", &["k".into()], 0, 300),
            Err(VerifyError::InvalidSignature)
        );
        let own = sign("k", b"id=1&event=x");
        assert_eq!(
            verify_signature(&own, b"id=1&event=x", &["k".into()]),
            Ok(())
        );
    }

    #[test]
    fn form_webhook_decodes_after_verification_and_maps_its_transaction() {
        let body = vector_body();
        let env = INFO.envelope(&body).unwrap();
        assert_eq!(env.event_id, "1029384756");
        assert_eq!(env.event_type, "payment_success");
        // 12:00 US Eastern (-04:00 in June) is 16:00 UTC.
        assert_eq!(
            env.occurred_at,
            parse_rfc3339("2024-06-20T16:00:00Z").unwrap()
        );
        let obs = INFO.observe(&body).unwrap().unwrap();
        assert_observed(
            &obs,
            ObjectType::Transaction,
            "7709473",
            json!({"kind": "charge", "amount": 1099, "currency": "USD", "status": "succeeded",
                "occurred_at": "2024-06-20T16:00:00Z"}),
        );
    }

    #[test]
    fn bracket_keys_nest_and_arrays_follow_rack() {
        let v = decode_form(
            b"a=1&p[s][id]=7&p[s][c][e]=x%40y.z&l[][t]=one&l[][q]=1&l[][t]=two&tags[]=a&tags[]=b",
        )
        .unwrap();
        assert_eq!(v["p"]["s"]["id"], "7");
        assert_eq!(v["p"]["s"]["c"]["e"], "x@y.z");
        assert_eq!(v["l"][0]["t"], "one");
        assert_eq!(v["l"][0]["q"], "1");
        assert_eq!(v["l"][1]["t"], "two");
        assert_eq!(v["tags"], json!(["a", "b"]));
        assert!(decode_form(b"p[s=1").is_err());
        // A key used both ways is refused, whichever container the second use wants.
        let clash = |body: &[u8]| decode_form(body).map_err(|e| e.0);
        let object = "form key `p` is both value and object";
        assert_eq!(clash(b"p=1&p[x]=2"), Err(object.into()));
        let array = "form key `p` is both array and not";
        assert_eq!(clash(b"p[x]=1&p[]=2"), Err(array.into()));
    }

    #[test]
    fn envelope_needs_id_and_event() {
        assert!(INFO.envelope(b"event=x").is_err());
        assert!(INFO.envelope(b"id=1").is_err());
        let env = INFO
            .envelope(b"id=1&event=upgrade_downgrade_success")
            .unwrap();
        assert_eq!(env.occurred_at, 0);
        let sweep = INFO
            .envelope(br#"{"event":{"id":3950127,"key":"payment_success","created_at":"2024-06-20T12:00:00-04:00"}}"#)
            .unwrap();
        assert_eq!(sweep.event_id, "event:3950127");
        let thin = br#"{"event":{"id":3950127,"key":"payment_success","subscription_id":15236915,"customer_id":14714298}}"#;
        assert_thin(&INFO, thin, ObjectType::Subscription, "15236915");
        assert_eq!(INFO.thin_reference(b"id=1&event=x"), None);
        assert_eq!(
            sweep.occurred_at,
            parse_rfc3339("2024-06-20T16:00:00Z").unwrap()
        );
    }

    #[test]
    fn invoice_events_carry_snapshots_and_credit_notes() {
        let created = json!({"id": 91, "timestamp": "2024-06-21T09:00:00-04:00",
            "event_type": "create_credit_note", "invoice": {"uid": "inv_b8j7zk5bsb9qc"},
            "event_data": {"uid": "cn_8c8b5b8k4ccq", "status": "open", "currency": "USD",
                "total_amount": "5.00", "origin_invoices": [{"uid": "inv_b8j7zk5bsb9qc"}]}});
        let body = created.to_string();
        let env = INFO.envelope(body.as_bytes()).unwrap();
        assert_eq!(env.event_id, "invoice_event:91");
        assert_eq!(env.event_type, "create_credit_note");
        let obs = INFO.observe(body.as_bytes()).unwrap().unwrap();
        assert_eq!(obs.object_type, ObjectType::CreditNote);
        assert_eq!(obs.data["total"], 500);
        assert_eq!(
            obs.order_key,
            parse_rfc3339("2024-06-21T13:00:00Z").unwrap(),
            "the event's time orders it"
        );
        assert_eq!(INFO.thin_reference(body.as_bytes()), None);
        let paid = json!({"id": 92, "timestamp": "2024-06-21T09:00:01-04:00", "event_type": "apply_payment",
            "invoice": {"uid": "inv_b8j7zk5bsb9qc", "status": "paid", "currency": "USD",
                "total_amount": "10.99", "paid_amount": "10.99", "due_amount": "0.0",
                "updated_at": "2024-06-21T09:00:01-04:00"}, "event_data": {"applied_amount": "10.99"}});
        let obs = INFO.observe(paid.to_string().as_bytes()).unwrap().unwrap();
        assert_eq!(obs.object_type, ObjectType::Invoice);
        assert_eq!(obs.data["status"], "paid");
        assert_eq!(obs.data["amount_paid"], 1099);
    }

    #[test]
    fn a_customer_webhook_reads_the_customer_whole_for_its_billing_address() {
        let body = b"id=1&event=customer_update&payload[customer][id]=9&payload[customer][updated_at]=2024-06-20+12%3A00%3A00+-0400";
        assert_thin(&INFO, body, ObjectType::Customer, "9");
        let read = INFO.fetch_request(ObjectType::Customer, "9");
        let answer = json!({"customer": {"id": 9}});
        assert_eq!(read.path, "/customers/9.json");
        assert_eq!(
            INFO.sub_reads(&answer)[0].request.path,
            "/payment_profiles.json"
        );
    }

    #[test]
    fn form_nils_read_as_absent() {
        let body = b"id=5&event=payment_success&payload[transaction][id]=41&payload[transaction][transaction_type]=payment&payload[transaction][amount_in_cents]=500&payload[transaction][success]=true&payload[transaction][kind]=&payload[transaction][currency]=USD&payload[transaction][invoice_uid]=&payload[transaction][created_at]=2024-06-20+12%3A00%3A00+-0400";
        let obs = INFO.observe(body).unwrap().unwrap();
        assert_eq!(obs.data["invoice_id"], Value::Null);
        assert_eq!(obs.data["amount"], 500);
    }
}
