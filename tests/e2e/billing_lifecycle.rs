//! The billing lifecycle sweeps across time (the clock is a parameter): trial reminders and expiry,
//! annual renewal reminders, period-end cancellations, past-due grace and its end — each change once,
//! however often a sweep runs — and how they meet Stripe's own events.

mod grants;
mod renewals;

use chrono::{DateTime, Utc};
use mingus_common::billing::access;
use mingus_tests::JobEnv;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, deliver, envelope};
use mingus_worker::billing_sweeps::{TrialSweepReport, run_trial_expiry};
use uuid::Uuid;

const T: i64 = 1_790_000_000;
const DAY: i64 = 86_400;

fn at(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap()
}

async fn new_user(env: &JobEnv) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
        .bind(id)
        .bind(format!("{id}@example.com"))
        .execute(&env.db.pool)
        .await
        .unwrap();
    id
}

/// A subscription without Stripe (as an admin or a promotion creates them), with its access granted.
async fn local(
    env: &JobEnv,
    status: &str,
    cycle: &str,
    period: (i64, i64),
    trial_end: Option<i64>,
    cancel_at_period_end: bool,
) -> (Uuid, Uuid) {
    let user_id = new_user(env).await;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status, current_period_start,
             current_period_end, trial_start, trial_end, cancel_at_period_end)
         VALUES ($1, 'professional', 29.00, $2, $3, $4, $5, CASE WHEN $6::timestamptz IS NULL THEN NULL ELSE $4 END, $6, $7)
         RETURNING id",
    )
    .bind(user_id)
    .bind(cycle)
    .bind(status)
    .bind(at(period.0))
    .bind(at(period.1))
    .bind(trial_end.map(at))
    .bind(cancel_at_period_end)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    let mut conn = env.db.pool.acquire().await.unwrap();
    access::recompute(&mut conn, user_id, at(period.0))
        .await
        .unwrap();
    (id, user_id)
}

/// A Stripe subscription (`sub_<n>` of `cus_<n>`, basil shape for even `n`) applied from a
/// `customer.subscription.created` event 30 days before `T`.
async fn from_stripe(
    env: &JobEnv,
    n: u32,
    status: &str,
    period: (i64, i64),
    trial: Option<(i64, i64)>,
) -> (String, Uuid) {
    let shape = if n.is_multiple_of(2) {
        ApiShape::Basil
    } else {
        ApiShape::PreBasil
    };
    let user_id = new_user(env).await;
    let (customer, sub_id) = (format!("cus_{n}"), format!("sub_{n}"));
    let (pool, stripe) = (&env.db.pool, &env.config.stripe);
    let checkout = fx::checkout(shape, &customer, &user_id.to_string(), &sub_id);
    let linked = envelope(
        shape,
        &format!("evt_co_{n}"),
        "checkout.session.completed",
        T - 40 * DAY,
        checkout,
    );
    deliver(pool, stripe, &linked, at(T - 40 * DAY))
        .await
        .unwrap();
    let state = SubscriptionState {
        trial,
        ..SubscriptionState::new(&sub_id, &customer, status, period)
    };
    let created = T - 30 * DAY;
    let event = envelope(
        shape,
        &format!("evt_sub_{n}"),
        "customer.subscription.created",
        created,
        fx::subscription(shape, &state),
    );
    deliver(pool, stripe, &event, at(created)).await.unwrap();
    (sub_id, user_id)
}

/// (status, ended_at, grace_until, period end) of a subscription by id or Stripe id.
async fn state(
    env: &JobEnv,
    key: &str,
) -> (
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
) {
    sqlx::query_as(
        "SELECT status, ended_at, grace_until, current_period_end FROM subscriptions
         WHERE id::text = $1 OR stripe_subscription_id = $1",
    )
    .bind(key)
    .fetch_one(&env.db.pool)
    .await
    .unwrap()
}

/// The one expiry of the user's subscription-granted feature rows.
async fn access_until(env: &JobEnv, user_id: Uuid) -> DateTime<Utc> {
    let expiries: Vec<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "SELECT DISTINCT expires_at FROM feature_access WHERE user_id = $1 AND granted_by = 'subscription'",
    )
    .bind(user_id)
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(expiries.len(), 1, "all rows expire together: {expiries:?}");
    expiries[0].expect("an expiry")
}

async fn email_keys(env: &JobEnv) -> Vec<String> {
    sqlx::query_scalar("SELECT dedupe_key FROM email_deliveries ORDER BY dedupe_key")
        .fetch_all(&env.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_local_trial_is_reminded_once_three_days_ahead_and_ends_at_trial_end() {
    let env = JobEnv::new().await;
    let pool = &env.db.pool;
    let (id, user_id) = local(
        &env,
        "trial",
        "monthly",
        (T - 11 * DAY, T + 3 * DAY),
        Some(T + 2 * DAY),
        false,
    )
    .await;
    let none = TrialSweepReport::default();
    assert_eq!(
        run_trial_expiry(pool, at(T - DAY - 1)).await.unwrap(),
        none,
        "more than three days ahead"
    );
    let reminded = TrialSweepReport {
        reminders: 1,
        ..TrialSweepReport::default()
    };
    assert_eq!(run_trial_expiry(pool, at(T - DAY)).await.unwrap(), reminded);
    assert_eq!(
        run_trial_expiry(pool, at(T)).await.unwrap(),
        none,
        "reminded once"
    );
    assert_eq!(
        email_keys(&env).await,
        [format!("trial_ending:{id}:2026-09-23")]
    );
    assert_eq!(access_until(&env, user_id).await, at(T + 2 * DAY));

    assert_eq!(
        run_trial_expiry(pool, at(T + 2 * DAY - 1)).await.unwrap(),
        none
    );
    let expired = TrialSweepReport {
        expired: 1,
        ..TrialSweepReport::default()
    };
    assert_eq!(
        run_trial_expiry(pool, at(T + 2 * DAY + 300)).await.unwrap(),
        expired
    );
    assert_eq!(
        run_trial_expiry(pool, at(T + 2 * DAY + 600)).await.unwrap(),
        none
    );
    let (status, ended_at, _, _) = state(&env, &id.to_string()).await;
    assert_eq!(
        (status.as_str(), ended_at),
        ("cancelled", Some(at(T + 2 * DAY)))
    );
    assert_eq!(
        access_until(&env, user_id).await,
        at(T + 2 * DAY),
        "no access after the trial"
    );
}

#[tokio::test]
async fn a_stripe_trial_is_reminded_once_between_its_event_and_the_sweep_and_left_to_stripe_at_its_end()
 {
    let env = JobEnv::new().await;
    let (pool, stripe) = (&env.db.pool, &env.config.stripe);
    let trial = (T - 30 * DAY, T + 2 * DAY);
    let (sub_id, _) = from_stripe(&env, 2, "trialing", trial, Some(trial)).await;
    let state_now = SubscriptionState {
        trial: Some(trial),
        ..SubscriptionState::new("sub_2", "cus_2", "trialing", trial)
    };
    let event = envelope(
        ApiShape::Basil,
        "evt_twe",
        "customer.subscription.trial_will_end",
        T - DAY,
        fx::subscription(ApiShape::Basil, &state_now),
    );
    deliver(pool, stripe, &event, at(T - DAY)).await.unwrap();
    assert_eq!(
        run_trial_expiry(pool, at(T - DAY + 300))
            .await
            .unwrap()
            .reminders,
        0,
        "Stripe's reminder counts"
    );
    assert_eq!(
        email_keys(&env).await,
        [format!("trial_ending:{sub_id}:2026-09-23")]
    );
    assert_eq!(
        run_trial_expiry(pool, at(T + 3 * DAY)).await.unwrap(),
        TrialSweepReport::default()
    );
    assert_eq!(
        state(&env, &sub_id).await.0,
        "trial",
        "Stripe converts, cancels or pauses it"
    );
}
