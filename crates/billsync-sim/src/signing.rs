//! The simulator's webhook signatures, written from each provider's documentation rather than
//! taken from billsync: billsync's verifiers are then checked against a second, independent
//! implementation (tests/it/sim_signatures.rs on billsync's side).
//!
//! - Stripe ("Check the webhook signatures", docs.stripe.com/webhooks#verify-manually):
//!   `Stripe-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 of `<t>.<raw body>` keyed
//!   with the endpoint's whole `whsec_...` secret.
//! - Paddle Billing ("Verify webhook signatures", developer.paddle.com/webhooks/signature-
//!   verification): `Paddle-Signature: ts=<unix seconds>;h1=<hex>`, the HMAC-SHA256 of
//!   `<ts>:<raw body>` (a colon) keyed with the destination's secret key.
//! - Recurly ("Signature verification", recurly.com/developers/guides/signature-verification):
//!   `recurly-signature: <unix milliseconds>,<hex>`, the HMAC-SHA256 of `<ms>.<raw body>` keyed
//!   with the endpoint's secret.
//! - Maxio Advanced Billing (Chargify, "Webhooks", signature verification):
//!   `X-Chargify-Webhook-Signature-Hmac-Sha-256: <hex>`, the HMAC-SHA256 of the raw
//!   form-encoded body keyed with the site's shared key; no timestamp.
//!
//! Chargebee and Zuora sign nothing: their webhooks carry HTTP Basic credentials (Chargebee)
//! or none the simulator adds (Zuora callouts), set by each personality.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Lower-case hex of the HMAC-SHA256, keyed with `key`, of the concatenation of `message`.
fn hex_hmac(key: &str, message: &[&[u8]]) -> String {
    // HMAC takes keys of any length (RFC 2104 hashes the long ones), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .expect("HMAC accepts a key of any length");
    message.iter().for_each(|part| mac.update(part));
    hex::encode(mac.finalize().into_bytes())
}

/// The `Stripe-Signature` header value for `body` sent at `t` (unix seconds).
pub fn stripe(secret: &str, t: i64, body: &[u8]) -> String {
    let t = t.to_string();
    let v1 = hex_hmac(secret, &[t.as_bytes(), b".", body]);
    format!("t={t},v1={v1}")
}

/// The `Paddle-Signature` header value for `body` sent at `ts` (unix seconds).
pub fn paddle(secret: &str, ts: i64, body: &[u8]) -> String {
    let ts = ts.to_string();
    let h1 = hex_hmac(secret, &[ts.as_bytes(), b":", body]);
    format!("ts={ts};h1={h1}")
}

/// The `recurly-signature` header value for `body` sent at `ms` (unix milliseconds).
pub fn recurly(secret: &str, ms: i64, body: &[u8]) -> String {
    let ms = ms.to_string();
    let signature = hex_hmac(secret, &[ms.as_bytes(), b".", body]);
    format!("{ms},{signature}")
}

/// The `X-Chargify-Webhook-Signature-Hmac-Sha-256` header value for `body`.
pub fn maxio(secret: &str, body: &[u8]) -> String {
    hex_hmac(secret, &[body])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            maxio("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn headers_have_each_providers_layout() {
        let s = stripe("whsec_x", 1_700_000_000, b"{}");
        assert!(
            s.starts_with("t=1700000000,v1=") && s.len() == 16 + 64,
            "{s}"
        );
        assert_eq!(
            &s[16..],
            hex_hmac("whsec_x", &[b"1700000000.{}"]),
            "the MAC covers `t.body`"
        );
        let p = paddle("pdl_ntfset_x", 1_700_000_000, b"{}");
        assert_eq!(
            p,
            format!(
                "ts=1700000000;h1={}",
                hex_hmac("pdl_ntfset_x", &[b"1700000000:{}"])
            )
        );
        let r = recurly("k", 1_700_000_000_123, b"{}");
        assert_eq!(
            r,
            format!("1700000000123,{}", hex_hmac("k", &[b"1700000000123.{}"]))
        );
    }
}
