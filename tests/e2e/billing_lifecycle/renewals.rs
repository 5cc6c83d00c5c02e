//! The renewal sweep: reminders, period-end cancellations, grace and its end, Stripe-backed
//! subscriptions, and the sweeps as scheduled billing jobs.

use std::time::Duration;

use chrono::Utc;
use mingus_common::cron::{CronTable, Tz};
use mingus_common::jobs::billing_jobs::{RenewalSweep, TrialExpirySweep};
use mingus_common::jobs::catalog;
use mingus_common::jobs::{EnqueueOptions, Job};
use mingus_common::queue::Queue;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, deliver, envelope};
use mingus_tests::wait::until;
use mingus_tests::{JobEnv, TestWorker};
use mingus_worker::billing_sweeps::{RenewalSweepReport, run_renewals};
use serde_json::json;

use super::{DAY, T, access_until, at, email_keys, from_stripe, local, state};

#[tokio::test]
async fn an_unpaid_period_goes_past_due_with_grace_then_a_local_subscription_ends() {
    for (grace_days, vars) in [
        (7, vec![]),
        (1, vec![("STRIPE_GRACE_PERIOD_SECS", "86400")]),
    ] {
        let env = JobEnv::with(&vars).await;
        let (pool, stripe) = (&env.db.pool, &env.config.stripe);
        let (id, user_id) = local(&env, "active", "monthly", (T - 30 * DAY, T), None, false).await;
        let key = id.to_string();
        let none = RenewalSweepReport::default();
        assert_eq!(run_renewals(pool, stripe, at(T - 1)).await.unwrap(), none);
        assert_eq!(access_until(&env, user_id).await, at(T));
        let overdue = RenewalSweepReport {
            past_due: 1,
            ..none
        };
        assert_eq!(
            run_renewals(pool, stripe, at(T + 300)).await.unwrap(),
            overdue
        );
        let grace_until = at(T + grace_days * DAY);
        assert_eq!(state(&env, &key).await.0, "past_due");
        assert_eq!(state(&env, &key).await.2, Some(grace_until));
        assert_eq!(
            access_until(&env, user_id).await,
            grace_until,
            "access during the grace period"
        );
        assert_eq!(
            run_renewals(pool, stripe, at(T + 600)).await.unwrap(),
            none,
            "unchanged when run again"
        );
        assert_eq!(
            run_renewals(pool, stripe, at(T + grace_days * DAY - 1))
                .await
                .unwrap(),
            none
        );
        let over = RenewalSweepReport {
            grace_expired: 1,
            ..none
        };
        assert_eq!(
            run_renewals(pool, stripe, at(T + grace_days * DAY + 300))
                .await
                .unwrap(),
            over
        );
        assert_eq!(
            run_renewals(pool, stripe, at(T + grace_days * DAY + 600))
                .await
                .unwrap(),
            none
        );
        let (status, ended_at, _, _) = state(&env, &key).await;
        assert_eq!(
            (status.as_str(), ended_at),
            ("cancelled", Some(grace_until))
        );
        assert_eq!(
            access_until(&env, user_id).await,
            grace_until,
            "no access after the grace period"
        );
    }
}

#[tokio::test]
async fn annual_renewals_are_reminded_once_seven_days_ahead_and_cancelling_ones_end_with_their_period()
 {
    let env = JobEnv::new().await;
    let (pool, stripe) = (&env.db.pool, &env.config.stripe);
    let (annual, _) = local(
        &env,
        "active",
        "annual",
        (T - 358 * DAY, T + 7 * DAY),
        None,
        false,
    )
    .await;
    local(
        &env,
        "active",
        "monthly",
        (T - 23 * DAY, T + 7 * DAY),
        None,
        false,
    )
    .await;
    let (cancelling, user_id) = local(
        &env,
        "active",
        "annual",
        (T - 358 * DAY, T + 7 * DAY),
        None,
        true,
    )
    .await;
    let none = RenewalSweepReport::default();
    assert_eq!(
        run_renewals(pool, stripe, at(T - 1)).await.unwrap(),
        none,
        "more than seven days ahead"
    );
    assert_eq!(
        run_renewals(pool, stripe, at(T)).await.unwrap(),
        RenewalSweepReport {
            reminders: 1,
            ..none
        }
    );
    assert_eq!(
        run_renewals(pool, stripe, at(T + 300)).await.unwrap(),
        none,
        "reminded once"
    );
    assert_eq!(
        email_keys(&env).await,
        [format!("renewal_reminder:{annual}:2026-09-28")]
    );

    let ended = RenewalSweepReport {
        ended_at_period_end: 1,
        past_due: 2,
        ..none
    };
    assert_eq!(
        run_renewals(pool, stripe, at(T + 7 * DAY + 300))
            .await
            .unwrap(),
        ended
    );
    let (status, ended_at, grace, _) = state(&env, &cancelling.to_string()).await;
    assert_eq!(
        (status.as_str(), ended_at, grace),
        ("cancelled", Some(at(T + 7 * DAY)), None)
    );
    assert_eq!(access_until(&env, user_id).await, at(T + 7 * DAY));
    assert_eq!(
        run_renewals(pool, stripe, at(T + 7 * DAY + 600))
            .await
            .unwrap(),
        none
    );
}

#[tokio::test]
async fn stripe_subscriptions_meet_the_renewal_sweep_and_newer_stripe_state_wins() {
    let env = JobEnv::new().await;
    let (pool, stripe) = (&env.db.pool, &env.config.stripe);
    let period = (T - 30 * DAY, T);
    let (lost, _) = from_stripe(&env, 1, "active", period, None).await;
    let (paid, _) = from_stripe(&env, 2, "active", period, None).await;
    let (restored, restored_user) = from_stripe(&env, 3, "active", period, None).await;
    let (unpaid, unpaid_user) =
        from_stripe(&env, 4, "past_due", (T - 10 * DAY, T + 20 * DAY), None).await;
    let shape = ApiShape::Basil;
    let invoice = fx::invoice(shape, "in_paid", "cus_2", "sub_2", 2000, Some(T + 60), 2);
    deliver(
        pool,
        stripe,
        &envelope(shape, "evt_paid", "invoice.paid", T + 60, invoice),
        at(T + 60),
    )
    .await
    .unwrap();

    let report = run_renewals(pool, stripe, at(T + 3600)).await.unwrap();
    assert_eq!(
        report,
        RenewalSweepReport {
            past_due: 2,
            ..Default::default()
        },
        "a paid renewal is not overdue"
    );
    assert_eq!(state(&env, &paid).await.0, "active");
    let (status, _, grace, _) = state(&env, &lost).await;
    assert_eq!(
        (status.as_str(), grace),
        ("past_due", Some(at(T + 7 * DAY)))
    );
    assert_eq!(
        state(&env, &unpaid).await.2,
        Some(at(T - 3 * DAY)),
        "grace from the unpaid period's start"
    );
    assert_eq!(
        access_until(&env, unpaid_user).await,
        at(T - 3 * DAY),
        "Stripe past_due beyond grace: no access"
    );
    assert_eq!(
        state(&env, &unpaid).await.0,
        "past_due",
        "Stripe decides when it ends"
    );

    // The renewal webhook arrives late: a newer Stripe state overrides the sweep's past_due.
    let renewed = SubscriptionState::new("sub_1", "cus_1", "active", (T, T + 30 * DAY));
    let event = envelope(
        ApiShape::PreBasil,
        "evt_renewed",
        "customer.subscription.updated",
        T + 5,
        fx::subscription(ApiShape::PreBasil, &renewed),
    );
    deliver(pool, stripe, &event, at(T + 7200)).await.unwrap();
    let (status, _, grace, period_end) = state(&env, &lost).await;
    assert_eq!(
        (status.as_str(), grace, period_end),
        ("active", None, at(T + 30 * DAY))
    );

    // Only the invoice arrives: paying a newer period restores the swept subscription.
    let mut invoice = fx::invoice(
        ApiShape::PreBasil,
        "in_new",
        "cus_3",
        "sub_3",
        2000,
        Some(T + 7000),
        1,
    );
    fx::set(
        &mut invoice,
        "lines.data",
        json!([{"object": "line_item", "period": {"start": T, "end": T + 30 * DAY}}]),
    );
    deliver(
        pool,
        stripe,
        &envelope(
            ApiShape::PreBasil,
            "evt_new",
            "invoice.paid",
            T + 7000,
            invoice,
        ),
        at(T + 7200),
    )
    .await
    .unwrap();
    let (status, _, grace, period_end) = state(&env, &restored).await;
    assert_eq!(
        (status.as_str(), grace, period_end),
        ("active", None, at(T + 30 * DAY))
    );
    assert_eq!(access_until(&env, restored_user).await, at(T + 30 * DAY));
    assert_eq!(
        run_renewals(pool, stripe, at(T + 7300)).await.unwrap(),
        RenewalSweepReport::default()
    );
}

#[tokio::test]
async fn the_sweeps_run_as_billing_jobs_on_the_worker() {
    let env = JobEnv::new().await;
    let now = Utc::now().timestamp();
    let (id, _) = local(
        &env,
        "active",
        "monthly",
        (now - 31 * DAY, now - 60),
        None,
        false,
    )
    .await;
    let worker = TestWorker::spawn(env.config.clone(), &[Queue::Billing]).await;
    assert_eq!(RenewalSweep::SPEC.queue, Queue::Billing);
    env.enqueuer
        .enqueue(&RenewalSweep {}, EnqueueOptions::default())
        .await
        .unwrap();
    until(
        Duration::from_secs(30),
        "the renewal sweep marks the subscription past due",
        || async { (state(&env, &id.to_string()).await.0 == "past_due").then_some(()) },
    )
    .await;
    worker.stop().await.unwrap();
}

#[test]
fn the_sweeps_are_billing_jobs_scheduled_every_five_minutes() {
    let table = CronTable::defaults();
    for (name, kind) in [
        ("trial_expiry_sweep", TrialExpirySweep::SPEC.kind),
        ("renewal_sweep", RenewalSweep::SPEC.kind),
    ] {
        let schedule = table.get(name).expect("scheduled");
        assert_eq!(schedule.expression.source(), "0 */5 * * * *", "{name}");
        assert_eq!(
            (schedule.time_zone, schedule.queue(), schedule.job_kind()),
            (Tz::UTC, Queue::Billing, kind)
        );
        assert!(catalog::spec(kind).is_some(), "{kind} is in the catalog");
    }
}
