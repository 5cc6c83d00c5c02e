//! The synthetic data generator: realistic, deterministic per seed, and consistent with the rollup.

use chrono::{Datelike, NaiveDate, Utc};
use mingus_bench::analytics_reference as reference;
use mingus_common::analytics::{generate, rollup};
use mingus_tests::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

fn options(seed: i64) -> generate::Options {
    let today = Utc::now().date_naive();
    generate::Options {
        users: 400,
        days: 3,
        seed,
        // Inside the current month when possible, else the days before it (partitions get made).
        end: NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap()
            + chrono::Days::new(5),
        chunk_users: 150,
        parallel: 2,
    }
}

/// A fingerprint of everything generated.
async fn fingerprint(pool: &PgPool) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT count(*)::text || ':' || md5(string_agg(id::text || email || created_at::text, ',' ORDER BY id::text || email || created_at::text)) FROM users",
        "SELECT count(*)::text || ':' || md5(string_agg(user_id::text || occurred_at::text || kind || coalesce(feature, page, session_minutes::text, ''), ',' ORDER BY user_id::text || occurred_at::text || kind || coalesce(feature, page, session_minutes::text, ''))) FROM activity_events",
        "SELECT count(*)::text || ':' || md5(string_agg(user_id::text || checkin_date::text || stress_level, ',' ORDER BY user_id::text || checkin_date::text || stress_level)) FROM user_health_checkins",
        "SELECT count(*)::text || ':' || md5(string_agg(user_id::text || monthly_income::text || submitted_at::text, ',' ORDER BY user_id::text || monthly_income::text || submitted_at::text)) FROM financial_questionnaire_submissions",
        "SELECT count(*)::text || ':' || md5(string_agg(user_id::text || status || progress_percentage::text, ',' ORDER BY user_id::text || status || progress_percentage::text)) FROM goals",
    ] {
        out.push(sqlx::query_scalar(sql).fetch_one(pool).await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_generator_is_realistic_deterministic_and_refuses_a_used_seed() {
    let (a, b) = (TestDb::new().await, TestDb::new().await);
    let opts = options(11);
    let report = generate::generate(&a.pool, opts, |_| {}).await.unwrap();
    assert_eq!(report.users, 400);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM activity_events")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!((users as u64, events as u64), (report.users, report.events));
    // Between a quarter and a half of the users are active on a day, each with a handful of events.
    let per_user_day = report.events as f64 / (400.0 * 3.0);
    assert!(
        (1.0..8.0).contains(&per_user_day),
        "{per_user_day} events per user-day"
    );
    assert!(
        report.profiles > 360
            && report.questionnaires > 300
            && report.checkins > 50
            && report.goals > 300,
        "{report:?}"
    );
    let zones: i64 = sqlx::query_scalar("SELECT count(DISTINCT timezone) FROM user_profiles")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert!(zones >= 8, "a mix of zones: {zones}");
    let outside: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM activity_events e JOIN users u ON u.id = e.user_id WHERE e.occurred_at < u.created_at",
    )
    .fetch_one(&a.pool)
    .await
    .unwrap();
    assert_eq!(outside, 0, "no activity before a user joined");
    // Every event is in its month's partition, none in the default one.
    let in_default: i64 = sqlx::query_scalar("SELECT count(*) FROM activity_events_default")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(in_default, 0);

    // Same seed, other chunking and parallelism: the same data.
    let other = generate::Options {
        chunk_users: 97,
        parallel: 1,
        ..opts
    };
    generate::generate(&b.pool, other, |_| {}).await.unwrap();
    assert_eq!(fingerprint(&a.pool).await, fingerprint(&b.pool).await);

    let again = generate::generate(&a.pool, opts, |_| {}).await.unwrap_err();
    assert!(again.to_string().contains("another --seed"), "{again}");
}

/// On generated data, the set-based rollup and the naive per-user loop write the same rows.
#[tokio::test]
async fn on_generated_data_the_rollup_equals_the_naive_per_user_loop() {
    let db = TestDb::new().await;
    let opts = options(5);
    generate::generate(&db.pool, opts, |_| {}).await.unwrap();
    let date = opts.end;
    rollup::roll_up_day(&db.pool, date, 4, 2).await.unwrap();
    let set_based = reference::stored(&db.pool, date).await.unwrap();
    assert!(set_based.len() > 350);
    assert!(
        set_based
            .iter()
            .any(|(_, m)| m.login_count > 0 && m.financial_health_score.is_some())
    );
    sqlx::query("DELETE FROM user_analytics")
        .execute(&db.pool)
        .await
        .unwrap();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM users")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let written = reference::naive_roll_up(&db.pool, date, &ids)
        .await
        .unwrap();
    assert_eq!(written as usize, set_based.len());
    assert_eq!(reference::stored(&db.pool, date).await.unwrap(), set_based);
}
