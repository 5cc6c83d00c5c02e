//! A Stripe event whose job dies outside the handler's own record — here its last attempt outlives the
//! queue's timeout, waiting on the customer's lock — ends `failed` with the job's error, so operators find
//! it among the failed events ("replay all failed" includes it), instead of staying `received`.

use std::time::Duration;

use mingus_common::jobs::Envelope;
use mingus_common::jobs::catalog::ProcessStripeEvent;
use mingus_common::queue::Queue;
use mingus_tests::stripe::{self as fx, ApiShape, envelope, status_of, store};
use mingus_tests::wait::until;
use mingus_tests::{JobEnv, TestWorker};
use uuid::Uuid;

use super::T;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn an_event_whose_last_attempt_times_out_is_failed_with_the_error() {
    let env = JobEnv::with(&[("MINGUS_QUEUE_TIMEOUT_SECS", "stripe-events=1")]).await;
    let pool = &env.db.pool;
    let customer = fx::customer(
        ApiShape::Basil,
        "cus_stuck",
        Some("stuck@example.com"),
        None,
    );
    let event = envelope(
        ApiShape::Basil,
        "evt_stuck",
        "customer.created",
        T,
        customer,
    );
    assert!(store(pool, &event).await);

    // The event's transaction waits on this lock (the customer's), so the attempt outlives its 1 s
    // timeout whatever the machine's speed; its own failure record never runs.
    let mut lock = pool.begin().await.unwrap();
    mingus_common::db::advisory_xact_lock(&mut lock, "cus_stuck")
        .await
        .unwrap();
    let job_id = Uuid::now_v7();
    let first = Envelope::new(
        &ProcessStripeEvent {
            event_id: "evt_stuck".into(),
        },
        job_id,
    )
    .unwrap();
    let last = Envelope {
        attempt: first.max_attempts,
        ..first
    };
    env.enqueuer.push(&[last], None, None).await.unwrap();
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::StripeEvents]).await;
    crate::fixtures::dead_letter(pool, job_id).await;
    lock.rollback().await.unwrap();

    let error = until(LIMIT, "the event to be failed", || async {
        let (status, error): (String, Option<String>) =
            sqlx::query_as("SELECT status, last_error FROM stripe_events WHERE id = 'evt_stuck'")
                .fetch_one(pool)
                .await
                .unwrap();
        (status == "failed").then_some(error)
    })
    .await;
    let error = error.expect("the job's error");
    assert!(error.starts_with("gave up: timed out"), "{error}");
    assert_eq!(status_of(pool, "evt_stuck").await, "failed");
    worker.stop().await.unwrap();
}
