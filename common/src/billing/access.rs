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

/// Recomputes the user's subscription-granted rows as of `now`, in the caller's transaction (serialised
/// per user by an advisory lock). One server-side call, `mingus_recompute_access` (migration
/// `…14_stripe_apply`), holds the rules above. Evict the user's cached entitlements
/// (`entitlements::evict::Evictor::after_commit`) after the transaction commits.
pub async fn recompute(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Entitlement, sqlx::Error> {
    let (tier, expires_at, has_access): (Option<String>, Option<DateTime<Utc>>, bool) =
        sqlx::query_as(
            "SELECT out_tier, out_expires_at, out_has_access FROM mingus_recompute_access($1, $2)",
        )
        .bind(user_id)
        .bind(now)
        .fetch_one(conn)
        .await?;
    Ok(Entitlement {
        tier,
        expires_at,
        has_access,
    })
}
