//! Money: every amount billsync stores is an integer in the currency's minor unit. Providers
//! that send decimal major units (Recurly, Zuora, Maxio's invoices) or decimal strings come
//! through here; the conversion is exact text arithmetic, never a float.

use thiserror::Error;

/// Why a provider amount could not become minor units. Carries no payload beyond the amount.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("`{0}` is not a decimal amount")]
    NotDecimal(String),
    #[error("`{amount}` has more fraction digits than {currency} has minor units ({exponent})")]
    TooPrecise {
        amount: String,
        currency: String,
        exponent: u32,
    },
    #[error("`{0}` does not fit in 64-bit minor units")]
    Overflow(String),
    #[error("`{0}` is not an ISO 4217 currency code")]
    BadCurrency(String),
}

/// ISO 4217 currency codes (list one, current as of 2024, sorted), plus codes withdrawn in
/// the last years that two years of billing history can still carry (HRK, MRO, SLL, STD,
/// VEF). Funds and precious metals are codes too; "no currency" (XXX) and the testing code
/// (XTS) are not money.
const ISO_4217: [&str; 184] = [
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR",
    "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW",
    "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA",
    "MKD", "MMK", "MNT", "MOP", "MRO", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN",
    "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN",
    "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP",
    "SLE", "SLL", "SOS", "SRD", "SSP", "STD", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
    "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW",
    "UZS", "VED", "VEF", "VES", "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC",
    "XBD", "XCD", "XCG", "XDR", "XOF", "XPD", "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW",
    "ZWG", "ZWL",
];

/// Upper-cases and checks an ISO 4217 code: a code of the list, in any case.
pub fn currency_code(code: &str) -> Result<String, MoneyError> {
    let upper = code.trim().to_ascii_uppercase();
    if upper.len() == 3 && ISO_4217.binary_search(&upper.as_str()).is_ok() {
        Ok(upper)
    } else {
        Err(MoneyError::BadCurrency(code.chars().take(16).collect()))
    }
}

/// How many minor-unit digits a currency has (ISO 4217; two unless listed).
pub fn exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        // No minor unit.
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        // Three minor digits.
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        // Four (Uruguay's unidad previsional, Chile's unidad de fomento).
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// A decimal amount in major units (`"12.34"`, `-0.5`, `1e2` is refused) as minor units of
/// `currency`. Fraction digits beyond the exponent are accepted only when they are zeros
/// (`"10.000"` in USD is 1000): anything else would be rounding, which money never does.
pub fn major_to_minor(amount: &str, currency: &str) -> Result<i64, MoneyError> {
    let exp = exponent(currency);
    let text = amount.trim();
    let not_decimal = || MoneyError::NotDecimal(text.chars().take(40).collect());
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(not_decimal());
    }
    let frac_kept = frac_part.len().min(exp as usize);
    if frac_part[frac_kept..].bytes().any(|b| b != b'0') {
        return Err(MoneyError::TooPrecise {
            amount: text.chars().take(40).collect(),
            currency: currency.to_ascii_uppercase(),
            exponent: exp,
        });
    }
    let overflow = || MoneyError::Overflow(text.chars().take(40).collect());
    let mut value: i128 = 0;
    for b in int_part
        .bytes()
        .chain(frac_part[..frac_kept].bytes())
        .chain(std::iter::repeat_n(b'0', exp as usize - frac_kept))
    {
        value = value * 10 + i128::from(b - b'0');
        if value > i128::from(i64::MAX) + 1 {
            return Err(overflow());
        }
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).map_err(|_| overflow())
}

/// A JSON amount in major units, as providers send it: a number (`12.34`, kept as serde_json
/// wrote it, so no float is ever involved) or a decimal string.
pub fn json_major_to_minor(value: &serde_json::Value, currency: &str) -> Result<i64, MoneyError> {
    match value {
        serde_json::Value::Number(n) => major_to_minor(&n.to_string(), currency),
        serde_json::Value::String(s) => major_to_minor(s, currency),
        other => Err(MoneyError::NotDecimal(
            other.to_string().chars().take(40).collect(),
        )),
    }
}

/// An integer amount already in minor units, sent as a string (`"1190"`, Paddle) or a number.
pub fn json_minor(value: &serde_json::Value) -> Result<i64, MoneyError> {
    match value {
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| MoneyError::NotDecimal(n.to_string())),
        serde_json::Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix('-').unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(MoneyError::NotDecimal(t.chars().take(40).collect()));
            }
            t.parse::<i64>()
                .map_err(|_| MoneyError::Overflow(t.chars().take(40).collect()))
        }
        other => Err(MoneyError::NotDecimal(
            other.to_string().chars().take(40).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimal_strings_become_minor_units_per_currency() {
        assert_eq!(major_to_minor("12.34", "USD"), Ok(1234));
        assert_eq!(major_to_minor("12.3", "usd"), Ok(1230));
        assert_eq!(major_to_minor("12", "EUR"), Ok(1200));
        assert_eq!(major_to_minor("-0.05", "USD"), Ok(-5));
        assert_eq!(major_to_minor(".5", "USD"), Ok(50));
        assert_eq!(major_to_minor("1500", "JPY"), Ok(1500));
        assert_eq!(major_to_minor("1500.00", "JPY"), Ok(1500));
        assert_eq!(major_to_minor("1.234", "KWD"), Ok(1234));
        assert_eq!(major_to_minor("10.000", "USD"), Ok(1000));
        // 0.1 + 0.2 in floats is 0.30000000000000004; here it is text.
        assert_eq!(major_to_minor("0.30", "USD"), Ok(30));
    }

    #[test]
    fn rounding_and_garbage_are_refused() {
        assert!(matches!(
            major_to_minor("12.345", "USD"),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            major_to_minor("1.5", "JPY"),
            Err(MoneyError::TooPrecise { .. })
        ));
        for bad in [
            "", "-", ".", "1e2", "1,00", "12.3.4", "abc", " - 1", "0x10", "NaN",
        ] {
            assert!(
                matches!(major_to_minor(bad, "USD"), Err(MoneyError::NotDecimal(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            major_to_minor("99999999999999999999", "USD"),
            Err(MoneyError::Overflow(_))
        ));
    }

    #[test]
    fn json_numbers_are_read_as_written() {
        let v: serde_json::Value = serde_json::from_str("[19.99, 0.1, 7, \"3.50\"]").unwrap();
        let got: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|a| json_major_to_minor(a, "USD").unwrap())
            .collect();
        assert_eq!(got, [1999, 10, 700, 350]);
        assert_eq!(json_minor(&serde_json::json!("1190")), Ok(1190));
        assert_eq!(json_minor(&serde_json::json!(-42)), Ok(-42));
        assert!(json_minor(&serde_json::json!("11.90")).is_err());
        assert!(json_minor(&serde_json::json!(1.5)).is_err());
    }

    #[test]
    fn currency_codes_are_upper_case_iso() {
        assert_eq!(currency_code("usd"), Ok("USD".to_owned()));
        assert!(currency_code("US").is_err());
        assert!(currency_code("U$D").is_err());
        for bad in ["ZZZ", "", "XXX", "US'; DROP TABLE objects; --", "usdd"] {
            assert!(currency_code(bad).is_err(), "{bad}");
        }
        assert_eq!(currency_code(" eur ").as_deref(), Ok("EUR"));
        assert!(
            ISO_4217.windows(2).all(|w| w[0] < w[1]),
            "the list is sorted"
        );
    }

    fn currency() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["USD", "EUR", "JPY", "KWD", "CLF", "GBP", "KRW", "BHD"])
    }

    proptest! {
        // Formatting minor units as a major-unit decimal and parsing it back is the identity:
        // no rounding loss at any magnitude, for every exponent.
        #[test]
        fn minor_units_round_trip_through_decimal_text(minor in any::<i64>(), cur in currency()) {
            let exp = exponent(cur);
            let text = format_major(minor, exp);
            prop_assert_eq!(major_to_minor(&text, cur), Ok(minor));
        }

        // Trailing zeros never change an amount; a nonzero digit past the exponent is refused.
        #[test]
        fn extra_fraction_digits_are_zero_or_refused(minor in -1_000_000_000i64..1_000_000_000, cur in currency(), zeros in 1usize..4, d in 1u8..10) {
            let text = format_major(minor, exponent(cur));
            let padded = if text.contains('.') { format!("{text}{}", "0".repeat(zeros)) } else { format!("{text}.{}", "0".repeat(zeros)) };
            prop_assert_eq!(major_to_minor(&padded, cur), Ok(minor));
            let extra = if text.contains('.') { format!("{text}{d}") } else { format!("{text}.{}{d}", "0".repeat(exponent(cur) as usize)) };
            let is_too_precise = matches!(major_to_minor(&extra, cur), Err(MoneyError::TooPrecise { .. }));
            prop_assert!(is_too_precise);
        }

        // Any text at all gives an answer or a typed error, never a panic.
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,40}", cur in currency()) {
            let _ = major_to_minor(&s, cur);
        }
    }

    /// Minor units as major-unit decimal text, by integer arithmetic.
    fn format_major(minor: i64, exp: u32) -> String {
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        if exp == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10u64.pow(exp);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exp as usize
        )
    }
}
