//! Connections (one merchant's account at one provider): validation of new ones, and the
//! live registry that intake and the pair actors read (secrets opened once, kept in memory).

use std::sync::Arc;

use dashmap::DashMap;
use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::model::time::{micros_to_rfc3339, now_micros};
use crate::providers::{self, Provider, ProviderKind};
use crate::secrets::{Sealer, SecretsError};
use crate::store::{AuditEntry, ConnectionRecord, ConnectionState, Store, StoreError};

#[derive(Debug, Error)]
pub enum ConnectionError {
    /// Bad input; names the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
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
}

impl Connections {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, default_reconcile_secs: u64) -> Self {
        Connections {
            store,
            sealer,
            cache: DashMap::new(),
            default_reconcile_secs: default_reconcile_secs.max(1) as i64,
        }
    }

    /// The live connection, or `None` when unknown or of a provider this build cannot serve.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<LiveConnection>>, ConnectionError> {
        if let Some(c) = self.cache.get(id) {
            return Ok(Some(c.clone()));
        }
        let Some(record) = self.store.get_connection(id).await? else {
            return Ok(None);
        };
        let Some(provider) = providers::for_kind(record.provider) else {
            return Ok(None);
        };
        let api_key = match &record.sealed_api_key {
            Some(sealed) => self.sealer.open(sealed)?.into_iter().next(),
            None => None,
        };
        let live = Arc::new(LiveConnection {
            webhook_secrets: self.sealer.open(&record.sealed_webhook_secrets)?,
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
        let request = NewConnection::from_json(body)?;
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
        self.store.insert_connection(&record, &audit).await?;
        // Sweeps cover changes from the moment the connection exists (history: backfill).
        let interval = record
            .reconcile_interval_secs
            .unwrap_or(self.default_reconcile_secs);
        self.store
            .init_sweep(&record.id, now / 1_000_000, now + interval * 1_000_000)
            .await?;
        Ok(record)
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
pub fn view(record: &ConnectionRecord) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("connection_id".into(), json!(record.id));
    m.insert("merchant_id".into(), json!(record.merchant_id));
    m.insert("provider".into(), json!(record.provider.as_str()));
    m.insert("account_id".into(), json!(record.account_id));
    m.insert("state".into(), json!(record.state.as_str()));
    m.insert(
        "webhook_path".into(),
        json!(format!(
            "/webhooks/{}/{}",
            record.provider.as_str(),
            record.id
        )),
    );
    m.insert("api_base_url".into(), json!(record.api_base_url));
    m.insert(
        "rate_limit_per_sec".into(),
        json!(record.rate_limit_per_sec),
    );
    m.insert(
        "reconcile_interval_secs".into(),
        json!(record.reconcile_interval_secs),
    );
    m.insert("api_version".into(), json!(record.api_version));
    m.insert(
        "created_at".into(),
        json!(micros_to_rfc3339(record.created_at)),
    );
    m.insert(
        "last_applied_at".into(),
        json!(record.last_applied_at.and_then(micros_to_rfc3339)),
    );
    m
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
    fn from_json(body: &Value) -> Result<Self, ConnectionError> {
        let Some(obj) = body.as_object() else {
            return Err(invalid("body", "must be a JSON object"));
        };
        let text = |field: &str, required: bool| -> Result<Option<String>, ConnectionError> {
            match obj.get(field) {
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
        };
        let positive = |field: &str, max: i64| -> Result<Option<i64>, ConnectionError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_i64() {
                    Some(n) if (1..=max).contains(&n) => Ok(Some(n)),
                    _ => Err(invalid(
                        field,
                        format!("must be a whole number from 1 to {max}"),
                    )),
                },
            }
        };
        let provider_name = text("provider", true)?.unwrap_or_default();
        let provider = ProviderKind::parse(&provider_name).ok_or_else(|| {
            invalid(
                "provider",
                "must be one of stripe, chargebee, recurly, paddle, zuora, maxio",
            )
        })?;
        if providers::for_kind(provider).is_none() {
            let supported: Vec<&str> = ProviderKind::ALL
                .into_iter()
                .filter(|k| providers::for_kind(*k).is_some())
                .map(ProviderKind::as_str)
                .collect();
            return Err(invalid(
                "provider",
                format!(
                    "`{provider_name}` is not supported by this build yet (supported: {})",
                    supported.join(", ")
                ),
            ));
        }
        let webhook_secrets = match obj.get("webhook_secrets") {
            None | Some(Value::Null) => return Err(invalid("webhook_secrets", "is required")),
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= 16 => items
                .iter()
                .map(|s| match s.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= 512 => Ok(s.to_owned()),
                    _ => Err(invalid(
                        "webhook_secrets",
                        "every entry must be a non-empty string",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(invalid(
                    "webhook_secrets",
                    "must be a list of 1 to 16 strings",
                ))
            }
        };
        let api_base_url = text("api_base_url", false)?;
        if let Some(u) = &api_base_url {
            match url::Url::parse(u) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
                _ => return Err(invalid("api_base_url", "must be an http(s) URL")),
            }
        }
        Ok(NewConnection {
            merchant_id: text("merchant_id", true)?.unwrap_or_default(),
            provider,
            account_id: text("account_id", true)?.unwrap_or_default(),
            webhook_secrets,
            api_key: text("api_key", true)?.unwrap_or_default(),
            api_base_url,
            rate_limit_per_sec: positive("rate_limit_per_sec", 100_000)?,
            reconcile_interval_secs: positive("reconcile_interval_secs", 7 * 24 * 3600)?,
            api_version: text("api_version", false)?,
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
        match NewConnection::from_json(&body) {
            Err(ConnectionError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn bad_input_names_the_field() {
        assert!(NewConnection::from_json(&valid()).is_ok());
        for (field, value) in [
            ("provider", json!("paypal")),
            ("merchant_id", Value::Null),
            ("webhook_secrets", json!([])),
            ("webhook_secrets", json!([1])),
            ("api_base_url", json!("ftp://x")),
            ("api_base_url", json!("not a url")),
            ("rate_limit_per_sec", json!(0)),
            ("reconcile_interval_secs", json!("10")),
            ("api_key", json!("")),
        ] {
            let mut body = valid();
            body[field] = value;
            assert_eq!(field_of(body), field);
        }
        assert_eq!(field_of(json!([1])), "body");
    }
}
