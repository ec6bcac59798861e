//! The simulator's providers: each personality says how its provider's objects look, how
//! its webhooks are built and signed, and how its API answers (paths, pagination, auth,
//! errors, 429s). The world, the generator and the chaos are shared; only the face differs.

mod chargebee;
mod maxio;
mod paddle;
mod recurly;
mod stripe;
mod zuora;

use axum::http::HeaderMap;
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};

use super::scenario::{Change, Clock, Generator};
use super::state::Account;
use super::Sim;
use crate::provider::SimProvider;

/// Why the gate refused an API request, answered in the provider's error format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No or unknown credentials (401).
    Unauthorized,
    /// Over the account's request rate (429, with the provider's retry headers).
    RateLimited,
    /// A simulated outage (5xx).
    Outage,
    /// No such object or route (404); names what was asked for.
    NotFound(String),
    /// A malformed parameter (400).
    BadRequest(String),
}

/// One provider's face. Implementations are stateless; the world is in [`Sim`].
pub trait Personality: Send + Sync + 'static {
    fn provider(&self) -> SimProvider;

    /// The API key and webhook secret of the account tagged `tag`, shaped like the
    /// provider's (for HTTP Basic webhooks the secret is `username:password`).
    fn credentials(&self, tag: &str) -> (String, String);

    /// Extra fields for registering an account as a billsync connection (docs/api.md).
    fn connection_fields(&self, _account: &Account) -> Value {
        json!({})
    }

    /// The API key a request presents, however the provider carries it.
    fn api_key(&self, headers: &HeaderMap) -> Option<String>;

    /// An error answer in the provider's format.
    fn error(&self, failure: Failure) -> Response;

    /// A generator change (in Stripe's shapes) as this provider holds it: its list stream,
    /// id, object and event type. `at_micros` is strictly increasing per account, for
    /// providers whose update times carry sub-second precision. `None`: the provider has no
    /// such object, and the change does not happen there.
    fn translate(&self, change: Change, at_micros: i64) -> Option<Change>;

    /// Marks a provider-shaped object as changed at `at_micros` (an edit): update times,
    /// resource versions.
    fn touch(&self, _object: &mut Value, _at_micros: i64) {}

    /// The event type announcing an edit of an object of `stream`.
    fn edit_event(&self, stream: &str) -> &'static str;

    /// The webhook body announcing a (translated) change, under event id `event_id`.
    fn event_body(&self, event_id: &str, change: &Change, at_micros: i64) -> String;

    /// Further events the provider sends for a change besides the one announcing it, as
    /// (event type, object) pairs: Stripe announces a customer's tax IDs with their own
    /// `customer.tax_id.*` events. `before` is the object as it was. Default: none.
    fn companion_events(
        &self,
        _before: Option<&Value>,
        _change: &Change,
    ) -> Vec<(&'static str, Value)> {
        Vec::new()
    }

    /// The webhook delivered for an event body of the event log, or `None` when the provider
    /// sends no webhook for that change (it shows only in its API). Default: the body itself.
    fn webhook_body(&self, event_body: &str) -> Option<String> {
        Some(event_body.to_owned())
    }

    /// The headers of a delivery of `body` signed at `t` (unix seconds) with `secret`,
    /// content type included.
    fn delivery_headers(&self, secret: &str, body: &str, t: i64) -> Vec<(String, String)>;

    /// The provider's API, mounted at `/{provider}`.
    fn router(&self) -> Router<Sim>;
}

/// The personality of a provider (every [`SimProvider`] has one).
pub fn for_provider(provider: SimProvider) -> &'static dyn Personality {
    match provider {
        SimProvider::Stripe => &stripe::StripePersonality,
        SimProvider::Recurly => &recurly::RecurlyPersonality,
        SimProvider::Zuora => &zuora::ZuoraPersonality,
        SimProvider::Maxio => &maxio::MaxioPersonality,
        SimProvider::Paddle => &paddle::PaddlePersonality,
        SimProvider::Chargebee => &chargebee::ChargebeePersonality,
    }
}

/// Every change `steps` lifecycle steps make at `provider`, as it renders them, in order, each
/// with its change time (unix micros): account 1 of a run seeded with `seed` on a fixed clock.
/// Samples for tests of the personalities, here and on billsync's side.
pub fn sample_lifecycle(provider: SimProvider, seed: u64, steps: usize) -> Vec<(Change, i64)> {
    let face = for_provider(provider);
    let mut generator = Generator::new(seed, 1, Clock::Fixed(1_750_000_000));
    let mut at = 0;
    let mut out = Vec::new();
    for change in (0..steps).flat_map(|_| generator.step()) {
        at = (at + 1).max(change.at * 1_000_000);
        out.extend(face.translate(change, at).map(|c| (c, at)));
    }
    out
}

/// Every personality's API, each under `/{provider}`.
pub fn routes() -> Router<Sim> {
    let mut router = Router::new();
    for provider in SimProvider::ALL {
        router = router.nest(
            &format!("/{}", provider.as_str()),
            for_provider(provider).router(),
        );
    }
    router
}
