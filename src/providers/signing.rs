//! The one HMAC-SHA256 every signing provider uses (Stripe, Paddle, Recurly, Maxio), the
//! one way a webhook's signatures are checked against a connection's secrets, and the one
//! reading of `key=value` signature headers (Stripe, Paddle): their schemes differ only in
//! how the header is written and what is signed, which each provider's `webhook` module says.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::VerifyError;

/// HMAC-SHA256 of `parts` (concatenated) keyed with `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The HMAC-SHA256 of `parts` keyed with `secret`, in hex: a signature as a provider sends
/// it. Only the `sign` functions, which tests and benchmarks use, call it; verification compares
/// MACs without making hex (`check`).
pub fn hex_mac(secret: &str, parts: &[&[u8]]) -> String {
    hex::encode(hmac_sha256(secret.as_bytes(), parts))
}

/// A signature as headers carry it: 64 hex digits (either case). `None` for anything else.
pub fn hex_signature(text: &str) -> Option<[u8; 32]> {
    let mut sig = [0u8; 32];
    hex::decode_to_slice(text, &mut sig).ok().map(|_| sig)
}

/// Whether any of `signatures` is the HMAC-SHA256 of `signed` (concatenated) under any of
/// `secrets` (two during a rotation). Every pair is compared, in constant time, so the time
/// taken tells nothing of which pair matched, or whether one did.
pub fn any_signed(secrets: &[String], signed: &[&[u8]], signatures: &[[u8; 32]]) -> bool {
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = hmac_sha256(secret.as_bytes(), signed);
        for sig in signatures {
            matched |= expected.ct_eq(sig);
        }
    }
    bool::from(matched)
}

/// [`any_signed`] as a verdict: `InvalidSignature` unless a signature matches.
pub fn check(
    secrets: &[String],
    signed: &[&[u8]],
    signatures: &[[u8; 32]],
) -> Result<(), VerifyError> {
    if any_signed(secrets, signed, signatures) {
        Ok(())
    } else {
        Err(VerifyError::InvalidSignature)
    }
}

/// A `key=value` signature header read as its provider's SDK reads it: the first item keyed
/// `timestamp_key` (its text and its value: unix seconds) and every item keyed `signature_key`
/// that is a signature ([`hex_signature`]); other keys and items without `=` are ignored.
/// `items` are the header's items as the provider splits them. No timestamp, or one that is
/// not a number, is `InvalidSignature`.
pub fn timestamped<'a>(
    items: impl Iterator<Item = &'a str>,
    timestamp_key: &str,
    signature_key: &str,
) -> Result<(&'a str, i64, Vec<[u8; 32]>), VerifyError> {
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<[u8; 32]> = Vec::new();
    for (key, value) in items.filter_map(|item| item.split_once('=')) {
        if key == timestamp_key && timestamp.is_none() {
            timestamp = Some(value);
        } else if key == signature_key {
            signatures.extend(hex_signature(value));
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::InvalidSignature)?;
    let value = timestamp
        .parse()
        .map_err(|_| VerifyError::InvalidSignature)?;
    Ok((timestamp, value, signatures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_signature_under_any_secret_matches_and_nothing_else() {
        let secrets = vec!["old".to_string(), "new".to_string()];
        let signed: &[&[u8]] = &[b"1700000000", b".", b"{\"id\":1}"];
        let by_new = hmac_sha256(b"new", signed);
        let by_other = hmac_sha256(b"other", signed);
        assert!(any_signed(&secrets, signed, &[by_other, by_new]));
        assert!(!any_signed(&secrets, signed, &[by_other]));
        assert!(!any_signed(&secrets, signed, &[]));
        assert!(!any_signed(&[], signed, &[by_new]));
        // The signed text is the concatenation: a byte moved is another text.
        assert!(!any_signed(
            &secrets,
            &[b"1700000000.", b"{\"id\":1}", b"x"],
            &[by_new]
        ));
    }

    #[test]
    fn the_verdict_is_invalid_unless_a_signature_matches() {
        let signed: &[&[u8]] = &[b"body"];
        let sig = hmac_sha256(b"k", signed);
        assert_eq!(check(&["k".into()], signed, &[sig]), Ok(()));
        assert_eq!(
            check(&["j".into()], signed, &[sig]),
            Err(VerifyError::InvalidSignature)
        );
        assert_eq!(hex_mac("k", signed), hex::encode(sig));
    }

    #[test]
    fn timestamped_headers_take_the_first_timestamp_and_every_signature() {
        let a = hex::encode(hmac_sha256(b"a", &[b"x"]));
        let b = hex::encode(hmac_sha256(b"b", &[b"x"]));
        let header = format!("t=5,v1={a},v0=00,t=9,v1={b},v1=zz,junk");
        let (text, value, sigs) = timestamped(header.split(','), "t", "v1").unwrap();
        assert_eq!((text, value, sigs.len()), ("5", 5, 2));
        for bad in ["v1=00", "t=x,v1=00", ""] {
            assert_eq!(
                timestamped(bad.split(','), "t", "v1"),
                Err(VerifyError::InvalidSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_64_hex_digits_are_a_signature() {
        let sig = hmac_sha256(b"k", &[b"body"]);
        assert_eq!(hex_signature(&hex::encode(sig)), Some(sig));
        assert_eq!(hex_signature(&hex::encode_upper(sig)), Some(sig));
        for bad in [
            "",
            "00",
            &hex::encode(sig)[..62],
            &format!("{}00", hex::encode(sig)),
            &"zz".repeat(32),
        ] {
            assert_eq!(hex_signature(bad), None, "{bad}");
        }
    }
}
