//! Named operators and the audit log: every `/ops` action leaves exactly one audit row naming who did
//! it; a viewer reads but cannot act, support cannot take admin actions (403, nothing changed, no row);
//! the admin token still works as break-glass and is audited so; a disabled operator is out at once;
//! the audit log is append-only; bad filters and ranges are typed 400s.

use std::collections::BTreeSet;

use mingus_api::admin_operators::{self, OperatorsCommand};
use mingus_api::ops::actions;
use mingus_api::ops::actor::OpsRole;
use mingus_api::ops::operators;
use mingus_common::jobs::outbox;
use mingus_common::queue::Queue;
use mingus_common::stripe_api::store_event;
use mingus_tests::stripe::{self as fx, ApiShape};
use mingus_tests::wait::count;
use mingus_tests::{TestApp, TestWorker};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{dies_once, enqueuer, token, wait_dead};

async fn operator(app: &TestApp, name: &str, role: OpsRole) -> String {
    operators::create(&app.db.pool, name, role).await.unwrap().1
}

/// A request with `bearer`; the status, the body and the response's request id.
async fn call_as(
    app: &TestApp,
    bearer: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, String) {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        request_id,
    )
}

async fn audit_rows(app: &TestApp) -> i64 {
    count(&app.db.pool, "SELECT count(*) FROM ops_audit_log").await
}

#[derive(Debug, sqlx::FromRow)]
struct AuditRow {
    actor: String,
    actor_role: String,
    action: String,
    target: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
    outcome: String,
    request_id: Option<String>,
    client_ip: Option<String>,
}

async fn last_row(app: &TestApp) -> AuditRow {
    sqlx::query_as(
        "SELECT actor, actor_role, action, target, before, after, outcome, request_id, host(client_ip) AS client_ip
         FROM ops_audit_log ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

/// A stored Stripe event marked failed (without processing it: the replay is what is under test).
async fn failed_event(app: &TestApp, id: &str) {
    let shape = ApiShape::Basil;
    let object = fx::customer(shape, "cus_audit", Some("nobody@example.com"), None);
    let event = fx::envelope(
        shape,
        id,
        "customer.created",
        chrono::Utc::now().timestamp(),
        object,
    );
    let mut conn = app.db.pool.acquire().await.unwrap();
    store_event(&mut conn, &event, app.config.stripe.mode)
        .await
        .unwrap();
    sqlx::query("UPDATE stripe_events SET status = 'failed', last_error = 'boom' WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap();
}

/// Two jobs that die in their first life, through a real worker.
async fn two_dead_jobs(app: &TestApp) -> (Uuid, Uuid) {
    let enqueuer = enqueuer(app).await;
    let mut envelopes = Vec::new();
    let ids = (Uuid::now_v7(), Uuid::now_v7());
    let mut tx = app.db.pool.begin().await.unwrap();
    for id in [ids.0, ids.1] {
        envelopes.push(outbox::stage(&mut tx, &dies_once(), id).await.unwrap());
    }
    tx.commit().await.unwrap();
    assert!(outbox::push_after_commit(&app.db.pool, &enqueuer, &envelopes).await);
    let worker = TestWorker::spawn(app.config.clone(), &[Queue::Bench]).await;
    wait_dead(app, 2).await;
    worker.stop().await.unwrap();
    ids
}

#[derive(Clone, Copy)]
struct Caller<'a> {
    bearer: &'a str,
    name: &'static str,
    role: &'static str,
}

/// One action of the tour: who calls what, and the audit row it must leave.
struct Step<'a> {
    caller: Caller<'a>,
    method: Method,
    path: String,
    body: Option<Value>,
    action: &'static str,
    target: String,
}

#[tokio::test]
async fn every_action_leaves_exactly_one_audit_row_naming_its_actor() {
    let app = TestApp::spawn().await;
    let admin = operator(&app, "ada", OpsRole::Admin).await;
    let support = operator(&app, "sam@example.com", OpsRole::Support).await;
    let (retried, deleted) = two_dead_jobs(&app).await;
    failed_event(&app, "evt_audit_one").await;
    failed_event(&app, "evt_audit_many").await;
    let schedule = super::get(&app, "/ops/schedules").await["schedules"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let break_glass = token(&app);
    assert_eq!(audit_rows(&app).await, 0);

    let as_admin = Caller {
        bearer: &admin,
        name: "ada",
        role: "admin",
    };
    let as_support = Caller {
        bearer: &support,
        name: "sam@example.com",
        role: "support",
    };
    let as_break_glass = Caller {
        bearer: &break_glass,
        name: "break-glass",
        role: "admin",
    };
    let step = |caller, method, path: String, body, action, target: String| Step {
        caller,
        method,
        path,
        body,
        action,
        target,
    };
    let steps = vec![
        step(
            as_admin,
            Method::POST,
            "/ops/queues/bench/pause".into(),
            None,
            "queue.pause",
            "bench".into(),
        ),
        step(
            as_break_glass,
            Method::POST,
            "/ops/queues/bench/resume".into(),
            None,
            "queue.resume",
            "bench".into(),
        ),
        step(
            as_support,
            Method::POST,
            format!("/ops/jobs/{retried}/retry"),
            None,
            "job.retry",
            retried.to_string(),
        ),
        step(
            as_admin,
            Method::DELETE,
            format!("/ops/jobs/{deleted}"),
            None,
            "job.delete",
            deleted.to_string(),
        ),
        step(
            as_admin,
            Method::POST,
            "/ops/dead/retry".into(),
            Some(json!({"queue": "bench"})),
            "dead.retry_all",
            "queue=bench kind=*".into(),
        ),
        step(
            as_admin,
            Method::POST,
            format!("/ops/schedules/{schedule}/run"),
            None,
            "schedule.run",
            schedule.clone(),
        ),
        step(
            as_support,
            Method::POST,
            "/ops/stripe-events/evt_audit_one/replay".into(),
            None,
            "stripe_event.replay",
            "evt_audit_one".into(),
        ),
        step(
            as_admin,
            Method::POST,
            "/ops/stripe-events/replay".into(),
            Some(json!({"status": "failed"})),
            "stripe_events.replay",
            "status=failed type=*".into(),
        ),
    ];
    let mut done = BTreeSet::new();
    for (i, step) in steps.into_iter().enumerate() {
        let Step {
            caller: Caller { bearer, name, role },
            method,
            path,
            body,
            action,
            target,
        } = step;
        let (status, reply, request_id) = call_as(&app, bearer, method.clone(), &path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {reply}");
        assert_eq!(
            audit_rows(&app).await,
            i as i64 + 1,
            "{method} {path} wrote exactly one row"
        );
        let row = last_row(&app).await;
        assert_eq!(
            (row.actor.as_str(), row.actor_role.as_str()),
            (name, role),
            "{path}"
        );
        assert_eq!(row.action, action);
        assert_eq!(row.target.as_deref(), Some(target.as_str()));
        assert_eq!(row.outcome, "ok", "{row:?}");
        assert_eq!(row.request_id.as_deref(), Some(request_id.as_str()));
        assert_eq!(row.client_ip.as_deref(), Some("127.0.0.1"));
        match action {
            "queue.pause" => {
                assert_eq!(row.before, Some(json!({"paused": false})));
                assert_eq!(row.after, Some(json!({"paused": true})));
            }
            "job.retry" => {
                assert_eq!(row.before.as_ref().unwrap()["generation"], 0);
                assert_eq!(row.after.as_ref().unwrap()["generation"], 1);
            }
            "job.delete" => {
                assert_eq!(row.before.as_ref().unwrap()["kind"], "bench.noop");
                assert_eq!(row.after, None);
            }
            "stripe_event.replay" => {
                assert_eq!(row.before, Some(json!({"status": "failed"})));
                assert_eq!(row.after.as_ref().unwrap()["replayed"], 1);
            }
            "stripe_events.replay" => assert_eq!(row.after.as_ref().unwrap()["replayed"], 1),
            _ => {}
        }
        done.insert(action);
    }
    // The customer page's actions have their own tour (`customer_actions`).
    let every: BTreeSet<&str> = actions::ALL
        .iter()
        .filter(|a| !a.route.starts_with("/ops/customers/"))
        .map(|a| a.name)
        .collect();
    assert_eq!(done, every, "every /ops action is covered");

    // Refused requests write nothing: a conflict, an unknown target, bad input.
    for (method, path) in [
        (Method::POST, format!("/ops/jobs/{retried}/retry")),
        (Method::DELETE, format!("/ops/jobs/{}", Uuid::now_v7())),
        (Method::POST, "/ops/queues/nope/pause".to_owned()),
        (
            Method::POST,
            "/ops/stripe-events/not-an-id/replay".to_owned(),
        ),
    ] {
        let (status, reply, _) = call_as(&app, &admin, method.clone(), &path, None).await;
        assert!(status.is_client_error(), "{method} {path}: {status}");
        assert!(reply["error"]["code"].is_string(), "{reply}");
    }
    assert_eq!(audit_rows(&app).await, 8);

    // The log reads back newest first, filtered by actor, and exports as JSON lines.
    let listed = super::get(&app, "/ops/audit?actor=ada").await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{listed}");
    assert_eq!(items[0]["action"], "stripe_events.replay");
    let today = chrono::Utc::now().date_naive();
    let response = app
        .client
        .get(app.url(&format!(
            "/ops/audit/export?from={today}&to={}",
            today.succ_opt().unwrap()
        )))
        .bearer_auth(&support)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".jsonl")
    );
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0]["action"], "queue.pause", "oldest first");
    assert_eq!(lines[1]["actor"], "break-glass");
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_act_and_support_cannot_take_admin_actions() {
    let app = TestApp::spawn().await;
    let viewer = operator(&app, "vera", OpsRole::Viewer).await;
    let support = operator(&app, "sam", OpsRole::Support).await;
    failed_event(&app, "evt_viewer").await;
    for path in [
        "/ops/queues",
        "/ops/dead",
        "/ops/audit",
        "/ops/stripe-events",
    ] {
        let (status, body, _) = call_as(&app, &viewer, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    for action in actions::ALL {
        let path = action
            .route
            .replace("{queue}", "bench")
            .replace("{job_id}", &Uuid::now_v7().to_string())
            .replace("{name}", "outbox_sweep")
            .replace("{id}", "evt_viewer");
        let method = Method::from_bytes(action.method.as_bytes()).unwrap();
        let body = (action.method == "POST").then(|| json!({}));
        let mut callers = vec![("vera", &viewer)];
        if action.role == OpsRole::Admin {
            callers.push(("sam", &support));
        }
        for (name, bearer) in callers {
            let (status, reply, _) =
                call_as(&app, bearer, method.clone(), &path, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{name} {method} {path}: {reply}"
            );
            assert_eq!(reply["error"]["code"], "forbidden_role", "{reply}");
            assert!(
                reply["error"]["message"].as_str().unwrap().contains(name),
                "{reply}"
            );
        }
    }
    // Nothing changed, nothing recorded.
    assert_eq!(audit_rows(&app).await, 0);
    assert_eq!(super::bench(&app).await["paused"], false);
    assert_eq!(
        mingus_tests::stripe::status_of(&app.db.pool, "evt_viewer").await,
        "failed"
    );
}

#[tokio::test]
async fn an_operator_signs_in_with_a_session_and_disabling_them_ends_it_at_once() {
    let app = TestApp::spawn().await;
    let token = operator(&app, "olga", OpsRole::Support).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(app.url("/ops/login"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    let session = cookie.split(';').next().unwrap().to_owned();
    assert!(session.starts_with("mingus_ops=s1."), "{cookie}");
    assert!(!cookie.contains(&token), "the cookie never holds the token");
    let page = client
        .get(app.url("/ops"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"data-role="support""#) && html.contains("olga"));

    let config = app.config.clone();
    let config = &*config;
    admin_operators::execute(
        OperatorsCommand::Disable {
            name: "olga".into(),
        },
        config,
    )
    .await
    .unwrap();
    let row = last_row(&app).await;
    assert_eq!(
        (row.actor.as_str(), row.action.as_str()),
        ("mingus-admin", "operator.disable")
    );
    assert_eq!(row.target.as_deref(), Some("olga"));

    let (status, body, _) = call_as(&app, &token, Method::GET, "/ops/queues", None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("unauthorized"))
    );
    let queues = client
        .get(app.url("/ops/queues"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(queues.status(), StatusCode::UNAUTHORIZED);
    let again = client
        .post(app.url("/ops/login"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    // The CLI's create: the operator exists with its role, and the change is audited as mingus-admin.
    admin_operators::execute(
        OperatorsCommand::Create {
            name: "newbie".into(),
            role: OpsRole::Viewer,
        },
        config,
    )
    .await
    .unwrap();
    let row = last_row(&app).await;
    assert_eq!(
        (row.actor.as_str(), row.action.as_str()),
        ("mingus-admin", "operator.create")
    );
    assert_eq!(row.after.unwrap()["role"], "viewer");
    let listed = operators::list(&app.db.pool).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|o| o.name == "newbie" && o.role == "viewer" && o.disabled_at.is_none())
    );
    // Disabling an unknown name is an error, not a silent success.
    let missing = admin_operators::execute(
        OperatorsCommand::Disable {
            name: "nobody".into(),
        },
        config,
    )
    .await;
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("no operator named")
    );
}

#[tokio::test]
async fn the_audit_log_refuses_update_delete_and_truncate() {
    let app = TestApp::spawn().await;
    let (status, _, _) = call_as(
        &app,
        &token(&app),
        Method::POST,
        "/ops/queues/bench/pause",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for statement in [
        "UPDATE ops_audit_log SET actor = 'someone-else'",
        "DELETE FROM ops_audit_log",
        "TRUNCATE ops_audit_log",
    ] {
        let err = sqlx::raw_sql(statement)
            .execute(&app.db.pool)
            .await
            .expect_err(statement);
        let db = err.as_database_error().unwrap();
        assert_eq!(db.code().as_deref(), Some("42501"), "{statement}: {err}");
        assert!(db.message().contains("append-only"), "{err}");
    }
    assert_eq!(audit_rows(&app).await, 1);
    assert_eq!(last_row(&app).await.actor, "break-glass");
}

#[tokio::test]
async fn bad_audit_queries_and_bad_operator_tokens_are_typed_4xx() {
    let app = TestApp::spawn().await;
    let admin = token(&app);
    for (path, code) in [
        ("/ops/audit?from=yesterday", "invalid_time"),
        ("/ops/audit?from=2026-12-02&to=2026-12-01", "invalid_range"),
        ("/ops/audit?per_page=0", "invalid_pagination"),
        (
            &*format!("/ops/audit?actor={}", "a".repeat(101)),
            "invalid_filter",
        ),
        ("/ops/audit/export", "invalid_range"),
        (
            "/ops/audit/export?from=2024-01-01&to=2026-01-01",
            "invalid_range",
        ),
        (
            "/ops/audit/export?from=2026-01-01&to=2026-13-01",
            "invalid_time",
        ),
    ] {
        let (status, body, _) = call_as(&app, &admin, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
    // A well-formed operator token nobody holds, and a malformed one: 401, like a wrong admin token.
    let unknown = format!("mop_{}", "ab".repeat(32));
    for bearer in [unknown.as_str(), "mop_short"] {
        let (status, body, _) = call_as(&app, bearer, Method::GET, "/ops/queues", None).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (StatusCode::UNAUTHORIZED, json!("unauthorized"))
        );
    }
    // Creating operators: bad names and duplicates are refused with a reason.
    let bad = operators::create(&app.db.pool, "Break Glass", OpsRole::Admin).await;
    assert!(bad.unwrap_err().to_string().contains("operator name"));
    operators::create(&app.db.pool, "dup", OpsRole::Viewer)
        .await
        .unwrap();
    let dup = operators::create(&app.db.pool, "dup", OpsRole::Viewer).await;
    assert!(dup.unwrap_err().to_string().contains("exists"));
    assert_eq!(audit_rows(&app).await, 0);
}

#[tokio::test]
async fn an_identity_proxy_names_the_operator_only_from_its_own_address() {
    let proxied = [
        ("MINGUS_OPS_PROXY_USER_HEADER", "X-Forwarded-Email"),
        ("MINGUS_OPS_PROXY_ADDRS", "127.0.0.1/32"),
    ];
    let app = TestApp::spawn_with(&proxied).await;
    operator(&app, "ada@example.com", OpsRole::Admin).await;
    let as_proxy = |person: &str, path: &str, csrf: bool| {
        let mut request = app
            .client
            .post(app.url(path))
            .header("x-forwarded-email", person);
        if csrf {
            request = request.header("x-mingus-ops", "1");
        }
        request.send()
    };
    let paused = as_proxy("Ada@Example.com", "/ops/queues/bench/pause", true)
        .await
        .unwrap();
    assert_eq!(paused.status(), StatusCode::OK);
    let row = last_row(&app).await;
    assert_eq!(
        (row.actor.as_str(), row.action.as_str()),
        ("ada@example.com", "queue.pause")
    );
    // Browser traffic: a change without the CSRF header is refused, like a cookie session's.
    let no_csrf = as_proxy("ada@example.com", "/ops/queues/bench/resume", false)
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    // Someone the proxy knows but we do not: 401, nothing done.
    let stranger = as_proxy("eve@example.com", "/ops/queues/bench/resume", true)
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(audit_rows(&app).await, 1);

    // The same header from a peer that is not the proxy is not believed, nor is X-Forwarded-For.
    let elsewhere = TestApp::spawn_with(&[
        ("MINGUS_OPS_PROXY_USER_HEADER", "X-Forwarded-Email"),
        ("MINGUS_OPS_PROXY_ADDRS", "10.9.9.9/32"),
        ("MINGUS_TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    operator(&elsewhere, "ada@example.com", OpsRole::Admin).await;
    let forged = elsewhere
        .client
        .post(elsewhere.url("/ops/queues/bench/pause"))
        .header("x-forwarded-email", "ada@example.com")
        .header("x-forwarded-for", "10.9.9.9")
        .header("x-mingus-ops", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(audit_rows(&elsewhere).await, 0);
}
