//! The metered-usage API (issue 21): `POST /v1/usage/{metric}` consumes units of a periodic metric
//! (`health_checkins_per_month`, `financial_reports_per_month`, `ai_insights_per_month`,
//! `custom_reports_per_month`) for the Mingus app, `GET /v1/usage` and `GET /v1/usage/{metric}` read
//! every metric of the plan (caps and the hourly rate too).
//!
//! **Once per key.** A consume needs an `Idempotency-Key`: the key is stored with the consume in the
//! same statement that counts it (`mingus_consume_usage()`), so the same key never counts twice — a
//! retry, or a concurrent duplicate, answers the first outcome with `Idempotent-Replayed: true`. The
//! same key with another metric or amount → 409 `idempotency_key_reused`. A refused consume stores no
//! key, so the same key may succeed after the reset.
//!
//! **Refusals.** The metric's feature is not in the plan (or, for check-ins, no subscription grants
//! access) → 403 with the entitlement's reason as the code; the period's allowance would be exceeded →
//! 429 `usage_limit_exceeded` with `reason`, `metric`, `limit`, `usage`, `resets_at` and `Retry-After`.
//! A call takes its whole `amount` or nothing.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use mingus_common::entitlements::Snapshot;
use mingus_common::entitlements::metrics::{self, ConsumedOnce, Kind, Outcome};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::reports::{error_with, error_with_code};
use super::{JsonBody, PathParam, Principal, Scope, TeamRole, dependency_error};
use crate::error::ApiError;
use crate::state::AppState;

/// The most one call may consume: far above any real use, low enough that a typo cannot empty a plan.
const MAX_AMOUNT: i64 = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeBody {
    #[serde(default = "one")]
    amount: i64,
}

fn one() -> i64 {
    1
}

/// `GET /v1/usage`: every metric of the plan for the account.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::UsageRead)?;
    let account = principal.account(TeamRole::Viewer)?;
    let metrics = state
        .entitlements
        .metrics(account, Utc::now())
        .await
        .map_err(dependency_error)?;
    Ok(Json(json!({ "metrics": metrics })))
}

/// `GET /v1/usage/{metric}`: one metric; 404 for a name that is not a metric of the tiers.
pub async fn read_one(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(metric): PathParam<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::UsageRead)?;
    let account = principal.account(TeamRole::Viewer)?;
    let usage = state
        .entitlements
        .metric(account, &metric, Utc::now())
        .await
        .map_err(dependency_error)?
        .ok_or_else(|| unknown_metric(&metric))?;
    Ok(Json(json!(usage)))
}

/// `POST /v1/usage/{metric}` `{amount?}` with `Idempotency-Key` → 200 `{metric, amount, usage, limit,
/// remaining, resets_at, replayed}`.
pub async fn consume(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    PathParam(metric): PathParam<String>,
    JsonBody(body): JsonBody<ConsumeBody>,
) -> Result<Response, ApiError> {
    principal.require(Scope::UsageWrite)?;
    let account = principal.account(TeamRole::Editor)?;
    let metric = match metrics::describe(&metric) {
        Some((name, Kind::PerPeriod, _)) => name,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "metric_not_consumable",
                format!(
                    "{metric} is a cap or a rate, enforced where its rows or calls are made; only *_per_month metrics are consumed here"
                ),
            ));
        }
        None => return Err(unknown_metric(&metric)),
    };
    if !(1..=MAX_AMOUNT).contains(&body.amount) {
        return Err(ApiError::unprocessable(
            "invalid_amount",
            format!("amount must be an integer from 1 to {MAX_AMOUNT}"),
        ));
    }
    let key = super::reports::create::idempotency_key(&headers)?.ok_or_else(|| {
        ApiError::bad_request("idempotency_key_required",
            "send an Idempotency-Key (1–255 printable ASCII characters) naming this use, so a retry never counts twice",
        )
    })?;
    let now = Utc::now();
    let snapshot = state
        .entitlements
        .snapshot(account, now)
        .await
        .map_err(dependency_error)?;
    if let Some(reason) = metrics::refusal(&snapshot, metric, now) {
        return Ok(refused_by_plan(&snapshot, metric, reason));
    }
    let consumed = state
        .entitlements
        .consume_once(
            &snapshot,
            account,
            metric,
            body.amount,
            &key,
            principal.user_id,
            now,
        )
        .await
        .map_err(dependency_error)?;
    Ok(match consumed.outcome {
        Outcome::Consumed => counted(metric, body.amount, consumed, false),
        Outcome::Replayed {
            metric: stored,
            amount,
        } if stored == metric && amount == body.amount => counted(metric, amount, consumed, true),
        Outcome::Replayed { .. } => error_with(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different metric or amount",
            Map::new(),
        ),
        Outcome::Refused => limit_exceeded(&snapshot, metric, body.amount, consumed, now),
    })
}

fn unknown_metric(metric: &str) -> ApiError {
    ApiError::not_found(format!(
        "no metric named {metric:?}; GET /v1/usage lists them"
    ))
}

/// 200 with the count after the call (`replayed`: the key's first outcome, nothing new counted).
fn counted(metric: &str, amount: i64, consumed: ConsumedOnce, replayed: bool) -> Response {
    let remaining = consumed.limit.map(|limit| (limit - consumed.used).max(0));
    let mut response = Json(json!({
        "metric": metric,
        "amount": amount,
        "usage": consumed.used,
        "limit": consumed.limit,
        "remaining": remaining,
        "resets_at": consumed.resets_at,
        "replayed": replayed,
    }))
    .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// 403 with the reason as the code: the plan does not include the metric's feature now.
fn refused_by_plan(
    snapshot: &Snapshot,
    metric: &str,
    reason: mingus_common::entitlements::Reason,
) -> Response {
    let code = match serde_json::to_value(reason) {
        Ok(Value::String(code)) => code,
        _ => "feature_not_included".to_owned(),
    };
    let feature = metrics::describe(metric).and_then(|(_, _, feature)| feature);
    let mut details = Map::new();
    details.insert("reason".into(), json!(reason));
    details.insert("tier".into(), json!(snapshot.tier));
    details.insert("feature".into(), json!(feature));
    details.insert("metric".into(), json!(metric));
    error_with_code(
        StatusCode::FORBIDDEN,
        code,
        format!("the plan does not allow {metric} now"),
        details,
    )
}

/// 429 `usage_limit_exceeded` with the limit, the usage, when it resets, and `Retry-After`.
fn limit_exceeded(
    snapshot: &Snapshot,
    metric: &str,
    amount: i64,
    consumed: ConsumedOnce,
    now: DateTime<Utc>,
) -> Response {
    let mut details = Map::new();
    details.insert("reason".into(), json!("usage_limit_exceeded"));
    details.insert("tier".into(), json!(snapshot.tier));
    details.insert("metric".into(), json!(metric));
    details.insert("amount".into(), json!(amount));
    details.insert("limit".into(), json!(consumed.limit));
    details.insert("usage".into(), json!(consumed.used));
    details.insert("resets_at".into(), json!(consumed.resets_at));
    let mut response = error_with(
        StatusCode::TOO_MANY_REQUESTS,
        "usage_limit_exceeded",
        format!("{amount} more would exceed this period's allowance of {metric}"),
        details,
    );
    let wait = (consumed.resets_at - now).num_seconds().max(1);
    if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
