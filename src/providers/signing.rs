//! The one HMAC-SHA256 every signing provider uses (Stripe, Paddle, Recurly, Maxio), the
//! one way a webhook's signatures are checked against a connection's secrets, the one
//! reading of `key=value` signature headers (Stripe, Paddle), and the one check of a signed
//! timestamp against the replay window ([`Scheme`]): the providers' schemes differ only in
//! how the header is written, what is signed and when the clock is read, which each
//! provider's `webhook` module states as its `SIGNATURE` and intake applies through
//! `Provider::verify`.

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

/// How a provider's webhook signature is checked, given its header's value (as text).
#[derive(Debug, Clone, Copy)]
pub enum Scheme {
    /// Over the raw body alone (Maxio): no timestamp is signed, so there is no replay window
    /// and the time arguments of [`Scheme::verify`] do not apply.
    Body(CheckBody),
    /// Over `"{timestamp}{joint}{raw body}"`, the header carrying the timestamp and the
    /// signatures (Stripe, Paddle, Recurly).
    Timestamped(Timestamped),
}

/// Checks a signature header's value over the raw body against every active secret.
pub type CheckBody = fn(&str, &[u8], &[String]) -> Result<(), VerifyError>;

/// A signature over a timestamp and the body, as its provider's SDK checks it.
#[derive(Debug, Clone, Copy)]
pub struct Timestamped {
    /// The header's timestamp (its text, as signed, and its value in `units_per_sec`) and
    /// its signatures; a header without a usable timestamp is `InvalidSignature`.
    pub read: ReadTimestamped,
    /// Timestamp units in a second: 1 (seconds) or 1,000 (milliseconds).
    pub units_per_sec: i64,
    /// What the signed text holds between the timestamp and the body.
    pub joint: &'static str,
    /// When the timestamp is held against the clock.
    pub replay: Replay,
}

/// Reads a timestamped signature header: (timestamp text, its value, the signatures).
pub type ReadTimestamped = fn(&str) -> Result<(&str, i64, Vec<[u8; 32]>), VerifyError>;

/// When a signed timestamp is held against the replay window (`tolerance_secs` of now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Before the signatures, in both directions: a timestamp too far in the past or the
    /// future is stale whatever it signs (Paddle, Recurly).
    BothWaysFirst,
    /// After a signature matched, and only the past: a future timestamp passes (Stripe).
    PastOnlyAfter,
}

impl Scheme {
    /// [`Scheme::Timestamped`]: the timestamp and signatures that `read` finds in a header, the
    /// timestamp in `units_per_sec`, `joint` between it and the body, held against the clock
    /// as `replay` says.
    pub const fn timestamped(
        read: ReadTimestamped,
        units_per_sec: i64,
        joint: &'static str,
        replay: Replay,
    ) -> Scheme {
        Scheme::Timestamped(Timestamped {
            read,
            units_per_sec,
            joint,
            replay,
        })
    }

    /// Checks a signature header's value `header` over `body` against every active secret
    /// (`InvalidSignature`), and a signed timestamp against `now_secs` and `tolerance_secs`
    /// (`StaleTimestamp`), in the order the scheme's [`Replay`] says.
    pub fn verify(
        &self,
        header: &str,
        body: &[u8],
        secrets: &[String],
        now_secs: i64,
        tolerance_secs: i64,
    ) -> Result<(), VerifyError> {
        let t = match self {
            Scheme::Body(verify) => return verify(header, body, secrets),
            Scheme::Timestamped(t) => t,
        };
        let (text, at, signatures) = (t.read)(header)?;
        let now = now_secs.saturating_mul(t.units_per_sec);
        let tolerance = tolerance_secs.saturating_mul(t.units_per_sec);
        let signed: [&[u8]; 3] = [text.as_bytes(), t.joint.as_bytes(), body];
        match t.replay {
            Replay::BothWaysFirst => {
                if now.saturating_sub(at).saturating_abs() > tolerance {
                    return Err(VerifyError::StaleTimestamp);
                }
                check(secrets, &signed, &signatures)
            }
            Replay::PastOnlyAfter => {
                check(secrets, &signed, &signatures)?;
                if at < now.saturating_sub(tolerance) {
                    return Err(VerifyError::StaleTimestamp);
                }
                Ok(())
            }
        }
    }
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

    fn read_leading(header: &str) -> Result<(&str, i64, Vec<[u8; 32]>), VerifyError> {
        let (timestamp, signature) = header.split_once(',').unwrap_or((header, ""));
        let at = timestamp
            .parse()
            .map_err(|_| VerifyError::InvalidSignature)?;
        Ok((
            timestamp,
            at,
            hex_signature(signature).into_iter().collect(),
        ))
    }

    /// `"{timestamp},{signature of timestamp.body}"` under `k`.
    fn header(timestamp: i64, body: &[u8]) -> String {
        let t = timestamp.to_string();
        format!("{t},{}", hex_mac("k", &[t.as_bytes(), b".", body]))
    }

    #[test]
    fn a_timestamped_scheme_holds_the_timestamp_against_the_window_as_its_replay_says() {
        let secrets = ["k".to_owned()];
        let first = Scheme::timestamped(read_leading, 1, ".", Replay::BothWaysFirst);
        let after = Scheme::timestamped(read_leading, 1, ".", Replay::PastOnlyAfter);
        let millis = Scheme::timestamped(read_leading, 1000, ".", Replay::BothWaysFirst);
        let stale = Err(VerifyError::StaleTimestamp);
        let invalid = Err(VerifyError::InvalidSignature);
        let good = header(100, b"{}");
        let forged = format!("100,{}", "00".repeat(32));
        for (scheme, header, now, verdict) in [
            (first, &good, 105, Ok(())),
            (first, &good, 95, Ok(())),
            (first, &good, 106, stale),
            // Before the signature, and into the future too.
            (first, &forged, 106, stale),
            (first, &good, 94, stale),
            (first, &forged, 100, invalid),
            (after, &good, 106, stale),
            // After the signature, and only the past.
            (after, &forged, 106, invalid),
            (after, &good, 0, Ok(())),
            // Milliseconds: 100 ms is 0.1 s.
            (millis, &good, 0, Ok(())),
            (millis, &header(6_000, b"{}"), 0, stale),
            (first, &"x,00".to_owned(), 100, invalid),
        ] {
            assert_eq!(
                scheme.verify(header, b"{}", &secrets, now, 5),
                verdict,
                "{scheme:?} {header} at {now}"
            );
        }
        assert_eq!(first.verify(&good, b"{ }", &secrets, 100, 5), invalid);
    }

    #[test]
    fn a_body_scheme_ignores_the_time() {
        let scheme = Scheme::Body(|header, body, secrets| {
            check(
                secrets,
                &[body],
                &[hex_signature(header).unwrap_or_default()],
            )
        });
        let sig = hex_mac("k", &[b"{}"]);
        assert_eq!(
            scheme.verify(&sig, b"{}", &["k".into()], i64::MAX, 0),
            Ok(())
        );
        assert_eq!(
            scheme.verify(&sig, b"{ }", &["k".into()], 0, 0),
            Err(VerifyError::InvalidSignature)
        );
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
