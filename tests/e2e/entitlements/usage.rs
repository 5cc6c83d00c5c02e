//! Consuming usage: one atomic statement per call, exact under concurrency, never a stale count.

use mingus_common::entitlements::Reason;

use super::{Env, Sub, at, days};

#[tokio::test]
async fn consuming_counts_up_to_the_limit_and_checks_never_see_a_stale_count() {
    let env = Env::new().await;
    let now = at("2026-03-20T12:00:00Z");
    // A monthly period: it ends on the anniversary, where the usage period ends too.
    let end = at("2026-04-10T12:00:00Z");
    let user = env
        .subscribed(
            Sub::active("essentials", at("2026-03-10T12:00:00Z"), end),
            now,
        )
        .await;
    // Warm the cache: the counts below must still be fresh.
    let check = env.ent.check(user, "basic_analytics", now).await.unwrap();
    assert_eq!(check.usage, Some(0));
    let metric = "financial_reports_per_month";
    for expected in 1..=2 {
        let consumed = env.ent.consume(user, metric, 1, now).await.unwrap();
        assert_eq!(
            (
                consumed.allowed,
                consumed.used,
                consumed.limit,
                consumed.resets_at
            ),
            (true, expected, Some(2), end)
        );
        let check = env.ent.check(user, "basic_analytics", now).await.unwrap();
        assert_eq!(check.usage, Some(expected), "usage is read live");
    }
    let consumed = env.ent.consume(user, metric, 1, now).await.unwrap();
    assert_eq!((consumed.allowed, consumed.used), (false, 2));
    let check = env.ent.check(user, "basic_analytics", now).await.unwrap();
    assert_eq!(
        (check.access, check.reason),
        (false, Some(Reason::UsageLimitExceeded))
    );
    assert_eq!(
        (check.usage, check.limit, check.resets_at),
        (Some(2), Some(2), Some(end))
    );
    // A count changed behind the service's back (e.g. by another process) shows at once.
    sqlx::query("UPDATE usage_counters SET used = 0 WHERE user_id = $1")
        .bind(user)
        .execute(env.pool())
        .await
        .unwrap();
    let check = env.ent.check(user, "basic_analytics", now).await.unwrap();
    assert_eq!((check.access, check.usage), (true, Some(0)));
}

#[tokio::test]
async fn amounts_larger_than_one_are_all_or_nothing() {
    let env = Env::new().await;
    let now = at("2026-03-20T12:00:00Z");
    let user = env
        .subscribed(
            Sub::active("professional", now - days(10), now + days(20)),
            now,
        )
        .await;
    let metric = "custom_reports_per_month";
    let first = env.ent.consume(user, metric, 3, now).await.unwrap();
    assert_eq!((first.allowed, first.used), (true, 3));
    let over = env.ent.consume(user, metric, 3, now).await.unwrap();
    assert_eq!((over.allowed, over.used, over.limit), (false, 3, Some(5)));
    let rest = env.ent.consume(user, metric, 2, now).await.unwrap();
    assert_eq!((rest.allowed, rest.used), (true, 5));
    assert_eq!(env.counters(user, metric).await.len(), 1);

    let err = env.ent.consume(user, metric, 0, now).await.unwrap_err();
    assert!(err.to_string().contains("positive"), "{err:#}");
    let err = env
        .ent
        .consume(user, "api_calls_per_hour", 1, now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("usage period"), "{err:#}");
}

#[tokio::test]
async fn unlimited_metrics_count_without_refusing() {
    let env = Env::new().await;
    let now = at("2026-03-20T12:00:00Z");
    let user = env
        .subscribed(
            Sub::active("executive", now - days(10), now + days(20)),
            now,
        )
        .await;
    for _ in 0..3 {
        let consumed = env
            .ent
            .consume(user, "custom_reports_per_month", 40, now)
            .await
            .unwrap();
        assert!(consumed.allowed);
        assert_eq!(consumed.limit, None);
    }
    let check = env.ent.check(user, "custom_reports", now).await.unwrap();
    assert_eq!(
        (check.access, check.usage, check.limit),
        (true, Some(120), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_consumes_at_limit_minus_one_exactly_one_succeeds() {
    let env = Env::new().await;
    let now = at("2026-03-20T12:00:00Z");
    let metric = "financial_reports_per_month";
    // Several rounds, each a fresh user at limit − 1 (Essentials: 2), so a lucky ordering cannot hide a race.
    for round in 0..8 {
        let user = env
            .subscribed(
                Sub::active("essentials", now - days(10), now + days(20)),
                now,
            )
            .await;
        assert!(env.ent.consume(user, metric, 1, now).await.unwrap().allowed);
        let (a, b) = (env.ent.clone(), env.ent.clone());
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let (ba, bb) = (barrier.clone(), barrier);
        let first = tokio::spawn(async move {
            ba.wait().await;
            a.consume(user, metric, 1, now).await.unwrap()
        });
        let second = tokio::spawn(async move {
            bb.wait().await;
            b.consume(user, metric, 1, now).await.unwrap()
        });
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!(
            [first.allowed, second.allowed]
                .iter()
                .filter(|a| **a)
                .count(),
            1,
            "round {round}: {first:?} {second:?}"
        );
        assert_eq!(env.counters(user, metric).await[0].2, 2, "round {round}");
    }

    // A burst from zero against Professional's 5 custom reports: exactly 5 of 16 succeed.
    let user = env
        .subscribed(
            Sub::active("professional", now - days(10), now + days(20)),
            now,
        )
        .await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let ent = env.ent.clone();
            tokio::spawn(async move { ent.consume(user, "custom_reports_per_month", 1, now).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5);
    assert_eq!(env.counters(user, "custom_reports_per_month").await[0].2, 5);
}

/// Concurrent metered checks are read together (one grouped statement): each must still get its own
/// user's and metric's count, including users with no counter row yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_read_together_each_get_their_own_count() {
    let env = Env::new().await;
    let now = at("2026-03-20T12:00:00Z");
    let mut users = Vec::new();
    for i in 0..24_i64 {
        let user = env
            .subscribed(
                Sub::active("executive", now - days(10), now + days(20)),
                now,
            )
            .await;
        // Distinct counts per user and metric; every fourth user never used either metric.
        if i % 4 != 0 {
            for (metric, amount) in [
                ("financial_reports_per_month", i),
                ("custom_reports_per_month", 100 + i),
            ] {
                env.ent.consume(user, metric, amount, now).await.unwrap();
            }
        }
        users.push((i, user));
    }
    let checks = users.iter().flat_map(|&(i, user)| {
        let ent = env.ent.clone();
        [("basic_analytics", i), ("custom_reports", 100 + i)].map(move |(feature, amount)| {
            let ent = ent.clone();
            tokio::spawn(async move {
                let check = ent.check(user, feature, now).await.unwrap();
                (i, feature, amount, check.usage)
            })
        })
    });
    let handles: Vec<_> = checks.collect();
    assert_eq!(handles.len(), 48);
    for handle in handles {
        let (i, feature, amount, usage) = handle.await.unwrap();
        let expected = if i % 4 == 0 { 0 } else { amount };
        assert_eq!(usage, Some(expected), "user {i}, {feature}");
    }
}
