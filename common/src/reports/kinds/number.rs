//! How numbers appear in report content: decimals as strings with a fixed number of decimals, rounded
//! half away from zero (PostgreSQL's `round`), so "5000.00" and "0.3000" read the same in JSON and CSV
//! and no float ever touches money. A value without a defined result is `null`.

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

/// Decimals of money amounts and of averages.
pub const MONEY_DP: u32 = 2;
/// Decimals of ratios (savings rate, debt-to-income, check-in rate) and trend slopes.
pub const RATIO_DP: u32 = 4;

/// `value` rounded to `dp` decimals and written with exactly `dp` decimals ("-0.00" never appears).
pub fn fixed(value: Decimal, dp: u32) -> String {
    let mut rounded = value.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(dp);
    if rounded.is_zero() {
        rounded.set_sign_positive(true);
    }
    rounded.to_string()
}

/// A decimal value with `dp` decimals, or `null`.
pub fn decimal(value: Option<Decimal>, dp: u32) -> Value {
    value.map_or(Value::Null, |v| Value::String(fixed(v, dp)))
}

/// A money amount (2 decimals), or `null`.
pub fn money(value: Option<Decimal>) -> Value {
    decimal(value, MONEY_DP)
}

/// `numerator / denominator` with `dp` decimals; `null` when either is missing or the denominator is
/// zero.
pub fn quotient(numerator: Option<Decimal>, denominator: Option<Decimal>, dp: u32) -> Value {
    match (numerator, denominator) {
        (Some(n), Some(d)) if !d.is_zero() => decimal(n.checked_div(d), dp),
        _ => Value::Null,
    }
}

/// The mean of `values`, or None when there are none.
pub fn mean(values: impl IntoIterator<Item = Decimal>) -> Option<Decimal> {
    let (sum, count) = values
        .into_iter()
        .fold((Decimal::ZERO, 0i64), |(sum, count), v| {
            (sum + v, count + 1)
        });
    (count > 0).then(|| sum / Decimal::from(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn rounds_half_away_from_zero_and_pads() {
        assert_eq!(fixed(d("5000"), 2), "5000.00");
        assert_eq!(fixed(d("0.3"), 4), "0.3000");
        assert_eq!(fixed(d("0.00005"), 4), "0.0001");
        assert_eq!(fixed(d("-0.00005"), 4), "-0.0001");
        assert_eq!(fixed(d("2.345"), 2), "2.35");
        assert_eq!(fixed(d("-0.001"), 2), "0.00");
    }

    #[test]
    fn a_zero_or_missing_denominator_gives_null() {
        assert_eq!(quotient(Some(d("1")), Some(Decimal::ZERO), 4), Value::Null);
        assert_eq!(quotient(None, Some(d("1")), 4), Value::Null);
        assert_eq!(quotient(Some(d("1")), Some(d("3")), 4), "0.3333");
        assert_eq!(mean([d("1"), d("2")]), Some(d("1.5")));
        assert_eq!(mean(Vec::new()), None);
    }
}
