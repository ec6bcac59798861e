//! The simulator's world: accounts, their objects as the provider holds them (current and
//! previous state, for API lag), the event log, and what was delivered when.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::providers::ProviderKind;

/// One provider account (a merchant's account at one provider).
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub provider: ProviderKind,
    pub account_id: String,
    pub api_key: String,
    pub webhook_secret: String,
    pub merchant_id: String,
    /// The billsync connection webhooks go to, once registered.
    pub connection_id: Option<String>,
}

/// An object as the provider holds it.
#[derive(Debug, Clone)]
pub struct SimObject {
    /// The list endpoint it belongs to (`invoices`, `charges`, ...).
    pub stream: &'static str,
    pub created: i64,
    pub current: Value,
    pub deleted: bool,
    /// The state before the last change, and when that change happened (API lag).
    pub previous: Option<(Option<Value>, Instant)>,
    /// When the webhook of its latest change was first sent (unix micros).
    pub first_sent_at: Option<i64>,
}

/// One provider event.
#[derive(Debug, Clone)]
pub struct SimEvent {
    pub id: String,
    pub created: i64,
    pub body: String,
}

/// A stream's objects in list order: newest first, ties by id descending.
pub type ListOrder = BTreeSet<(Reverse<i64>, Reverse<String>)>;

/// Objects, list order and events of one account.
#[derive(Default)]
pub struct Ledger {
    pub objects: HashMap<String, SimObject>,
    /// Per stream, ids newest first: (Reverse(created), Reverse(id)).
    pub order: HashMap<&'static str, ListOrder>,
    pub events: Vec<SimEvent>,
}

impl Ledger {
    /// Inserts or replaces an object, keeping the previous state for lagged reads.
    pub fn put(
        &mut self,
        stream: &'static str,
        id: &str,
        created: i64,
        object: Value,
        deleted: bool,
    ) {
        let now = Instant::now();
        match self.objects.get_mut(id) {
            Some(o) => {
                o.previous = Some((Some(o.current.clone()), now));
                o.current = object;
                o.deleted = deleted;
                o.first_sent_at = None;
            }
            None => {
                self.order
                    .entry(stream)
                    .or_default()
                    .insert((Reverse(created), Reverse(id.to_owned())));
                self.objects.insert(
                    id.to_owned(),
                    SimObject {
                        stream,
                        created,
                        current: object,
                        deleted,
                        previous: Some((None, now)),
                        first_sent_at: None,
                    },
                );
            }
        }
    }

    /// The object as an API read sees it with `lag` (the previous state during the lag).
    pub fn read(&self, id: &str, lag: Duration) -> Option<(&SimObject, Option<&Value>)> {
        let o = self.objects.get(id)?;
        let visible = match &o.previous {
            Some((prev, at)) if at.elapsed() < lag => prev.as_ref(),
            _ => Some(&o.current),
        };
        Some((o, visible))
    }
}

/// A stable, sorted export of current states (the ground truth).
#[derive(Debug, Serialize)]
pub struct TruthObject {
    pub stream: &'static str,
    pub id: String,
    pub deleted: bool,
    pub object: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_sent_at: Option<i64>,
}

/// Sorted truth of one ledger (by stream, then id).
pub fn truth(ledger: &Ledger, with_delivery: bool) -> Vec<TruthObject> {
    let sorted: BTreeMap<(&str, &str), &SimObject> = ledger
        .objects
        .iter()
        .map(|(id, o)| ((o.stream, id.as_str()), o))
        .collect();
    sorted
        .into_iter()
        .map(|((stream, id), o)| TruthObject {
            stream,
            id: id.to_owned(),
            deleted: o.deleted,
            object: o.current.clone(),
            first_sent_at: if with_delivery { o.first_sent_at } else { None },
        })
        .collect()
}
