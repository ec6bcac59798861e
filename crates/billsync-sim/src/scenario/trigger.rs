//! `billsync sim trigger EVENT` on the generator: one named lifecycle step, with the fixtures
//! it needs made first, as `stripe trigger` does (the generator's steps are in `scenario.rs`).

use super::{Change, Generator};

/// The lifecycle steps `billsync sim trigger` can perform, by their Stripe event names (each
/// provider's personality delivers its own events for them).
pub const TRIGGERS: &[&str] = &[
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.deleted",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.marked_uncollectible",
    "invoice.voided",
    "charge.succeeded",
    "charge.refunded",
    "credit_note.created",
];

impl Generator {
    /// Performs the lifecycle step named by `event` (`billsync sim trigger`), first making what
    /// it needs (a customer, a subscription with its draft invoice, an open or paid invoice, a
    /// charge), as `stripe trigger` makes its fixtures. `None` for a name it does not know.
    pub fn trigger(&mut self, event: &str) -> Option<Vec<Change>> {
        let mut out = Vec::new();
        let t = self.now();
        let needs_customer = event != "customer.created" && self.customers.is_empty();
        if needs_customer && TRIGGERS.contains(&event) {
            out.push(self.new_customer(t));
        }
        let mut steps: Vec<Change> = match event {
            "customer.created" => vec![self.new_customer(t)],
            "customer.updated" => vec![self.update_customer(t)],
            "customer.deleted" => self.delete_customer(t),
            "customer.subscription.created" | "invoice.created" => self.new_subscription(t),
            "customer.subscription.deleted" => {
                if self.subscriptions.is_empty() {
                    out.extend(self.new_subscription(t));
                }
                self.cancel(t)
            }
            "invoice.finalized" => {
                if self.drafts.is_empty() {
                    out.extend(self.new_subscription(t));
                }
                self.finalize(t)
            }
            "invoice.paid"
            | "charge.succeeded"
            | "invoice.marked_uncollectible"
            | "invoice.voided" => {
                if self.open.is_empty() {
                    if self.drafts.is_empty() {
                        out.extend(self.new_subscription(t));
                    }
                    out.extend(self.finalize(t));
                }
                match event {
                    "invoice.marked_uncollectible" => self.close_unpaid(t, Some(false)),
                    "invoice.voided" => self.close_unpaid(t, Some(true)),
                    _ => self.pay(t),
                }
            }
            "charge.refunded" | "credit_note.created" => {
                let missing = if event == "charge.refunded" {
                    self.charges.is_empty()
                } else {
                    self.paid.is_empty()
                };
                if missing {
                    if self.open.is_empty() {
                        if self.drafts.is_empty() {
                            out.extend(self.new_subscription(t));
                        }
                        out.extend(self.finalize(t));
                    }
                    out.extend(self.pay(t));
                }
                if event == "charge.refunded" {
                    self.refund(t)
                } else {
                    self.credit_note(t)
                }
            }
            _ => return None,
        };
        out.append(&mut steps);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Clock;
    use super::*;

    #[test]
    fn every_trigger_performs_its_step_from_an_empty_account() {
        for t in TRIGGERS {
            let mut g = Generator::new(7, 0, Clock::Fixed(1_700_000_000));
            let changes = g.trigger(t).unwrap_or_else(|| panic!("{t} unknown"));
            let types: Vec<&str> = changes.iter().map(|c| c.event_type).collect();
            assert!(types.contains(t), "{t} made {types:?}");
        }
        let mut g = Generator::new(7, 0, Clock::Fixed(1_700_000_000));
        assert!(g.trigger("invoice.teleported").is_none());
    }
}
