//! `subscription_changes`: every path that changes a subscription leaves one row, at the time the
//! change happened, naming who made it — Stripe events (at the event's `created`), the sweeps (at the
//! end they apply, or their clock) and local writes; and what revenue makes of a real Stripe life.

use chrono::{DateTime, Days, Duration, Utc};
use mingus_common::revenue;
use mingus_tests::JobEnv;
use mingus_tests::stripe::{ApiShape, SubscriptionState};
use mingus_worker::billing_sweeps::{run_renewals, run_trial_expiry};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::stripe_processing::{DAY, T, at, customer_of_new_user, send_sub};

type Row = (DateTime<Utc>, String, String, String);
/// A subscription written before the history existed: status, trial (start, end day), ended_at day.
type OldSubscription = (&'static str, Option<(i64, i64)>, Option<i64>);

async fn changes(env: &JobEnv, subscription: Uuid) -> Vec<Row> {
    sqlx::query_as(
        "SELECT changed_at, status::text, plan_tier::text, source::text FROM subscription_changes
         WHERE subscription_id = $1 ORDER BY id",
    )
    .bind(subscription)
    .fetch_all(&env.db.pool)
    .await
    .unwrap()
}

async fn local_subscription(
    env: &JobEnv,
    status: &str,
    period_end: DateTime<Utc>,
    trial_end: Option<DateTime<Utc>>,
) -> Uuid {
    let user = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
        .bind(user)
        .bind(format!("{user}@example.com"))
        .execute(&env.db.pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status, current_period_start,
             current_period_end, trial_start, trial_end, created_at)
         VALUES ($1, 'professional', 29.00, 'monthly', $2, $3 - interval '30 days', $3,
                 CASE WHEN $4::timestamptz IS NULL THEN NULL ELSE $3 - interval '30 days' END, $4,
                 $3 - interval '30 days')
         RETURNING id",
    )
    .bind(user)
    .bind(status)
    .bind(period_end)
    .bind(trial_end)
    .fetch_one(&env.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_sweeps_record_their_transitions_at_the_end_they_apply_once() {
    let env = JobEnv::new().await;
    let pool = &env.db.pool;
    let trial_end = at(T);
    let trial = local_subscription(&env, "trial", trial_end, Some(trial_end)).await;
    let overdue = local_subscription(&env, "active", at(T), None).await;
    // Touching a column the history does not follow leaves no row.
    sqlx::query(
        "UPDATE subscriptions SET updated_at = now(), stripe_price_id = 'price_x' WHERE id = $1",
    )
    .bind(trial)
    .execute(pool)
    .await
    .unwrap();

    let sweep_at = at(T + 2 * 3600);
    for _ in 0..2 {
        run_trial_expiry(pool, sweep_at).await.unwrap();
        run_renewals(pool, &env.config.stripe, sweep_at)
            .await
            .unwrap();
    }
    let rows = changes(&env, trial).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].1.as_str(), rows[0].3.as_str()), ("trial", "local"));
    assert_eq!(rows[0].0, trial_end - Duration::days(30), "at created_at");
    assert_eq!(
        (rows[1].0, rows[1].1.as_str(), rows[1].3.as_str()),
        (trial_end, "cancelled", "sweep:trial_ended"),
        "the trial ended at trial_end, not when the sweep noticed"
    );
    let rows = changes(&env, overdue).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[1].0, rows[1].1.as_str(), rows[1].3.as_str()),
        (sweep_at, "past_due", "sweep:overdue"),
        "the sweep's clock"
    );
    // Its grace period ends later: cancelled at grace_until.
    let grace: DateTime<Utc> =
        sqlx::query_scalar("SELECT grace_until FROM subscriptions WHERE id = $1")
            .bind(overdue)
            .fetch_one(pool)
            .await
            .unwrap();
    run_renewals(pool, &env.config.stripe, grace + Duration::hours(1))
        .await
        .unwrap();
    let rows = changes(&env, overdue).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        (rows[2].0, rows[2].1.as_str(), rows[2].3.as_str()),
        (grace, "cancelled", "sweep:grace_over")
    );
    // A plain update elsewhere (an operator's, a script's) is `local` at the time of the write.
    sqlx::query("UPDATE subscriptions SET plan_tier = 'executive', plan_price = 99 WHERE id = $1")
        .bind(trial)
        .execute(pool)
        .await
        .unwrap();
    let rows = changes(&env, trial).await;
    assert_eq!(
        (rows[2].2.as_str(), rows[2].3.as_str()),
        ("executive", "local")
    );
    assert!(rows[2].0 >= rows[1].0, "never before the previous change");
}

#[tokio::test]
async fn a_stripe_life_is_recorded_at_event_times_and_becomes_a_trial_a_conversion_and_a_churn() {
    let env = JobEnv::new().await;
    let shape = ApiShape::ALL[0];
    let user = customer_of_new_user(&env, shape, "cus_rev").await;
    let period = (T, T + 30 * DAY);
    let mut state = SubscriptionState::new("sub_rev", "cus_rev", "trialing", period);
    state.trial = Some((T, T + 14 * DAY));
    send_sub(
        &env,
        shape,
        "evt_r1",
        "customer.subscription.created",
        T + 10,
        &state,
    )
    .await
    .unwrap();
    state.status = "active";
    state.period = (T + 14 * DAY, T + 44 * DAY);
    send_sub(
        &env,
        shape,
        "evt_r2",
        "customer.subscription.updated",
        T + 14 * DAY,
        &state,
    )
    .await
    .unwrap();
    state.status = "canceled";
    state.ended_at = Some(T + 40 * DAY);
    send_sub(
        &env,
        shape,
        "evt_r3",
        "customer.subscription.deleted",
        T + 40 * DAY,
        &state,
    )
    .await
    .unwrap();

    let (subscription, price): (Uuid, Decimal) = sqlx::query_as(
        "SELECT id, plan_price FROM subscriptions WHERE stripe_subscription_id = 'sub_rev'",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    let rows = changes(&env, subscription).await;
    let seen: Vec<(DateTime<Utc>, &str, &str)> = rows
        .iter()
        .map(|r| (r.0, r.1.as_str(), r.3.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (at(T + 10), "trial", "stripe:evt_r1"),
            (at(T + 14 * DAY), "active", "stripe:evt_r2"),
            (at(T + 40 * DAY), "cancelled", "stripe:evt_r3"),
        ]
    );

    let (first, last) = (at(T).date_naive(), at(T + 45 * DAY).date_naive());
    revenue::compute(&env.db.pool, first, last).await.unwrap();
    let conversion_day = at(T + 14 * DAY).date_naive();
    let churn_day = at(T + 40 * DAY).date_naive();
    let facts: Vec<(chrono::NaiveDate, Decimal, Decimal, Decimal, i32)> = sqlx::query_as(
        "SELECT day, mrr, new_mrr, churned_mrr, customers FROM revenue_daily
         WHERE currency = 'USD' AND (new_mrr > 0 OR churned_mrr > 0) ORDER BY day",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(
        facts,
        [
            (conversion_day, price, price, Decimal::ZERO, 1),
            (churn_day, Decimal::ZERO, Decimal::ZERO, price, 0),
        ],
        "user {user}"
    );
    let trials: (i64, i64) = sqlx::query_as(
        "SELECT sum(trial_starts)::int8, sum(trial_conversions)::int8 FROM revenue_daily_tiers
         WHERE day BETWEEN $1 AND $2",
    )
    .bind(first)
    .bind(last)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(trials, (1, 1));
    let mrr_between: Decimal =
        sqlx::query_scalar("SELECT mrr FROM revenue_daily WHERE currency = 'USD' AND day = $1")
            .bind(conversion_day + Days::new(10))
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(mrr_between, price);
}

#[tokio::test]
async fn subscriptions_older_than_the_history_get_one_reconstructed_from_their_row() {
    let db = mingus_tests::TestDb::new().await;
    let pool = &db.pool;
    // Back to before the history existed, with subscriptions of every kind, then forward again.
    mingus_common::db::MIGRATOR
        .undo(pool, 20261101000080)
        .await
        .unwrap();
    let day = |d: i64| at(T + d * DAY);
    let user = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email) VALUES ($1, 'old@example.com')")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    let kinds: [OldSubscription; 5] = [
        ("active", None, None),
        ("active", Some((0, 14)), None),
        ("cancelled", Some((0, 14)), Some(14)),
        ("cancelled", None, Some(60)),
        ("trial", Some((3, 17)), None),
    ];
    let mut ids = Vec::new();
    for (status, trial, ended) in kinds {
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status, current_period_start,
                 current_period_end, trial_start, trial_end, ended_at, created_at)
             VALUES ($1, 'professional', 29, 'monthly', $2, $3, $3 + interval '30 days', $4, $5, $6, $3)
             RETURNING id",
        )
        .bind(user)
        .bind(status)
        .bind(day(0))
        .bind(trial.map(|t| day(t.0)))
        .bind(trial.map(|t| day(t.1)))
        .bind(ended.map(day))
        .fetch_one(pool)
        .await
        .unwrap();
        ids.push(id);
    }
    mingus_common::db::MIGRATOR.run(pool).await.unwrap();

    let env_rows = |id: Uuid| async move {
        let rows: Vec<(DateTime<Utc>, String, String)> = sqlx::query_as(
            "SELECT changed_at, status::text, source::text FROM subscription_changes
             WHERE subscription_id = $1 ORDER BY changed_at, id",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(at, status, source)| {
                assert_eq!(source, "reconstructed");
                (at, status)
            })
            .collect::<Vec<_>>()
    };
    let s = |d: i64, status: &str| (day(d), status.to_owned());
    assert_eq!(env_rows(ids[0]).await, [s(0, "active")]);
    assert_eq!(env_rows(ids[1]).await, [s(0, "trial"), s(14, "active")]);
    assert_eq!(
        env_rows(ids[2]).await,
        [s(0, "trial"), s(14, "cancelled")],
        "a trial that ended unpaid never counted"
    );
    assert_eq!(env_rows(ids[3]).await, [s(0, "active"), s(60, "cancelled")]);
    assert_eq!(env_rows(ids[4]).await, [s(3, "trial")]);
}

#[tokio::test]
async fn the_customer_page_shows_the_timeline_with_who_made_each_change() {
    use secrecy::ExposeSecret;
    let app = mingus_tests::TestApp::spawn().await;
    let pool = &app.db.pool;
    let user = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email) VALUES ($1, 'timeline@example.com')")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status, current_period_start,
             current_period_end, trial_start, trial_end, created_at)
         VALUES ($1, 'essentials', 10, 'monthly', 'trial', $2, $3, $2, $3, $2)",
    )
    .bind(user)
    .bind(at(T))
    .bind(at(T + 14 * DAY))
    .execute(pool)
    .await
    .unwrap();
    run_trial_expiry(pool, at(T + 15 * DAY)).await.unwrap();

    let token = app.config.admin_token.as_ref().unwrap().expose_secret();
    let page: serde_json::Value = app
        .client
        .get(app.url(&format!("/ops/customers/{user}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let timeline = page["timeline"].as_array().expect("a timeline");
    let seen: Vec<(&str, &str, &str)> = timeline
        .iter()
        .map(|t| {
            (
                t["status"].as_str().unwrap(),
                t["source"].as_str().unwrap(),
                t["plan_tier"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("cancelled", "sweep:trial_ended", "essentials"),
            ("trial", "local", "essentials")
        ],
        "newest first"
    );
    assert_eq!(
        timeline[0]["changed_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        at(T + 14 * DAY)
    );
    assert_eq!(timeline[0]["order_decision"], serde_json::Value::Null);
}
