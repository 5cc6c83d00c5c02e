//! A stream delivered newest first to a running worker: nearly every event fails for a dependency that
//! has not arrived, at once, on every connection of the pool. Each failure is recorded on the attempt's
//! own connection (a second one from the pool deadlocked it until the 30 s acquire timeout) and parks
//! the event; the checkouts, delivered last, re-drive everything within seconds.

use std::time::{Duration, Instant};

use mingus_common::jobs::outbox;
use mingus_common::queue::Queue;
use mingus_common::stripe_api::store_event;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, envelope};
use mingus_tests::wait::{count, until};
use mingus_tests::{JobEnv, TestWorker};
use serde_json::Value;
use uuid::Uuid;

use super::{DAY, T, user};

const CUSTOMERS: usize = 40;

fn life(shape: ApiShape, n: usize, user_id: Uuid) -> Vec<Value> {
    let (cus, sub, inv) = (
        format!("cus_nf{n}"),
        format!("sub_nf{n}"),
        format!("in_nf{n}"),
    );
    let state = SubscriptionState::new(&sub, &cus, "incomplete", (T + 1, T + 1 + 30 * DAY));
    let active = SubscriptionState {
        status: "active",
        ..state.clone()
    };
    let e = |i: usize, kind: &str, at: i64, object: Value| {
        envelope(shape, &format!("evt_nf{n}_{i}"), kind, at, object)
    };
    vec![
        e(
            0,
            "checkout.session.completed",
            T,
            fx::checkout(shape, &cus, &user_id.to_string(), &sub),
        ),
        e(
            1,
            "customer.subscription.created",
            T + 1,
            fx::subscription(shape, &state),
        ),
        e(
            2,
            "invoice.paid",
            T + 2,
            fx::invoice(shape, &inv, &cus, &sub, 2000, Some(T + 2), 1),
        ),
        e(
            3,
            "customer.subscription.updated",
            T + 3,
            fx::subscription(shape, &active),
        ),
    ]
}

#[tokio::test]
async fn a_stream_delivered_newest_first_to_a_busy_worker_is_applied_within_seconds() {
    let shape = ApiShape::Basil;
    // Fewer connections than concurrent jobs, as in production (50 jobs, a pool of a few).
    let env = JobEnv::with(&[("DATABASE_MAX_CONNECTIONS", "4")]).await;
    let mut events = Vec::new();
    for n in 0..CUSTOMERS {
        let user_id = Uuid::new_v4();
        user(&env, user_id, &format!("nf{n}@example.com")).await;
        events.extend(life(shape, n, user_id));
    }
    events.sort_by_key(|e| std::cmp::Reverse(e["created"].as_i64()));
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::StripeEvents]).await;
    for event in &events {
        let mut tx = env.db.pool.begin().await.unwrap();
        let stored = store_event(&mut tx, event, env.config.stripe.mode)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        outbox::push_after_commit(&env.db.pool, &env.enqueuer, &[stored.envelope.unwrap()]).await;
    }
    let delivered = Instant::now();
    let processed = "SELECT count(*) FROM stripe_events WHERE status = 'processed'";
    let total = events.len() as i64;
    until(Duration::from_secs(60), "every event processed", || async {
        (count(&env.db.pool, processed).await == total).then_some(())
    })
    .await;
    let lag = delivered.elapsed();
    worker.stop().await.unwrap();
    assert!(
        lag < Duration::from_secs(10),
        "applied {lag:?} after the last delivery: some waited for a timeout or the backoff"
    );
    let active = "SELECT count(*) FROM subscriptions WHERE status = 'active'";
    assert_eq!(count(&env.db.pool, active).await, CUSTOMERS as i64);
    let paid = "SELECT count(*) FROM billing_history WHERE status = 'paid'";
    assert_eq!(count(&env.db.pool, paid).await, CUSTOMERS as i64);
}
