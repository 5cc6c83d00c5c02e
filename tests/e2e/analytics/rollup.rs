use chrono::{Datelike, Duration, Months, NaiveDate, Utc};
use mingus_bench::analytics_reference::{self as reference, Event, UserData};
use mingus_common::analytics::{Shard, rollup};
use mingus_tests::TestDb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use uuid::Uuid;

use super::{RandomUser, assert_matches_reference, insert, random_user};

fn month_start(months_ahead: u32) -> NaiveDate {
    let today = Utc::now().date_naive();
    NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap() + Months::new(months_ahead)
}

async fn roll_up_all(pool: &PgPool, date: NaiveDate, shards: u32) -> u64 {
    let mut written = 0;
    for shard in Shard::all(shards).unwrap() {
        written += rollup::roll_up(pool, date, shard)
            .await
            .unwrap()
            .rows_written;
    }
    written
}

/// The property test: for random users (zones from UTC−12 to UTC+14, invalid zones, no profile, joined
/// before, during or after the day) and random activity around a random day — a month's first or last
/// day (activity spans two partitions), a mid-month day, or a day two years ahead (default partitions) —
/// the set-based rollup, split into a random number of shards, equals the per-user computation.
#[tokio::test]
async fn the_rollup_equals_a_per_user_computation_on_random_data() {
    let db = TestDb::new().await;
    let mut users: Vec<RandomUser> = Vec::new();
    for seed in 0..8u64 {
        let mut rng = StdRng::seed_from_u64(0x5eed_0000 + seed);
        let date = match seed % 4 {
            0 => month_start(1),
            1 => month_start(1).pred_opt().unwrap(),
            2 => month_start(0) + Duration::days(rng.random_range(0..27)),
            _ => month_start(24) + Duration::days(rng.random_range(0..27)),
        };
        let fresh: Vec<RandomUser> = (0..rng.random_range(20..45))
            .map(|_| random_user(&mut rng, date))
            .collect();
        insert(&db.pool, &fresh).await;
        users.extend(fresh);
        let shards = rng.random_range(1..=5);
        roll_up_all(&db.pool, date, shards).await;
        assert_matches_reference(&db.pool, &users, date).await;
    }
}

#[tokio::test]
async fn rolling_up_a_day_twice_gives_the_same_rows_and_writes_nothing() {
    let db = TestDb::new().await;
    let date = month_start(0) + Duration::days(9);
    let mut rng = StdRng::seed_from_u64(42);
    let users: Vec<RandomUser> = (0..40).map(|_| random_user(&mut rng, date)).collect();
    insert(&db.pool, &users).await;
    let snapshot = |pool: PgPool| async move {
        sqlx::query_as::<_, (Uuid, Uuid, chrono::DateTime<Utc>, String)>(
            "SELECT id, user_id, created_at, row_to_json(a)::text FROM user_analytics a WHERE date = $1 ORDER BY user_id",
        )
        .bind(date)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let first_written = roll_up_all(&db.pool, date, 3).await;
    let first = snapshot(db.pool.clone()).await;
    assert_eq!(first_written as usize, first.len());
    assert!(!first.is_empty());
    let second_written = roll_up_all(&db.pool, date, 3).await;
    assert_eq!(second_written, 0, "unchanged rows are not rewritten");
    // A different split of the same day changes nothing either.
    assert_eq!(roll_up_all(&db.pool, date, 1).await, 0);
    assert_eq!(
        snapshot(db.pool.clone()).await,
        first,
        "same rows, same ids"
    );

    // New activity changes exactly that user's row on the next run.
    let user = &users[0].data;
    let (start, _) = reference::day_window(date, reference::zone(user.timezone.as_deref()));
    sqlx::query(
        "INSERT INTO activity_events (user_id, occurred_at, kind) VALUES ($1, $2, 'login')",
    )
    .bind(user.user_id)
    .bind(start + Duration::minutes(1))
    .execute(&db.pool)
    .await
    .unwrap();
    let existed = reference::compute(&user.clone(), date).is_some();
    assert_eq!(roll_up_all(&db.pool, date, 2).await, u64::from(existed));
}

#[tokio::test]
async fn a_shard_writes_only_its_users_and_the_shards_together_write_everyone() {
    let db = TestDb::new().await;
    let date = month_start(0) + Duration::days(3);
    let mut rng = StdRng::seed_from_u64(7);
    let users: Vec<RandomUser> = (0..60).map(|_| random_user(&mut rng, date)).collect();
    insert(&db.pool, &users).await;
    let shard = Shard::new(1, 3).unwrap();
    rollup::roll_up(&db.pool, date, shard).await.unwrap();
    let rows = reference::stored(&db.pool, date).await.unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|(id, _)| shard.contains(*id)));
    for other in [0, 2] {
        rollup::roll_up(&db.pool, date, Shard::new(other, 3).unwrap())
            .await
            .unwrap();
    }
    assert_matches_reference(&db.pool, &users, date).await;
}

fn quiet_user(created_at: chrono::DateTime<Utc>, timezone: Option<&str>) -> RandomUser {
    RandomUser {
        data: UserData {
            user_id: Uuid::new_v4(),
            created_at,
            timezone: timezone.map(str::to_owned),
            ..UserData::default()
        },
        has_profile: timezone.is_some(),
    }
}

/// A day without any activity still gives every existing user a row — zero counts, no averages — and
/// users who joined after the day (in their zone) none.
#[tokio::test]
async fn an_empty_day_gives_zero_rows_for_existing_users_and_none_for_later_ones() {
    let db = TestDb::new().await;
    let date = month_start(0) + Duration::days(14);
    let midnight = date.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let users = vec![
        quiet_user(midnight - Duration::days(100), Some("UTC")),
        quiet_user(midnight - Duration::days(1), None),
        // Joined at 22:30 or 23:30 local in Los Angeles (06:30 UTC the next day): that day is theirs.
        quiet_user(
            midnight + Duration::minutes(30 * 60 + 30),
            Some("America/Los_Angeles"),
        ),
        // Joined after the day ended in UTC.
        quiet_user(midnight + Duration::hours(25), Some("UTC")),
    ];
    insert(&db.pool, &users).await;
    assert_eq!(roll_up_all(&db.pool, date, 2).await, 3);
    let rows = reference::stored(&db.pool, date).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|(id, _)| *id != users[3].data.user_id));
    for (_, row) in &rows {
        assert_eq!(row.login_count, 0);
        assert_eq!(row.session_duration_minutes, 0);
        assert!(row.features_used.0.is_empty() && row.pages_visited.0.is_empty());
        assert_eq!(row.health_checkins_completed, 0);
        assert_eq!(row.average_mood_rating, None);
        assert_eq!(row.financial_health_score, None);
        assert_eq!(row.goals_progress_percentage, None);
    }
    assert_matches_reference(&db.pool, &users, date).await;
}

/// One instant, three users: it belongs to a different calendar day in each one's zone. The day is the
/// last of a month, so the UTC instant lies in the next month's partition.
#[tokio::test]
async fn each_user_is_rolled_up_over_the_day_of_their_own_zone() {
    let db = TestDb::new().await;
    let last_day = month_start(1).pred_opt().unwrap();
    let first_next = month_start(1);
    // 03:30 UTC on the 1st: still the last day in New York (22:30/23:30), already the 1st in UTC and Tokyo.
    let instant = first_next.and_hms_opt(3, 30, 0).unwrap().and_utc();
    let login = || Event {
        occurred_at: instant,
        kind: "login".into(),
        session_minutes: None,
        feature: None,
        page: None,
    };
    let long_ago = instant - Duration::days(400);
    let mut users = Vec::new();
    for zone in ["America/New_York", "UTC", "Asia/Tokyo"] {
        let mut user = quiet_user(long_ago, Some(zone));
        user.data.events = vec![login()];
        users.push(user);
    }
    insert(&db.pool, &users).await;
    for date in [last_day, first_next] {
        roll_up_all(&db.pool, date, 3).await;
        assert_matches_reference(&db.pool, &users, date).await;
    }
    let logins: Vec<(String, NaiveDate, i32)> = sqlx::query_as(
        "SELECT p.timezone, a.date, a.login_count FROM user_analytics a
         JOIN user_profiles p USING (user_id) WHERE a.login_count > 0 ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        logins,
        vec![
            ("America/New_York".to_owned(), last_day, 1),
            ("Asia/Tokyo".to_owned(), first_next, 1),
            ("UTC".to_owned(), first_next, 1),
        ]
    );
    let partition: String = sqlx::query_scalar(
        "SELECT tableoid::regclass::text FROM user_analytics WHERE date = $1 LIMIT 1",
    )
    .bind(last_day)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        partition,
        format!("user_analytics{}", last_day.format("_p%Y_%m"))
    );
}
