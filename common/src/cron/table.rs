//! The cron table: which job runs when, in which zone, and how configuration overrides it.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::CronExpression;
use crate::config::{ScheduleOverride, SchedulerConfig};
use crate::jobs::catalog;
use crate::jobs::{Envelope, Job, JobSpec, outbox};
use crate::queue::Queue;

/// The cron table of DESIGN §4, for the jobs that exist. One line per schedule: its name (also the
/// `MINGUS_SCHEDULE_<NAME>` variables), the expression (crontab's 5 fields or 6/7 with seconds first),
/// the zone its wall-clock times are read in, and the job built for each tick.
fn default_schedules() -> Result<Vec<Schedule>, super::CronExpressionError> {
    Ok(vec![
        Schedule::new("outbox_sweep", "0 * * * * *", Tz::UTC, |_| {
            catalog::OutboxSweep {}
        })?,
        Schedule::new("retention", "0 0 3 * * *", Tz::UTC, |_| {
            catalog::Retention {}
        })?,
        // Stripe ↔ local subscriptions, with fixes; a run without STRIPE_API_KEY does nothing.
        Schedule::new("stripe_reconcile", "0 0 4 * * *", Tz::UTC, |_| {
            crate::jobs::stripe_jobs::StripeReconcile::default()
        })?,
        Schedule::new("trial_expiry_sweep", "0 */5 * * * *", Tz::UTC, |_| {
            crate::jobs::billing_jobs::TrialExpirySweep {}
        })?,
        Schedule::new("renewal_sweep", "0 */5 * * * *", Tz::UTC, |_| {
            crate::jobs::billing_jobs::RenewalSweep {}
        })?,
        // Due reminders → deliveries; due deliveries without a job get one.
        Schedule::new("reminder_sweep", "0 * * * * *", Tz::UTC, |_| {
            crate::jobs::email_jobs::ReminderSweep {}
        })?,
        // Each user's day ends between 10:00 UTC the same day (UTC+14) and 12:00 UTC the next (UTC−12):
        // roll up yesterday (final for zones at or east of the tick's zone) and the day before (final
        // everywhere). Both are idempotent; a missed night is caught up by `mingus-admin analytics backfill`.
        Schedule::new("analytics_rollup", "0 15 0 * * *", Tz::UTC, |tick| {
            let today = tick.local.date();
            crate::jobs::analytics_jobs::AnalyticsRollup {
                dates: vec![today - chrono::Days::new(2), today - chrono::Days::new(1)],
                shards: None,
            }
        })?,
        // Revenue facts after the engagement rollup: the 35 days before today, recomputed from the whole
        // subscription history (see `crate::revenue`).
        Schedule::new("revenue_rollup", "0 45 0 * * *", Tz::UTC, |tick| {
            let (from, to) = crate::revenue::nightly_range(tick.local.date());
            crate::jobs::revenue_jobs::RevenueRollup { from, to }
        })?,
        Schedule::new("partition_maintenance", "0 0 2 * * *", Tz::UTC, |_| {
            crate::jobs::analytics_jobs::PartitionMaintenance::default()
        })?,
        // Usage limits reset on each user's own billing anniversary, so the sweep runs hourly.
        Schedule::new("usage_reset", "0 0 * * * *", Tz::UTC, |_| {
            catalog::UsageResetSweep {}
        })?,
    ])
}

/// One tick of a schedule, as handed to the function that builds its job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tick {
    pub schedule: String,
    /// The tick as wall-clock time in the schedule's zone (for a manual run: when it was requested).
    pub local: NaiveDateTime,
    /// The instant it was due.
    pub at: DateTime<Utc>,
    /// How many due ticks this run stands for (> 1 after a scheduler outage).
    pub coalesced: u32,
    /// Triggered by an operator rather than by the clock.
    pub manual: bool,
}

/// Builds and stages (in the caller's transaction, as a `job_outbox` row) the job of a tick.
pub trait TickJob: Send + Sync {
    /// Kind, queue and policy of the job.
    fn spec(&self) -> JobSpec;

    /// Writes the outbox row of this tick's job and returns the envelope to push after commit.
    fn stage<'c>(
        &self,
        conn: &'c mut PgConnection,
        tick: &Tick,
        job_id: Uuid,
    ) -> BoxFuture<'c, anyhow::Result<Envelope>>;
}

struct BuildJob<J, F> {
    build: F,
    job: PhantomData<fn() -> J>,
}

impl<J, F> TickJob for BuildJob<J, F>
where
    J: Job + 'static,
    F: Fn(&Tick) -> J + Send + Sync,
{
    fn spec(&self) -> JobSpec {
        J::SPEC
    }

    fn stage<'c>(
        &self,
        conn: &'c mut PgConnection,
        tick: &Tick,
        job_id: Uuid,
    ) -> BoxFuture<'c, anyhow::Result<Envelope>> {
        let job = (self.build)(tick);
        Box::pin(async move { outbox::stage(conn, &job, job_id).await })
    }
}

/// One row of the cron table.
#[derive(Clone)]
pub struct Schedule {
    pub name: String,
    pub expression: CronExpression,
    pub time_zone: Tz,
    pub enabled: bool,
    job: Arc<dyn TickJob>,
}

impl Schedule {
    /// An enabled schedule running the job `build` returns for each tick.
    pub fn new<J, F>(
        name: &str,
        expression: &str,
        time_zone: Tz,
        build: F,
    ) -> Result<Self, super::CronExpressionError>
    where
        J: Job + 'static,
        F: Fn(&Tick) -> J + Send + Sync + 'static,
    {
        Ok(Schedule {
            name: name.to_owned(),
            expression: expression.parse()?,
            time_zone,
            enabled: true,
            job: Arc::new(BuildJob {
                build,
                job: PhantomData,
            }),
        })
    }

    /// The same schedule, enabled or not.
    pub fn enabled(self, enabled: bool) -> Self {
        Schedule { enabled, ..self }
    }

    pub fn job_kind(&self) -> &'static str {
        self.job.spec().kind
    }

    pub fn queue(&self) -> Queue {
        self.job.spec().queue
    }

    pub(crate) fn job(&self) -> &dyn TickJob {
        self.job.as_ref()
    }

    fn apply(&mut self, change: &ScheduleOverride) {
        if let Some(expression) = &change.expression {
            self.expression = expression.clone();
        }
        if let Some(zone) = change.time_zone {
            self.time_zone = zone;
        }
        if let Some(enabled) = change.enabled {
            self.enabled = enabled;
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("name", &self.name)
            .field("expression", &self.expression.source())
            .field("time_zone", &self.time_zone.name())
            .field("enabled", &self.enabled)
            .field("job_kind", &self.job_kind())
            .finish()
    }
}

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronTableError {
    #[error(
        "invalid schedule name {0:?}: use 1–100 of a-z, 0-9 and _, not ending in _tz or _enabled"
    )]
    InvalidName(String),
    #[error("schedule {0:?} appears twice")]
    Duplicate(String),
    #[error("unknown schedule {0:?}")]
    Unknown(String),
}

/// The schedules one scheduler drives. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CronTable {
    schedules: Vec<Schedule>,
}

impl CronTable {
    /// A table of the given schedules; names must be unique and usable in variable names.
    pub fn new(schedules: Vec<Schedule>) -> Result<Self, CronTableError> {
        for (i, schedule) in schedules.iter().enumerate() {
            if !valid_name(&schedule.name) {
                return Err(CronTableError::InvalidName(schedule.name.clone()));
            }
            if schedules[..i].iter().any(|s| s.name == schedule.name) {
                return Err(CronTableError::Duplicate(schedule.name.clone()));
            }
        }
        Ok(CronTable { schedules })
    }

    /// The built-in table (DESIGN §4), without configuration overrides.
    pub fn defaults() -> Self {
        let schedules = default_schedules().expect("the built-in cron expressions are valid");
        CronTable::new(schedules).expect("the built-in schedule names are valid and unique")
    }

    /// The built-in table with the overrides of the configuration (validated when it was parsed).
    pub fn from_config(config: &SchedulerConfig) -> Self {
        CronTable::defaults()
            .with_overrides(&config.overrides)
            .expect("configuration overrides name built-in schedules")
    }

    /// Applies overrides keyed by schedule name.
    pub fn with_overrides(
        mut self,
        overrides: &BTreeMap<String, ScheduleOverride>,
    ) -> Result<Self, CronTableError> {
        for (name, change) in overrides {
            let schedule = self
                .schedules
                .iter_mut()
                .find(|s| &s.name == name)
                .ok_or_else(|| CronTableError::Unknown(name.clone()))?;
            schedule.apply(change);
        }
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name == name)
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    pub fn names(&self) -> Vec<&str> {
        self.schedules.iter().map(|s| s.name.as_str()).collect()
    }
}

/// Names become part of variable names (`MINGUS_SCHEDULE_<NAME>_TZ`), so they are plain snake case and
/// must not end like a suffix.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.ends_with("_tz")
        && !name.ends_with("_enabled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_matches_design_section_4_for_existing_jobs() {
        let table = CronTable::defaults();
        assert_eq!(
            table.names(),
            [
                "outbox_sweep",
                "retention",
                "stripe_reconcile",
                "trial_expiry_sweep",
                "renewal_sweep",
                "reminder_sweep",
                "analytics_rollup",
                "revenue_rollup",
                "partition_maintenance",
                "usage_reset"
            ]
        );
        let sweep = table.get("outbox_sweep").unwrap();
        assert_eq!(sweep.expression.source(), "0 * * * * *");
        assert_eq!(sweep.time_zone, Tz::UTC);
        assert_eq!(sweep.job_kind(), catalog::OutboxSweep::SPEC.kind);
        let retention = table.get("retention").unwrap();
        assert_eq!(retention.expression.source(), "0 0 3 * * *");
        assert_eq!(retention.queue(), Queue::Maintenance);
        for schedule in table.schedules() {
            assert!(schedule.enabled);
            assert!(
                catalog::spec(schedule.job_kind()).is_some(),
                "{} runs a job kind the workers know",
                schedule.name
            );
        }
    }

    #[test]
    fn tables_refuse_bad_and_duplicate_names() {
        let row = |name: &str| {
            Schedule::new(name, "0 * * * * *", Tz::UTC, |_| catalog::OutboxSweep {}).unwrap()
        };
        assert_eq!(
            CronTable::new(vec![row("a"), row("a")]).unwrap_err(),
            CronTableError::Duplicate("a".into())
        );
        for bad in ["", "Upper", "with-dash", "x_tz", "x_enabled"] {
            assert_eq!(
                CronTable::new(vec![row(bad)]).unwrap_err(),
                CronTableError::InvalidName(bad.into())
            );
        }
        let overrides = BTreeMap::from([("nope".to_owned(), ScheduleOverride::default())]);
        assert_eq!(
            CronTable::defaults()
                .with_overrides(&overrides)
                .unwrap_err(),
            CronTableError::Unknown("nope".into())
        );
    }
}
