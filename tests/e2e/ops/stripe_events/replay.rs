//! Replaying one event, every failed one, with Redis down (the outbox sweep pushes it), and the admin
//! token on every stripe-event route.

use std::sync::Arc;
use std::time::Duration;

use mingus_common::jobs::{Enqueuer, outbox};
use mingus_common::queue::Queue;
use mingus_tests::stripe::{self as fx, status_of};
use mingus_tests::wait::{count, until};
use mingus_tests::{TestApp, TestWorker, test_config};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    LIMIT, add_user, call, checkout, customer_created, deliver, deliver_raw, get, job_of,
    linked_customer, snapshot, wait_status,
};

#[tokio::test]
async fn a_failed_event_replayed_by_an_operator_is_processed_by_a_worker() {
    let app = TestApp::spawn().await;
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::StripeEvents]).await;
    let user_id = Uuid::new_v4();
    assert_eq!(
        deliver(&app, &checkout("evt_replay_one", user_id, "cus_replay")).await,
        "received"
    );
    wait_status(&app, "evt_replay_one", "failed").await;
    let first_job = job_of(&app, "evt_replay_one").await.unwrap();
    let detail = until(LIMIT, "the dead job in the ledger", || async {
        let detail = get(&app, "/ops/stripe-events/evt_replay_one").await;
        (detail["job"]["state"] == "dead").then_some(detail)
    })
    .await;
    assert_eq!(detail["attempts"], 1);
    let error = detail["last_error"].as_str().unwrap();
    assert!(error.contains("does not exist"), "{error}");
    assert!(
        detail["job"]["last_attempt"]["error"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    assert_eq!(detail["payload"]["type"], "checkout.session.completed");

    until(LIMIT, "the old job's dead letter", || async {
        let dead = count(
            &app.db.pool,
            &format!("SELECT count(*) FROM job_dead_letters WHERE job_id = '{first_job}'"),
        )
        .await;
        (dead == 1).then_some(())
    })
    .await;
    // The operator fixes the cause (the user now exists) and replays the event.
    add_user(&app, user_id).await;
    let (status, reply) = call(
        &app,
        Method::POST,
        "/ops/stripe-events/evt_replay_one/replay",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["replayed"], 1);
    assert_eq!(reply["skipped_protected"], 0);
    assert_eq!(reply["truncated"], false);
    assert_eq!(reply["redis_reachable"], true);
    assert!(reply.get("note").is_none());
    let second_job = job_of(&app, "evt_replay_one").await.unwrap();
    assert_eq!(reply["job_id"], second_job.to_string());
    assert_ne!(second_job, first_job, "a new processing job");
    let open_dead: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_dead_letters WHERE job_id = $1 AND retried_at IS NULL",
    )
    .bind(first_job)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(open_dead, 0, "the replay closes the old job's dead letter");

    wait_status(&app, "evt_replay_one", "processed").await;
    assert_eq!(
        linked_customer(&app, user_id).await.as_deref(),
        Some("cus_replay")
    );
    let detail = until(LIMIT, "the replayed job to succeed", || async {
        let detail = get(&app, "/ops/stripe-events/evt_replay_one").await;
        (detail["job"]["state"] == "succeeded").then_some(detail)
    })
    .await;
    assert_eq!(detail["last_error"], Value::Null);
    assert!(detail["processed_at"].is_string());
    assert_eq!(detail["attempts"], 2, "attempts are kept as history");
    assert_eq!(detail["job"]["job_id"], second_job.to_string());

    // A quarantined event is replayed only when forced, and processing quarantines it again.
    let mut live = customer_created("evt_replay_live", "cus_live");
    live["livemode"] = json!(true);
    assert_eq!(deliver(&app, &live).await, "quarantined");
    let (status, reply) = call(
        &app,
        Method::POST,
        "/ops/stripe-events/evt_replay_live/replay",
        Some(json!({ "force": true })),
    )
    .await;
    assert_eq!(
        (status, reply["replayed"].clone()),
        (StatusCode::ACCEPTED, json!(1)),
        "{reply}"
    );
    until(LIMIT, "the forced replay to run", || async {
        let detail = get(&app, "/ops/stripe-events/evt_replay_live").await;
        (detail["status"] == "quarantined" && detail["job"]["state"] == "succeeded").then_some(())
    })
    .await;
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn replaying_all_failed_events_reprocesses_every_one_and_reports_counts() {
    let app = TestApp::spawn().await;
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::StripeEvents]).await;
    let users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for (i, user) in users.iter().enumerate() {
        let event = checkout(&format!("evt_all_{i}"), *user, &format!("cus_all_{i}"));
        assert_eq!(deliver(&app, &event).await, "received");
    }
    assert_eq!(deliver_raw(&app, b"{}").await, "unparseable");
    for i in 0..3 {
        wait_status(&app, &format!("evt_all_{i}"), "failed").await;
    }
    let listed = get(&app, "/ops/stripe-events").await;
    assert_eq!(listed["counts"]["failed"], 3);

    // Nothing failed of this type: nothing replayed.
    let (status, reply) = call(
        &app,
        Method::POST,
        "/ops/stripe-events/replay",
        Some(json!({ "status": "failed", "type": "invoice.paid" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["replayed"], 0);
    assert_eq!(get(&app, "/ops/stripe-events").await["counts"]["failed"], 3);

    for user in &users {
        add_user(&app, *user).await;
    }
    // No body: status defaults to failed.
    let (status, reply) = call(&app, Method::POST, "/ops/stripe-events/replay", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(
        (
            reply["status"].clone(),
            reply["replayed"].clone(),
            reply["skipped_protected"].clone(),
            reply["truncated"].clone(),
            reply["redis_reachable"].clone()
        ),
        (
            json!("failed"),
            json!(3),
            json!(0),
            json!(false),
            json!(true)
        )
    );
    for (i, user) in users.iter().enumerate() {
        wait_status(&app, &format!("evt_all_{i}"), "processed").await;
        assert_eq!(
            linked_customer(&app, *user).await,
            Some(format!("cus_all_{i}"))
        );
    }
    let counts = get(&app, "/ops/stripe-events").await["counts"].clone();
    assert_eq!(
        counts,
        json!({"received": 0, "processed": 3, "ignored": 0, "failed": 0, "unparseable": 1, "quarantined": 0}),
        "the unparseable body was left alone"
    );
    let (status, reply) = call(
        &app,
        Method::POST,
        "/ops/stripe-events/replay",
        Some(json!({ "status": "failed" })),
    )
    .await;
    assert_eq!(
        (status, reply["replayed"].clone()),
        (StatusCode::ACCEPTED, json!(0))
    );
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn with_redis_down_a_replay_is_still_staged_and_the_outbox_sweep_pushes_it() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(&[("REDIS_URL", &format!("redis://127.0.0.1:{closed}"))]).await;
    let event = customer_created("evt_no_redis", "cus_no_redis");
    assert!(fx::store(&app.db.pool, &event).await);
    sqlx::query(
        "UPDATE stripe_events SET status = 'failed', attempts = 1, last_error = 'earlier failure' WHERE id = 'evt_no_redis'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();

    let started = std::time::Instant::now();
    let (status, reply) = call(
        &app,
        Method::POST,
        "/ops/stripe-events/evt_no_redis/replay",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply["replayed"], 1);
    assert_eq!(reply["redis_reachable"], false);
    assert!(reply["note"].as_str().unwrap().contains("outbox sweep"));
    assert_eq!(status_of(&app.db.pool, "evt_no_redis").await, "received");
    let job_id = job_of(&app, "evt_no_redis").await.unwrap();
    assert_eq!(reply["job_id"], job_id.to_string());
    assert_eq!(
        count(
            &app.db.pool,
            &format!(
                "SELECT count(*) FROM job_outbox WHERE job_id = '{job_id}' AND completed_at IS NULL"
            )
        )
        .await,
        1,
        "the job is staged in the outbox"
    );

    // Redis is back (the shared one): the sweep pushes the job and a worker processes the event.
    let config = Arc::new(test_config(&app.db.url, &app.redis_prefix, &[]));
    let redis = mingus_common::cache::connect(&config.redis).await.unwrap();
    let enqueuer = Enqueuer::new(redis, app.redis_prefix.clone());
    let report = outbox::sweep(&app.db.pool, &enqueuer, Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(report.revived, 1);
    let worker = TestWorker::spawn(config, &[Queue::StripeEvents]).await;
    wait_status(&app, "evt_no_redis", "processed").await;
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn stripe_event_routes_require_the_admin_token() {
    let app = TestApp::spawn().await;
    let event = customer_created("evt_auth", "cus_auth");
    assert!(fx::store(&app.db.pool, &event).await);
    sqlx::query("UPDATE stripe_events SET status = 'failed' WHERE id = 'evt_auth'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let before = snapshot(&app).await;
    for (method, path) in [
        (Method::GET, "/ops/stripe-events"),
        (Method::GET, "/ops/stripe-events/evt_auth"),
        (Method::POST, "/ops/stripe-events/evt_auth/replay"),
        (Method::POST, "/ops/stripe-events/replay"),
    ] {
        for auth in [None, Some("Bearer wrong-token")] {
            let mut request = app.client.request(method.clone(), app.url(path));
            if let Some(value) = auth {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing replayed");
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM job_outbox").await,
        0
    );
}
