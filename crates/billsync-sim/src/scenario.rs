//! Seeded, reproducible billing lifecycles in Stripe's shapes: customers with addresses and
//! tax ids, subscriptions, invoices with lines, tax and discounts moving draft → open → paid /
//! void / uncollectible, credit notes, charges and refunds, deletions. Each step yields the
//! changed objects and the events Stripe would send for them.

mod trigger;

pub use trigger::TRIGGERS;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// One changed object and the event announcing it.
#[derive(Debug, Clone)]
pub struct Change {
    pub stream: &'static str,
    pub id: String,
    pub created: i64,
    pub object: Value,
    pub deleted: bool,
    pub event_type: &'static str,
    /// When the change happened (the event's `created`).
    pub at: i64,
}

/// Where a generator's time comes from.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// Simulated seconds, starting here and advancing a few seconds per step (reproducible).
    Fixed(i64),
    /// The wall clock (live mode).
    Wall,
}

/// Generates one account's history and lifecycle steps.
pub struct Generator {
    rng: ChaCha8Rng,
    clock: Clock,
    next_id: u64,
    tag: String,
    customers: Vec<String>,
    subscriptions: Vec<(String, String)>,
    drafts: Vec<Value>,
    open: Vec<Value>,
    paid: Vec<Value>,
    charges: Vec<Value>,
}

const COUNTRIES: &[(&str, &str, &str)] = &[
    ("DE", "Berlin", "10115"),
    ("US", "Austin", "73301"),
    ("FR", "Paris", "75001"),
    ("JP", "Tokyo", "100-0001"),
];
const CURRENCIES: &[&str] = &["usd", "eur", "gbp", "jpy"];

impl Generator {
    /// A generator for account number `account` of a run seeded with `seed`.
    pub fn new(seed: u64, account: u64, clock: Clock) -> Self {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed ^ account.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            clock,
            next_id: 0,
            tag: format!("{:x}{account}", seed % 0xfff),
            customers: Vec::new(),
            subscriptions: Vec::new(),
            drafts: Vec::new(),
            open: Vec::new(),
            paid: Vec::new(),
            charges: Vec::new(),
        }
    }

    /// A new event id.
    pub fn event_id(&mut self) -> String {
        self.id("evt")
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}{:010}", self.tag, self.next_id)
    }

    fn now(&mut self) -> i64 {
        match &mut self.clock {
            Clock::Fixed(t) => {
                *t += self.rng.gen_range(1..=20);
                *t
            }
            Clock::Wall => chrono::Utc::now().timestamp(),
        }
    }

    fn pick(&mut self, len: usize) -> usize {
        self.rng.gen_range(0..len)
    }

    fn any_customer(&mut self) -> String {
        let i = self.pick(self.customers.len());
        self.customers[i].clone()
    }

    /// The next lifecycle step: one or more changed objects.
    pub fn step(&mut self) -> Vec<Change> {
        let t = self.now();
        let roll = self.rng.gen_range(0..100);
        match roll {
            _ if self.customers.is_empty() => vec![self.new_customer(t)],
            0..=17 => vec![self.new_customer(t)],
            18..=27 => vec![self.update_customer(t)],
            28..=42 => self.new_subscription(t),
            43..=57 if !self.drafts.is_empty() => self.finalize(t),
            58..=72 if !self.open.is_empty() => self.pay(t),
            73..=77 if !self.open.is_empty() => self.close_unpaid(t, None),
            78..=85 if !self.charges.is_empty() => self.refund(t),
            86..=91 if !self.paid.is_empty() => self.credit_note(t),
            92..=96 if !self.subscriptions.is_empty() => self.cancel(t),
            97..=99 if self.customers.len() > 3 => self.delete_customer(t),
            _ => vec![self.new_customer(t)],
        }
    }

    fn customer_json(&mut self, id: &str, created: i64) -> Value {
        let (country, city, postal) = COUNTRIES[self.pick(COUNTRIES.len())];
        let n = self.rng.gen_range(1000..99999);
        // Most customers have one VAT number, some none, some a second id (a tax platform
        // decides reverse charge on them, so every one must arrive).
        let mut tax_ids = Vec::new();
        if n % 10 != 0 {
            tax_ids.push(
                json!({"id": format!("txi_{n}"), "object": "tax_id", "type": "eu_vat",
                "value": format!("{country}{n}"), "customer": id, "created": created}),
            );
        }
        if n % 10 == 1 {
            tax_ids.push(
                json!({"id": format!("txi_{n}b"), "object": "tax_id", "type": "gb_vat",
                "value": format!("GB{n}"), "customer": id, "created": created}),
            );
        }
        json!({
            "id": id, "object": "customer", "created": created, "livemode": false,
            "email": format!("buyer{n}@example.com"), "name": format!("Buyer {n}"),
            "address": {"line1": format!("{n} Main St"), "line2": null, "city": city, "state": null,
                        "postal_code": postal, "country": country},
            "tax_exempt": if n % 17 == 0 { "exempt" } else { "none" },
            "tax_ids": {"object": "list", "has_more": false, "data": tax_ids},
            "metadata": {}
        })
    }

    fn new_customer(&mut self, t: i64) -> Change {
        let id = self.id("cus");
        let object = self.customer_json(&id, t);
        self.customers.push(id.clone());
        Change {
            stream: "customers",
            id,
            created: t,
            object,
            deleted: false,
            event_type: "customer.created",
            at: t,
        }
    }

    fn update_customer(&mut self, t: i64) -> Change {
        let i = self.pick(self.customers.len());
        let id = self.customers[i].clone();
        let mut object = self.customer_json(&id, t);
        object["created"] = json!(t - 1000);
        Change {
            stream: "customers",
            id,
            created: t - 1000,
            object,
            deleted: false,
            event_type: "customer.updated",
            at: t,
        }
    }

    fn delete_customer(&mut self, t: i64) -> Vec<Change> {
        let i = self.pick(self.customers.len());
        let id = self.customers.swap_remove(i);
        let object = json!({"id": id, "object": "customer", "deleted": true});
        vec![Change {
            stream: "customers",
            id,
            created: t,
            object,
            deleted: true,
            event_type: "customer.deleted",
            at: t,
        }]
    }

    fn new_subscription(&mut self, t: i64) -> Vec<Change> {
        let customer = self.any_customer();
        let currency = CURRENCIES[self.pick(CURRENCIES.len())];
        let id = self.id("sub");
        let unit = self.rng.gen_range(5..500) * 100;
        let quantity = self.rng.gen_range(1..5);
        let price = self.id("price");
        let item = self.id("si");
        let sub = json!({
            "id": id, "object": "subscription", "created": t, "customer": customer, "status": "active",
            "currency": currency, "current_period_start": t, "current_period_end": t + 30 * 86400,
            "cancel_at": null, "canceled_at": null,
            "items": {"object": "list", "has_more": false, "data": [{"id": item, "object": "subscription_item",
                "price": {"id": price, "object": "price", "currency": currency, "unit_amount": unit}, "quantity": quantity}]}
        });
        self.subscriptions.push((id.clone(), customer.clone()));
        let invoice = self.invoice_json(&customer, Some(&id), currency, t, unit * quantity);
        self.drafts.push(invoice.clone());
        vec![
            Change {
                stream: "subscriptions",
                id,
                created: t,
                object: sub,
                deleted: false,
                event_type: "customer.subscription.created",
                at: t,
            },
            Change {
                stream: "invoices",
                id: invoice["id"].as_str().unwrap_or_default().to_owned(),
                created: t,
                object: invoice,
                deleted: false,
                event_type: "invoice.created",
                at: t,
            },
        ]
    }

    fn invoice_json(
        &mut self,
        customer: &str,
        subscription: Option<&str>,
        currency: &str,
        t: i64,
        base: i64,
    ) -> Value {
        let id = self.id("in");
        // One invoice in fifteen is long: more lines than any provider embeds in one read
        // (Stripe 10, Zuora 50, Recurly's embedded page), so each must page them.
        let n_lines = if self.rng.gen_ratio(1, 15) {
            self.rng.gen_range(11..=120)
        } else {
            self.rng.gen_range(1..=3)
        };
        let mut lines = Vec::new();
        let mut subtotal = 0;
        for l in 0..n_lines {
            let amount = if l == 0 {
                base
            } else {
                self.rng.gen_range(1..100) * 100
            };
            subtotal += amount;
            let line_id = self.id("il");
            lines.push(json!({"id": line_id, "object": "line_item", "amount": amount, "currency": currency,
                "description": format!("Item {l}"), "quantity": 1,
                "period": {"start": t, "end": t + 30 * 86400}, "taxes": [{"amount": amount * 19 / 100, "tax_behavior": "exclusive"}]}));
        }
        let discount = if self.rng.gen_bool(0.2) {
            subtotal / 10
        } else {
            0
        };
        let tax = (subtotal - discount) * 19 / 100;
        let total = subtotal - discount + tax;
        json!({
            "id": id, "object": "invoice", "created": t, "customer": customer, "subscription": subscription,
            "status": "draft", "currency": currency, "subtotal": subtotal,
            "total_discount_amounts": if discount > 0 { json!([{"amount": discount, "discount": "di_1"}]) } else { json!([]) },
            "total_taxes": [{"amount": tax, "tax_behavior": "exclusive", "taxability_reason": "standard_rated"}],
            "total": total, "amount_paid": 0, "amount_due": total, "amount_remaining": total,
            "status_transitions": {"finalized_at": null, "paid_at": null, "voided_at": null, "marked_uncollectible_at": null},
            "period_start": t, "period_end": t + 30 * 86400,
            "lines": {"object": "list", "has_more": false, "data": lines}
        })
    }

    fn finalize(&mut self, t: i64) -> Vec<Change> {
        let i = self.pick(self.drafts.len());
        let mut inv = self.drafts.swap_remove(i);
        inv["status"] = json!("open");
        inv["status_transitions"]["finalized_at"] = json!(t);
        self.open.push(inv.clone());
        vec![invoice_change(inv, "invoice.finalized", t)]
    }

    fn pay(&mut self, t: i64) -> Vec<Change> {
        let i = self.pick(self.open.len());
        let mut inv = self.open.swap_remove(i);
        let total = inv["total"].as_i64().unwrap_or(0);
        inv["status"] = json!("paid");
        inv["amount_paid"] = json!(total);
        inv["amount_due"] = json!(total);
        inv["amount_remaining"] = json!(0);
        inv["status_transitions"]["paid_at"] = json!(t);
        let id = self.id("ch");
        let charge = json!({
            "id": id, "object": "charge", "created": t, "customer": inv["customer"], "invoice": inv["id"],
            "currency": inv["currency"], "amount": total, "amount_refunded": 0, "refunded": false,
            "status": "succeeded", "paid": true
        });
        self.paid.push(inv.clone());
        self.charges.push(charge.clone());
        vec![
            invoice_change(inv, "invoice.paid", t),
            Change {
                stream: "charges",
                id,
                created: t,
                object: charge,
                deleted: false,
                event_type: "charge.succeeded",
                at: t,
            },
        ]
    }

    /// Voids (`Some(true)`), marks uncollectible (`Some(false)`) or either (`None`, 60% void)
    /// an open invoice.
    fn close_unpaid(&mut self, t: i64, void: Option<bool>) -> Vec<Change> {
        let i = self.pick(self.open.len());
        let mut inv = self.open.swap_remove(i);
        let void = void.unwrap_or_else(|| self.rng.gen_bool(0.6));
        let (status, field, event) = if void {
            ("void", "voided_at", "invoice.voided")
        } else {
            (
                "uncollectible",
                "marked_uncollectible_at",
                "invoice.marked_uncollectible",
            )
        };
        inv["status"] = json!(status);
        inv["status_transitions"][field] = json!(t);
        vec![invoice_change(inv, event, t)]
    }

    fn refund(&mut self, t: i64) -> Vec<Change> {
        let i = self.pick(self.charges.len());
        let amount = self.charges[i]["amount"].as_i64().unwrap_or(0);
        let refunded = self.charges[i]["amount_refunded"].as_i64().unwrap_or(0);
        if amount - refunded < 2 {
            return vec![self.new_customer(t)];
        }
        let part = self.rng.gen_range(1..=(amount - refunded));
        let charge = &mut self.charges[i];
        charge["amount_refunded"] = json!(refunded + part);
        charge["refunded"] = json!(refunded + part == amount);
        let charge = charge.clone();
        let id = self.id("re");
        let refund = json!({"id": id, "object": "refund", "created": t, "charge": charge["id"], "currency": charge["currency"],
            "amount": part, "status": "succeeded", "reason": "requested_by_customer"});
        vec![
            Change {
                stream: "refunds",
                id,
                created: t,
                object: refund,
                deleted: false,
                event_type: "refund.created",
                at: t,
            },
            Change {
                stream: "charges",
                id: charge["id"].as_str().unwrap_or_default().to_owned(),
                created: charge["created"].as_i64().unwrap_or(t),
                object: charge,
                deleted: false,
                event_type: "charge.refunded",
                at: t,
            },
        ]
    }

    fn credit_note(&mut self, t: i64) -> Vec<Change> {
        let i = self.pick(self.paid.len());
        let inv = self.paid[i].clone();
        let subtotal = inv["subtotal"].as_i64().unwrap_or(0).clamp(1, 1000);
        let tax = subtotal * 19 / 100;
        let id = self.id("cn");
        let line = self.id("cnli");
        let cn = json!({
            "id": id, "object": "credit_note", "created": t, "invoice": inv["id"], "customer": inv["customer"],
            "status": "issued", "currency": inv["currency"], "subtotal": subtotal,
            "total_taxes": [{"amount": tax, "tax_behavior": "exclusive"}], "total": subtotal + tax,
            "reason": "product_unsatisfactory",
            "lines": {"object": "list", "has_more": false, "data": [{"id": line, "object": "credit_note_line_item",
                "amount": subtotal, "description": "Goodwill", "quantity": 1, "taxes": [{"amount": tax}]}]}
        });
        vec![Change {
            stream: "credit_notes",
            id,
            created: t,
            object: cn,
            deleted: false,
            event_type: "credit_note.created",
            at: t,
        }]
    }

    fn cancel(&mut self, t: i64) -> Vec<Change> {
        let i = self.pick(self.subscriptions.len());
        let (id, customer) = self.subscriptions.swap_remove(i);
        let object = json!({
            "id": id, "object": "subscription", "created": t - 100, "customer": customer, "status": "canceled",
            "currency": "usd", "current_period_start": t - 100, "current_period_end": t + 30 * 86400,
            "cancel_at": null, "canceled_at": t, "items": {"object": "list", "has_more": false, "data": []}
        });
        vec![Change {
            stream: "subscriptions",
            id,
            created: t - 100,
            object,
            deleted: false,
            event_type: "customer.subscription.deleted",
            at: t,
        }]
    }

    /// `n` objects created between `since` and `until` (unix seconds), as history a backfill
    /// pulls: no events (older than the events API keeps).
    pub fn history(&mut self, n: usize, since: i64, until: i64) -> Vec<Change> {
        let mut out = Vec::with_capacity(n);
        let span = (until - since).max(1);
        for i in 0..n {
            let t = since + (span as i128 * i as i128 / n.max(1) as i128) as i64;
            let kind = self.rng.gen_range(0..100);
            let change = match kind {
                0..=24 => self.new_customer(t),
                25..=39 if !self.customers.is_empty() => self.new_subscription(t).swap_remove(0),
                40..=74 if !self.customers.is_empty() => {
                    let customer = self.any_customer();
                    let mut inv = self.invoice_json(&customer, None, "usd", t, 1000);
                    inv["status"] = json!("paid");
                    inv["amount_paid"] = inv["total"].clone();
                    invoice_change(inv, "invoice.paid", t)
                }
                _ if !self.customers.is_empty() => {
                    let id = self.id("ch");
                    let customer = self.any_customer();
                    let amount = self.rng.gen_range(100..100_000);
                    let object = json!({"id": id, "object": "charge", "created": t, "customer": customer, "invoice": null,
                        "currency": "usd", "amount": amount, "amount_refunded": 0, "refunded": false, "status": "succeeded"});
                    Change {
                        stream: "charges",
                        id,
                        created: t,
                        object,
                        deleted: false,
                        event_type: "charge.succeeded",
                        at: t,
                    }
                }
                _ => self.new_customer(t),
            };
            out.push(change);
        }
        self.drafts.clear();
        out
    }
}

fn invoice_change(inv: Value, event_type: &'static str, at: i64) -> Change {
    Change {
        at,
        stream: "invoices",
        id: inv["id"].as_str().unwrap_or_default().to_owned(),
        created: inv["created"].as_i64().unwrap_or(0),
        object: inv,
        deleted: false,
        event_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_steps_other_seed_other_steps() {
        let run = |seed| {
            let mut g = Generator::new(seed, 1, Clock::Fixed(1_700_000_000));
            (0..200)
                .flat_map(|_| g.step())
                .map(|c| c.object.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn invoices_add_up() {
        let mut g = Generator::new(1, 1, Clock::Fixed(1_700_000_000));
        for c in (0..300)
            .flat_map(|_| g.step())
            .filter(|c| c.stream == "invoices")
        {
            let o = &c.object;
            let lines: i64 = o["lines"]["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["amount"].as_i64().unwrap())
                .sum();
            assert_eq!(lines, o["subtotal"].as_i64().unwrap());
            let disc: i64 = o["total_discount_amounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["amount"].as_i64().unwrap())
                .sum();
            let tax = o["total_taxes"][0]["amount"].as_i64().unwrap();
            assert_eq!(
                o["subtotal"].as_i64().unwrap() - disc + tax,
                o["total"].as_i64().unwrap()
            );
        }
    }
}
