//! Unknown types, the other mode, events that cannot apply yet or ever, and the real worker.

use std::time::Duration;

use mingus_common::jobs::EnqueueOptions;
use mingus_common::jobs::catalog::ProcessStripeEvent;
use mingus_common::queue::Queue;
use mingus_tests::stripe::{
    self as fx, ApiShape, SubscriptionState, deliver, envelope, process, status_of, store,
};
use mingus_tests::wait::until;
use mingus_tests::{JobEnv, TestWorker};
use mingus_worker::context::JobError;
use mingus_worker::stripe::{Attempt, Outcome, process_event_at};
use serde_json::json;
use uuid::Uuid;

use super::{DAY, T, at, sub, user};

#[tokio::test]
async fn unknown_types_are_ignored_other_mode_events_quarantined_and_final_ones_skipped() {
    let env = JobEnv::new().await;
    let (pool, stripe) = (&env.db.pool, &env.config.stripe);
    // Stripe's own event fixture: a plan.created, which we do not handle.
    let mut plan_created = fx::fixture(ApiShape::Basil, "event");
    fx::set(
        &mut plan_created,
        "api_version",
        json!(ApiShape::Basil.api_version()),
    );
    assert!(store(pool, &plan_created).await);
    let id = plan_created["id"].as_str().unwrap();
    assert_eq!(
        process(pool, stripe, id, at(T)).await.unwrap(),
        Outcome::Ignored
    );
    assert_eq!(status_of(pool, id).await, "ignored");
    assert_eq!(
        process(pool, stripe, id, at(T)).await.unwrap(),
        Outcome::AlreadyFinal
    );
    assert!(
        !store(pool, &plan_created).await,
        "a redelivery stores nothing"
    );

    let state = SubscriptionState::new("sub_live", "cus_live", "active", (T, T + 30 * DAY));
    let mut live = envelope(
        ApiShape::Basil,
        "evt_live",
        "customer.subscription.created",
        T,
        fx::subscription(ApiShape::Basil, &state),
    );
    fx::set(&mut live, "livemode", json!(true));
    assert_eq!(
        deliver(pool, stripe, &live, at(T)).await.unwrap(),
        Outcome::Quarantined
    );
    assert_eq!(status_of(pool, "evt_live").await, "quarantined");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a quarantined event is not applied");

    sqlx::query("INSERT INTO stripe_events (id, raw_body, status) VALUES ('unparseable:x', 'not json', 'unparseable')")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        process(pool, stripe, "unparseable:x", at(T)).await.unwrap(),
        Outcome::AlreadyFinal
    );
}

#[tokio::test]
async fn events_whose_dependency_is_missing_retry_and_fail_on_their_last_attempt() {
    let env = JobEnv::new().await;
    let (pool, stripe) = (&env.db.pool, &env.config.stripe);
    let shape = ApiShape::PreBasil;
    let invoice = fx::invoice(shape, "in_early", "cus_late", "sub_late", 2000, Some(T), 1);
    let early = envelope(shape, "evt_early", "invoice.paid", T, invoice);
    let outcome = deliver(pool, stripe, &early, at(T)).await;
    assert!(
        matches!(outcome, Err(JobError::Retryable(_))),
        "{outcome:?}"
    );
    let (status, attempts, error): (String, i32, Option<String>) = sqlx::query_as(
        "SELECT status, attempts, last_error FROM stripe_events WHERE id = 'evt_early'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), attempts), ("received", 1));
    let error = error.unwrap();
    assert!(
        error.contains("subscription sub_late") && error.contains("not known yet"),
        "{error}"
    );
    let last = Attempt {
        number: 12,
        max_attempts: 12,
    };
    let outcome = process_event_at(pool, stripe, "evt_early", last, at(T)).await;
    assert!(matches!(outcome, Err(JobError::Retryable(_))));
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM stripe_events WHERE id = 'evt_early'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), attempts),
        ("failed", 2),
        "the last attempt marks it failed"
    );

    let state = SubscriptionState::new("sub_late", "cus_late", "active", (T, T + 30 * DAY));
    let created = envelope(
        shape,
        "evt_sub",
        "customer.subscription.created",
        T,
        fx::subscription(shape, &state),
    );
    let outcome = deliver(pool, stripe, &created, at(T)).await;
    assert!(
        matches!(&outcome, Err(JobError::Retryable(e)) if e.to_string().contains("not linked")),
        "{outcome:?}"
    );
    let user_id = Uuid::new_v4();
    user(&env, user_id, "late@example.com").await;
    let checkout = fx::checkout(shape, "cus_late", &user_id.to_string(), "sub_late");
    deliver(
        pool,
        stripe,
        &envelope(shape, "evt_co", "checkout.session.completed", T, checkout),
        at(T),
    )
    .await
    .unwrap();
    // Parked on its customer, the subscription was re-driven when the checkout linked it: its own
    // retry then finds nothing to do.
    assert_eq!(
        process(pool, stripe, "evt_sub", at(T)).await.unwrap(),
        Outcome::AlreadyFinal,
        "applied on the link's arrival"
    );
    assert_eq!(sub(&env, "sub_late").await.user_id, user_id);

    let mut unknown = SubscriptionState::new("sub_gold", "cus_late", "active", (T, T + 30 * DAY));
    unknown.lookup_key = "gold_monthly";
    let gold = envelope(
        shape,
        "evt_gold",
        "customer.subscription.created",
        T,
        fx::subscription(shape, &unknown),
    );
    let outcome = deliver(pool, stripe, &gold, at(T)).await;
    assert!(
        matches!(&outcome, Err(JobError::Permanent(e)) if e.to_string().contains("maps to no tier")),
        "{outcome:?}"
    );
    assert_eq!(
        status_of(pool, "evt_gold").await,
        "failed",
        "a permanent error fails at once"
    );
}

#[tokio::test]
async fn configured_price_ids_map_to_tiers() {
    let env = JobEnv::with(&[(
        "STRIPE_PRICE_TIERS",
        "price_1PgafmB7WZ01zgkW6dKueIc5=essentials",
    )])
    .await;
    let (pool, stripe) = (&env.db.pool, &env.config.stripe);
    let user_id = Uuid::new_v4();
    user(&env, user_id, "config@example.com").await;
    for shape in ApiShape::ALL {
        let (customer, sub_id) = (format!("cus_cfg_{shape:?}"), format!("sub_cfg_{shape:?}"));
        let checkout = fx::checkout(shape, &customer, &user_id.to_string(), &sub_id);
        deliver(
            pool,
            stripe,
            &envelope(
                shape,
                &format!("evt_co_{shape:?}"),
                "checkout.session.completed",
                T,
                checkout,
            ),
            at(T),
        )
        .await
        .unwrap();
        let mut state = SubscriptionState::new(&sub_id, &customer, "active", (T, T + 30 * DAY));
        state.lookup_key = "premium_plan";
        let event = envelope(
            shape,
            &format!("evt_cfg_{shape:?}"),
            "customer.subscription.created",
            T,
            fx::subscription(shape, &state),
        );
        deliver(pool, stripe, &event, at(T)).await.unwrap();
        assert_eq!(
            sub(&env, &sub_id).await.plan_tier,
            "essentials",
            "{shape:?}"
        );
    }
}

#[tokio::test]
async fn the_worker_applies_events_from_the_stripe_events_queue_in_any_order() {
    let env = JobEnv::new().await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::StripeEvents]).await;
    let shape = ApiShape::Basil;
    let user_id = Uuid::new_v4();
    user(&env, user_id, "worker@example.com").await;
    let state = SubscriptionState::new("sub_w", "cus_w", "active", (T, T + 30 * DAY));
    let events = [
        envelope(
            shape,
            "evt_w_sub",
            "customer.subscription.created",
            T + 1,
            fx::subscription(shape, &state),
        ),
        envelope(
            shape,
            "evt_w_co",
            "checkout.session.completed",
            T,
            fx::checkout(shape, "cus_w", &user_id.to_string(), "sub_w"),
        ),
    ];
    // The subscription goes first: it waits (retries) until the checkout has linked the customer.
    for event in &events {
        store(&env.db.pool, event).await;
        let job = ProcessStripeEvent {
            event_id: event["id"].as_str().unwrap().to_owned(),
        };
        env.enqueuer
            .enqueue(&job, EnqueueOptions::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    until(Duration::from_secs(30), "both events processed", || async {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE status = 'processed'")
                .fetch_one(&env.db.pool)
                .await
                .unwrap();
        (done == 2).then_some(())
    })
    .await;
    let row = sub(&env, "sub_w").await;
    assert_eq!((row.user_id, row.status.as_str()), (user_id, "active"));
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM stripe_events WHERE id = 'evt_w_sub'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert!(
        attempts >= 2,
        "the subscription event was retried until linked ({attempts})"
    );
    worker.stop().await.unwrap();
}
