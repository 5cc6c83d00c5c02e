//! Payment outcomes: invoices paid, failed and needing action, and refunds, in both API shapes.

use mingus_tests::JobEnv;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, deliver, envelope};
use mingus_worker::context::JobError;
use mingus_worker::stripe::Outcome;

use super::{DAY, T, at, customer_of_new_user, emails, history, send_sub};

#[tokio::test]
async fn invoice_events_record_payments_failures_and_dunning_once_in_both_api_shapes() {
    for shape in ApiShape::ALL {
        let env = JobEnv::new().await;
        let (pool, stripe) = (&env.db.pool, &env.config.stripe);
        customer_of_new_user(&env, shape, "cus_i").await;
        let state = SubscriptionState::new("sub_i", "cus_i", "active", (T, T + 30 * DAY));
        send_sub(
            &env,
            shape,
            "evt_i0",
            "customer.subscription.created",
            T + 1,
            &state,
        )
        .await
        .unwrap();
        let now = at(T + DAY);
        let paid = fx::invoice(shape, "in_paid", "cus_i", "sub_i", 2000, Some(T + 2), 1);
        for (id, kind) in [
            ("evt_i1", "invoice.paid"),
            ("evt_i2", "invoice.payment_succeeded"),
        ] {
            let outcome = deliver(
                pool,
                stripe,
                &envelope(shape, id, kind, T + 2, paid.clone()),
                now,
            )
            .await;
            assert_eq!(outcome.unwrap(), Outcome::Processed);
        }
        for (id, attempt) in [("evt_i3", 1), ("evt_i4", 2), ("evt_i3_again", 1)] {
            let failed = fx::invoice(shape, "in_fail", "cus_i", "sub_i", 2000, None, attempt);
            deliver(
                pool,
                stripe,
                &envelope(shape, id, "invoice.payment_failed", T + 3, failed),
                now,
            )
            .await
            .unwrap();
        }
        let action = fx::invoice(shape, "in_fail", "cus_i", "sub_i", 2000, None, 2);
        deliver(
            pool,
            stripe,
            &envelope(
                shape,
                "evt_i5",
                "invoice.payment_action_required",
                T + 4,
                action,
            ),
            now,
        )
        .await
        .unwrap();
        let mut yen = fx::invoice(shape, "in_yen", "cus_i", "sub_i", 1500, Some(T + 5), 1);
        fx::set(&mut yen, "currency", serde_json::json!("jpy"));
        deliver(
            pool,
            stripe,
            &envelope(shape, "evt_i6", "invoice.paid", T + 5, yen),
            now,
        )
        .await
        .unwrap();
        let mut one_off = fx::invoice(shape, "in_once", "cus_i", "sub_i", 700, Some(T + 6), 1);
        fx::set(&mut one_off, "subscription", serde_json::Value::Null);
        fx::set(&mut one_off, "parent", serde_json::Value::Null);
        let outcome = deliver(
            pool,
            stripe,
            &envelope(shape, "evt_i7", "invoice.paid", T + 6, one_off),
            now,
        )
        .await;
        assert_eq!(
            outcome.unwrap(),
            Outcome::Processed,
            "a one-off invoice is not ours to record"
        );

        let row = |tx: &str, status: &str, amount: &str, currency: &str, invoice: &str| {
            (
                tx.to_owned(),
                status.to_owned(),
                amount.to_owned(),
                currency.to_owned(),
                Some(invoice.to_owned()),
            )
        };
        assert_eq!(
            history(&env).await,
            vec![
                row("in_fail:attempt:1", "failed", "20.00", "USD", "in_fail"),
                row("in_fail:attempt:2", "failed", "20.00", "USD", "in_fail"),
                row("in_paid", "paid", "20.00", "USD", "in_paid"),
                row("in_yen", "paid", "1500.00", "JPY", "in_yen"),
            ],
            "{shape:?}"
        );
        let (url, at_paid): (String, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
            "SELECT invoice_url, created_at FROM billing_history WHERE transaction_id = 'in_paid'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            (url.as_str(), at_paid),
            ("https://invoice.stripe.com/i/in_paid", at(T + 2))
        );
        let keys: Vec<String> = emails(&env).await.into_iter().map(|(_, key)| key).collect();
        assert_eq!(
            keys,
            [
                "dunning:in_fail:1",
                "dunning:in_fail:2",
                "payment_action_required:in_fail:2"
            ]
        );
    }
}

#[tokio::test]
async fn refund_events_record_one_row_per_succeeded_refund_in_both_api_shapes() {
    for shape in ApiShape::ALL {
        let env = JobEnv::new().await;
        let (pool, stripe) = (&env.db.pool, &env.config.stripe);
        customer_of_new_user(&env, shape, "cus_r").await;
        let state = SubscriptionState::new("sub_r", "cus_r", "active", (T, T + 30 * DAY));
        send_sub(
            &env,
            shape,
            "evt_r0",
            "customer.subscription.created",
            T + 1,
            &state,
        )
        .await
        .unwrap();
        let now = at(T + DAY);
        let paid = fx::invoice(shape, "in_r", "cus_r", "sub_r", 2000, Some(T + 2), 1);
        deliver(
            pool,
            stripe,
            &envelope(shape, "evt_r1", "invoice.paid", T + 2, paid),
            now,
        )
        .await
        .unwrap();

        // Basil charges no longer embed their refunds: the refund.* events carry them.
        let embedded = match shape {
            ApiShape::PreBasil => vec![fx::refund(shape, "re_1", "ch_r", 500, "succeeded")],
            ApiShape::Basil => vec![],
        };
        let charge = fx::refunded_charge(shape, "ch_r", "cus_r", Some("in_r"), embedded);
        deliver(
            pool,
            stripe,
            &envelope(shape, "evt_r2", "charge.refunded", T + 10, charge),
            now,
        )
        .await
        .unwrap();
        let events = [
            (
                "evt_r3",
                "refund.created",
                fx::refund(shape, "re_1", "ch_r", 500, "succeeded"),
            ),
            (
                "evt_r4",
                "refund.updated",
                fx::refund(shape, "re_1", "ch_r", 500, "succeeded"),
            ),
            (
                "evt_r5",
                "refund.created",
                fx::refund(shape, "re_p", "ch_r", 300, "pending"),
            ),
            (
                "evt_r6",
                "charge.refund.updated",
                fx::refund(shape, "re_p", "ch_r", 300, "succeeded"),
            ),
        ];
        for (id, kind, refund) in events {
            let outcome = deliver(
                pool,
                stripe,
                &envelope(shape, id, kind, T + 11, refund),
                now,
            )
            .await;
            assert_eq!(outcome.unwrap(), Outcome::Processed, "{shape:?} {id}");
        }
        let invoice = (shape == ApiShape::PreBasil).then(|| "in_r".to_owned());
        assert_eq!(
            history(&env).await,
            vec![
                (
                    "in_r".into(),
                    "paid".into(),
                    "20.00".into(),
                    "USD".into(),
                    Some("in_r".into())
                ),
                (
                    "re_1".into(),
                    "refunded".into(),
                    "5.00".into(),
                    "USD".into(),
                    invoice.clone()
                ),
                (
                    "re_p".into(),
                    "refunded".into(),
                    "3.00".into(),
                    "USD".into(),
                    invoice
                ),
            ],
            "{shape:?}"
        );

        let orphan = fx::refund(shape, "re_orphan", "ch_unknown", 100, "succeeded");
        let outcome = deliver(
            pool,
            stripe,
            &envelope(shape, "evt_r7", "refund.created", T + 12, orphan),
            now,
        )
        .await;
        assert!(
            matches!(outcome, Err(JobError::Retryable(_))),
            "{outcome:?}"
        );
    }
}
