//! How a simulator starts ([`SimConfig`], the [`Target`] it registers with) and what it answers
//! about itself ([`Stats`], [`LiveOut`]); re-exported at the crate's root.

use std::collections::HashMap;

use serde::Serialize;

use crate::{Clock, Knobs, SimProvider, TlsIdentity};

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
    /// The providers simulated. Account `n` is at `providers[n % len]` and belongs to
    /// merchant `n / len`, so with several providers each merchant is connected to several.
    pub providers: Vec<SimProvider>,
    /// Serve HTTPS with this certificate (its names must cover the listen address), as the
    /// real APIs do; plain HTTP when `None`.
    pub tls: Option<TlsIdentity>,
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
            providers: vec![SimProvider::Stripe],
            tls: None,
        }
    }
}

/// The answer of `POST /_sim/pause` and `POST /_sim/resume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LiveOut {
    /// Whether live changes are paused now.
    pub paused: bool,
    /// Whether they were paused before this call.
    pub was_paused: bool,
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
