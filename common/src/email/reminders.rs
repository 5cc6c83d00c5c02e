//! The minute sweep over `reminder_schedules`, and the recurrence arithmetic behind it.
//!
//! A reminder is due when `enabled AND scheduled_date <= now`. The sweep locks a page of due reminders
//! (`FOR UPDATE SKIP LOCKED`, so concurrent sweeps split the work), and for each, in one transaction:
//! queues one delivery (dedupe key `reminder:<id>:<occurrence>`, so a sweep that runs twice queues it
//! once; `suppressed` when the user unsubscribed from reminders) and advances the reminder: `once` is
//! disabled, `daily`/`weekly`/`monthly` move to their next occurrence. Jobs are pushed after commit.
//!
//! **Time zones.** Recurring reminders fire at their `local_time` (e.g. 09:00) on the wall clock of the
//! user's zone (`user_profiles.timezone`, UTC when unset or unknown), whatever the UTC offset of that
//! day: 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer. Local times are mapped to
//! instants with the scheduler's rules ([`crate::cron::instant_of`]): a time that happens twice (the
//! autumn fall-back) fires once, at the earlier instant; a time that does not exist (the spring gap)
//! fires once, at the first instant after the gap. `local_time` defaults to the wall-clock time of the
//! first occurrence and is then stored, so a gap never shifts later occurrences.
//!
//! **Monthly** reminders keep their day of the month (`day_of_month`, defaulting to the first
//! occurrence's): the 31st fires on the last day of shorter months and on the 31st again after.
//!
//! **Catch-up.** After downtime a recurring reminder sends once, for its latest due occurrence, and
//! moves to the first occurrence after `now` — like the scheduler's coalesced ticks, never a burst.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::Template;
use super::deliveries::{self, NewDelivery, Queued};
use crate::cron::{instant_of, local_time};
use crate::jobs::{Enqueuer, Envelope, outbox};

/// Reminders handled per transaction, and pages per sweep (the next sweep continues).
const PAGE: i64 = 500;
const MAX_PAGES: usize = 20;
/// Most occurrences skipped when catching up (a daily reminder missed for ~27 years).
const MAX_CATCH_UP: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Once,
    Daily,
    Weekly,
    Monthly,
}

impl Frequency {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "once" => Some(Frequency::Once),
            "daily" => Some(Frequency::Daily),
            "weekly" => Some(Frequency::Weekly),
            "monthly" => Some(Frequency::Monthly),
            _ => None,
        }
    }
}

/// How a recurring reminder repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recurrence {
    pub frequency: Frequency,
    pub zone: Tz,
    /// Wall-clock time of every occurrence.
    pub local_time: NaiveTime,
    /// Day of the month of monthly reminders (1–31, clamped to the month's length).
    pub day_of_month: u32,
}

impl Recurrence {
    /// The recurrence of a reminder whose current occurrence is `occurrence`, filling what the row
    /// leaves unset from that occurrence's wall-clock time.
    pub fn of(
        frequency: Frequency,
        zone: Tz,
        occurrence: DateTime<Utc>,
        local: Option<NaiveTime>,
        day_of_month: Option<u32>,
    ) -> Self {
        let wall = local_time(zone, occurrence);
        Recurrence {
            frequency,
            zone,
            local_time: local.unwrap_or_else(|| wall.time()),
            day_of_month: day_of_month.unwrap_or_else(|| wall.day()).clamp(1, 31),
        }
    }

    /// The occurrence after `occurrence`; `None` for `once`.
    pub fn next(&self, occurrence: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let date = local_time(self.zone, occurrence).date();
        let next_date = match self.frequency {
            Frequency::Once => return None,
            Frequency::Daily => date.checked_add_days(Days::new(1))?,
            Frequency::Weekly => date.checked_add_days(Days::new(7))?,
            Frequency::Monthly => {
                let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?
                    .checked_add_months(Months::new(1))?;
                let last = first.checked_add_months(Months::new(1))?.pred_opt()?.day();
                first.with_day(self.day_of_month.min(last))?
            }
        };
        Some(instant_of(
            self.zone,
            NaiveDateTime::new(next_date, self.local_time),
        ))
    }

    /// The latest occurrence at or before `now`, starting from the due `occurrence`, and the one after
    /// it (the new `scheduled_date`).
    pub fn catch_up(
        &self,
        occurrence: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
        let mut current = occurrence;
        for _ in 0..MAX_CATCH_UP {
            match self.next(current) {
                Some(next) if next <= now => current = next,
                other => return (current, other),
            }
        }
        (current, self.next(current))
    }
}

/// The dedupe key of one occurrence of a reminder.
pub fn dedupe_key(reminder_id: Uuid, occurrence: DateTime<Utc>) -> String {
    format!(
        "reminder:{reminder_id}:{}",
        occurrence.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Due reminders handled.
    pub reminders: usize,
    /// Deliveries queued (`queued` or `suppressed`).
    pub queued: usize,
    pub suppressed: usize,
    /// Recurring reminders moved to a later occurrence; one-off reminders disabled.
    pub advanced: usize,
    pub disabled: usize,
    /// Due deliveries that had no job and got one.
    pub staged: usize,
    /// Staged e-mail jobs nobody had pushed.
    pub pushed: usize,
}

type DueRow = (
    Uuid,
    Uuid,
    String,
    DateTime<Utc>,
    String,
    Option<NaiveTime>,
    Option<i16>,
    Option<String>,
    sqlx::types::Json<serde_json::Value>,
    Option<String>,
    bool,
);

/// Turns the reminders due at `now` into deliveries and advances them; then stages jobs for due
/// deliveries without one and pushes staged e-mail jobs nobody pushed. `enqueuer` pushes after each
/// commit (tests may pass `None` and look at the rows).
pub async fn sweep(
    pool: &PgPool,
    enqueuer: Option<&Enqueuer>,
    now: DateTime<Utc>,
) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    for _ in 0..MAX_PAGES {
        let (handled, envelopes) = sweep_page(pool, now, &mut report).await?;
        if let Some(enqueuer) = enqueuer {
            outbox::push_after_commit(pool, enqueuer, &envelopes).await;
        }
        if handled < PAGE as usize {
            break;
        }
    }
    report.staged = deliveries::stage_due(pool, enqueuer, now, 5_000).await?;
    if let Some(enqueuer) = enqueuer {
        report.pushed =
            deliveries::push_staged(pool, enqueuer, std::time::Duration::from_secs(5), 5_000)
                .await?;
    }
    Ok(report)
}

async fn sweep_page(
    pool: &PgPool,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> anyhow::Result<(usize, Vec<Envelope>)> {
    let mut tx = pool.begin().await?;
    let rows: Vec<DueRow> = sqlx::query_as(
        "SELECT r.id, r.user_id, r.reminder_type, r.scheduled_date, r.frequency, r.local_time,
                r.day_of_month, r.message, r.preferences, p.timezone, u.is_active
         FROM reminder_schedules r
         JOIN users u ON u.id = r.user_id
         LEFT JOIN user_profiles p ON p.user_id = r.user_id
         WHERE r.enabled AND r.scheduled_date <= $1
         ORDER BY r.scheduled_date
         LIMIT $2
         FOR UPDATE OF r SKIP LOCKED",
    )
    .bind(now)
    .bind(PAGE)
    .fetch_all(&mut *tx)
    .await?;
    let mut envelopes = Vec::new();
    for (id, user_id, kind, due, frequency, local, day, message, preferences, timezone, active) in
        &rows
    {
        report.reminders += 1;
        let zone: Tz = timezone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .unwrap_or(Tz::UTC);
        let frequency = Frequency::parse(frequency).unwrap_or(Frequency::Once);
        let recurrence = Recurrence::of(
            frequency,
            zone,
            *due,
            *local,
            day.and_then(|d| u32::try_from(d).ok()),
        );
        let (occurrence, next) = recurrence.catch_up(*due, now);
        let template = Template::for_reminder(kind).unwrap_or(Template::ReminderCustom);
        if *active {
            let delivery = NewDelivery {
                user_id: Some(*user_id),
                recipient: None,
                template,
                data: json!({
                    "reminder_id": id,
                    "reminder_type": kind,
                    "frequency": frequency_name(frequency),
                    "occurrence": occurrence,
                    "message": message,
                    "preferences": preferences.0,
                }),
                dedupe_key: dedupe_key(*id, occurrence),
                scheduled_for: now,
            };
            match deliveries::queue(&mut tx, &delivery).await? {
                Queued::Staged(envelope) => {
                    report.queued += 1;
                    envelopes.push(envelope);
                }
                Queued::Scheduled => report.queued += 1,
                Queued::Suppressed => {
                    report.queued += 1;
                    report.suppressed += 1;
                }
                Queued::Duplicate | Queued::NoRecipient => {}
            }
        }
        match next {
            Some(_) => report.advanced += 1,
            None => report.disabled += 1,
        }
        sqlx::query(
            "UPDATE reminder_schedules
             SET scheduled_date = coalesce($2, scheduled_date), enabled = $2 IS NOT NULL,
                 last_sent_at = CASE WHEN $3 THEN $4 ELSE last_sent_at END,
                 local_time = CASE WHEN frequency = 'once' THEN local_time ELSE coalesce(local_time, $5) END,
                 day_of_month = CASE WHEN frequency = 'monthly' THEN coalesce(day_of_month, $6) ELSE day_of_month END,
                 updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(next)
        .bind(*active)
        .bind(now)
        .bind(recurrence.local_time)
        .bind(recurrence.day_of_month as i16)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok((rows.len(), envelopes))
}

fn frequency_name(frequency: Frequency) -> &'static str {
    match frequency {
        Frequency::Once => "once",
        Frequency::Daily => "daily",
        Frequency::Weekly => "weekly",
        Frequency::Monthly => "monthly",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn nine() -> NaiveTime {
        NaiveTime::from_hms_opt(9, 0, 0).unwrap()
    }

    #[test]
    fn daily_at_nine_new_york_follows_the_wall_clock_across_the_spring_change() {
        let zone: Tz = "America/New_York".parse().unwrap();
        // Saturday March 7, 2026, 09:00 EST = 14:00 UTC; DST starts Sunday March 8.
        let first = utc("2026-03-07T14:00:00Z");
        let daily = Recurrence::of(Frequency::Daily, zone, first, Some(nine()), None);
        let second = daily.next(first).unwrap();
        assert_eq!(second, utc("2026-03-08T13:00:00Z"), "09:00 EDT");
        assert_eq!(daily.next(second).unwrap(), utc("2026-03-09T13:00:00Z"));
    }

    #[test]
    fn gap_and_repeated_hour_fire_once() {
        let zone: Tz = "America/New_York".parse().unwrap();
        let half_past_two = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        let before = zone
            .with_ymd_and_hms(2026, 3, 7, 2, 30, 0)
            .unwrap()
            .with_timezone(&Utc);
        let daily = Recurrence::of(Frequency::Daily, zone, before, Some(half_past_two), None);
        // 02:30 does not exist on March 8: the first instant after the gap, 03:00 EDT.
        let in_gap = daily.next(before).unwrap();
        assert_eq!(in_gap, utc("2026-03-08T07:00:00Z"));
        // And the day after is 02:30 EDT again (local_time is kept, not shifted to 03:00).
        assert_eq!(daily.next(in_gap).unwrap(), utc("2026-03-09T06:30:00Z"));
        // 01:30 happens twice on November 1: once, at the earlier instant (EDT).
        let one_thirty = NaiveTime::from_hms_opt(1, 30, 0).unwrap();
        let oct31 = zone
            .with_ymd_and_hms(2026, 10, 31, 1, 30, 0)
            .unwrap()
            .with_timezone(&Utc);
        let daily = Recurrence::of(Frequency::Daily, zone, oct31, Some(one_thirty), None);
        let nov1 = daily.next(oct31).unwrap();
        assert_eq!(nov1, utc("2026-11-01T05:30:00Z"));
        assert_eq!(daily.next(nov1).unwrap(), utc("2026-11-02T06:30:00Z"));
    }

    #[test]
    fn monthly_keeps_its_day_and_weekly_its_weekday() {
        let jan31 = utc("2026-01-31T09:00:00Z");
        let monthly = Recurrence::of(Frequency::Monthly, Tz::UTC, jan31, None, None);
        assert_eq!(monthly.day_of_month, 31);
        let feb = monthly.next(jan31).unwrap();
        assert_eq!(feb, utc("2026-02-28T09:00:00Z"));
        assert_eq!(monthly.next(feb).unwrap(), utc("2026-03-31T09:00:00Z"));
        let weekly = Recurrence::of(Frequency::Weekly, Tz::UTC, jan31, None, None);
        assert_eq!(weekly.next(jan31).unwrap(), utc("2026-02-07T09:00:00Z"));
        let once = Recurrence::of(Frequency::Once, Tz::UTC, jan31, None, None);
        assert_eq!(once.next(jan31), None);
    }

    #[test]
    fn catching_up_sends_the_latest_due_occurrence_once() {
        let first = utc("2026-05-01T09:00:00Z");
        let daily = Recurrence::of(Frequency::Daily, Tz::UTC, first, None, None);
        let now = utc("2026-05-04T10:00:00Z");
        assert_eq!(
            daily.catch_up(first, now),
            (
                utc("2026-05-04T09:00:00Z"),
                Some(utc("2026-05-05T09:00:00Z"))
            )
        );
        assert_eq!(
            dedupe_key(Uuid::nil(), first),
            "reminder:00000000-0000-0000-0000-000000000000:2026-05-01T09:00:00Z"
        );
    }
}
