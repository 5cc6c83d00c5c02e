//! The convergence property: whatever order Stripe delivers a customer's events in, and however often,
//! the final subscriptions, billing history, feature access and customer link equal the in-order
//! result — and every event is applied on arrival of what it waited for, with no retry.
//!
//! The life: a customer linked twice (customer.created, checkout), a subscription created, paid,
//! activated, then two changes in the same second and rank (cancel at period end, then an upgrade:
//! only `previous_attributes` orders them), two partial refunds of its charge, its end, a second
//! subscription in another currency fully refunded, and (in half the runs) the customer's deletion with
//! that subscription's end in the same second. The refunds come in the three shapes Stripe has sent:
//! embedded in `charge.refunded` (before 2022-11-15), as `amount_refunded` alone (2022-11-15 …
//! 2024-10-27) and as `refund.*` events beside an unitemised `charge.refunded` (from 2024-10-28).
//! Each run uses its own ids, so all runs of a case share one database.

use mingus_tests::JobEnv;
use mingus_tests::stripe::{self as fx, ApiShape, SeededRng, SubscriptionState, deliver, envelope};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{DAY, T, at, user};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refunds {
    /// `charge.refunded` embeds the refund list.
    Embedded,
    /// `charge.refunded` carries `amount_refunded` only; no `refund.*` events.
    AmountOnly,
    /// `charge.refunded` without the list, and a `refund.created` per refund.
    Itemised,
}

const CASES: [(ApiShape, Refunds); 3] = [
    (ApiShape::PreBasil, Refunds::Embedded),
    (ApiShape::PreBasil, Refunds::AmountOnly),
    (ApiShape::Basil, Refunds::Itemised),
];

/// Random delivery orders per case (besides in order and newest first).
const SAMPLES: u64 = 24;

/// One run's ids: every Stripe id and the user carry the run's tag.
struct Life {
    tag: String,
    user: Uuid,
    deleted: bool,
}

impl Life {
    fn id(&self, name: &str) -> String {
        format!("{name}_{}", self.tag)
    }
}

fn with_previous(mut event: Value, previous: Value) -> Value {
    fx::set(&mut event, "data.previous_attributes", previous);
    event
}

/// A charge of `invoice` (named on the charge before basil), made at `created`.
fn charge(shape: ApiShape, life: &Life, name: &str, invoice: &str, currency: &str) -> Value {
    let mut charge = fx::refunded_charge(
        shape,
        &life.id(name),
        &life.id("cus"),
        Some(invoice),
        vec![],
    );
    fx::set(&mut charge, "currency", json!(currency));
    charge
}

/// `charge.refunded` after `refunds` (id, amount) in the case's shape, created at `created`.
fn refunded(
    shape: ApiShape,
    kind: Refunds,
    mut charge: Value,
    charge_created: i64,
    refunds: &[(String, i64)],
) -> Value {
    let currency = charge["currency"].clone();
    let objects: Vec<Value> = refunds
        .iter()
        .map(|(id, amount)| {
            let mut refund = fx::refund(
                shape,
                id,
                charge["id"].as_str().unwrap(),
                *amount,
                "succeeded",
            );
            fx::set(&mut refund, "currency", currency.clone());
            refund
        })
        .collect();
    let total: i64 = refunds.iter().map(|r| r.1).sum();
    fx::set(&mut charge, "created", json!(charge_created));
    fx::set(&mut charge, "amount_refunded", json!(total));
    match kind {
        Refunds::Embedded => fx::set(&mut charge, "refunds.data", json!(objects)),
        Refunds::AmountOnly | Refunds::Itemised => fx::set(&mut charge, "refunds", Value::Null),
    }
    charge
}

fn refund_object(
    shape: ApiShape,
    id: &str,
    charge: &str,
    amount: i64,
    currency: &str,
    created: i64,
) -> Value {
    let mut refund = fx::refund(shape, id, charge, amount, "succeeded");
    fx::set(&mut refund, "currency", json!(currency));
    fx::set(&mut refund, "created", json!(created));
    refund
}

/// The run's events, in Stripe's order.
fn events(shape: ApiShape, kind: Refunds, life: &Life) -> Vec<Value> {
    let (cus, sub1, sub2) = (life.id("cus"), life.id("sub1"), life.id("sub2"));
    let (in1, in2, ch1, ch2) = (
        life.id("in1"),
        life.id("in2"),
        life.id("ch1"),
        life.id("ch2"),
    );
    let (re1, re2, re3) = (life.id("re1"), life.id("re2"), life.id("re3"));
    let ev = |name: &str, kind: &str, created: i64, object: Value| {
        envelope(
            shape,
            &life.id(&format!("evt_{name}")),
            kind,
            created,
            object,
        )
    };
    let first = SubscriptionState {
        start_date: Some(T + 2),
        ..SubscriptionState::new(&sub1, &cus, "incomplete", (T + 2, T + 2 + 30 * DAY))
    };
    let active = SubscriptionState {
        status: "active",
        ..first.clone()
    };
    let cancelling = SubscriptionState {
        cancel_at_period_end: true,
        canceled_at: Some(T + 4),
        ..active.clone()
    };
    let upgraded = SubscriptionState {
        lookup_key: "executive_monthly",
        unit_amount: 9900,
        ..cancelling.clone()
    };
    let ended1 = SubscriptionState {
        status: "canceled",
        ended_at: Some(T + 7),
        ..upgraded.clone()
    };
    let second = SubscriptionState {
        start_date: Some(T + 8),
        ..SubscriptionState::new(&sub2, &cus, "active", (T + 8, T + 8 + 30 * DAY))
    };
    let ended2 = SubscriptionState {
        status: "canceled",
        canceled_at: Some(T + 10),
        ended_at: Some(T + 10),
        ..second.clone()
    };
    let s = |state: &SubscriptionState<'_>| fx::subscription(shape, state);
    let professional_items = s(&cancelling)["items"].clone();
    let mut paid2 = fx::invoice(shape, &in2, &cus, &sub2, 2000, Some(T + 8), 1);
    fx::set(&mut paid2, "currency", json!("eur"));

    let mut out = vec![
        ev(
            "customer",
            "customer.created",
            T,
            fx::customer(
                shape,
                &cus,
                Some("life@example.com"),
                Some(&life.user.to_string()),
            ),
        ),
        ev(
            "checkout",
            "checkout.session.completed",
            T + 1,
            fx::checkout(shape, &cus, &life.user.to_string(), &sub1),
        ),
        ev(
            "s1_created",
            "customer.subscription.created",
            T + 2,
            s(&first),
        ),
        ev(
            "in1_paid",
            "invoice.paid",
            T + 3,
            fx::invoice(shape, &in1, &cus, &sub1, 2000, Some(T + 3), 1),
        ),
        with_previous(
            ev(
                "s1_active",
                "customer.subscription.updated",
                T + 3,
                s(&active),
            ),
            json!({"status": "incomplete"}),
        ),
        with_previous(
            ev(
                "s1_cancelling",
                "customer.subscription.updated",
                T + 4,
                s(&cancelling),
            ),
            json!({"cancel_at_period_end": false, "canceled_at": null}),
        ),
        with_previous(
            ev(
                "s1_upgraded",
                "customer.subscription.updated",
                T + 4,
                s(&upgraded),
            ),
            json!({"items": professional_items}),
        ),
        ev(
            "s1_ended",
            "customer.subscription.deleted",
            T + 7,
            s(&ended1),
        ),
        ev(
            "s2_created",
            "customer.subscription.created",
            T + 8,
            s(&second),
        ),
        ev("in2_paid", "invoice.paid", T + 8, paid2),
    ];
    // ch1 (USD, for in1 at T+3): 3.00 at T+5, then 2.00 at T+6. ch2 (EUR, for in2 at T+8): all at T+9.
    let usd = charge(shape, life, "ch1", &in1, "usd");
    let eur = charge(shape, life, "ch2", &in2, "eur");
    let r1 = (re1.clone(), 300);
    let r2 = (re2.clone(), 200);
    let r3 = (re3.clone(), 2000);
    out.push(ev(
        "ch1_r1",
        "charge.refunded",
        T + 5,
        refunded(shape, kind, usd.clone(), T + 3, std::slice::from_ref(&r1)),
    ));
    out.push(ev(
        "ch1_r2",
        "charge.refunded",
        T + 6,
        refunded(shape, kind, usd, T + 3, &[r1, r2]),
    ));
    out.push(ev(
        "ch2_r3",
        "charge.refunded",
        T + 9,
        refunded(shape, kind, eur, T + 8, &[r3]),
    ));
    if kind == Refunds::Itemised {
        out.push(ev(
            "re1",
            "refund.created",
            T + 5,
            refund_object(shape, &re1, &ch1, 300, "usd", T + 5),
        ));
        out.push(ev(
            "re2",
            "refund.created",
            T + 6,
            refund_object(shape, &re2, &ch1, 200, "usd", T + 6),
        ));
        out.push(ev(
            "re3",
            "refund.created",
            T + 9,
            refund_object(shape, &re3, &ch2, 2000, "eur", T + 9),
        ));
    }
    if life.deleted {
        out.push(ev(
            "deleted",
            "customer.deleted",
            T + 10,
            fx::deleted_customer(shape, &cus),
        ));
        out.push(ev(
            "s2_ended",
            "customer.subscription.deleted",
            T + 10,
            s(&ended2),
        ));
    }
    out.sort_by_key(|e| e["created"].as_i64());
    out
}

/// Everything the run left for its user, as JSON with the run's tag removed.
async fn outcome(pool: &PgPool, life: &Life) -> String {
    let snapshot: Value = sqlx::query_scalar(
        "SELECT jsonb_build_object(
           'subscriptions', (SELECT jsonb_agg(to_jsonb(s) - 'id' - 'user_id' - 'created_at' - 'updated_at'
                                              ORDER BY stripe_subscription_id)
                             FROM subscriptions s WHERE user_id = $1),
           'billing_history', (SELECT jsonb_agg((to_jsonb(b) - 'id' - 'user_id' - 'subscription_id')
                                                || jsonb_build_object('subscription', s.stripe_subscription_id)
                                                ORDER BY b.transaction_id)
                               FROM billing_history b JOIN subscriptions s ON s.id = b.subscription_id
                               WHERE b.user_id = $1),
           'feature_access', (SELECT jsonb_agg(to_jsonb(f) - 'id' - 'user_id' - 'granted_at' ORDER BY feature_name)
                              FROM feature_access f WHERE user_id = $1),
           'link', (SELECT stripe_customer_id FROM users WHERE id = $1),
           'history', (SELECT jsonb_agg(to_jsonb(c) - 'user_id') FROM stripe_customers c WHERE user_id = $1))",
    )
    .bind(life.user)
    .fetch_one(pool)
    .await
    .expect("snapshot");
    snapshot.to_string().replace(&format!("_{}", life.tag), "")
}

/// Delivers `order` (event indexes, repeats allowed) and returns the run's events not applied.
async fn run(
    env: &JobEnv,
    events: &[Value],
    order: &[usize],
    life: &Life,
) -> Vec<(String, String)> {
    let now = at(T + DAY);
    for &i in order {
        // A delivery that must wait fails retryably here; applying what it waits for re-drives it.
        let _ = deliver(&env.db.pool, &env.config.stripe, &events[i], now).await;
    }
    sqlx::query_as(
        "SELECT id, status FROM stripe_events WHERE id LIKE $1 AND status NOT IN ('processed', 'ignored')
         ORDER BY id",
    )
    .bind(format!("%_{}", life.tag))
    .fetch_all(&env.db.pool)
    .await
    .expect("statuses")
}

async fn new_life(env: &JobEnv, case: usize, run: u64, deleted: bool) -> Life {
    let life = Life {
        tag: format!("c{case}r{run}{}", if deleted { "d" } else { "k" }),
        user: Uuid::new_v4(),
        deleted,
    };
    user(env, life.user, &format!("{}@example.com", life.user)).await;
    life
}

#[tokio::test]
async fn every_delivery_order_with_duplicates_converges_to_the_in_order_result() {
    for (case, (shape, kind)) in CASES.into_iter().enumerate() {
        let env = JobEnv::new().await;
        let mut rng = SeededRng::new(0x5eed_0000 + case as u64);
        for deleted in [false, true] {
            let reference = new_life(&env, case, 0, deleted).await;
            let events_in_order = events(shape, kind, &reference);
            let in_order: Vec<usize> = (0..events_in_order.len()).collect();
            let left = run(&env, &events_in_order, &in_order, &reference).await;
            assert!(
                left.is_empty(),
                "{shape:?} {kind:?}: in order, not applied: {left:?}"
            );
            let expected = outcome(&env.db.pool, &reference).await;
            assert_expected_shape(&expected, kind, deleted);

            for sample in 1..=SAMPLES + 1 {
                let life = new_life(&env, case, sample, deleted).await;
                let events = events(shape, kind, &life);
                let order: Vec<usize> = if sample == 1 {
                    (0..events.len()).rev().collect()
                } else {
                    let mut order: Vec<usize> = (0..events.len())
                        .flat_map(|i| std::iter::repeat_n(i, 1 + rng.below(3)))
                        .collect();
                    rng.shuffle(&mut order);
                    order
                };
                let left = run(&env, &events, &order, &life).await;
                assert!(
                    left.is_empty(),
                    "{shape:?} {kind:?} deleted={deleted} sample {sample}: not applied on arrival: {left:?}"
                );
                assert_eq!(
                    outcome(&env.db.pool, &life).await,
                    expected,
                    "{shape:?} {kind:?} deleted={deleted} sample {sample}: order {order:?}"
                );
            }
        }
    }
}

/// The reference itself is right: the upgrade won the same-second pair, each refund counted once under
/// the subscription it paid, and the deleted customer's history kept.
fn assert_expected_shape(snapshot: &str, kind: Refunds, deleted: bool) {
    let value: Value = serde_json::from_str(snapshot).unwrap();
    let subs = value["subscriptions"]
        .as_array()
        .expect("two subscriptions");
    assert_eq!(subs.len(), 2, "{snapshot}");
    assert_eq!(
        subs[0]["plan_tier"], "executive",
        "the later change of the same second wins"
    );
    assert_eq!(subs[0]["cancel_at_period_end"], true);
    let got: Vec<(&str, &str, f64)> = value["billing_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["status"] == "refunded")
        .map(|row| {
            (
                row["subscription"].as_str().unwrap(),
                row["currency"].as_str().unwrap(),
                row["amount"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected = match kind {
        Refunds::AmountOnly => vec![("sub1", "USD", 5.0), ("sub2", "EUR", 20.0)],
        _ => vec![
            ("sub1", "USD", 3.0),
            ("sub1", "USD", 2.0),
            ("sub2", "EUR", 20.0),
        ],
    };
    assert_eq!(got, expected, "{kind:?}: {snapshot}");
    let link = &value["link"];
    if deleted {
        assert!(link.is_null(), "a deleted customer is unlinked: {snapshot}");
        assert!(!value["history"][0]["deleted_at"].is_null(), "{snapshot}");
    } else {
        assert_eq!(link, "cus", "{snapshot}");
    }
}
