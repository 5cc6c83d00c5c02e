//! A parsed cron expression that remembers its text: a classic 5-field crontab line, or the 6/7-field
//! form with seconds first; day-of-week numbers as crontab means them in both (`super::day_of_week`).

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDateTime, TimeZone, Utc};

/// A cron expression: `min hour day-of-month month day-of-week` (crontab), `sec min hour day-of-month
/// month day-of-week [year]`, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. Day-of-week
/// numbers are crontab's: 0 and 7 Sunday, 1 Monday … 6 Saturday; names (`MON-FRI`) work too.
#[derive(Clone)]
pub struct CronExpression {
    /// As the operator wrote it (trimmed): what status pages and `cron_runs` show.
    source: String,
    schedule: ::cron::Schedule,
}

impl CronExpression {
    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
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
        let for_crate = if expression.starts_with('@') {
            expression.to_owned()
        } else {
            let mut fields: Vec<String> =
                expression.split_whitespace().map(str::to_owned).collect();
            match fields.len() {
                // crontab: a tick at second 0 of the minute.
                5 => fields.insert(0, "0".into()),
                6 | 7 => {}
                n => {
                    return Err(refuse(format!(
                        "expected 5 fields (min hour day-of-month month day-of-week) or 6–7 with seconds \
                         first (sec min hour day-of-month month day-of-week [year]), got {n}"
                    )));
                }
            }
            fields[5] = super::day_of_week::to_crate_syntax(&fields[5]).map_err(refuse)?;
            fields.join(" ")
        };
        let schedule = ::cron::Schedule::from_str(&for_crate).map_err(|e| refuse(e.to_string()))?;
        let parsed = CronExpression {
            source: expression.to_owned(),
            schedule,
        };
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

#[cfg(test)]
mod tests {
    use chrono::{Datelike, NaiveDate, Weekday};

    use super::CronExpression;

    fn next(expression: &str) -> chrono::NaiveDateTime {
        let parsed: CronExpression = expression.parse().unwrap();
        // Wednesday 2026-12-02, noon.
        let start = NaiveDate::from_ymd_opt(2026, 12, 2)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        parsed.ticks_after(start).next().unwrap()
    }

    #[test]
    fn a_crontab_line_fires_at_second_zero_and_keeps_its_text() {
        let parsed: CronExpression = " 30 9 * * 1-5 ".parse().unwrap();
        assert_eq!(parsed.source(), "30 9 * * 1-5");
        let tick = next("30 9 * * 1-5");
        assert_eq!(
            tick.to_string(),
            "2026-12-03 09:30:00",
            "Thursday, the next weekday"
        );
        assert_eq!(next("30 9 * * 1-5"), next("0 30 9 * * MON-FRI"));
    }

    #[test]
    fn day_of_week_numbers_mean_what_crontab_means_in_both_forms() {
        for (expression, weekday) in [
            ("0 9 * * 1", Weekday::Mon),
            ("0 0 9 * * 1", Weekday::Mon),
            ("0 9 * * 0", Weekday::Sun),
            ("0 9 * * 7", Weekday::Sun),
            ("0 0 9 * * 6", Weekday::Sat),
            ("0 9 * * sat", Weekday::Sat),
        ] {
            assert_eq!(next(expression).weekday(), weekday, "{expression}");
        }
    }

    #[test]
    fn wrong_field_counts_and_days_are_refused_with_the_reason() {
        for (expression, reason) in [
            ("0 9 * *", "expected 5 fields"),
            ("0 0 0 9 * * * 2030", "got 8"),
            ("0 9 * * 8", "out of range"),
            ("0 0 9 * * 5-1", "runs backwards"),
        ] {
            let err = expression.parse::<CronExpression>().unwrap_err();
            assert!(err.to_string().contains(reason), "{expression}: {err}");
        }
    }
}
