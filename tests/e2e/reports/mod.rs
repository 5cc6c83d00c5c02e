//! Reports end to end: `POST /v1/reports` per tier with its limits, concurrency and idempotency; every
//! kind of bad input (4xx, nothing written, no usage); reading, listing and downloading; the
//! `report.generate` job with a real worker (ready and failed paths, the e-mail, redelivery) and the
//! outbox sweep reviving a job Redis lost.

mod abandoned;
mod create;
mod jobs;
mod reading;
mod validation;

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use mingus_common::jobs::Enqueuer;
use mingus_common::queue::Queue;
use mingus_common::reports::{ReportRequest, ReportSpec, kinds};
use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use mingus_tests::openapi::contract;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub(super) use crate::v1::user_on;

pub(super) const LIMIT: Duration = Duration::from_secs(30);

/// A reply: status, headers and the raw body (downloads are not JSON).
pub(super) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }

    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn id(&self) -> Uuid {
        self.json()["id"].as_str().unwrap().parse().unwrap()
    }
}

/// Sends `method path` with a bearer credential, optional JSON body and extra headers.
pub(super) async fn request(
    app: &TestApp,
    method: Method,
    path: &str,
    credential: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let method_name = method.as_str().to_owned();
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(credential);
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request reaches the API");
    let reply = Reply {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    };
    check_contract(&method_name, path, &reply);
    reply
}

/// Every response must match `/openapi.json`, as in the other `/v1` tests.
fn check_contract(method: &str, path: &str, reply: &Reply) {
    let contract = contract();
    let content_type = reply.header("content-type");
    if let Err(mismatch) = contract.check(
        method,
        path,
        reply.status.as_u16(),
        content_type,
        &reply.text,
    ) {
        panic!("response does not match /openapi.json: {mismatch}");
    }
}

/// `POST /v1/reports` as `user`, with an optional `Idempotency-Key`.
pub(super) async fn post(app: &TestApp, user: Uuid, body: &Value, key: Option<&str>) -> Reply {
    let token = user_token(app, user);
    let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    request(
        app,
        Method::POST,
        "/v1/reports",
        &token,
        Some(body),
        &headers,
    )
    .await
}

pub(super) async fn get(app: &TestApp, user: Uuid, path: &str) -> Reply {
    request(app, Method::GET, path, &user_token(app, user), None, &[]).await
}

/// The last 30 whole days (ending yesterday, UTC) as `(start, end)`.
pub(super) fn last_month() -> (String, String) {
    let today = Utc::now().date_naive();
    let end = today - chrono::Days::new(1);
    let start = today - chrono::Days::new(30);
    (start.to_string(), end.to_string())
}

/// A request body of `kind` over [`last_month`].
pub(super) fn body(kind: &str) -> Value {
    let (start, end) = last_month();
    json!({ "kind": kind, "period_start": start, "period_end": end })
}

/// Units of `metric` the user has used (all periods).
pub(super) async fn usage(pool: &PgPool, user: Uuid, metric: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(used), 0)::bigint FROM usage_counters WHERE user_id = $1 AND metric = $2",
    )
    .bind(user)
    .bind(metric)
    .fetch_one(pool)
    .await
    .unwrap()
}

pub(super) async fn count(pool: &PgPool, sql: &str) -> i64 {
    mingus_tests::wait::count(pool, sql).await
}

/// Reports rows of the user.
pub(super) async fn reports_of(pool: &PgPool, user: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM reports WHERE user_id = $1")
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// What `kinds::compute` (and `to_csv` for csv) gives for this request of `user` right now, under the
/// user's row-level security, exactly as the job runs it: the report must end `ready` with this content,
/// or `failed` when it errs.
pub(super) async fn expected(
    pool: &PgPool,
    user: Uuid,
    body: &Value,
) -> (ReportSpec, Result<(Value, Option<String>), String>) {
    let request: ReportRequest = serde_json::from_value(body.clone()).unwrap();
    let spec = request.validate(Utc::now().date_naive()).unwrap();
    let mut tx = mingus_common::db::begin_as_user(pool, user).await.unwrap();
    let computed = kinds::compute(&mut tx, user, &spec).await;
    tx.rollback().await.unwrap();
    let outcome = computed.and_then(|content| {
        let csv = match spec.format {
            mingus_common::reports::ReportFormat::Csv => Some(kinds::to_csv(&spec, &content)?),
            mingus_common::reports::ReportFormat::Json => None,
        };
        Ok((content, csv))
    });
    (spec, outcome.map_err(|e| format!("{e:#}")))
}

/// The report's status once it is final (`ready` or `failed`), waiting at most [`LIMIT`].
pub(super) async fn final_status(pool: &PgPool, id: Uuid) -> String {
    mingus_tests::wait::until(LIMIT, "the report to be ready or failed", || async {
        let status: String = sqlx::query_scalar("SELECT status FROM reports WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
        matches!(status.as_str(), "ready" | "failed").then_some(status)
    })
    .await
}

/// An enqueuer on the app's Redis namespace.
pub(super) async fn enqueuer(app: &TestApp) -> Enqueuer {
    let redis = mingus_common::cache::connect(&app.config.redis)
        .await
        .unwrap();
    Enqueuer::new(redis, app.redis_prefix.clone())
}

/// A day as `NaiveDate`.
pub(super) fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// Deletes every Redis key of the reports queue (a flush or failover that lost the job).
pub(super) async fn lose_report_jobs(app: &TestApp) {
    let enqueuer = enqueuer(app).await;
    let mut conn = enqueuer.connection();
    let pattern = format!("{}*", enqueuer.keys(Queue::Reports).name);
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    for _ in 0..10_000 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            deleted += keys.len();
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert!(deleted > 0, "the job had been pushed");
}
