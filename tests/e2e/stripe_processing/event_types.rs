//! Each handled event type, with Stripe's fixtures in both API shapes.

use mingus_tests::JobEnv;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, deliver, envelope, status_of};
use mingus_worker::context::JobError;
use mingus_worker::stripe::Outcome;
use uuid::Uuid;

use super::{
    DAY, T, access, at, customer_of_new_user, emails, linked_customer, send_sub, sub, user,
};

#[tokio::test]
async fn checkout_and_customer_events_link_and_unlink_users_in_both_api_shapes() {
    for shape in ApiShape::ALL {
        let env = JobEnv::new().await;
        let (pool, stripe) = (&env.db.pool, &env.config.stripe);
        let (alice, bob, carol) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        user(&env, alice, "alice@example.com").await;
        user(&env, bob, "Bob@Example.com").await;
        user(&env, carol, "carol@example.com").await;
        let now = at(T + DAY);

        let checkout = fx::checkout(shape, "cus_a", &alice.to_string(), "sub_a");
        let event = envelope(
            shape,
            "evt_checkout",
            "checkout.session.completed",
            T,
            checkout,
        );
        assert_eq!(
            deliver(pool, stripe, &event, now).await.unwrap(),
            Outcome::Processed
        );
        assert_eq!(linked_customer(&env, alice).await.as_deref(), Some("cus_a"));

        let created = fx::customer(shape, "cus_b", Some("bob@example.com"), None);
        deliver(
            pool,
            stripe,
            &envelope(shape, "evt_c1", "customer.created", T + 10, created),
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            linked_customer(&env, bob).await.as_deref(),
            Some("cus_b"),
            "{shape:?}: e-mail match"
        );

        let updated = fx::customer(
            shape,
            "cus_b",
            Some("bob@example.com"),
            Some(&carol.to_string()),
        );
        deliver(
            pool,
            stripe,
            &envelope(shape, "evt_c2", "customer.updated", T + 20, updated),
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            linked_customer(&env, carol).await.as_deref(),
            Some("cus_b"),
            "metadata.user_id wins"
        );
        assert_eq!(linked_customer(&env, bob).await, None);

        let deleted = fx::deleted_customer(shape, "cus_b");
        deliver(
            pool,
            stripe,
            &envelope(shape, "evt_c3", "customer.deleted", T + 30, deleted),
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            linked_customer(&env, carol).await,
            None,
            "deleted customers are unlinked"
        );

        let late = fx::customer(
            shape,
            "cus_b",
            Some("carol@example.com"),
            Some(&carol.to_string()),
        );
        let outcome = deliver(
            pool,
            stripe,
            &envelope(shape, "evt_c0", "customer.created", T + 5, late),
            now,
        )
        .await;
        assert_eq!(outcome.unwrap(), Outcome::Processed);
        assert_eq!(
            linked_customer(&env, carol).await,
            None,
            "a late created does not re-link a deleted customer"
        );
        assert_eq!(linked_customer(&env, alice).await.as_deref(), Some("cus_a"));

        let stranger = fx::checkout(shape, "cus_x", &Uuid::new_v4().to_string(), "sub_x");
        let outcome = deliver(
            pool,
            stripe,
            &envelope(shape, "evt_bad", "checkout.session.completed", T, stranger),
            now,
        )
        .await;
        assert!(
            matches!(outcome, Err(JobError::Permanent(_))),
            "{outcome:?}"
        );
        assert_eq!(status_of(pool, "evt_bad").await, "failed");
    }
}

#[tokio::test]
async fn subscription_events_set_status_tier_cycle_price_periods_and_access_in_both_api_shapes() {
    for shape in ApiShape::ALL {
        let env = JobEnv::new().await;
        let user_id = customer_of_new_user(&env, shape, "cus_s").await;
        sqlx::query("INSERT INTO feature_access (user_id, feature_name, access_level, granted_by) VALUES ($1, 'custom_reports', 'unlimited', 'promotion')")
            .bind(user_id)
            .execute(&env.db.pool)
            .await
            .unwrap();
        let mut state = SubscriptionState::new("sub_s", "cus_s", "trialing", (T, T + 14 * DAY));
        state.trial = Some((T, T + 14 * DAY));
        send_sub(
            &env,
            shape,
            "evt_s1",
            "customer.subscription.created",
            T + 1,
            &state,
        )
        .await
        .unwrap();
        let row = sub(&env, "sub_s").await;
        assert_eq!(
            (row.status.as_str(), row.stripe_status.as_deref()),
            ("trial", Some("trialing")),
            "{shape:?}"
        );
        assert_eq!(
            (row.plan_tier.as_str(), row.billing_cycle.as_str()),
            ("professional", "monthly")
        );
        assert_eq!(
            (row.plan_price.as_str(), row.currency.as_str()),
            ("20.00", "USD")
        );
        assert_eq!(
            (row.current_period_start, row.current_period_end),
            (at(T), at(T + 14 * DAY))
        );
        assert_eq!(
            (row.trial_start, row.trial_end),
            (Some(at(T)), Some(at(T + 14 * DAY)))
        );
        assert_eq!(
            (row.user_id, row.stripe_customer_id.as_deref()),
            (user_id, Some("cus_s"))
        );
        assert_eq!(
            row.stripe_price_id.as_deref(),
            Some("price_1PgafmB7WZ01zgkW6dKueIc5")
        );
        let rows = access(&env, user_id).await;
        assert_eq!(rows.len(), 8, "the professional features: {rows:?}");
        for (feature, level, expires, by) in &rows {
            if feature == "custom_reports" {
                assert_eq!(
                    (level.as_str(), *expires, by.as_str()),
                    ("unlimited", None, "promotion"),
                    "promotion kept"
                );
            } else {
                assert_eq!(
                    (*expires, by.as_str()),
                    (Some(at(T + 14 * DAY)), "subscription"),
                    "{feature}"
                );
            }
        }
        assert!(
            rows.iter()
                .any(|r| r.0 == "email_support" && r.1 == "premium"),
            "priority → premium"
        );

        for id in ["evt_s2", "evt_s2_again"] {
            send_sub(
                &env,
                shape,
                id,
                "customer.subscription.trial_will_end",
                T + 11 * DAY,
                &state,
            )
            .await
            .unwrap();
        }
        let reminder = (
            "trial_ending".to_owned(),
            "trial_ending:sub_s:2026-10-05".to_owned(),
        );
        assert_eq!(emails(&env).await, vec![reminder.clone()], "one reminder");

        let year = (T + 14 * DAY, T + 379 * DAY);
        let mut state = SubscriptionState::new("sub_s", "cus_s", "active", year);
        (state.lookup_key, state.interval, state.unit_amount) =
            ("executive_annual", "year", 99_000);
        send_sub(
            &env,
            shape,
            "evt_s3",
            "customer.subscription.updated",
            T + 14 * DAY,
            &state,
        )
        .await
        .unwrap();
        let row = sub(&env, "sub_s").await;
        assert_eq!(
            (
                row.status.as_str(),
                row.plan_tier.as_str(),
                row.billing_cycle.as_str()
            ),
            ("active", "executive", "annual")
        );
        assert_eq!(row.plan_price, "990.00");
        let rows = access(&env, user_id).await;
        assert_eq!(rows.len(), 13, "the executive features");
        assert!(
            rows.iter()
                .any(|r| r.0 == "api_access" && r.1 == "unlimited" && r.2 == Some(at(year.1)))
        );

        let paused = SubscriptionState {
            status: "paused",
            ..state.clone()
        };
        send_sub(
            &env,
            shape,
            "evt_s4",
            "customer.subscription.paused",
            T + 20 * DAY,
            &paused,
        )
        .await
        .unwrap();
        let row = sub(&env, "sub_s").await;
        assert_eq!(
            (row.status.as_str(), row.stripe_status.as_deref()),
            ("past_due", Some("paused"))
        );
        let expiry = access(&env, user_id)
            .await
            .iter()
            .find(|r| r.0 == "api_access")
            .unwrap()
            .2;
        assert_eq!(
            expiry,
            Some(at(T + 20 * DAY + 60)),
            "paused: no access from now on"
        );

        send_sub(
            &env,
            shape,
            "evt_s5",
            "customer.subscription.resumed",
            T + 21 * DAY,
            &state,
        )
        .await
        .unwrap();
        assert_eq!(sub(&env, "sub_s").await.status, "active");

        let mut ended = SubscriptionState {
            status: "canceled",
            ..state.clone()
        };
        (ended.canceled_at, ended.ended_at) = (Some(T + 30 * DAY), Some(T + 30 * DAY));
        for id in ["evt_s6", "evt_s6_again"] {
            send_sub(
                &env,
                shape,
                id,
                "customer.subscription.deleted",
                T + 30 * DAY,
                &ended,
            )
            .await
            .unwrap();
        }
        let row = sub(&env, "sub_s").await;
        assert_eq!(
            (row.status.as_str(), row.stripe_status.as_deref()),
            ("cancelled", Some("canceled"))
        );
        assert_eq!(
            (row.cancelled_at, row.ended_at, row.grace_until),
            (Some(at(T + 30 * DAY)), Some(at(T + 30 * DAY)), None)
        );
        let rows = access(&env, user_id).await;
        assert!(
            rows.iter()
                .filter(|r| r.3 == "subscription")
                .all(|r| r.2 == Some(at(T + 30 * DAY))),
            "{rows:?}"
        );
        let cancelled = (
            "subscription_cancelled".to_owned(),
            "subscription_cancelled:sub_s".to_owned(),
        );
        assert_eq!(emails(&env).await, vec![cancelled, reminder]);
    }
}
