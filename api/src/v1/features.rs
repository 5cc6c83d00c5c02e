//! `GET /v1/features` and `GET /v1/features/{feature}`: the entitlement answer for the caller — access,
//! the reason when refused, tier, access level, usage, limit and when the usage resets.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::{Extension, Json};
use chrono::Utc;
use mingus_common::entitlements::Prefetched;
use serde_json::{Value, json};
use tokio::sync::RwLock;

use super::{PathParam, Principal, Scope};
use crate::error::ApiError;
use crate::state::AppState;

/// How long the catalogue of feature names (from `pricing_tiers`) is reused before it is read again.
const CATALOGUE_TTL: Duration = Duration::from_secs(60);

/// The feature names any tier offers, read from `pricing_tiers` at most once a minute per process, so a
/// check costs no database round trip when the user's entitlements are cached.
#[derive(Clone, Default)]
pub struct Catalogue {
    names: Arc<RwLock<Option<Loaded>>>,
}

/// The names and when they were read.
type Loaded = (Instant, Arc<BTreeSet<String>>);

impl Catalogue {
    async fn names(&self, state: &AppState) -> Result<Arc<BTreeSet<String>>, ApiError> {
        if let Some((read_at, names)) = self.names.read().await.as_ref()
            && read_at.elapsed() < CATALOGUE_TTL
        {
            return Ok(names.clone());
        }
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT f FROM pricing_tiers, jsonb_object_keys(features) AS f ORDER BY f",
        )
        .fetch_all(&state.db)
        .await
        .map_err(super::db_error)?;
        let names = Arc::new(rows.into_iter().collect::<BTreeSet<_>>());
        *self.names.write().await = Some((Instant::now(), names.clone()));
        Ok(names)
    }
}

/// Every feature of the catalogue, checked for the caller, and every metric of the plan (as `GET
/// /v1/usage` answers them).
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::FeaturesRead)?;
    let names = state.v1.features.names(&state).await?;
    let now = Utc::now();
    // Every metric of the plan too (issue 21): check-ins have no feature of their own, and the caps'
    // usage tells the app that a downgraded user is over a cap (`over_limit`).
    let (checks, metrics) = tokio::join!(
        state
            .entitlements
            .check_all(principal.user_id, names.iter().map(String::as_str), now),
        state.entitlements.metrics(principal.user_id, now),
    );
    let checks = checks.map_err(super::dependency_error)?;
    let metrics = metrics.map_err(super::dependency_error)?;
    Ok(Json(json!({ "features": checks, "metrics": metrics })))
}

/// One feature, checked for the caller; 404 for a name no tier offers. The caller's cached plan was
/// usually read by the `/v1` guard beside its rate-limit call ([`super::auth::prefetches`]).
pub async fn one(
    State(state): State<AppState>,
    principal: Principal,
    prefetched: Option<Extension<Prefetched>>,
    PathParam(feature): PathParam<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::FeaturesRead)?;
    if !state.v1.features.names(&state).await?.contains(&feature) {
        return Err(ApiError::not_found(format!(
            "no feature named {feature:?}; GET /v1/features lists them"
        )));
    }
    let check = state
        .entitlements
        .check_prefetched(
            principal.user_id,
            &feature,
            Utc::now(),
            prefetched.as_ref().map(|p| &p.0),
        )
        .await
        .map_err(super::dependency_error)?;
    Ok(Json(json!(check)))
}
