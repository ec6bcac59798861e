//! What is fixed about a provider, one constant each (`INFO` in `providers/<name>/`): the
//! API's default base and version, the request rate a connection may use when it names none,
//! how webhooks authenticate, how far the API may lag behind its webhooks and how to back off
//! after a 429 ([`Timing`], usually [`Timing::USUAL`]), the list endpoints a pull walks with the kind of object each returns, the
//! provider's API functions ([`Api`]: requests to make and how to read their answers) and its
//! event functions ([`Events`]: how its event bodies and read objects are mapped).
//! `Provider::info` hands it out, and the trait answers every fixed question from it and
//! forwards every API and event question to its functions, so a provider writes facts and the
//! functions that are its own, not forwarding methods. `docs/providers/<name>.md` cites the
//! documentation behind each value.

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use super::api_auth::ApiAuth;
use super::json_answer;
use super::rate_limit::{Backoff, MIN_PAUSE};
use super::signing::Scheme;
use super::{ApiRequest, Envelope, ListPage, ParseError, ProviderKind, SubPage, SubRead};
use crate::model::{ObjectType, Observation};

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
    /// How webhooks prove they come from the provider.
    pub webhook_auth: WebhookAuth,
    /// How its events (webhooks and swept bodies) and the objects its API returns are read.
    pub events: Events,
    /// How far the API lags its webhooks and how long it asks to be left alone after a 429.
    pub timing: Timing,
    /// The list endpoints a full pull walks, in order.
    pub streams: &'static [Stream],
    /// The provider's API: how requests are authorized, built and answered.
    pub api: Api,
}

/// The API's timing: [`Timing::USUAL`] unless a provider says otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How far the API may lag behind the provider's own webhooks: an API read is taken to
    /// show every change older than this, and to be ordered after them.
    pub lag_allowance: Duration,
    /// The pause after a 429.
    pub backoff: Backoff,
}

impl Timing {
    /// What most providers' documentation leads to: reads may lag webhooks by up to a
    /// minute, and a 429 is waited out as `Retry-After` says, else for the shortest pause.
    pub const USUAL: Timing = Timing {
        lag_allowance: Duration::from_secs(60),
        backoff: Backoff::retry_after(MIN_PAUSE),
    };

    /// The same timing with another lag allowance.
    pub const fn lag_allowance(self, lag_allowance: Duration) -> Timing {
        Timing {
            lag_allowance,
            ..self
        }
    }

    /// The same timing with another 429 policy.
    pub const fn backoff(self, backoff: Backoff) -> Timing {
        Timing { backoff, ..self }
    }
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

/// How a provider's webhooks authenticate.
#[derive(Debug, Clone, Copy)]
pub enum WebhookAuth {
    /// HTTP Basic: webhook secrets are `username:password` entries (`providers::basic_auth`).
    Basic,
    /// A signature in the request header `header` (lower case), checked as `scheme` says.
    Signed {
        header: &'static str,
        scheme: Scheme,
    },
}

impl WebhookAuth {
    /// [`WebhookAuth::Signed`]: a signature in `header`, checked as `scheme` says.
    pub const fn signed(header: &'static str, scheme: Scheme) -> WebhookAuth {
        WebhookAuth::Signed { header, scheme }
    }
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
/// the trait method of the same name).
#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub auth: ApiAuth,
    pub lists: Lists,
    pub sweeps: Sweeps,
    pub fetches: Fetches,
    pub sub_reads: SubReads,
}

/// The list pages of a pull: `Provider::list_request`, `parse_list`, `parse_list_page`.
#[derive(Debug, Clone, Copy)]
pub struct Lists {
    pub request: fn(&ListQuery) -> ApiRequest,
    pub parse: fn(&[u8]) -> Result<ListPage, ParseError>,
    /// For lists whose answer does not say where they continue (paged by number).
    pub parse_page: Option<ParseListPage>,
}

impl Lists {
    pub const fn new(
        request: fn(&ListQuery) -> ApiRequest,
        parse: fn(&[u8]) -> Result<ListPage, ParseError>,
    ) -> Lists {
        Lists {
            request,
            parse,
            parse_page: None,
        }
    }

    /// Pages read knowing their request.
    pub const fn by_page(self, parse_page: ParseListPage) -> Lists {
        Lists {
            parse_page: Some(parse_page),
            ..self
        }
    }
}

/// The pages of a sweep: `Provider::sweep_request`, `parse_sweep`, `parse_sweep_page`,
/// `sweep_resume`.
#[derive(Debug, Clone, Copy)]
pub struct Sweeps {
    pub request: fn(i64, Option<&str>) -> ApiRequest,
    pub parse: fn(&[u8]) -> Result<SweepPage, ParseError>,
    /// For sweeps that walk several lists, whose next list depends on the page's request.
    pub parse_page: Option<ParseSweepPage>,
    /// For sweeps that resume from a position rather than a time.
    pub resume: Option<SweepResume>,
}

impl Sweeps {
    pub const fn new(
        request: fn(i64, Option<&str>) -> ApiRequest,
        parse: fn(&[u8]) -> Result<SweepPage, ParseError>,
    ) -> Sweeps {
        Sweeps {
            request,
            parse,
            parse_page: None,
            resume: None,
        }
    }

    /// Pages read knowing their request.
    pub const fn by_page(self, parse_page: ParseSweepPage) -> Sweeps {
        Sweeps {
            parse_page: Some(parse_page),
            ..self
        }
    }

    /// The next sweep resumes where `resume` says the last page ended.
    pub const fn resuming(self, resume: SweepResume) -> Sweeps {
        Sweeps {
            resume: Some(resume),
            ..self
        }
    }
}

/// The retrieve of one object: `Provider::fetch_request`, `parse_object`.
#[derive(Debug, Clone, Copy)]
pub struct Fetches {
    pub request: fn(ObjectType, &str) -> ApiRequest,
    pub parse: fn(&[u8]) -> Result<Value, ParseError>,
}

impl Fetches {
    pub const fn new(
        request: fn(ObjectType, &str) -> ApiRequest,
        parse: fn(&[u8]) -> Result<Value, ParseError>,
    ) -> Fetches {
        Fetches { request, parse }
    }
}

/// How a provider reads the parts its answers leave out (`providers::subreads`):
/// `Provider::sub_reads`, `parse_sub_page`, `merge_sub`.
#[derive(Debug, Clone, Copy)]
pub struct SubReads {
    pub sub_reads: fn(&Value) -> Vec<SubRead>,
    pub parse_sub_page: fn(&SubRead, &[u8]) -> Result<SubPage, ParseError>,
    pub merge_sub: fn(&mut Value, &str, Vec<Value>),
}

impl SubReads {
    pub const fn new(
        sub_reads: fn(&Value) -> Vec<SubRead>,
        parse_sub_page: fn(&SubRead, &[u8]) -> Result<SubPage, ParseError>,
        merge_sub: fn(&mut Value, &str, Vec<Value>),
    ) -> SubReads {
        SubReads {
            sub_reads,
            parse_sub_page,
            merge_sub,
        }
    }

    /// For providers whose answers leave nothing out: no sub-reads, and a page of one is an
    /// error.
    pub const NONE: SubReads = SubReads {
        sub_reads: |_| Vec::new(),
        parse_sub_page: |read, _| Err(ParseError(format!("no sub-read `{}` here", read.part))),
        merge_sub: |_, _, _| {},
    };
}

/// How a provider's event bodies and API objects are read and mapped, as the functions
/// `Provider`'s event methods call (each documented on the trait method of the same name):
/// `Provider::envelope`, `envelope_with_headers`, `observe`, `observe_object`,
/// `thin_reference`, `is_handle`, `earliest_confirming_read` and `api_version_known`.
#[derive(Debug, Clone, Copy)]
pub struct Events {
    pub envelope: fn(&[u8]) -> Result<Envelope, ParseError>,
    /// For providers that put a delivery's identity in its headers rather than in its body.
    pub envelope_with_headers: Option<EnvelopeWithHeaders>,
    pub observe: fn(&[u8]) -> Result<Option<Observation>, ParseError>,
    pub observe_object: fn(&Value, i64) -> Result<Option<Observation>, ParseError>,
    pub thin_reference: fn(&[u8]) -> Option<(ObjectType, String)>,
    pub is_handle: fn(&str) -> bool,
    pub earliest_confirming_read: fn(i64) -> Option<i64>,
    /// For providers whose mapping reads more API versions than the default one.
    pub api_version_known: Option<fn(&str) -> bool>,
}

/// Reads the envelope of a webhook knowing its request headers.
pub type EnvelopeWithHeaders = fn(&HeaderMap, &[u8]) -> Result<Envelope, ParseError>;

impl Events {
    /// Events that carry their objects (or name none), keyed by their body, of a provider
    /// whose objects carry their own update time and whose mapping reads the default API
    /// version only.
    pub const fn new(
        envelope: fn(&[u8]) -> Result<Envelope, ParseError>,
        observe: fn(&[u8]) -> Result<Option<Observation>, ParseError>,
        observe_object: fn(&Value, i64) -> Result<Option<Observation>, ParseError>,
    ) -> Events {
        Events {
            envelope,
            envelope_with_headers: None,
            observe,
            observe_object,
            thin_reference: |_| None,
            is_handle: |_| false,
            earliest_confirming_read: |_| None,
            api_version_known: None,
        }
    }

    /// Webhooks as received are read with their headers.
    pub const fn with_headers(self, envelope_with_headers: EnvelopeWithHeaders) -> Events {
        Events {
            envelope_with_headers: Some(envelope_with_headers),
            ..self
        }
    }

    /// Some events name an object to fetch rather than carry it.
    pub const fn thin(self, thin_reference: fn(&[u8]) -> Option<(ObjectType, String)>) -> Events {
        Events {
            thin_reference,
            ..self
        }
    }

    /// Some of the ids events name are handles rather than the ids objects are stored under.
    pub const fn handles(self, is_handle: fn(&str) -> bool) -> Events {
        Events { is_handle, ..self }
    }

    /// API reads are ordered by when they were made: only reads from
    /// `earliest_confirming_read` on can confirm a change.
    pub const fn read_ordered(self, earliest_confirming_read: fn(i64) -> Option<i64>) -> Events {
        Events {
            earliest_confirming_read,
            ..self
        }
    }

    /// The mapping reads the API versions `api_version_known` accepts.
    pub const fn versions(self, api_version_known: fn(&str) -> bool) -> Events {
        Events {
            api_version_known: Some(api_version_known),
            ..self
        }
    }
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

    /// The order an API read made at `read_at` (microseconds) gets when its object carries no
    /// time of its own: as old as the API may lag ([`Timing::lag_allowance`]).
    pub fn lagged(&self, read_at: i64) -> i64 {
        read_at.saturating_sub(self.timing.lag_allowance.as_micros() as i64)
    }

    /// For sweeps that walk every list in turn: the position of the list a sweep page's
    /// `request` read (its path is `prefix` and the list's name).
    pub fn swept_stream(&self, request: &ApiRequest, prefix: &str) -> Result<usize, ParseError> {
        request
            .path
            .strip_prefix(prefix)
            .and_then(|s| self.stream_position(s))
            .ok_or_else(|| ParseError(format!("`{}` is not a swept list", request.path)))
    }

    /// A page of a sweep that walks every list in turn (providers without an events API):
    /// the position of the list `request` read ([`ProviderInfo::swept_stream`]), the events
    /// `wrap` makes of the objects of its answer `body` (read as a list page), as raw bodies
    /// (an object it makes none of is not swept), and where that list continues (`None`
    /// after its last page: the sweep goes on with the next list).
    pub fn swept_page(
        &self,
        request: &ApiRequest,
        prefix: &str,
        body: &[u8],
        mut wrap: impl FnMut(Value) -> Result<Option<Value>, ParseError>,
    ) -> Result<(usize, SweepPage), ParseError> {
        let stream = self.swept_stream(request, prefix)?;
        let page = (self.api.lists.parse)(body)?;
        let mut events = Vec::with_capacity(page.objects.len());
        for object in page.objects {
            events.extend(wrap(object)?);
        }
        let events = json_answer::event_bodies(&events)?;
        Ok((stream, (events, page.next_cursor)))
    }

    /// The position of the stream named `name`.
    pub fn stream_position(&self, name: &str) -> Option<usize> {
        self.streams.iter().position(|s| s.name == name)
    }
}
