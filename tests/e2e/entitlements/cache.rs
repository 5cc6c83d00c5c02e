//! The Redis cache of snapshots: used, bounded, and invalidated when access changes.

use std::time::Duration;

use chrono::Utc;
use mingus_common::entitlements::Reason;
use mingus_common::jobs::EnqueueOptions;
use mingus_common::jobs::catalog::ProcessStripeEvent;
use mingus_tests::WorkerProcess;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, envelope, process, store};
use mingus_tests::wait::until;
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
    let now = Utc::now();
    let t = now.timestamp();
    let user = env.user(now - days(400)).await;
    sqlx::query("UPDATE users SET stripe_customer_id = 'cus_evict' WHERE id = $1")
        .bind(user)
        .execute(env.pool())
        .await
        .unwrap();
    let shape = ApiShape::Basil;
    let mut state =
        SubscriptionState::new("sub_evict", "cus_evict", "active", (t - DAY, t + 29 * DAY));
    state.lookup_key = "essentials_monthly";
    let created = envelope(
        shape,
        "evt_evict_1",
        "customer.subscription.created",
        t - 60,
        fx::subscription(shape, &state),
    );
    store(env.pool(), &created).await;
    let stripe = &env.env.config.stripe;
    process(env.pool(), stripe, "evt_evict_1", now)
        .await
        .unwrap();

    // Essentials: no custom reports, and the answer is now cached.
    let check = env.ent.check(user, "custom_reports", now).await.unwrap();
    assert_eq!(check.reason, Some(Reason::FeatureNotIncluded));
    let key = env.ent.cache_key(user);
    let mut conn = redis(&env).await;
    let cached: bool = conn.exists(&key).await.unwrap();
    assert!(cached, "the snapshot is cached");

    // The upgrade goes through the queue and a worker process of its own.
    let _worker = WorkerProcess::start(&env.env, "stripe-events", &[]);
    state.lookup_key = "professional_monthly";
    let upgraded = envelope(
        shape,
        "evt_evict_2",
        "customer.subscription.updated",
        t - 30,
        fx::subscription(shape, &state),
    );
    store(env.pool(), &upgraded).await;
    let job = ProcessStripeEvent {
        event_id: "evt_evict_2".into(),
    };
    env.env
        .enqueuer
        .enqueue(&job, EnqueueOptions::default())
        .await
        .unwrap();
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
        sqlx::query_scalar("SELECT status FROM stripe_events WHERE id = 'evt_evict_2'")
            .fetch_one(env.pool())
            .await
            .unwrap();
    assert_eq!(processed, "processed");
}
