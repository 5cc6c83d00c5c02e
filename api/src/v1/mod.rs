//! The frontend and API-client API, `/v1/…`.
//!
//! Every route listed in [`routes`] passes through [`auth::guard`]: authentication
//! (user JWT or API key), the API key owner's plan check, rate limits and the `RateLimit-*` headers. A
//! handler takes [`Principal`] as an argument and calls `principal.require(Scope::…)` for what it does;
//! bodies and paths go through [`JsonBody`] and [`PathParam`] so bad input answers our JSON errors.

pub mod analytics;
pub mod api_keys;
pub mod auth;
pub mod billing;
pub mod cors;
pub mod display_text;
pub mod extract;
pub mod features;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod last_used;
pub mod membership;
pub mod provisioned;
pub mod rate_limit;
pub mod reports;
pub mod scopes;
pub mod team;
pub mod usage;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, on};
use mingus_common::entitlements::FeatureCheck;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

pub use auth::{Membership, Principal, TeamRole, Via};
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
    pub provisioned: provisioned::ProvisionedUsers,
    /// The issuer's key set for ES256/RS256 user tokens (`MINGUS_JWT_JWKS_URL`), when configured.
    pub jwks: Option<std::sync::Arc<jwks::Jwks>>,
}

impl V1State {
    pub fn new(db: PgPool, redis: ConnectionManager, jwks_url: Option<url::Url>) -> Self {
        Self {
            limiter: rate_limit::RateLimiter::new(redis),
            last_used: last_used::LastUsed::new(db.clone()),
            provisioned: provisioned::ProvisionedUsers::new(db),
            features: features::Catalogue::default(),
            jwks: jwks_url.map(|url| std::sync::Arc::new(jwks::Jwks::new(url))),
        }
    }
}

pub fn router(state: AppState) -> Router<AppState> {
    routes()
        .router
        .route_layer(from_fn_with_state(state, auth::guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Every `/v1` route, each behind [`auth::guard`]. Add routes here: the router is built from this list
/// and the OpenAPI test checks that `/openapi.json` documents each entry of [`route_table`].
fn routes() -> Routes {
    Routes::default()
        .add(Method::POST, "/v1/api-keys", api_keys::create)
        .add(Method::GET, "/v1/api-keys", api_keys::list)
        .add(Method::DELETE, "/v1/api-keys/{id}", api_keys::revoke)
        .add(Method::GET, "/v1/features", features::list)
        .add(Method::GET, "/v1/features/{feature}", features::one)
        .add(Method::POST, "/v1/team/members", team::members::invite)
        .add(Method::GET, "/v1/team/members", team::members::list)
        .add(
            Method::PATCH,
            "/v1/team/members/{id}",
            team::members::change_role,
        )
        .add(
            Method::DELETE,
            "/v1/team/members/{id}",
            team::members::remove,
        )
        .add(
            Method::POST,
            "/v1/team/members/{id}/invitation",
            team::members::resend,
        )
        .add(
            Method::POST,
            "/v1/team/invitations/{token}/accept",
            team::invitations::accept,
        )
        .add(
            Method::POST,
            "/v1/team/invitations/{token}/decline",
            team::invitations::decline,
        )
        .add(Method::GET, "/v1/team/memberships", team::memberships::list)
        .add(
            Method::DELETE,
            "/v1/team/memberships/{owner_id}",
            team::memberships::leave,
        )
        .add(Method::POST, "/v1/reports", reports::create)
        .add(Method::GET, "/v1/reports", reports::list)
        .add(Method::GET, "/v1/reports/{id}", reports::get_one)
        .add(Method::GET, "/v1/reports/{id}/download", reports::download)
        .add(Method::GET, "/v1/analytics", analytics::get)
        .add(Method::GET, "/v1/team/analytics", team::analytics::get)
        .add(
            Method::GET,
            "/v1/team/memberships/{owner_id}/analytics-sharing",
            team::analytics::sharing,
        )
        .add(
            Method::PUT,
            "/v1/team/memberships/{owner_id}/analytics-sharing",
            team::analytics::set_sharing,
        )
        .add(Method::GET, "/v1/billing", billing::pending::show)
        .add(
            Method::POST,
            "/v1/billing/checkout",
            billing::checkout::checkout,
        )
        .add(Method::POST, "/v1/billing/change", billing::change::change)
        .add(Method::POST, "/v1/billing/portal", billing::portal)
        .add(Method::POST, "/v1/billing/cancel", billing::cancel)
        .add(Method::POST, "/v1/billing/resume", billing::resume)
        .add(Method::GET, "/v1/usage", usage::list)
        .add(Method::GET, "/v1/usage/{metric}", usage::read_one)
        .add(Method::POST, "/v1/usage/{metric}", usage::consume)
}

/// The method and path template of every `/v1` route.
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes().table
}

/// The router being built and the list of what it serves.
#[derive(Default)]
struct Routes {
    table: Vec<(Method, &'static str)>,
    router: Router<AppState>,
}

impl Routes {
    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard HTTP method");
        // Routes on one path merge their methods.
        self.router = self.router.route(path, on(filter, handler));
        self.table.push((method, path));
        self
    }
}

/// A database error: 503 when it is transient, else an opaque 500 (`From<sqlx::Error> for ApiError`).
pub(crate) fn db_error(err: sqlx::Error) -> ApiError {
    err.into()
}

/// An error of a shared service (entitlements): 503 when its database or Redis is unreachable (the
/// classification is [`ApiError`]'s own).
pub(crate) fn dependency_error(err: anyhow::Error) -> ApiError {
    ApiError::Internal(err)
}

/// The entitlement's answer as extra fields of an error object (`reason`, `tier`, …).
pub(crate) fn check_details(check: &FeatureCheck) -> serde_json::Map<String, serde_json::Value> {
    let mut details = serde_json::Map::new();
    details.insert("reason".into(), serde_json::json!(check.reason));
    details.insert("tier".into(), serde_json::json!(check.tier));
    details
}
