//! The operator API (`/ops/…`, named operators or the break-glass admin token) and the web dashboard
//! (`GET /ops`). Every change is checked against its role ([`actions`]) and leaves one row in the audit
//! log ([`audit`]).
//!
//! Built on our own ledger (`job_runs`), dead letters and Redis reads, not on apalis' dashboard traits,
//! most of which fail or return nothing on Redis (NOTES-apalis defect 11).

pub mod actions;
pub mod actor;
pub(crate) mod audit;
pub mod auth;
mod business;
mod customer_actions;
mod customer_jobs;
mod customers;
mod dashboard;
mod db;
mod dead;
pub mod guesses;
mod jobs;
pub mod operators;
pub(crate) mod queues;
mod schedules;
mod stripe_events;
mod workers;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::Query;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::Response;
use axum::routing::{get, post};
use mingus_common::queue::Queue;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Per-instance state of the operator API: a short cache of the ledger aggregates, which the dashboard
/// polls every two seconds (one query for every open dashboard, not one each).
#[derive(Clone, Default)]
pub struct OpsState {
    minutes: Arc<Mutex<Option<CachedMinutes>>>,
    /// Failed admin-token attempts per client address.
    pub guesses: guesses::Guesses,
}

/// When the ledger aggregates were read, and what they were.
type CachedMinutes = (Instant, Arc<Vec<queues::MinuteRow>>);

pub fn router(state: AppState) -> Router<AppState> {
    let protected = Router::new()
        .route("/ops", get(dashboard::page))
        .route("/ops/queues", get(queues::list))
        .route("/ops/queues/{queue}/pause", post(queues::pause))
        .route("/ops/queues/{queue}/resume", post(queues::resume))
        .route("/ops/stats", get(queues::stats))
        .route("/ops/jobs", get(jobs::search))
        .route("/ops/jobs/{job_id}", get(jobs::detail).delete(dead::delete))
        .route("/ops/jobs/{job_id}/retry", post(dead::retry))
        .route("/ops/dead", get(dead::list))
        .route("/ops/dead/retry", post(dead::retry_all))
        .route("/ops/workers", get(workers::list))
        .route("/ops/db", get(db::overview))
        .route("/ops/audit", get(audit::list))
        .route("/ops/business", get(dashboard::business))
        .route("/ops/business/metrics", get(business::metrics))
        .route("/ops/customers", get(customers::search))
        .route("/ops/customers/{id}", get(customers::detail))
        .route(
            "/ops/customers/{id}/promotions",
            post(customer_actions::grant),
        )
        .route(
            "/ops/customers/{id}/promotions/{feature}/revoke",
            post(customer_actions::revoke),
        )
        .route(
            "/ops/customers/{id}/trial/extend",
            post(customer_actions::extend),
        )
        .route(
            "/ops/customers/{id}/usage/{metric}/reset",
            post(customer_actions::reset),
        )
        .route(
            "/ops/customers/{id}/emails/{delivery_id}/resend",
            post(customer_actions::resend),
        )
        .route(
            "/ops/customers/{id}/stripe-events/replay",
            post(customer_actions::replay),
        )
        .route(
            "/ops/customers/{id}/access/recompute",
            post(customer_actions::recompute),
        )
        .route("/ops/audit/export", get(audit::export))
        .route("/ops/schedules", get(schedules::list))
        .route("/ops/schedules/{name}/run", post(schedules::run))
        .route("/ops/stripe-events", get(stripe_events::list))
        .route(
            "/ops/stripe-events/replay",
            post(stripe_events::replay_many),
        )
        .route("/ops/stripe-events/{id}", get(stripe_events::detail))
        .route(
            "/ops/stripe-events/{id}/replay",
            post(stripe_events::replay_one),
        )
        .route_layer(from_fn_with_state(state, auth::require));
    // The login form, and the static stylesheet and script (no data, no secrets) it needs.
    let public = Router::new()
        .route("/ops/login", post(auth::login).get(auth::login_page))
        .route("/ops/logout", post(auth::logout))
        .route("/ops/assets/{file}", get(dashboard::asset));
    protected.merge(public).layer(map_response(no_store))
}

/// Operator responses are never cached by browsers or proxies, nor sniffed.
async fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A queue named in a query string or body: unknown → 400.
fn queue_param(raw: &str) -> Result<Queue, ApiError> {
    raw.parse()
        .map_err(|err: mingus_common::queue::UnknownQueue| {
            ApiError::bad_request("invalid_queue", err.to_string())
        })
}

/// A queue named in the path: unknown → 404.
fn queue_path(raw: &str) -> Result<Queue, ApiError> {
    raw.parse()
        .map_err(|err: mingus_common::queue::UnknownQueue| {
            ApiError::client(StatusCode::NOT_FOUND, "unknown_queue", err.to_string())
        })
}

fn job_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| ApiError::bad_request("invalid_job_id", "job id must be a UUID"))
}

/// A kind filter: the catalog's kinds look like `area.name`; anything else cannot match and is refused.
fn kind_param(raw: &str) -> Result<String, ApiError> {
    let valid = !raw.is_empty()
        && raw.len() <= 100
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::bad_request(
            "invalid_kind",
            "kind must be 1–100 characters of letters, digits, '.', '_', '-', ':'",
        ))
    }
}

fn query<T>(extracted: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    extracted
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
}

fn json<T>(extracted: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    extracted.map(|Json(value)| value).map_err(|rejection| {
        let code = if rejection.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            "unsupported_media_type"
        } else {
            "invalid_json"
        };
        ApiError::client(rejection.status(), code, rejection.body_text())
    })
}

/// Page and page size from the query string: 1-based pages, 1–200 per page (default 50).
fn pagination(page: Option<&str>, per_page: Option<&str>) -> Result<(i64, i64), ApiError> {
    fn number(raw: Option<&str>, name: &str, default: i64, max: i64) -> Result<i64, ApiError> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(default);
        };
        match raw.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_pagination",
                format!("{name} must be an integer from 1 to {max}"),
            )),
        }
    }
    let per_page = number(per_page, "per_page", 50, 200)?;
    // Deep pages get slow on a big ledger; search narrows better than paging 10,000 rows.
    let page = number(page, "page", 1, 10_000 / per_page.max(1))?;
    Ok((page, per_page))
}

/// One page of a list fetched with `LIMIT per_page + 1`: the extra row, if any, only says there is more.
fn paged<T: serde::Serialize>(mut items: Vec<T>, page: i64, per_page: i64) -> serde_json::Value {
    let has_more = items.len() as i64 > per_page;
    items.truncate(per_page as usize);
    serde_json::json!({ "items": items, "page": page, "per_page": per_page, "has_more": has_more })
}

/// A database error: 503 when the database is unreachable or saturated, else an opaque 500.
fn db_error(err: sqlx::Error) -> ApiError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            ApiError::Unavailable(format!("database: {err}"))
        }
        other => ApiError::Internal(other.into()),
    }
}

/// A Redis error (possibly wrapped by the enqueuer): 503 when Redis is unreachable, else an opaque 500.
fn redis_error(err: anyhow::Error) -> ApiError {
    let unreachable = err.chain().any(|cause| {
        cause.downcast_ref::<redis::RedisError>().is_some_and(|e| {
            e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
        })
    });
    if unreachable {
        ApiError::Unavailable(format!("redis: {err:#}"))
    } else {
        ApiError::Internal(err)
    }
}
