//! Webhook delivery with chaos: each event is signed the way its provider signs it and posted
//! to the account's billsync connection; drops, duplicates, reordering, retries on non-2xx
//! with Stripe-like backoff (time-compressed) and replays of old deliveries, per the knobs.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::mpsc;

use super::Sim;
use crate::time::now_micros;

/// One webhook to send (or send again).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub account: usize,
    pub event_id: String,
    pub object_id: String,
    pub body: String,
    pub attempt: u32,
    /// A replay keeps its original signing time.
    pub timestamp: Option<i64>,
}

/// Stripe retries for up to three days with growing gaps; compressed by `scale`.
fn backoff(attempt: u32, scale: f64) -> Duration {
    let hours = f64::from(1u32 << attempt.min(6));
    Duration::from_secs_f64((hours * 3600.0 * scale).clamp(0.001, 3600.0))
}

/// Receives deliveries and applies the first-attempt chaos (drop, duplicate, reorder).
pub async fn run(sim: Sim, mut queue: mpsc::UnboundedReceiver<Delivery>) {
    let mut held: Vec<Delivery> = Vec::new();
    let mut sent: Vec<(Delivery, i64)> = Vec::new();
    loop {
        let window = sim.knobs().webhook_reorder_window;
        let next = if held.is_empty() || window == 0 {
            queue.recv().await
        } else {
            // Release a partial window if nothing else comes soon.
            match tokio::time::timeout(Duration::from_millis(200), queue.recv()).await {
                Ok(d) => d,
                Err(_) => {
                    flush(&sim, &mut held, &mut sent);
                    continue;
                }
            }
        };
        let Some(d) = next else {
            flush(&sim, &mut held, &mut sent);
            return;
        };
        let knobs = sim.knobs();
        let (drop, dup) = {
            let mut rng = rand::thread_rng();
            (
                rng.gen_bool(knobs.webhook_drop.clamp(0.0, 1.0)),
                rng.gen_bool(knobs.webhook_duplicate.clamp(0.0, 1.0)),
            )
        };
        if drop {
            sim.world().stats.webhooks_dropped += 1;
            continue;
        }
        if dup {
            sim.world().stats.webhooks_duplicated += 1;
            held.push(d.clone());
        }
        held.push(d);
        if knobs.webhook_reorder_window == 0 || held.len() >= knobs.webhook_reorder_window {
            flush(&sim, &mut held, &mut sent);
        }
    }
}

fn flush(sim: &Sim, held: &mut Vec<Delivery>, sent: &mut Vec<(Delivery, i64)>) {
    let knobs = sim.knobs();
    if knobs.webhook_reorder_window > 0 {
        held.shuffle(&mut rand::thread_rng());
    }
    for d in held.drain(..) {
        let replay = rand::thread_rng().gen_bool(knobs.webhook_replay.clamp(0.0, 1.0));
        if replay && !sent.is_empty() {
            let (old, t) = sent[rand::thread_rng().gen_range(0..sent.len())].clone();
            sim.world().stats.webhooks_replayed += 1;
            tokio::spawn(send(
                sim.clone(),
                Delivery {
                    timestamp: Some(t),
                    attempt: u32::MAX,
                    ..old
                },
            ));
        }
        sent.push((d.clone(), now_micros() / 1_000_000));
        if sent.len() > 10_000 {
            sent.drain(..5_000);
        }
        tokio::spawn(send(sim.clone(), d));
    }
}

/// Posts one delivery, retrying on failure with backoff. Replays are sent once.
async fn send(sim: Sim, mut d: Delivery) {
    loop {
        let (target, conn, secret, knobs, face) = {
            let w = sim.world();
            let Some(target) = w.target.clone() else {
                return;
            };
            let acc = &w.accounts[d.account];
            let Some(conn) = acc.account.connection_id.clone() else {
                return;
            };
            (
                target,
                conn,
                acc.account.webhook_secret.clone(),
                w.knobs.clone(),
                acc.personality(),
            )
        };
        let t = d.timestamp.unwrap_or_else(|| now_micros() / 1_000_000);
        let url = format!(
            "{}/webhooks/{}/{conn}",
            target.url.trim_end_matches('/'),
            face.provider().as_str()
        );
        let sent_at = now_micros();
        let mut request = sim.http.post(&url);
        for (name, value) in face.delivery_headers(&secret, &d.body, t) {
            request = request.header(name, value);
        }
        let answer = request.body(d.body.clone()).send().await;
        let ok = answer.as_ref().is_ok_and(|r| r.status().is_success());
        {
            let mut w = sim.world();
            w.stats.webhooks_sent += 1;
            let acc = &mut w.accounts[d.account];
            if acc.latest_event.get(&d.object_id) == Some(&d.event_id) {
                if let Some(o) = acc.ledger.objects.get_mut(&d.object_id) {
                    o.first_sent_at.get_or_insert(sent_at);
                }
            }
        }
        if ok || d.attempt == u32::MAX {
            return;
        }
        d.attempt += 1;
        if d.attempt >= knobs.max_delivery_attempts {
            sim.world().stats.webhooks_failed += 1;
            return;
        }
        sim.world().stats.webhooks_retried += 1;
        tokio::time::sleep(backoff(d.attempt, knobs.retry_time_scale)).await;
    }
}
