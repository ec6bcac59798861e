//! Which provider a connection is at: the canonical model's name for the six providers, so
//! the store and the API can name one without depending on the provider code.

use serde::{Deserialize, Serialize};

/// The six billing providers billsync keeps in sync; each is implemented in
/// `crate::providers` (`providers::for_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Stripe,
    Chargebee,
    Recurly,
    Paddle,
    Zuora,
    Maxio,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Stripe,
        ProviderKind::Chargebee,
        ProviderKind::Recurly,
        ProviderKind::Paddle,
        ProviderKind::Zuora,
        ProviderKind::Maxio,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Stripe => "stripe",
            ProviderKind::Chargebee => "chargebee",
            ProviderKind::Recurly => "recurly",
            ProviderKind::Paddle => "paddle",
            ProviderKind::Zuora => "zuora",
            ProviderKind::Maxio => "maxio",
        }
    }

    pub fn parse(name: &str) -> Option<ProviderKind> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}
