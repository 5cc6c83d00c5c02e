//! Tick arithmetic on wall-clock time, correct across daylight-saving changes.
//!
//! A schedule's expression is evaluated on the local wall clock of its zone, which gives a sequence of
//! local ticks. Each local tick is due at one instant ([`instant_of`]):
//! - a local time that exists once is due then;
//! - an ambiguous local time (the repeated hour in autumn) is due at the **earlier** instant, once;
//! - a local time that does not exist (the skipped hour in spring) is due at the **first instant after
//!   the gap** (02:30 in New York on the spring-forward day is due at 03:00 EDT), once.
//!
//! This mapping never decreases as local time increases, so "the ticks due by `now`" is a prefix of the
//! local sequence, and a tick is identified by its local time: `(schedule, tick_local)` is the unique key.

use chrono::{DateTime, Duration, NaiveDateTime, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;

use super::CronExpression;

/// At most this many ticks are examined when counting missed ticks; the count saturates there.
pub const MAX_COALESCED: u32 = 100_000;

/// At most this many ticks are scanned forward from "now" (a repeated hour of an every-second schedule
/// is 3,600 ticks).
const MAX_SCAN: usize = 100_000;

/// The wall-clock time of `at` in `zone`.
pub fn local_time(zone: Tz, at: DateTime<Utc>) -> NaiveDateTime {
    at.with_timezone(&zone).naive_local()
}

/// The instant a local tick is due: the instant itself, the earlier of two in a repeated hour, or the
/// first instant after a skipped hour.
pub fn instant_of(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    if let Some(at) = zone.from_local_datetime(&local).earliest() {
        return at.with_timezone(&Utc);
    }
    // In a gap: find the first instant whose wall-clock time is at or after `local`. UTC offsets lie
    // within ±14 h, so that instant is within 15 h of `local` read as UTC, and no zone changes its offset
    // twice within such a window, so the predicate is monotonic there and a binary search finds it.
    let pivot = local.and_utc().timestamp();
    let (mut before, mut after) = (pivot - 15 * 3600, pivot + 15 * 3600);
    let reached = |seconds: i64| {
        DateTime::from_timestamp(seconds, 0).is_some_and(|at| local_time(zone, at) >= local)
    };
    while after - before > 1 {
        let middle = before + (after - before) / 2;
        if reached(middle) {
            after = middle;
        } else {
            before = middle;
        }
    }
    DateTime::from_timestamp(after, 0).unwrap_or_else(|| local.and_utc())
}

/// The ticks of a schedule that are due and not yet run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The latest due tick, as wall-clock time and as the instant it was due.
    pub local: NaiveDateTime,
    pub at: DateTime<Utc>,
    /// How many due ticks it stands for (1 when the scheduler kept up; saturates at [`MAX_COALESCED`]).
    pub coalesced: u32,
}

/// The latest tick due by `now` that comes after `last_local` (the latest tick already run, if any) and
/// was due after `since` (when the schedule was first seen, or last skipped while disabled), with the
/// number of such ticks. `None` when nothing is due.
pub fn due(
    expression: &CronExpression,
    zone: Tz,
    last_local: Option<NaiveDateTime>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Due> {
    let now = now.trunc_subsecs(0);
    let since = since.trunc_subsecs(0);
    let latest = latest_due(expression, zone, now)?;
    let latest_at = instant_of(zone, latest);
    let since_local = local_time(zone, since);
    let start = match last_local {
        Some(last) if last > since_local => last,
        _ => since_local,
    };
    if latest <= start || latest_at <= since {
        return None;
    }
    // Count the ticks in (start, latest] that were due after `since`. In a repeated hour some local
    // times after `since_local` were due before `since` (their earlier instant): they do not count.
    let mut coalesced: u32 = 0;
    for (examined, local) in expression.ticks_after(start).enumerate() {
        if local > latest || examined >= MAX_COALESCED as usize {
            break;
        }
        if instant_of(zone, local) > since {
            coalesced += 1;
        }
    }
    Some(Due {
        local: latest,
        at: latest_at,
        coalesced: coalesced.max(1),
    })
}

/// The latest local tick whose instant is at or before `now` (whole seconds).
fn latest_due(expression: &CronExpression, zone: Tz, now: DateTime<Utc>) -> Option<NaiveDateTime> {
    let now_local = local_time(zone, now);
    // Every tick before `now_local` is due (the mapping never decreases). Ticks at or after it can be
    // due too: the tick at exactly `now`, and, during a repeated hour, ticks whose earlier instant passed.
    let mut latest = None;
    for local in expression
        .ticks_after(now_local - Duration::seconds(1))
        .take(MAX_SCAN)
    {
        if instant_of(zone, local) > now {
            break;
        }
        latest = Some(local);
    }
    latest.or_else(|| expression.ticks_before(now_local).next())
}

/// The next tick after `now`: its wall-clock time and the instant it is due.
pub fn next_tick(
    expression: &CronExpression,
    zone: Tz,
    now: DateTime<Utc>,
) -> Option<(NaiveDateTime, DateTime<Utc>)> {
    let now = now.trunc_subsecs(0);
    let now_local = local_time(zone, now);
    expression
        .ticks_after(now_local - Duration::seconds(1))
        .take(MAX_SCAN)
        .map(|local| (local, instant_of(zone, local)))
        .find(|(_, at)| *at > now)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    const NEW_YORK: Tz = chrono_tz::America::New_York;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        local(y, m, d, h, min).and_utc()
    }

    fn expr(raw: &str) -> CronExpression {
        raw.parse().unwrap()
    }

    #[test]
    fn a_repeated_local_time_is_due_at_the_earlier_instant() {
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens at 05:30 and 06:30 UTC.
        assert_eq!(
            instant_of(NEW_YORK, local(2026, 11, 1, 1, 30)),
            utc(2026, 11, 1, 5, 30)
        );
        assert_eq!(
            instant_of(NEW_YORK, local(2026, 11, 1, 2, 0)),
            utc(2026, 11, 1, 7, 0)
        );
    }

    #[test]
    fn a_skipped_local_time_is_due_at_the_first_instant_after_the_gap() {
        // 2026-03-08: 02:00 EST springs forward to 03:00 EDT (07:00 UTC); 02:00–02:59 do not exist.
        for minute in [0, 1, 30, 59] {
            assert_eq!(
                instant_of(NEW_YORK, local(2026, 3, 8, 2, minute)),
                utc(2026, 3, 8, 7, 0)
            );
        }
        assert_eq!(
            instant_of(NEW_YORK, local(2026, 3, 8, 1, 59)),
            utc(2026, 3, 8, 6, 59)
        );
        assert_eq!(
            instant_of(NEW_YORK, local(2026, 3, 8, 3, 0)),
            utc(2026, 3, 8, 7, 0)
        );
        // A half-hour gap (Lord Howe Island, 2026-10-04 02:00 → 02:30 local, 15:30 UTC the day before).
        let lord_howe = chrono_tz::Australia::Lord_Howe;
        assert_eq!(
            instant_of(lord_howe, local(2026, 10, 4, 2, 10)),
            utc(2026, 10, 3, 15, 30)
        );
    }

    #[test]
    fn due_finds_the_latest_tick_and_counts_the_missed_ones() {
        let every_minute = expr("0 * * * * *");
        let since = utc(2030, 1, 1, 0, 0) + Duration::seconds(30);
        // Nothing due before the first tick after `since`.
        assert_eq!(
            due(
                &every_minute,
                Tz::UTC,
                None,
                since,
                since + Duration::seconds(20)
            ),
            None
        );
        let first = due(&every_minute, Tz::UTC, None, since, utc(2030, 1, 1, 0, 1)).unwrap();
        assert_eq!(first.local, local(2030, 1, 1, 0, 1));
        assert_eq!(first.coalesced, 1);
        // Down from 00:01 to 02:41:10: 00:02 … 02:41 is 160 ticks, coalesced into the latest.
        let later = utc(2030, 1, 1, 2, 41) + Duration::seconds(10);
        let caught_up = due(&every_minute, Tz::UTC, Some(first.local), since, later).unwrap();
        assert_eq!(caught_up.local, local(2030, 1, 1, 2, 41));
        assert_eq!(caught_up.coalesced, 160);
        assert_eq!(
            due(&every_minute, Tz::UTC, Some(caught_up.local), since, later),
            None
        );
    }

    #[test]
    fn a_daily_schedule_runs_once_on_the_fall_back_day() {
        let daily = expr("0 30 1 * * *");
        let since = utc(2026, 11, 1, 4, 0); // 00:00 EDT
        let mut last = None;
        let mut fired = Vec::new();
        let mut now = since;
        while now <= utc(2026, 11, 2, 5, 0) {
            if let Some(d) = due(&daily, NEW_YORK, last, since, now) {
                fired.push((now, d));
                last = Some(d.local);
            }
            now += Duration::minutes(1);
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].0, utc(2026, 11, 1, 5, 30));
        assert_eq!(fired[0].1.local, local(2026, 11, 1, 1, 30));
    }

    #[test]
    fn a_daily_schedule_in_the_gap_runs_once_at_the_end_of_the_gap() {
        let daily = expr("0 30 2 * * *");
        let since = utc(2026, 3, 8, 5, 0); // 00:00 EST
        let mut last = None;
        let mut fired = Vec::new();
        let mut now = since;
        while now <= utc(2026, 3, 9, 4, 0) {
            if let Some(d) = due(&daily, NEW_YORK, last, since, now) {
                fired.push((now, d));
                last = Some(d.local);
            }
            now += Duration::minutes(1);
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].0, utc(2026, 3, 8, 7, 0), "03:00 EDT");
        assert_eq!(fired[0].1.local, local(2026, 3, 8, 2, 30));
    }

    #[test]
    fn ticks_due_before_since_in_a_repeated_hour_are_not_counted() {
        // First seen at 01:10 EST (06:10 UTC, the second 01:10): 01:15 and 01:45 already happened (EDT).
        let quarterly = expr("0 */15 * * * *");
        let since = utc(2026, 11, 1, 6, 10);
        let d = due(&quarterly, NEW_YORK, None, since, utc(2026, 11, 1, 7, 0)).unwrap();
        assert_eq!(d.local, local(2026, 11, 1, 2, 0));
        assert_eq!(d.coalesced, 1);
    }

    #[test]
    fn next_tick_skips_ticks_already_due() {
        let daily = expr("0 30 1 * * *");
        // During the second 01:xx hour the next 01:30 is tomorrow's.
        assert_eq!(
            next_tick(&daily, NEW_YORK, utc(2026, 11, 1, 6, 0)),
            Some((local(2026, 11, 2, 1, 30), utc(2026, 11, 2, 6, 30)))
        );
        assert_eq!(
            next_tick(&daily, NEW_YORK, utc(2026, 11, 1, 5, 0)),
            Some((local(2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30)))
        );
    }
}
