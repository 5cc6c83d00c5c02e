//! Money and other decimals.
//!
//! The rule: a REAL is first written as the shortest decimal that reads back as the same double (what
//! the user typed, in practice: `1.005` stored as 1.00499999999999989… is `1.005`), then rounded to the
//! column's scale **half away from zero** (PostgreSQL's own NUMERIC rounding, so a value rounds the same
//! whichever side does it). Rounding the double's exact binary value instead would turn a typed
//! `1.005` into `1.00`. INTEGER values are exact; TEXT may carry a leading `$`, `,` thousands separators
//! and an exponent (`1e9`), anything else in text is invalid.

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

use super::Raw;

/// The exact decimal a source value stands for (not yet rounded).
pub fn parse_money(raw: Raw<'_>) -> Result<Decimal, String> {
    match raw {
        Raw::Int(i) => Ok(Decimal::from(i)),
        Raw::Real(r) if !r.is_finite() => Err(format!("{r} is not a number")),
        // Display of an f64 is the shortest round-trip form and never uses an exponent.
        Raw::Real(r) => Decimal::from_str(&r.to_string())
            .map_err(|_| format!("{r} is out of range for DECIMAL(12,2)")),
        Raw::Text(t) => parse_text(t),
        Raw::Null | Raw::Bytes(_) => Err("not a number".into()),
    }
}

fn parse_text(text: &str) -> Result<Decimal, String> {
    let trimmed = text.trim();
    let unsigned = trimmed.strip_prefix('$').unwrap_or(trimmed);
    let plain: String = unsigned.chars().filter(|c| *c != ',').collect();
    let grouping_ok = !unsigned.contains(',') || thousands_grouping_is_valid(unsigned);
    if plain.is_empty() || !grouping_ok {
        return Err(format!("{text:?} is not a number"));
    }
    if plain.contains(['e', 'E']) {
        return Decimal::from_scientific(&plain).map_err(|_| format!("{text:?} is not a number"));
    }
    Decimal::from_str(&plain).map_err(|_| format!("{text:?} is not a number"))
}

/// `1,234,567.89` yes; `1,23` or `12,34,567` no (a comma there is a typo or a decimal comma, not a
/// separator, and guessing would change the amount a hundredfold).
fn thousands_grouping_is_valid(text: &str) -> bool {
    let whole = text.split('.').next().unwrap_or("");
    let whole = whole.strip_prefix('-').unwrap_or(whole);
    let mut groups = whole.split(',');
    let first = groups.next().unwrap_or("");
    (1..=3).contains(&first.len()) && groups.all(|g| g.len() == 3)
}

/// Rounds half away from zero to `scale` places and always shows `scale` places.
pub fn round(value: Decimal, scale: u32) -> Decimal {
    let mut rounded = value.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(scale);
    rounded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(raw: Raw<'_>) -> String {
        round(parse_money(raw).unwrap(), 2).to_string()
    }

    #[test]
    fn a_double_rounds_from_its_shortest_decimal_half_away_from_zero() {
        assert_eq!(money(Raw::Real(52000.000000001)), "52000.00");
        assert_eq!(money(Raw::Real(1.005)), "1.01");
        assert_eq!(money(Raw::Real(0.125)), "0.13");
        assert_eq!(money(Raw::Real(-0.125)), "-0.13");
        assert_eq!(money(Raw::Real(2.675)), "2.68");
        assert_eq!(money(Raw::Real(1e9)), "1000000000.00");
        assert_eq!(money(Raw::Int(-5)), "-5.00");
    }

    #[test]
    fn text_takes_a_dollar_sign_separators_and_exponents_only() {
        assert_eq!(money(Raw::Text(" $4,500.50 ")), "4500.50");
        assert_eq!(money(Raw::Text("1e3")), "1000.00");
        assert_eq!(money(Raw::Text("52000.000000001")), "52000.00");
        assert!(parse_money(Raw::Text("4,50")).is_err());
        assert!(parse_money(Raw::Text("abc")).is_err());
        assert!(parse_money(Raw::Text("")).is_err());
        assert!(parse_money(Raw::Real(f64::NAN)).is_err());
        assert!(parse_money(Raw::Real(1e300)).is_err());
    }
}
