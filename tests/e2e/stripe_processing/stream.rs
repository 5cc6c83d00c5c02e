//! A subscription's whole life as one event stream, delivered in random orders with duplicates, and
//! the ordering guard's edge cases (same second, late `created`, terminal states).

use chrono::{DateTime, Utc};
use mingus_common::config::stripe::StripeConfig;
use mingus_tests::JobEnv;
use mingus_tests::stripe::{
    self as fx, ApiShape, SeededRng, SubscriptionState, deliver, drain, envelope, store,
};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::{DAY, T, at, emails, sub, user};

const USER: Uuid = Uuid::from_u128(0x0000_1111_2222_3333_4444_5555_6666_7777);

/// checkout → created → invoice paid → updated (active) → payment failed → past_due → paid → active →
/// cancel_at_period_end → deleted.
fn life(shape: ApiShape) -> Vec<Value> {
    let (cus, id) = ("cus_life", "sub_life");
    let first = (T, T + 30 * DAY);
    let second = (T + 30 * DAY, T + 60 * DAY);
    let state = |status, period| SubscriptionState::new(id, cus, status, period);
    let cancelling = SubscriptionState {
        cancel_at_period_end: true,
        canceled_at: Some(T + 40 * DAY),
        ..state("active", second)
    };
    let ended = SubscriptionState {
        status: "canceled",
        ended_at: Some(T + 60 * DAY),
        ..cancelling.clone()
    };
    let s = |state: &SubscriptionState<'_>| fx::subscription(shape, state);
    let invoice = |inv: &str, paid: Option<i64>, attempt| {
        fx::invoice(shape, inv, cus, id, 2000, paid, attempt)
    };
    let checkout = fx::checkout(shape, cus, &USER.to_string(), id);
    let e = |event: &str, kind: &str, created: i64, object: Value| {
        envelope(shape, event, kind, created, object)
    };
    vec![
        e("evt_l01", "checkout.session.completed", T, checkout),
        e(
            "evt_l02",
            "customer.subscription.created",
            T + 1,
            s(&state("incomplete", first)),
        ),
        e(
            "evt_l03",
            "invoice.paid",
            T + 2,
            invoice("in_l1", Some(T + 2), 1),
        ),
        e(
            "evt_l04",
            "invoice.payment_succeeded",
            T + 2,
            invoice("in_l1", Some(T + 2), 1),
        ),
        e(
            "evt_l05",
            "customer.subscription.updated",
            T + 2,
            s(&state("active", first)),
        ),
        e(
            "evt_l06",
            "invoice.payment_failed",
            T + 30 * DAY + 3600,
            invoice("in_l2", None, 1),
        ),
        e(
            "evt_l07",
            "customer.subscription.updated",
            T + 30 * DAY + 3600,
            s(&state("past_due", second)),
        ),
        e(
            "evt_l08",
            "invoice.paid",
            T + 33 * DAY,
            invoice("in_l2", Some(T + 33 * DAY), 2),
        ),
        e(
            "evt_l09",
            "customer.subscription.updated",
            T + 33 * DAY + 1,
            s(&state("active", second)),
        ),
        e(
            "evt_l10",
            "customer.subscription.updated",
            T + 40 * DAY,
            s(&cancelling),
        ),
        e(
            "evt_l11",
            "customer.subscription.deleted",
            T + 60 * DAY,
            s(&ended),
        ),
    ]
}

/// Everything the stream decides, without surrogate ids and bookkeeping times.
async fn snapshot(pool: &PgPool) -> Vec<Value> {
    let mut rows = Vec::new();
    for sql in [
        "SELECT to_jsonb(s) - 'id' - 'created_at' - 'updated_at' FROM subscriptions s ORDER BY stripe_subscription_id",
        "SELECT to_jsonb(b) - 'id' - 'subscription_id' FROM billing_history b ORDER BY transaction_id",
        "SELECT to_jsonb(f) - 'id' - 'granted_at' FROM feature_access f ORDER BY feature_name",
    ] {
        let part: Vec<Value> = sqlx::query_scalar(sql).fetch_all(pool).await.unwrap();
        rows.extend(part);
    }
    rows
}

/// Delivers `events` in a seeded random order with duplicates, each processed on arrival, then
/// drains what had to wait. Returns the final snapshot.
async fn deliver_shuffled(shape: ApiShape, seed: u64, now: DateTime<Utc>) -> (Vec<Value>, usize) {
    let env = JobEnv::new().await;
    let (pool, stripe): (&PgPool, &StripeConfig) = (&env.db.pool, &env.config.stripe);
    user(&env, USER, "life@example.com").await;
    let mut rng = SeededRng::new(seed);
    let mut events = life(shape);
    for _ in 0..4 {
        let duplicate = events[rng.below(events.len())].clone();
        events.push(duplicate);
    }
    rng.shuffle(&mut events);
    for event in &events {
        let _ = deliver(pool, stripe, event, now).await;
    }
    let pending = drain(pool, stripe, now, 15, |ids| rng.shuffle(ids)).await;
    assert!(pending.is_empty(), "seed {seed}: still pending {pending:?}");
    let processed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE status = 'processed'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        processed, 11,
        "seed {seed}: every event processed once stored once"
    );
    let cancelled = emails(&env)
        .await
        .iter()
        .filter(|(t, _)| t == "subscription_cancelled")
        .count();
    assert_eq!(cancelled, 1, "seed {seed}");
    (snapshot(pool).await, events.len())
}

#[tokio::test]
async fn a_subscription_life_in_random_orders_with_duplicates_always_ends_the_same() {
    let now = at(T + 61 * DAY);
    let (reference, _) = deliver_shuffled(ApiShape::Basil, 0, now).await;
    for shape in ApiShape::ALL {
        for seed in 1..=6 {
            let (snapshot, delivered) = deliver_shuffled(shape, seed, now).await;
            assert_eq!(delivered, 15);
            assert_eq!(
                snapshot, reference,
                "{shape:?} seed {seed} ends differently"
            );
        }
    }
    let sub = &reference[0];
    assert_eq!(
        (sub["status"].as_str(), sub["stripe_status"].as_str()),
        (Some("cancelled"), Some("canceled"))
    );
    assert_eq!(
        sub["ended_at"]
            .as_str()
            .map(|s| s.parse::<DateTime<Utc>>().unwrap()),
        Some(at(T + 60 * DAY))
    );
    assert_eq!(sub["cancel_at_period_end"], Value::Bool(true));
    assert_eq!(sub["grace_until"], Value::Null);
    let history: Vec<(&str, &str)> = reference[1..4]
        .iter()
        .map(|row| {
            (
                row["transaction_id"].as_str().unwrap(),
                row["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("in_l1", "paid"),
            ("in_l2", "paid"),
            ("in_l2:attempt:1", "failed")
        ]
    );
    assert!(
        reference[1..4]
            .iter()
            .all(|row| row["amount"] == serde_json::json!(20.00))
    );
    let access = &reference[4..];
    assert_eq!(access.len(), 8, "professional features");
    for row in access {
        assert_eq!(row["granted_by"], "subscription");
        let expires: DateTime<Utc> = row["expires_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            expires,
            at(T + 60 * DAY),
            "access ended when the subscription did"
        );
    }
}

async fn apply(
    env: &JobEnv,
    shape: ApiShape,
    id: &str,
    kind: &str,
    created: i64,
    state: &SubscriptionState<'_>,
) {
    let event = envelope(shape, id, kind, created, fx::subscription(shape, state));
    deliver(&env.db.pool, &env.config.stripe, &event, at(created + 60))
        .await
        .expect("applies");
}

async fn linked_env(shape: ApiShape) -> JobEnv {
    let env = JobEnv::new().await;
    user(&env, USER, "guard@example.com").await;
    let checkout = fx::checkout(shape, "cus_g", &USER.to_string(), "sub_g");
    store(
        &env.db.pool,
        &envelope(shape, "evt_co", "checkout.session.completed", T, checkout),
    )
    .await;
    fx::process(&env.db.pool, &env.config.stripe, "evt_co", at(T))
        .await
        .unwrap();
    env
}

#[tokio::test]
async fn same_second_events_are_ordered_by_status_rank_in_either_arrival_order() {
    for shape in ApiShape::ALL {
        for reversed in [false, true] {
            let env = linked_env(shape).await;
            let period = (T, T + 30 * DAY);
            let mut states = vec![
                (
                    "evt_a",
                    "customer.subscription.created",
                    SubscriptionState::new("sub_g", "cus_g", "incomplete", period),
                ),
                (
                    "evt_b",
                    "customer.subscription.updated",
                    SubscriptionState::new("sub_g", "cus_g", "active", period),
                ),
            ];
            if reversed {
                states.reverse();
            }
            for (id, kind, state) in &states {
                apply(&env, shape, id, kind, T + 5, state).await;
            }
            let row = sub(&env, "sub_g").await;
            assert_eq!(
                row.stripe_status.as_deref(),
                Some("active"),
                "{shape:?} reversed={reversed}: not stuck at incomplete"
            );
            // A cancellation in the same second as an activation stays a cancellation.
            let cancel = SubscriptionState {
                ended_at: Some(T + 9),
                ..SubscriptionState::new("sub_g", "cus_g", "canceled", period)
            };
            let active = SubscriptionState::new("sub_g", "cus_g", "active", period);
            let mut pair = vec![
                ("evt_c", "customer.subscription.deleted", cancel),
                ("evt_d", "customer.subscription.updated", active),
            ];
            if reversed {
                pair.reverse();
            }
            for (id, kind, state) in &pair {
                apply(&env, shape, id, kind, T + 9, state).await;
            }
            assert_eq!(
                sub(&env, "sub_g").await.status,
                "cancelled",
                "{shape:?} reversed={reversed}"
            );
        }
    }
}

#[tokio::test]
async fn a_late_created_changes_nothing_and_only_a_newer_event_revives_a_cancelled_subscription() {
    for shape in ApiShape::ALL {
        let env = linked_env(shape).await;
        let period = (T, T + 30 * DAY);
        let mut updated = SubscriptionState::new("sub_g", "cus_g", "active", period);
        updated.cancel_at_period_end = true;
        apply(
            &env,
            shape,
            "evt_u",
            "customer.subscription.updated",
            T + 5,
            &updated,
        )
        .await;
        let created = SubscriptionState::new("sub_g", "cus_g", "active", period);
        apply(
            &env,
            shape,
            "evt_c_same",
            "customer.subscription.created",
            T + 5,
            &created,
        )
        .await;
        apply(
            &env,
            shape,
            "evt_c_old",
            "customer.subscription.created",
            T + 1,
            &created,
        )
        .await;
        assert!(
            sub(&env, "sub_g").await.cancel_at_period_end,
            "{shape:?}: the late created changed nothing"
        );

        let cancel = SubscriptionState {
            ended_at: Some(T + 10),
            ..SubscriptionState::new("sub_g", "cus_g", "canceled", period)
        };
        apply(
            &env,
            shape,
            "evt_del",
            "customer.subscription.deleted",
            T + 10,
            &cancel,
        )
        .await;
        apply(
            &env,
            shape,
            "evt_old_active",
            "customer.subscription.updated",
            T + 7,
            &created,
        )
        .await;
        assert_eq!(
            sub(&env, "sub_g").await.status,
            "cancelled",
            "an older active does not revive it"
        );
        apply(
            &env,
            shape,
            "evt_new_active",
            "customer.subscription.updated",
            T + 11,
            &created,
        )
        .await;
        let row = sub(&env, "sub_g").await;
        assert_eq!(
            (row.status.as_str(), row.ended_at),
            ("active", None),
            "a strictly newer event revives it"
        );
    }
}

/// Delivered newest first, each event processed once on arrival and never retried: every event that
/// arrives before what it depends on is parked on it (`waits_for`), and applying the dependency
/// re-drives it at once, so nothing is left for the backoff and the result is the in-order one.
#[tokio::test]
async fn a_life_delivered_newest_first_converges_on_arrival_without_retries() {
    let now = at(T + 61 * DAY);
    for shape in ApiShape::ALL {
        let ordered = JobEnv::new().await;
        user(&ordered, USER, "life@example.com").await;
        for event in life(shape) {
            deliver(&ordered.db.pool, &ordered.config.stripe, &event, now)
                .await
                .expect("in order, every event applies");
        }
        let reference = snapshot(&ordered.db.pool).await;

        let env = JobEnv::new().await;
        let (pool, stripe): (&PgPool, &StripeConfig) = (&env.db.pool, &env.config.stripe);
        user(&env, USER, "life@example.com").await;
        let mut events = life(shape);
        events.reverse();
        let checkout = events.pop().expect("the checkout comes first in a life");
        for event in &events {
            let _ = deliver(pool, stripe, event, now).await;
        }
        let parked: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT id, waits_for FROM stripe_events WHERE status = 'received' ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(!parked.is_empty(), "{shape:?}: nothing waited");
        for (id, waits_for) in &parked {
            let key = waits_for.as_deref().unwrap_or_default();
            assert!(
                key == "customer:cus_life" || key == "subscription:sub_life",
                "{shape:?}: {id} waits for {key:?}"
            );
        }

        deliver(pool, stripe, &checkout, now)
            .await
            .expect("the checkout applies");
        let left: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM stripe_events WHERE status <> 'processed' ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(
            left.is_empty(),
            "{shape:?}: not applied on arrival: {left:?}"
        );
        let marks: i64 =
            sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE waits_for IS NOT NULL")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(marks, 0, "{shape:?}: every mark was claimed");
        assert_eq!(
            snapshot(pool).await,
            reference,
            "{shape:?} ends differently"
        );
    }
}
