//! What is fixed about a provider, one constant each (`INFO` in `providers/<name>/`): the
//! API's default base and version, the request rate a connection may use when it names none,
//! how far the API may lag behind its webhooks, how webhooks authenticate, how to back off
//! after a 429, and the list endpoints a pull walks with the kind of object each returns.
//! `Provider::info` hands it out, and the trait answers every fixed question from it, so a
//! provider writes facts, not methods. `docs/providers/<name>.md` cites the documentation
//! behind each value.

use std::time::Duration;

use super::rate_limit::Backoff;
use super::ProviderKind;
use crate::model::ObjectType;

/// A provider's fixed facts.
#[derive(Debug)]
pub struct ProviderInfo {
    pub kind: ProviderKind,
    /// The API base URL when a connection names none (`{site}`-style parts are the
    /// connection's to fill in).
    pub api_base: &'static str,
    /// The API version requested when a connection names none.
    pub api_version: &'static str,
    /// Requests per second a connection may make when it names no limit.
    pub default_rate_limit: u32,
    /// How far the API may lag behind the provider's own webhooks: an API read is taken to
    /// show every change older than this, and to be ordered after them.
    pub lag_allowance: Duration,
    /// Whether webhook secrets are HTTP Basic `username:password` entries
    /// (`providers::basic_auth`) rather than signing keys.
    pub basic_auth_webhooks: bool,
    /// The pause after a 429.
    pub backoff: Backoff,
    /// The list endpoints a full pull walks, in order.
    pub streams: &'static [Stream],
}

/// A list endpoint a pull walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    /// Its name in requests and cursors (`invoices`, `credit-memos`).
    pub name: &'static str,
    /// The kind of object it returns.
    pub kind: ObjectType,
    /// Whether a pull can split it into time windows: `false` for lists without a time
    /// filter, read whole in one window.
    pub windowed: bool,
}

impl Stream {
    /// A list that takes a time filter.
    pub const fn windowed(name: &'static str, kind: ObjectType) -> Stream {
        Stream {
            name,
            kind,
            windowed: true,
        }
    }

    /// A list read whole, once per pull.
    pub const fn whole(name: &'static str, kind: ObjectType) -> Stream {
        Stream {
            name,
            kind,
            windowed: false,
        }
    }
}

impl ProviderInfo {
    /// The stream named `name`, if the provider has it.
    pub fn stream(&self, name: &str) -> Option<&'static Stream> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The name of stream `i` (pull cursors hold positions).
    pub fn stream_name(&self, i: usize) -> Option<&'static str> {
        self.streams.get(i).map(|s| s.name)
    }

    /// The position of the stream named `name`.
    pub fn stream_position(&self, name: &str) -> Option<usize> {
        self.streams.iter().position(|s| s.name == name)
    }
}
