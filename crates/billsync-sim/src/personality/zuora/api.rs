//! Zuora's API under `/zuora`: `POST /oauth/token` (client credentials, form-encoded) and the
//! Object Query API — `GET /object-query/{list}` with `pageSize` 1–50 (default 10; else 400),
//! `cursor` from the previous page's `nextPage`, repeated `filter[]=field.OP:value` (EQ, NE,
//! LT, LE, GT, GE on `updateddate`, `createddate`, `id`, `status`, `accountid`), `sort[]=field.ASC|DESC`
//! and `expand[]` (nested parts are absent unless expanded, and an expanded array holds at most
//! `pageSize` entries: Zuora's "Pagination" guide), `GET /object-query/{list}/{key}` by id or
//! number (`pageSize` caps its expansions too, default 10), and the item lists
//! `/object-query/invoice-items` and `/object-query/credit-memo-items` filtered by
//! `invoiceid.EQ:` / `creditmemoid.EQ:`, where long invoices' items are read whole. Payments
//! name their invoice only in `paymentApplications` (expanded). Canceled accounts stay listed;
//! unknown keys answer 404. docs/providers/zuora.md is the reference for each of these.

use std::cmp::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use super::{issue_token, reasons, ZuoraPersonality, TOKEN_SECS};
use crate::gate::admit;
use crate::personality::{Failure, Personality};
use crate::state::Ledger;
use crate::time::parse_rfc3339 as time_micros;
use crate::Sim;

/// Each list, the number field a key may name, and the parts `expand[]` adds.
const LISTS: &[(&str, &str, &[&str])] = &[
    ("accounts", "accountNumber", &["billTo"]),
    ("invoices", "invoiceNumber", &["invoiceItems"]),
    ("credit-memos", "memoNumber", &["creditMemoItems"]),
    ("subscriptions", "name", &["ratePlans"]),
    ("payments", "paymentNumber", &["paymentApplications"]),
    ("refunds", "refundNumber", &[]),
];

/// Each item list, the list of the objects that hold its items, their field, and the
/// filter field naming the holder.
const ITEM_LISTS: &[(&str, &str, &str, &str)] = &[
    ("invoice-items", "invoices", "invoiceItems", "invoiceid"),
    (
        "credit-memo-items",
        "credit-memos",
        "creditMemoItems",
        "creditmemoid",
    ),
];

/// Object Query's default page size, which also caps expanded arrays.
const DEFAULT_PAGE: usize = 10;

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/object-query/{list}", get(list))
        .route("/object-query/{list}/{key}", get(by_key))
}

fn bad(message: String) -> Response {
    ZuoraPersonality.error(Failure::BadRequest(message))
}

/// Client credentials for a bearer token. The request passes the gate like any other (rate
/// limits, outages), under the account the credentials name.
async fn token(State(sim): State<Sim>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if field("grant_type").as_deref() != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let api_key = format!("{id}:{secret}");
    let known = {
        let w = sim.world();
        w.by_key
            .get(&api_key)
            .is_some_and(|&a| w.accounts[a].account.provider == ZuoraPersonality.provider())
    };
    if !known {
        sim.world().stats.requests += 1;
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let token = issue_token(&api_key);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert("authorization", v);
    }
    if let Err(r) = admit(&sim, &ZuoraPersonality, &headers, "/oauth/token").await {
        return r;
    }
    Json(json!({
        "access_token": token, "token_type": "bearer", "expires_in": TOKEN_SECS - 1,
        "scope": "entity.sim platform.write service.echo.read tenant.sim user.sim",
        "jti": super::hex_id(&token, 32),
    }))
    .into_response()
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": code}))).into_response()
}

/// The query parameters in order, repeated keys (`filter[]`) kept.
fn query(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn all<'a>(q: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A field's value for filtering and sorting: a time (micros) or text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Time(i64),
    Text(String),
}

fn field_of(o: &Value, field: &str) -> Result<Key, String> {
    let name = match field {
        "updateddate" => "updatedDate",
        "createddate" => "createdDate",
        "id" => "id",
        "status" => "status",
        "accountid" => "accountId",
        _ => return Err(format!("'{field}' is not a filterable or sortable field")),
    };
    let v = o.get(name).and_then(Value::as_str).unwrap_or_default();
    Ok(if name.ends_with("Date") {
        Key::Time(time_micros(v).unwrap_or(i64::MIN))
    } else {
        Key::Text(v.to_owned())
    })
}

/// One `filter[]` condition: `field.OP:value`.
struct Filter {
    field: String,
    op: String,
    value: String,
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    let (lhs, value) = text
        .split_once(':')
        .ok_or_else(|| format!("invalid filter '{text}'"))?;
    let (field, op) = lhs
        .rsplit_once('.')
        .ok_or_else(|| format!("invalid filter '{text}'"))?;
    if !["EQ", "NE", "LT", "LE", "GT", "GE"].contains(&op) {
        return Err(format!("unsupported filter operator '{op}'"));
    }
    Ok(Filter {
        field: field.to_ascii_lowercase(),
        op: op.to_owned(),
        value: value.to_owned(),
    })
}

fn passes(o: &Value, f: &Filter) -> Result<bool, String> {
    let have = field_of(o, &f.field)?;
    let want = match have {
        Key::Time(_) => Key::Time(
            time_micros(&f.value).ok_or_else(|| format!("'{}' is not a datetime", f.value))?,
        ),
        Key::Text(_) => Key::Text(f.value.clone()),
    };
    let c = have.cmp(&want);
    Ok(match f.op.as_str() {
        "EQ" => c == Ordering::Equal,
        "NE" => c != Ordering::Equal,
        "LT" => c == Ordering::Less,
        "LE" => c != Ordering::Greater,
        "GT" => c == Ordering::Greater,
        _ => c != Ordering::Less,
    })
}

/// The object as answered: nested parts only where `expand[]` asked for them, and each
/// expanded array cut at `page_size` (the rest cannot be had through the expansion).
fn shaped(list: &str, mut o: Value, expand: &[&str], page_size: usize) -> Value {
    let Some((_, _, parts)) = LISTS.iter().find(|(l, _, _)| *l == list) else {
        return o;
    };
    if let Some(m) = o.as_object_mut() {
        for part in parts.iter() {
            if !expand.contains(&part.to_ascii_lowercase().as_str()) {
                m.remove(*part);
            } else if let Some(Value::Array(items)) = m.get_mut(*part) {
                items.truncate(page_size);
            }
        }
        if let Some(Value::Array(plans)) = m.get_mut("ratePlans") {
            for p in plans.iter_mut().filter_map(Value::as_object_mut) {
                if !expand.contains(&"rateplans.rateplancharges") {
                    p.remove("ratePlanCharges");
                } else if let Some(Value::Array(charges)) = p.get_mut("ratePlanCharges") {
                    charges.truncate(page_size);
                }
            }
        }
    }
    o
}

/// `pageSize`: 1–50, default 10; anything else is a 400.
fn page_size_of(q: &[(String, String)]) -> Result<usize, String> {
    match all(q, "pageSize").last().map(|v| v.parse::<usize>()) {
        None => Ok(DEFAULT_PAGE),
        Some(Ok(n)) if (1..=50).contains(&n) => Ok(n),
        Some(_) => Err("pageSize must be between 1 and 50".into()),
    }
}

/// A page of an item list (`invoice-items`): the items of the holder the filter names, in
/// its order, `page_size` at a time from the cursor. Zuora requires a `filter[]` here
/// ("List invoice items": "You must specify a filter[] query parameter").
fn item_page(
    ledger: &Ledger,
    lag: Duration,
    list: &str,
    q: &[(String, String)],
    page_size: usize,
) -> Response {
    let Some((_, holders, field, key)) = ITEM_LISTS.iter().find(|(l, ..)| *l == list) else {
        return ZuoraPersonality.error(Failure::NotFound(list.to_owned()));
    };
    let mut holder = None;
    for f in all(q, "filter[]") {
        match parse_filter(f) {
            Ok(f) if f.field == *key && f.op == "EQ" => holder = Some(f.value),
            Ok(f) => {
                return bad(format!(
                    "'{}.{}' is not a supported filter here",
                    f.field, f.op
                ))
            }
            Err(m) => return bad(m),
        }
    }
    let Some(holder) = holder else {
        return bad(format!("a filter[] on {key} is required to list {list}"));
    };
    let start = match all(q, "cursor").last() {
        None => 0,
        Some(c) => match base64::engine::general_purpose::STANDARD
            .decode(c)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| s.strip_prefix("offset:")?.parse::<usize>().ok())
        {
            Some(n) => n,
            None => return bad("invalid cursor".into()),
        },
    };
    let items: Vec<Value> = visible(ledger, holders, lag)
        .into_iter()
        .filter(|o| o["id"] == holder.as_str())
        .flat_map(|o| {
            o.get(*field)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let data: Vec<Value> = items.iter().skip(start).take(page_size).cloned().collect();
    let mut body = json!({ "data": data });
    let end = start + page_size;
    if end < items.len() {
        body["nextPage"] =
            json!(base64::engine::general_purpose::STANDARD.encode(format!("offset:{end}")));
    }
    Json(body).into_response()
}

/// Every object of `list` as an API read sees it now (canceled accounts included).
fn visible(ledger: &Ledger, list: &str, lag: Duration) -> Vec<Value> {
    let Some(order) = ledger.order.get(list) else {
        return Vec::new();
    };
    order
        .iter()
        .filter_map(|(_, std::cmp::Reverse(id))| ledger.read(id, lag)?.1.cloned())
        .collect()
}

fn cursor_text(keys: &[Key], id: &str) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| match k {
            Key::Time(t) => json!(t),
            Key::Text(s) => json!(s),
        })
        .collect();
    base64::engine::general_purpose::STANDARD.encode(json!({"after": keys, "id": id}).to_string())
}

fn parse_cursor(text: &str) -> Option<(Vec<Key>, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let keys = v["after"]
        .as_array()?
        .iter()
        .map(|k| match k {
            Value::String(s) => Some(Key::Text(s.clone())),
            other => other.as_i64().map(Key::Time),
        })
        .collect::<Option<Vec<_>>>()?;
    Some((keys, v["id"].as_str()?.to_owned()))
}

async fn list(
    State(sim): State<Sim>,
    Path(list): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let account = match admit(
        &sim,
        &ZuoraPersonality,
        &headers,
        &format!("/object-query/{list}"),
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    let q = query(q.as_deref());
    let page_size = match page_size_of(&q) {
        Ok(n) => n,
        Err(m) => return bad(m),
    };
    if ITEM_LISTS.iter().any(|(l, ..)| *l == list) {
        let w = sim.world();
        let lag = Duration::from_millis(w.knobs.api_lag_ms);
        return item_page(&w.accounts[account].ledger, lag, &list, &q, page_size);
    }
    if !LISTS.iter().any(|(l, _, _)| *l == list) {
        return ZuoraPersonality.error(Failure::NotFound(list));
    }
    let filters = match all(&q, "filter[]")
        .into_iter()
        .map(parse_filter)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(f) => f,
        Err(m) => return bad(m),
    };
    let mut sorts = Vec::new();
    for s in all(&q, "sort[]") {
        match s.rsplit_once('.') {
            Some((field, dir @ ("ASC" | "DESC"))) => {
                sorts.push((field.to_ascii_lowercase(), dir == "DESC"))
            }
            _ => return bad(format!("invalid sort '{s}'")),
        }
    }
    let expand: Vec<String> = all(&q, "expand[]")
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let expand: Vec<&str> = expand.iter().map(String::as_str).collect();
    let after = match all(&q, "cursor").last() {
        None => None,
        Some(c) => match parse_cursor(c) {
            Some(c) => Some(c),
            None => return bad("invalid cursor".into()),
        },
    };
    let w = sim.world();
    let lag = Duration::from_millis(w.knobs.api_lag_ms);
    let mut rows = Vec::new();
    for o in visible(&w.accounts[account].ledger, &list, lag) {
        let mut keep = true;
        for f in &filters {
            match passes(&o, f) {
                Ok(p) => keep &= p,
                Err(m) => return bad(m),
            }
        }
        if !keep {
            continue;
        }
        let mut keys = Vec::with_capacity(sorts.len());
        for (field, _) in &sorts {
            match field_of(&o, field) {
                Ok(k) => keys.push(k),
                Err(m) => return bad(m),
            }
        }
        let id = o["id"].as_str().unwrap_or_default().to_owned();
        rows.push((keys, id, o));
    }
    drop(w);
    // Sort keys in `sort[]` order, then the id, so every position is unique.
    let order = |a: (&[Key], &str), b: (&[Key], &str)| {
        for (n, (_, desc)) in sorts.iter().enumerate() {
            let c = match (a.0.get(n), b.0.get(n)) {
                (Some(x), Some(y)) => x.cmp(y),
                _ => Ordering::Equal,
            };
            let c = if *desc { c.reverse() } else { c };
            if c != Ordering::Equal {
                return c;
            }
        }
        a.1.cmp(b.1)
    };
    rows.sort_by(|a, b| order((&a.0, &a.1), (&b.0, &b.1)));
    if let Some((keys, id)) = &after {
        rows.retain(|r| order((&r.0, &r.1), (keys, id)) == Ordering::Greater);
    }
    let more = rows.len() > page_size;
    rows.truncate(page_size);
    let next = match (more, rows.last()) {
        (true, Some((keys, id, _))) => Value::String(cursor_text(keys, id)),
        _ => Value::Null,
    };
    let data: Vec<Value> = rows
        .into_iter()
        .map(|(_, _, o)| shaped(&list, o, &expand, page_size))
        .collect();
    let mut body = json!({ "data": data });
    if !next.is_null() {
        body["nextPage"] = next;
    }
    Json(body).into_response()
}

async fn by_key(
    State(sim): State<Sim>,
    Path((list, key)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let account = match admit(
        &sim,
        &ZuoraPersonality,
        &headers,
        &format!("/object-query/{list}/:key"),
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some((_, number, _)) = LISTS.iter().find(|(l, _, _)| *l == list) else {
        return ZuoraPersonality.error(Failure::NotFound(list));
    };
    let q = query(q.as_deref());
    let page_size = match page_size_of(&q) {
        Ok(n) => n,
        Err(m) => return bad(m),
    };
    let expand: Vec<String> = all(&q, "expand[]")
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let expand: Vec<&str> = expand.iter().map(String::as_str).collect();
    let found = {
        let w = sim.world();
        let lag = Duration::from_millis(w.knobs.api_lag_ms);
        visible(&w.accounts[account].ledger, &list, lag)
            .into_iter()
            .find(|o| o["id"] == key.as_str() || o[*number] == key.as_str())
    };
    match found {
        Some(o) => Json(shaped(&list, o, &expand, page_size)).into_response(),
        None => reasons(
            StatusCode::NOT_FOUND,
            "50000040",
            &format!("Cannot find entity by key: '{key}'."),
        ),
    }
}
