//! Canonical model: what every provider's objects become before the store sees them.
//!
//! Providers map their own payloads into [`Observation`]s; the pair actor decides with
//! [`version::decide`] whether an observation becomes a new version.

pub mod canonical;
pub mod money;
pub mod object;
pub mod provider_kind;
pub mod quality;
pub mod quality_cross;
pub mod time;
pub mod version;

pub use object::{content_hash, content_hash_of_text, ObjectType, Observation, ReconStatus};
pub use provider_kind::ProviderKind;

/// A random lowercase alphanumeric token (ids, observation keys).
pub fn random_token(len: usize) -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}
