//! Connections (one merchant's account at one provider): validation of new ones, and the
//! live registry that intake and the pair actors read (secrets opened once, kept in memory).

use std::sync::Arc;

use dashmap::DashMap;
use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::api::{ConnectionOut, ProviderErrorOut};
use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::outbound::refuse_base_url;
use crate::providers::{self, Provider, ProviderKind};
use crate::secrets::{Sealer, SecretsError};
use crate::store::{AuditEntry, ConnectionRecord, ConnectionState, Store, StoreError};

#[derive(Debug, Error)]
pub enum ConnectionError {
    /// Bad input; names the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The merchant already has a connection to this provider.
    #[error("merchant {merchant_id} already has a {provider} connection: {existing}")]
    PairTaken {
        merchant_id: String,
        provider: &'static str,
        existing: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

fn invalid(field: &str, message: impl Into<String>) -> ConnectionError {
    ConnectionError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A connection as the runtime uses it: secrets opened, provider resolved.
pub struct LiveConnection {
    pub record: ConnectionRecord,
    pub provider: &'static dyn Provider,
    pub webhook_secrets: Vec<String>,
    /// The provider API key, opened (`None` for connections registered without one).
    pub api_key: Option<String>,
}

impl LiveConnection {
    /// Requests per second this connection may send: its own setting, else the provider's.
    pub fn request_rate(&self) -> u32 {
        self.record
            .rate_limit_per_sec
            .map_or(self.provider.default_rate_limit(), |r| {
                r.clamp(1, 100_000) as u32
            })
    }
}

impl std::fmt::Debug for LiveConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConnection")
            .field("id", &self.record.id)
            .field("provider", &self.record.provider)
            .finish_non_exhaustive()
    }
}

/// Reads connections through an in-memory cache; every change goes through it too.
pub struct Connections {
    store: Arc<dyn Store>,
    sealer: Sealer,
    cache: DashMap<String, Arc<LiveConnection>>,
    /// Sweep interval of connections that name none, seconds.
    default_reconcile_secs: i64,
    /// `http://` API bases beyond loopback are accepted (`BILLSYNC_ALLOW_PLAIN_HTTP`).
    allow_plain_http: bool,
}

impl Connections {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, default_reconcile_secs: u64) -> Self {
        Connections {
            store,
            sealer,
            cache: DashMap::new(),
            default_reconcile_secs: default_reconcile_secs.max(1) as i64,
            allow_plain_http: false,
        }
    }

    /// Accepts `http://` API bases beyond loopback too.
    pub fn allowing_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// Opens a record's sealed secrets: (webhook secrets, API key).
    pub fn open_secrets(
        &self,
        record: &ConnectionRecord,
    ) -> Result<(Vec<String>, Option<String>), ConnectionError> {
        let api_key = match &record.sealed_api_key {
            Some(sealed) => self.sealer.open(sealed)?.into_iter().next(),
            None => None,
        };
        Ok((self.sealer.open(&record.sealed_webhook_secrets)?, api_key))
    }

    /// The live connection, or `None` when unknown or of a provider this build cannot serve.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<LiveConnection>>, ConnectionError> {
        if let Some(c) = self.cache.get(id) {
            return Ok(Some(c.clone()));
        }
        let Some(record) = self.store.get_connection(id).await? else {
            return Ok(None);
        };
        let provider = providers::for_kind(record.provider);
        let (webhook_secrets, api_key) = self.open_secrets(&record)?;
        let live = Arc::new(LiveConnection {
            webhook_secrets,
            api_key,
            provider,
            record,
        });
        self.cache.insert(id.to_owned(), live.clone());
        Ok(Some(live))
    }

    /// Validates and registers a connection from the admin API's JSON body.
    pub async fn create(
        &self,
        body: &Value,
        actor: &str,
    ) -> Result<ConnectionRecord, ConnectionError> {
        let request = NewConnection::from_json(body, self.allow_plain_http)?;
        if let Some(existing) = self
            .pair_taken(&request.merchant_id, request.provider)
            .await?
        {
            return Err(ConnectionError::PairTaken {
                merchant_id: request.merchant_id,
                provider: request.provider.as_str(),
                existing,
            });
        }
        let now = now_micros();
        let record = ConnectionRecord {
            id: new_connection_id(),
            merchant_id: request.merchant_id,
            provider: request.provider,
            account_id: request.account_id,
            sealed_webhook_secrets: self.sealer.seal(&request.webhook_secrets),
            sealed_api_key: Some(self.sealer.seal(&[request.api_key])),
            api_base_url: request.api_base_url,
            rate_limit_per_sec: request.rate_limit_per_sec,
            reconcile_interval_secs: request.reconcile_interval_secs,
            api_version: request.api_version,
            state: ConnectionState::Active,
            lease_epoch: 1,
            created_at: now,
            updated_at: now,
            last_applied_at: None,
            last_provider_error: None,
        };
        let audit = AuditEntry {
            at: now,
            actor: actor.to_owned(),
            action: "connection.create".into(),
            target: record.id.clone(),
            detail: json!({
                "merchant_id": record.merchant_id,
                "provider": record.provider.as_str(),
                "webhook_secrets": request.webhook_secrets.len(),
            }),
        };
        match self.store.insert_connection(&record, &audit).await {
            Ok(()) => {}
            // Registered by a concurrent request since the check above.
            Err(StoreError::Conflict(_)) => {
                let existing = self
                    .pair_taken(&record.merchant_id, record.provider)
                    .await?
                    .unwrap_or_default();
                return Err(ConnectionError::PairTaken {
                    merchant_id: record.merchant_id,
                    provider: record.provider.as_str(),
                    existing,
                });
            }
            Err(e) => return Err(e.into()),
        }
        // Sweeps cover changes from the moment the connection exists (history: backfill).
        let interval = record
            .reconcile_interval_secs
            .unwrap_or(self.default_reconcile_secs);
        self.store
            .init_sweep(&record.id, now / 1_000_000, now + interval * 1_000_000)
            .await?;
        Ok(record)
    }

    /// The connection that already holds this merchant's pair with `provider`, if any.
    async fn pair_taken(
        &self,
        merchant_id: &str,
        provider: ProviderKind,
    ) -> Result<Option<String>, ConnectionError> {
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_connections(Some(merchant_id), after.as_deref(), 100)
                .await?;
            if let Some(c) = page.iter().find(|c| c.provider == provider) {
                return Ok(Some(c.id.clone()));
            }
            if page.len() < 100 {
                return Ok(None);
            }
            after = page.last().map(|c| c.id.clone());
        }
    }

    /// Applies a `PATCH /admin/v1/connections/{id}` body: new secrets, key, API base, rate,
    /// interval or version, validated as at creation, sealed, audited without secrets.
    /// Effective for the next webhook and the next provider request. `None` when there is no
    /// such connection.
    pub async fn update(
        &self,
        id: &str,
        body: &Value,
        actor: &str,
    ) -> Result<Option<ConnectionRecord>, ConnectionError> {
        let patch = ConnectionPatch::from_json(body, self.allow_plain_http)?;
        let Some(mut record) = self.store.get_connection(id).await? else {
            return Ok(None);
        };
        let mut detail = Map::new();
        if let Some(secrets) = &patch.webhook_secrets {
            check_basic_auth_entries(record.provider, secrets)?;
            record.sealed_webhook_secrets = self.sealer.seal(secrets);
            detail.insert("webhook_secrets".into(), json!(secrets.len()));
        }
        if let Some(key) = &patch.api_key {
            record.sealed_api_key = Some(self.sealer.seal(std::slice::from_ref(key)));
            detail.insert("api_key".into(), json!("replaced"));
        }
        if let Some(v) = &patch.api_base_url {
            record.api_base_url = v.clone();
            detail.insert("api_base_url".into(), json!(v));
        }
        if let Some(v) = patch.rate_limit_per_sec {
            record.rate_limit_per_sec = v;
            detail.insert("rate_limit_per_sec".into(), json!(v));
        }
        if let Some(v) = patch.reconcile_interval_secs {
            record.reconcile_interval_secs = v;
            detail.insert("reconcile_interval_secs".into(), json!(v));
        }
        if let Some(v) = &patch.api_version {
            record.api_version = v.clone();
            detail.insert("api_version".into(), json!(v));
        }
        let audit = AuditEntry {
            at: now_micros(),
            actor: actor.to_owned(),
            action: "connection.update".into(),
            target: id.to_owned(),
            detail: Value::Object(detail),
        };
        let updated = self.store.update_connection(&record, &audit).await?;
        self.cache.remove(id);
        Ok(updated)
    }

    /// Drops the cached copy of a connection (another node changed it): the next use reads
    /// it from the store.
    pub fn forget(&self, id: &str) {
        self.cache.remove(id);
    }

    /// Reads every cached connection again and drops the copies that changed (changes may
    /// have been announced while nobody listened). A copy the store cannot be asked about
    /// now is kept: intake goes on verifying webhooks through a database outage.
    pub async fn refresh_cached(&self) {
        let cached: Vec<(String, i64)> = self
            .cache
            .iter()
            .map(|c| (c.key().clone(), c.record.updated_at))
            .collect();
        for (id, updated_at) in cached {
            match self.store.get_connection(&id).await {
                Ok(Some(r)) if r.updated_at == updated_at => {}
                Ok(_) => {
                    self.cache.remove(&id);
                }
                Err(_) => return,
            }
        }
    }

    /// Pauses or resumes; `None` when there is no such connection.
    pub async fn set_state(
        &self,
        id: &str,
        state: ConnectionState,
        actor: &str,
    ) -> Result<Option<ConnectionRecord>, ConnectionError> {
        let audit = AuditEntry {
            at: now_micros(),
            actor: actor.to_owned(),
            action: format!(
                "connection.{}",
                if state == ConnectionState::Paused {
                    "pause"
                } else {
                    "resume"
                }
            ),
            target: id.to_owned(),
            detail: json!({}),
        };
        let record = self.store.set_connection_state(id, state, &audit).await?;
        self.cache.remove(id);
        Ok(record)
    }
}

fn new_connection_id() -> String {
    format!("conn_{}", crate::model::random_token(20))
}

/// The public view of a connection: never a secret.
pub fn view(record: &ConnectionRecord) -> ConnectionOut {
    ConnectionOut {
        connection_id: record.id.clone(),
        merchant_id: record.merchant_id.clone(),
        provider: record.provider,
        account_id: record.account_id.clone(),
        state: record.state,
        webhook_path: format!("/webhooks/{}/{}", record.provider.as_str(), record.id),
        api_base_url: record.api_base_url.clone(),
        rate_limit_per_sec: record.rate_limit_per_sec,
        reconcile_interval_secs: record.reconcile_interval_secs,
        api_version: record.api_version.clone(),
        created_at: micros_to_rfc3339(record.created_at),
        last_applied_at: record.last_applied_at.and_then(micros_to_rfc3339),
        last_provider_error: record
            .last_provider_error
            .as_ref()
            .map(|f| ProviderErrorOut {
                kind: f.kind.clone(),
                message: f.message.clone(),
                at: micros_to_rfc3339(f.at),
            }),
        backfill: None,
        resync: None,
        replay: None,
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
struct NewConnection {
    merchant_id: String,
    provider: ProviderKind,
    account_id: String,
    webhook_secrets: Vec<String>,
    api_key: String,
    api_base_url: Option<String>,
    rate_limit_per_sec: Option<i64>,
    reconcile_interval_secs: Option<i64>,
    api_version: Option<String>,
}

impl NewConnection {
    fn from_json(body: &Value, allow_plain_http: bool) -> Result<Self, ConnectionError> {
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
fn check_basic_auth_entries(
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
struct ConnectionPatch {
    webhook_secrets: Option<Vec<String>>,
    api_key: Option<String>,
    api_base_url: Option<Option<String>>,
    rate_limit_per_sec: Option<Option<i64>>,
    reconcile_interval_secs: Option<Option<i64>>,
    api_version: Option<Option<String>>,
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
    fn from_json(body: &Value, allow_plain_http: bool) -> Result<Self, ConnectionError> {
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
