//! Invoice and credit-memo items past the expansion cap (docs/providers/zuora.md, "Items of
//! long invoices"): Object Query truncates an expanded array at the request's `pageSize`
//! (Zuora, "Pagination" guide: "for each account, a maximum of 20 associated subscriptions
//! will be returned"), so an invoice read with `expand[]=invoiceitems` shows at most 50 items.
//! An invoice (or credit memo) that shows the cap may have more: its items are read whole
//! from `/object-query/invoice-items?filter[]=invoiceid.EQ:<id>` (`credit-memo-items`,
//! `creditmemoid`) through the shared sub-read mechanism ([`crate::providers::subreads`]),
//! and replace the embedded ones.

use serde_json::Value;

use super::api::{parse_list, MAX_PAGE};
use super::mapping::{identify, Kind};
use crate::providers::major_units::Fields;
use crate::providers::subreads::item_pointer;
use crate::providers::{ApiRequest, ParseError, SubPage, SubRead};

/// The expanded item list of a kind, where it has one, and the list that holds its items.
fn item_list(kind: Kind) -> Option<(&'static str, &'static str, &'static str)> {
    match kind {
        Kind::Invoice => Some(("invoiceItems", "invoice-items", "invoiceid")),
        Kind::CreditMemo => Some(("creditMemoItems", "credit-memo-items", "creditmemoid")),
        _ => None,
    }
}

/// The first page of the items of the object `id` from `list`, filtered by `field`.
fn first_page(list: &str, field: &str, id: &str) -> ApiRequest {
    ApiRequest {
        path: format!("/object-query/{list}"),
        query: vec![
            ("pageSize".to_owned(), MAX_PAGE.to_string()),
            ("filter[]".to_owned(), format!("{field}.EQ:{id}")),
        ],
    }
}

/// The sub-reads of one object at `pointer`: its items, when it shows as many as the cap.
fn of_object(object: &Value, pointer: String) -> Option<SubRead> {
    let (part, list, field) = item_list(identify(object)?)?;
    let shown = object.get(part)?.as_array()?.len();
    if shown < MAX_PAGE as usize {
        return None;
    }
    let id = Fields(object).id("id")?;
    Some(SubRead {
        pointer,
        part,
        request: first_page(list, field, &id),
    })
}

/// What an answer (an Object Query page or one object) leaves out.
pub fn sub_reads(answer: &Value) -> Vec<SubRead> {
    match answer.get("data").and_then(Value::as_array) {
        Some(objects) => objects
            .iter()
            .enumerate()
            .filter_map(|(i, o)| of_object(o, item_pointer("data", i)))
            .collect(),
        None => of_object(answer, String::new()).into_iter().collect(),
    }
}

/// One page of items, and the request for the next (the same filter, the page's cursor).
pub fn parse_sub_page(read: &SubRead, body: &[u8]) -> Result<SubPage, ParseError> {
    let page = parse_list(body)?;
    let next = page.next_cursor.map(|cursor| {
        let mut request = read.request.clone();
        request.query.retain(|(k, _)| k != "cursor");
        request.query.push(("cursor".to_owned(), cursor));
        request
    });
    Ok(SubPage {
        items: page.objects,
        next,
    })
}

/// The items read whole replace the truncated expansion.
pub fn merge_sub(object: &mut Value, part: &str, items: Vec<Value>) {
    if let Some(o) = object.as_object_mut() {
        o.insert(part.to_owned(), Value::Array(items));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::field_checks::assert_query;
    use crate::providers::subreads::assert_one_read;
    use serde_json::json;

    fn invoice(id: &str, items: usize) -> Value {
        let items: Vec<Value> = (0..items)
            .map(|i| json!({"id": format!("it{i}")}))
            .collect();
        json!({"id": id, "invoiceNumber": "INV1", "invoiceItems": items})
    }

    #[test]
    fn invoices_showing_the_cap_read_their_items_by_invoice_id() {
        let page = json!({"data": [invoice("i1", 3), invoice("i2", 50), {"id": "a1", "accountNumber": "A1"}]});
        // Only the invoice at the cap.
        assert_one_read(
            &sub_reads(&page),
            "/data/1",
            "invoiceItems",
            "/object-query/invoice-items",
            "filter[]=invoiceid.EQ:i2",
        );
        // One retrieved object: the answer itself.
        let one = sub_reads(&invoice("i3", 50));
        assert_eq!(one[0].pointer, "");
        let memo = json!({"id": "c1", "memoNumber": "CM1", "creditMemoItems": vec![json!({}); 50]});
        assert_eq!(
            sub_reads(&memo)[0].request.path,
            "/object-query/credit-memo-items"
        );
    }

    #[test]
    fn pages_follow_the_cursor_and_the_items_replace_the_expansion() {
        let read = &sub_reads(&invoice("i2", 50))[0];
        let page = parse_sub_page(read, br#"{"data":[{"id":"x"}],"nextPage":"c2"}"#).unwrap();
        let next = page.next.unwrap();
        assert_query(&next, "cursor=c2&filter[]=invoiceid.EQ:i2");
        let last = parse_sub_page(
            &SubRead {
                request: next,
                ..read.clone()
            },
            br#"{"data":[]}"#,
        )
        .unwrap();
        assert_eq!(last.next, None);
        let mut inv = invoice("i2", 50);
        merge_sub(&mut inv, "invoiceItems", vec![json!({"id": "a"}); 105]);
        assert_eq!(inv["invoiceItems"].as_array().unwrap().len(), 105);
    }
}
