//! Field reading shared by the Recurly and Zuora mappings: both send money as decimal major
//! units next to an ISO currency and times as RFC 3339 text (or bare dates), so their API
//! objects go through here on the way to canonical `data`.

use chrono::NaiveDate;
use serde_json::Value;

use crate::model::money::{currency_code, json_major_to_minor};
use crate::model::time::{micros_to_rfc3339, parse_rfc3339};
use crate::providers::ParseError;

/// Read access to one provider object; JSON nulls and empty strings read as absent.
#[derive(Clone, Copy)]
pub struct Fields<'a>(pub &'a Value);

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0
            .get(key)
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
    }

    /// The first present key of several spellings (Zuora answers `updatedDate` or `UpdatedDate`).
    pub fn any(&self, keys: &[&str]) -> Option<&'a Value> {
        keys.iter().find_map(|k| self.get(k))
    }

    pub fn obj(&self, key: &str) -> Option<Fields<'a>> {
        self.get(key).filter(|v| v.is_object()).map(Fields)
    }

    pub fn s(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(Value::as_str)
    }

    /// A string field, owned (`None` when absent).
    pub fn str(&self, key: &str) -> Option<String> {
        self.s(key).map(str::to_owned)
    }

    /// An identifier given as a string or an integer (Recurly invoice numbers are either).
    pub fn id(&self, key: &str) -> Option<String> {
        id_text(self.get(key))
    }

    /// An integral count (quantities): a JSON integer, or a decimal with a zero fraction.
    pub fn count(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
            Some(Value::Number(n)) => {
                let text = n.to_string();
                match text.split_once('.') {
                    Some((int, frac)) if frac.bytes().all(|b| b == b'0') => int.parse::<i64>().ok(),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A list field: a JSON array, or a `{"data": [...]}` list object.
    pub fn list(&self, key: &str) -> Vec<Fields<'a>> {
        let items = match self.get(key) {
            Some(Value::Array(a)) => Some(a),
            Some(Value::Object(m)) => m.get("data").and_then(Value::as_array),
            _ => None,
        };
        items.map_or_else(Vec::new, |a| a.iter().map(Fields).collect())
    }

    /// The upper-case ISO currency at `key`; a malformed code is a parse error.
    pub fn currency(&self, key: &str) -> Result<Option<String>, ParseError> {
        self.s(key)
            .map(|c| currency_code(c).map_err(|e| ParseError(format!("`{key}`: {e}"))))
            .transpose()
    }

    /// A decimal major-unit amount as minor units of `currency`; absent is 0. A malformed or
    /// over-precise amount is a parse error (never rounded).
    pub fn money(&self, key: &str, currency: &str) -> Result<i64, ParseError> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => {
                json_major_to_minor(v, currency).map_err(|e| ParseError(format!("`{key}`: {e}")))
            }
        }
    }

    /// A time (RFC 3339 with any offset, or a bare `YYYY-MM-DD` date read as UTC midnight)
    /// in microseconds.
    pub fn micros(&self, keys: &[&str]) -> Option<i64> {
        self.any(keys).and_then(Value::as_str).and_then(time_micros)
    }

    /// The same time as canonical RFC 3339 UTC text (`None` when absent or unreadable).
    pub fn time(&self, keys: &[&str]) -> Option<String> {
        self.micros(keys).and_then(micros_to_rfc3339)
    }
}

/// RFC 3339 text or a bare date in microseconds since the epoch.
pub fn time_micros(text: &str) -> Option<i64> {
    parse_rfc3339(text).or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_micros())
    })
}

/// A JSON id (string or integer) as text, at most 255 bytes.
pub fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() && s.len() <= 255 => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// A canonical reference `{provider}:{id}` (`None` when there is no id).
pub fn reference(provider: &str, id: Option<String>) -> Option<String> {
    id.map(|id| format!("{provider}:{id}"))
}

/// Minimum and maximum of the times at `start`/`end` over `items`, as canonical text.
pub fn span(items: &[Fields], start: &[&str], end: &[&str]) -> (Option<String>, Option<String>) {
    let min = items.iter().filter_map(|i| i.micros(start)).min();
    let max = items.iter().filter_map(|i| i.micros(end)).max();
    (
        min.and_then(micros_to_rfc3339),
        max.and_then(micros_to_rfc3339),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_and_offsets_become_utc_micros() {
        assert_eq!(time_micros("1970-01-02"), Some(86_400_000_000));
        assert_eq!(
            time_micros("1970-01-01T01:00:00+01:00"),
            Some(0),
            "offset is honoured"
        );
        assert_eq!(time_micros("yesterday"), None);
    }

    #[test]
    fn money_is_exact_and_errors_are_typed() {
        let v = json!({"a": 10.99, "b": "5", "c": 1.005, "d": true});
        let f = Fields(&v);
        assert_eq!(f.money("a", "USD"), Ok(1099));
        assert_eq!(f.money("b", "JPY"), Ok(5));
        assert_eq!(f.money("missing", "USD"), Ok(0));
        assert!(f.money("c", "USD").is_err());
        assert!(f.money("d", "USD").is_err());
    }

    #[test]
    fn counts_accept_integral_decimals_only() {
        let v = json!({"a": 3, "b": 2.0, "c": 2.5});
        let f = Fields(&v);
        assert_eq!(f.count("a"), Some(3));
        assert_eq!(f.count("b"), Some(2));
        assert_eq!(f.count("c"), None);
    }
}
