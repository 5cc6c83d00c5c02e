//! `feature_access` rows granted by subscriptions, recomputed from the user's subscriptions.
//!
//! The user's *effective* subscription is the one granting access now (the highest tier if several do),
//! else the one whose access ended last. Its tier's `pricing_tiers.features` become `granted_by =
//! 'subscription'` rows (level via `mingus_access_level()`), all expiring at the end of access:
//!
//! | local status | end of access |
//! |---|---|
//! | `trial` | `trial_end` (else the period end) |
//! | `active` (also with `cancel_at_period_end`) | `current_period_end` |
//! | `past_due` whose Stripe status is `past_due` (or none / `active`: set by the renewal sweep) | `grace_until` |
//! | `past_due` whose Stripe status is `unpaid`, `incomplete` or `paused`; `cancelled` | none |
//!
//! Without access, rows expire at the moment access ended (`ended_at`, a past `grace_until` or period
//! end), never later than now. Rows of features the tier no longer has are deleted. Rows granted by
//! `promotion` or `admin` are never touched: the unique `(user_id, feature_name)` lets them win.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// What [`recompute`] granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    /// The effective subscription's tier; `None` when the user has no subscription.
    pub tier: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub has_access: bool,
}

const EFFECTIVE_SUBSCRIPTION: &str = "
    WITH access AS (
        SELECT plan_tier, ended_at, created_at,
            CASE
                WHEN status = 'trial' THEN coalesce(trial_end, current_period_end)
                WHEN status = 'active' THEN current_period_end
                WHEN status = 'past_due' AND (stripe_status IS NULL OR stripe_status IN ('past_due', 'active'))
                    THEN coalesce(grace_until, current_period_end)
            END AS access_end
        FROM subscriptions WHERE user_id = $1
    )
    SELECT plan_tier,
        CASE WHEN access_end > $2 THEN access_end ELSE least(coalesce(access_end, ended_at, $2), $2) END,
        coalesce(access_end > $2, false)
    FROM access
    ORDER BY coalesce(access_end > $2, false) DESC,
        CASE WHEN access_end > $2
            THEN array_position(ARRAY['essentials', 'professional', 'executive']::text[], plan_tier::text) END
            DESC NULLS LAST,
        coalesce(access_end, ended_at) DESC NULLS LAST,
        created_at DESC
    LIMIT 1";

/// Recomputes the user's subscription-granted rows as of `now`, in the caller's transaction (serialised
/// per user). Call [`invalidate_entitlement_cache`] after the transaction commits.
pub async fn recompute(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Entitlement, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('entitlements:' || $1::text, 0))")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let chosen: Option<(String, DateTime<Utc>, bool)> = sqlx::query_as(EFFECTIVE_SUBSCRIPTION)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    let tier = chosen.as_ref().map(|(tier, _, _)| tier.clone());
    // Grant the tier's features and drop the subscription grants it no longer includes, in one statement:
    // the two touch disjoint rows (features of the tier vs. features outside it), so neither sub-statement
    // can see or undo the other's work. Without an effective subscription ($2 NULL) nothing is granted
    // and every subscription grant goes.
    sqlx::query(
        "WITH granted AS (
             INSERT INTO feature_access (user_id, feature_name, access_level, expires_at, granted_by)
             SELECT $1, f.key, mingus_access_level(f.value), $3, 'subscription'
             FROM pricing_tiers t CROSS JOIN LATERAL jsonb_each(t.features) f
             WHERE t.tier_name = $2
             ORDER BY f.key
             ON CONFLICT (user_id, feature_name) DO UPDATE
                 SET access_level = EXCLUDED.access_level, expires_at = EXCLUDED.expires_at
                 WHERE feature_access.granted_by = 'subscription'
                   AND (feature_access.access_level, feature_access.expires_at)
                       IS DISTINCT FROM (EXCLUDED.access_level, EXCLUDED.expires_at)
             RETURNING 1
         )
         DELETE FROM feature_access fa
         WHERE fa.user_id = $1 AND fa.granted_by = 'subscription'
           AND NOT EXISTS (SELECT 1 FROM pricing_tiers t CROSS JOIN LATERAL jsonb_each(t.features) f
                           WHERE t.tier_name = $2 AND f.key = fa.feature_name)",
    )
    .bind(user_id)
    .bind(&tier)
    .bind(chosen.as_ref().map(|(_, expires_at, _)| *expires_at))
    .execute(&mut *conn)
    .await?;
    Ok(Entitlement {
        tier,
        expires_at: chosen.as_ref().map(|(_, at, _)| *at),
        has_access: chosen.is_some_and(|(_, _, access)| access),
    })
}

/// The entitlement cache invalidation hook: called after a transaction that changed these users'
/// access has committed. Nothing caches entitlements yet, so it only logs; a cache (e.g. in Redis) adds
/// its eviction here.
pub fn invalidate_entitlement_cache(user_ids: &[Uuid]) {
    if !user_ids.is_empty() {
        tracing::debug!(users = user_ids.len(), "entitlements changed");
    }
}
