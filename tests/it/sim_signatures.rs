//! The simulator (crates/billsync-sim) against billsync's own verifiers and mappings: the
//! cross-checks that lived inside the simulator's personalities before it became a crate that
//! does not link billsync (issue 22). The simulator signs webhooks with its own implementation,
//! written from the providers' documentation, so these check billsync's verifiers against a
//! second one; and every object the simulator's Paddle and Chargebee make maps, through
//! billsync's mapping, to the id the simulator keys it by.

use axum::http::{HeaderMap, HeaderName};
use billsync::model::ObjectType;
use billsync::providers::{basic_auth, chargebee, maxio, paddle, recurly, stripe, Provider};
use billsync_sim::personality::{for_provider, sample_lifecycle, Personality};
use billsync_sim::scenario::Change;
use billsync_sim::SimProvider;
use serde_json::{json, Value};

/// Every translated change of a long lifecycle of `provider`, in order, with its change time.
fn changes(provider: SimProvider) -> Vec<(Change, i64)> {
    sample_lifecycle(provider, 3, 400)
}

/// The first change of `provider`'s lifecycle as its webhook body, and the value of the
/// signature header `header` the simulator sends with it, signed with `secret` at `t`.
fn first_webhook(provider: SimProvider, secret: &str, header: &str, t: i64) -> (String, String) {
    let face = for_provider(provider);
    let (c, at) = changes(provider).remove(0);
    let body = face.event_body("evt_x0000000001", &c, at);
    let sent = headers(face, secret, &body, t);
    let signature = sent[header].to_str().unwrap().to_owned();
    (body, signature)
}

/// The headers a personality sends with `body`, as a header map.
fn headers(face: &dyn Personality, secret: &str, body: &str, t: i64) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in face.delivery_headers(secret, body, t) {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    map
}

#[test]
fn paddle_every_entity_maps_to_its_own_ledger_id_through_billsyncs_paddle_mapping() {
    let all = changes(SimProvider::Paddle);
    for stream in ["customers", "transactions", "subscriptions", "adjustments"] {
        assert!(all.iter().any(|(c, _)| c.stream == stream), "no {stream}");
    }
    for (c, _) in &all {
        let o = paddle::INFO
            .observe_object(&c.object, 0)
            .unwrap_or_else(|e| panic!("{}: {e}", c.id))
            .unwrap_or_else(|| panic!("{} maps to nothing", c.id));
        assert_eq!(o.provider_id, c.id);
        assert_eq!(o.deleted, c.deleted, "{}", c.id);
    }
}

#[test]
fn paddle_webhook_is_paddles_envelope_signed_the_way_billsync_verifies() {
    let face = for_provider(SimProvider::Paddle);
    let (c, _) = changes(SimProvider::Paddle).remove(0);
    let body = face.event_body("evt_01abc", &c, 1_750_000_000_000_001);
    let env = paddle::INFO.envelope(body.as_bytes()).unwrap();
    assert_eq!(env.event_id, "evt_01abc");
    assert_eq!(env.event_type, "customer.created");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["notification_id"], "ntf_01abc");
    let sent = headers(face, "pdl_ntfset_x", &body, 1_750_000_000);
    let signature = sent["paddle-signature"].to_str().unwrap();
    let secrets = vec!["pdl_ntfset_x".to_owned()];
    assert_eq!(
        paddle::SIGNATURE.verify(signature, body.as_bytes(), &secrets, 1_750_000_000, 5),
        Ok(())
    );
    // A second secret's signature, or another body, is refused.
    let other = vec!["pdl_ntfset_y".to_owned()];
    assert!(paddle::SIGNATURE
        .verify(signature, body.as_bytes(), &other, 1_750_000_000, 5)
        .is_err());
    assert!(paddle::SIGNATURE
        .verify(signature, b"{}", &secrets, 1_750_000_000, 5)
        .is_err());
}

#[test]
fn stripe_and_recurly_webhooks_are_signed_the_way_billsync_verifies() {
    let secrets = vec!["whsec_sim".to_owned()];
    let other = vec!["whsec_other".to_owned()];
    let now = 1_750_000_010;
    let (body, signature) = first_webhook(
        SimProvider::Stripe,
        "whsec_sim",
        "stripe-signature",
        now - 10,
    );
    let body = body.as_bytes();
    assert_eq!(
        stripe::SIGNATURE.verify(&signature, body, &secrets, now, 300),
        Ok(())
    );
    assert!(stripe::SIGNATURE
        .verify(&signature, body, &other, now, 300)
        .is_err());

    let (body, signature) = first_webhook(
        SimProvider::Recurly,
        "whsec_sim",
        "recurly-signature",
        now - 10,
    );
    // Recurly's timestamp is in milliseconds.
    assert!(signature.starts_with("1750000000000,"), "{signature}");
    let body = body.as_bytes();
    assert_eq!(
        recurly::SIGNATURE.verify(&signature, body, &secrets, now, 300),
        Ok(())
    );
    assert!(recurly::SIGNATURE
        .verify(&signature, body, &other, now, 300)
        .is_err());
}

#[test]
fn maxio_webhook_is_signed_the_way_billsync_verifies() {
    let face = for_provider(SimProvider::Maxio);
    let (c, at) = changes(SimProvider::Maxio)
        .into_iter()
        .find(|(c, at)| face.webhook_body(&face.event_body("1", c, *at)).is_some())
        .expect("a Maxio change that is sent as a webhook");
    let body = face
        .webhook_body(&face.event_body("1", &c, at))
        .expect("found above");
    let sent = headers(face, "maxio_shared_key", &body, 0);
    let signature = sent["x-chargify-webhook-signature-hmac-sha-256"]
        .to_str()
        .unwrap();
    let secrets = vec!["maxio_shared_key".to_owned()];
    assert_eq!(
        maxio::verify_signature(signature, body.as_bytes(), &secrets),
        Ok(())
    );
    let other = vec!["other_key".to_owned()];
    assert!(maxio::verify_signature(signature, body.as_bytes(), &other).is_err());
}

#[test]
fn recurly_billing_info_updated_names_the_account_billsync_reads_again() {
    // Accounts whose VAT number and address Recurly keeps on their billing info: the
    // simulator announces their changes as `billing_info.updated`, naming the account code.
    let face = for_provider(SimProvider::Recurly);
    let announced: Vec<_> = changes(SimProvider::Recurly)
        .into_iter()
        .filter(|(c, _)| c.event_type == "billing_info.updated")
        .collect();
    assert!(
        !announced.is_empty(),
        "no billing_info.updated in the lifecycle"
    );
    for (c, at) in &announced {
        let body = face.event_body("evt_x0000000001", c, *at);
        let event: Value = serde_json::from_str(&body).expect("JSON");
        let code = event["account_code"].as_str().expect("an account code");
        // billsync reads the account again for it.
        assert_eq!(
            recurly::INFO.thin_reference(body.as_bytes()),
            Some((ObjectType::Customer, format!("code-{code}")))
        );
    }
}

#[test]
fn chargebee_every_resource_and_event_maps_to_its_own_ledger_id_through_billsyncs_mapping() {
    let face = for_provider(SimProvider::Chargebee);
    let all = changes(SimProvider::Chargebee);
    for stream in [
        "customers",
        "invoices",
        "credit_notes",
        "subscriptions",
        "transactions",
    ] {
        assert!(all.iter().any(|(c, _)| c.stream == stream), "no {stream}");
    }
    let provider = chargebee::INFO;
    for (c, at) in &all {
        let body = face.event_body("evt_1", c, *at);
        let o = provider
            .observe(body.as_bytes())
            .unwrap_or_else(|e| panic!("{} ({}): {e}", c.id, c.event_type))
            .unwrap_or_else(|| panic!("{} ({}) maps to nothing", c.id, c.event_type));
        assert_eq!(o.provider_id, c.id);
        assert_eq!(o.deleted, c.deleted, "{}", c.id);
        // The resource's `resource_version` (the change time in milliseconds, as the
        // simulator stamps it) orders it.
        let version = c.object["resource_version"]
            .as_i64()
            .unwrap_or_else(|| panic!("{} has no resource_version", c.id));
        assert_eq!(o.order_key, version * 1000);
        assert_eq!(provider.envelope(body.as_bytes()).unwrap().event_id, "ev_1");
    }
}

#[test]
fn chargebee_webhook_carries_the_basic_credentials_billsync_checks() {
    let face = for_provider(SimProvider::Chargebee);
    let (c, at) = changes(SimProvider::Chargebee).remove(0);
    let body = face.event_body("evt_1", &c, at);
    let sent = headers(face, "hook:pa:ss", &body, 0);
    let secrets = vec!["hook:pa:ss".to_owned()];
    assert_eq!(basic_auth::verify(&sent, &secrets), Ok(()));
    let other = vec!["hook:other".to_owned()];
    assert!(basic_auth::verify(&sent, &other).is_err());
}

#[test]
fn the_worlds_currencies_and_amounts_agree_with_billsyncs_mapping_for_every_provider() {
    // What `verify` checks independently (the world's currency and minor-unit amount of each
    // invoice, credit note and transaction) holds for what billsync's mapping makes of every
    // personality's rendering, and is compared for each of those collections somewhere.
    use billsync::sim_expectation::BillsyncMapping;
    use billsync_sim::scenario::{Clock, Generator};
    use billsync_sim::verify::{independent, Expectation, WorldFacts};
    let mut compared: std::collections::BTreeMap<(&str, String), usize> = Default::default();
    for provider in SimProvider::ALL {
        let face = for_provider(provider);
        let mut g = Generator::new(5, 2, Clock::Fixed(1_750_000_000));
        let mut at = 0;
        for c in (0..400).flat_map(|_| g.step()) {
            at = (at + 1).max(c.at * 1_000_000);
            let facts = WorldFacts::of(c.stream, &c.object);
            let Some(c) = face.translate(c, at) else {
                continue;
            };
            let Some(expected) = BillsyncMapping
                .expect(provider.as_str(), &c.object)
                .unwrap_or_else(|e| panic!("{provider} {}: {e}", c.id))
            else {
                continue;
            };
            if c.deleted || facts.collection.as_deref() != Some(expected.collection.as_str()) {
                continue;
            }
            let stored = json!({"deleted": false, "data": expected.data});
            let wrong = independent(&expected.collection, &stored, false, &facts);
            assert!(wrong.is_empty(), "{provider} {}: {wrong:?}", c.id);
            *compared
                .entry((provider.as_str(), expected.collection))
                .or_default() += 1;
        }
    }
    eprintln!("amounts compared: {compared:?}");
    for provider in SimProvider::ALL {
        assert!(
            compared.keys().any(|(p, _)| *p == provider.as_str()),
            "{provider}: no amount compared ({compared:?})"
        );
    }
}
