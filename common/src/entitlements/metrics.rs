//! Every limit of a plan as one list (issue 21): the metered-usage API's consume and read, and the
//! `metrics` of `GET /v1/features`.
//!
//! | metric | kind | feature needed | counted by |
//! |---|---|---|---|
//! | `health_checkins_per_month` | per period | none (every tier; an effective subscription) | `POST /v1/usage/…`, the check-in trigger |
//! | `financial_reports_per_month` | per period | `basic_analytics` | `POST /v1/reports`, `POST /v1/usage/…` |
//! | `ai_insights_per_month` | per period | `advanced_ai_insights` | `POST /v1/usage/…` |
//! | `custom_reports_per_month` | per period | `custom_reports` | `POST /v1/reports`, `POST /v1/usage/…` |
//! | `goal_tracking` | cap (active goals) | `goal_setting` | the `goals` trigger |
//! | `team_members` | cap (pending + active) | `team_management` | the team route, the `team_members` trigger |
//! | `api_calls_per_hour` | rate | `api_access` | the rate limiter (usage not reported) |
//!
//! A cap's usage is the number of rows that count against it now, so after a downgrade it may exceed
//! the limit (`over_limit`): existing rows are kept, new ones refused until the user is under the cap.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::consumes::Consume;
use super::{Entitlements, Reason, Snapshot, features, store};

/// How a metric limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Units per usage period (monthly billing anniversaries), reset at `resets_at`.
    PerPeriod,
    /// Rows that exist at once.
    Cap,
    /// Calls per hour (the rate limiter's business).
    Rate,
}

/// Every metric of the tiers' `limits`, with its kind and the feature it needs (if any).
pub const METRICS: &[(&str, Kind, Option<&str>)] = &[
    ("health_checkins_per_month", Kind::PerPeriod, None),
    (
        "financial_reports_per_month",
        Kind::PerPeriod,
        Some("basic_analytics"),
    ),
    (
        "ai_insights_per_month",
        Kind::PerPeriod,
        Some("advanced_ai_insights"),
    ),
    (
        "custom_reports_per_month",
        Kind::PerPeriod,
        Some("custom_reports"),
    ),
    ("goal_tracking", Kind::Cap, Some("goal_setting")),
    ("team_members", Kind::Cap, Some("team_management")),
    ("api_calls_per_hour", Kind::Rate, Some("api_access")),
];

/// The metric's kind and feature, if it is one of [`METRICS`].
pub fn describe(metric: &str) -> Option<(&'static str, Kind, Option<&'static str>)> {
    METRICS.iter().copied().find(|(m, _, _)| *m == metric)
}

/// One metric of the caller's plan now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricUsage {
    pub metric: &'static str,
    pub kind: Kind,
    pub feature: Option<&'static str>,
    /// Whether one more unit (or row) would be accepted now.
    pub access: bool,
    pub reason: Option<Reason>,
    /// Units used this period, or rows counting against a cap; `None` for the rate.
    pub usage: Option<i64>,
    /// `None`: unlimited.
    pub limit: Option<i64>,
    /// `limit − usage`, never below 0; `None` when unlimited or not counted.
    pub remaining: Option<i64>,
    /// A cap exceeded after a downgrade: existing rows are kept, new ones refused.
    pub over_limit: bool,
    /// When a periodic metric's usage starts again from 0.
    pub resets_at: Option<DateTime<Utc>>,
}

/// What a consume of the metered-usage API did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Consumed,
    /// The allowance would be exceeded; nothing was counted.
    Refused,
    /// The key was used before: nothing new was counted. Carries the original request.
    Replayed {
        metric: &'static str,
        amount: i64,
    },
}

/// The answer of [`Entitlements::consume_once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumedOnce {
    pub outcome: Outcome,
    /// Units used in the (original request's) period after this call.
    pub used: i64,
    pub limit: Option<i64>,
    pub resets_at: DateTime<Utc>,
}

/// Why a metric may not be used at all now (before counting), if so: its feature is not in force, or
/// (for a metric without a feature) no subscription grants access.
pub fn refusal(snapshot: &Snapshot, metric: &str, now: DateTime<Utc>) -> Option<Reason> {
    let (_, _, feature) = describe(metric)?;
    match feature {
        Some(feature) => snapshot
            .grant_at(feature, now)
            .is_none()
            .then(|| snapshot.refusal_at(feature, now)),
        // Every tier includes check-ins: only the subscription's own state can refuse them.
        None => (!snapshot.subscription_active_at(now)).then(|| snapshot.refusal_at(metric, now)),
    }
}

impl Entitlements {
    /// Every metric of [`METRICS`] for the user at `now`, against one read of the plan.
    pub async fn metrics(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<MetricUsage>> {
        let snapshot = self.snapshot(user_id, now).await?;
        let reads = METRICS
            .iter()
            .map(|(metric, _, _)| self.metric_usage(&snapshot, user_id, metric, now));
        futures::future::try_join_all(reads).await
    }

    /// One metric of [`METRICS`] for the user at `now`; `None` for a name that is not one.
    pub async fn metric(
        &self,
        user_id: Uuid,
        metric: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<MetricUsage>> {
        if describe(metric).is_none() {
            return Ok(None);
        }
        let snapshot = self.snapshot(user_id, now).await?;
        Ok(Some(
            self.metric_usage(&snapshot, user_id, metric, now).await?,
        ))
    }

    async fn metric_usage(
        &self,
        snapshot: &Snapshot,
        user_id: Uuid,
        metric: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<MetricUsage> {
        let (metric, kind, feature) =
            describe(metric).ok_or_else(|| anyhow::anyhow!("unknown metric {metric:?}"))?;
        let refused = refusal(snapshot, metric, now);
        let limit = snapshot.limit_at(metric, now);
        let (usage, resets_at) = match kind {
            Kind::PerPeriod => {
                let period = match snapshot.period_at(now) {
                    Some(period) => period,
                    None => store::period(&self.pool, snapshot.usage_anchor, now).await?,
                };
                let used = self.usage_reads.read(user_id, metric, period).await?;
                (Some(used), Some(period.end))
            }
            Kind::Cap => (Some(cap_usage(&self.pool, user_id, metric).await?), None),
            Kind::Rate => (None, None),
        };
        let full = matches!((usage, limit), (Some(used), Some(limit)) if used >= limit);
        let reason = refused.or(full.then_some(Reason::UsageLimitExceeded));
        Ok(MetricUsage {
            metric,
            kind,
            feature,
            access: reason.is_none(),
            reason,
            usage,
            limit,
            remaining: usage.zip(limit).map(|(used, limit)| (limit - used).max(0)),
            over_limit: matches!((usage, limit), (Some(used), Some(limit)) if used > limit),
            resets_at,
        })
    }

    /// Consumes `amount` of the periodic `metric` for `user_id` once per `key`: the same key never
    /// counts twice, also concurrently (`mingus_consume_usage()`, one statement, committed with the
    /// consumes that arrive at the same time: `consumes`). The caller has checked
    /// the metric's feature on `snapshot`; the limit and the period are the snapshot's.
    #[allow(clippy::too_many_arguments)]
    pub async fn consume_once(
        &self,
        snapshot: &Snapshot,
        user_id: Uuid,
        metric: &str,
        amount: i64,
        key: &str,
        requested_by: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<ConsumedOnce> {
        anyhow::ensure!(
            features::is_periodic(metric),
            "{metric:?} is not a metric counted per usage period"
        );
        let limit = snapshot.limit_at(metric, now);
        let period = match snapshot.period_at(now) {
            Some(period) => period,
            None => store::period(&self.pool, snapshot.usage_anchor, now).await?,
        };
        let (outcome, used, stored_metric, stored_amount, resets_at) = self
            .consumes
            .apply(Consume {
                user_id,
                key: key.to_owned(),
                metric: metric.to_owned(),
                amount,
                limit,
                period,
                requested_by,
            })
            .await?;
        let outcome = match outcome.as_str() {
            "consumed" => Outcome::Consumed,
            "refused" => Outcome::Refused,
            _ => Outcome::Replayed {
                metric: describe(&stored_metric)
                    .map(|(m, _, _)| m)
                    .unwrap_or("unknown"),
                amount: stored_amount,
            },
        };
        Ok(ConsumedOnce {
            outcome,
            used,
            limit,
            resets_at,
        })
    }
}

/// Rows counting against a cap now: active goals, or pending and active team members.
async fn cap_usage(pool: &sqlx::PgPool, user_id: Uuid, metric: &str) -> Result<i64, sqlx::Error> {
    let sql = match metric {
        "goal_tracking" => "SELECT count(*) FROM goals WHERE user_id = $1 AND status = 'active'",
        _ => {
            "SELECT count(*) FROM team_members
             WHERE team_owner_id = $1 AND status IN ('pending', 'active')"
        }
    };
    sqlx::query_scalar(sql).bind(user_id).fetch_one(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_of_the_seed_is_a_metric_and_periodic_ones_are_counted() {
        for name in [
            "health_checkins_per_month",
            "financial_reports_per_month",
            "ai_insights_per_month",
            "custom_reports_per_month",
            "goal_tracking",
            "team_members",
            "api_calls_per_hour",
        ] {
            let (_, kind, feature) = describe(name).expect(name);
            assert_eq!(kind == Kind::PerPeriod, features::is_periodic(name));
            if let Some(feature) = feature {
                assert_eq!(features::metric_of(feature), Some(name));
            }
        }
        assert!(describe("custom_reports").is_none());
    }
}
