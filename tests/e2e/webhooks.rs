//! `POST /webhooks/stripe` over HTTP against the real PostgreSQL and Redis.

use std::time::{Duration, Instant};

use mingus_api::webhooks::signature::sign;
use mingus_common::jobs::Enqueuer;
use mingus_common::jobs::outbox;
use mingus_common::queue::Queue;
use mingus_tests::TestApp;
use mingus_tests::wait::count;
use serde_json::{Value, json};

const SECRET: &str = "whsec_test_secret";

fn event(id: &str, kind: &str, livemode: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "object": "event", "type": kind, "api_version": "2025-03-31.basil",
        "created": chrono::Utc::now().timestamp(), "livemode": livemode,
        "data": {"object": {"id": "sub_123", "object": "subscription"}}
    }))
    .unwrap()
}

fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex_encode(&sign(secret, timestamp, body))
    )
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn deliver(
    app: &TestApp,
    body: &[u8],
    header: Option<String>,
    content_type: &str,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", content_type)
        .body(body.to_vec());
    if let Some(header) = header {
        request = request.header("stripe-signature", header);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    if let Err(mismatch) = mingus_tests::openapi::contract().check(
        "POST",
        "/webhooks/stripe",
        status,
        content_type.as_deref(),
        &text,
    ) {
        panic!("response does not match /openapi.json: {mismatch}");
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn signed(app: &TestApp, body: &[u8]) -> (u16, Value) {
    deliver(
        app,
        body,
        Some(signature_header(
            SECRET,
            chrono::Utc::now().timestamp(),
            body,
        )),
        "application/json",
    )
    .await
}

/// Processing jobs waiting in the app's `stripe-events` queue.
async fn waiting_jobs(app: &TestApp) -> i64 {
    let enqueuer = Enqueuer::new(
        mingus_common::cache::connect(&app.config.redis)
            .await
            .unwrap(),
        app.redis_prefix.clone(),
    );
    redis::cmd("LLEN")
        .arg(enqueuer.keys(Queue::StripeEvents).active())
        .query_async(&mut enqueuer.connection())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_verified_event_is_stored_once_and_its_job_enqueued() {
    let app = TestApp::spawn().await;
    let body = event("evt_1", "customer.subscription.updated", false);
    let (status, reply) = signed(&app, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["duplicate"], false);
    let (kind, state, object, job): (String, String, String, uuid::Uuid) = sqlx::query_as(
        "SELECT type, status, object_id, job_id FROM stripe_events WHERE id = 'evt_1'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        (kind.as_str(), state.as_str(), object.as_str()),
        ("customer.subscription.updated", "received", "sub_123")
    );
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM job_outbox WHERE job_id = $1")
        .bind(job)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(staged, 1, "the job has its outbox row");
    assert_eq!(waiting_jobs(&app).await, 1);

    // Stripe redelivers: 200, nothing new.
    let (status, reply) = signed(&app, &body).await;
    assert_eq!((status, reply["duplicate"].as_bool()), (200, Some(true)));
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM stripe_events").await,
        1
    );
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM job_outbox").await,
        1
    );
    assert_eq!(waiting_jobs(&app).await, 1, "no second job");
}

#[tokio::test]
async fn bad_signatures_are_refused_with_400_and_store_nothing() {
    let app = TestApp::spawn().await;
    let body = event("evt_bad", "invoice.paid", false);
    let now = chrono::Utc::now().timestamp();
    let cases = [
        (None, "missing_signature"),
        (Some("garbage".to_owned()), "malformed_signature"),
        (
            Some(format!(
                "t={now},v0={}",
                hex_encode(&sign(SECRET, now, &body))
            )),
            "malformed_signature",
        ),
        (
            Some(signature_header("whsec_wrong", now, &body)),
            "invalid_signature",
        ),
        (
            Some(signature_header(SECRET, now - 301, &body)),
            "stale_timestamp",
        ),
        (
            Some(signature_header(SECRET, now + 86_400, &body)),
            "future_timestamp",
        ),
        (
            Some(signature_header(SECRET, now, b"{\"id\":\"evt_other\"}")),
            "invalid_signature",
        ),
    ];
    for (header, code) in cases {
        let (status, reply) = deliver(&app, &body, header.clone(), "application/json").await;
        assert_eq!(status, 400, "{header:?}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{header:?}");
    }
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM stripe_events").await,
        0
    );
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM job_outbox").await,
        0
    );
}

#[tokio::test]
async fn wrong_content_type_is_415_and_oversized_bodies_are_413() {
    let app = TestApp::spawn().await;
    let body = event("evt_ct", "invoice.paid", false);
    let header = signature_header(SECRET, chrono::Utc::now().timestamp(), &body);
    let (status, reply) = deliver(&app, &body, Some(header), "text/plain").await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let huge = vec![b' '; 1024 * 1024 + 10];
    let (status, reply) = deliver(&app, &huge, Some("t=1,v1=00".into()), "application/json").await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM stripe_events").await,
        0
    );
}

#[tokio::test]
async fn unparseable_bodies_and_other_mode_events_are_stored_but_not_processed() {
    let app = TestApp::spawn().await;
    let (status, reply) = signed(&app, b"{\"this is\": \"not an event\"}").await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("unparseable"))
    );
    let (raw,): (String,) =
        sqlx::query_as("SELECT raw_body FROM stripe_events WHERE status = 'unparseable'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(raw.contains("not an event"));

    let live = event("evt_live", "invoice.paid", true);
    let (status, reply) = signed(&app, &live).await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("quarantined"))
    );
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM stripe_events").await,
        2
    );
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM job_outbox").await,
        0,
        "neither is processed"
    );
}

/// Ids that cannot be stored as they are — with NUL (PostgreSQL refuses it; this once answered 503 for
/// ever, so Stripe retried for three days), or too long for the column (a cut merged two events that
/// share a prefix) — are kept whole as `unparseable` records under the digest of their bytes.
#[tokio::test]
async fn event_ids_that_cannot_be_stored_as_sent_are_kept_apart_as_unparseable() {
    let app = TestApp::spawn().await;
    let prefix = format!("evt_{}", "x".repeat(300));
    let bodies = [
        event("evt_with\u{0}nul", "invoice.paid", false),
        event(&format!("{prefix}1"), "invoice.paid", false),
        event(&format!("{prefix}2"), "invoice.paid", false),
    ];
    for body in &bodies {
        let (status, reply) = signed(&app, body).await;
        assert_eq!(
            (status, reply["status"].as_str()),
            (200, Some("unparseable")),
            "{reply}"
        );
        assert_eq!(reply["duplicate"], false, "{reply}");
        // A redelivery is the same record, not a new one.
        let (status, again) = signed(&app, body).await;
        assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)));
        assert_eq!(again["id"], reply["id"]);
    }
    assert_eq!(
        count(
            &app.db.pool,
            "SELECT count(*) FROM stripe_events WHERE status = 'unparseable'"
        )
        .await,
        3,
        "three records, none merged"
    );
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM job_outbox").await,
        0
    );
}

#[tokio::test]
async fn redis_down_still_answers_200_and_the_outbox_sweep_enqueues_later() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(&[("REDIS_URL", &format!("redis://127.0.0.1:{closed}"))]).await;
    let body = event("evt_no_redis", "invoice.paid", false);
    let started = Instant::now();
    let (status, reply) = signed(&app, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered quickly: {:?}",
        started.elapsed()
    );
    let job: uuid::Uuid = sqlx::query_scalar("SELECT job_id FROM job_outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();

    // Redis is back (the shared one): the sweep pushes the stored event's job.
    let redis = mingus_common::cache::connect(
        &mingus_tests::test_config(&app.db.url, &app.redis_prefix, &[]).redis,
    )
    .await
    .unwrap();
    let enqueuer = Enqueuer::new(redis, app.redis_prefix.clone());
    let report = outbox::sweep(&app.db.pool, &enqueuer, Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(report.revived, 1);
    let data: bool = redis::cmd("HEXISTS")
        .arg(enqueuer.keys(Queue::StripeEvents).data())
        .arg(uuid_task_id(job))
        .query_async(&mut enqueuer.connection())
        .await
        .unwrap();
    assert!(data, "the job is in Redis now");
}

fn uuid_task_id(job: uuid::Uuid) -> String {
    let envelope = mingus_common::jobs::Envelope::new(
        &mingus_common::jobs::catalog::ProcessStripeEvent {
            event_id: String::new(),
        },
        job,
    )
    .unwrap();
    envelope.task_id()
}

#[tokio::test]
async fn database_down_answers_503_so_stripe_retries() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(&[(
        "DATABASE_URL",
        &format!("postgres://postgres@127.0.0.1:{closed}/none"),
    )])
    .await;
    let body = event("evt_no_db", "invoice.paid", false);
    let started = Instant::now();
    let (status, reply) = signed(&app, &body).await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["error"]["code"], "unavailable");
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// Deliveries arriving together are written by one group commit: a burst of distinct events and
/// redeliveries of one event (some landing in the same batch) stores each event once, answers every
/// delivery 200, reports exactly one of the redeliveries as new, and enqueues one job per event.
#[tokio::test]
async fn concurrent_deliveries_are_group_committed_without_duplicates() {
    let app = TestApp::spawn().await;
    let distinct = 120;
    let mut bodies: Vec<Vec<u8>> = (0..distinct)
        .map(|n| event(&format!("evt_burst_{n}"), "invoice.paid", false))
        .collect();
    let repeated = event("evt_burst_same", "invoice.paid", false);
    bodies.extend(std::iter::repeat_n(repeated, 40));
    let mut set = tokio::task::JoinSet::new();
    for body in bodies {
        let (client, url) = (app.client.clone(), app.url("/webhooks/stripe"));
        set.spawn(async move {
            let header = signature_header(SECRET, chrono::Utc::now().timestamp(), &body);
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .header("stripe-signature", header)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        });
    }
    let replies = set.join_all().await;
    assert!(
        replies.iter().all(|(status, _)| *status == 200),
        "{:?}",
        replies.iter().find(|(status, _)| *status != 200)
    );
    let new_of_same = replies
        .iter()
        .filter(|(_, reply)| reply["id"] == "evt_burst_same" && reply["duplicate"] == false)
        .count();
    assert_eq!(new_of_same, 1, "exactly one redelivery is the first");
    assert!(
        replies
            .iter()
            .filter(|(_, reply)| reply["id"] != "evt_burst_same")
            .all(|(_, reply)| reply["duplicate"] == false)
    );
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM stripe_events").await,
        distinct + 1
    );
    assert_eq!(
        count(
            &app.db.pool,
            "SELECT count(*) FROM job_outbox o JOIN stripe_events e ON e.job_id = o.job_id"
        )
        .await,
        distinct + 1
    );
    assert_eq!(waiting_jobs(&app).await, distinct + 1, "one job per event");
}

/// The request id of the delivery (the client's `X-Request-Id`, or the one the API made) travels in the
/// job's envelope, so the worker's log of the job joins the request's; an id unfit to carry is not.
#[tokio::test]
async fn the_deliverys_request_id_travels_with_its_job() {
    let app = TestApp::spawn().await;
    let post = |id: &str, header: Option<&str>| {
        let body = event(id, "customer.subscription.updated", false);
        let mut request = app
            .client
            .post(app.url("/webhooks/stripe"))
            .header("content-type", "application/json")
            .header(
                "stripe-signature",
                signature_header(SECRET, chrono::Utc::now().timestamp(), &body),
            )
            .body(body);
        if let Some(header) = header {
            request = request.header("x-request-id", header);
        }
        request.send()
    };
    let pool = &app.db.pool;
    let carried = |id: &'static str| async move {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT o.args->>'request_id' FROM job_outbox o JOIN stripe_events e ON e.job_id = o.job_id
             WHERE e.id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
    };

    let given = post("evt_rid_1", Some("req-from-stripe-42")).await.unwrap();
    assert_eq!(given.status(), 200);
    assert_eq!(
        carried("evt_rid_1").await.as_deref(),
        Some("req-from-stripe-42")
    );

    let made = post("evt_rid_2", None).await.unwrap();
    assert_eq!(made.status(), 200);
    let echoed = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!echoed.is_empty());
    assert_eq!(
        carried("evt_rid_2").await,
        Some(echoed),
        "the id the API made"
    );

    let unfit = "x".repeat(65);
    let long = post("evt_rid_3", Some(&unfit)).await.unwrap();
    assert_eq!(long.status(), 200, "the delivery is still taken");
    assert_eq!(
        carried("evt_rid_3").await,
        None,
        "an id over 64 characters is not carried"
    );
}
