//! Who is calling: `Authorization: Bearer <user JWT>` or `Authorization: Bearer mk_live_…` (an API key).
//!
//! [`guard`] runs before every `/v1` handler: it authenticates, checks that an API key's owner still has
//! `api_access`, applies the rate limits, puts the [`Principal`] into the request, and adds the
//! rate-limit headers to the response. Handlers take `Principal` as an extractor and call
//! [`Principal::require`] with the scope they need.
//!
//! Refusals: 401 with `WWW-Authenticate: Bearer …` and a code per cause (`credentials_missing`,
//! `authorization_invalid`, `token_*`, `api_key_invalid|revoked|expired`); 403 `token_role_not_user` for
//! a token whose `role` is not in `MINGUS_JWT_USER_ROLES` (`anon`, `service_role`); 403
//! `user_not_provisioned` when the token's user has no `users` row ([`super::provisioned`]); 403
//! `api_access_required` when a key's owner lost the Executive plan; 403 `insufficient_scope`; 429 `rate_limited` with `Retry-After`.
//! `Mingus-Account: <owner id>` makes the call act for a team owner ([`super::membership`]: 400/403 when
//! the header is malformed, the caller is not an active member, or the owner's plan lapsed).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::jwks::JwksError;
use super::jwt::{self, JwtError};
use super::keys;
use super::rate_limit::Bucket;
use super::scopes::Scope;
use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub via: Via,
    /// Set when the call acts on a team owner's account (the caller is an active member of that team).
    pub acting_for: Option<Membership>,
}

/// The caller's membership of the team whose owner's account the call acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub owner_id: Uuid,
    pub role: TeamRole,
}

/// A team member's role on the owner's account, weakest first: viewers read reports, editors also
/// create them, admins also manage the team's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TeamRole {
    Viewer,
    Editor,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A user token; `role` is its Supabase role claim.
    Jwt { role: String },
    ApiKey {
        key_id: Uuid,
        scopes: Vec<Scope>,
        rate_limit_per_hour: u32,
    },
}

impl Principal {
    /// A user token may do everything its user may; an API key needs `scope` among its scopes.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.via {
            Via::Jwt { .. } => Ok(()),
            Via::ApiKey { scopes, .. } if scopes.contains(&scope) => Ok(()),
            Via::ApiKey { .. } => Err(ApiError::forbidden(
                "insufficient_scope",
                format!("this API key lacks the {scope} scope"),
            )),
        }
    }

    /// The account whose data this call reads or writes: the caller's own (they may do everything on it),
    /// or the team owner's it acts for, when the caller's role there is at least `needed`.
    pub fn account(&self, needed: TeamRole) -> Result<Uuid, ApiError> {
        match self.acting_for {
            None => Ok(self.user_id),
            Some(membership) if membership.role >= needed => Ok(membership.owner_id),
            Some(membership) => Err(ApiError::forbidden(
                "team_role_insufficient",
                format!(
                    "this needs the {needed:?} role on the team; the caller is {:?}",
                    membership.role
                )
                .to_lowercase(),
            )),
        }
    }

    /// Actions that manage credentials need the user themself, not an API key.
    pub fn require_user_session(&self) -> Result<(), ApiError> {
        match self.via {
            Via::Jwt { .. } => Ok(()),
            Via::ApiKey { .. } => Err(ApiError::forbidden(
                "user_session_required",
                "this action needs a user token, not an API key",
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            // Only a route outside the /v1 guard can get here: a wiring bug, not a client error.
            ApiError::Internal(anyhow::anyhow!(
                "Principal extracted on a route without the /v1 guard"
            ))
        })
    }
}

/// A refused authentication, with its `WWW-Authenticate` challenge (RFC 6750).
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Extra fields of the error object (the entitlement's reason).
    details: serde_json::Map<String, serde_json::Value>,
}

impl Refusal {
    fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code,
            message: message.into(),
            details: Default::default(),
        }
    }

    fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            ..Self::unauthorized(code, message)
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        error.as_object_mut().expect("object").extend(self.details);
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // No error attribute when no credentials were sent at all (RFC 6750 §3.1).
            let challenge = if self.code == "credentials_missing" {
                r#"Bearer realm="mingus""#.to_owned()
            } else {
                format!(
                    r#"Bearer realm="mingus", error="invalid_token", error_description="{}""#,
                    self.code
                )
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

enum Failure {
    Refused(Refusal),
    Error(ApiError),
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Failure::Error(err)
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Failure::Refused(refusal)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Refused(refusal) => refusal.into_response(),
            Failure::Error(err) => err.into_response(),
        }
    }
}

/// The middleware of every `/v1` route.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let now = Utc::now();
    let (principal, buckets) = match authenticate(&state, request.headers(), now).await {
        Ok(found) => found,
        Err(failure) => return failure.into_response(),
    };
    // A user token's feature check needs the caller's cached plan: read it beside the rate-limit
    // call (both travel on the multiplexed Redis connection together) rather than after it.
    let feature = prefetches(request.uri().path()).map(str::to_owned);
    let prefetch = async {
        match (&principal.via, feature) {
            (Via::Jwt { .. }, Some(feature)) => {
                let entitlements = &state.entitlements;
                entitlements
                    .prefetch(principal.user_id, Some(&feature), now)
                    .await
            }
            _ => None,
        }
    };
    // A user token's user must have a `users` row (an API key's owner has one: the key references it).
    let provisioned = async {
        match principal.via {
            Via::Jwt { .. } => {
                let exists = state
                    .v1
                    .provisioned
                    .exists(principal.user_id, Instant::now());
                exists.await.map_err(super::db_error)
            }
            Via::ApiKey { .. } => Ok(true),
        }
    };
    let (decision, prefetched, provisioned) =
        tokio::join!(state.v1.limiter.admit(&buckets), prefetch, provisioned);
    match provisioned {
        Ok(true) => {}
        Ok(false) => {
            return Refusal::forbidden(
                "user_not_provisioned",
                "the token's user has no account here yet (or it was deleted); finish sign-up first",
            )
            .into_response();
        }
        Err(err) => return err.into_response(),
    }
    if let Some(decision) = decision.filter(|d| !d.admitted) {
        let mut response = ApiError::client(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "rate limit of {} calls per hour reached; retry in {} s",
                decision.limit, decision.retry_after_secs
            ),
        )
        .into_response();
        decision.apply(response.headers_mut());
        return response;
    }
    if let Via::ApiKey { key_id, .. } = principal.via {
        state.v1.last_used.touch(key_id, now);
    }
    // `Mingus-Account`: acting for a team owner (after the rate limits: the caller's calls count).
    let mut principal = principal;
    match super::membership::acting_for(&state, request.headers(), &principal, now).await {
        Ok(membership) => principal.acting_for = membership,
        Err(mut refusal) => {
            if let Some(decision) = decision {
                decision.apply(refusal.headers_mut());
            }
            return refusal;
        }
    }
    request.extensions_mut().insert(principal);
    if let Some(prefetched) = prefetched {
        request.extensions_mut().insert(prefetched);
    }
    let mut response = next.run(request).await;
    if let Some(decision) = decision {
        decision.apply(response.headers_mut());
    }
    response
}

/// The feature, when the route checks one feature of the caller (`GET /v1/features/{feature}`): the
/// hot path the guard reads the caller's cached plan (and a metered feature's count) ahead for. Other
/// routes read the plan themselves when they need it, and most do not.
pub fn prefetches(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/features/")
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// The caller and the rate-limit buckets their call counts against.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<(Principal, Vec<Bucket>), Failure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Refusal::unauthorized(
            "credentials_missing",
            "send Authorization: Bearer <user token or API key>",
        )
        .into());
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Refusal::unauthorized(
                "authorization_invalid",
                "the Authorization header must be \"Bearer <user token or API key>\"",
            )
        })?;
    if token.starts_with("mk_") {
        return api_key(state, token, now).await;
    }
    let principal = user_token(state, token, now).await?;
    let limit = state.config.frontend.user_rate_limit_per_hour;
    let prefix = &state.config.redis.key_prefix;
    let buckets = vec![Bucket::user(prefix, principal.user_id, limit.into())];
    Ok((principal, buckets))
}

/// A user token: HS256 with `MINGUS_JWT_SECRET`, ES256/RS256 with the issuer's key named by `kid`.
async fn user_token(
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Principal, Failure> {
    let secret = state.config.jwt_secret.as_ref();
    let jwks = state.v1.jwks.as_deref();
    if secret.is_none() && jwks.is_none() {
        return Err(ApiError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "jwt_disabled",
            "user tokens cannot be checked: neither MINGUS_JWT_SECRET nor MINGUS_JWT_JWKS_URL is configured",
        )
        .into());
    }
    let refuse = |err: JwtError| Failure::from(Refusal::unauthorized(err.code(), err.message()));
    let wanted = jwt::header(token).map_err(refuse)?;
    let key = match (wanted.algorithm, secret, jwks) {
        (Algorithm::HS256, Some(secret), _) => {
            DecodingKey::from_secret(secret.expose_secret().as_bytes())
                .map_err(|_| refuse(JwtError::BadSignature))?
        }
        (Algorithm::ES256 | Algorithm::RS256, _, Some(jwks)) => {
            let kid = wanted.kid.ok_or_else(|| refuse(JwtError::UnknownKey))?;
            jwks.key(&kid).await.map_err(|err| match err {
                JwksError::UnknownKey => refuse(JwtError::UnknownKey),
                JwksError::Unavailable(reason) => {
                    Failure::from(ApiError::Unavailable(format!("JWKS: {reason}")))
                }
            })?
        }
        _ => return Err(refuse(JwtError::UnsupportedAlgorithm)),
    };
    let audience = &state.config.frontend.jwt_audience;
    let claims = jwt::verify_with(token, wanted.algorithm, &key, audience, now.timestamp())
        .map_err(refuse)?;
    // Supabase signs `anon` (the public key) and `service_role` (a backend's key) tokens with the same
    // secret and a `sub` of their choosing: neither is a signed-in user.
    if !state.config.frontend.jwt_user_roles.contains(&claims.role) {
        return Err(Refusal::forbidden(
            "token_role_not_user",
            format!(
                "a token with role {:?} cannot act as a user; sign in as a user",
                claims.role
            ),
        )
        .into());
    }
    Ok(Principal {
        user_id: claims.user_id,
        via: Via::Jwt { role: claims.role },
        acting_for: None,
    })
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: Uuid,
    user_id: Uuid,
    api_key_hash: String,
    permissions: serde_json::Value,
    rate_limit_per_hour: i32,
    expires_at: Option<DateTime<Utc>>,
    is_active: bool,
}

/// An API key's principal, and its buckets: the key's own, and its owner's tier (unless unlimited).
async fn api_key(
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(Principal, Vec<Bucket>), Failure> {
    let invalid = || Refusal::unauthorized("api_key_invalid", "unknown API key");
    if !keys::well_formed(token) {
        return Err(invalid().into());
    }
    let hash = keys::hash(token);
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT id, user_id, api_key_hash, permissions, rate_limit_per_hour, expires_at, is_active
         FROM api_keys WHERE api_key_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(&state.db)
    .await
    .map_err(super::db_error)?;
    // The index found the row by hash; comparing again in constant time costs nothing.
    let row = row
        .filter(|r| bool::from(r.api_key_hash.as_bytes().ct_eq(hash.as_bytes())))
        .ok_or_else(invalid)?;
    if !row.is_active {
        return Err(
            Refusal::unauthorized("api_key_revoked", "this API key has been revoked").into(),
        );
    }
    if row.expires_at.is_some_and(|at| at <= now) {
        return Err(Refusal::unauthorized("api_key_expired", "this API key has expired").into());
    }
    let check = state
        .entitlements
        .check(row.user_id, super::API_ACCESS, now)
        .await
        .map_err(super::dependency_error)?;
    if !check.access {
        let mut refusal = Refusal::forbidden(
            "api_access_required",
            "the key's owner no longer has a plan with API access",
        );
        refusal.details = super::check_details(&check);
        return Err(refusal.into());
    }
    let snapshot = state
        .entitlements
        .snapshot(row.user_id, now)
        .await
        .map_err(super::dependency_error)?;
    let tier_limit = snapshot
        .limits
        .get(super::API_CALLS_PER_HOUR)
        .and_then(serde_json::Value::as_i64)
        .and_then(|limit| u64::try_from(limit).ok());
    let rate_limit_per_hour = u32::try_from(row.rate_limit_per_hour).unwrap_or(1);
    let prefix = &state.config.redis.key_prefix;
    let mut buckets = vec![Bucket::api_key(prefix, row.id, rate_limit_per_hour.into())];
    buckets.extend(tier_limit.map(|limit| Bucket::tier(prefix, row.user_id, limit)));
    let principal = Principal {
        user_id: row.user_id,
        via: Via::ApiKey {
            key_id: row.id,
            scopes: Scope::from_permissions(&row.permissions),
            rate_limit_per_hour,
        },
        acting_for: None,
    };
    Ok((principal, buckets))
}

#[cfg(test)]
mod tests {
    use super::prefetches;

    #[test]
    fn only_the_one_feature_route_reads_the_plan_ahead() {
        assert_eq!(
            prefetches("/v1/features/basic_analytics"),
            Some("basic_analytics")
        );
        for other in [
            "/v1/features",
            "/v1/features/",
            "/v1/features/a/b",
            "/v1/reports",
        ] {
            assert_eq!(prefetches(other), None, "{other}");
        }
    }
}
