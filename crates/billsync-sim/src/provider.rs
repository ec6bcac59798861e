//! Which provider a simulated account imitates. The simulator's own list, not billsync's
//! `SimProvider`: the names on the wire (`"stripe"`, `"paddle"`, ...) are the providers' and
//! the API paths under which each personality is served (`/{provider}`); billsync's
//! connections use the same names (docs/api.md, `provider`).

use serde::{Deserialize, Serialize};

/// A provider the simulator has a personality for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimProvider {
    Stripe,
    Chargebee,
    Recurly,
    Paddle,
    Zuora,
    Maxio,
}

impl SimProvider {
    /// Every provider the simulator imitates, in the order billsync's docs list them.
    pub const ALL: [SimProvider; 6] = [
        SimProvider::Stripe,
        SimProvider::Chargebee,
        SimProvider::Recurly,
        SimProvider::Paddle,
        SimProvider::Zuora,
        SimProvider::Maxio,
    ];

    /// The provider's name on the wire and in the simulator's paths.
    pub fn as_str(self) -> &'static str {
        match self {
            SimProvider::Stripe => "stripe",
            SimProvider::Chargebee => "chargebee",
            SimProvider::Recurly => "recurly",
            SimProvider::Paddle => "paddle",
            SimProvider::Zuora => "zuora",
            SimProvider::Maxio => "maxio",
        }
    }

    /// The provider named `name` (as [`SimProvider::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<SimProvider> {
        SimProvider::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for SimProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serialize_as_written() {
        for p in SimProvider::ALL {
            assert_eq!(SimProvider::from_name(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(SimProvider::from_name("Stripe"), None);
    }
}
