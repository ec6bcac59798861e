//! Rate limits for provider API calls, owned by each pair actor (DESIGN invariant 7): a
//! `leaky-bucket` per connection plus one per provider shared by all its connections on this
//! node; urgent work (refetch, incremental) goes first, a 429 pauses the whole connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use leaky_bucket::RateLimiter;

use crate::providers::ProviderKind;

/// What a request is for, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Refetch,
    Incremental,
    Reconcile,
    Backfill,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Refetch => "refetch",
            Priority::Incremental => "incremental",
            Priority::Reconcile => "reconcile",
            Priority::Backfill => "backfill",
        }
    }

    fn urgent(self) -> bool {
        self <= Priority::Incremental
    }
}

/// A token bucket refilled in steps of at least 50 ms. `leaky-bucket` schedules each refill
/// from the moment its timer fired, so every step loses that timer's lateness (about 1 ms
/// here): 10 ms steps gave 90 of 100 req/s (`scripts/bench`, scenario 3), 50 ms steps ~98%.
fn bucket(per_sec: u32) -> RateLimiter {
    let per_sec = per_sec.max(1) as usize;
    let refill = per_sec.div_ceil(20);
    // refill / per_sec >= 1/20 s, so the interval is never under 50 ms.
    let interval = Duration::from_micros((1_000_000 * refill / per_sec) as u64);
    RateLimiter::builder()
        .max(refill)
        .initial(refill)
        .refill(refill)
        .interval(interval)
        .fair(true)
        .build()
}

/// The provider-wide buckets of this node.
#[derive(Default)]
pub struct ProviderLimits {
    buckets: DashMap<ProviderKind, Arc<RateLimiter>>,
}

impl ProviderLimits {
    /// The shared bucket of a provider, created at `per_sec` on first use.
    pub fn get(&self, provider: ProviderKind, per_sec: u32) -> Arc<RateLimiter> {
        self.buckets
            .entry(provider)
            .or_insert_with(|| Arc::new(bucket(per_sec)))
            .clone()
    }
}

/// One connection's budget.
pub struct ConnectionLimiter {
    provider: &'static str,
    own: RateLimiter,
    shared: Arc<RateLimiter>,
    urgent_waiting: AtomicUsize,
    /// Low-priority requests queue at the bucket one at a time, so an urgent request never
    /// waits behind a crowd of backfill requests.
    low_gate: tokio::sync::Mutex<()>,
    paused_until: Mutex<Option<Instant>>,
}

impl ConnectionLimiter {
    pub fn new(provider: ProviderKind, per_sec: u32, shared: Arc<RateLimiter>) -> Self {
        ConnectionLimiter {
            provider: provider.as_str(),
            own: bucket(per_sec),
            shared,
            urgent_waiting: AtomicUsize::new(0),
            low_gate: tokio::sync::Mutex::new(()),
            paused_until: Mutex::new(None),
        }
    }

    /// Waits for a permit to send one request (every attempt, retries included).
    pub async fn acquire(&self, priority: Priority) {
        let started = Instant::now();
        if priority.urgent() {
            self.urgent_waiting.fetch_add(1, Ordering::SeqCst);
            self.wait_out_pause().await;
            self.own.acquire_one().await;
            self.urgent_waiting.fetch_sub(1, Ordering::SeqCst);
        } else {
            let _gate = self.low_gate.lock().await;
            loop {
                self.wait_out_pause().await;
                if self.urgent_waiting.load(Ordering::SeqCst) == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            self.own.acquire_one().await;
        }
        self.shared.acquire_one().await;
        metrics::histogram!("billsync_limiter_wait_seconds", "provider" => self.provider,
            "kind" => priority.as_str())
        .record(started.elapsed().as_secs_f64());
    }

    /// Pauses every request of the connection for `delay` (a 429 or `Retry-After`).
    pub fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    async fn wait_out_pause(&self) {
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_priority() {
        let shared = Arc::new(bucket(1000));
        let l = ConnectionLimiter::new(ProviderKind::Stripe, 1000, shared);
        l.pause_for(Duration::from_secs(2));
        let t = tokio::time::Instant::now();
        l.acquire(Priority::Refetch).await;
        assert!(t.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_is_held_over_a_second() {
        let shared = Arc::new(bucket(10_000));
        let l = ConnectionLimiter::new(ProviderKind::Stripe, 100, shared);
        let t = tokio::time::Instant::now();
        for _ in 0..205 {
            l.acquire(Priority::Backfill).await;
        }
        let secs = t.elapsed().as_secs_f64();
        assert!(
            (1.9..2.2).contains(&secs),
            "205 permits at 100/s took {secs}s"
        );
    }
}
