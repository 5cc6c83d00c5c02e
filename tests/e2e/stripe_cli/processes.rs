//! The Stripe operator commands as processes: the real `mingus-admin` binary, and the nightly
//! `billing.stripe_reconcile` job run by a worker.

use std::process::Output;
use std::time::Duration;

use chrono::Utc;
use mingus_common::billing::drift;
use mingus_common::jobs::EnqueueOptions;
use mingus_common::jobs::outbox;
use mingus_common::jobs::stripe_jobs::StripeReconcile;
use mingus_common::queue::Queue;
use mingus_common::stripe_api::store_event;
use mingus_tests::stripe_server::scenarios::{
    admin, local_subscription, reconcile_fixture, undelivered_events,
};
use mingus_tests::stripe_server::{FIXTURE_PRICE, StripeServer, Sub, TEST_KEY, event};
use mingus_tests::wait::{count, until};
use mingus_tests::{JobEnv, TestWorker};

#[tokio::test]
async fn the_admin_binary_runs_the_stripe_commands() {
    let env = JobEnv::new().await;
    let server = StripeServer::start().await;
    undelivered_events(&server, Utc::now().timestamp());
    reconcile_fixture(&env, &server).await;
    let text = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();

    let no_key = admin(&env, &server, None, &["stripe", "reconcile"]).await;
    assert!(!no_key.status.success());
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("STRIPE_API_KEY"));
    assert!(
        server.requests().is_empty(),
        "nothing is sent without a key"
    );
    let too_far = admin(
        &env,
        &server,
        Some(TEST_KEY),
        &["stripe", "fetch-undelivered", "--since", "31d"],
    )
    .await;
    assert!(!too_far.status.success());

    let fetched = admin(
        &env,
        &server,
        Some(TEST_KEY),
        &["stripe", "fetch-undelivered", "--since", "2d"],
    )
    .await;
    assert!(fetched.status.success(), "{fetched:?}");
    assert!(
        text(&fetched).contains("fetched: 3\nnew: 3\n"),
        "{}",
        text(&fetched)
    );
    let request = &server.requests()[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(&*format!("Bearer {TEST_KEY}"))
    );
    assert_eq!(request.param("delivery_success"), Some("false"));

    let reconciled = admin(
        &env,
        &server,
        Some(TEST_KEY),
        &["stripe", "reconcile", "--fix"],
    )
    .await;
    assert!(reconciled.status.success(), "{reconciled:?}");
    let out = text(&reconciled);
    assert!(
        out.contains("drift sub_drift: status stripe=past_due local=active"),
        "{out}"
    );
    assert!(out.contains("drift sub_missing: missing locally"), "{out}");
    assert!(out.contains("fixes staged: 2"), "{out}");

    let replayed = admin(
        &env,
        &server,
        None,
        &["stripe", "replay", "--type", "invoice.paid"],
    )
    .await;
    assert!(replayed.status.success(), "{replayed:?}");
    let out = text(&replayed);
    assert!(
        out.contains("replayed: 1\n") && out.contains("use --force): 1"),
        "{out}"
    );
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM stripe_events").await,
        5
    );
}

/// Waits (bounded) for the ledger to show a finished reconcile run.
async fn reconcile_run_succeeded(env: &JobEnv) {
    let sql = "SELECT count(*) FROM job_runs WHERE kind = 'billing.stripe_reconcile' AND status = 'succeeded'";
    until(
        Duration::from_secs(30),
        "a succeeded reconcile run",
        || async { (count(&env.db.pool, sql).await == 1).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn the_nightly_job_reconciles_with_fixes_and_does_nothing_without_a_key() {
    let server = StripeServer::start().await;
    let keyed = JobEnv::with(&[
        ("STRIPE_API_KEY", TEST_KEY),
        ("STRIPE_API_BASE", &server.base),
    ])
    .await;
    reconcile_fixture(&keyed, &server).await;
    let worker = TestWorker::spawn(keyed.config.clone(), &[Queue::Billing]).await;
    let job = StripeReconcile::default();
    keyed
        .enqueuer
        .enqueue(&job, EnqueueOptions::default())
        .await
        .unwrap();
    reconcile_run_succeeded(&keyed).await;
    worker.stop().await.unwrap();
    let synthetic = "SELECT count(*) FROM stripe_events WHERE id LIKE 'reconcile:%'";
    assert_eq!(
        count(&keyed.db.pool, synthetic).await,
        2,
        "the nightly run fixes drift"
    );
    let reports = drift::latest(&keyed.db.pool).await.unwrap();
    let counts: Vec<(&str, i32)> = reports
        .iter()
        .map(|r| (r.source.as_str(), r.drift_count))
        .collect();
    assert_eq!(
        counts,
        [("local", 0), ("stripe", 2)],
        "both reports stored for /ops"
    );
    assert_eq!(reports[1].checked, 5);
    let seen = server.requests().len();

    let keyless = JobEnv::with(&[("STRIPE_API_BASE", &server.base)]).await;
    let worker = TestWorker::spawn(keyless.config.clone(), &[Queue::Billing]).await;
    keyless
        .enqueuer
        .enqueue(&job, EnqueueOptions::default())
        .await
        .unwrap();
    reconcile_run_succeeded(&keyless).await;
    worker.stop().await.unwrap();
    assert_eq!(server.requests().len(), seen, "no key: no call, no failure");
    let sources: Vec<String> = drift::latest(&keyless.db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.source)
        .collect();
    assert_eq!(sources, ["local"], "the local report needs no key");
    assert_eq!(
        count(&keyless.db.pool, "SELECT count(*) FROM stripe_events").await,
        0
    );
}

/// Stores an event as the ingest does and pushes its processing job.
async fn ingest(env: &JobEnv, event: &serde_json::Value) {
    let mut tx = env.db.pool.begin().await.unwrap();
    let stored = store_event(&mut tx, event, env.config.stripe.mode)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let envelope = stored.envelope.expect("a new event stages its job");
    outbox::push_after_commit(&env.db.pool, &env.enqueuer, &[envelope]).await;
}

async fn event_status(env: &JobEnv, id: &str) -> Option<(String, Option<String>)> {
    sqlx::query_as("SELECT status, order_decision FROM stripe_events WHERE id = $1")
        .bind(id)
        .fetch_optional(&env.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_same_second_pair_the_payloads_cannot_order_is_settled_by_fetching_the_subscription() {
    let server = StripeServer::start().await;
    let tiers = format!("{FIXTURE_PRICE}=professional");
    let env = JobEnv::with(&[
        ("STRIPE_API_KEY", TEST_KEY),
        ("STRIPE_API_BASE", &server.base),
        ("STRIPE_PRICE_TIERS", &tiers),
    ])
    .await;
    let end = Utc::now().timestamp() + 20 * 86_400;
    let state = |cancel_at_period_end| Sub {
        id: "sub_tie",
        customer: "cus_tie",
        status: "active",
        period: (end - 30 * 86_400, end),
        cancel_at_period_end,
    };
    // Stripe's truth: cancelling at period end. The two events of one second say both, with no
    // previous attributes, and the one saying "not cancelling" is processed last.
    server.add_subscription(state(true).basil());
    local_subscription(&env, "sub_tie", "cus_tie", "active", "active", end).await;
    let second = Utc::now().timestamp() - 3600;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::StripeEvents]).await;
    let pairs = [("evt_tie_a", true), ("evt_tie_b", false)];
    for (id, cancelling) in pairs {
        let object = state(cancelling).basil();
        ingest(
            &env,
            &event(id, "customer.subscription.updated", second, false, object),
        )
        .await;
        until(Duration::from_secs(30), "the event processed", || async {
            event_status(&env, id)
                .await
                .filter(|(status, _)| status == "processed")
        })
        .await;
    }
    let synthetic = "SELECT count(*) FROM stripe_events WHERE id LIKE 'reconcile:sub_tie:%' AND status = 'processed'";
    until(
        Duration::from_secs(30),
        "the refetched state applied",
        || async { (count(&env.db.pool, synthetic).await == 1).then_some(()) },
    )
    .await;
    worker.stop().await.unwrap();
    assert_eq!(
        event_status(&env, "evt_tie_b").await.unwrap().1.as_deref(),
        Some("same_second_refetched")
    );
    assert_eq!(
        event_status(&env, "evt_tie_a").await.unwrap().1.as_deref(),
        Some("newer")
    );
    let fetched: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(fetched, ["/v1/subscriptions/sub_tie"]);
    let cancelling: bool = sqlx::query_scalar(
        "SELECT cancel_at_period_end FROM subscriptions WHERE stripe_subscription_id = 'sub_tie'",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert!(
        cancelling,
        "Stripe's current state stands, not processing order"
    );
}
