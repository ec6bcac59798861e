//! Rate limits for provider API calls, owned by each pair actor (docs/architecture.md, invariant
//! 7): a `leaky-bucket` per connection plus one per provider shared by all its connections on this
//! node; urgent work (refetch, incremental) goes first, a 429 pauses the whole connection. In a
//! cluster a node's provider-wide bucket is the share of the budget that matches the shards it
//! holds, so adding nodes never adds up to more than the provider's quota.

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

/// A provider-wide bucket: the whole budget's rate, and the bucket of this node's share.
pub struct SharedBucket {
    budget_per_sec: u32,
    current: Mutex<Arc<RateLimiter>>,
}

impl SharedBucket {
    fn new(budget_per_sec: u32, share: Share) -> Self {
        SharedBucket {
            budget_per_sec,
            current: Mutex::new(Arc::new(bucket(share.of(budget_per_sec)))),
        }
    }

    fn bucket(&self) -> Arc<RateLimiter> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_share(&self, share: Share) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(bucket(share.of(self.budget_per_sec)));
    }
}

/// This node's part of every provider-wide budget: `held` of `total` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Share {
    held: i32,
    total: i32,
}

impl Default for Share {
    fn default() -> Self {
        Share { held: 1, total: 1 }
    }
}

impl Share {
    /// The share of `per_sec`, at least 1 request per second (a node that holds nothing
    /// sends nothing anyway).
    fn of(self, per_sec: u32) -> u32 {
        let total = self.total.max(1) as u64;
        let held = self.held.clamp(0, self.total.max(1)) as u64;
        ((u64::from(per_sec) * held / total) as u32).max(1)
    }
}

/// The provider-wide buckets of this node.
#[derive(Default)]
pub struct ProviderLimits {
    buckets: DashMap<ProviderKind, Arc<SharedBucket>>,
    share: Mutex<Share>,
}

impl ProviderLimits {
    /// The shared bucket of a provider, created for a budget of `per_sec` on first use.
    pub fn get(&self, provider: ProviderKind, per_sec: u32) -> Arc<SharedBucket> {
        let share = *self.share.lock().unwrap_or_else(|e| e.into_inner());
        self.buckets
            .entry(provider)
            .or_insert_with(|| Arc::new(SharedBucket::new(per_sec, share)))
            .clone()
    }

    /// This node now holds `held` of `total` shards: every provider-wide bucket becomes that
    /// share of its budget (requests already waiting finish at the old rate).
    pub fn set_share(&self, held: i32, total: i32) {
        let share = Share { held, total };
        {
            let mut current = self.share.lock().unwrap_or_else(|e| e.into_inner());
            if *current == share {
                return;
            }
            *current = share;
        }
        for b in self.buckets.iter() {
            b.set_share(share);
        }
    }
}

/// One connection's budget.
pub struct ConnectionLimiter {
    provider: &'static str,
    own: RateLimiter,
    shared: Arc<SharedBucket>,
    urgent_waiting: AtomicUsize,
    /// Low-priority requests queue at the bucket one at a time, so an urgent request never
    /// waits behind a crowd of backfill requests.
    low_gate: tokio::sync::Mutex<()>,
    paused_until: Mutex<Option<Instant>>,
}

impl ConnectionLimiter {
    pub fn new(provider: ProviderKind, per_sec: u32, shared: Arc<SharedBucket>) -> Self {
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
        self.shared.bucket().acquire_one().await;
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
    async fn a_node_with_a_third_of_the_shards_sends_a_third_of_the_provider_budget() {
        let limits = ProviderLimits::default();
        limits.set_share(85, 256);
        let l = ConnectionLimiter::new(
            ProviderKind::Stripe,
            10_000,
            limits.get(ProviderKind::Stripe, 300),
        );
        let t = tokio::time::Instant::now();
        // 99 of 300/s: 200 permits take about 2 s (the first 5 are the initial burst).
        for _ in 0..200 {
            l.acquire(Priority::Refetch).await;
        }
        let secs = t.elapsed().as_secs_f64();
        assert!(
            (1.8..2.3).contains(&secs),
            "200 permits at 99/s took {secs}s"
        );
        // Holding every shard again gives the whole budget, to buckets made before too.
        limits.set_share(256, 256);
        let t = tokio::time::Instant::now();
        for _ in 0..300 {
            l.acquire(Priority::Refetch).await;
        }
        let secs = t.elapsed().as_secs_f64();
        assert!(
            (0.8..1.2).contains(&secs),
            "300 permits at 300/s took {secs}s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_priority() {
        let shared = Arc::new(SharedBucket::new(1000, Share::default()));
        let l = ConnectionLimiter::new(ProviderKind::Stripe, 1000, shared);
        l.pause_for(Duration::from_secs(2));
        let t = tokio::time::Instant::now();
        l.acquire(Priority::Refetch).await;
        assert!(t.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_is_held_over_a_second() {
        let shared = Arc::new(SharedBucket::new(10_000, Share::default()));
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
