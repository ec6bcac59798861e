//! `billsync sim`: a stateful, hostile fake of the billing providers (Stripe today) for tests,
//! benchmarks and demos. It serves the provider's API with its pagination, errors and rate
//! limits, generates seeded billing lifecycles, delivers signed webhooks with chaos, and
//! exports its ground truth so a billsync can be checked object by object (`verify`).

mod delivery;
mod knobs;
mod scenario;
mod state;
mod stripe_api;
pub mod verify;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use knobs::{Knobs, Outage, OutageMode};
pub use scenario::Clock;
pub use state::Account;

use delivery::Delivery;
use knobs::Bucket;
use scenario::{Change, Generator};
use state::{Ledger, SimEvent};

#[derive(Debug, Error)]
pub enum SimError {
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot register account {account} with billsync: {message}")]
    Register { account: String, message: String },
    #[error("unknown provider `{0}`: the simulator has a Stripe personality only so far")]
    Provider(String),
}

/// Where webhooks go: a billsync node and its admin token.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: String,
}

/// How a simulator starts.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub accounts: usize,
    pub seed: u64,
    pub clock: Clock,
    pub knobs: Knobs,
    /// Objects of history per account, created over the `history_days` before the start.
    pub history: usize,
    pub history_days: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            accounts: 1,
            seed: 1,
            clock: Clock::Wall,
            knobs: Knobs::default(),
            history: 0,
            history_days: 730,
        }
    }
}

/// What the simulator counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub rate_limited: u64,
    pub outage_answers: u64,
    pub webhooks_sent: u64,
    pub webhooks_dropped: u64,
    pub webhooks_duplicated: u64,
    pub webhooks_retried: u64,
    pub webhooks_replayed: u64,
    pub webhooks_failed: u64,
    /// Requests per list endpoint (`GET /v1/invoices` ...), to show what a backfill fetched.
    pub requests_by_path: HashMap<String, u64>,
}

struct AccountState {
    account: Account,
    ledger: Ledger,
    generator: Generator,
    bucket: Bucket,
    /// The latest event of each object (only its delivery counts as "sent" for latency).
    latest_event: HashMap<String, String>,
}

struct World {
    accounts: Vec<AccountState>,
    by_key: HashMap<String, usize>,
    knobs: Knobs,
    outage_since: Option<Instant>,
    stats: Stats,
    target: Option<Target>,
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
        for n in 0..config.accounts {
            let mut generator = Generator::new(config.seed, n as u64, config.clock);
            let tag = format!("{}{n}", config.seed);
            let account = Account {
                account_id: format!("acct_sim{tag}"),
                api_key: format!("sk_test_sim{tag}"),
                webhook_secret: format!("whsec_sim{tag}"),
                merchant_id: format!("m_sim{tag}"),
                connection_id: None,
            };
            let mut ledger = Ledger::default();
            let since = start - config.history_days * 86_400;
            for c in generator.history(config.history, since, start - 1) {
                ledger.put(c.stream, &c.id, c.created, c.object, c.deleted);
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
            })),
            deliveries,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            base: format!("http://{addr}"),
        };
        tokio::spawn(delivery::run(sim.clone(), queue));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = stripe_api::router(sim.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
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

    /// The simulator's own base URL (`http://ADDR`).
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

    /// Registers every account without a connection as a Stripe connection in billsync, so
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
            let mut body = json!({
                "merchant_id": a.merchant_id, "provider": "stripe", "account_id": a.account_id,
                "webhook_secrets": [a.webhook_secret], "api_key": a.api_key,
                "api_base_url": format!("{}/stripe", self.base),
            });
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
    /// number of objects changed.
    pub fn step(&self, n: usize) -> usize {
        let mut changed = 0;
        let mut w = self.world();
        for i in 0..w.accounts.len() {
            for _ in 0..n {
                let changes = w.accounts[i].generator.step();
                changed += changes.len();
                for c in changes {
                    let delivery = record(&mut w.accounts[i], c);
                    let _ = self.deliveries.send(Delivery {
                        account: i,
                        ..delivery
                    });
                }
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
        let kind = object["object"].as_str().unwrap_or("object").to_owned();
        let event_type: &'static str = match kind.as_str() {
            "customer" => "customer.updated",
            "invoice" => "invoice.updated",
            "subscription" => "customer.subscription.updated",
            "charge" => "charge.updated",
            "refund" => "refund.updated",
            _ => "credit_note.updated",
        };
        let at = match acc.ledger.events.last() {
            Some(e) => e.created.max(chrono::Utc::now().timestamp()),
            None => chrono::Utc::now().timestamp(),
        };
        let change = Change {
            stream: o.stream,
            id: id.to_owned(),
            created: o.created,
            object,
            deleted: false,
            event_type,
            at,
        };
        let delivery = record(acc, change);
        let _ = self.deliveries.send(Delivery {
            account,
            ..delivery
        });
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
                    "provider": "stripe",
                    "objects": state::truth(&a.ledger, deliveries),
                })
            })
            .collect();
        json!({ "accounts": accounts })
    }
}

/// Applies a change to the account's ledger and event log; returns its delivery.
fn record(acc: &mut AccountState, c: Change) -> Delivery {
    let event_id = acc.generator.event_id();
    let body = json!({
        "id": event_id, "object": "event", "api_version": "2024-06-20", "created": c.at,
        "type": c.event_type, "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "data": {"object": c.object},
    })
    .to_string();
    acc.ledger
        .put(c.stream, &c.id, c.created, c.object, c.deleted);
    acc.ledger.events.push(SimEvent {
        id: event_id.clone(),
        created: c.at,
        body: body.clone(),
    });
    acc.latest_event.insert(c.id.clone(), event_id.clone());
    Delivery {
        account: 0,
        event_id,
        object_id: c.id,
        body,
        attempt: 0,
        timestamp: None,
    }
}
