//! Stripe amounts are integers in the currency's minor unit; we store `Decimal` major units.

use rust_decimal::Decimal;

/// Currencies Stripe treats as zero-decimal: the amount is already in major units.
const ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// Currencies with three decimals in Stripe's API.
const THREE_DECIMAL: [&str; 5] = ["BHD", "JOD", "KWD", "OMR", "TND"];

/// The number of decimals of `currency` in Stripe's minor units (USD 2, JPY 0, KWD 3).
pub fn exponent(currency: &str) -> u32 {
    let upper = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&upper.as_str()) {
        0
    } else if THREE_DECIMAL.contains(&upper.as_str()) {
        3
    } else {
        2
    }
}

/// A Stripe minor-unit amount as a decimal in major units, rounded to the two decimals of our money
/// columns (`DECIMAL(12,2)`; only three-decimal currencies lose a digit, rounded half away from zero).
pub fn from_minor(amount: i64, currency: &str) -> Decimal {
    let exact = Decimal::new(amount, exponent(currency));
    exact.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// Stripe's lowercase ISO code as we store it (`usd` → `USD`); `None` unless it is three ASCII letters.
pub fn currency_code(raw: &str) -> Option<String> {
    (raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| raw.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_use_the_currency_exponent() {
        assert_eq!(from_minor(2900, "usd"), Decimal::new(2900, 2));
        assert_eq!(from_minor(2900, "usd").to_string(), "29.00");
        assert_eq!(from_minor(1500, "jpy").to_string(), "1500");
        assert_eq!(from_minor(1500, "KRW").to_string(), "1500");
        assert_eq!(from_minor(12345, "kwd").to_string(), "12.35");
        assert_eq!(from_minor(0, "eur").to_string(), "0.00");
        assert_eq!(exponent("EUR"), 2);
        assert_eq!(exponent("xof"), 0);
    }

    #[test]
    fn currency_codes_are_upper_case_iso() {
        assert_eq!(currency_code("usd").as_deref(), Some("USD"));
        assert_eq!(currency_code("currency"), None);
        assert_eq!(currency_code("u1d"), None);
    }
}
