//! What an admin API body may say about a connection: the fields of `POST` and `PATCH
//! /admin/v1/connections`, read one by one so a `400` names the field at fault (the published
//! shapes are `crate::api::ConnectionIn` and `ConnectionPatchIn`; the tests below check both
//! agree with what is read here).

use serde_json::{Map, Value};

use super::ConnectionError;
use crate::outbound::refuse_base_url;
use crate::providers::{self, ProviderKind};

pub(super) fn invalid(field: &str, message: impl Into<String>) -> ConnectionError {
    ConnectionError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Reads and validates the fields of an admin API body (creation and `PATCH` alike).
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    allow_plain_http: bool,
}

impl<'a> Fields<'a> {
    fn of(body: &'a Value, allow_plain_http: bool) -> Result<Self, ConnectionError> {
        match body.as_object() {
            Some(obj) => Ok(Fields {
                obj,
                allow_plain_http,
            }),
            None => Err(invalid("body", "must be a JSON object")),
        }
    }

    /// A string field; `Ok(None)` when absent or null, an error when required.
    fn text(&self, field: &str, required: bool) -> Result<Option<String>, ConnectionError> {
        match self.obj.get(field) {
            None | Some(Value::Null) if required => Err(invalid(field, "is required")),
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(invalid(field, "must not be empty"))
            }
            Some(Value::String(s)) if s.len() > 512 => {
                Err(invalid(field, "is longer than 512 characters"))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(field, "must be a string")),
        }
    }

    /// An identifier: a string without control characters or surrounding white space.
    fn id(&self, field: &str) -> Result<String, ConnectionError> {
        let v = self.text(field, true)?.unwrap_or_default();
        if v.chars().any(char::is_control) {
            return Err(invalid(field, "must not contain control characters"));
        }
        if v.trim() != v {
            return Err(invalid(field, "must not begin or end with white space"));
        }
        Ok(v)
    }

    fn positive(&self, field: &str, max: i64) -> Result<Option<i64>, ConnectionError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(invalid(
                    field,
                    format!("must be a whole number from 1 to {max}"),
                )),
            },
        }
    }

    fn rate(&self) -> Result<Option<i64>, ConnectionError> {
        self.positive("rate_limit_per_sec", 100_000)
    }

    fn interval(&self) -> Result<Option<i64>, ConnectionError> {
        self.positive("reconcile_interval_secs", 7 * 24 * 3600)
    }

    fn webhook_secrets(&self) -> Result<Vec<String>, ConnectionError> {
        match self.obj.get("webhook_secrets") {
            None | Some(Value::Null) => Err(invalid("webhook_secrets", "is required")),
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= 16 => items
                .iter()
                .map(|s| match s.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= 512 => Ok(s.to_owned()),
                    _ => Err(invalid(
                        "webhook_secrets",
                        "every entry must be a non-empty string",
                    )),
                })
                .collect(),
            Some(_) => Err(invalid(
                "webhook_secrets",
                "must be a list of 1 to 16 strings",
            )),
        }
    }

    fn api_base_url(&self) -> Result<Option<String>, ConnectionError> {
        let url = self.text("api_base_url", false)?;
        if let Some(reason) = url
            .as_deref()
            .and_then(|u| refuse_base_url(u, self.allow_plain_http))
        {
            return Err(invalid("api_base_url", reason));
        }
        Ok(url)
    }

    /// `Some(v)` when the field is present (`Some(None)` for null: back to the default).
    fn present<T>(
        &self,
        field: &str,
        read: impl FnOnce(&Self) -> Result<Option<T>, ConnectionError>,
    ) -> Result<Option<Option<T>>, ConnectionError> {
        if self.obj.contains_key(field) {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A validated `POST /admin/v1/connections` body.
pub(super) struct NewConnection {
    pub(super) merchant_id: String,
    pub(super) provider: ProviderKind,
    pub(super) account_id: String,
    pub(super) webhook_secrets: Vec<String>,
    pub(super) api_key: String,
    pub(super) api_base_url: Option<String>,
    pub(super) rate_limit_per_sec: Option<i64>,
    pub(super) reconcile_interval_secs: Option<i64>,
    pub(super) api_version: Option<String>,
}

impl NewConnection {
    pub(super) fn from_json(body: &Value, allow_plain_http: bool) -> Result<Self, ConnectionError> {
        let f = Fields::of(body, allow_plain_http)?;
        let provider_name = f.text("provider", true)?.unwrap_or_default();
        let provider = ProviderKind::parse(&provider_name).ok_or_else(|| {
            invalid(
                "provider",
                "must be one of stripe, chargebee, recurly, paddle, zuora, maxio",
            )
        })?;
        let webhook_secrets = f.webhook_secrets()?;
        check_basic_auth_entries(provider, &webhook_secrets)?;
        let api_base_url = f.api_base_url()?;
        Ok(NewConnection {
            merchant_id: f.id("merchant_id")?,
            provider,
            account_id: f.id("account_id")?,
            webhook_secrets,
            api_key: f.text("api_key", true)?.unwrap_or_default(),
            api_base_url,
            rate_limit_per_sec: f.rate()?,
            reconcile_interval_secs: f.interval()?,
            api_version: f.text("api_version", false)?,
        })
    }
}

/// For providers that authenticate webhooks with HTTP Basic, every entry is `user:password`.
pub(super) fn check_basic_auth_entries(
    provider: ProviderKind,
    secrets: &[String],
) -> Result<(), ConnectionError> {
    let basic = providers::for_kind(provider).basic_auth_webhooks();
    if basic && secrets.iter().any(|s| !s.contains(':')) {
        return Err(invalid(
            "webhook_secrets",
            format!(
                "{} authenticates webhooks with HTTP Basic: every entry must be `username:password`",
                provider.as_str()
            ),
        ));
    }
    Ok(())
}

/// A validated `PATCH /admin/v1/connections/{id}` body: each field `None` when absent; the
/// optional settings `Some(None)` when null (back to the provider's default).
#[derive(Debug)]
pub(super) struct ConnectionPatch {
    pub(super) webhook_secrets: Option<Vec<String>>,
    pub(super) api_key: Option<String>,
    pub(super) api_base_url: Option<Option<String>>,
    pub(super) rate_limit_per_sec: Option<Option<i64>>,
    pub(super) reconcile_interval_secs: Option<Option<i64>>,
    pub(super) api_version: Option<Option<String>>,
}

/// What `PATCH` may change.
const PATCHABLE: [&str; 6] = [
    "webhook_secrets",
    "api_key",
    "api_base_url",
    "rate_limit_per_sec",
    "reconcile_interval_secs",
    "api_version",
];

impl ConnectionPatch {
    pub(super) fn from_json(body: &Value, allow_plain_http: bool) -> Result<Self, ConnectionError> {
        let f = Fields::of(body, allow_plain_http)?;
        if let Some(field) = f.obj.keys().find(|k| !PATCHABLE.contains(&k.as_str())) {
            return Err(invalid(
                field,
                format!(
                    "cannot be changed (a connection may change only {})",
                    PATCHABLE.join(", ")
                ),
            ));
        }
        if f.obj.is_empty() {
            return Err(invalid(
                "body",
                format!("names nothing to change (any of {})", PATCHABLE.join(", ")),
            ));
        }
        Ok(ConnectionPatch {
            webhook_secrets: f
                .present("webhook_secrets", |f| f.webhook_secrets().map(Some))?
                .flatten(),
            api_key: f.present("api_key", |f| f.text("api_key", true))?.flatten(),
            api_base_url: f.present("api_base_url", Fields::api_base_url)?,
            rate_limit_per_sec: f.present("rate_limit_per_sec", Fields::rate)?,
            reconcile_interval_secs: f.present("reconcile_interval_secs", Fields::interval)?,
            api_version: f.present("api_version", |f| f.text("api_version", false))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid() -> Value {
        json!({
            "merchant_id": "m_1", "provider": "stripe", "account_id": "acct_1",
            "webhook_secrets": ["whsec_1"], "api_key": "sk_test_1",
        })
    }

    fn field_of(body: Value) -> String {
        match NewConnection::from_json(&body, false) {
            Err(ConnectionError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn bad_input_names_the_field() {
        assert!(NewConnection::from_json(&valid(), false).is_ok());
        for (field, value) in [
            ("provider", json!("paypal")),
            ("merchant_id", Value::Null),
            ("webhook_secrets", json!([])),
            ("webhook_secrets", json!([1])),
            ("api_base_url", json!("ftp://x")),
            ("api_base_url", json!("not a url")),
            ("api_base_url", json!("http://api.example.com")),
            ("api_base_url", json!("https://user:pw@api.example.com")),
            ("rate_limit_per_sec", json!(0)),
            ("reconcile_interval_secs", json!("10")),
            ("api_key", json!("")),
            ("merchant_id", json!("m_1\n")),
            ("merchant_id", json!(" m_1")),
            ("merchant_id", json!("m\u{0}x")),
            ("account_id", json!("acct\u{1b}[31m")),
        ] {
            let mut body = valid();
            body[field] = value;
            assert_eq!(field_of(body), field);
        }
        assert_eq!(field_of(json!([1])), "body");
        let mut chargebee = valid();
        chargebee["provider"] = json!("chargebee");
        chargebee["webhook_secrets"] = json!(["no-colon"]);
        assert_eq!(field_of(chargebee.clone()), "webhook_secrets");
        chargebee["webhook_secrets"] = json!(["user:pass"]);
        assert!(NewConnection::from_json(&chargebee, false).is_ok());
    }

    /// The field names of an API type, from its serde form with every option filled.
    fn keys_of(value: impl serde::Serialize) -> Vec<String> {
        let mut keys: Vec<String> = serde_json::to_value(value)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// The validator reads exactly the fields the published `ConnectionIn` declares: an
    /// invalid value in each of them is refused naming it, and a valid `ConnectionIn` passes.
    #[test]
    fn creation_validates_every_field_of_the_published_type() {
        let full = crate::api::ConnectionIn {
            merchant_id: "m_1".into(),
            provider: ProviderKind::Stripe,
            account_id: "acct_1".into(),
            webhook_secrets: vec!["whsec_1".into()],
            api_key: "sk_test_1".into(),
            api_base_url: Some("https://api.stripe.com".into()),
            rate_limit_per_sec: Some(5),
            reconcile_interval_secs: Some(60),
            api_version: Some("2024-06-20".into()),
        };
        let body = serde_json::to_value(&full).unwrap();
        assert!(NewConnection::from_json(&body, false).is_ok());
        let keys = keys_of(&full);
        assert_eq!(keys.len(), 9);
        for key in keys {
            let mut bad = body.clone();
            bad[&key] = json!({"not": "valid"});
            assert_eq!(field_of(bad), key);
        }
    }

    /// `PATCH` accepts exactly the fields of the published `ConnectionPatchIn`.
    #[test]
    fn patchable_fields_are_the_published_ones() {
        let full = crate::api::ConnectionPatchIn {
            webhook_secrets: Some(vec!["a".into()]),
            api_key: Some("k".into()),
            api_base_url: Some("https://x.example".into()),
            rate_limit_per_sec: Some(1),
            reconcile_interval_secs: Some(1),
            api_version: Some("v".into()),
        };
        let mut patchable: Vec<String> = PATCHABLE.iter().map(|s| s.to_string()).collect();
        patchable.sort();
        assert_eq!(keys_of(&full), patchable);
        assert!(ConnectionPatch::from_json(&serde_json::to_value(&full).unwrap(), false).is_ok());
    }

    fn patch_field_of(body: Value) -> String {
        match ConnectionPatch::from_json(&body, false) {
            Err(ConnectionError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_patch_changes_only_what_it_may_and_validates_like_creation() {
        let p = ConnectionPatch::from_json(
            &json!({"webhook_secrets": ["a", "b"], "rate_limit_per_sec": null}),
            false,
        )
        .unwrap();
        assert_eq!(
            p.webhook_secrets.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(p.rate_limit_per_sec, Some(None));
        assert_eq!(p.api_key, None);
        assert_eq!(p.api_base_url, None);
        for (body, field) in [
            (json!({}), "body"),
            (json!({"merchant_id": "m_2"}), "merchant_id"),
            (json!({"provider": "paddle"}), "provider"),
            (json!({"webhook_secrets": []}), "webhook_secrets"),
            (json!({"webhook_secrets": null}), "webhook_secrets"),
            (json!({"api_key": ""}), "api_key"),
            (json!({"api_key": null}), "api_key"),
            (
                json!({"api_base_url": "http://api.example.com"}),
                "api_base_url",
            ),
            (json!({"rate_limit_per_sec": 0}), "rate_limit_per_sec"),
        ] {
            assert_eq!(patch_field_of(body.clone()), field, "{body}");
        }
        assert!(ConnectionPatch::from_json(
            &json!({"api_base_url": "http://api.example.com"}),
            true
        )
        .is_ok());
    }
}
