//! billsync's side of `billsync sim verify` (feature `sim`): the simulator (crates/billsync-sim)
//! does not link billsync, so what billsync should store for a simulated provider object is
//! told to it through its `Expectation` trait, answered here with each provider's own mapping
//! (`providers::for_kind(..).observe_object(..)`). The simulator checks deletion, currencies
//! and amounts against its own world besides (its `lib.rs` says what rests on which).

use billsync_sim::verify::{Expectation, Expected};
use billsync_sim::SimProvider;
use serde_json::Value;

use crate::providers::{self, ProviderKind};

/// billsync's mapping, as the simulator's verification expects it.
#[derive(Debug, Clone, Copy, Default)]
pub struct BillsyncMapping;

impl Expectation for BillsyncMapping {
    fn expect(&self, provider: &str, provider_object: &Value) -> Result<Option<Expected>, String> {
        let kind = ProviderKind::parse(provider)
            .ok_or_else(|| format!("billsync has no provider `{provider}`"))?;
        let observed = providers::for_kind(kind)
            .observe_object(provider_object, 0)
            .map_err(|e| e.to_string())?;
        Ok(observed.map(|o| Expected {
            collection: o.object_type.collection().to_owned(),
            id: format!("{}:{}", kind.as_str(), o.provider_id),
            data: o.data,
        }))
    }
}

/// The simulator's name for a billsync provider (the same name on the wire).
pub fn sim_provider(kind: ProviderKind) -> SimProvider {
    match kind {
        ProviderKind::Stripe => SimProvider::Stripe,
        ProviderKind::Chargebee => SimProvider::Chargebee,
        ProviderKind::Recurly => SimProvider::Recurly,
        ProviderKind::Paddle => SimProvider::Paddle,
        ProviderKind::Zuora => SimProvider::Zuora,
        ProviderKind::Maxio => SimProvider::Maxio,
    }
}

/// billsync's provider for one the simulator imitates.
pub fn provider_kind(provider: SimProvider) -> ProviderKind {
    match provider {
        SimProvider::Stripe => ProviderKind::Stripe,
        SimProvider::Chargebee => ProviderKind::Chargebee,
        SimProvider::Recurly => ProviderKind::Recurly,
        SimProvider::Paddle => ProviderKind::Paddle,
        SimProvider::Zuora => ProviderKind::Zuora,
        SimProvider::Maxio => ProviderKind::Maxio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lists_name_the_same_providers_the_same_way() {
        assert_eq!(ProviderKind::ALL.len(), SimProvider::ALL.len());
        for kind in ProviderKind::ALL {
            assert_eq!(sim_provider(kind).as_str(), kind.as_str());
            assert_eq!(provider_kind(sim_provider(kind)), kind);
        }
    }

    #[test]
    fn a_stripe_invoice_is_expected_under_its_canonical_id() {
        let invoice = serde_json::json!({"id": "in_1", "object": "invoice", "created": 1,
            "status": "draft", "currency": "usd", "total": 0, "customer": "cus_1"});
        let expected = BillsyncMapping
            .expect("stripe", &invoice)
            .expect("a Stripe invoice maps")
            .expect("and is stored");
        assert_eq!(expected.collection, "invoices");
        assert_eq!(expected.id, "stripe:in_1");
        assert!(BillsyncMapping.expect("nobody", &invoice).is_err());
    }
}
