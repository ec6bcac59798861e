//! Currencies as the simulated providers write amounts: how many minor-unit digits each has
//! (ISO 4217's table), for the personalities that send decimal major units (Recurly, ZuoraPersonality,
//! Maxio). The simulator's own table, so that a wrong exponent in billsync shows as a
//! divergence instead of being shared by both sides.

/// Minor-unit digits of `code` (any case): ISO 4217's list; two for a code not listed.
pub fn exponent(code: &str) -> u32 {
    const NONE: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    const FOUR: &[&str] = &["CLF", "UYW"];
    let code = code.to_ascii_uppercase();
    let listed = |table: &[&str]| table.contains(&code.as_str());
    if listed(NONE) {
        0
    } else if listed(THREE) {
        3
    } else if listed(FOUR) {
        4
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::exponent;

    #[test]
    fn iso_4217_exponents() {
        assert_eq!(exponent("usd"), 2);
        assert_eq!(exponent("JPY"), 0);
        assert_eq!(exponent("kwd"), 3);
        assert_eq!(exponent("CLF"), 4);
        assert_eq!(exponent("xyz"), 2);
    }
}
