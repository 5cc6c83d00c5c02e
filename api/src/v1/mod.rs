//! The frontend and API-client API, `/v1/…`.
//!
//! Every route added to [`router`]'s `protected` router passes through [`auth::guard`]: authentication
//! (user JWT or API key), the API key owner's plan check, rate limits and the `RateLimit-*` headers. A
//! handler takes [`Principal`] as an argument and calls `principal.require(Scope::…)` for what it does;
//! bodies and paths go through [`JsonBody`] and [`PathParam`] so bad input answers our JSON errors.

pub mod api_keys;
pub mod auth;
pub mod extract;
pub mod features;
pub mod jwt;
pub mod keys;
pub mod last_used;
pub mod rate_limit;
pub mod scopes;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use mingus_common::entitlements::FeatureCheck;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

pub use auth::{Principal, Via};
pub use extract::{JsonBody, PathParam};
pub use scopes::Scope;

use crate::error::ApiError;
use crate::state::AppState;

/// Request bodies of the `/v1` API are small JSON documents.
pub const MAX_BODY: usize = 64 * 1024;
/// The feature that lets a user create and use API keys.
pub const API_ACCESS: &str = "api_access";
/// The tier limit on calls made with a user's API keys.
pub const API_CALLS_PER_HOUR: &str = "api_calls_per_hour";

/// Per-process state of the `/v1` API.
#[derive(Clone)]
pub struct V1State {
    pub limiter: rate_limit::RateLimiter,
    pub last_used: last_used::LastUsed,
    pub features: features::Catalogue,
}

impl V1State {
    pub fn new(db: PgPool, redis: ConnectionManager) -> Self {
        Self {
            limiter: rate_limit::RateLimiter::new(redis),
            last_used: last_used::LastUsed::new(db),
            features: features::Catalogue::default(),
        }
    }
}

pub fn router(state: AppState) -> Router<AppState> {
    let protected = Router::new()
        .route("/v1/api-keys", post(api_keys::create).get(api_keys::list))
        .route("/v1/api-keys/{id}", delete(api_keys::revoke))
        .route("/v1/features", get(features::list))
        .route("/v1/features/{feature}", get(features::one))
        .route_layer(from_fn_with_state(state, auth::guard));
    protected.layer(DefaultBodyLimit::max(MAX_BODY))
}

/// A database error: 503 when the database is unreachable or saturated, else an opaque 500.
pub(crate) fn db_error(err: sqlx::Error) -> ApiError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            ApiError::Unavailable(format!("database: {err}"))
        }
        other => ApiError::Internal(other.into()),
    }
}

/// An error of a shared service (entitlements): 503 when its database or Redis is unreachable.
pub(crate) fn dependency_error(err: anyhow::Error) -> ApiError {
    let unreachable = err.chain().any(|cause| {
        cause.downcast_ref::<sqlx::Error>().is_some_and(|e| {
            matches!(
                e,
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            )
        }) || cause.downcast_ref::<redis::RedisError>().is_some_and(|e| {
            e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
        })
    });
    if unreachable {
        ApiError::Unavailable(format!("{err:#}"))
    } else {
        ApiError::Internal(err)
    }
}

/// The entitlement's answer as extra fields of an error object (`reason`, `tier`, …).
pub(crate) fn check_details(check: &FeatureCheck) -> serde_json::Map<String, serde_json::Value> {
    let mut details = serde_json::Map::new();
    details.insert("reason".into(), serde_json::json!(check.reason));
    details.insert("tier".into(), serde_json::json!(check.tier));
    details
}
