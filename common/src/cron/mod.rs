//! The cron scheduler's core: the cron table (DESIGN §4), DST-correct tick arithmetic, and exactly-once
//! firing across scheduler replicas, with catch-up after downtime, manual runs and status for operators.
//! The `mingus-scheduler` binary drives [`fire_due`] once a second; its README documents the rules.

mod day_of_week;
mod expression;
mod fire;
mod table;
pub mod ticks;

pub use chrono_tz::Tz;
pub use expression::{CronExpression, CronExpressionError};
pub use fire::{
    CronRun, FireReport, LastRun, MANUAL_SCHEDULER, NextTick, RunOutcome, ScheduleFailure,
    ScheduleStatus, TriggerError, fire_due, schedule_status, trigger_now,
};
pub use table::{CronTable, CronTableError, Schedule, Tick, TickJob};
pub use ticks::{instant_of, local_time, next_tick};
