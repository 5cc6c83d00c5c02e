use chrono::{Datelike, Months, NaiveDate, Utc};
use mingus_tests::TestDb;
use sqlx::PgPool;

use crate::fixtures;

fn first_of_month(months_ahead: u32) -> NaiveDate {
    let today = Utc::now().date_naive();
    NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap() + Months::new(months_ahead)
}

async fn partition_of(pool: &PgPool, table: &str, column: &str, date: NaiveDate) -> String {
    let sql = format!("SELECT tableoid::regclass::text FROM {table} WHERE {column} = $1");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(date)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn rows_land_in_their_month_or_the_default_partition() {
    let db = TestDb::new().await;
    let user = fixtures::user(&db.pool).await;
    for months_ahead in 0..=3 {
        // The middle of the month and its last day both belong to the month's own partition.
        let first = first_of_month(months_ahead);
        let last = first_of_month(months_ahead + 1).pred_opt().unwrap();
        let expected_suffix = first.format("_p%Y_%m").to_string();
        for date in [first + chrono::Days::new(14), last] {
            fixtures::checkin(&db.pool, user, date).await;
            sqlx::query("INSERT INTO user_analytics (user_id, date) VALUES ($1, $2)")
                .bind(user)
                .bind(date)
                .execute(&db.pool)
                .await
                .unwrap();
            assert_eq!(
                partition_of(&db.pool, "user_health_checkins", "checkin_date", date).await,
                format!("user_health_checkins{expected_suffix}")
            );
            assert_eq!(
                partition_of(&db.pool, "user_analytics", "date", date).await,
                format!("user_analytics{expected_suffix}")
            );
        }
    }
    let far = first_of_month(30);
    fixtures::checkin(&db.pool, user, far).await;
    sqlx::query("INSERT INTO user_analytics (user_id, date) VALUES ($1, $2)")
        .bind(user)
        .bind(far)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        partition_of(&db.pool, "user_health_checkins", "checkin_date", far).await,
        "user_health_checkins_default"
    );
    assert_eq!(
        partition_of(&db.pool, "user_analytics", "date", far).await,
        "user_analytics_default"
    );
}

#[tokio::test]
async fn the_partition_helper_is_idempotent() {
    let db = TestDb::new().await;
    let created: i32 = sqlx::query_scalar(
        "SELECT mingus_ensure_monthly_partitions('user_analytics', current_date, 4)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        created, 0,
        "the migration already made the current and next three months"
    );
    let created: i32 = sqlx::query_scalar(
        "SELECT mingus_ensure_monthly_partitions('user_analytics', current_date, 5)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(created, 1, "one more month is one more partition");
    let indexed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%(user_id, date)%'",
    )
    .bind(format!("user_analytics{}", first_of_month(4).format("_p%Y_%m")))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(indexed, 1, "a new partition inherits the parent's indexes");
}
