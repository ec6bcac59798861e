//! What is fixed about a provider, one constant each (`INFO` in `providers/<name>/`): the
//! API's default base and version, the request rate a connection may use when it names none,
//! how far the API may lag behind its webhooks, how webhooks authenticate, how to back off
//! after a 429, the list endpoints a pull walks with the kind of object each returns, and the
//! provider's API functions ([`Api`]: requests to make and how to read their answers).
//! `Provider::info` hands it out, and the trait answers every fixed question from it and
//! forwards every API question to its functions, so a provider writes facts and the functions
//! that are its own, not forwarding methods. `docs/providers/<name>.md` cites the
//! documentation behind each value.

use std::time::Duration;

use serde_json::Value;

use super::api_auth::ApiAuth;
use super::rate_limit::Backoff;
use super::{ApiRequest, ListPage, ParseError, ProviderKind, SubPage, SubRead, VerifyError};
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
    /// How webhooks prove they come from the provider.
    pub webhook_auth: WebhookAuth,
    /// The pause after a 429.
    pub backoff: Backoff,
    /// The list endpoints a full pull walks, in order.
    pub streams: &'static [Stream],
    /// The provider's API: how requests are authorized, built and answered.
    pub api: Api,
}

/// What a list page request asks for: the arguments of `Provider::list_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery<'a> {
    /// The list endpoint ([`Stream::name`]).
    pub stream: &'a str,
    /// Objects in `[start, end)` (unix seconds) of the list's time filter.
    pub window: (i64, i64),
    /// Where the page starts (the previous page's next cursor); `None` for the first page.
    pub cursor: Option<&'a str>,
    /// The page size asked for; each provider keeps it in its API's range.
    pub page_size: u32,
}

/// A webhook signature check: the header's value, the raw body, the active secrets, the time
/// now and the replay tolerance (unix seconds).
pub type VerifyHeader = fn(&str, &[u8], &[String], i64, i64) -> Result<(), VerifyError>;

/// How a provider's webhooks authenticate.
#[derive(Debug, Clone, Copy)]
pub enum WebhookAuth {
    /// HTTP Basic: webhook secrets are `username:password` entries (`providers::basic_auth`).
    Basic,
    /// A signature in the request header `header` (lower case), checked by `verify`.
    Signed {
        header: &'static str,
        verify: VerifyHeader,
    },
}

/// The events of a sweep page, each as a raw event body, and where the next page starts.
pub type SweepPage = (Vec<Vec<u8>>, Option<String>);

/// Reads a list page knowing the request it answers.
pub type ParseListPage = fn(&ApiRequest, &[u8]) -> Result<ListPage, ParseError>;

/// Reads a sweep page knowing the request it answers.
pub type ParseSweepPage = fn(&ApiRequest, &[u8]) -> Result<SweepPage, ParseError>;

/// Where the next sweep resumes after a page.
pub type SweepResume = fn(&[u8]) -> Option<String>;

/// The provider's API, as the functions `Provider`'s API methods call (each documented on
/// the trait method of the same name). Optional ones are for providers that need them.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub auth: ApiAuth,
    pub list_request: fn(&ListQuery) -> ApiRequest,
    pub parse_list: fn(&[u8]) -> Result<ListPage, ParseError>,
    /// Lists whose answer does not say where they continue (paged by number).
    pub parse_list_page: Option<ParseListPage>,
    pub sweep_request: fn(i64, Option<&str>) -> ApiRequest,
    pub parse_sweep: fn(&[u8]) -> Result<SweepPage, ParseError>,
    /// Sweeps that walk several lists, whose next list depends on the page's request.
    pub parse_sweep_page: Option<ParseSweepPage>,
    /// Sweeps that resume from a position rather than a time.
    pub sweep_resume: Option<SweepResume>,
    pub fetch_request: fn(ObjectType, &str) -> ApiRequest,
    pub parse_object: fn(&[u8]) -> Result<Value, ParseError>,
    /// Parts of objects an answer leaves out (`providers::subreads`).
    pub sub_reads: Option<SubReads>,
}

/// How a provider reads the parts its answers leave out (`providers::subreads`).
#[derive(Debug, Clone, Copy)]
pub struct SubReads {
    pub sub_reads: fn(&Value) -> Vec<SubRead>,
    pub parse_sub_page: fn(&SubRead, &[u8]) -> Result<SubPage, ParseError>,
    pub merge_sub: fn(&mut Value, &str, Vec<Value>),
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
