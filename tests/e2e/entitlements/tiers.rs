//! Each tier's features and limits, and the state of the subscription (trial, grace, cancelled).

use mingus_common::entitlements::Reason;

use super::{Env, Sub, at, days};

#[tokio::test]
async fn each_paid_tier_grants_its_features_and_limits() {
    let env = Env::new().await;
    let (start, end, now) = (
        at("2026-03-10T09:00:00Z"),
        at("2026-04-10T09:00:00Z"),
        at("2026-03-20T12:00:00Z"),
    );
    let essentials = env
        .subscribed(Sub::active("essentials", start, end), now)
        .await;
    let professional = env
        .subscribed(Sub::active("professional", start, end), now)
        .await;
    let executive = env
        .subscribed(Sub::active("executive", start, end), now)
        .await;

    // Essentials: basic analytics with 2 financial reports a month; no custom reports, AI or API.
    let check = env
        .ent
        .check(essentials, "basic_analytics", now)
        .await
        .unwrap();
    assert!(check.access, "{check:?}");
    assert_eq!(check.tier.as_deref(), Some("essentials"));
    assert_eq!(check.access_level.as_deref(), Some("basic"));
    assert_eq!((check.usage, check.limit), (Some(0), Some(2)));
    assert_eq!(
        check.resets_at,
        Some(end),
        "the period ends on the billing anniversary"
    );
    for feature in [
        "custom_reports",
        "advanced_ai_insights",
        "api_access",
        "team_management",
    ] {
        let check = env.ent.check(essentials, feature, now).await.unwrap();
        assert!(!check.access, "{feature}");
        assert_eq!(check.reason, Some(Reason::FeatureNotIncluded), "{feature}");
    }
    let snapshot = env.ent.snapshot(essentials, now).await.unwrap();
    assert_eq!(snapshot.features.len(), 4, "{:?}", snapshot.features);
    assert_eq!(snapshot.features["email_support"], "basic");
    assert_eq!(snapshot.status.as_deref(), Some("active"));
    assert_eq!(
        (snapshot.period_start, snapshot.period_end),
        (Some(start), Some(end))
    );

    // Professional: premium custom reports (5 a month), 50 AI insights, priority support; no API.
    let check = env
        .ent
        .check(professional, "custom_reports", now)
        .await
        .unwrap();
    assert!(check.access);
    assert_eq!(check.access_level.as_deref(), Some("premium"));
    assert_eq!((check.usage, check.limit), (Some(0), Some(5)));
    let check = env
        .ent
        .check(professional, "advanced_ai_insights", now)
        .await
        .unwrap();
    assert_eq!((check.access, check.limit), (true, Some(50)));
    let check = env
        .ent
        .check(professional, "basic_analytics", now)
        .await
        .unwrap();
    assert_eq!(check.limit, Some(10));
    let check = env
        .ent
        .check(professional, "api_access", now)
        .await
        .unwrap();
    assert_eq!(check.reason, Some(Reason::FeatureNotIncluded));
    let snapshot = env.ent.snapshot(professional, now).await.unwrap();
    assert_eq!(snapshot.features.len(), 8);
    assert_eq!(snapshot.features["email_support"], "premium");

    // Executive: everything, unlimited reports, 10 team members, 10,000 API calls an hour.
    let check = env
        .ent
        .check(executive, "custom_reports", now)
        .await
        .unwrap();
    assert!(check.access);
    assert_eq!(check.access_level.as_deref(), Some("unlimited"));
    assert_eq!((check.usage, check.limit), (Some(0), None));
    let check = env
        .ent
        .check(executive, "team_management", now)
        .await
        .unwrap();
    assert_eq!(
        (check.access, check.limit, check.usage),
        (true, Some(10), None)
    );
    let check = env.ent.check(executive, "api_access", now).await.unwrap();
    assert_eq!((check.access, check.limit), (true, Some(10_000)));
    let snapshot = env.ent.snapshot(executive, now).await.unwrap();
    assert_eq!(snapshot.features.len(), 13);
    assert_eq!(snapshot.limits["api_calls_per_hour"], 10_000);
}

#[tokio::test]
async fn a_trial_grants_its_tier_until_the_trial_ends() {
    let env = Env::new().await;
    let (start, trial_end) = (at("2026-05-01T00:00:00Z"), at("2026-05-15T00:00:00Z"));
    let sub = Sub {
        status: "trial",
        trial_end: Some(trial_end),
        ..Sub::active("professional", start, trial_end)
    };
    let user = env.subscribed(sub, start).await;
    let during = start + days(3);
    let check = env.ent.check(user, "custom_reports", during).await.unwrap();
    assert!(check.access, "{check:?}");
    assert_eq!(
        (check.tier.as_deref(), check.limit),
        (Some("professional"), Some(5))
    );
    assert_eq!(
        env.ent
            .snapshot(user, during)
            .await
            .unwrap()
            .status
            .as_deref(),
        Some("trial")
    );
    // The cached snapshot is not served past the trial's end, even before any sweep runs.
    let check = env
        .ent
        .check(user, "custom_reports", trial_end)
        .await
        .unwrap();
    assert!(!check.access);
    assert_eq!(check.reason, Some(Reason::AccessExpired));
}

#[tokio::test]
async fn past_due_keeps_access_during_grace_then_refuses_as_past_due() {
    let env = Env::new().await;
    let now = at("2026-06-12T00:00:00Z");
    let grace_until = now + days(3);
    let sub = Sub {
        status: "past_due",
        stripe_status: Some("past_due"),
        grace_until: Some(grace_until),
        ..Sub::active("professional", now - days(33), now - days(2))
    };
    let user = env.subscribed(sub, now).await;
    let check = env
        .ent
        .check(user, "advanced_ai_insights", now)
        .await
        .unwrap();
    assert!(check.access, "in grace: {check:?}");
    assert_eq!(check.limit, Some(50));
    let consumed = env
        .ent
        .consume(user, "ai_insights_per_month", 1, now)
        .await
        .unwrap();
    assert!(consumed.allowed);

    let after = grace_until + days(1);
    let check = env
        .ent
        .check(user, "advanced_ai_insights", after)
        .await
        .unwrap();
    assert!(!check.access);
    assert_eq!(check.reason, Some(Reason::PaymentPastDue));
    let consumed = env
        .ent
        .consume(user, "ai_insights_per_month", 1, after)
        .await
        .unwrap();
    assert!(!consumed.allowed, "no usage without access");
    assert_eq!(consumed.limit, Some(0));
}

#[tokio::test]
async fn cancelled_and_never_subscribed_users_are_refused_with_their_reason() {
    let env = Env::new().await;
    let now = at("2026-07-01T00:00:00Z");
    let sub = Sub {
        status: "cancelled",
        stripe_status: Some("canceled"),
        ended_at: Some(now - days(1)),
        ..Sub::active("executive", now - days(30), now - days(1))
    };
    let cancelled = env.subscribed(sub, now).await;
    let check = env
        .ent
        .check(cancelled, "custom_reports", now)
        .await
        .unwrap();
    assert!(!check.access);
    assert_eq!(check.reason, Some(Reason::SubscriptionCancelled));
    assert_eq!(check.tier.as_deref(), Some("executive"));

    let never = env.user(now - days(10)).await;
    let check = env.ent.check(never, "basic_analytics", now).await.unwrap();
    assert_eq!(
        (check.access, check.reason),
        (false, Some(Reason::NoActiveSubscription))
    );
    assert_eq!(check.tier, None);
    let consumed = env
        .ent
        .consume(never, "financial_reports_per_month", 1, now)
        .await
        .unwrap();
    assert_eq!(
        (consumed.allowed, consumed.used, consumed.limit),
        (false, 0, Some(0))
    );
    assert!(
        env.counters(never, "financial_reports_per_month")
            .await
            .is_empty()
    );

    let unknown = uuid::Uuid::new_v4();
    let err = env
        .ent
        .check(unknown, "basic_analytics", now)
        .await
        .unwrap_err();
    assert!(
        err.downcast_ref::<mingus_common::entitlements::UnknownUser>()
            .is_some(),
        "{err:#}"
    );
}

#[tokio::test]
async fn promotion_and_admin_grants_override_the_tier_until_they_expire() {
    let env = Env::new().await;
    let now = at("2026-08-05T00:00:00Z");
    let user = env
        .subscribed(
            Sub::active("essentials", now - days(4), now + days(27)),
            now,
        )
        .await;
    let promo_end = now + days(10);
    env.grant(
        user,
        "custom_reports",
        "premium",
        "promotion",
        Some(promo_end),
    )
    .await;
    env.grant(user, "advanced_ai_insights", "unlimited", "admin", None)
        .await;
    // Recomputing the subscription's grants leaves promotion and admin rows alone.
    env.recompute(user, now).await;
    env.ent.invalidate(user).await.unwrap();

    let check = env.ent.check(user, "custom_reports", now).await.unwrap();
    assert!(check.access, "{check:?}");
    assert_eq!(check.access_level.as_deref(), Some("premium"));
    assert_eq!(check.tier.as_deref(), Some("essentials"));
    assert_eq!(
        check.limit,
        Some(5),
        "the cheapest tier with custom reports sets the limit"
    );
    let check = env
        .ent
        .check(user, "advanced_ai_insights", now)
        .await
        .unwrap();
    assert_eq!(
        (check.access, check.limit),
        (true, None),
        "admin grant at unlimited"
    );
    let consumed = env
        .ent
        .consume(user, "custom_reports_per_month", 5, now)
        .await
        .unwrap();
    assert_eq!((consumed.allowed, consumed.used), (true, 5));

    let after = promo_end + days(1);
    let check = env.ent.check(user, "custom_reports", after).await.unwrap();
    assert!(!check.access);
    assert_eq!(check.reason, Some(Reason::AccessExpired));
    let consumed = env
        .ent
        .consume(user, "custom_reports_per_month", 1, after)
        .await
        .unwrap();
    assert!(!consumed.allowed, "back to the tier's 0 custom reports");
    assert!(
        env.ent
            .check(user, "advanced_ai_insights", after)
            .await
            .unwrap()
            .access
    );

    // A grant works without any subscription too.
    let free = env.user(now - days(100)).await;
    env.grant(
        free,
        "basic_analytics",
        "unlimited",
        "promotion",
        Some(now + days(1)),
    )
    .await;
    let check = env.ent.check(free, "basic_analytics", now).await.unwrap();
    assert_eq!((check.access, check.limit, check.tier), (true, None, None));
    let check = env
        .ent
        .check(free, "basic_analytics", now + days(2))
        .await
        .unwrap();
    assert_eq!(check.reason, Some(Reason::AccessExpired));
}
