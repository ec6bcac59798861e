//! Query-string parsing with errors that name the parameter (axum's own rejections are text).

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

use super::error::ApiError;
use crate::model::time::parse_rfc3339;

pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let pairs = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        Ok(Params(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn limit(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    invalid("limit", &format!("must be a whole number from 1 to {max}"))
                }),
        }
    }

    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| parse_rfc3339(v).ok_or_else(|| invalid(name, "must be an RFC 3339 time")))
            .transpose()
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| invalid(name, "must be a non-negative whole number")),
        }
    }
}

pub fn invalid(name: &str, message: &str) -> ApiError {
    ApiError::bad_request("invalid_request", format!("`{name}` {message}"))
}

/// An opaque list cursor for the keyset (`updated_at`, `id`).
pub fn encode_cursor(updated_at: i64, id: &str) -> String {
    B64.encode(format!("{updated_at}|{id}"))
}

pub fn decode_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let bad = || invalid("cursor", "is not a cursor this API returned");
    let bytes = B64.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = text.split_once('|').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_garbage_is_refused() {
        let c = encode_cursor(42, "stripe:in_1|x");
        assert_eq!(
            decode_cursor(&c).unwrap(),
            (42, "stripe:in_1|x".to_string())
        );
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor(&B64.encode("nope")).is_err());
    }

    #[test]
    fn limit_is_bounded() {
        assert_eq!(Params::parse(None).unwrap().limit(10, 100).unwrap(), 10);
        assert!(Params::parse(Some("limit=0"))
            .unwrap()
            .limit(10, 100)
            .is_err());
        assert!(Params::parse(Some("limit=101"))
            .unwrap()
            .limit(10, 100)
            .is_err());
        assert!(Params::parse(Some("updated_after=yesterday"))
            .unwrap()
            .time("updated_after")
            .is_err());
    }
}
