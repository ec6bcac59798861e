//! HTTP Basic verification (RFC 7617) of webhooks, for the providers that authenticate them
//! that way instead of signing (Chargebee, Zuora callouts; intake calls it through their
//! `Provider::verify`). Security code, so written and tested once, with one strictness:
//!
//! - `Authorization: <scheme> <token68>`: the scheme is case-insensitive (RFC 9110 §11.1),
//!   spaces between the two are allowed, the token holds none;
//! - the token is standard base64 of `user-id:password`, the user-id ending at the first
//!   colon (RFC 7617 §2), so a password may hold colons;
//! - it must equal one of the connection's `username:password` entries (two during a
//!   rotation), each compared in constant time; entries without a colon never match.
//!
//! chargebee-node's own validator accepts the same credentials (the vectors in
//! `tests/data/chargebee_webhook_vectors.json` check it) and is stricter only in spelling
//! (`Basic` and one space), which no sender varies.

use axum::http::HeaderMap;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::VerifyError;

/// Checks the request's Basic credentials against `secrets` (`username:password` entries).
pub fn verify(headers: &HeaderMap, secrets: &[String]) -> Result<(), VerifyError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(VerifyError::InvalidCredentials)?;
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or(VerifyError::InvalidCredentials)?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("basic") || token.is_empty() || token.contains(' ') {
        return Err(VerifyError::InvalidCredentials);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| VerifyError::InvalidCredentials)?;
    if !decoded.contains(&b':') {
        return Err(VerifyError::InvalidCredentials);
    }
    // The user-id ends at the first colon of both the entry and the credentials, so equal
    // texts are equal user-ids and equal passwords. Lengths are not secret; contents are
    // compared in constant time, against every entry.
    let mut matched = subtle::Choice::from(0);
    for entry in secrets.iter().filter(|e| e.contains(':')) {
        matched |= entry.as_bytes().ct_eq(&decoded);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::InvalidCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", value.parse().unwrap());
        h
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secrets() -> Vec<String> {
        vec!["old:pw".into(), "hook:pa:ss".into(), "nocolon".into()]
    }

    #[test]
    fn every_entry_is_tried_and_the_user_id_ends_at_the_first_colon() {
        assert_eq!(
            verify(&auth(&format!("Basic {}", b64("hook:pa:ss"))), &secrets()),
            Ok(())
        );
        assert_eq!(
            verify(&auth(&format!("Basic {}", b64("old:pw"))), &secrets()),
            Ok(())
        );
        for bad in [
            "hook:pa",
            "hook:pa:ss:",
            "old:pw ",
            "oldpw",
            "nocolon",
            ":",
            "",
        ] {
            assert_eq!(
                verify(&auth(&format!("Basic {}", b64(bad))), &secrets()),
                Err(VerifyError::InvalidCredentials),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_header_must_be_well_formed() {
        let token = b64("old:pw");
        for ok in [
            format!("Basic {token}"),
            format!("basic {token}"),
            format!("BASIC  {token}"),
        ] {
            assert_eq!(verify(&auth(&ok), &secrets()), Ok(()), "{ok}");
        }
        for bad in [
            format!("Bearer {token}"),
            format!("Basic{token}"),
            format!("Basic {token} extra"),
            "Basic".to_string(),
            "Basic !!!".to_string(),
        ] {
            assert_eq!(
                verify(&auth(&bad), &secrets()),
                Err(VerifyError::InvalidCredentials),
                "{bad}"
            );
        }
        assert_eq!(
            verify(&HeaderMap::new(), &secrets()),
            Err(VerifyError::InvalidCredentials)
        );
        assert_eq!(
            verify(&auth(&format!("Basic {token}")), &[]),
            Err(VerifyError::InvalidCredentials)
        );
    }
}
