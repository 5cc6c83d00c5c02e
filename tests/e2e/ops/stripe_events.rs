//! Stored Stripe events in the operator API: list and filter, one event with its payload and error,
//! replay one (processed again by a real worker), replay every failed one, bad input, Redis down, auth.
//! Events arrive through the real signed webhook unless a test is about something else.

use std::sync::Arc;
use std::time::Duration;

use mingus_api::webhooks::signature::sign;
use mingus_common::jobs::{Enqueuer, outbox};
use mingus_common::queue::Queue;
use mingus_tests::stripe::{self as fx, ApiShape, status_of};
use mingus_tests::wait::{count, until};
use mingus_tests::{TestApp, TestWorker, test_config};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{LIMIT, call, get};

const SECRET: &str = "whsec_test_secret";

/// POSTs a body to the webhook with a valid signature; returns the status it was stored with.
async fn deliver_raw(app: &TestApp, body: &[u8]) -> String {
    let now = chrono::Utc::now().timestamp();
    let signature: String = sign(SECRET, now, body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let response = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", format!("t={now},v1={signature}"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    reply["status"].as_str().unwrap().to_owned()
}

async fn deliver(app: &TestApp, event: &Value) -> String {
    deliver_raw(app, &serde_json::to_vec(event).unwrap()).await
}

/// A `checkout.session.completed` linking `customer` to `user_id`: processing fails permanently while
/// no such user exists, and succeeds once the user is there.
fn checkout(id: &str, user_id: Uuid, customer: &str) -> Value {
    let shape = ApiShape::Basil;
    let session = fx::checkout(shape, customer, &user_id.to_string(), "sub_ops");
    let now = chrono::Utc::now().timestamp();
    fx::envelope(shape, id, "checkout.session.completed", now, session)
}

fn customer_created(id: &str, customer: &str) -> Value {
    let shape = ApiShape::Basil;
    let object = fx::customer(shape, customer, Some("nobody@example.com"), None);
    fx::envelope(
        shape,
        id,
        "customer.created",
        chrono::Utc::now().timestamp(),
        object,
    )
}

async fn add_user(app: &TestApp, id: Uuid) {
    sqlx::query("INSERT INTO users (id, email, full_name) VALUES ($1, $2, 'Ops Test')")
        .bind(id)
        .bind(format!("{}@example.com", id.simple()))
        .execute(&app.db.pool)
        .await
        .unwrap();
}

async fn linked_customer(app: &TestApp, user_id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT stripe_customer_id FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

async fn wait_status(app: &TestApp, id: &str, status: &str) {
    until(LIMIT, &format!("{id} {status}"), || async {
        (status_of(&app.db.pool, id).await == status).then_some(())
    })
    .await;
}

async fn job_of(app: &TestApp, id: &str) -> Option<Uuid> {
    sqlx::query_scalar("SELECT job_id FROM stripe_events WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// Everything a refused request must leave alone.
async fn snapshot(app: &TestApp) -> Vec<(String, String, Option<Uuid>, i32, i64)> {
    sqlx::query_as(
        "SELECT id, status, job_id, attempts, (SELECT count(*) FROM job_outbox) FROM stripe_events ORDER BY id",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

fn ids(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect()
}

async fn error_of(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, String) {
    let (status, reply) = call(app, method, path, body).await;
    let code = reply["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status.as_u16(), code)
}

#[tokio::test]
async fn events_are_listed_newest_first_filtered_counted_and_shown_with_payload_and_error() {
    let app = TestApp::spawn().await;
    assert_eq!(
        deliver_raw(&app, b"{\"not\": \"an event\"}").await,
        "unparseable"
    );
    let mut live = customer_created("evt_ops_live", "cus_live");
    live["livemode"] = json!(true);
    assert_eq!(deliver(&app, &live).await, "quarantined");
    for id in ["evt_ops_a", "evt_ops_b", "evt_ops_c"] {
        assert_eq!(
            deliver(&app, &customer_created(id, &format!("cus_{id}"))).await,
            "received"
        );
    }
    let paid = fx::envelope(
        ApiShape::Basil,
        "evt_ops_paid",
        "invoice.paid",
        chrono::Utc::now().timestamp(),
        json!({"id": "in_1", "object": "invoice"}),
    );
    assert_eq!(deliver(&app, &paid).await, "received");
    // No worker runs here: give two of them the outcome processing would have.
    sqlx::query(
        "UPDATE stripe_events SET status = 'failed', attempts = 1, last_error = 'boom: no such price'
         WHERE id = 'evt_ops_b'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE stripe_events SET status = 'processed', attempts = 1, processed_at = now() WHERE id = 'evt_ops_a'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let unparseable: String =
        sqlx::query_scalar("SELECT id FROM stripe_events WHERE status = 'unparseable'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();

    let all = get(&app, "/ops/stripe-events").await;
    assert_eq!(
        ids(&all),
        [
            "evt_ops_paid",
            "evt_ops_c",
            "evt_ops_b",
            "evt_ops_a",
            "evt_ops_live",
            unparseable.as_str()
        ],
        "newest first: {all}"
    );
    assert_eq!(all["has_more"], false);
    assert_eq!(
        all["counts"],
        json!({"received": 2, "processed": 1, "ignored": 0, "failed": 1, "unparseable": 1, "quarantined": 1})
    );
    let failed_item = &all["items"][2];
    assert_eq!(failed_item["type"], "customer.created");
    assert_eq!(failed_item["status"], "failed");
    assert_eq!(failed_item["attempts"], 1);
    assert_eq!(failed_item["last_error"], "boom: no such price");
    assert_eq!(failed_item["api_version"], ApiShape::Basil.api_version());
    assert_eq!(failed_item["livemode"], false);
    assert!(failed_item["created"].is_string() && failed_item["received_at"].is_string());
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item.get("payload").is_none()),
        "the list carries no payloads"
    );

    let failed = get(&app, "/ops/stripe-events?status=failed").await;
    assert_eq!(ids(&failed), ["evt_ops_b"]);
    assert_eq!(
        failed["counts"], all["counts"],
        "counts ignore the status filter"
    );
    let attention = get(
        &app,
        "/ops/stripe-events?status=failed,unparseable,quarantined",
    )
    .await;
    assert_eq!(
        ids(&attention),
        ["evt_ops_b", "evt_ops_live", unparseable.as_str()]
    );
    let paid_only = get(&app, "/ops/stripe-events?type=invoice.paid").await;
    assert_eq!(ids(&paid_only), ["evt_ops_paid"]);
    assert_eq!(
        paid_only["counts"],
        json!({"received": 1, "processed": 0, "ignored": 0, "failed": 0, "unparseable": 0, "quarantined": 0}),
        "counts follow the type filter"
    );
    let none = get(&app, "/ops/stripe-events?status=failed&type=invoice.paid").await;
    assert_eq!(none["items"], json!([]));

    let first = get(&app, "/ops/stripe-events?per_page=4").await;
    assert_eq!(ids(&first), &ids(&all)[..4]);
    assert_eq!(first["has_more"], true);
    let second = get(&app, "/ops/stripe-events?per_page=4&page=2").await;
    assert_eq!(ids(&second), &ids(&all)[4..]);
    assert_eq!(second["has_more"], false);

    let detail = get(&app, "/ops/stripe-events/evt_ops_b").await;
    assert_eq!(detail["status"], "failed");
    assert_eq!(detail["last_error"], "boom: no such price");
    assert_eq!(detail["object_id"], "cus_evt_ops_b");
    assert_eq!(detail["payload"]["id"], "evt_ops_b");
    assert_eq!(detail["payload"]["data"]["object"]["id"], "cus_evt_ops_b");
    assert_eq!(detail["protected"], false);
    assert_eq!(detail["raw_body"], Value::Null);
    // Its processing job was staged by the ingest and never ran (no worker here).
    let job_id = job_of(&app, "evt_ops_b").await.unwrap();
    assert_eq!(detail["job"]["job_id"], job_id.to_string());
    assert_eq!(detail["job"]["state"], "pending");
    assert_eq!(detail["job"]["last_attempt"], Value::Null);

    let raw = get(&app, &format!("/ops/stripe-events/{unparseable}")).await;
    assert_eq!(raw["status"], "unparseable");
    assert_eq!(raw["protected"], true);
    assert_eq!(raw["payload"], Value::Null);
    assert!(raw["raw_body"].as_str().unwrap().contains("an event"));
    assert_eq!(raw["job"], Value::Null, "an unparseable body gets no job");
    let quarantined = get(&app, "/ops/stripe-events/evt_ops_live").await;
    assert_eq!(quarantined["livemode"], true);
    assert_eq!(quarantined["protected"], true);
}

#[tokio::test]
async fn bad_input_is_refused_with_typed_errors_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let mut live = customer_created("evt_bad_live", "cus_live");
    live["livemode"] = json!(true);
    assert_eq!(deliver(&app, &live).await, "quarantined");
    assert_eq!(deliver_raw(&app, b"[1, 2, 3]").await, "unparseable");
    assert_eq!(
        deliver(&app, &customer_created("evt_bad_ok", "cus_ok")).await,
        "received"
    );
    let unparseable: String =
        sqlx::query_scalar("SELECT id FROM stripe_events WHERE status = 'unparseable'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let before = snapshot(&app).await;
    let long_type = format!("/ops/stripe-events?type={}", "a".repeat(101));
    let get_cases: [(&str, u16, &str); 8] = [
        ("/ops/stripe-events?status=dead", 400, "invalid_status"),
        (
            "/ops/stripe-events?status=failed,nope",
            400,
            "invalid_status",
        ),
        ("/ops/stripe-events?type=invoice.*", 400, "invalid_type"),
        (&long_type, 400, "invalid_type"),
        ("/ops/stripe-events?per_page=0", 400, "invalid_pagination"),
        ("/ops/stripe-events/cus_123", 400, "invalid_event_id"),
        ("/ops/stripe-events/evt_a-b", 400, "invalid_event_id"),
        ("/ops/stripe-events/evt_missing", 404, "unknown_event"),
    ];
    for (path, status, code) in get_cases {
        assert_eq!(
            error_of(&app, Method::GET, path, None).await,
            (status, code.to_owned()),
            "GET {path}"
        );
    }
    let force = Some(json!({ "force": true }));
    let post_cases: [(String, Option<Value>, u16, &str); 10] = [
        (
            "/ops/stripe-events/evt_missing/replay".into(),
            None,
            404,
            "unknown_event",
        ),
        (
            "/ops/stripe-events/evt_missing/replay".into(),
            force.clone(),
            404,
            "unknown_event",
        ),
        (
            "/ops/stripe-events/cus_1/replay".into(),
            None,
            400,
            "invalid_event_id",
        ),
        (
            "/ops/stripe-events/evt_bad_live/replay".into(),
            None,
            409,
            "protected_status",
        ),
        (
            format!("/ops/stripe-events/{unparseable}/replay"),
            Some(json!({})),
            409,
            "protected_status",
        ),
        (
            "/ops/stripe-events/evt_bad_ok/replay".into(),
            Some(json!({ "forse": true })),
            422,
            "invalid_json",
        ),
        (
            "/ops/stripe-events/replay".into(),
            Some(json!({ "status": "dead" })),
            400,
            "invalid_status",
        ),
        (
            "/ops/stripe-events/replay".into(),
            Some(json!({ "status": "quarantined" })),
            409,
            "protected_status",
        ),
        (
            "/ops/stripe-events/replay".into(),
            Some(json!({ "type": "invoice paid" })),
            400,
            "invalid_type",
        ),
        (
            "/ops/stripe-events/replay".into(),
            Some(json!({ "status": 3 })),
            422,
            "invalid_json",
        ),
    ];
    for (path, body, status, code) in post_cases {
        assert_eq!(
            error_of(&app, Method::POST, &path, body.clone()).await,
            (status, code.to_owned()),
            "POST {path} {body:?}"
        );
    }
    let (_, reply) = call(
        &app,
        Method::POST,
        "/ops/stripe-events/evt_bad_live/replay",
        None,
    )
    .await;
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("livemode") && message.contains("force"),
        "says why and how: {message}"
    );
    let (_, reply) = call(
        &app,
        Method::POST,
        &format!("/ops/stripe-events/{unparseable}/replay"),
        None,
    )
    .await;
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not parse")
    );
    // A body that is not JSON at all.
    let response = app
        .client
        .post(app.url("/ops/stripe-events/replay"))
        .bearer_auth(super::token(&app))
        .header("content-type", "text/plain")
        .body("status=failed")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(snapshot(&app).await, before, "nothing changed");
}

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
