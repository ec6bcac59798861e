//! Providers: one module per billing system behind one trait (webhook authenticity, envelope,
//! mapping to canonical objects). Intake and the pair actor only ever see [`Provider`].

pub mod api_auth;
pub mod basic_auth;
pub mod chargebee;
#[cfg(test)]
mod field_checks;
pub mod info;
mod json_answer;
mod major_units;
pub mod maxio;
mod minor_units;
pub mod paddle;
pub mod rate_limit;
pub mod recurly;
mod signing;
pub mod stripe;
pub mod subreads;
#[cfg(test)]
mod webhook_vectors;
pub mod zuora;

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;
use thiserror::Error;

pub use crate::model::ProviderKind;
use crate::model::{ObjectType, Observation};
use api_auth::Credentials;
pub use info::{ProviderInfo, Stream, Timing, WebhookAuth};
pub use subreads::{SubPage, SubRead};

/// Why a webhook's authenticity was refused. Never carries the secret or the signature.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("no valid signature for any active secret")]
    InvalidSignature,
    #[error("signed timestamp outside the tolerance")]
    StaleTimestamp,
    #[error("credentials missing or matching no active entry")]
    InvalidCredentials,
}

/// Why a body that passed authentication is not an event of its provider.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(pub String);

/// What intake needs from an event before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The provider's event id: the dedupe key (unique per connection).
    pub event_id: String,
    pub event_type: String,
    /// When the provider says the event happened, microseconds.
    pub occurred_at: i64,
}

/// An event as a provider's `webhook` module reads it: its envelope and the object (or the
/// resources) it carries; `None` for a thin event, which names an object to fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct CarriedEvent {
    pub envelope: Envelope,
    pub object: Option<Value>,
}

/// A GET to a provider's API, relative to the connection's API base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub path: String,
    pub query: Vec<(String, String)>,
}

/// An OAuth 2.0 client-credentials token request: a form POST to `path`, relative to the
/// connection's API base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub path: String,
    pub form: Vec<(String, String)>,
}

/// A bearer token from a token answer and how long the provider says it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: Duration,
}

/// One page of a provider list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// The provider's objects as returned.
    pub objects: Vec<Value>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
    /// The provider time (unix seconds) the page reached, for progress: lists walk a window
    /// from one end to the other.
    pub reached: Option<i64>,
}

/// One billing system. Implementations are stateless and shared by all connections; each
/// provider is its [`ProviderInfo`] (`INFO` in `providers/<name>/`), which implements this.
pub trait Provider: Send + Sync + 'static {
    /// The provider's fixed facts and functions; the questions below are answered from it.
    fn info(&self) -> &ProviderInfo;

    fn kind(&self) -> ProviderKind {
        self.info().kind
    }

    /// Checks the webhook's authenticity over the exact raw body against every active secret,
    /// as [`ProviderInfo::webhook_auth`] says: HTTP Basic credentials (one check for all:
    /// `basic_auth`), or the provider's signature ([`WebhookAuth::Signed`]: its header, read
    /// as text, and its check) with its replay window. A request without the header is
    /// refused.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[String],
        now_secs: i64,
        tolerance_secs: i64,
    ) -> Result<(), VerifyError> {
        match self.info().webhook_auth {
            WebhookAuth::Basic => basic_auth::verify(headers, secrets),
            WebhookAuth::Signed { header, scheme } => {
                let value = headers
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(VerifyError::InvalidSignature)?;
                scheme.verify(value, body, secrets, now_secs, tolerance_secs)
            }
        }
    }

    /// Parses the event envelope (id, type, time). Fails for bodies that are not an event.
    fn envelope(&self, body: &[u8]) -> Result<Envelope, ParseError> {
        (self.info().events.envelope)(body)
    }

    /// [`Provider::envelope`] of a webhook as received, its request headers included: for
    /// providers that put a delivery's identity in headers rather than in the body (Zuora's
    /// `Zuora-Notification-Id`, whose body is whatever the tenant's template says). Intake
    /// calls this; everything that re-reads a stored body calls [`Provider::envelope`].
    fn envelope_with_headers(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Envelope, ParseError> {
        match self.info().events.envelope_with_headers {
            Some(envelope) => envelope(headers, body),
            None => self.envelope(body),
        }
    }

    /// Maps the object an event carries to its canonical form. `Ok(None)` for event types
    /// billsync stores but does not map.
    fn observe(&self, body: &[u8]) -> Result<Option<Observation>, ParseError> {
        (self.info().events.observe)(body)
    }

    /// For providers whose events name an object without carrying it (Recurly, Zuora): the
    /// object to fetch. The pair actor schedules a refetch of it when `observe` maps nothing.
    fn thin_reference(&self, body: &[u8]) -> Option<(ObjectType, String)> {
        (self.info().events.thin_reference)(body)
    }

    /// Whether a provider id from [`Provider::thin_reference`] is a handle the webhook named
    /// the object by (Recurly `code-…`) rather than the id the object is stored under: its
    /// read is mapped by the id in the answer, and a 404 to it says nothing about any
    /// stored object (no tombstone is written; the read is tried again).
    fn is_handle(&self, provider_id: &str) -> bool {
        (self.info().events.is_handle)(provider_id)
    }

    /// The API base URL when a connection names none.
    fn default_api_base(&self) -> &'static str {
        self.info().api_base
    }

    /// The API version requested when a connection names none.
    fn default_api_version(&self) -> &'static str {
        self.info().api_version
    }

    /// Whether webhook secrets are HTTP Basic `username:password` entries (Chargebee, Zuora)
    /// rather than signing keys: an entry without `:` could never authenticate.
    fn basic_auth_webhooks(&self) -> bool {
        matches!(self.info().webhook_auth, WebhookAuth::Basic)
    }

    /// Whether billsync requests and parses `version` of this provider's API (`doctor`). Most
    /// providers have one version billsync is written for; Stripe's mapping reads more
    /// ([`info::Events::versions`]).
    fn api_version_known(&self, version: &str) -> bool {
        match self.info().events.api_version_known {
            Some(known) => known(version),
            None => version == self.default_api_version(),
        }
    }

    /// Requests per second a connection may make when it names no limit.
    fn default_rate_limit(&self) -> u32 {
        self.info().default_rate_limit
    }

    /// How far a provider's API may lag behind its own webhooks: an API read is taken to show
    /// every change older than this, and to be ordered after them.
    fn api_lag_allowance(&self) -> Duration {
        self.info().timing.lag_allowance
    }

    /// For providers whose API reads are ordered by when they were made (Stripe: objects
    /// carry no update time, so a read at `t` counts as of `t` minus the lag allowance): the
    /// earliest read time (microseconds) that can be ordered after a change whose order key
    /// is `change_order_key`. Reads before it can never confirm the change and are not made.
    /// `None` for providers whose objects carry their own update time.
    fn earliest_confirming_read(&self, change_order_key: i64) -> Option<i64> {
        (self.info().events.earliest_confirming_read)(change_order_key)
    }

    /// For providers whose API takes a short-lived bearer token obtained with the connection's
    /// credentials (Zuora: OAuth 2.0 client credentials, `POST /oauth/token`): the token
    /// request for `api_key` ([`api_auth::Credentials::AccessToken`]). `None`: `api_key`
    /// itself authorizes requests.
    fn token_request(&self, api_key: &str) -> Option<TokenRequest> {
        match self.info().api.auth.credentials {
            Credentials::AccessToken(tokens) => (tokens.request)(api_key),
            _ => None,
        }
    }

    /// The token in a token answer (only for providers with a [`Provider::token_request`]).
    fn parse_token(&self, body: &[u8]) -> Result<AccessToken, ParseError> {
        match self.info().api.auth.credentials {
            Credentials::AccessToken(tokens) => (tokens.parse)(body),
            _ => Err(ParseError("this provider issues no access tokens".into())),
        }
    }

    /// Adds the provider's authentication and version headers to a request
    /// ([`api_auth::ApiAuth`]). `api_key` is the connection's key, or the access token
    /// obtained with it (see [`Provider::token_request`]).
    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        api_key: &str,
        api_version: &str,
    ) -> reqwest::RequestBuilder {
        self.info()
            .api
            .auth
            .authorize(request, api_key, api_version)
    }

    /// The list endpoints a full pull walks (e.g. `invoices`, `charges`), in order.
    fn streams(&self) -> &'static [Stream] {
        self.info().streams
    }

    /// Whether a pull can split `stream` into time windows: `false` for lists without a time
    /// filter (Paddle's customers, subscriptions, adjustments), read whole in one window.
    fn stream_windowed(&self, stream: &str) -> bool {
        self.info().stream(stream).is_some_and(|s| s.windowed)
    }

    /// The kind of object a list endpoint returns; `None` for a stream this provider does not
    /// have.
    fn stream_object_type(&self, stream: &str) -> Option<ObjectType> {
        self.info().stream(stream).map(|s| s.kind)
    }

    /// A page of `stream` for objects created in `[start, end)` (unix seconds).
    fn list_request(
        &self,
        stream: &str,
        window: (i64, i64),
        cursor: Option<&str>,
        page_size: u32,
    ) -> ApiRequest {
        (self.info().api.lists.request)(&info::ListQuery {
            stream,
            window,
            cursor,
            page_size,
        })
    }

    fn parse_list(&self, body: &[u8]) -> Result<ListPage, ParseError> {
        (self.info().api.lists.parse)(body)
    }

    /// [`Provider::parse_list`] knowing the request `body` answers: lists paged by number
    /// (Maxio's credit notes) continue at the page after the one asked for, which the answer
    /// does not say.
    fn parse_list_page(&self, request: &ApiRequest, body: &[u8]) -> Result<ListPage, ParseError> {
        match self.info().api.lists.parse_page {
            Some(parse) => parse(request, body),
            None => self.parse_list(body),
        }
    }

    /// A page of everything that changed since `since` (unix seconds), for sweeps. `cursor`
    /// is the previous page's next cursor, or for a sweep's first page the position the
    /// previous sweep ended at ([`Provider::sweep_resume`]).
    fn sweep_request(&self, since: i64, cursor: Option<&str>) -> ApiRequest {
        (self.info().api.sweeps.request)(since, cursor)
    }

    /// Where the next sweep resumes after a sweep that read `body` last (a page), for
    /// providers whose events list is walked by cursor rather than by time (Paddle: the last
    /// event id). Kept with the connection's sweep; `None`: sweeps start from their time.
    fn sweep_resume(&self, body: &[u8]) -> Option<String> {
        self.info()
            .api
            .sweeps
            .resume
            .and_then(|resume| resume(body))
    }

    /// The events of a sweep page, each as a raw event body, and where the next page starts.
    fn parse_sweep(&self, body: &[u8]) -> Result<(Vec<Vec<u8>>, Option<String>), ParseError> {
        (self.info().api.sweeps.parse)(body)
    }

    /// [`Provider::parse_sweep`] knowing the request that `body` answers: providers without an
    /// events API (Recurly, Zuora) sweep several lists in turn, and the next list to read
    /// depends on which one this page was.
    fn parse_sweep_page(
        &self,
        request: &ApiRequest,
        body: &[u8],
    ) -> Result<(Vec<Vec<u8>>, Option<String>), ParseError> {
        match self.info().api.sweeps.parse_page {
            Some(parse) => parse(request, body),
            None => self.parse_sweep(body),
        }
    }

    /// Retrieves one object.
    fn fetch_request(&self, object_type: ObjectType, provider_id: &str) -> ApiRequest {
        (self.info().api.fetches.request)(object_type, provider_id)
    }

    /// The object in a retrieve answer.
    fn parse_object(&self, body: &[u8]) -> Result<Value, ParseError> {
        (self.info().api.fetches.parse)(body)
    }

    /// Maps one object read from the API at `read_at` (microseconds).
    fn observe_object(
        &self,
        object: &Value,
        read_at: i64,
    ) -> Result<Option<Observation>, ParseError> {
        (self.info().events.observe_object)(object, read_at)
    }

    /// What an API answer (a list page or one retrieved object) leaves out of its objects
    /// and must be read before they are mapped ([`subreads`]): nothing for providers with
    /// [`info::SubReads::NONE`].
    fn sub_reads(&self, answer: &Value) -> Vec<SubRead> {
        (self.info().api.sub_reads.sub_reads)(answer)
    }

    /// One page of the sub-read `read` (`body` answers `read.request` or a `next` of it).
    fn parse_sub_page(&self, read: &SubRead, body: &[u8]) -> Result<SubPage, ParseError> {
        (self.info().api.sub_reads.parse_sub_page)(read, body)
    }

    /// Puts every item of the sub-read `part` into `object`, replacing what the first read
    /// showed of it, so that the object maps as if the provider had returned it whole.
    fn merge_sub(&self, object: &mut Value, part: &str, items: Vec<Value>) {
        (self.info().api.sub_reads.merge_sub)(object, part, items)
    }

    /// How long to hold the connection after this answer, when it says so (429, `Retry-After`).
    fn retry_after(&self, status: u16, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
        self.info().timing.backoff.pause(status, headers)
    }
}

impl Provider for ProviderInfo {
    fn info(&self) -> &ProviderInfo {
        self
    }
}

/// A short tag of an object's content (hex of SHA-256 over its JSON text), for synthetic
/// event ids of swept objects whose update times cannot tell two states apart.
pub(crate) fn content_tag(object: &Value) -> String {
    use sha2::Digest;
    let mut tag = hex::encode(sha2::Sha256::digest(object.to_string().as_bytes()));
    tag.truncate(16);
    tag
}

/// The implementation of a provider kind (every kind has one).
pub fn for_kind(kind: ProviderKind) -> &'static dyn Provider {
    match kind {
        ProviderKind::Stripe => &stripe::INFO,
        ProviderKind::Paddle => &paddle::INFO,
        ProviderKind::Recurly => &recurly::INFO,
        ProviderKind::Zuora => &zuora::INFO,
        ProviderKind::Chargebee => &chargebee::INFO,
        ProviderKind::Maxio => &maxio::INFO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_has_one_entry_and_unknown_streams_are_none() {
        for kind in ProviderKind::ALL {
            let provider = for_kind(kind);
            assert_eq!(provider.kind(), kind);
            let streams = provider.streams();
            assert!(!streams.is_empty(), "{kind:?} has no streams");
            for (i, stream) in streams.iter().enumerate() {
                assert_eq!(provider.stream_object_type(stream.name), Some(stream.kind));
                assert_eq!(provider.stream_windowed(stream.name), stream.windowed);
                assert_eq!(provider.info().stream_position(stream.name), Some(i));
            }
            assert_eq!(provider.stream_object_type("no_such_stream"), None);
            assert!(!provider.stream_windowed("no_such_stream"));
        }
    }
}
