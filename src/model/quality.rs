//! Data-quality checks run on every new version. A failing object is still stored: findings
//! are recorded and counted, never a reason to refuse data (issue "converge no matter what").

use chrono::DateTime;
use serde_json::Value;

use super::ObjectType;

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable, low-cardinality code (metric label).
    pub code: &'static str,
    pub message: String,
}

fn finding(code: &'static str, message: String) -> Finding {
    Finding { code, message }
}

/// 2000-01-01, before which no billing timestamp is plausible.
const EARLIEST: i64 = 946_684_800;
/// How far in the future a timestamp may plausibly be (a subscription period end can be).
const LATEST_AHEAD_SECS: i64 = 5 * 366 * 24 * 3600;

fn int(data: &Value, key: &str) -> Option<i64> {
    data.get(key).and_then(Value::as_i64)
}

fn sum_lines(data: &Value, key: &str) -> Option<i64> {
    let lines = data.get("lines")?.as_array()?;
    lines.iter().try_fold(0i64, |acc, l| {
        Some(acc.saturating_add(l.get(key)?.as_i64()?))
    })
}

/// Checks one canonical object's `data`; `now_secs` bounds plausible timestamps.
pub fn check(object_type: ObjectType, data: &Value, now_secs: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(c) = data.get("currency").filter(|c| !c.is_null()) {
        let valid = c
            .as_str()
            .is_some_and(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()));
        if !valid {
            out.push(finding(
                "invalid_currency",
                format!("currency {c} is not an ISO 4217 code"),
            ));
        }
    }
    let money: &[&str] = match object_type {
        ObjectType::Invoice => &[
            "subtotal",
            "discount",
            "tax",
            "total",
            "amount_paid",
            "amount_due",
        ],
        ObjectType::CreditNote => &["subtotal", "tax", "total"],
        ObjectType::Transaction => &["amount"],
        _ => &[],
    };
    for key in money {
        if int(data, key).is_some_and(|v| v < 0) {
            out.push(finding("negative_amount", format!("{key} is negative")));
        }
    }
    if matches!(object_type, ObjectType::Invoice | ObjectType::CreditNote) {
        let (subtotal, tax, total) = (int(data, "subtotal"), int(data, "tax"), int(data, "total"));
        let discount = int(data, "discount").unwrap_or(0);
        if let (Some(subtotal), Some(lines)) = (subtotal, sum_lines(data, "amount")) {
            let has_lines = data["lines"].as_array().is_some_and(|l| !l.is_empty());
            if has_lines && lines != subtotal {
                out.push(finding(
                    "lines_do_not_sum",
                    format!("lines sum to {lines}, subtotal is {subtotal}"),
                ));
            }
        }
        if let (Some(subtotal), Some(tax), Some(total)) = (subtotal, tax, total) {
            let expected = subtotal.saturating_sub(discount).saturating_add(tax);
            if expected != total {
                out.push(finding(
                    "total_mismatch",
                    format!("subtotal {subtotal} - discount {discount} + tax {tax} = {expected}, total is {total}"),
                ));
            }
        }
    }
    if object_type == ObjectType::Invoice {
        if let (Some(paid), Some(total)) = (int(data, "amount_paid"), int(data, "total")) {
            if paid > total {
                out.push(finding(
                    "overpaid",
                    format!("amount_paid {paid} exceeds total {total}"),
                ));
            }
        }
    }
    let mut times = Vec::new();
    if let Some(obj) = data.as_object() {
        for (key, value) in obj {
            let is_time = key.ends_with("_at") || key.ends_with("_start") || key.ends_with("_end");
            if let (true, Some(text)) = (is_time, value.as_str()) {
                match DateTime::parse_from_rfc3339(text) {
                    Ok(t) => times.push((key.as_str(), t.timestamp())),
                    Err(_) => out.push(finding("bad_timestamp", format!("{key} is not RFC 3339"))),
                }
            }
        }
    }
    for (key, t) in &times {
        if *t < EARLIEST || *t > now_secs + LATEST_AHEAD_SECS {
            out.push(finding(
                "implausible_timestamp",
                format!("{key} is out of range"),
            ));
        }
    }
    for (start, end) in [
        ("period_start", "period_end"),
        ("current_period_start", "current_period_end"),
    ] {
        let s = times.iter().find(|(k, _)| *k == start);
        let e = times.iter().find(|(k, _)| *k == end);
        if let (Some((_, s)), Some((_, e))) = (s, e) {
            if s > e {
                out.push(finding(
                    "period_reversed",
                    format!("{start} is after {end}"),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn invoice(total: i64) -> Value {
        json!({
            "currency": "EUR", "subtotal": 1000, "discount": 100, "tax": 171, "total": total,
            "amount_paid": 0, "amount_due": total, "issued_at": "2026-01-01T00:00:00Z",
            "period_start": "2026-01-01T00:00:00Z", "period_end": "2026-02-01T00:00:00Z",
            "lines": [{"amount": 600}, {"amount": 400}]
        })
    }

    #[test]
    fn consistent_invoice_has_no_findings() {
        assert_eq!(check(ObjectType::Invoice, &invoice(1071), NOW), vec![]);
    }

    #[test]
    fn total_not_matching_lines_is_flagged() {
        let codes: Vec<&str> = check(ObjectType::Invoice, &invoice(5000), NOW)
            .iter()
            .map(|f| f.code)
            .collect();
        assert_eq!(codes, vec!["total_mismatch"]);
        let mut bad = invoice(1071);
        bad["lines"] = json!([{"amount": 1}]);
        bad["currency"] = json!("eur");
        bad["amount_paid"] = json!(-5);
        let codes: Vec<&str> = check(ObjectType::Invoice, &bad, NOW)
            .iter()
            .map(|f| f.code)
            .collect();
        assert!(codes.contains(&"lines_do_not_sum"));
        assert!(codes.contains(&"invalid_currency"));
        assert!(codes.contains(&"negative_amount"));
    }

    #[test]
    fn implausible_and_reversed_times_are_flagged() {
        let data = json!({"current_period_start": "2026-03-01T00:00:00Z", "current_period_end": "2026-02-01T00:00:00Z",
            "canceled_at": "1990-01-01T00:00:00Z"});
        let codes: Vec<&str> = check(ObjectType::Subscription, &data, NOW)
            .iter()
            .map(|f| f.code)
            .collect();
        assert!(codes.contains(&"period_reversed"));
        assert!(codes.contains(&"implausible_timestamp"));
    }
}
