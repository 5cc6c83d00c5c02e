//! Feature access and usage limits (issue 5) against real PostgreSQL and Redis: each tier's features and
//! limits, trial, past due in grace, cancelled, promotion and admin grants with expiry, atomic consumption
//! under concurrency, billing-anniversary periods and their reset sweep, and the Redis cache.

mod cache;
mod reset;
mod tiers;
mod usage;

use chrono::{DateTime, Utc};
use mingus_common::billing::access;
use mingus_common::cache as redis_cache;
use mingus_common::entitlements::Entitlements;
use mingus_tests::JobEnv;
use uuid::Uuid;

const DAY: i64 = 86_400;

/// An RFC 3339 instant.
fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n * DAY)
}

struct Env {
    env: JobEnv,
    ent: Entitlements,
}

impl Env {
    async fn new() -> Self {
        let env = JobEnv::new().await;
        let redis = redis_cache::connect(&env.config.redis).await.unwrap();
        let ent = Entitlements::new(env.db.pool.clone(), redis, &env.prefix);
        Env { env, ent }
    }

    fn pool(&self) -> &sqlx::PgPool {
        &self.env.db.pool
    }

    async fn user(&self, created_at: DateTime<Utc>) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(format!("{id}@example.com"))
            .bind(created_at)
            .execute(self.pool())
            .await
            .unwrap();
        id
    }

    /// A user with one subscription, its access recomputed at `now` as the billing code does.
    async fn subscribed(&self, sub: Sub, now: DateTime<Utc>) -> Uuid {
        let user = self.user(sub.start - days(400)).await;
        self.subscribe(user, sub, now).await;
        user
    }

    async fn subscribe(&self, user: Uuid, sub: Sub, now: DateTime<Utc>) {
        sqlx::query(
            "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status,
                 current_period_start, current_period_end, trial_start, trial_end, stripe_status,
                 grace_until, ended_at)
             VALUES ($1, $2, 10.00, 'monthly', $3, $4, $5, CASE WHEN $6::timestamptz IS NULL THEN NULL ELSE $4 END,
                 $6, $7, $8, $9)",
        )
        .bind(user)
        .bind(sub.tier)
        .bind(sub.status)
        .bind(sub.start)
        .bind(sub.end)
        .bind(sub.trial_end)
        .bind(sub.stripe_status)
        .bind(sub.grace_until)
        .bind(sub.ended_at)
        .execute(self.pool())
        .await
        .unwrap();
        self.recompute(user, now).await;
    }

    async fn recompute(&self, user: Uuid, now: DateTime<Utc>) {
        let mut tx = self.pool().begin().await.unwrap();
        access::recompute(&mut tx, user, now).await.unwrap();
        tx.commit().await.unwrap();
        self.ent.invalidate(user).await.unwrap();
    }

    async fn grant(
        &self,
        user: Uuid,
        feature: &str,
        level: &str,
        by: &str,
        expires_at: Option<DateTime<Utc>>,
    ) {
        sqlx::query(
            "INSERT INTO feature_access (user_id, feature_name, access_level, expires_at, granted_by)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id, feature_name) DO UPDATE
                 SET access_level = EXCLUDED.access_level, expires_at = EXCLUDED.expires_at,
                     granted_by = EXCLUDED.granted_by",
        )
        .bind(user)
        .bind(feature)
        .bind(level)
        .bind(expires_at)
        .bind(by)
        .execute(self.pool())
        .await
        .unwrap();
    }

    /// `(period_start, period_end, used)` of every counter of the metric, oldest first.
    async fn counters(&self, user: Uuid, metric: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>, i64)> {
        sqlx::query_as(
            "SELECT period_start, period_end, used FROM usage_counters
             WHERE user_id = $1 AND metric = $2 ORDER BY period_start",
        )
        .bind(user)
        .bind(metric)
        .fetch_all(self.pool())
        .await
        .unwrap()
    }
}

/// A subscription row.
#[derive(Clone, Copy)]
struct Sub {
    tier: &'static str,
    status: &'static str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    trial_end: Option<DateTime<Utc>>,
    stripe_status: Option<&'static str>,
    grace_until: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}

impl Sub {
    /// An active monthly subscription of `tier` for [start, end).
    fn active(tier: &'static str, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Sub {
            tier,
            status: "active",
            start,
            end,
            trial_end: None,
            stripe_status: None,
            grace_until: None,
            ended_at: None,
        }
    }
}
