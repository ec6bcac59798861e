//! Zuora: intake authenticates callouts with HTTP Basic (RFC 7617) and stores them whatever
//! their template ([`callout`]); the pair actor refetches the object each names
//! ([`Provider::thin_reference`]) and pulls the Object Query API (`/object-query/...`,
//! `updateddate` ordered) for backfills and sweeps, reading the items of long invoices
//! separately ([`items`]). docs/providers/zuora.md says which endpoint and which field each
//! canonical field comes from, and which Zuora documentation each choice relies on.
//!
//! # The callout body billsync documents
//!
//! Zuora callout bodies are whatever the tenant's callout template says. billsync reads any
//! template (JSON or XML) for the common merge-field names (`accountId`, `invoiceId`,
//! `paymentId`, ...; see [`callout`]), and documents one shape that names the object
//! unambiguously (JSON, Basic auth with one of the connection's `username:password` entries):
//!
//! ```json
//! {
//!   "eventType": "InvoicePosted",
//!   "eventTime": "2026-11-01T10:00:00Z",
//!   "objectType": "Invoice",
//!   "objectId": "8a8aa0b27f3c1d2e017f3c5a6b7c0001"
//! }
//! ```
//!
//! - The dedupe key is the `Zuora-Notification-Id` header, which Zuora sends with every
//!   callout and keeps across retries (not `Zuora-Request-Id`, new per attempt). A body
//!   `notificationId` is the fallback; with neither, a digest of the body.
//! - `eventType`: stored as the event type (`unknown` when absent); `eventTime` (RFC 3339)
//!   is informational (the refetched object's `updatedDate` orders the change).
//! - `objectType` and `objectId`: the object to fetch. `objectType` is one of `Account`,
//!   `Invoice`, `CreditMemo`, `Subscription`, `Payment`, `Refund`; `objectId` is the object's
//!   id, except for `Subscription`, whose id changes with every amendment: send the
//!   subscription **number** (`Subscription.Name`), billsync's key for subscriptions.
//!
//! An authenticated callout that names no object billsync reads is stored and answered 200
//! like any unmapped event (CONTRACT "Webhooks") and counted in
//! `billsync_webhooks_unmapped_total{provider="zuora"}`: a misconfigured template shows there.
//!
//! # API access
//!
//! Zuora's REST API takes an OAuth 2.0 bearer token: `POST /oauth/token` with the form fields
//! `client_id`, `client_secret` and `grant_type=client_credentials` answers `access_token` and
//! `expires_in` (about an hour). A connection's `api_key` is therefore `client_id:client_secret`
//! (the pair actor's fetcher obtains, caches and renews the token; see
//! [`Provider::token_request`]). An `api_key` without a colon is taken as a ready bearer token.
//!
//! Sweeps: Zuora has no events list. A sweep walks every Object Query list (accounts,
//! invoices, credit memos, subscriptions, payments, refunds) in turn by `updateddate` ascending
//! from `since` and wraps each object in a synthetic envelope
//! (`{"notificationId": "sweep:...", "eventType": "billsync_sweep.<kind>", "object": {...}}`)
//! that [`Zuora`]'s own `observe` maps. The sweep cursor is `<list>|<Object Query cursor>`.
//! Deleted objects are not listed; a callout naming one is refetched, and its 404 is a tombstone.

mod callout;
mod items;
mod mapping;

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::info::{ProviderInfo, Stream};
use super::major_units::Fields;
use super::rate_limit::{Backoff, Hint};
use super::{
    AccessToken, ApiRequest, Envelope, ListPage, ParseError, Provider, ProviderKind, SubPage,
    SubRead, TokenRequest, VerifyError,
};
use crate::model::time::micros_to_rfc3339;
use crate::model::{ObjectType, Observation};

/// The Zuora provider.
pub struct Zuora;

/// Zuora's facts (docs/providers/zuora.md).
pub const INFO: ProviderInfo = ProviderInfo {
    kind: ProviderKind::Zuora,
    api_base: "https://rest.zuora.com",
    // No `Zuora-Version` header is sent for the default.
    api_version: "v1",
    // The tenant limit is 50,000/min, shared by every integration; stay well under.
    default_rate_limit: 50,
    lag_allowance: Duration::from_secs(60),
    basic_auth_webhooks: true,
    // `RateLimit-Reset` gives the seconds until the window resets, preferred.
    backoff: Backoff {
        hints: &[Hint::Wait("ratelimit-reset"), Hint::Wait("retry-after")],
        default: Duration::from_secs(1),
    },
    streams: &[
        Stream::windowed("accounts", ObjectType::Customer),
        Stream::windowed("invoices", ObjectType::Invoice),
        Stream::windowed("credit-memos", ObjectType::CreditNote),
        Stream::windowed("subscriptions", ObjectType::Subscription),
        Stream::windowed("payments", ObjectType::Transaction),
        Stream::windowed("refunds", ObjectType::Transaction),
    ],
};

/// Object Query pages hold at most 50 objects: Zuora answers 400 to a larger `pageSize`
/// (official zuora-sdk 3.21.0, `ObjectQueriesApi`: `page_size` `ge=1, le=50`).
const MAX_PAGE: u32 = 50;

/// Token answers that name no lifetime are taken to last this long (Zuora: one hour).
const DEFAULT_TOKEN_SECS: u64 = 3600;

impl Provider for Zuora {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        _body: &[u8],
        secrets: &[String],
        _now_secs: i64,
        _tolerance_secs: i64,
    ) -> Result<(), VerifyError> {
        super::basic_auth::verify(headers, secrets)
    }

    fn envelope(&self, body: &[u8]) -> Result<Envelope, ParseError> {
        callout::envelope(&HeaderMap::new(), body)
    }

    fn envelope_with_headers(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Envelope, ParseError> {
        callout::envelope(headers, body)
    }

    /// Only swept envelopes carry an object; a callout is thin (or names nothing).
    fn observe(&self, body: &[u8]) -> Result<Option<Observation>, ParseError> {
        match callout::swept(body)? {
            Some((envelope, kind, object)) => mapping::observe(kind, &object, envelope.occurred_at),
            None => Ok(None),
        }
    }

    fn thin_reference(&self, body: &[u8]) -> Option<(ObjectType, String)> {
        callout::reference(body)
    }

    fn token_request(&self, api_key: &str) -> Option<TokenRequest> {
        let (client_id, client_secret) = api_key.split_once(':')?;
        Some(TokenRequest {
            path: "/oauth/token".into(),
            form: vec![
                ("client_id".into(), client_id.to_owned()),
                ("client_secret".into(), client_secret.to_owned()),
                ("grant_type".into(), "client_credentials".into()),
            ],
        })
    }

    fn parse_token(&self, body: &[u8]) -> Result<AccessToken, ParseError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ParseError(format!("token answer is not JSON: {e}")))?;
        let token = Fields(&v)
            .s("access_token")
            .ok_or_else(|| ParseError("token answer has no `access_token`".into()))?;
        let secs = v
            .get("expires_in")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(DEFAULT_TOKEN_SECS, |s| s as u64);
        Ok(AccessToken {
            token: token.to_owned(),
            expires_in: Duration::from_secs(secs),
        })
    }

    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        api_key: &str,
        api_version: &str,
    ) -> reqwest::RequestBuilder {
        // `api_key` is the access token here (see `token_request`).
        let request = request.bearer_auth(api_key);
        if api_version.is_empty() || api_version == "v1" {
            request
        } else {
            request.header("Zuora-Version", api_version)
        }
    }

    fn list_request(
        &self,
        stream: &str,
        window: (i64, i64),
        cursor: Option<&str>,
        page_size: u32,
    ) -> ApiRequest {
        // An expanded array is cut at the page size (docs/providers/zuora.md, "Items of long
        // invoices"): lists whose objects expand items are read at the cap `items` knows.
        let page_size = if mapping::expands_items(stream) {
            MAX_PAGE
        } else {
            page_size.clamp(1, MAX_PAGE)
        };
        let mut query = vec![
            ("pageSize".to_owned(), page_size.to_string()),
            ("sort[]".to_owned(), "updateddate.ASC".to_owned()),
        ];
        if let Some(t) = micros_to_rfc3339(window.0.saturating_mul(1_000_000)) {
            query.push(("filter[]".to_owned(), format!("updateddate.GE:{t}")));
        }
        if let Some(t) = micros_to_rfc3339(window.1.saturating_mul(1_000_000)) {
            query.push(("filter[]".to_owned(), format!("updateddate.LT:{t}")));
        }
        query.extend(mapping::expand(stream));
        if let Some(c) = cursor {
            query.push(("cursor".to_owned(), c.to_owned()));
        }
        ApiRequest {
            path: format!("/object-query/{stream}"),
            query,
        }
    }

    fn parse_list(&self, body: &[u8]) -> Result<ListPage, ParseError> {
        parse_list(body)
    }

    fn sweep_request(&self, since: i64, cursor: Option<&str>) -> ApiRequest {
        let (stream, cursor) = match cursor.and_then(|c| c.split_once('|')) {
            Some((stream, c)) if INFO.stream(stream).is_some() => {
                (stream, Some(c).filter(|c| !c.is_empty()))
            }
            _ => (INFO.streams[0].name, None),
        };
        self.list_request(stream, (since, i64::MAX / 1_000_000), cursor, MAX_PAGE)
    }

    fn parse_sweep(&self, body: &[u8]) -> Result<(Vec<Vec<u8>>, Option<String>), ParseError> {
        let invoices = self.sweep_request(0, Some("invoices|"));
        self.parse_sweep_page(&invoices, body)
    }

    fn parse_sweep_page(
        &self,
        request: &ApiRequest,
        body: &[u8],
    ) -> Result<(Vec<Vec<u8>>, Option<String>), ParseError> {
        let stream = request
            .path
            .strip_prefix("/object-query/")
            .and_then(|s| INFO.stream_position(s))
            .ok_or_else(|| ParseError(format!("`{}` is not a swept list", request.path)))?;
        let page = parse_list(body)?;
        let mut events = Vec::with_capacity(page.objects.len());
        for object in page.objects {
            let Some(kind) = mapping::identify(&object) else {
                continue;
            };
            let o = Fields(&object);
            let id = o
                .id("id")
                .ok_or_else(|| ParseError("swept object has no `id`".into()))?;
            let updated = o
                .any(&["updatedDate", "UpdatedDate"])
                .and_then(Value::as_str)
                .ok_or_else(|| ParseError("swept object has no `updatedDate`".into()))?
                .to_owned();
            let lower = kind.name().to_ascii_lowercase();
            let event = json!({
                // `updatedDate` has whole seconds: the content tag keeps two states of one
                // second apart (else the newer one would be dropped as a duplicate).
                "notificationId": format!("sweep:{lower}:{id}:{updated}:{}", super::content_tag(&object)),
                "eventType": format!("billsync_sweep.{lower}"),
                "eventTime": updated,
                "objectType": kind.name(),
                "objectId": id,
                "object": object,
            });
            events.push(serde_json::to_vec(&event).map_err(|e| ParseError(e.to_string()))?);
        }
        let next = match page.next_cursor {
            Some(c) => Some(format!("{}|{c}", INFO.streams[stream].name)),
            None => INFO.stream_name(stream + 1).map(|s| format!("{s}|")),
        };
        Ok((events, next))
    }

    fn fetch_request(&self, object_type: ObjectType, provider_id: &str) -> ApiRequest {
        let (stream, id) = match object_type {
            ObjectType::Customer => ("accounts", provider_id),
            ObjectType::Invoice => ("invoices", provider_id),
            ObjectType::CreditNote => ("credit-memos", provider_id),
            ObjectType::Subscription => ("subscriptions", provider_id),
            ObjectType::Transaction => match mapping::strip_refund_id(provider_id) {
                Some(id) => ("refunds", id),
                None => ("payments", provider_id),
            },
        };
        let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        // A retrieve cuts expanded arrays at `pageSize` too (default 10).
        let mut query = vec![("pageSize".to_owned(), MAX_PAGE.to_string())];
        query.extend(mapping::expand(stream));
        ApiRequest {
            path: format!("/object-query/{stream}/{id}"),
            query,
        }
    }

    fn parse_object(&self, body: &[u8]) -> Result<Value, ParseError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ParseError(format!("object is not JSON: {e}")))?;
        if Fields(&v).id("id").is_none() {
            return Err(ParseError("answer has no object `id`".into()));
        }
        Ok(v)
    }

    fn observe_object(
        &self,
        object: &Value,
        read_at: i64,
    ) -> Result<Option<Observation>, ParseError> {
        let lag = self.api_lag_allowance().as_micros() as i64;
        let fallback = read_at.saturating_sub(lag);
        match mapping::identify(object) {
            Some(object_type) => mapping::observe(object_type, object, fallback),
            None => Ok(None),
        }
    }

    fn sub_reads(&self, answer: &Value) -> Vec<SubRead> {
        items::sub_reads(answer)
    }

    fn parse_sub_page(&self, read: &SubRead, body: &[u8]) -> Result<SubPage, ParseError> {
        items::parse_sub_page(read, body)
    }

    fn merge_sub(&self, object: &mut Value, part: &str, items: Vec<Value>) {
        items::merge_sub(object, part, items)
    }
}

/// Object Query pages: `{"data": [...], "nextPage": "<cursor>"}`.
fn parse_list(body: &[u8]) -> Result<ListPage, ParseError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("list is not JSON: {e}")))?;
    let objects = v
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ParseError("answer is not an Object Query page (no `data`)".into()))?;
    let next_cursor = v
        .get("nextPage")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let reached = objects
        .last()
        .and_then(|o| Fields(o).micros(&["updatedDate", "UpdatedDate"]))
        .map(|m| m.div_euclid(1_000_000));
    Ok(ListPage {
        objects,
        next_cursor,
        reached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../../../tests/data/zuora_webhook_vectors.json");

    fn headers_of(v: &Value) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(m) = v["headers"].as_object() {
            for (k, val) in m {
                h.insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    val.as_str().unwrap().parse().unwrap(),
                );
            }
        }
        h
    }

    /// tests/data/zuora_webhook_vectors.json: RFC 7617 section 2's example
    /// (`Aladdin:open sesame` → `QWxhZGRpbjpvcGVuIHNlc2FtZQ==`), wrong password, missing
    /// header, wrong scheme, rotation, colon in the password.
    #[test]
    fn verdicts_match_every_zuora_vector() {
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        let vectors = all["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 5);
        for v in vectors {
            let secrets: Vec<String> = v["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            let verdict = Zuora.verify(
                &headers_of(v),
                v["body"].as_str().unwrap().as_bytes(),
                &secrets,
                v["now"].as_i64().unwrap(),
                v["tolerance_s"].as_i64().unwrap(),
            );
            match v["expected"].as_str().unwrap() {
                "valid" => assert_eq!(verdict, Ok(()), "{}", v["id"]),
                _ => assert_eq!(verdict, Err(VerifyError::InvalidCredentials), "{}", v["id"]),
            }
        }
    }

    const CALLOUT: &[u8] = br#"{"notificationId":"2c92c0f8-0001","eventType":"InvoicePosted","eventTime":"2026-11-01T10:00:00Z","objectType":"Invoice","objectId":"8a8aa0b27f3c1d2e"}"#;

    /// Finding (issue 19): a callout whose body lacks `notificationId` was refused with 400,
    /// so Zuora retried and gave up. The id is the `Zuora-Notification-Id` header; any
    /// authenticated body is an envelope.
    #[test]
    fn callouts_are_keyed_by_the_notification_header_whatever_their_body() {
        let mut headers = HeaderMap::new();
        headers.insert("zuora-notification-id", "2c92c0f8-0001".parse().unwrap());
        headers.insert("zuora-request-id", "attempt-2".parse().unwrap());
        for body in [
            CALLOUT,
            br#"{"accountId":"8a8a0001"}"#,
            br#"<callout><parameter name="InvoiceID">8a8ainv1</parameter></callout>"#,
        ] {
            let env = Zuora.envelope_with_headers(&headers, body).unwrap();
            assert_eq!(env.event_id, "2c92c0f8-0001");
        }
        // Without the header (a stored body read again): the body's id, or a digest.
        assert_eq!(Zuora.envelope(CALLOUT).unwrap().event_id, "2c92c0f8-0001");
        assert_eq!(Zuora.envelope(CALLOUT).unwrap().event_type, "InvoicePosted");
        assert!(Zuora
            .envelope(br#"{"accountId":"8a8a0001"}"#)
            .unwrap()
            .event_id
            .starts_with("body:"));
    }

    #[test]
    fn unknown_templates_and_xml_map_nothing_and_name_what_they_can() {
        assert_eq!(Zuora.observe(b"<callout/>").unwrap(), None);
        assert_eq!(Zuora.observe(br#"{"hello":1}"#).unwrap(), None);
        assert_eq!(Zuora.thin_reference(br#"{"hello":1}"#), None);
        assert_eq!(
            Zuora.thin_reference(
                br#"<callout><parameter name="InvoiceID">8a8ainv1</parameter></callout>"#
            ),
            Some((ObjectType::Invoice, "8a8ainv1".into()))
        );
    }

    #[test]
    fn callouts_are_thin_and_name_the_object_to_fetch() {
        assert_eq!(Zuora.observe(CALLOUT).unwrap(), None);
        assert_eq!(
            Zuora.thin_reference(CALLOUT),
            Some((ObjectType::Invoice, "8a8aa0b27f3c1d2e".into()))
        );
        for (t, kind, id) in [
            ("Account", ObjectType::Customer, "A1"),
            ("CreditMemo", ObjectType::CreditNote, "A1"),
            ("Subscription", ObjectType::Subscription, "A1"),
            ("Payment", ObjectType::Transaction, "A1"),
            ("Refund", ObjectType::Transaction, "refund-A1"),
        ] {
            let body = format!(
                r#"{{"notificationId":"n","eventType":"E","eventTime":"2026-11-01T10:00:00Z","objectType":"{t}","objectId":"A1"}}"#
            );
            assert_eq!(
                Zuora.thin_reference(body.as_bytes()),
                Some((kind, id.to_owned())),
                "{t}"
            );
        }
        let other = br#"{"notificationId":"n","eventType":"E","eventTime":"2026-11-01T10:00:00Z","objectType":"Usage","objectId":"u"}"#;
        assert_eq!(Zuora.thin_reference(other), None);
    }

    #[test]
    fn fetch_uses_object_query_by_key_and_refunds_have_their_own_path() {
        let r = Zuora.fetch_request(ObjectType::Invoice, "8a8a");
        assert_eq!(r.path, "/object-query/invoices/8a8a");
        assert!(r
            .query
            .contains(&("expand[]".into(), "invoiceitems".into())));
        assert!(
            r.query.contains(&("pageSize".into(), "50".into())),
            "expanded items are cut at pageSize (default 10)"
        );
        // Payments name their invoice only in their applications, expanded on request.
        let p = Zuora.fetch_request(ObjectType::Transaction, "9f");
        assert!(p
            .query
            .contains(&("expand[]".into(), "paymentapplications".into())));
        assert_eq!(
            Zuora
                .fetch_request(ObjectType::Transaction, "refund-9f")
                .path,
            "/object-query/refunds/9f"
        );
        assert_eq!(
            Zuora.fetch_request(ObjectType::Transaction, "9f").path,
            "/object-query/payments/9f"
        );
        assert_eq!(
            Zuora.fetch_request(ObjectType::Customer, "A1").path,
            "/object-query/accounts/A1"
        );
    }

    #[test]
    fn list_request_filters_and_sorts_by_updateddate() {
        let r = Zuora.list_request(
            "credit-memos",
            (1_793_527_200, 1_793_530_800),
            Some("tok"),
            500,
        );
        assert_eq!(r.path, "/object-query/credit-memos");
        assert!(r.query.contains(&("pageSize".into(), "50".into())));
        assert!(r
            .query
            .contains(&("sort[]".into(), "updateddate.ASC".into())));
        assert!(r.query.contains(&(
            "filter[]".into(),
            "updateddate.GE:2026-11-01T10:00:00Z".into()
        )));
        assert!(r.query.contains(&(
            "filter[]".into(),
            "updateddate.LT:2026-11-01T11:00:00Z".into()
        )));
        assert!(r.query.contains(&("cursor".into(), "tok".into())));
    }

    #[test]
    fn parse_list_reads_data_and_next_page() {
        let page = Zuora
            .parse_list(
                br#"{"data":[{"id":"i1","updatedDate":"1970-01-01T00:00:09Z"}],"nextPage":"n2"}"#,
            )
            .unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("n2"));
        assert_eq!(page.reached, Some(9));
        assert_eq!(
            Zuora.parse_list(br#"{"data":[]}"#).unwrap().next_cursor,
            None
        );
        assert!(Zuora.parse_list(br#"{"reasons":[]}"#).is_err());
    }

    #[test]
    fn swept_invoices_become_envelopes_that_observe_maps() {
        let list = br#"{"data":[{"id":"i1","invoiceNumber":"INV-1","accountId":"A1","status":"Posted","currency":"USD","amount":10.99,"amountWithoutTax":10.0,"taxAmount":0.99,"balance":0,"updatedDate":"2026-11-01T10:00:00-08:00"}]}"#;
        let (events, next) = Zuora.parse_sweep(list).unwrap();
        assert_eq!(next.as_deref(), Some("credit-memos|"), "then the next list");
        let env = Zuora.envelope(&events[0]).unwrap();
        assert!(env
            .event_id
            .starts_with("sweep:invoice:i1:2026-11-01T10:00:00-08:00:"));
        let obs = Zuora.observe(&events[0]).unwrap().unwrap();
        assert_eq!(obs.provider_id, "i1");
        assert_eq!(obs.data["total"], 1099);
        assert_eq!(obs.data["status"], "paid");
    }

    #[test]
    fn sweeps_walk_every_list_in_turn() {
        let first = Zuora.sweep_request(1_793_527_200, None);
        assert_eq!(first.path, "/object-query/accounts");
        let page = br#"{"data":[{"id":"a1","accountNumber":"A1","currency":"USD","updatedDate":"2026-11-01T10:00:00Z"}],"nextPage":"c2"}"#;
        let (events, next) = Zuora.parse_sweep_page(&first, page).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            Zuora.envelope(&events[0]).unwrap().event_type,
            "billsync_sweep.account"
        );
        assert_eq!(next.as_deref(), Some("accounts|c2"));
        let second = Zuora.sweep_request(1_793_527_200, next.as_deref());
        assert!(second.query.contains(&("cursor".into(), "c2".into())));
        let last = Zuora.sweep_request(1_793_527_200, Some("refunds|"));
        assert_eq!(last.path, "/object-query/refunds");
        let (_, end) = Zuora.parse_sweep_page(&last, br#"{"data":[]}"#).unwrap();
        assert_eq!(end, None);
    }

    #[test]
    fn client_credentials_become_a_token_request_and_the_answer_a_bearer_token() {
        let r = Zuora.token_request("6a1b2c3d-client:s3cret:x").unwrap();
        assert_eq!(r.path, "/oauth/token");
        assert_eq!(
            r.form,
            vec![
                ("client_id".to_owned(), "6a1b2c3d-client".to_owned()),
                ("client_secret".to_owned(), "s3cret:x".to_owned()),
                ("grant_type".to_owned(), "client_credentials".to_owned()),
            ]
        );
        assert_eq!(Zuora.token_request("ready-bearer-token"), None);
        let t = Zuora
            .parse_token(br#"{"access_token":"tok","token_type":"bearer","expires_in":3599,"scope":"x","jti":"j"}"#)
            .unwrap();
        assert_eq!(t.token, "tok");
        assert_eq!(t.expires_in, Duration::from_secs(3599));
        assert!(Zuora.parse_token(br#"{"error":"invalid_client"}"#).is_err());
    }

    #[test]
    fn rate_limit_answers_pause_for_ratelimit_reset() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(Zuora.retry_after(200, &h), None);
        assert_eq!(Zuora.retry_after(429, &h), Some(Duration::from_secs(1)));
        h.insert("ratelimit-reset", "12".parse().unwrap());
        assert_eq!(Zuora.retry_after(429, &h), Some(Duration::from_secs(12)));
    }
}
