//! The simulator's world: accounts, their objects as the provider holds them (current and
//! previous state, for API lag), the event log, and what was delivered when.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::SimProvider;

/// One provider account (a merchant's account at one provider).
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub provider: SimProvider,
    pub account_id: String,
    pub api_key: String,
    pub webhook_secret: String,
    pub merchant_id: String,
    /// The billsync connection webhooks go to, once registered.
    pub connection_id: Option<String>,
}

/// What the seeded world says of an object, whatever shape its provider renders it in: its
/// currency and its amount in minor units, for invoices and credit notes (the total) and for
/// charges and refunds (the amount). Taken from the generator's change before a personality
/// translates it, and kept through edits, so that `verify` can check billsync's stored amounts
/// against the world rather than against billsync's own reading of the provider's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldFacts {
    /// The billsync collection the amount is compared in (docs/api.md): `invoices`,
    /// `credit_notes` or `transactions`; `None` for objects with no amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// ISO 4217 code, as the generator wrote it (lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The total (invoices, credit notes) or amount (transactions), minor units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor_units: Option<i64>,
}

impl WorldFacts {
    /// The facts of a generator change (in Stripe's shapes, before translation).
    pub fn of(stream: &str, object: &Value) -> WorldFacts {
        let (collection, amount) = match stream {
            "invoices" => ("invoices", "total"),
            "credit_notes" => ("credit_notes", "total"),
            "charges" | "refunds" => ("transactions", "amount"),
            _ => return WorldFacts::default(),
        };
        WorldFacts {
            collection: Some(collection.to_owned()),
            currency: object["currency"].as_str().map(str::to_owned),
            minor_units: object[amount].as_i64(),
        }
    }
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
    /// What the world says of it, independent of the provider's shape.
    pub facts: WorldFacts,
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
    /// Inserts or replaces an object, keeping the previous state for lagged reads; `facts`
    /// replaces the world's facts (`None`: an edit, which keeps them).
    pub fn put(
        &mut self,
        stream: &'static str,
        id: &str,
        created: i64,
        object: Value,
        deleted: bool,
        facts: Option<WorldFacts>,
    ) {
        let now = Instant::now();
        match self.objects.get_mut(id) {
            Some(o) => {
                o.previous = Some((Some(o.current.clone()), now));
                o.current = object;
                o.deleted = deleted;
                o.first_sent_at = None;
                // An edit overlays provider fields; the world's facts stay.
                if let Some(facts) = facts {
                    o.facts = facts;
                }
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
                        facts: facts.unwrap_or_default(),
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
    /// What the world says of it (`verify`'s independent expectation).
    pub facts: WorldFacts,
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
            facts: o.facts.clone(),
        })
        .collect()
}
