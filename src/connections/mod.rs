//! Connections (one merchant's account at one provider): validation of new ones, and the
//! live registry that intake and the pair actors read (secrets opened once, kept in memory).

use std::sync::Arc;

use dashmap::DashMap;
use serde_json::{json, Map, Value};
use thiserror::Error;

mod input;

use input::{check_basic_auth_entries, ConnectionPatch, NewConnection};

use crate::api::{ConnectionOut, ProviderErrorOut};
use crate::model::time::{micros_to_rfc3339, now_micros};
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

    /// Pauses, resumes or archives; `None` when there is no such connection or it is archived.
    pub async fn set_state(
        &self,
        id: &str,
        state: ConnectionState,
        actor: &str,
    ) -> Result<Option<ConnectionRecord>, ConnectionError> {
        let audit = AuditEntry {
            at: now_micros(),
            actor: actor.to_owned(),
            action: match state {
                ConnectionState::Active => "connection.resume",
                ConnectionState::Paused => "connection.pause",
                ConnectionState::Archived => "connection.archive",
            }
            .to_owned(),
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
