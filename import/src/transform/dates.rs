//! Dates and instants.
//!
//! The Flask app stored `datetime.utcnow()` through SQLAlchemy (`2025-01-05 10:00:00.123456`, no zone)
//! but years of forms, scripts and imports left other shapes behind. Accepted, in this order:
//! - ISO 8601 with a zone (`2025-01-05T10:00:00+02:00`, `…Z`, space instead of `T` too): converted to UTC;
//! - ISO 8601 without a zone (`2025-01-05 10:00:00`, `2025-01-05T10:00`): **UTC**, as the app wrote it;
//! - a date alone (`2025-01-05`): midnight UTC;
//! - US `MM/DD/YYYY` with an optional `HH:MM[:SS]` (the web forms' format; `13/05/2025` is invalid,
//!   never guessed as day-first): UTC;
//! - unix time as INTEGER, REAL or numeric TEXT: seconds, or milliseconds when above 10¹¹ (10¹¹ seconds
//!   would be the year 5138), from 1990 on (a smaller number is a stray integer, not a time).
//!
//! A DATE column (`checkin_date`) takes the calendar date **as written**, in the writer's own offset:
//! `2025-01-05T23:30:00-05:00` is the 5th (the user's day), not the 6th in UTC; unix time gives its UTC
//! date. Anything before 1900 or after 2100 is invalid (a typo or an epoch-zero default, not a date).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use super::{Outcome, Raw};

const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
];
const ZONED_FORMATS: &[&str] = &["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z"];
const UNIX_1990: f64 = 631_152_000.0;
const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%m/%d/%Y"];

/// A source instant: the wall-clock time as written and its offset when one was written.
struct Written {
    local: NaiveDateTime,
    offset: Option<FixedOffset>,
}

impl Written {
    fn utc(&self) -> DateTime<Utc> {
        match self.offset {
            Some(offset) => (self.local - offset).and_utc(),
            None => self.local.and_utc(),
        }
    }
}

fn from_unix(number: f64) -> Option<Written> {
    let seconds = if number.abs() >= 1e11 {
        number / 1000.0
    } else {
        number
    };
    // Before 1990 a number is a stray integer or an epoch-zero default, not a time the app wrote.
    if !seconds.is_finite() || seconds < UNIX_1990 {
        return None;
    }
    let whole = seconds.floor();
    let nanos = ((seconds - whole) * 1e9).round().min(999_999_999.0) as u32;
    let instant = DateTime::from_timestamp(whole as i64, nanos)?;
    Some(Written {
        local: instant.naive_utc(),
        offset: None,
    })
}

fn from_text(text: &str) -> Option<Written> {
    let text = text.trim();
    if let Ok(zoned) = DateTime::parse_from_rfc3339(text) {
        return Some(Written {
            local: zoned.naive_local(),
            offset: Some(*zoned.offset()),
        });
    }
    for format in ZONED_FORMATS {
        if let Ok(zoned) = DateTime::parse_from_str(text, format) {
            return Some(Written {
                local: zoned.naive_local(),
                offset: Some(*zoned.offset()),
            });
        }
    }
    for format in NAIVE_FORMATS {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return Some(Written {
                local,
                offset: None,
            });
        }
    }
    for format in DATE_FORMATS {
        if let Ok(date) = NaiveDate::parse_from_str(text, format) {
            return Some(Written {
                local: date.and_hms_opt(0, 0, 0)?,
                offset: None,
            });
        }
    }
    if let Ok(number) = text.parse::<f64>() {
        return from_unix(number);
    }
    None
}

fn written(raw: Raw<'_>) -> Result<Written, String> {
    let parsed = match raw {
        Raw::Int(i) => from_unix(i as f64),
        Raw::Real(r) => from_unix(r),
        Raw::Text(t) => from_text(t),
        Raw::Null | Raw::Bytes(_) => None,
    };
    let written = parsed.ok_or_else(|| format!("{} is not a date or time", raw.display()))?;
    let year = written.utc().date_naive().format("%Y").to_string();
    let year: i32 = year.parse().unwrap_or(0);
    if !(1900..=2100).contains(&year) {
        return Err(format!("{} is outside 1900–2100", raw.display()));
    }
    Ok(written)
}

/// An instant as UTC `timestamptz` text.
pub fn parse_timestamp(raw: Raw<'_>) -> Outcome {
    match written(raw) {
        Ok(w) => Outcome::Value(Some(w.utc().to_rfc3339_opts(SecondsFormat::AutoSi, true))),
        Err(reason) => Outcome::Invalid(reason),
    }
}

/// A calendar date as written (in the writer's offset).
pub fn parse_date(raw: Raw<'_>) -> Outcome {
    match written(raw) {
        Ok(w) => Outcome::Value(Some(w.local.date().format("%Y-%m-%d").to_string())),
        Err(reason) => Outcome::Invalid(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(raw: Raw<'_>) -> String {
        match parse_timestamp(raw) {
            Outcome::Value(Some(v)) => v,
            other => panic!("{raw:?} gave {other:?}"),
        }
    }

    fn date(raw: Raw<'_>) -> String {
        match parse_date(raw) {
            Outcome::Value(Some(v)) => v,
            other => panic!("{raw:?} gave {other:?}"),
        }
    }

    #[test]
    fn every_accepted_shape_of_an_instant_becomes_utc() {
        assert_eq!(ts(Raw::Text("2025-01-05")), "2025-01-05T00:00:00Z");
        assert_eq!(ts(Raw::Text("01/05/2025")), "2025-01-05T00:00:00Z");
        assert_eq!(ts(Raw::Text("01/05/2025 14:30")), "2025-01-05T14:30:00Z");
        assert_eq!(
            ts(Raw::Text("2025-01-05T10:00:00+02:00")),
            "2025-01-05T08:00:00Z"
        );
        assert_eq!(
            ts(Raw::Text("2025-01-05T10:00:00Z")),
            "2025-01-05T10:00:00Z"
        );
        assert_eq!(
            ts(Raw::Text("2025-01-05 10:00:00.123456")),
            "2025-01-05T10:00:00.123456Z"
        );
        assert_eq!(
            ts(Raw::Text("2025-01-05 10:00:00-05:00")),
            "2025-01-05T15:00:00Z"
        );
        assert_eq!(ts(Raw::Int(1_736_071_200)), "2025-01-05T10:00:00Z");
        assert_eq!(ts(Raw::Text("1736071200")), "2025-01-05T10:00:00Z");
        assert_eq!(ts(Raw::Int(1_736_071_200_000)), "2025-01-05T10:00:00Z");
        assert_eq!(ts(Raw::Real(1_736_071_200.5)), "2025-01-05T10:00:00.500Z");
    }

    #[test]
    fn a_date_is_the_day_as_written_in_its_own_offset() {
        assert_eq!(date(Raw::Text("2025-01-05T23:30:00-05:00")), "2025-01-05");
        assert_eq!(date(Raw::Text("01/05/2025")), "2025-01-05");
        assert_eq!(date(Raw::Text("2025-01-05 10:00:00")), "2025-01-05");
        assert_eq!(date(Raw::Int(1_736_121_600)), "2025-01-06");
    }

    #[test]
    fn impossible_ambiguous_and_out_of_range_dates_are_invalid() {
        for raw in [
            Raw::Text("13/05/2025"),
            Raw::Text("2025-02-30"),
            Raw::Text("yesterday"),
            Raw::Int(0),
            Raw::Text("2201-01-01"),
            Raw::Real(f64::INFINITY),
        ] {
            assert!(
                matches!(parse_timestamp(raw), Outcome::Invalid(_)),
                "{raw:?}"
            );
            assert!(matches!(parse_date(raw), Outcome::Invalid(_)), "{raw:?}");
        }
    }
}
