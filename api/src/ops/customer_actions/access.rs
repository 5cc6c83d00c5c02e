//! Re-running the access recompute for one user (`billing::access::recompute`, the call Stripe
//! processing and the sweeps make): for "the subscription says Professional but the features say
//! Essentials". Idempotent by nature; `changed` says whether the subscription grants moved.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::Utc;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Change, begin, finish};
use crate::error::ApiError;
use crate::ops::actions::CUSTOMER_ACCESS_RECOMPUTE;
use crate::ops::actor::Actor;
use crate::ops::db_error;
use crate::state::AppState;

/// The user's `feature_access` rows as one object: feature → level, expiry, source.
async fn grants(conn: &mut PgConnection, user: Uuid) -> Result<Value, ApiError> {
    sqlx::query_scalar(
        "SELECT coalesce(jsonb_object_agg(feature_name, jsonb_build_object(
                    'access_level', access_level, 'expires_at', expires_at, 'granted_by', granted_by)), '{}')
         FROM feature_access WHERE user_id = $1",
    )
    .bind(user)
    .fetch_one(conn)
    .await
    .map_err(db_error)
}

/// `POST /ops/customers/{id}/access/recompute`.
pub async fn recompute(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (user, mut tx) = begin(&state, &raw).await?;
    // Taken before reading, so the "before" is what the recompute starts from.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('entitlements:' || $1::text, 0))")
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let before = grants(&mut tx, user).await?;
    let entitlement = mingus_common::billing::access::recompute(&mut tx, user, Utc::now())
        .await
        .map_err(db_error)?;
    let after = grants(&mut tx, user).await?;
    let change = Change {
        changed: before != after,
        before: json!({ "grants": before }),
        after: json!({ "grants": after, "tier": entitlement.tier,
                       "has_access": entitlement.has_access, "expires_at": entitlement.expires_at }),
    };
    finish(&state, &actor, CUSTOMER_ACCESS_RECOMPUTE, user, tx, change).await
}
