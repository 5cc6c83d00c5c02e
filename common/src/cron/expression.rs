//! A parsed cron expression (the `cron` crate's 6/7-field syntax, seconds first) that remembers its text.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDateTime, TimeZone, Utc};

/// A cron expression: `sec min hour day-of-month month day-of-week [year]`, or `@hourly`, `@daily`,
/// `@weekly`, `@monthly`, `@yearly`. Day-of-week numbers start at 1 = Sunday in this syntax, so prefer
/// names (`MON-FRI`).
#[derive(Clone)]
pub struct CronExpression {
    schedule: ::cron::Schedule,
}

impl CronExpression {
    /// The expression as written.
    pub fn source(&self) -> &str {
        self.schedule.source()
    }

    /// Wall-clock ticks strictly after `local`, evaluated on naive (zone-less) time, so daylight-saving
    /// changes never skip or repeat a tick here; mapping a tick to an instant is [`super::instant_of`]'s job.
    pub fn ticks_after(&self, local: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        // The `cron` crate iterates in a time zone; UTC has no gaps or folds, so "UTC" here stands for
        // plain wall-clock arithmetic. Sub-second parts are dropped: ticks are whole seconds.
        let start = Utc.from_utc_datetime(&whole_second(local));
        self.schedule.after(&start).map(|t| t.naive_utc())
    }

    /// Wall-clock ticks strictly before `local` (whole seconds), latest first.
    pub fn ticks_before(&self, local: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        let end = Utc.from_utc_datetime(&whole_second(local));
        self.schedule.after(&end).rev().map(|t| t.naive_utc())
    }
}

fn whole_second(local: NaiveDateTime) -> NaiveDateTime {
    use chrono::Timelike;
    local.with_nanosecond(0).unwrap_or(local)
}

/// Why an expression was refused; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression {expression:?}: {reason}")]
pub struct CronExpressionError {
    pub expression: String,
    pub reason: String,
}

impl FromStr for CronExpression {
    type Err = CronExpressionError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let expression = raw.trim();
        let refuse = |reason: String| CronExpressionError {
            expression: expression.to_owned(),
            reason,
        };
        if !expression.starts_with('@') {
            let fields = expression.split_whitespace().count();
            if !(6..=7).contains(&fields) {
                return Err(refuse(format!(
                    "expected 6 or 7 fields (sec min hour day-of-month month day-of-week [year]), got {fields}"
                )));
            }
        }
        let schedule = ::cron::Schedule::from_str(expression).map_err(|e| refuse(e.to_string()))?;
        let parsed = CronExpression { schedule };
        // An expression that never matches again (30 February, a past year) is a mistake, not a schedule.
        if parsed.ticks_after(Utc::now().naive_utc()).next().is_none() {
            return Err(refuse("it never fires".into()));
        }
        Ok(parsed)
    }
}

impl fmt::Display for CronExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source())
    }
}

impl fmt::Debug for CronExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpression({:?})", self.source())
    }
}

impl PartialEq for CronExpression {
    fn eq(&self, other: &Self) -> bool {
        self.source() == other.source()
    }
}

impl Eq for CronExpression {}
