//! Limits enforced where the row is written (issue 21): check-ins, active goals and team members written
//! straight into PostgreSQL under the application role (the frontend's Supabase path) are counted and
//! capped by triggers — a fifth check-in of an Essentials user, a fourth active goal, an eleventh team
//! member are refused with SQLSTATE 23514 and a readable detail, concurrently too; a downgrade keeps the
//! rows and refuses new ones; the SQL limit agrees with the Rust one.

use chrono::Utc;
use mingus_common::db::begin_as_user;
use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::{grant_plan, invalidate, send, user_on};

/// Runs `sql` (binding the user id, then `n`) as the user under the application role, committed.
async fn as_user(pool: &PgPool, user: Uuid, sql: &str, n: i32) -> Result<(), sqlx::Error> {
    let mut tx = begin_as_user(pool, user).await?;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(user)
        .bind(n)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

const CHECKIN: &str = "INSERT INTO user_health_checkins (user_id, checkin_date, stress_level, energy_level, mood_rating)
                       VALUES ($1, current_date - $2, 4, 5, 6)";
const GOAL: &str = "INSERT INTO goals (user_id, title) VALUES ($1, 'goal ' || $2)";

/// The refusal's constraint and its JSON detail.
fn refusal(err: &sqlx::Error) -> (String, Value) {
    let db = err.as_database_error().expect("a database error");
    assert_eq!(db.code().as_deref(), Some("23514"), "{err}");
    let pg = db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .unwrap();
    let detail = serde_json::from_str(pg.detail().expect("a detail")).unwrap();
    (db.constraint().unwrap_or_default().to_owned(), detail)
}

async fn metric(app: &TestApp, user: Uuid, name: &str) -> Value {
    let read = send(
        app,
        Method::GET,
        &format!("/v1/usage/{name}"),
        Some(&user_token(app, user)),
        None,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    read.body
}

#[tokio::test]
async fn a_fifth_checkin_in_the_period_of_an_essentials_user_is_refused() {
    let app = TestApp::spawn().await;
    let pool = &app.db.pool;
    let user = user_on(&app, Some("essentials")).await;
    for day in 1..=4 {
        as_user(pool, user, CHECKIN, day)
            .await
            .expect("within the plan");
    }
    let err = as_user(pool, user, CHECKIN, 5)
        .await
        .expect_err("the fifth");
    let (constraint, detail) = refusal(&err);
    assert_eq!(constraint, "health_checkins_per_month_limit");
    assert_eq!(detail["reason"], "usage_limit_exceeded");
    assert_eq!(
        (detail["limit"].as_i64(), detail["usage"].as_i64()),
        (Some(4), Some(4))
    );
    assert!(detail["resets_at"].is_string());
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM user_health_checkins WHERE user_id = $1")
            .bind(user)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(rows, 4, "the refused row was not written");

    // The API reads the same counter.
    let read = metric(&app, user, "health_checkins_per_month").await;
    assert_eq!(
        (read["usage"].as_i64(), read["access"].as_bool()),
        (Some(4), Some(false))
    );
    assert_eq!(read["reason"], "usage_limit_exceeded");

    // Rewriting an existing day (an upsert) is not a new check-in.
    let upsert = "INSERT INTO user_health_checkins (user_id, checkin_date, stress_level, energy_level, mood_rating)
                  VALUES ($1, current_date - $2, 2, 2, 2)
                  ON CONFLICT (user_id, checkin_date) DO UPDATE SET stress_level = EXCLUDED.stress_level";
    as_user(pool, user, upsert, 1)
        .await
        .expect("an update of day 1");

    // The server's own writes (owner role: fixtures, imports, operators) are not the user's and pass.
    crate::fixtures::checkin(pool, user, Utc::now().date_naive() - chrono::Days::new(9)).await;
}

#[tokio::test]
async fn two_checkins_at_the_limit_minus_one_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let pool = &app.db.pool;
    let user = user_on(&app, Some("essentials")).await;
    for day in 1..=3 {
        as_user(pool, user, CHECKIN, day).await.unwrap();
    }
    let (a, b) = tokio::join!(
        as_user(pool, user, CHECKIN, 10),
        as_user(pool, user, CHECKIN, 11)
    );
    assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "{a:?} {b:?}");
    let counted: i64 = sqlx::query_scalar(
        "SELECT used FROM usage_counters WHERE user_id = $1 AND metric = 'health_checkins_per_month'",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(counted, 4);
}

#[tokio::test]
async fn active_goals_are_capped_concurrently_and_a_downgrade_keeps_them() {
    let app = TestApp::spawn().await;
    let pool = &app.db.pool;
    let essentials = user_on(&app, Some("essentials")).await;
    as_user(pool, essentials, GOAL, 1).await.unwrap();
    as_user(pool, essentials, GOAL, 2).await.unwrap();
    // At limit − 1 (2 of 3), two concurrent inserts: exactly one wins.
    let (a, b) = tokio::join!(
        as_user(pool, essentials, GOAL, 3),
        as_user(pool, essentials, GOAL, 4)
    );
    assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "{a:?} {b:?}");
    let err = as_user(pool, essentials, GOAL, 5)
        .await
        .expect_err("a fourth");
    let (constraint, detail) = refusal(&err);
    assert_eq!(constraint, "goal_tracking_limit");
    assert_eq!(
        (detail["limit"].as_i64(), detail["usage"].as_i64()),
        (Some(3), Some(3))
    );
    // Closing a goal frees its place; reopening it takes one again.
    let complete = "UPDATE goals SET status = 'completed', completed_at = now(), progress_percentage = 100
                    WHERE user_id = $1 AND title = (SELECT min(title) FROM goals WHERE user_id = $1) AND $2 = $2";
    as_user(pool, essentials, complete, 0).await.unwrap();
    as_user(pool, essentials, GOAL, 6)
        .await
        .expect("under the cap again");
    let reopen = "UPDATE goals SET status = 'active', completed_at = NULL WHERE user_id = $1 AND status = 'completed' AND $2 = $2";
    let err = as_user(pool, essentials, reopen, 0)
        .await
        .expect_err("reopening a fourth");
    assert_eq!(refusal(&err).0, "goal_tracking_limit");

    // A Professional user with 5 active goals moves to Essentials (cap 3): the goals stay, a new one is
    // refused, the app sees usage 5 of 3 and `over_limit`, and under the cap it may add again.
    let user = user_on(&app, Some("professional")).await;
    for n in 1..=5 {
        as_user(pool, user, GOAL, n).await.unwrap();
    }
    sqlx::query(
        "UPDATE subscriptions SET plan_tier = 'essentials', plan_price = 10 WHERE user_id = $1",
    )
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
    grant_plan(&app, user).await;
    invalidate(&app, user).await;
    let err = as_user(pool, user, GOAL, 6)
        .await
        .expect_err("over the cap");
    assert_eq!(refusal(&err).1["usage"], 5);
    let read = metric(&app, user, "goal_tracking").await;
    assert_eq!(
        (
            read["usage"].as_i64(),
            read["limit"].as_i64(),
            read["over_limit"].as_bool()
        ),
        (Some(5), Some(3), Some(true))
    );
    assert_eq!(read["remaining"], 0);
    assert_eq!(read["access"], false);
    let abandon = "UPDATE goals SET status = 'abandoned', abandoned_at = now()
                   WHERE id IN (SELECT id FROM goals WHERE user_id = $1 AND status = 'active' ORDER BY title LIMIT 3)
                   AND $2 = $2";
    as_user(pool, user, abandon, 0).await.unwrap();
    as_user(pool, user, GOAL, 7)
        .await
        .expect("2 active of 3: one more fits");
    let read = metric(&app, user, "goal_tracking").await;
    assert_eq!(
        (read["usage"].as_i64(), read["over_limit"].as_bool()),
        (Some(3), Some(false))
    );
}

#[tokio::test]
async fn team_members_written_directly_are_capped_with_the_api_path() {
    let app = TestApp::spawn().await;
    let pool = &app.db.pool;
    let owner = user_on(&app, Some("executive")).await;
    // Eight pending members written by the owner role (not counted by the trigger), one through the API.
    sqlx::query(
        "INSERT INTO team_members (team_owner_id, member_email, role)
         SELECT $1, 'm' || g || '@example.com', 'viewer' FROM generate_series(1, 8) g",
    )
    .bind(owner)
    .execute(pool)
    .await
    .unwrap();
    let invited = super::team::invite(
        &app,
        &user_token(&app, owner),
        None,
        "api@example.com",
        "viewer",
    )
    .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    // 9 of 10: two direct inserts under the application role race for the last place.
    let member = "INSERT INTO team_members (team_owner_id, member_email, role)
                  VALUES ($1, 'direct' || $2 || '@example.com', 'viewer')";
    let (a, b) = tokio::join!(
        as_user(pool, owner, member, 1),
        as_user(pool, owner, member, 2)
    );
    assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "{a:?} {b:?}");
    let err = as_user(pool, owner, member, 3)
        .await
        .expect_err("an eleventh");
    let (constraint, detail) = refusal(&err);
    assert_eq!(constraint, "team_members_limit");
    assert_eq!(detail["limit"], 10);
    let api = super::team::invite(
        &app,
        &user_token(&app, owner),
        None,
        "late@example.com",
        "viewer",
    )
    .await;
    assert_eq!(api.code(), "team_member_limit_reached");
    let read = metric(&app, owner, "team_members").await;
    assert_eq!(
        (read["usage"].as_i64(), read["limit"].as_i64()),
        (Some(10), Some(10))
    );
}

#[tokio::test]
async fn the_sql_limit_agrees_with_the_rust_one() {
    let app = TestApp::spawn().await;
    let pool = &app.db.pool;
    let redis = mingus_common::cache::connect(&app.config.redis)
        .await
        .unwrap();
    let ent =
        mingus_common::entitlements::Entitlements::new(pool.clone(), redis, &app.redis_prefix);
    let promoted = user_on(&app, Some("essentials")).await;
    // An admin grant of advanced_ai_insights (cheapest tier with it: Professional, 50) and an unlimited
    // promotion of goal_setting, on Essentials.
    sqlx::query(
        "INSERT INTO feature_access (user_id, feature_name, access_level, granted_by, expires_at) VALUES
         ($1, 'advanced_ai_insights', 'premium', 'admin', now() + interval '1 day'),
         ($1, 'team_management', 'premium', 'promotion', now() - interval '1 day')
         ON CONFLICT (user_id, feature_name) DO UPDATE SET access_level = EXCLUDED.access_level,
             granted_by = EXCLUDED.granted_by, expires_at = EXCLUDED.expires_at",
    )
    .bind(promoted)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE feature_access SET access_level = 'unlimited', granted_by = 'promotion'
         WHERE user_id = $1 AND feature_name = 'goal_setting'",
    )
    .bind(promoted)
    .execute(pool)
    .await
    .unwrap();
    let users = [
        user_on(&app, None).await,
        user_on(&app, Some("essentials")).await,
        user_on(&app, Some("professional")).await,
        user_on(&app, Some("executive")).await,
        promoted,
    ];
    let now = Utc::now();
    let mut compared = 0;
    for user in users {
        let snapshot = ent.snapshot(user, now).await.unwrap();
        for (name, _, _) in mingus_common::entitlements::metrics::METRICS {
            let sql: Option<i64> = sqlx::query_scalar("SELECT mingus_metric_limit($1, $2, $3)")
                .bind(user)
                .bind(name)
                .bind(now)
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(sql, snapshot.limit_at(name, now), "{user} {name}");
            compared += 1;
        }
    }
    assert_eq!(compared, 35);
    let snapshot = ent.snapshot(promoted, now).await.unwrap();
    assert_eq!(snapshot.limit_at("ai_insights_per_month", now), Some(50));
    assert_eq!(snapshot.limit_at("goal_tracking", now), None);
    assert_eq!(
        snapshot.limit_at("team_members", now),
        Some(0),
        "expired grant"
    );
}
