//! billsync-sim, behind `billsync sim`: a stateful, hostile fake of the billing providers for
//! tests, benchmarks and demos. Each provider's personality serves its API with its
//! pagination, errors and rate limits and signs its webhooks its way; the world underneath is
//! shared: seeded billing lifecycles, chaos in delivery, and a ground truth a billsync is
//! checked against object by object ([`verify`]).
//!
//! The crate does not depend on billsync (issue 22): what it used to borrow it has of its own,
//! written from the providers' documentation and billsync's documented API ([`SimProvider`],
//! webhook signatures in `signing`, RFC 3339 time, the ISO 4217 exponent table, the HTTPS
//! client with `SSL_CERT_FILE` in `http_client`, the change feed's answer in `verify`). billsync
//! links it behind its default feature `sim`.
//!
//! ## What `verify` still checks with billsync's own mapping, and why
//!
//! [`verify`] compares the simulator's world with what a billsync stores. Two kinds of
//! expectation are checked for every object:
//!
//! - **The simulator's own, independent of billsync**: the object billsync stores is deleted
//!   exactly when the simulated one is; and for invoices, credit notes and transactions (charges
//!   and refunds), the currency and the amount in minor units (`total`, or a transaction's
//!   `amount`, as docs/api.md names them) are those of the seeded world that produced the
//!   provider's object ([`verify::WorldFacts`], recorded before a personality renders it). A
//!   mapping that reads the wrong amount field, a wrong exponent or a lost currency shows here
//!   even though billsync agrees with itself.
//! - **billsync's mapping, through the [`verify::Expectation`] the caller passes** (billsync
//!   implements it with `providers::for_kind(..).observe_object(..)`): which collection and
//!   canonical id a provider object lands under, and the whole canonical `data`. This stays
//!   billsync's because an independent version would be a second copy of the six providers'
//!   canonical mappings (about 2,900 lines of billsync's `src/providers/*/mapping`: fields,
//!   status tables, tax and discount parts, per-provider extras), and the simulator's ids are not
//!   always billsync's (Recurly: the simulator keys an object by its handle, billsync by its
//!   `id`): the data the simulator could derive cheaply is checked above, and the rest of the
//!   mapping is pinned by billsync's golden files and SDK fixtures
//!   (tests/it/canonical_model.rs, tests/fixtures/), not by the simulator. So `verify` finds
//!   objects billsync failed to store, stored stale, or stored deleted wrongly, and amounts that
//!   disagree with the world; a field billsync's mapping itself gets wrong in the same way on
//!   both sides is not its to find.

mod config;
mod control;
mod currency;
mod delivery;
mod gate;
pub mod http_client;
mod knobs;
pub mod personality;
mod provider;
pub mod scenario;
pub mod signing;
mod state;
mod time;
pub mod tls;
pub mod verify;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use config::{LiveOut, SimConfig, Stats, Target};
pub use knobs::{Knobs, Outage, OutageMode};
pub use scenario::Clock;
pub use state::Account;
pub use tls::TlsIdentity;

use delivery::Delivery;
use knobs::Bucket;
use personality::Personality;
pub use provider::SimProvider;
pub use scenario::TRIGGERS;
use scenario::{Change, Generator};
use state::{Ledger, SimEvent, WorldFacts};

#[derive(Debug, Error)]
pub enum SimError {
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot register account {account} with billsync: {message}")]
    Register { account: String, message: String },
    #[error("the simulator has no `{0}` personality")]
    Provider(String),
    #[error("TLS: {0}")]
    Tls(String),
}

pub(crate) struct AccountState {
    account: Account,
    ledger: Ledger,
    generator: Generator,
    bucket: Bucket,
    /// The latest event of each object (only its delivery counts as "sent" for latency).
    latest_event: HashMap<String, String>,
    /// The time of the latest change, microseconds; strictly increasing.
    last_micros: i64,
}

impl AccountState {
    pub(crate) fn personality(&self) -> &'static dyn Personality {
        personality::for_provider(self.account.provider)
    }

    /// A strictly increasing change time at or after `at` (unix seconds), microseconds.
    fn next_micros(&mut self, at: i64) -> i64 {
        self.last_micros = (self.last_micros + 1).max(at.saturating_mul(1_000_000));
        self.last_micros
    }
}

struct World {
    accounts: Vec<AccountState>,
    by_key: HashMap<String, usize>,
    knobs: Knobs,
    outage_since: Option<Instant>,
    stats: Stats,
    target: Option<Target>,
    /// Live changes (`--rate`) are paused: `sim verify --settle` compares a still truth.
    live_paused: bool,
}

/// A running simulator. Cheap to clone.
#[derive(Clone)]
pub struct Sim {
    world: Arc<Mutex<World>>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    http: reqwest::Client,
    base: String,
}

/// A simulator serving on a port; dropping `stop` ends it.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub sim: Sim,
    stop: Option<oneshot::Sender<()>>,
}

impl SimHandle {
    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Sim {
    /// Builds the world (accounts and their history) and serves it on `listener`.
    pub async fn start(
        config: SimConfig,
        listener: tokio::net::TcpListener,
    ) -> Result<SimHandle, SimError> {
        let addr = listener.local_addr()?;
        let mut accounts = Vec::new();
        let mut by_key = HashMap::new();
        let start = match config.clock {
            Clock::Fixed(t) => t,
            Clock::Wall => chrono::Utc::now().timestamp(),
        };
        let kinds = if config.providers.is_empty() {
            vec![SimProvider::Stripe]
        } else {
            config.providers.clone()
        };
        let faces: Vec<_> = kinds
            .iter()
            .map(|p| personality::for_provider(*p))
            .collect();
        for n in 0..config.accounts {
            let face = faces[n % faces.len()];
            let mut generator = Generator::new(config.seed, n as u64, config.clock);
            let tag = format!("{}{n}", config.seed);
            let (api_key, webhook_secret) = face.credentials(&tag);
            let account = Account {
                provider: face.provider(),
                account_id: format!("acct_sim{tag}"),
                api_key,
                webhook_secret,
                merchant_id: format!("m_sim{}{}", config.seed, n / faces.len()),
                connection_id: None,
            };
            let mut ledger = Ledger::default();
            let since = start - config.history_days * 86_400;
            let mut last_micros = 0;
            for c in generator.history(config.history, since, start - 1) {
                last_micros = (last_micros + 1).max(c.at.saturating_mul(1_000_000));
                let facts = WorldFacts::of(c.stream, &c.object);
                if let Some(c) = face.translate(c, last_micros) {
                    ledger.put(c.stream, &c.id, c.created, c.object, c.deleted, Some(facts));
                }
            }
            // History is old news: no lag on it.
            for o in ledger.objects.values_mut() {
                o.previous = None;
            }
            by_key.insert(account.api_key.clone(), n);
            accounts.push(AccountState {
                account,
                ledger,
                generator,
                bucket: Bucket::default(),
                latest_event: HashMap::new(),
                last_micros,
            });
        }
        let (deliveries, queue) = mpsc::unbounded_channel();
        let sim = Sim {
            world: Arc::new(Mutex::new(World {
                accounts,
                by_key,
                knobs: config.knobs,
                outage_since: None,
                stats: Stats::default(),
                target: None,
                live_paused: false,
            })),
            deliveries,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            base: match config.tls {
                Some(_) => format!("https://{addr}"),
                None => format!("http://{addr}"),
            },
        };
        tokio::spawn(delivery::run(sim.clone(), queue));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = control::router(sim.clone());
        let stopped = async {
            let _ = stopped.await;
        };
        match &config.tls {
            Some(identity) => {
                let listener = tls::TlsListener::new(listener, identity)?;
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await;
                });
            }
            None => {
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await;
                });
            }
        }
        Ok(SimHandle {
            addr,
            sim,
            stop: Some(stop),
        })
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The simulator's own base URL (`http://ADDR`, or `https://ADDR` when serving TLS).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn accounts(&self) -> Vec<Account> {
        self.world()
            .accounts
            .iter()
            .map(|a| a.account.clone())
            .collect()
    }

    pub fn stats(&self) -> Stats {
        self.world().stats.clone()
    }

    pub fn knobs(&self) -> Knobs {
        self.world().knobs.clone()
    }

    /// Overlays knob fields; an `outage` starts now.
    pub fn set_knobs(&self, patch: &Value) -> Result<Knobs, serde_json::Error> {
        let mut w = self.world();
        w.knobs.merge(patch)?;
        if patch.get("outage").is_some() {
            w.outage_since = Some(Instant::now());
        }
        Ok(w.knobs.clone())
    }

    /// Whether [`Sim::register`] has registered every account with a billsync.
    pub fn registered(&self) -> bool {
        self.world().target.is_some()
    }

    /// Pauses the live changes of [`Sim::run_live`] (explicit steps, triggers and edits still
    /// happen; webhooks already made are still delivered and retried). Answers whether they
    /// were paused already.
    pub fn pause_live(&self) -> bool {
        std::mem::replace(&mut self.world().live_paused, true)
    }

    /// Resumes the live changes; answers whether they were paused.
    pub fn resume_live(&self) -> bool {
        std::mem::replace(&mut self.world().live_paused, false)
    }

    /// Whether live changes are paused.
    pub fn live_paused(&self) -> bool {
        self.world().live_paused
    }

    /// Makes live changes: `rate` lifecycle steps per second on every account, each
    /// delivering its webhooks, except while [`Sim::pause_live`] holds them (`sim serve
    /// --rate`). The task runs until aborted.
    pub fn run_live(&self, rate: f64) -> tokio::task::JoinHandle<()> {
        let sim = self.clone();
        let period = std::time::Duration::from_secs_f64(1.0 / rate.max(0.001));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                // Checked under the lock the step takes: no step starts after a pause returns.
                let mut w = sim.world();
                if !w.live_paused {
                    sim.step_locked(&mut w, 1);
                }
            }
        })
    }

    /// Registers every account without a connection as a connection in billsync, so
    /// its webhooks are delivered there. `reconcile_interval_secs` is passed through.
    pub async fn register(
        &self,
        target: Target,
        reconcile_interval_secs: Option<u64>,
    ) -> Result<(), SimError> {
        let extra = match reconcile_interval_secs {
            Some(s) => json!({ "reconcile_interval_secs": s }),
            None => json!({}),
        };
        self.register_with(target, &extra).await
    }

    /// [`Sim::register`] with extra connection fields (e.g. `rate_limit_per_sec`).
    pub async fn register_with(&self, target: Target, extra: &Value) -> Result<(), SimError> {
        let accounts = self.accounts();
        for a in accounts.iter().filter(|a| a.connection_id.is_none()) {
            let face = personality::for_provider(a.provider);
            let mut body = json!({
                "merchant_id": a.merchant_id, "provider": a.provider, "account_id": a.account_id,
                "webhook_secrets": [a.webhook_secret], "api_key": a.api_key,
                "api_base_url": format!("{}/{}", self.base, a.provider.as_str()),
            });
            if let (Some(b), Some(e)) =
                (body.as_object_mut(), face.connection_fields(a).as_object())
            {
                b.extend(e.clone());
            }
            if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            let failed = |message: String| SimError::Register {
                account: a.account_id.clone(),
                message,
            };
            let answer = self
                .http
                .post(format!(
                    "{}/admin/v1/connections",
                    target.url.trim_end_matches('/')
                ))
                .bearer_auth(&target.token)
                .json(&body)
                .send()
                .await
                .map_err(|e| failed(e.to_string()))?;
            let status = answer.status();
            let created: Value = answer.json().await.map_err(|e| failed(e.to_string()))?;
            let id = created["connection_id"]
                .as_str()
                .ok_or_else(|| failed(format!("answered {status}: {created}")))?;
            let mut w = self.world();
            if let Some(acc) = w
                .accounts
                .iter_mut()
                .find(|s| s.account.account_id == a.account_id)
            {
                acc.account.connection_id = Some(id.to_owned());
            }
        }
        self.world().target = Some(target);
        Ok(())
    }

    /// Runs `n` lifecycle steps on every account, delivering their webhooks. Returns the
    /// number of events the changes made: one per changed object, plus the provider's
    /// companion events (a Stripe customer's `customer.tax_id.*`), so that it counts what
    /// is sent, dropped or duplicated.
    pub fn step(&self, n: usize) -> usize {
        let mut w = self.world();
        self.step_locked(&mut w, n)
    }

    fn step_locked(&self, w: &mut World, n: usize) -> usize {
        let mut changed = 0;
        for i in 0..w.accounts.len() {
            for _ in 0..n {
                let changes = w.accounts[i].generator.step();
                changed += self.perform(w, i, changes);
            }
        }
        changed
    }

    /// Performs the lifecycle step named `event` (one of [`scenario::TRIGGERS`]) on account
    /// `account`, making what it needs first, and delivers its webhooks: `billsync sim
    /// trigger`. Answers the number of events made; `None` for an unknown event or account.
    pub fn trigger(&self, account: usize, event: &str) -> Option<usize> {
        let mut w = self.world();
        let changes = w.accounts.get_mut(account)?.generator.trigger(event)?;
        Some(self.perform(&mut w, account, changes))
    }

    /// Records `changes` on account `i` in its personality's shapes and sends their webhooks;
    /// answers the number of events made.
    fn perform(&self, w: &mut World, i: usize, changes: Vec<Change>) -> usize {
        let mut changed = 0;
        for c in changes {
            let acc = &mut w.accounts[i];
            let at = acc.next_micros(c.at);
            let facts = WorldFacts::of(c.stream, &c.object);
            let Some(c) = acc.personality().translate(c, at) else {
                continue;
            };
            let events_before = acc.ledger.events.len();
            let deliveries = record(acc, c, at, Some(facts));
            changed += acc.ledger.events.len() - events_before;
            for delivery in deliveries {
                let _ = self.deliveries.send(Delivery {
                    account: i,
                    ..delivery
                });
            }
        }
        changed
    }

    /// Changes one object of account `account` by overlaying the fields of `patch` (a JSON
    /// object), as the provider would on an edit, and delivers its webhook. False when there
    /// is no such object.
    pub fn edit(&self, account: usize, id: &str, patch: &Value) -> bool {
        let mut w = self.world();
        let Some(acc) = w.accounts.get_mut(account) else {
            return false;
        };
        let Some(o) = acc.ledger.objects.get(id) else {
            return false;
        };
        let mut object = o.current.clone();
        if let (Some(obj), Some(p)) = (object.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                obj.insert(k.clone(), v.clone());
            }
        }
        let face = acc.personality();
        let event_type = face.edit_event(o.stream);
        let (stream, created) = (o.stream, o.created);
        let now = chrono::Utc::now().timestamp();
        let at = match acc.ledger.events.last() {
            Some(e) => e.created.max(now),
            None => now,
        };
        let at_micros = acc.next_micros(at);
        face.touch(&mut object, at_micros);
        let change = Change {
            stream,
            id: id.to_owned(),
            created,
            object,
            deleted: false,
            event_type,
            at,
        };
        for delivery in record(acc, change, at_micros, None) {
            let _ = self.deliveries.send(Delivery {
                account,
                ..delivery
            });
        }
        true
    }

    /// The ground truth: every object's current state per account, sorted. With
    /// `deliveries`, each object also carries when its latest change's webhook was sent.
    pub fn truth(&self, deliveries: bool) -> Value {
        let w = self.world();
        let accounts: Vec<Value> = w
            .accounts
            .iter()
            .map(|a| {
                json!({
                    "account_id": a.account.account_id,
                    "merchant_id": a.account.merchant_id,
                    "connection_id": a.account.connection_id,
                    "provider": a.account.provider,
                    "objects": state::truth(&a.ledger, deliveries),
                })
            })
            .collect();
        json!({ "accounts": accounts })
    }
}

/// Applies a (translated) change to the account's ledger and event log; returns its delivery,
/// unless the provider sends no webhook for it.
/// `facts`: the world's facts of a generator change; `None` for an edit (they stay).
fn record(
    acc: &mut AccountState,
    c: Change,
    at_micros: i64,
    facts: Option<WorldFacts>,
) -> Vec<Delivery> {
    let face = acc.personality();
    let before = acc.ledger.objects.get(&c.id).map(|o| &o.current);
    let companions = face.companion_events(before, &c);
    let mut events = vec![(c.event_type, c.object.clone())];
    events.extend(companions);
    acc.ledger.put(
        c.stream,
        &c.id,
        c.created,
        c.object.clone(),
        c.deleted,
        facts,
    );
    let mut deliveries = Vec::new();
    for (event_type, object) in events {
        let event_id = acc.generator.event_id();
        let shown = Change {
            stream: c.stream,
            id: c.id.clone(),
            created: c.created,
            object,
            deleted: c.deleted,
            event_type,
            at: c.at,
        };
        let body = face.event_body(&event_id, &shown, at_micros);
        let webhook = face.webhook_body(&body);
        acc.ledger.events.push(SimEvent {
            id: event_id.clone(),
            created: c.at,
            body,
        });
        // The object's latest event is the last one that changes it (for latency).
        acc.latest_event.insert(c.id.clone(), event_id.clone());
        deliveries.extend(webhook.map(|body| Delivery {
            account: 0,
            event_id,
            object_id: c.id.clone(),
            body,
            attempt: 0,
            timestamp: None,
        }));
    }
    deliveries
}
