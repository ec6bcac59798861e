//! Zuora's REST API: the OAuth client-credentials token, Object Query list requests of a pull
//! (`updateddate` ascending in a window, expanded items at the page cap) and their pages,
//! retrieves by key (refunds on their own path), and the sweep, which walks every list in turn
//! and wraps each object in a synthetic envelope (see `super`). The items of long invoices are
//! read separately (`super::items`). The provider delegates here.

use std::time::Duration;

use serde_json::{json, Value};

use super::{mapping, INFO};
use crate::model::time::micros_to_rfc3339;
use crate::model::ObjectType;
use crate::providers::info::{ListQuery, SweepPage};
use crate::providers::json_answer;
use crate::providers::major_units::Fields;
use crate::providers::{content_tag, AccessToken, ApiRequest, ListPage, ParseError, TokenRequest};

/// Object Query pages hold at most 50 objects: Zuora answers 400 to a larger `pageSize`
/// (official zuora-sdk 3.21.0, `ObjectQueriesApi`: `page_size` `ge=1, le=50`).
pub(super) const MAX_PAGE: u32 = 50;

/// Token answers that name no lifetime are taken to last this long (Zuora: one hour).
const DEFAULT_TOKEN_SECS: u64 = 3600;

pub(super) fn token_request(api_key: &str) -> Option<TokenRequest> {
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

pub(super) fn parse_token(body: &[u8]) -> Result<AccessToken, ParseError> {
    let v = json_answer::parse(body, "token answer")?;
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

pub(super) fn list_request(list: &ListQuery) -> ApiRequest {
    // An expanded array is cut at the page size (docs/providers/zuora.md, "Items of long
    // invoices"): lists whose objects expand items are read at the cap `items` knows.
    let page_size = if mapping::expands_items(list.stream) {
        MAX_PAGE
    } else {
        list.page_size.clamp(1, MAX_PAGE)
    };
    let mut query = vec![
        ("pageSize".to_owned(), page_size.to_string()),
        ("sort[]".to_owned(), "updateddate.ASC".to_owned()),
    ];
    if let Some(t) = micros_to_rfc3339(list.window.0.saturating_mul(1_000_000)) {
        query.push(("filter[]".to_owned(), format!("updateddate.GE:{t}")));
    }
    if let Some(t) = micros_to_rfc3339(list.window.1.saturating_mul(1_000_000)) {
        query.push(("filter[]".to_owned(), format!("updateddate.LT:{t}")));
    }
    query.extend(mapping::expand(list.stream));
    if let Some(c) = list.cursor {
        query.push(("cursor".to_owned(), c.to_owned()));
    }
    ApiRequest {
        path: format!("/object-query/{}", list.stream),
        query,
    }
}

pub(super) fn sweep_request(since: i64, cursor: Option<&str>) -> ApiRequest {
    let (stream, cursor) = match cursor.and_then(|c| c.split_once('|')) {
        Some((stream, c)) if INFO.stream(stream).is_some() => {
            (stream, Some(c).filter(|c| !c.is_empty()))
        }
        _ => (INFO.streams[0].name, None),
    };
    list_request(&ListQuery {
        stream,
        window: (since, i64::MAX / 1_000_000),
        cursor,
        page_size: MAX_PAGE,
    })
}

/// A sweep page read without its request: taken as a page of invoices.
pub(super) fn parse_sweep(body: &[u8]) -> Result<SweepPage, ParseError> {
    parse_sweep_page(&sweep_request(0, Some("invoices|")), body)
}

pub(super) fn parse_sweep_page(request: &ApiRequest, body: &[u8]) -> Result<SweepPage, ParseError> {
    let (stream, (events, cursor)) =
        INFO.swept_page(request, "/object-query/", body, sweep_event)?;
    let next = match cursor {
        Some(c) => Some(format!("{}|{c}", INFO.streams[stream].name)),
        None => INFO.stream_name(stream + 1).map(|s| format!("{s}|")),
    };
    Ok((events, next))
}

/// A swept object in its synthetic envelope; `None` for an object billsync does not map.
fn sweep_event(object: Value) -> Result<Option<Value>, ParseError> {
    let Some(kind) = mapping::identify(&object) else {
        return Ok(None);
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
    Ok(Some(json!({
        // `updatedDate` has whole seconds: the content tag keeps two states of one
        // second apart (else the newer one would be dropped as a duplicate).
        "notificationId": format!("sweep:{lower}:{id}:{updated}:{}", content_tag(&object)),
        "eventType": format!("billsync_sweep.{lower}"),
        "eventTime": updated,
        "objectType": kind.name(),
        "objectId": id,
        "object": object,
    })))
}

pub(super) fn fetch_request(object_type: ObjectType, provider_id: &str) -> ApiRequest {
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

pub(super) fn parse_object(body: &[u8]) -> Result<Value, ParseError> {
    let v = json_answer::parse(body, "object")?;
    if Fields(&v).id("id").is_none() {
        return Err(ParseError("answer has no object `id`".into()));
    }
    Ok(v)
}

/// Object Query pages: `{"data": [...], "nextPage": "<cursor>"}`.
pub(super) fn parse_list(body: &[u8]) -> Result<ListPage, ParseError> {
    let v = json_answer::parse(body, "list")?;
    let objects = json_answer::array(&v, "data", "answer is not an Object Query page (no `data`)")?;
    let next_cursor = json_answer::cursor(&v, "nextPage");
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
    use super::super::INFO;
    use super::*;
    use crate::providers::field_checks::{assert_query, assert_request};
    use crate::providers::Provider;

    #[test]
    fn fetch_uses_object_query_by_key_and_refunds_have_their_own_path() {
        let r = INFO.fetch_request(ObjectType::Invoice, "8a8a");
        assert_eq!(r.path, "/object-query/invoices/8a8a");
        // Expanded items are cut at pageSize (default 10).
        assert_query(&r, "expand[]=invoiceitems&pageSize=50");
        // Payments name their invoice only in their applications, expanded on request.
        let p = INFO.fetch_request(ObjectType::Transaction, "9f");
        assert_query(&p, "expand[]=paymentapplications");
        assert_eq!(
            INFO.fetch_request(ObjectType::Transaction, "refund-9f")
                .path,
            "/object-query/refunds/9f"
        );
        assert_eq!(
            INFO.fetch_request(ObjectType::Transaction, "9f").path,
            "/object-query/payments/9f"
        );
        assert_eq!(
            INFO.fetch_request(ObjectType::Customer, "A1").path,
            "/object-query/accounts/A1"
        );
    }

    #[test]
    fn list_request_filters_and_sorts_by_updateddate() {
        let r = INFO.list_request(
            "credit-memos",
            (1_793_527_200, 1_793_530_800),
            Some("tok"),
            500,
        );
        assert_request(
            &r,
            "/object-query/credit-memos",
            "pageSize=50&sort[]=updateddate.ASC&filter[]=updateddate.GE:2026-11-01T10:00:00Z&filter[]=updateddate.LT:2026-11-01T11:00:00Z&cursor=tok",
        );
    }

    #[test]
    fn parse_list_reads_data_and_next_page() {
        let page = INFO
            .parse_list(
                br#"{"data":[{"id":"i1","updatedDate":"1970-01-01T00:00:09Z"}],"nextPage":"n2"}"#,
            )
            .unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("n2"));
        assert_eq!(page.reached, Some(9));
        assert_eq!(
            INFO.parse_list(br#"{"data":[]}"#).unwrap().next_cursor,
            None
        );
        assert!(INFO.parse_list(br#"{"reasons":[]}"#).is_err());
    }

    #[test]
    fn swept_invoices_become_envelopes_that_observe_maps() {
        let list = br#"{"data":[{"id":"i1","invoiceNumber":"INV-1","accountId":"A1","status":"Posted","currency":"USD","amount":10.99,"amountWithoutTax":10.0,"taxAmount":0.99,"balance":0,"updatedDate":"2026-11-01T10:00:00-08:00"}]}"#;
        let (events, next) = INFO.parse_sweep(list).unwrap();
        assert_eq!(next.as_deref(), Some("credit-memos|"), "then the next list");
        let env = INFO.envelope(&events[0]).unwrap();
        assert!(env
            .event_id
            .starts_with("sweep:invoice:i1:2026-11-01T10:00:00-08:00:"));
        let obs = INFO.observe(&events[0]).unwrap().unwrap();
        assert_eq!(obs.provider_id, "i1");
        assert_eq!(obs.data["total"], 1099);
        assert_eq!(obs.data["status"], "paid");
    }

    #[test]
    fn sweeps_walk_every_list_in_turn() {
        let first = INFO.sweep_request(1_793_527_200, None);
        assert_eq!(first.path, "/object-query/accounts");
        let page = br#"{"data":[{"id":"a1","accountNumber":"A1","currency":"USD","updatedDate":"2026-11-01T10:00:00Z"}],"nextPage":"c2"}"#;
        let (events, next) = INFO.parse_sweep_page(&first, page).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            INFO.envelope(&events[0]).unwrap().event_type,
            "billsync_sweep.account"
        );
        assert_eq!(next.as_deref(), Some("accounts|c2"));
        let second = INFO.sweep_request(1_793_527_200, next.as_deref());
        assert_query(&second, "cursor=c2");
        let last = INFO.sweep_request(1_793_527_200, Some("refunds|"));
        assert_eq!(last.path, "/object-query/refunds");
        let (_, end) = INFO.parse_sweep_page(&last, br#"{"data":[]}"#).unwrap();
        assert_eq!(end, None);
    }

    #[test]
    fn client_credentials_become_a_token_request_and_the_answer_a_bearer_token() {
        let r = INFO.token_request("6a1b2c3d-client:s3cret:x").unwrap();
        assert_eq!(r.path, "/oauth/token");
        assert_eq!(
            r.form,
            vec![
                ("client_id".to_owned(), "6a1b2c3d-client".to_owned()),
                ("client_secret".to_owned(), "s3cret:x".to_owned()),
                ("grant_type".to_owned(), "client_credentials".to_owned()),
            ]
        );
        assert_eq!(INFO.token_request("ready-bearer-token"), None);
        let t = INFO
            .parse_token(br#"{"access_token":"tok","token_type":"bearer","expires_in":3599,"scope":"x","jti":"j"}"#)
            .unwrap();
        assert_eq!(t.token, "tok");
        assert_eq!(t.expires_in, Duration::from_secs(3599));
        assert!(INFO.parse_token(br#"{"error":"invalid_client"}"#).is_err());
    }
}
