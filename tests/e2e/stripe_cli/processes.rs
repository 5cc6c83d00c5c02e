//! The Stripe operator commands as processes: the real `mingus-admin` binary, and the nightly
//! `billing.stripe_reconcile` job run by a worker.

use std::process::Output;
use std::time::Duration;

use chrono::Utc;
use mingus_common::jobs::EnqueueOptions;
use mingus_common::jobs::stripe_jobs::StripeReconcile;
use mingus_common::queue::Queue;
use mingus_tests::stripe_server::scenarios::{admin, reconcile_fixture, undelivered_events};
use mingus_tests::stripe_server::{StripeServer, TEST_KEY};
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
    assert_eq!(
        count(&keyless.db.pool, "SELECT count(*) FROM stripe_events").await,
        0
    );
}
