//! The one HMAC-SHA256 every signing provider uses (Stripe, Paddle, Recurly, Maxio), and the
//! one way a webhook's signatures are checked against a connection's secrets: their schemes
//! differ only in how the header is written and what is signed, which each provider's
//! module reads and assembles.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// HMAC-SHA256 of `parts` (concatenated) keyed with `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
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
