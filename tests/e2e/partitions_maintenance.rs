//! Partition maintenance with an injected "today": premaking months, moving rows out of the default
//! partition when their month gets its own, retention (drop and archive), dry runs, a second run that
//! changes nothing, and never queueing behind (and so never blocking) writers.

use std::time::{Duration, Instant};

use chrono::{Datelike, Months, NaiveDate, Utc};
use mingus_common::analytics::partitions::{self, Action, Options, RetentionAction};
use mingus_tests::TestDb;
use sqlx::PgPool;

use crate::fixtures;

fn month(months_ahead: u32) -> NaiveDate {
    let today = Utc::now().date_naive();
    NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap() + Months::new(months_ahead)
}

async fn exists(pool: &PgPool, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn count(pool: &PgPool, sql: String) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

fn created(report: &partitions::Report) -> Vec<String> {
    report
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Create { partition, .. } => Some(partition.clone()),
            Action::Retire { .. } => None,
        })
        .collect()
}

#[tokio::test]
async fn partitions_maintenance_premakes_months_and_a_second_run_changes_nothing() {
    let db = TestDb::new().await;
    let today = Utc::now().date_naive();
    let report = partitions::maintain(&db.pool, Options::new(today))
        .await
        .unwrap();
    assert!(
        report.actions.is_empty() && report.failures.is_empty(),
        "the migrations premade this month and the next three: {report:?}"
    );

    // Two months later: two new months per table, with the parent's indexes.
    let later = month(2) + chrono::Days::new(10);
    let report = partitions::maintain(&db.pool, Options::new(later))
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let mut made = created(&report);
    made.sort();
    let mut expected = Vec::new();
    for table in ["activity_events", "user_analytics", "user_health_checkins"] {
        for m in [4, 5] {
            expected.push(partitions::partition_name(table, month(m)));
        }
    }
    expected.sort();
    assert_eq!(made, expected);
    let indexes = count(
        &db.pool,
        format!(
            "SELECT count(*) FROM pg_indexes WHERE tablename = '{}'",
            partitions::partition_name("activity_events", month(5))
        ),
    )
    .await;
    assert_eq!(indexes, 2, "primary key and (user_id, occurred_at)");
    let fks = count(
        &db.pool,
        format!(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = '{}'::regclass AND contype = 'f'",
            partitions::partition_name("activity_events", month(5))
        ),
    )
    .await;
    assert_eq!(fks, 1, "the foreign key to users is cloned");

    // Nothing to do: no change, well under a second.
    let started = Instant::now();
    let again = partitions::maintain(&db.pool, Options::new(later))
        .await
        .unwrap();
    assert!(
        again.actions.is_empty() && again.failures.is_empty(),
        "{again:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn partitions_maintenance_moves_rows_out_of_the_default_partition_when_their_month_is_created()
 {
    let db = TestDb::new().await;
    let user = fixtures::user(&db.pool).await;
    let future = month(6);
    let day = future + chrono::Days::new(20);
    fixtures::checkin(&db.pool, user, day).await;
    sqlx::query("INSERT INTO user_analytics (user_id, date, login_count) VALUES ($1, $2, 7)")
        .bind(user)
        .bind(day)
        .execute(&db.pool)
        .await
        .unwrap();
    for (hour, kind) in [(0, "login"), (23, "login")] {
        sqlx::query("INSERT INTO activity_events (user_id, occurred_at, kind) VALUES ($1, $2, $3)")
            .bind(user)
            .bind(day.and_hms_opt(hour, 30, 0).unwrap().and_utc())
            .bind(kind)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    // The last instant before the month (stays in the default partition: it is not this month's).
    sqlx::query(
        "INSERT INTO activity_events (user_id, occurred_at, kind) VALUES ($1, $2, 'login')",
    )
    .bind(user)
    .bind(future.and_hms_opt(0, 0, 0).unwrap().and_utc() - chrono::Duration::microseconds(1))
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM activity_events_default".into()
        )
        .await,
        3
    );

    let mut dry = Options::new(future);
    dry.dry_run = true;
    let plan = partitions::maintain(&db.pool, dry).await.unwrap();
    let rescue: Vec<(String, u64)> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Create {
                partition,
                rescued_rows,
                ..
            } if *rescued_rows > 0 => Some((partition.clone(), *rescued_rows)),
            _ => None,
        })
        .collect();
    assert_eq!(rescue.len(), 3, "{rescue:?}");
    assert!(
        !exists(
            &db.pool,
            &partitions::partition_name("activity_events", future)
        )
        .await,
        "a dry run changes nothing"
    );

    let report = partitions::maintain(&db.pool, Options::new(future))
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let moved: u64 = report
        .actions
        .iter()
        .map(|a| match a {
            Action::Create { rescued_rows, .. } => *rescued_rows,
            Action::Retire { .. } => 0,
        })
        .sum();
    assert_eq!(moved, 4, "two events, one check-in, one analytics row");
    let suffix = future.format("_p%Y_%m");
    assert_eq!(
        count(
            &db.pool,
            format!("SELECT count(*) FROM activity_events{suffix}")
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &db.pool,
            format!("SELECT count(*) FROM user_health_checkins{suffix}")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db.pool,
            format!("SELECT sum(login_count) FROM user_analytics{suffix}")
        )
        .await,
        7
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM activity_events_default".into()
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM user_analytics_default".into()
        )
        .await,
        0
    );
    // The rows are whole: the unique key still holds across the move.
    let duplicate = sqlx::query("INSERT INTO user_analytics (user_id, date) VALUES ($1, $2)")
        .bind(user)
        .bind(day)
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(
        duplicate
            .as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{duplicate}"
    );
    let again = partitions::maintain(&db.pool, Options::new(future))
        .await
        .unwrap();
    assert!(again.actions.is_empty(), "{again:?}");
}

#[tokio::test]
async fn partitions_maintenance_retention_drops_or_archives_old_months() {
    let db = TestDb::new().await;
    let user = fixtures::user(&db.pool).await;
    fixtures::checkin(&db.pool, user, month(0) + chrono::Days::new(1)).await;
    sqlx::query(
        "UPDATE partitioned_tables SET retention_months = 2 WHERE table_name = 'activity_events'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE partitioned_tables SET retention_months = 2, retention_action = 'archive' WHERE table_name = 'user_health_checkins'")
        .execute(&db.pool).await.unwrap();
    // Four months on, months 0 and 1 end before the cutoff (month 4 − 2 = month 2).
    let later = month(4);
    let report = partitions::maintain(&db.pool, Options::new(later))
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let mut retired: Vec<(String, RetentionAction)> = report
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Retire { partition, how, .. } => Some((partition.clone(), *how)),
            Action::Create { .. } => None,
        })
        .collect();
    retired.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        retired,
        vec![
            (
                partitions::partition_name("activity_events", month(0)),
                RetentionAction::Drop
            ),
            (
                partitions::partition_name("activity_events", month(1)),
                RetentionAction::Drop
            ),
            (
                partitions::partition_name("user_health_checkins", month(0)),
                RetentionAction::Archive
            ),
            (
                partitions::partition_name("user_health_checkins", month(1)),
                RetentionAction::Archive
            ),
        ]
    );
    assert!(
        !exists(
            &db.pool,
            &partitions::partition_name("activity_events", month(1))
        )
        .await
    );
    assert!(
        exists(
            &db.pool,
            &partitions::partition_name("activity_events", month(2))
        )
        .await
    );
    let archived = format!(
        "archive.{}",
        partitions::partition_name("user_health_checkins", month(0))
    );
    assert_eq!(
        count(&db.pool, format!("SELECT count(*) FROM {archived}")).await,
        1,
        "archived with its rows"
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM user_health_checkins".into()).await,
        0,
        "and out of the table"
    );
    assert!(
        exists(
            &db.pool,
            &partitions::partition_name("user_analytics", month(0))
        )
        .await,
        "no retention: kept"
    );
    let again = partitions::maintain(&db.pool, Options::new(later))
        .await
        .unwrap();
    assert!(
        again.actions.is_empty() && again.failures.is_empty(),
        "{again:?}"
    );
}

/// A run with nothing to do takes no table lock: it finishes while a writer holds its transaction open.
/// A run with something to do gives up a lock it cannot get quickly instead of queueing other writers.
#[tokio::test]
async fn partitions_maintenance_never_waits_in_line_with_writers() {
    let db = TestDb::new().await;
    let user = fixtures::user(&db.pool).await;
    let mut writer = db.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO activity_events (user_id, occurred_at, kind) VALUES ($1, now(), 'login')",
    )
    .bind(user)
    .execute(&mut *writer)
    .await
    .unwrap();
    let mut reader = db.pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM user_analytics_default")
        .execute(&mut *reader)
        .await
        .unwrap();

    let started = Instant::now();
    let idle = partitions::maintain(&db.pool, Options::new(Utc::now().date_naive()))
        .await
        .unwrap();
    assert!(idle.actions.is_empty() && idle.failures.is_empty());
    assert!(started.elapsed() < Duration::from_secs(1));

    // Creating next month's user_analytics partition needs the default partition, which a reader holds.
    let mut options = Options::new(month(1));
    options.lock_timeout = Duration::from_millis(200);
    let started = Instant::now();
    let busy = partitions::maintain(&db.pool, options).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    let failed: Vec<&String> = busy.failures.iter().map(|(what, _)| what).collect();
    assert_eq!(
        failed,
        vec![&partitions::partition_name("user_analytics", month(4))],
        "{:?}",
        busy.failures
    );
    assert!(
        busy.failures[0].1.contains("lock timeout"),
        "{:?}",
        busy.failures
    );
    assert_eq!(created(&busy).len(), 2, "the other tables went ahead");
    writer.commit().await.unwrap();
    reader.commit().await.unwrap();
    let retry = partitions::maintain(&db.pool, options).await.unwrap();
    assert_eq!(
        created(&retry),
        vec![partitions::partition_name("user_analytics", month(4))]
    );
}
