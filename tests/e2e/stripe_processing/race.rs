//! An event finished by someone else while we applied it (a concurrent replay): theirs stands and
//! everything our attempt wrote is rolled back — in both ways of applying an event (one server-side
//! call for a plain subscription state, the worker's transaction for a cancellation with its e-mail).

use std::time::Duration;

use mingus_tests::JobEnv;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, envelope, process, store};
use mingus_tests::wait::until;
use mingus_worker::stripe::Outcome;
use uuid::Uuid;

use super::{DAY, T, at, user};

#[tokio::test]
async fn a_plain_state_applied_in_one_call_rolls_back_when_a_replay_finished_the_event() {
    race("active", "customer.subscription.created").await;
}

#[tokio::test]
async fn a_cancellation_applied_in_a_transaction_rolls_back_when_a_replay_finished_the_event() {
    race("canceled", "customer.subscription.deleted").await;
}

/// Stores the event, lets another session mark it `processed` without committing, processes it (the
/// attempt applies, then waits on that row lock), commits the other session, and checks the outcome.
async fn race(status: &str, kind: &str) {
    let env = JobEnv::new().await;
    let (pool, stripe) = (&env.db.pool, &env.config.stripe);
    let user_id = Uuid::new_v4();
    user(&env, user_id, "race@example.com").await;
    sqlx::query("UPDATE users SET stripe_customer_id = 'cus_race' WHERE id = $1")
        .bind(user_id)
        .execute(pool)
        .await
        .unwrap();
    let state = SubscriptionState::new("sub_race", "cus_race", status, (T, T + 30 * DAY));
    let event = envelope(
        ApiShape::Basil,
        "evt_race",
        kind,
        T,
        fx::subscription(ApiShape::Basil, &state),
    );
    assert!(store(pool, &event).await);

    let mut other = pool.begin().await.unwrap();
    sqlx::query(
        "UPDATE stripe_events SET status = 'processed', processed_at = now() WHERE id = 'evt_race'",
    )
    .execute(&mut *other)
    .await
    .unwrap();
    let attempt = tokio::spawn({
        let (pool, stripe) = (pool.clone(), stripe.clone());
        async move { process(&pool, &stripe, "evt_race", at(T + 60)).await }
    });
    // The attempt has applied its state and waits for the other session's row lock on the event.
    until(
        Duration::from_secs(20),
        "the attempt waits on the event row",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
               AND wait_event_type = 'Lock' AND wait_event = 'transactionid'",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        },
    )
    .await;
    other.commit().await.unwrap();

    let outcome = attempt.await.unwrap().unwrap();
    assert_eq!(outcome, Outcome::AlreadyFinal);
    let (subscriptions, features, emails): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM subscriptions), (SELECT count(*) FROM feature_access),
                (SELECT count(*) FROM email_deliveries)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (subscriptions, features, emails),
        (0, 0, 0),
        "the attempt's writes are rolled back"
    );
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM stripe_events WHERE id = 'evt_race'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), attempts),
        ("processed", 0),
        "theirs stands"
    );
}
