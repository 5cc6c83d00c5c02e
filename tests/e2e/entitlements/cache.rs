//! The Redis cache of snapshots: used, bounded, and invalidated when access changes.

use std::time::Duration;

use chrono::Utc;
use mingus_common::entitlements::Reason;
use mingus_common::jobs::EnqueueOptions;
use mingus_common::jobs::catalog::ProcessStripeEvent;
use mingus_common::queue::Queue;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, envelope, process, store};
use mingus_tests::wait::until;
use mingus_tests::{TestWorker, WorkerProcess};
use redis::AsyncCommands;

use super::{DAY, Env, Sub, at, days};

async fn redis(env: &Env) -> redis::aio::ConnectionManager {
    mingus_common::cache::connect(&env.env.config.redis)
        .await
        .unwrap()
}

#[tokio::test]
async fn snapshots_are_cached_with_the_ttl_and_invalidate_evicts_them() {
    let env = Env::new().await;
    let now = at("2026-03-20T12:00:00Z");
    let user = env
        .subscribed(
            Sub::active("essentials", now - days(10), now + days(20)),
            now,
        )
        .await;
    let key = env.ent.cache_key(user);
    assert!(
        key.starts_with(&format!("{}_entitlements:", env.env.prefix)),
        "{key}"
    );
    assert!(
        env.ent
            .check(user, "basic_analytics", now)
            .await
            .unwrap()
            .access
    );
    let mut conn = redis(&env).await;
    let ttl: i64 = conn.ttl(&key).await.unwrap();
    assert!((1..=300).contains(&ttl), "ttl {ttl}");

    // Changed with the notification triggers off (nothing evicts): the cached plan is served…
    let mut tx = env.pool().begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE subscriptions SET plan_tier = 'executive' WHERE user_id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await
        .unwrap();
    mingus_common::billing::access::recompute(&mut tx, user, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let check = env.ent.check(user, "custom_reports", now).await.unwrap();
    assert_eq!(
        check.reason,
        Some(Reason::FeatureNotIncluded),
        "served from the cache"
    );

    // …until it is invalidated.
    env.ent.invalidate(user).await.unwrap();
    let exists: bool = conn.exists(&key).await.unwrap();
    assert!(!exists);
    let check = env.ent.check(user, "custom_reports", now).await.unwrap();
    assert_eq!(
        (check.access, check.tier.as_deref()),
        (true, Some("executive"))
    );
}

/// A Stripe upgrade processed by a real worker process evicts the snapshot its commit made stale: the
/// check sees the new tier at once, not after the 300 s TTL.
#[tokio::test]
async fn a_stripe_event_processed_by_the_worker_evicts_the_cached_snapshot() {
    let env = Env::new().await;
    let upgrade = Upgrade::cached(&env, "proc").await;
    let _worker = WorkerProcess::start(&env.env, "stripe-events", &[]);
    upgrade.enqueue_and_wait(&env).await;
}

/// Workers hosted in one process with different key prefixes (as the test binary hosts them) each
/// evict under their own prefix: the second worker's eviction must not go to the first one's keys.
#[tokio::test]
async fn in_process_workers_evict_under_their_own_prefix() {
    let first = Env::new().await;
    let second = Env::new().await;
    let first_upgrade = Upgrade::cached(&first, "one").await;
    let second_upgrade = Upgrade::cached(&second, "two").await;
    let first_worker = TestWorker::spawn(first.env.config.clone(), &[Queue::StripeEvents]).await;
    let second_worker = TestWorker::spawn(second.env.config.clone(), &[Queue::StripeEvents]).await;
    second_upgrade.enqueue_and_wait(&second).await;
    first_upgrade.enqueue_and_wait(&first).await;
    first_worker.stop().await.unwrap();
    second_worker.stop().await.unwrap();
    // Each eviction bumped the generation under its own prefix, and only there.
    let mut conn = redis(&first).await;
    for (env, upgrade, other) in [
        (&first, &first_upgrade, &second),
        (&second, &second_upgrade, &first),
    ] {
        let own = scan(&mut conn, &format!("{}_entitlements:gen:*", env.env.prefix)).await;
        assert_eq!(
            own,
            [format!(
                "{}_entitlements:gen:{}",
                env.env.prefix, upgrade.user
            )]
        );
        let stray = format!("{}_entitlements:gen:{}", other.env.prefix, upgrade.user);
        let exists: bool = conn.exists(&stray).await.unwrap();
        assert!(!exists, "{stray}");
    }
}

async fn scan(conn: &mut redis::aio::ConnectionManager, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut iter: redis::AsyncIter<String> = conn.scan_match(pattern).await.unwrap();
    while let Some(key) = iter.next_item().await {
        keys.push(key.unwrap());
    }
    keys
}

/// A user on Essentials whose plan is cached, and the Professional upgrade event stored for them.
struct Upgrade {
    user: uuid::Uuid,
    event_id: String,
}

impl Upgrade {
    async fn cached(env: &Env, name: &str) -> Self {
        let now = Utc::now();
        let t = now.timestamp();
        let user = env.user(now - days(400)).await;
        let (customer, sub_id) = (format!("cus_evict_{name}"), format!("sub_evict_{name}"));
        sqlx::query("UPDATE users SET stripe_customer_id = $2 WHERE id = $1")
            .bind(user)
            .bind(&customer)
            .execute(env.pool())
            .await
            .unwrap();
        let mut state =
            SubscriptionState::new(&sub_id, &customer, "active", (t - DAY, t + 29 * DAY));
        state.lookup_key = "essentials_monthly";
        let created_id = format!("evt_evict_{name}_1");
        let created = ("customer.subscription.created", t - 60);
        store_state(env, &created_id, created, &state).await;
        process(env.pool(), &env.env.config.stripe, &created_id, now)
            .await
            .unwrap();

        // Essentials: no custom reports, and the answer is now cached.
        let check = env.ent.check(user, "custom_reports", now).await.unwrap();
        assert_eq!(check.reason, Some(Reason::FeatureNotIncluded));
        let mut conn = redis(env).await;
        let cached: bool = conn.exists(env.ent.cache_key(user)).await.unwrap();
        assert!(cached, "the snapshot is cached");

        state.lookup_key = "professional_monthly";
        let event_id = format!("evt_evict_{name}_2");
        store_state(
            env,
            &event_id,
            ("customer.subscription.updated", t - 30),
            &state,
        )
        .await;
        Upgrade { user, event_id }
    }

    /// Enqueues the upgrade (a worker serves `stripe-events`) and waits until the check sees it — far
    /// sooner than the TTL, so only an eviction can have made it visible.
    async fn enqueue_and_wait(&self, env: &Env) {
        let job = ProcessStripeEvent {
            event_id: self.event_id.clone(),
        };
        env.env
            .enqueuer
            .enqueue(&job, EnqueueOptions::default())
            .await
            .unwrap();
        let user = self.user;
        let check = until(
            Duration::from_secs(30),
            "the upgrade is visible",
            || async {
                let check = env
                    .ent
                    .check(user, "custom_reports", Utc::now())
                    .await
                    .unwrap();
                check.access.then_some(check)
            },
        )
        .await;
        assert_eq!(check.tier.as_deref(), Some("professional"));
        let processed: String =
            sqlx::query_scalar("SELECT status FROM stripe_events WHERE id = $1")
                .bind(&self.event_id)
                .fetch_one(env.pool())
                .await
                .unwrap();
        assert_eq!(processed, "processed");
    }
}

/// Stores a basil-shaped subscription event `(kind, created)` carrying `state`.
async fn store_state(
    env: &Env,
    id: &str,
    (kind, created): (&str, i64),
    state: &SubscriptionState<'_>,
) {
    let shape = ApiShape::Basil;
    let event = envelope(shape, id, kind, created, fx::subscription(shape, state));
    store(env.pool(), &event).await;
}
