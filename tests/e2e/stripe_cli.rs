//! `mingus-admin stripe …` (replay, fetch-undelivered, reconcile) against a local Stripe fixture server,
//! the real PostgreSQL and Redis: the library functions here, the binary and the nightly job in
//! `processes`.

mod processes;

use std::time::Duration;

use chrono::Utc;
use mingus_common::queue::Queue;
use mingus_common::stripe_api::{
    self, Drift, DriftKind, FetchOptions, ReconcileOptions, ReconcileReport, ReplayFilter,
    StripeApi, StripeApiError,
};
use mingus_tests::JobEnv;
use mingus_tests::stripe_server::scenarios::{
    DAY, api, event_row, queued, reconcile_fixture, stored_event, undelivered_events,
};
use mingus_tests::stripe_server::{FIXTURE_PRICE, StripeServer, TEST_KEY};
use mingus_tests::wait::count;
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn fetch_undelivered_stores_new_events_once_across_pages() {
    let env = JobEnv::new().await;
    let server = StripeServer::start().await;
    let now = Utc::now().timestamp();
    undelivered_events(&server, now);
    let options = FetchOptions {
        page_size: 2,
        ..FetchOptions::default()
    };
    let (pool, mode) = (&env.db.pool, env.config.stripe.mode);
    let report = stripe_api::fetch_undelivered(pool, &env.enqueuer, &api(&server), mode, options)
        .await
        .unwrap();
    assert_eq!(
        (report.fetched, report.new, report.quarantined, report.pages),
        (3, 3, 1, 2)
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.path, "/v1/events");
        assert_eq!(
            request.authorization.as_deref(),
            Some(&*format!("Bearer {TEST_KEY}"))
        );
        assert_eq!(request.param("delivery_success"), Some("false"));
        assert_eq!(request.param("limit"), Some("2"));
        let gte: i64 = request.param("created[gte]").unwrap().parse().unwrap();
        assert!(
            (gte - (now - 3 * DAY)).abs() <= 5,
            "3 days back by default: {gte}"
        );
        assert!(request.stripe_version.is_some());
    }
    assert_eq!(requests[0].param("starting_after"), None);
    assert_eq!(
        requests[1].param("starting_after"),
        Some("evt_undelivered_1")
    );

    // Stored as the ingest stores a delivery: the payload as sent, indexed fields, a staged job.
    let (status, attempts, _, job_id) = event_row(&env, "evt_undelivered_0").await;
    assert_eq!((status.as_str(), attempts), ("received", 0));
    let (payload, object_id): (Value, String) = sqlx::query_as(
        "SELECT payload, object_id FROM stripe_events WHERE id = 'evt_undelivered_0'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(object_id, "sub_fetch");
    assert_eq!(
        payload["data"]["object"]["items"]["data"][0]["price"]["id"],
        FIXTURE_PRICE
    );
    assert_eq!(event_row(&env, "evt_live").await.0, "quarantined");
    let jobs = queued(&env, Queue::StripeEvents).await;
    assert_eq!(
        jobs.len(),
        2,
        "one job per received event, none for the quarantined one"
    );
    assert!(
        jobs.iter()
            .any(|j| Some(j.job_id) == job_id && j.args["event_id"] == "evt_undelivered_0")
    );
    let outbox = "SELECT count(*) FROM job_outbox WHERE kind = 'stripe.process_event'";
    assert_eq!(count(pool, outbox).await, 2);

    // Again: the same events are listed, nothing is stored or staged twice.
    let again = stripe_api::fetch_undelivered(pool, &env.enqueuer, &api(&server), mode, options)
        .await
        .unwrap();
    assert_eq!((again.fetched, again.new), (3, 0));
    assert_eq!(count(pool, "SELECT count(*) FROM stripe_events").await, 3);
    assert_eq!(count(pool, outbox).await, 2);
    assert_eq!(queued(&env, Queue::StripeEvents).await.len(), 2);
}

fn drift_of<'a>(report: &'a ReconcileReport, subscription: &str) -> &'a Drift {
    let found = report.drift.iter().find(|d| d.subscription == subscription);
    found.unwrap_or_else(|| panic!("no drift for {subscription}: {:?}", report.drift))
}

#[tokio::test]
async fn reconcile_reports_drift_and_fix_stages_a_synthetic_event_that_processing_applies() {
    let tiers = format!("{FIXTURE_PRICE}=professional");
    let env = JobEnv::with(&[("STRIPE_PRICE_TIERS", &tiers)]).await;
    let server = StripeServer::start().await;
    reconcile_fixture(&env, &server).await;
    let (pool, mode) = (&env.db.pool, env.config.stripe.mode);
    let options = ReconcileOptions {
        page_size: 2,
        ..ReconcileOptions::default()
    };
    let report = stripe_api::reconcile(pool, &env.enqueuer, &api(&server), mode, options)
        .await
        .unwrap();
    assert_eq!(
        (
            report.checked,
            report.in_sync,
            report.ended_unknown,
            report.pages
        ),
        (5, 2, 1, 3)
    );
    assert_eq!(report.drift.len(), 2, "{:?}", report.drift);
    let drift = drift_of(&report, "sub_drift");
    let DriftKind::Fields(fields) = &drift.kind else {
        panic!("{drift}")
    };
    let fields: Vec<_> = fields
        .iter()
        .map(|f| (f.field, f.stripe.as_str(), f.local.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("status", "past_due", "active"),
            ("stripe_status", "past_due", "active")
        ]
    );
    assert_eq!(
        drift_of(&report, "sub_missing").kind,
        DriftKind::MissingLocally
    );
    assert_eq!(report.fixes_staged, 0);
    assert_eq!(
        count(pool, "SELECT count(*) FROM stripe_events").await,
        0,
        "a report changes nothing"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r.param("status") == Some("all") && r.authorization.is_some())
    );

    let fixed = stripe_api::reconcile(
        pool,
        &env.enqueuer,
        &api(&server),
        mode,
        ReconcileOptions {
            fix: true,
            ..options
        },
    )
    .await
    .unwrap();
    assert_eq!(fixed.fixes_staged, 2);
    let fix_id = drift_of(&fixed, "sub_drift").fix_event.clone().unwrap();
    assert!(fix_id.starts_with("reconcile:sub_drift:"), "{fix_id}");
    let (kind, status, payload, job_id): (String, String, Value, Uuid) =
        sqlx::query_as("SELECT type, status, payload, job_id FROM stripe_events WHERE id = $1")
            .bind(&fix_id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), status.as_str()),
        ("customer.subscription.updated", "received")
    );
    assert_eq!(payload["data"]["object"]["status"], "past_due");
    assert_eq!(payload["object"], "event");
    let staged = "SELECT count(*) FROM job_outbox WHERE kind = 'stripe.process_event'";
    assert_eq!(count(pool, staged).await, 2);
    let jobs = queued(&env, Queue::StripeEvents).await;
    assert!(
        jobs.iter()
            .any(|j| j.job_id == job_id && j.args == json!({"event_id": fix_id}))
    );

    // The normal processing applies the fetched state; afterwards both rows agree with Stripe.
    let attempt = mingus_worker::stripe::Attempt {
        number: 1,
        max_attempts: 12,
    };
    for drift in &fixed.drift {
        let id = drift.fix_event.as_deref().unwrap();
        mingus_worker::stripe::process_event_at(pool, &env.config.stripe, id, attempt, Utc::now())
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    let after = stripe_api::reconcile(pool, &env.enqueuer, &api(&server), mode, options)
        .await
        .unwrap();
    assert!(after.drift.is_empty(), "{:?}", after.drift);
    assert_eq!(after.in_sync, 4);
}

/// A filter on one criterion.
fn only(field: &str, value: &str) -> ReplayFilter {
    let value = Some(value.to_owned());
    match field {
        "id" => ReplayFilter {
            id: value,
            ..Default::default()
        },
        "status" => ReplayFilter {
            status: value,
            ..Default::default()
        },
        _ => ReplayFilter {
            kind: value,
            ..Default::default()
        },
    }
}

#[tokio::test]
async fn replay_by_id_status_and_type_resets_events_and_stages_fresh_jobs() {
    let env = JobEnv::new().await;
    stored_event(&env, "evt_a", "invoice.paid", "processed", 1).await;
    stored_event(&env, "evt_b", "customer.subscription.updated", "failed", 12).await;
    stored_event(&env, "evt_c", "invoice.paid", "failed", 3).await;
    stored_event(&env, "evt_d", "invoice.paid", "quarantined", 0).await;
    stored_event(&env, "unparseable:00", "", "unparseable", 0).await;
    let pool = &env.db.pool;
    let replay = |filter: ReplayFilter| {
        let env = &env;
        async move { stripe_api::replay(&env.db.pool, &env.enqueuer, &filter).await }
    };

    let by_id = replay(only("id", "evt_a")).await.unwrap();
    assert_eq!(by_id.replayed, 1);
    let (status, attempts, _, first_job) = event_row(&env, "evt_a").await;
    assert_eq!(
        (status.as_str(), attempts),
        ("received", 1),
        "attempts are kept as history"
    );

    let by_status = replay(only("status", "failed")).await.unwrap();
    assert_eq!(by_status.replayed, 2);
    let (status, attempts, last_error, _) = event_row(&env, "evt_b").await;
    assert_eq!(
        (status.as_str(), attempts, last_error),
        ("received", 12, None)
    );

    let by_type = replay(only("kind", "invoice.paid")).await.unwrap();
    assert_eq!(
        (by_type.replayed, by_type.skipped_protected),
        (2, 1),
        "evt_a and evt_c; evt_d is quarantined"
    );
    let (_, _, _, second_job) = event_row(&env, "evt_a").await;
    assert_ne!(first_job, second_job, "every replay has a fresh job id");
    assert_eq!(event_row(&env, "evt_d").await.0, "quarantined");

    let refused = replay(only("status", "quarantined")).await;
    assert!(refused.unwrap_err().to_string().contains("--force"));
    let everything = replay(ReplayFilter::default()).await;
    assert!(everything.unwrap_err().to_string().contains("--id"));
    let forced = replay(ReplayFilter {
        force: true,
        ..only("status", "quarantined")
    })
    .await
    .unwrap();
    assert_eq!(forced.replayed, 1);
    assert_eq!(event_row(&env, "evt_d").await.0, "received");
    assert_eq!(
        event_row(&env, "unparseable:00").await.0,
        "unparseable",
        "never matched"
    );

    // 1 + 2 + 2 + 1 replays: as many outbox rows and queued jobs, each with its own job id.
    let jobs = queued(&env, Queue::StripeEvents).await;
    assert_eq!(jobs.len(), 6);
    let mut ids: Vec<Uuid> = jobs.iter().map(|j| j.job_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM job_outbox WHERE kind = 'stripe.process_event'"
        )
        .await,
        6
    );
}

#[tokio::test]
async fn a_missing_key_a_hanging_stripe_and_api_errors_are_reported_clearly() {
    let env = JobEnv::new().await;
    let err = StripeApi::from_config(&env.config).unwrap_err();
    assert!(matches!(err, StripeApiError::MissingKey));
    assert!(err.to_string().contains("STRIPE_API_KEY"), "{err}");

    let server = StripeServer::start().await;
    let missing = api(&server)
        .retrieve_subscription("sub_nope")
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, StripeApiError::Api { status: 404, message } if message.contains("sub_nope")),
        "{missing}"
    );
    server.set_delay(Duration::from_secs(3));
    let slow = StripeApi::new(
        &server.base,
        &SecretString::from(TEST_KEY),
        Duration::from_millis(300),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = slow.list_subscriptions(None, 10).await.unwrap_err();
    assert!(matches!(err, StripeApiError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
