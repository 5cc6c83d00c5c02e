//! Which usage metric a feature is metered by, and how a snapshot answers a check (pure functions).
//!
//! | feature | metric | kind |
//! |---|---|---|
//! | `basic_analytics` | `financial_reports_per_month` | per usage period |
//! | `advanced_ai_insights` | `ai_insights_per_month` | per usage period |
//! | `custom_reports` | `custom_reports_per_month` | per usage period |
//! | `goal_setting` | `goal_tracking` | cap on goals tracked at once (counted by its owner) |
//! | `team_management` | `team_members` | cap on members (counted by the team routes) |
//! | `api_access` | `api_calls_per_hour` | rate (enforced by the rate limiter) |
//!
//! `health_checkins_per_month` is metered without a feature: every tier includes check-ins. Only the
//! `*_per_month` metrics are counted here (`usage_counters`); the caps and the rate are reported as limits.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Grant, GrantSource, Reason, Snapshot};

/// The features that are metered, with their metric.
pub const METERED_FEATURES: &[(&str, &str)] = &[
    ("basic_analytics", "financial_reports_per_month"),
    ("advanced_ai_insights", "ai_insights_per_month"),
    ("custom_reports", "custom_reports_per_month"),
    ("goal_setting", "goal_tracking"),
    ("team_management", "team_members"),
    ("api_access", "api_calls_per_hour"),
];

/// The metric a feature is metered by.
pub fn metric_of(feature: &str) -> Option<&'static str> {
    METERED_FEATURES
        .iter()
        .find(|(f, _)| *f == feature)
        .map(|(_, metric)| *metric)
}

/// Metrics counted per usage period in `usage_counters`.
pub fn is_periodic(metric: &str) -> bool {
    metric.ends_with("_per_month")
}

/// A limit value of `pricing_tiers.limits`: `None` = unlimited (`-1` or `true`), a missing or `false`
/// value is 0.
fn parse_limit(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if v < 0 => None,
            Some(v) => Some(v),
            None => Some(0),
        },
        Some(Value::Bool(true)) => None,
        _ => Some(0),
    }
}

/// The larger of two limits (`None` = unlimited is the largest).
fn max_limit(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

impl Grant {
    /// Grants access at `now`: a level other than `none`, not expired.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.level != "none" && self.expires_at.is_none_or(|at| at > now)
    }
}

impl Snapshot {
    /// Whether the effective subscription grants access at `now` (trial, active, past due in grace).
    pub fn subscription_active_at(&self, now: DateTime<Utc>) -> bool {
        self.access_ends_at.is_some_and(|end| end > now)
    }

    /// The grant of `feature` in force at `now`.
    pub fn grant_at(&self, feature: &str, now: DateTime<Utc>) -> Option<&Grant> {
        self.grants.get(feature).filter(|g| {
            g.active_at(now)
                && (g.source != GrantSource::Subscription || self.subscription_active_at(now))
        })
    }

    /// The limit of `metric` at `now` (`None` = unlimited): the tier's while the subscription grants
    /// access (0 without one), raised by promotion and admin grants of a feature metered by it — to
    /// unlimited at level `unlimited`, else to the limit of the cheapest tier that includes the feature.
    pub fn limit_at(&self, metric: &str, now: DateTime<Utc>) -> Option<i64> {
        let mut limit = if self.subscription_active_at(now) {
            parse_limit(self.limits.get(metric))
        } else {
            Some(0)
        };
        for (feature, grant) in &self.grants {
            if grant.source == GrantSource::Subscription
                || metric_of(feature) != Some(metric)
                || !grant.active_at(now)
            {
                continue;
            }
            let granted = if grant.level == "unlimited" {
                None
            } else {
                grant
                    .entry_limits
                    .as_ref()
                    .map_or(Some(0), |limits| parse_limit(limits.get(metric)))
            };
            limit = max_limit(limit, granted);
        }
        limit
    }

    /// Why `feature` is not available at `now` (given no grant is in force).
    pub fn refusal_at(&self, feature: &str, now: DateTime<Utc>) -> Reason {
        let Some(status) = self.status.as_deref() else {
            return if self.grants.contains_key(feature) {
                Reason::AccessExpired
            } else {
                Reason::NoActiveSubscription
            };
        };
        if !self.subscription_active_at(now) {
            return match status {
                "past_due" => Reason::PaymentPastDue,
                "cancelled" => Reason::SubscriptionCancelled,
                _ => Reason::AccessExpired,
            };
        }
        match self.grants.get(feature) {
            // A promotion or admin grant that has run out, on a tier without the feature.
            Some(grant) if grant.source != GrantSource::Subscription && grant.level != "none" => {
                Reason::AccessExpired
            }
            _ => Reason::FeatureNotIncluded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_parse_unlimited_missing_and_flags() {
        assert_eq!(parse_limit(Some(&json!(-1))), None);
        assert_eq!(parse_limit(Some(&json!(5))), Some(5));
        assert_eq!(parse_limit(Some(&json!(false))), Some(0));
        assert_eq!(parse_limit(None), Some(0));
        assert_eq!(max_limit(Some(2), None), None);
        assert_eq!(max_limit(Some(2), Some(5)), Some(5));
    }

    #[test]
    fn every_metered_feature_has_one_metric() {
        assert_eq!(
            metric_of("custom_reports"),
            Some("custom_reports_per_month")
        );
        assert_eq!(metric_of("email_support"), None);
        assert!(is_periodic("health_checkins_per_month"));
        assert!(!is_periodic("api_calls_per_hour"));
    }
}
