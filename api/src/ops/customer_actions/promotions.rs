//! Granting a feature to a customer for a while (`granted_by = 'promotion'`), and revoking it.
//!
//! A promotion is a `feature_access` row: it wins the `(user_id, feature_name)` row over a
//! subscription grant (the recompute leaves it alone while it is in force) and lifts the feature's
//! metric while it is in force. Revoking deletes a promotion or admin row and recomputes the user's subscription grants in the
//! same transaction, so a feature the tier includes comes back at the tier's level.
//!
//! A promotion over a feature the plan includes must raise its level (else 409 `already_included`: it
//! would change nothing). Once expired, the trial sweep's recompute deletes it and the tier's grant of
//! the feature returns (migration …120).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Change, begin, finish};
use crate::error::ApiError;
use crate::ops::actions::{CUSTOMER_PROMOTION_GRANT, CUSTOMER_PROMOTION_REVOKE};
use crate::ops::actor::Actor;
use crate::ops::{db_error, json as json_body};
use crate::state::AppState;

/// The longest promotion one request grants.
const MAX_DAYS: i64 = 366;
/// Levels a promotion may grant (`none` would be a revocation in disguise).
const LEVELS: [&str; 3] = ["basic", "premium", "unlimited"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    feature: String,
    access_level: String,
    /// RFC 3339; required: a promotion always ends.
    expires_at: String,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    access_level: String,
    expires_at: Option<DateTime<Utc>>,
    granted_by: String,
}

fn rank(level: &str) -> usize {
    ["none", "basic", "premium", "unlimited"]
        .iter()
        .position(|l| *l == level)
        .unwrap_or(0)
}

fn describe(row: Option<&Row>) -> Value {
    row.map_or(Value::Null, |r| {
        json!({ "access_level": r.access_level, "expires_at": r.expires_at, "granted_by": r.granted_by })
    })
}

/// A feature some tier offers (the features `/v1/features` knows).
async fn known_feature(conn: &mut PgConnection, feature: &str) -> Result<(), ApiError> {
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pricing_tiers WHERE features ? $1)")
            .bind(feature)
            .fetch_one(conn)
            .await
            .map_err(db_error)?;
    if known {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "unknown_feature",
            format!("no tier offers a feature {feature:?}"),
        ))
    }
}

/// The row of the feature, locked for the rest of the transaction.
async fn current(
    conn: &mut PgConnection,
    user: Uuid,
    feature: &str,
) -> Result<Option<Row>, ApiError> {
    sqlx::query_as(
        "SELECT access_level::text AS access_level, expires_at, granted_by::text AS granted_by
         FROM feature_access WHERE user_id = $1 AND feature_name = $2 FOR UPDATE",
    )
    .bind(user)
    .bind(feature)
    .fetch_optional(conn)
    .await
    .map_err(db_error)
}

fn expiry(raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_expires_at",
            format!(
                "expires_at must be an RFC 3339 time in the future, at most {MAX_DAYS} days ahead"
            ),
        )
    };
    let at = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|_| invalid())?
        .with_timezone(&Utc)
        // PostgreSQL keeps microseconds: a repeat of the same request must compare equal.
        .trunc_subsecs(6);
    if at <= now || at > now + Duration::days(MAX_DAYS) {
        return Err(invalid());
    }
    Ok(at)
}

/// `POST /ops/customers/{id}/promotions` `{"feature", "access_level", "expires_at"}`.
pub async fn grant(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(raw): Path<String>,
    body: Result<Json<GrantRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = json_body(body)?;
    let level = request.access_level.trim();
    if !LEVELS.contains(&level) {
        return Err(ApiError::bad_request(
            "invalid_access_level",
            format!("access_level must be one of {}", LEVELS.join(", ")),
        ));
    }
    let expires_at = expiry(&request.expires_at, Utc::now())?;
    let feature = request.feature.trim();
    let (user, mut tx) = begin(&state, &raw).await?;
    known_feature(&mut tx, feature).await?;
    // Serialised with the access recompute of this user (it takes the same lock).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('entitlements:' || $1::text, 0))")
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let before = current(&mut tx, user, feature).await?;
    if before.as_ref().is_some_and(|r| r.granted_by == "admin") {
        return Err(ApiError::conflict(
            "admin_grant_exists",
            format!("{feature} is granted by an admin; revoke that grant before promoting it"),
        ));
    }
    // A promotion that adds nothing to the tier's own grant would only take its place, and outlive
    // it: an expired promotion keeps the row, so the tier's grant would not come back by itself.
    if let Some(row) = before.as_ref().filter(|r| {
        r.granted_by == "subscription"
            && r.expires_at.is_none_or(|at| at > Utc::now())
            && rank(&r.access_level) >= rank(level)
    }) {
        return Err(ApiError::conflict(
            "already_included",
            format!(
                "the customer's plan already grants {feature} at {}; a promotion must raise the level",
                row.access_level
            ),
        ));
    }
    let same = before.as_ref().is_some_and(|r| {
        r.granted_by == "promotion" && r.access_level == level && r.expires_at == Some(expires_at)
    });
    if !same {
        sqlx::query(
            "INSERT INTO feature_access (user_id, feature_name, access_level, expires_at, granted_by)
             VALUES ($1, $2, $3, $4, 'promotion')
             ON CONFLICT (user_id, feature_name) DO UPDATE
                 SET access_level = EXCLUDED.access_level, expires_at = EXCLUDED.expires_at,
                     granted_by = 'promotion', granted_at = now()",
        )
        .bind(user)
        .bind(feature)
        .bind(level)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    }
    let change = Change {
        changed: !same,
        before: json!({ "feature": feature, "grant": describe(before.as_ref()) }),
        after: json!({ "feature": feature, "grant": {
            "access_level": level, "expires_at": expires_at, "granted_by": "promotion" } }),
    };
    finish(&state, &actor, CUSTOMER_PROMOTION_GRANT, user, tx, change).await
}

/// `POST /ops/customers/{id}/promotions/{feature}/revoke`: removes a promotion or admin grant; a
/// subscription's grant is refused (409 `subscription_grant`: change the subscription instead).
pub async fn revoke(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((raw, feature)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let feature = feature.trim().to_owned();
    let (user, mut tx) = begin(&state, &raw).await?;
    known_feature(&mut tx, &feature).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('entitlements:' || $1::text, 0))")
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let before = current(&mut tx, user, &feature).await?;
    if before
        .as_ref()
        .is_some_and(|r| r.granted_by == "subscription")
    {
        return Err(ApiError::conflict(
            "subscription_grant",
            format!(
                "{feature} is granted by the customer's subscription, not a promotion; it follows the subscription"
            ),
        ));
    }
    if before.is_some() {
        sqlx::query("DELETE FROM feature_access WHERE user_id = $1 AND feature_name = $2")
            .bind(user)
            .bind(&feature)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // The tier's own grant of the feature, if it has one, takes the freed row.
        mingus_common::billing::access::recompute(&mut tx, user, Utc::now())
            .await
            .map_err(db_error)?;
    }
    let after = current(&mut tx, user, &feature).await?;
    let change = Change {
        changed: before.is_some(),
        before: json!({ "feature": feature, "grant": describe(before.as_ref()) }),
        after: json!({ "feature": feature, "grant": describe(after.as_ref()) }),
    };
    finish(&state, &actor, CUSTOMER_PROMOTION_REVOKE, user, tx, change).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_is_a_future_time_within_the_bound() {
        let now = Utc::now();
        let ok = (now + Duration::days(30)).to_rfc3339();
        assert!(expiry(&ok, now).is_ok());
        for bad in [
            "tomorrow".to_owned(),
            (now - Duration::minutes(1)).to_rfc3339(),
            (now + Duration::days(MAX_DAYS + 1)).to_rfc3339(),
        ] {
            assert!(expiry(&bad, now).is_err(), "{bad}");
        }
    }
}
