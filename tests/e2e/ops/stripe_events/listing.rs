//! Listing, filtering and showing stored events; bad input refused with typed errors, changing nothing.

use mingus_tests::TestApp;
use mingus_tests::stripe::{self as fx, ApiShape};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{call, customer_created, deliver, deliver_raw, error_of, get, ids, job_of, snapshot};

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
        .bearer_auth(super::super::token(&app))
        .header("content-type", "text/plain")
        .body("status=failed")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(snapshot(&app).await, before, "nothing changed");
}
