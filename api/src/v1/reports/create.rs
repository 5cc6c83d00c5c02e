//! `POST /v1/reports`: validate, check the plan, and in one transaction consume the usage unit, write the
//! `reports` row and its job's outbox row; push the job after commit.
//!
//! **Idempotency.** An `Idempotency-Key` (1–255 printable ASCII characters) names the request for the
//! account: the same key with the same request (kind, format, period, sections, and the same caller)
//! answers the report it created, with `Idempotent-Replayed: true` and no new usage; the same key with a
//! different request is 409 `idempotency_key_reused`. Keys live as long as their report. Two concurrent
//! requests with one key meet at the unique index: the second waits for the first's commit, writes
//! nothing (its consumed unit rolls back with it) and answers as a replay.
//!
//! **Atomicity.** The usage count ([`Entitlements::consume_in`]), the report and its outbox row commit
//! together or not at all, so a refused or failed request consumes nothing, and concurrent requests at
//! the limit serialise on the counter row (exactly one of two at `limit − 1` gets through).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use mingus_common::entitlements::{Entitlements, Snapshot};
use mingus_common::jobs::report_jobs::GenerateReport;
use mingus_common::jobs::{Job, outbox};
use mingus_common::reports::{ReportRequest, ReportSpec};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{error_with, status_url};
use crate::error::ApiError;
use crate::state::AppState;
use crate::v1::{JsonBody, Principal, Scope, TeamRole, db_error, dependency_error};

const IDEMPOTENCY_KEY: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 255;

/// A report that already exists under the request's idempotency key.
#[derive(sqlx::FromRow)]
struct Existing {
    id: Uuid,
    status: String,
    requested_by: Option<Uuid>,
    kind: String,
    format: String,
    period_start: NaiveDate,
    period_end: NaiveDate,
    sections: Vec<String>,
}

impl Existing {
    fn same_request(&self, spec: &ReportSpec, caller: Uuid) -> bool {
        self.requested_by == Some(caller)
            && self.kind == spec.kind.name()
            && self.format == spec.format.name()
            && self.period_start == spec.period.start
            && self.period_end == spec.period.end
            && self.sections == spec.section_names()
    }
}

pub async fn create(
    axum::extract::State(state): axum::extract::State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ReportRequest>,
) -> Result<Response, ApiError> {
    principal.require(Scope::ReportsWrite)?;
    let owner = principal.account(TeamRole::Editor)?;
    let caller = principal.user_id;
    let key = idempotency_key(&headers)?;
    let now = Utc::now();
    let spec = body
        .validate(now.date_naive())
        .map_err(|err| ApiError::unprocessable(err.code(), err.to_string()))?;
    if let Some(key) = key.as_deref()
        && let Some(existing) = find_existing(&state, owner, key).await?
    {
        return replay(existing, &spec, caller);
    }
    let snapshot = state
        .entitlements
        .snapshot(owner, now)
        .await
        .map_err(dependency_error)?;
    if let Some(refused) = refuse_without_feature(&snapshot, &spec, now) {
        return Ok(refused);
    }

    let id = Uuid::now_v7();
    let envelope = outbox::prepare(&GenerateReport { report_id: id }, id)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut tx = state.db.begin().await.map_err(db_error)?;
    let metric = spec.kind.metric();
    let consumed = Entitlements::consume_in(&mut tx, &snapshot, owner, metric, 1, now)
        .await
        .map_err(dependency_error)?;
    if !consumed.allowed {
        drop(tx);
        // A concurrent request with the same key may have taken the last unit for this very report.
        if let Some(key) = key.as_deref()
            && let Some(existing) = find_existing(&state, owner, key).await?
        {
            return replay(existing, &spec, caller);
        }
        return Ok(limit_exceeded(&snapshot, &spec, consumed, now));
    }
    let inserted: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "WITH report AS (
             INSERT INTO reports (id, user_id, requested_by, kind, format, period_start, period_end,
                                  sections, idempotency_key, usage_metric, usage_period_end)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING id
         ), job AS (
             INSERT INTO job_outbox {cols}
             SELECT id, $12, $13, $14, $15, $16 FROM report
         )
         SELECT id FROM report",
        cols = outbox::OUTBOX_COLUMNS
    )))
    .bind(id)
    .bind(owner)
    .bind(caller)
    .bind(spec.kind.name())
    .bind(spec.format.name())
    .bind(spec.period.start)
    .bind(spec.period.end)
    .bind(spec.section_names())
    .bind(key.as_deref())
    .bind(metric)
    .bind(consumed.resets_at)
    .bind(envelope.queue.name())
    .bind(&envelope.kind)
    .bind(sqlx::types::Json(&envelope))
    .bind(GenerateReport::SPEC.max_attempts as i32)
    .bind(envelope.enqueued_at)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(id) = inserted else {
        // A concurrent request with the same key committed first: ours rolls back (with its unit).
        drop(tx);
        let key = key.as_deref().unwrap_or_default();
        let existing = find_existing(&state, owner, key).await?.ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("idempotency conflict without a report"))
        })?;
        return replay(existing, &spec, caller);
    };
    tx.commit().await.map_err(db_error)?;
    outbox::push_after_commit(&state.db, &state.enqueuer, std::slice::from_ref(&envelope)).await;
    tracing::info!(report_id = %id, user_id = %owner, kind = spec.kind.name(), "report queued");
    Ok(accepted(id, "queued", false))
}

/// The `Idempotency-Key` header, if sent: 1–255 printable ASCII characters, else 400.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let valid = value
        .to_str()
        .ok()
        .filter(|v| {
            (1..=MAX_KEY_LEN).contains(&v.len()) && v.bytes().all(|b| (0x20..0x7f).contains(&b))
        })
        .map(str::to_owned);
    valid.map(Some).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1–{MAX_KEY_LEN} printable ASCII characters"),
        )
    })
}

async fn find_existing(
    state: &AppState,
    owner: Uuid,
    key: &str,
) -> Result<Option<Existing>, ApiError> {
    sqlx::query_as(
        "SELECT id, status, requested_by, kind, format, period_start, period_end, sections
         FROM reports WHERE user_id = $1 AND idempotency_key = $2",
    )
    .bind(owner)
    .bind(key)
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)
}

fn replay(existing: Existing, spec: &ReportSpec, caller: Uuid) -> Result<Response, ApiError> {
    if !existing.same_request(spec, caller) {
        let mut details = Map::new();
        details.insert("report_id".into(), json!(existing.id));
        return Ok(error_with(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request",
            details,
        ));
    }
    Ok(accepted(existing.id, &existing.status, true))
}

/// 202 `{id, status, status_url}` with `Location`.
fn accepted(id: Uuid, status: &str, replayed: bool) -> Response {
    let url = status_url(id);
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "id": id, "status": status, "status_url": url })),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&url) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// 403 with the reason as the code when the plan does not include the kind's feature now.
fn refuse_without_feature(
    snapshot: &Snapshot,
    spec: &ReportSpec,
    now: DateTime<Utc>,
) -> Option<Response> {
    let feature = spec.kind.feature();
    if snapshot.grant_at(feature, now).is_some() {
        return None;
    }
    let reason = snapshot.refusal_at(feature, now);
    let code = match serde_json::to_value(reason) {
        Ok(Value::String(code)) => code,
        _ => "feature_not_included".to_owned(),
    };
    let mut details = Map::new();
    details.insert("reason".into(), json!(reason));
    details.insert("tier".into(), json!(snapshot.tier));
    details.insert("feature".into(), json!(feature));
    Some(super::error_with_code(
        StatusCode::FORBIDDEN,
        code,
        format!(
            "{} reports need a plan that includes {feature}",
            spec.kind.name()
        ),
        details,
    ))
}

/// 429 `usage_limit_exceeded` with the limit, the usage, when it resets, and `Retry-After`.
fn limit_exceeded(
    snapshot: &Snapshot,
    spec: &ReportSpec,
    consumed: mingus_common::entitlements::Consumed,
    now: DateTime<Utc>,
) -> Response {
    let mut details = Map::new();
    details.insert("reason".into(), json!("usage_limit_exceeded"));
    details.insert("tier".into(), json!(snapshot.tier));
    details.insert("feature".into(), json!(spec.kind.feature()));
    details.insert("metric".into(), json!(spec.kind.metric()));
    details.insert("limit".into(), json!(consumed.limit));
    details.insert("usage".into(), json!(consumed.used));
    details.insert("resets_at".into(), json!(consumed.resets_at));
    let mut response = error_with(
        StatusCode::TOO_MANY_REQUESTS,
        "usage_limit_exceeded",
        "this period's allowance of these reports is used up",
        details,
    );
    let wait = (consumed.resets_at - now).num_seconds().max(1);
    if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
