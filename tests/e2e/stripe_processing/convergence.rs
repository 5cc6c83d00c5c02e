//! The convergence rules one at a time: a deleted customer's history, the recorded same-second
//! decisions, refunds known only from `amount_refunded`, and the nightly local drift report.

use mingus_common::billing::drift;
use mingus_tests::JobEnv;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, deliver, envelope, status_of};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{DAY, T, at, history, linked_customer, sub, user};

async fn decision(env: &JobEnv, event_id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT order_decision FROM stripe_events WHERE id = $1")
        .bind(event_id)
        .fetch_one(&env.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_deleted_customers_older_events_resolve_to_its_user_and_newer_ones_never_relink() {
    for shape in ApiShape::ALL {
        let env = JobEnv::new().await;
        let (pool, stripe) = (&env.db.pool, &env.config.stripe);
        let now = at(T + DAY);
        let owner = Uuid::new_v4();
        user(&env, owner, "owner@example.com").await;
        let deleted = envelope(
            shape,
            "evt_del",
            "customer.deleted",
            T + 50,
            fx::deleted_customer(shape, "cus_gone"),
        );
        deliver(pool, stripe, &deleted, now).await.unwrap();

        // Older than the deletion: the link is history only, and the subscription resolves through it.
        let checkout = fx::checkout(shape, "cus_gone", &owner.to_string(), "sub_old");
        deliver(
            pool,
            stripe,
            &envelope(
                shape,
                "evt_co",
                "checkout.session.completed",
                T + 1,
                checkout,
            ),
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            linked_customer(&env, owner).await,
            None,
            "{shape:?}: not re-linked"
        );
        let old = SubscriptionState::new("sub_old", "cus_gone", "active", (T, T + 30 * DAY));
        let created = envelope(
            shape,
            "evt_old",
            "customer.subscription.created",
            T + 2,
            fx::subscription(shape, &old),
        );
        deliver(pool, stripe, &created, now).await.unwrap();
        assert_eq!(sub(&env, "sub_old").await.user_id, owner, "{shape:?}");
        let paid = fx::invoice(shape, "in_old", "cus_gone", "sub_old", 2000, Some(T + 3), 1);
        deliver(
            pool,
            stripe,
            &envelope(shape, "evt_paid", "invoice.paid", T + 3, paid),
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            history(&env).await.len(),
            1,
            "{shape:?}: the paid invoice is recorded"
        );

        // Newer than the deletion: a new subscription of the deleted customer finds no user.
        let late = SubscriptionState::new(
            "sub_late",
            "cus_gone",
            "active",
            (T + 60, T + 60 + 30 * DAY),
        );
        let newer = envelope(
            shape,
            "evt_new",
            "customer.subscription.created",
            T + 60,
            fx::subscription(shape, &late),
        );
        assert!(
            deliver(pool, stripe, &newer, now).await.is_err(),
            "{shape:?}"
        );
        assert_eq!(status_of(pool, "evt_new").await, "received");
        let relink = fx::checkout(shape, "cus_gone", &owner.to_string(), "sub_late");
        deliver(
            pool,
            stripe,
            &envelope(
                shape,
                "evt_co2",
                "checkout.session.completed",
                T + 61,
                relink,
            ),
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            linked_customer(&env, owner).await,
            None,
            "{shape:?}: a deleted customer stays unlinked"
        );
        assert_eq!(status_of(pool, "evt_new").await, "received", "{shape:?}");
        let (user_id, deleted_at): (Option<Uuid>, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as(
                "SELECT user_id, deleted_at FROM stripe_customers WHERE customer_id = 'cus_gone'",
            )
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(
            (user_id, deleted_at),
            (Some(owner), Some(at(T + 50))),
            "{shape:?}"
        );
    }
}

fn updated(
    shape: ApiShape,
    id: &str,
    created: i64,
    state: &SubscriptionState<'_>,
    previous: Value,
) -> Value {
    let mut event = envelope(
        shape,
        id,
        "customer.subscription.updated",
        created,
        fx::subscription(shape, state),
    );
    fx::set(&mut event, "data.previous_attributes", previous);
    event
}

#[tokio::test]
async fn each_state_event_records_how_it_was_ordered() {
    let shape = ApiShape::Basil;
    let env = JobEnv::new().await;
    let (pool, stripe) = (&env.db.pool, &env.config.stripe);
    let now = at(T + DAY);
    super::customer_of_new_user(&env, shape, "cus_o").await;
    let base = SubscriptionState::new("sub_o", "cus_o", "active", (T, T + 30 * DAY));
    let cancelling = SubscriptionState {
        cancel_at_period_end: true,
        canceled_at: Some(T + 5),
        ..base.clone()
    };
    let upgraded = SubscriptionState {
        lookup_key: "executive_monthly",
        unit_amount: 9900,
        ..cancelling.clone()
    };
    let created = envelope(
        shape,
        "evt_o1",
        "customer.subscription.created",
        T + 1,
        fx::subscription(shape, &base),
    );
    deliver(pool, stripe, &created, now).await.unwrap();
    let professional_items = fx::subscription(shape, &cancelling)["items"].clone();
    // The second change of T+5 arrives first; the first one then finds itself "before" the stored one.
    let second = updated(
        shape,
        "evt_o3",
        T + 5,
        &upgraded,
        json!({"items": professional_items}),
    );
    let first = updated(
        shape,
        "evt_o2",
        T + 5,
        &cancelling,
        json!({"cancel_at_period_end": false, "canceled_at": null}),
    );
    deliver(pool, stripe, &second, now).await.unwrap();
    deliver(pool, stripe, &first, now).await.unwrap();
    let older = updated(shape, "evt_o0", T + 2, &base, json!({}));
    deliver(pool, stripe, &older, now).await.unwrap();
    // Same second and rank, nothing to order them by: processing order.
    let flip = updated(shape, "evt_o4", T + 5, &upgraded, json!({}));
    deliver(pool, stripe, &flip, now).await.unwrap();

    assert_eq!(decision(&env, "evt_o1").await.as_deref(), Some("first"));
    assert_eq!(decision(&env, "evt_o3").await.as_deref(), Some("newer"));
    assert_eq!(
        decision(&env, "evt_o2").await.as_deref(),
        Some("same_second_previous_before")
    );
    assert_eq!(decision(&env, "evt_o0").await.as_deref(), Some("older"));
    assert_eq!(
        decision(&env, "evt_o4").await.as_deref(),
        Some("same_second_processing_order")
    );
    let row = sub(&env, "sub_o").await;
    assert_eq!(
        row.plan_tier, "executive",
        "the earlier change of the second did not undo the upgrade"
    );
    assert!(row.cancel_at_period_end);

    // And the other way round: the first change stored, the second recognised as "after" it.
    let env = JobEnv::new().await;
    let (pool, stripe) = (&env.db.pool, &env.config.stripe);
    super::customer_of_new_user(&env, shape, "cus_o").await;
    deliver(pool, stripe, &created, now).await.unwrap();
    deliver(pool, stripe, &first, now).await.unwrap();
    deliver(pool, stripe, &second, now).await.unwrap();
    assert_eq!(
        decision(&env, "evt_o3").await.as_deref(),
        Some("same_second_previous_after")
    );
    assert_eq!(sub(&env, "sub_o").await.plan_tier, "executive");
}

/// `charge.refunded` as endpoints pinned to 2022-11-15 … 2024-10-27 receive it: no refund list.
fn amount_only(shape: ApiShape, charge: &str, currency: &str, refunded: i64) -> Value {
    let mut object = fx::refunded_charge(shape, charge, "cus_m", Some("in_m"), vec![]);
    fx::set(&mut object, "currency", json!(currency));
    fx::set(&mut object, "amount", json!(refunded.max(2000)));
    fx::set(&mut object, "amount_refunded", json!(refunded));
    fx::set(&mut object, "refunds", Value::Null);
    object
}

#[tokio::test]
async fn refunds_known_only_from_amount_refunded_are_recorded_once_in_usd_eur_and_jpy() {
    for shape in ApiShape::ALL {
        let env = JobEnv::new().await;
        let (pool, stripe) = (&env.db.pool, &env.config.stripe);
        let now = at(T + DAY);
        super::customer_of_new_user(&env, shape, "cus_m").await;
        let state = SubscriptionState::new("sub_m", "cus_m", "active", (T, T + 30 * DAY));
        let created = envelope(
            shape,
            "evt_m0",
            "customer.subscription.created",
            T + 1,
            fx::subscription(shape, &state),
        );
        deliver(pool, stripe, &created, now).await.unwrap();
        let paid = fx::invoice(shape, "in_m", "cus_m", "sub_m", 2000, Some(T + 2), 1);
        deliver(
            pool,
            stripe,
            &envelope(shape, "evt_m1", "invoice.paid", T + 2, paid),
            now,
        )
        .await
        .unwrap();

        let send = |id: &str, created: i64, object: Value| {
            envelope(shape, id, "charge.refunded", created, object)
        };
        // USD: 3.00 then 5.00 in all; the later event delivered first changes nothing when the earlier comes.
        deliver(
            pool,
            stripe,
            &send("evt_u2", T + 6, amount_only(shape, "ch_usd", "usd", 500)),
            now,
        )
        .await
        .unwrap();
        deliver(
            pool,
            stripe,
            &send("evt_u1", T + 5, amount_only(shape, "ch_usd", "usd", 300)),
            now,
        )
        .await
        .unwrap();
        deliver(
            pool,
            stripe,
            &send("evt_e1", T + 7, amount_only(shape, "ch_eur", "eur", 1999)),
            now,
        )
        .await
        .unwrap();
        deliver(
            pool,
            stripe,
            &send("evt_j1", T + 8, amount_only(shape, "ch_jpy", "jpy", 1500)),
            now,
        )
        .await
        .unwrap();
        let refunds = |rows: Vec<(String, String, String, String, Option<String>)>| {
            rows.into_iter()
                .filter(|r| r.1 == "refunded")
                .map(|r| (r.0, r.2, r.3))
                .collect::<Vec<_>>()
        };
        let row = |tx: &str, amount: &str, currency: &str| {
            (tx.to_owned(), amount.to_owned(), currency.to_owned())
        };
        assert_eq!(
            refunds(history(&env).await),
            vec![
                row("ch_eur:unitemised", "19.99", "EUR"),
                row("ch_jpy:unitemised", "1500.00", "JPY"),
                row("ch_usd:unitemised", "5.00", "USD"),
            ],
            "{shape:?}"
        );

        // The endpoint moves to a newer API version: refund objects arrive for the same money.
        let mut re1 = fx::refund(shape, "re_u1", "ch_usd", 300, "succeeded");
        fx::set(&mut re1, "currency", json!("usd"));
        deliver(
            pool,
            stripe,
            &envelope(shape, "evt_r1", "refund.created", T + 9, re1),
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            refunds(history(&env).await)[2..],
            [
                row("ch_usd:unitemised", "2.00", "USD"),
                row("re_u1", "3.00", "USD")
            ],
            "{shape:?}: itemised, not counted twice"
        );
        let mut re2 = fx::refund(shape, "re_u2", "ch_usd", 200, "succeeded");
        fx::set(&mut re2, "currency", json!("usd"));
        deliver(
            pool,
            stripe,
            &envelope(shape, "evt_r2", "refund.updated", T + 10, re2),
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            refunds(history(&env).await)[2..],
            [row("re_u1", "3.00", "USD"), row("re_u2", "2.00", "USD")],
            "{shape:?}: the remainder is gone once every refund is itemised"
        );

        // The local drift report agrees: every charge's recorded refunds equal what Stripe reported.
        let report = drift::local(pool).await.unwrap();
        assert_eq!(report.items, vec![], "{shape:?}");
        sqlx::query("UPDATE billing_history SET amount = 1.00 WHERE transaction_id = 're_u2'")
            .execute(pool)
            .await
            .unwrap();
        let report = drift::local(pool).await.unwrap();
        assert_eq!(report.count(), 1, "{shape:?}: {report:?}");
        assert_eq!(
            (report.items[0].kind, report.items[0].id.as_str()),
            ("refund_total", "ch_usd")
        );
        assert_eq!(
            report.items[0].detail,
            "Stripe refunded 5.00 USD, recorded 4.00"
        );
    }
}

#[tokio::test]
async fn the_local_drift_report_counts_stuck_events_and_is_stored_for_ops() {
    let env = JobEnv::new().await;
    let pool = &env.db.pool;
    sqlx::query(
        "INSERT INTO stripe_events (id, type, payload, status, last_error, received_at) VALUES
           ('evt_failed', 'invoice.paid', '{}', 'failed', 'boom', now()),
           ('evt_stuck', 'invoice.paid', '{}', 'received', NULL, now() - interval '2 hours'),
           ('evt_fresh', 'invoice.paid', '{}', 'received', NULL, now()),
           ('evt_done', 'invoice.paid', '{}', 'processed', NULL, now() - interval '2 hours')",
    )
    .execute(pool)
    .await
    .unwrap();
    let report = drift::local(pool).await.unwrap();
    let ids: Vec<(&str, &str)> = report
        .items
        .iter()
        .map(|i| (i.kind, i.id.as_str()))
        .collect();
    assert_eq!(
        ids,
        [("event_stuck", "evt_stuck"), ("event_stuck", "evt_failed")]
    );
    assert_eq!(report.items[1].detail, "failed: boom");
    assert_eq!(report.checked, 4, "four events, no subscription, no charge");
    drift::store(pool, "local", report.checked, &report.items)
        .await
        .unwrap();
    let latest = drift::latest(pool).await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(
        (
            latest[0].source.as_str(),
            latest[0].drift_count,
            latest[0].checked
        ),
        ("local", 2, 4)
    );
    assert_eq!(latest[0].items.0[0]["id"], "evt_stuck");
}
