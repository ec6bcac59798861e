//! Reading minor-unit provider objects (Chargebee, Maxio): field access
//! with canonical money, currency and time text. Intake never calls these directly.

use serde_json::Value;

use crate::model::money::{currency_code, json_minor};
use crate::model::time::{micros_to_rfc3339, parse_rfc3339};
use crate::providers::ParseError;

/// Read access to a provider object's fields (nulls read as absent).
#[derive(Clone, Copy)]
pub struct Obj<'a>(pub &'a Value);

impl<'a> Obj<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn obj(&self, key: &str) -> Option<Obj<'a>> {
        self.get(key).filter(|v| v.is_object()).map(Obj)
    }

    pub fn s(&self, key: &str) -> Option<&'a str> {
        self.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A string field, owned (`None` when absent or empty).
    pub fn str(&self, key: &str) -> Option<String> {
        self.s(key).map(str::to_owned)
    }

    /// A person's name from `first_name` and `last_name` (either alone if only one is set),
    /// else the field `otherwise` (a company or organization name).
    pub fn full_name(&self, otherwise: &str) -> Option<String> {
        match (self.s("first_name"), self.s("last_name")) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(n), None) | (None, Some(n)) => Some(n.to_owned()),
            (None, None) => self.str(otherwise),
        }
    }

    /// An integer field given as a number or as digits in a string.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn list(&self, key: &str) -> Vec<Obj<'a>> {
        self.get(key)
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |a| a.iter().map(Obj).collect())
    }

    /// An integer minor-unit amount (number or digit string); absent is 0.
    pub fn minor(&self, key: &str) -> Result<i64, ParseError> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => json_minor(v).map_err(|e| ParseError(format!("`{key}`: {e}"))),
        }
    }

    /// A reference to another object of `provider`, as a canonical id.
    pub fn reference(&self, provider: &str, key: &str) -> Option<String> {
        let id = match self.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        id.map(|id| format!("{provider}:{id}"))
    }

    /// The upper-case ISO currency at `key`; a malformed code is a parse error.
    pub fn currency(&self, key: &str) -> Result<Option<String>, ParseError> {
        match self.s(key) {
            None => Ok(None),
            Some(c) => currency_code(c)
                .map(Some)
                .map_err(|e| ParseError(format!("`{key}`: {e}"))),
        }
    }

    /// An RFC 3339 time (any offset) as canonical UTC text; `None` when absent or unreadable.
    pub fn rfc3339(&self, key: &str) -> Option<String> {
        self.micros(key).and_then(micros_to_rfc3339)
    }

    /// An RFC 3339 time (any offset) in microseconds; also Ruby's `2024-06-20 12:00:00 -0400`
    /// form, which Maxio's form-encoded webhooks use.
    pub fn micros(&self, key: &str) -> Option<i64> {
        let text = self.s(key)?;
        parse_rfc3339(text).or_else(|| {
            chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z")
                .ok()
                .map(|t| t.timestamp_micros())
        })
    }
}

/// A JSON id (string or number) as text.
pub fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() && s.len() <= 255 => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_full_name_joins_first_and_last_else_takes_the_other_field() {
        let name = |v: Value| Obj(&v).full_name("company");
        assert_eq!(
            name(json!({"first_name": "Ada", "last_name": "Lovelace"})).as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(
            name(json!({"last_name": "Lovelace", "company": "X"})).as_deref(),
            Some("Lovelace")
        );
        assert_eq!(
            name(json!({"first_name": "", "company": "X"})).as_deref(),
            Some("X")
        );
        assert_eq!(name(json!({})), None);
    }
}
