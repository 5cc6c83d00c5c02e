//! Scheduler settings: how often it looks for due ticks, and per-schedule overrides of the cron table.
//!
//! For a schedule named `retention` (see `crate::cron`'s table):
//! - `MINGUS_SCHEDULE_RETENTION="0 15 0 * * *"` — the cron expression (5 fields as in crontab, or 6/7
//!   with seconds first; day-of-week numbers as crontab's, 1 = Monday);
//! - `MINGUS_SCHEDULE_RETENTION_TZ=Europe/Paris` — the IANA zone its wall-clock times are read in;
//! - `MINGUS_SCHEDULE_RETENTION_ENABLED=false` — turn it off (or on).
//!
//! An unknown schedule name, an invalid expression, zone or boolean is an error naming the variable.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono_tz::Tz;

use super::parse::{self, ConfigError, Vars};
use crate::cron::{CronExpression, CronTable};

/// Prefix of the per-schedule variables.
pub const SCHEDULE_PREFIX: &str = "MINGUS_SCHEDULE_";

#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// How often the scheduler looks for due ticks (`MINGUS_SCHEDULER_INTERVAL_MS`, default 1000).
    pub interval: Duration,
    /// Overrides of the built-in cron table, by schedule name.
    pub overrides: BTreeMap<String, ScheduleOverride>,
}

/// What configuration changes in one schedule; `None` keeps the built-in value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleOverride {
    pub expression: Option<CronExpression>,
    pub time_zone: Option<Tz>,
    pub enabled: Option<bool>,
}

/// The variable name for an error message. `ConfigError` names variables with `&'static str`; these
/// names are built at run time, so the (few bytes of) name are leaked — only on the error path, which
/// stops the process.
fn leaked(name: &str) -> &'static str {
    Box::leak(name.to_owned().into_boxed_str())
}

pub(super) fn parse(map: &HashMap<String, String>) -> Result<SchedulerConfig, ConfigError> {
    let vars = Vars::new(map);
    let interval = vars.millis("MINGUS_SCHEDULER_INTERVAL_MS", 1_000)?;
    if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&interval) {
        return Err(ConfigError::invalid(
            "MINGUS_SCHEDULER_INTERVAL_MS",
            "must be between 100 and 60000",
        ));
    }
    let table = CronTable::defaults();
    let known = table.names();
    let mut variables: Vec<(&String, &str)> = map
        .iter()
        .filter(|(name, _)| name.starts_with(SCHEDULE_PREFIX))
        .map(|(name, value)| (name, value.trim()))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    variables.sort();
    let mut overrides: BTreeMap<String, ScheduleOverride> = BTreeMap::new();
    for (variable, value) in variables {
        let rest = &variable[SCHEDULE_PREFIX.len()..];
        let (schedule, field) = if let Some(schedule) = rest.strip_suffix("_TZ") {
            (schedule, Field::TimeZone)
        } else if let Some(schedule) = rest.strip_suffix("_ENABLED") {
            (schedule, Field::Enabled)
        } else {
            (rest, Field::Expression)
        };
        let schedule = schedule.to_ascii_lowercase();
        if !known.contains(&schedule.as_str()) {
            return Err(ConfigError::invalid(
                leaked(variable),
                format!(
                    "unknown schedule {schedule:?} (known: {})",
                    known.join(", ")
                ),
            ));
        }
        let entry = overrides.entry(schedule).or_default();
        let refuse = |reason: String| ConfigError::invalid(leaked(variable), reason);
        match field {
            Field::Expression => {
                entry.expression = Some(
                    value
                        .parse::<CronExpression>()
                        .map_err(|e| refuse(e.to_string()))?,
                );
            }
            Field::TimeZone => {
                entry.time_zone = Some(value.parse::<Tz>().map_err(|_| {
                    refuse(format!(
                        "unknown time zone {value:?} (use an IANA name such as Europe/Paris or UTC)"
                    ))
                })?);
            }
            Field::Enabled => entry.enabled = Some(parse::boolean(value).map_err(refuse)?),
        }
    }
    Ok(SchedulerConfig {
        interval,
        overrides,
    })
}

enum Field {
    Expression,
    TimeZone,
    Enabled,
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use crate::cron::CronTable;

    fn config(vars: &[(&str, &str)]) -> Result<Config, super::ConfigError> {
        Config::from_vars(vars.iter().copied())
    }

    #[test]
    fn without_overrides_the_table_is_the_built_in_one() {
        let config = config(&[]).unwrap();
        assert_eq!(config.scheduler.interval, std::time::Duration::from_secs(1));
        assert!(config.scheduler.overrides.is_empty());
        let table = CronTable::from_config(&config.scheduler);
        assert_eq!(
            table.get("retention").unwrap().expression.source(),
            "0 0 3 * * *"
        );
    }

    #[test]
    fn expression_zone_and_enabled_are_overridable_per_schedule() {
        let config = config(&[
            ("MINGUS_SCHEDULE_RETENTION", " 0 15 0 * * * "),
            ("MINGUS_SCHEDULE_RETENTION_TZ", "Europe/Paris"),
            ("MINGUS_SCHEDULE_OUTBOX_SWEEP_ENABLED", "false"),
            ("MINGUS_SCHEDULE_OUTBOX_SWEEP_TZ", ""),
            ("MINGUS_SCHEDULER_INTERVAL_MS", "250"),
        ])
        .unwrap();
        assert_eq!(
            config.scheduler.interval,
            std::time::Duration::from_millis(250)
        );
        let table = CronTable::from_config(&config.scheduler);
        let retention = table.get("retention").unwrap();
        assert_eq!(retention.expression.source(), "0 15 0 * * *");
        assert_eq!(retention.time_zone, chrono_tz::Europe::Paris);
        assert!(retention.enabled);
        let sweep = table.get("outbox_sweep").unwrap();
        assert!(!sweep.enabled);
        assert_eq!(sweep.expression.source(), "0 * * * * *", "kept");
        assert_eq!(
            sweep.time_zone,
            chrono_tz::UTC,
            "an empty variable is unset"
        );
    }

    #[test]
    fn invalid_values_are_errors_naming_the_variable() {
        let cases = [
            ("MINGUS_SCHEDULE_RETENTION", "3 * * *", "expected 5 fields"),
            (
                "MINGUS_SCHEDULE_RETENTION",
                "0 61 3 * * *",
                "invalid cron expression",
            ),
            ("MINGUS_SCHEDULE_RETENTION", "0 0 0 30 2 *", "never fires"),
            (
                "MINGUS_SCHEDULE_RETENTION_TZ",
                "Mars/Olympus",
                "unknown time zone",
            ),
            (
                "MINGUS_SCHEDULE_OUTBOX_SWEEP_ENABLED",
                "maybe",
                "expected true or false",
            ),
            (
                "MINGUS_SCHEDULE_NIGHTLY_BACKUP",
                "0 0 1 * * *",
                "unknown schedule \"nightly_backup\"",
            ),
            (
                "MINGUS_SCHEDULER_INTERVAL_MS",
                "10",
                "between 100 and 60000",
            ),
        ];
        for (variable, value, reason) in cases {
            let err = config(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable(), variable, "{err}");
            assert!(
                err.to_string().contains(reason),
                "{variable}={value}: {err}"
            );
        }
    }
}
