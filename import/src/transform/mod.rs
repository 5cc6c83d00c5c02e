//! The typed transforms: one SQLite value in, one PostgreSQL value (as COPY text) out.
//!
//! Each rule is a pure function of the source value, so every rule is unit-tested here without a
//! database. A rule answers with an [`Outcome`]: the value as it is, the value after a documented
//! repair (the report keeps the original), or why it is invalid. What an invalid value does to its row
//! is not the rule's business: [`crate::spec::Null`] decides (NULL, the column's default, or reject).

mod dates;
mod money;
mod scalars;

pub use dates::{parse_date, parse_timestamp};
pub use money::parse_money;
pub use scalars::{
    fold_email, parse_bool, parse_enum, parse_int, parse_json, parse_zip, scrub_text,
};

use rust_decimal::Decimal;

/// A SQLite value as stored (SQLite's loose typing: any column may hold any of these).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    /// A BLOB, or TEXT that is not valid UTF-8.
    Bytes(&'a [u8]),
}

impl Raw<'_> {
    /// The value as the report shows it.
    pub fn display(&self) -> String {
        match self {
            Raw::Null => "NULL".into(),
            Raw::Int(i) => i.to_string(),
            Raw::Real(r) => r.to_string(),
            Raw::Text(t) => t.replace('\0', "\\0"),
            Raw::Bytes(b) => format!("x'{}'", hex::encode(b)),
        }
    }
}

/// What a rule made of one value.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The PostgreSQL value in COPY text form (before escaping); `None` is SQL NULL.
    Value(Option<String>),
    /// A value after a documented repair, with what was repaired.
    Repaired(String, &'static str),
    /// The value cannot become the column's type; the reason.
    Invalid(String),
}

/// The rule of one column.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Text of at most this many characters; NUL bytes removed.
    Text {
        max_chars: usize,
    },
    /// An e-mail address, trimmed and case-folded.
    Email,
    /// Money: `DECIMAL(12,2)` within `[min, max]` (whole units).
    Money {
        min: i64,
        max: i64,
    },
    /// A decimal with `scale` places within `[min, max]` (whole units), e.g. sleep hours.
    Decimal {
        scale: u32,
        min: i64,
        max: i64,
    },
    /// An integer within `[min, max]`.
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// An instant, stored as UTC `timestamptz`.
    Timestamp,
    /// A calendar date.
    Date,
    /// JSON that must be an array (`true`) or an object (`false`).
    Json {
        array: bool,
    },
    /// One of a fixed list of values (after normalising case, spaces and hyphens).
    Enum(&'static [&'static str]),
    /// A US ZIP code, `12345` or `12345-6789`.
    Zip,
}

/// Applies `rule` to `raw`. NULL stays NULL (the column's NULL policy decides what that means).
pub fn apply(rule: Rule, raw: Raw<'_>) -> Outcome {
    if raw == Raw::Null {
        return Outcome::Value(None);
    }
    if let Raw::Bytes(_) = raw {
        return Outcome::Invalid("a BLOB or text that is not valid UTF-8".into());
    }
    match rule {
        Rule::Text { max_chars } => scrub_text(raw, max_chars),
        Rule::Email => fold_email(raw),
        Rule::Money { min, max } => decimal_in_range(parse_money(raw), 2, min, max),
        Rule::Decimal { scale, min, max } => decimal_in_range(parse_money(raw), scale, min, max),
        Rule::Int { min, max } => parse_int(raw, min, max),
        Rule::Bool => parse_bool(raw),
        Rule::Timestamp => parse_timestamp(raw),
        Rule::Date => parse_date(raw),
        Rule::Json { array } => parse_json(raw, array),
        Rule::Enum(allowed) => parse_enum(raw, allowed),
        Rule::Zip => parse_zip(raw),
    }
}

fn decimal_in_range(parsed: Result<Decimal, String>, scale: u32, min: i64, max: i64) -> Outcome {
    match parsed {
        Err(reason) => Outcome::Invalid(reason),
        Ok(value) => {
            let rounded = money::round(value, scale);
            if rounded < Decimal::from(min) || rounded > Decimal::from(max) {
                Outcome::Invalid(format!("{rounded} is outside [{min}, {max}]"))
            } else {
                Outcome::Value(Some(rounded.to_string()))
            }
        }
    }
}
