//! Stripe webhook signatures: `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=...]`, HMAC-SHA256
//! over `"{t}.{raw body}"` keyed with the whole `whsec_...` string, any active secret.

use crate::providers::signing::{any_signed, hex_signature, hmac_sha256};
use crate::providers::VerifyError;

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    hmac_sha256(secret.as_bytes(), &[timestamp.as_bytes(), b".", body])
}

/// Verifies a `Stripe-Signature` header the way Stripe's own SDK does: parse, require a `t=`
/// and at least one `v1=`, accept if any `v1` matches any secret (constant time), then refuse
/// timestamps older than `tolerance_secs` (future timestamps pass, as in the SDK).
pub fn verify_header(
    header: &str,
    body: &[u8],
    secrets: &[String],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<[u8; 32]> = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        // Exactly as Stripe's SDK: no trimming, so `, v1=` names no `v1` scheme.
        match key {
            "t" if timestamp.is_none() => timestamp = Some(value),
            "v1" => signatures.extend(hex_signature(value)),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::InvalidSignature)?;
    let t: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::InvalidSignature)?;
    if signatures.is_empty() {
        return Err(VerifyError::InvalidSignature);
    }
    if !any_signed(secrets, &[timestamp.as_bytes(), b".", body], &signatures) {
        return Err(VerifyError::InvalidSignature);
    }
    if t < now_secs.saturating_sub(tolerance_secs) {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(())
}

/// Makes a `Stripe-Signature` header value (for the simulator, tests and benchmarks).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, &timestamp.to_string(), body))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "whsec_test";

    #[test]
    fn own_signature_verifies_and_any_secret_may_match() {
        let header = sign(SECRET, 1000, b"{}");
        let secrets = vec!["whsec_old".to_string(), SECRET.to_string()];
        assert_eq!(verify_header(&header, b"{}", &secrets, 1000, 300), Ok(()));
        assert_eq!(
            verify_header(&header, b"{ }", &secrets, 1000, 300),
            Err(VerifyError::InvalidSignature)
        );
        assert_eq!(
            verify_header(&header, b"{}", &secrets, 1301, 300),
            Err(VerifyError::StaleTimestamp)
        );
    }

    #[test]
    fn stale_is_only_reported_for_a_valid_signature() {
        let header = sign("whsec_other", 1000, b"{}");
        assert_eq!(
            verify_header(&header, b"{}", &[SECRET.into()], 99_999, 300),
            Err(VerifyError::InvalidSignature)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(header in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = verify_header(&header, &body, &[SECRET.into()], 1000, 300);
        }
    }
}
