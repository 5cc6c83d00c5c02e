//! Feature access and metered usage (issue 5): may this user use this feature now, how much of its
//! monthly allowance is left, and when does it reset.
//!
//! **Sources.** The effective subscription (`mingus_effective_subscription()`, the rules of
//! [`crate::billing::access`]: trial, active, past due within grace), its tier's `pricing_tiers.limits`
//! (`-1` unlimited), and the user's `feature_access` rows: subscription grants (kept by
//! `billing::access::recompute`) and promotion/admin grants, which win for their feature until they
//! expire and lift its metric's limit (see [`Snapshot::limit_at`]). Features map to metrics in
//! [`features`].
//!
//! **Usage periods** are monthly anniversaries of the user's own billing anchor — the effective
//! subscription's `current_period_start`, else the account's creation — the day clamped in short months
//! (`mingus_usage_period()`), not calendar months. Counters (`usage_counters`) are read and written in
//! PostgreSQL on every call, never cached.
//!
//! **Cache.** The plan (not the usage) is cached in Redis for at most 300 s ([`cache`]), and never past
//! the next moment it changes by itself (a grant's expiry, the end of access, the end of the period).
//! Writers of access evict after their commit: the worker's Stripe processing and billing sweeps
//! through their [`evict::Evictor`] (the worker's Redis and key prefix), anything else with
//! [`Entitlements::invalidate`]. A write that evicts nothing (a
//! hand-edited row, a `pricing_tiers` change) shows within the TTL. Database triggers sending NOTIFY
//! were tried and dropped: PostgreSQL serialises the commits of notifying transactions on one lock, which
//! cut Stripe event processing by 28 % (1,446 → 1,047 events/s).

mod cache;
mod consumes;
pub mod evict;
pub mod features;
pub mod metrics;
pub mod reset;
mod store;
mod usage_reads;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// Entitlement checks and usage counters: cheap to clone, one per process.
#[derive(Clone)]
pub struct Entitlements {
    pool: PgPool,
    cache: cache::Cache,
    usage_reads: usage_reads::UsageReads,
    consumes: consumes::UsageConsumes,
}

/// The user's plan, as computed at `computed_at` and cached until `valid_until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The effective subscription's tier (also after access ended); `None` without a subscription.
    pub tier: Option<String>,
    /// Its local status (`trial`, `active`, `past_due`, `cancelled`).
    pub status: Option<String>,
    /// Feature → access level, of the grants in force at `computed_at`.
    pub features: BTreeMap<String, String>,
    /// The tier's `pricing_tiers.limits` (`-1` unlimited).
    pub limits: serde_json::Map<String, serde_json::Value>,
    /// The usage period containing `computed_at`.
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    /// When the subscription's access ends (or ended); `None` if it has none.
    pub access_ends_at: Option<DateTime<Utc>>,
    /// Usage periods are monthly anniversaries of this instant.
    pub usage_anchor: DateTime<Utc>,
    /// Every `feature_access` row, expired ones included (they explain refusals).
    pub grants: BTreeMap<String, Grant>,
    pub computed_at: DateTime<Utc>,
    /// The first moment this snapshot may no longer be right without any write.
    pub valid_until: DateTime<Utc>,
}

/// One `feature_access` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub level: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub source: GrantSource,
    /// Promotion/admin grants: the limits of the cheapest tier that includes the feature.
    pub entry_limits: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    Subscription,
    Promotion,
    Admin,
}

/// The answer to "may this user use this feature now?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureCheck {
    pub feature: String,
    pub access: bool,
    pub reason: Option<Reason>,
    pub tier: Option<String>,
    pub access_level: Option<String>,
    /// Units used in the current period (metered features with access).
    pub usage: Option<i64>,
    /// The metric's limit (`None`: unlimited or not metered).
    pub limit: Option<i64>,
    /// When the usage period ends (metered features with access).
    pub resets_at: Option<DateTime<Utc>>,
}

/// Why access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The user never had a subscription (nor a grant of this feature).
    NoActiveSubscription,
    /// The subscription grants access, but its tier does not include the feature.
    FeatureNotIncluded,
    /// The period's allowance is used up; see `resets_at`.
    UsageLimitExceeded,
    /// Payment failed and the grace period is over.
    PaymentPastDue,
    SubscriptionCancelled,
    /// The trial or period ended without renewal, or a promotion/admin grant expired.
    AccessExpired,
}

/// The outcome of [`Entitlements::consume`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consumed {
    pub allowed: bool,
    /// Units used in the period after this call (unchanged when refused).
    pub used: i64,
    /// `None` = unlimited.
    pub limit: Option<i64>,
    pub resets_at: DateTime<Utc>,
}

/// A user's cache read done ahead of time ([`Entitlements::prefetch`]); it carries the generation it
/// saw, so a snapshot computed after it is stored only if nothing was invalidated since.
#[derive(Clone)]
pub struct Prefetched {
    user_id: Uuid,
    read: std::sync::Arc<cache::Read>,
    counted: Option<Counted>,
}

/// A usage count read ahead with the plan.
#[derive(Debug, Clone, Copy)]
struct Counted {
    metric: &'static str,
    period: store::Period,
    used: i64,
}

impl Prefetched {
    /// The count read ahead, if it is of this user, metric and period.
    fn used(&self, user_id: Uuid, metric: &str, period: store::Period) -> Option<i64> {
        let counted = self.counted.filter(|_| self.user_id == user_id)?;
        (counted.metric == metric && counted.period == period).then_some(counted.used)
    }
}

/// The user id does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown user {0}")]
pub struct UnknownUser(pub Uuid);

impl Snapshot {
    fn new(plan: store::Plan, grants: BTreeMap<String, Grant>, now: DateTime<Utc>) -> Self {
        let mut snapshot = Snapshot {
            tier: plan.tier,
            status: plan.status,
            features: BTreeMap::new(),
            limits: plan.limits,
            period_start: Some(plan.period_start),
            period_end: Some(plan.period_end),
            access_ends_at: plan.access_ends_at,
            usage_anchor: plan.usage_anchor,
            grants,
            computed_at: now,
            valid_until: now,
        };
        snapshot.features = snapshot
            .grants
            .keys()
            .filter_map(|f| Some((f.clone(), snapshot.grant_at(f, now)?.level.clone())))
            .collect();
        let changes = snapshot
            .grants
            .values()
            .filter_map(|g| g.expires_at)
            .chain(snapshot.access_ends_at)
            .chain(Some(plan.period_end))
            .filter(|at| *at > now);
        snapshot.valid_until = changes
            .fold(now + chrono::Duration::seconds(cache::TTL_SECS), |a, b| {
                a.min(b)
            });
        snapshot
    }

    fn valid_at(&self, now: DateTime<Utc>) -> bool {
        self.computed_at <= now && now < self.valid_until
    }

    /// The usage period containing `now`, when it is the one this snapshot was computed in; it saves
    /// the hot paths (every metered check, every consume) calling `mingus_usage_period()` again.
    fn period_at(&self, now: DateTime<Utc>) -> Option<store::Period> {
        match (self.period_start, self.period_end) {
            (Some(start), Some(end)) if start <= now && now < end => {
                Some(store::Period { start, end })
            }
            _ => None,
        }
    }
}

impl Entitlements {
    /// `key_prefix` is `REDIS_KEY_PREFIX` (`mingus`): keys are `<prefix>_entitlements:…`.
    pub fn new(pool: PgPool, redis: ConnectionManager, key_prefix: &str) -> Self {
        Self {
            usage_reads: usage_reads::UsageReads::new(pool.clone()),
            consumes: consumes::UsageConsumes::new(pool.clone()),
            pool,
            cache: cache::Cache::new(redis, key_prefix),
        }
    }

    /// The Redis key of the user's cached snapshot (for operators and tests).
    pub fn cache_key(&self, user_id: Uuid) -> String {
        self.cache.snapshot_key(user_id)
    }

    /// Cached (Redis, TTL ≤ 300 s) view of the user's plan at `now`. A Redis failure degrades to
    /// reading the database.
    pub async fn snapshot(&self, user_id: Uuid, now: DateTime<Utc>) -> anyhow::Result<Snapshot> {
        Ok(Snapshot::clone(
            &*self.shared_snapshot(user_id, now, None).await?,
        ))
    }

    /// Reads the user's cached plan ahead of a [`Entitlements::check_prefetched`], so the read can
    /// travel beside another Redis call (the API's rate limit) instead of after it. For a metered
    /// `feature`, the usage count is read at the same time, for the period of the snapshot this process
    /// last saw for the user; the check uses it only if the plan it gets has that same period. Both
    /// reads start after the caller's request arrived, so neither is stale. `None` when Redis did not
    /// answer (the check then reads as usual).
    pub async fn prefetch(
        &self,
        user_id: Uuid,
        feature: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<Prefetched> {
        let guess = feature
            .and_then(features::metric_of)
            .filter(|metric| features::is_periodic(metric))
            .and_then(|metric| Some((metric, self.cache.remembered(user_id)?.period_at(now)?)));
        let count = async {
            let (metric, period) = guess?;
            let used = self.usage_reads.read(user_id, metric, period).await.ok()?;
            Some(Counted {
                metric,
                period,
                used,
            })
        };
        let (read, counted) = tokio::join!(self.cache.read(user_id), count);
        Some(Prefetched {
            user_id,
            read: std::sync::Arc::new(read.ok()?),
            counted,
        })
    }

    /// [`Entitlements::snapshot`] without a copy: the cache's parsed snapshot is shared.
    async fn shared_snapshot(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        prefetched: Option<&Prefetched>,
    ) -> anyhow::Result<std::sync::Arc<Snapshot>> {
        let prefetched = prefetched.filter(|p| p.user_id == user_id);
        let fetched;
        let read = match prefetched {
            Some(prefetched) => Some(&*prefetched.read),
            None => match self.cache.read(user_id).await {
                Ok(read) => {
                    fetched = read;
                    Some(&fetched)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "entitlement cache unavailable; reading the database");
                    None
                }
            },
        };
        if let Some(snapshot) = read.and_then(|r| r.snapshot.as_ref())
            && snapshot.valid_at(now)
        {
            return Ok(std::sync::Arc::clone(snapshot));
        }
        let snapshot = store::load(&self.pool, user_id, now).await?;
        if let Some(read) = read {
            let ttl = (snapshot.valid_until - now).num_seconds();
            if let Err(err) = self.cache.store(user_id, read, &snapshot, ttl).await {
                tracing::warn!(error = %err, "cannot cache entitlements");
            }
        }
        Ok(std::sync::Arc::new(snapshot))
    }

    /// Whether the user may use `feature` at `now`, with its usage (read from the database) if metered.
    pub async fn check(
        &self,
        user_id: Uuid,
        feature: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<FeatureCheck> {
        self.check_prefetched(user_id, feature, now, None).await
    }

    /// [`Entitlements::check`] with the cache read already done by [`Entitlements::prefetch`] (used
    /// only if it is of `user_id`).
    pub async fn check_prefetched(
        &self,
        user_id: Uuid,
        feature: &str,
        now: DateTime<Utc>,
        prefetched: Option<&Prefetched>,
    ) -> anyhow::Result<FeatureCheck> {
        let snapshot = self.shared_snapshot(user_id, now, prefetched).await?;
        self.evaluate(&snapshot, user_id, feature, now, prefetched)
            .await
    }

    /// Every one of `features` checked against one read of the user's plan (the metered ones' counts
    /// read concurrently, each from the database).
    pub async fn check_all<'f>(
        &self,
        user_id: Uuid,
        features: impl IntoIterator<Item = &'f str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FeatureCheck>> {
        let snapshot = self.shared_snapshot(user_id, now, None).await?;
        let checks = features
            .into_iter()
            .map(|feature| self.evaluate(&snapshot, user_id, feature, now, None));
        futures::future::try_join_all(checks).await
    }

    /// One feature against the user's plan `snapshot`, with its usage if metered.
    async fn evaluate(
        &self,
        snapshot: &Snapshot,
        user_id: Uuid,
        feature: &str,
        now: DateTime<Utc>,
        prefetched: Option<&Prefetched>,
    ) -> anyhow::Result<FeatureCheck> {
        let metric = features::metric_of(feature);
        let mut check = FeatureCheck {
            feature: feature.to_owned(),
            access: false,
            reason: None,
            tier: snapshot.tier.clone(),
            access_level: None,
            usage: None,
            limit: None,
            resets_at: None,
        };
        let Some(grant) = snapshot.grant_at(feature, now) else {
            check.reason = Some(snapshot.refusal_at(feature, now));
            return Ok(check);
        };
        check.access = true;
        check.access_level = Some(grant.level.clone());
        if let Some(metric) = metric {
            check.limit = snapshot.limit_at(metric, now);
            if features::is_periodic(metric) {
                let period = match snapshot.period_at(now) {
                    Some(period) => period,
                    None => store::period(&self.pool, snapshot.usage_anchor, now).await?,
                };
                let ahead = prefetched.and_then(|p| p.used(user_id, metric, period));
                let used = match ahead {
                    Some(used) => used,
                    None => self.usage_reads.read(user_id, metric, period).await?,
                };
                check.usage = Some(used);
                check.resets_at = Some(period.end);
                if check.limit.is_some_and(|limit| used >= limit) {
                    check.access = false;
                    check.reason = Some(Reason::UsageLimitExceeded);
                }
            }
        }
        Ok(check)
    }

    /// Atomically checks the limit and increments (one SQL statement); `Ok(Consumed { allowed: false,
    /// .. })` when `amount` more would exceed the limit. Only `*_per_month` metrics are counted.
    pub async fn consume(
        &self,
        user_id: Uuid,
        metric: &str,
        amount: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Consumed> {
        let snapshot = self.snapshot(user_id, now).await?;
        // Acquired after the snapshot, which may need a connection of its own.
        let mut conn = self.pool.acquire().await?;
        Self::consume_in(&mut conn, &snapshot, user_id, metric, amount, now).await
    }

    /// [`Entitlements::consume`] on the caller's connection, against the `snapshot` the caller read
    /// (with [`Entitlements::snapshot`]) before it began its transaction, so the count commits or rolls
    /// back with the caller's transaction (e.g. together with the row of the thing that used the unit).
    /// Taking the snapshot from the caller keeps this from needing a second pool connection while the
    /// caller holds one. The counter row stays locked until the caller's transaction ends: concurrent
    /// consumers of the same user and metric wait for it and then re-check against its outcome. The
    /// count itself is read and written in the transaction, never cached.
    pub async fn consume_in(
        conn: &mut sqlx::PgConnection,
        snapshot: &Snapshot,
        user_id: Uuid,
        metric: &str,
        amount: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Consumed> {
        anyhow::ensure!(amount > 0, "usage amounts are positive, not {amount}");
        anyhow::ensure!(
            features::is_periodic(metric),
            "{metric:?} is not a metric counted per usage period"
        );
        let limit = snapshot.limit_at(metric, now);
        let period = match snapshot.period_at(now) {
            Some(period) => period,
            None => store::period(&mut *conn, snapshot.usage_anchor, now).await?,
        };
        let counted =
            store::try_consume(&mut *conn, user_id, metric, amount, limit, period).await?;
        let (allowed, used) = match counted {
            Some(used) => (true, used),
            None => (
                false,
                store::usage(&mut *conn, user_id, metric, period).await?,
            ),
        };
        Ok(Consumed {
            allowed,
            used,
            limit,
            resets_at: period.end,
        })
    }

    /// Gives back `amount` units of `metric` counted in the usage period that ends at `period_end` (the
    /// `resets_at` of the [`Consumed`] that took them), never below zero. Runs on the caller's
    /// connection, so it is exactly-once when the caller's transaction also records the refund.
    pub async fn refund_in(
        conn: &mut sqlx::PgConnection,
        user_id: Uuid,
        metric: &str,
        period_end: DateTime<Utc>,
        amount: i64,
    ) -> Result<bool, sqlx::Error> {
        store::refund(conn, user_id, metric, period_end, amount).await
    }

    /// Evicts the user's cached snapshot (and refuses any computed before this call).
    pub async fn invalidate(&self, user_id: Uuid) -> anyhow::Result<()> {
        Ok(self.cache.invalidate(user_id).await?)
    }

    /// Evicts every user's snapshot (after a `pricing_tiers` change).
    pub async fn invalidate_all(&self) -> anyhow::Result<()> {
        Ok(self.cache.invalidate_all().await?)
    }
}
