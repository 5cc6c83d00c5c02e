//! `POST /v1/billing/change` against the local Stripe server: an upgrade as Stripe receives it (the
//! item's new price, invoiced now, refused on a declined card), a downgrade as a subscription schedule
//! for the period end (rewritten by a second downgrade, released by a later upgrade), the pending record
//! settled by the webhook, and every refusal.

use chrono::{DateTime, Utc};
use mingus_tests::frontend::user_token;
use mingus_tests::stripe::{self as fx, ApiShape, SubscriptionState, deliver, envelope};
use mingus_tests::stripe_server::{FIXTURE_PRICE, Scripted};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::billing::{Billing, CUSTOMER, SUBSCRIPTION, billing};
use super::billing_checkout::{form, pending, post_plan};
use super::{answer, key_with, user_on};

const CHANGE: &str = "/v1/billing/change";
/// The fixture subscription's item.
const ITEM: &str = "si_QXhVnC2h0Jczwc";

async fn local_plan(billing: &Billing) -> (String, String) {
    sqlx::query_as("SELECT plan_tier, billing_cycle FROM subscriptions WHERE user_id = $1")
        .bind(billing.owner)
        .fetch_one(&billing.app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_upgrade_is_invoiced_now_and_settled_by_the_webhook() {
    let billing = billing().await;
    let Billing { app, stripe, owner } = &billing;
    sqlx::query(
        "UPDATE subscriptions SET plan_tier = 'professional', plan_price = 29 WHERE user_id = $1",
    )
    .bind(owner)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let token = user_token(app, *owner);

    let upgraded = post_plan(app, CHANGE, &token, "executive", "monthly").await;
    assert_eq!(upgraded.status, StatusCode::ACCEPTED, "{}", upgraded.body);
    assert_eq!(upgraded.body["action"], "upgrade");
    assert_eq!(upgraded.body["pending"], true);
    assert_eq!(upgraded.body["subscription_id"], SUBSCRIPTION);
    assert!(upgraded.body["effective_at"].is_null(), "now");
    let requests = stripe.requests();
    assert_eq!(
        requests[0].method, "GET",
        "Stripe's current item is read first"
    );
    assert_eq!(
        requests[0].path,
        format!("/v1/subscriptions/{SUBSCRIPTION}")
    );
    let writes = stripe.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].path, format!("/v1/subscriptions/{SUBSCRIPTION}"));
    assert_eq!(
        writes[0].form,
        [
            ("items[0][id]", ITEM),
            ("items[0][price]", "price_exe_m"),
            ("proration_behavior", "always_invoice"),
            ("payment_behavior", "error_if_incomplete"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert!(
        writes[0]
            .idempotency_key
            .as_deref()
            .is_some_and(|k| k.starts_with("mingus-upgrade-"))
    );
    assert_eq!(
        local_plan(&billing).await,
        ("professional".to_owned(), "monthly".to_owned()),
        "local state waits for the webhook"
    );
    let shown = pending(app, &token).await;
    assert_eq!(shown.len(), 1);
    assert_eq!(
        (&shown[0]["action"], &shown[0]["tier"]),
        (&json!("upgrade"), &json!("executive"))
    );

    let now = Utc::now().timestamp();
    let state = SubscriptionState {
        lookup_key: "executive_monthly",
        unit_amount: 9_900,
        ..SubscriptionState::new(
            SUBSCRIPTION,
            CUSTOMER,
            "active",
            (now - 86_400, now + 29 * 86_400),
        )
    };
    let updated = fx::subscription(ApiShape::Basil, &state);
    let event = envelope(
        ApiShape::Basil,
        "evt_upgrade_1",
        "customer.subscription.updated",
        now,
        updated,
    );
    deliver(&app.db.pool, &app.config.stripe, &event, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        local_plan(&billing).await,
        ("executive".to_owned(), "monthly".to_owned())
    );
    assert!(
        pending(app, &token).await.is_empty(),
        "settled by the webhook"
    );
}

#[tokio::test]
async fn a_downgrade_is_scheduled_for_the_period_end_and_an_upgrade_releases_it() {
    let Billing { app, stripe, owner } = billing().await;
    sqlx::query(
        "UPDATE subscriptions SET plan_tier = 'professional', plan_price = 29 WHERE user_id = $1",
    )
    .bind(owner)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let token = user_token(&app, owner);
    let live = stripe.subscription(SUBSCRIPTION).unwrap();
    let item = &live["items"]["data"][0];
    let (start, end) = (
        item["current_period_start"].as_i64().unwrap(),
        item["current_period_end"].as_i64().unwrap(),
    );

    let downgraded = post_plan(&app, CHANGE, &token, "essentials", "monthly").await;
    assert_eq!(
        downgraded.status,
        StatusCode::ACCEPTED,
        "{}",
        downgraded.body
    );
    assert_eq!(downgraded.body["action"], "downgrade");
    let effective: DateTime<Utc> =
        serde_json::from_value(downgraded.body["effective_at"].clone()).unwrap();
    assert_eq!(effective.timestamp(), end, "at the period end");
    let writes = stripe.writes();
    let paths: Vec<&str> = writes.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/subscription_schedules",
            "/v1/subscription_schedules/sub_sched_test_1"
        ],
        "the subscription itself is not changed now"
    );
    assert_eq!(form(&writes[0], "from_subscription"), Some(SUBSCRIPTION));
    let (start, end) = (start.to_string(), end.to_string());
    for (name, value) in [
        ("end_behavior", "release"),
        ("proration_behavior", "none"),
        ("phases[0][items][0][price]", FIXTURE_PRICE),
        ("phases[0][start_date]", &*start),
        ("phases[0][end_date]", &*end),
        ("phases[1][items][0][price]", "price_ess_m"),
        ("phases[1][iterations]", "1"),
    ] {
        assert_eq!(form(&writes[1], name), Some(value), "{name}");
    }
    let shown = pending(&app, &token).await;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["action"], "downgrade");
    assert_eq!(shown[0]["effective_at"], downgraded.body["effective_at"]);

    // A second downgrade before the renewal rewrites the same schedule and replaces the first on display.
    let again = post_plan(&app, CHANGE, &token, "essentials", "annual").await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    let writes = stripe.writes();
    assert_eq!(writes.len(), 3, "no second schedule");
    assert_eq!(
        writes[2].path,
        "/v1/subscription_schedules/sub_sched_test_1"
    );
    assert_eq!(
        form(&writes[2], "phases[1][items][0][price]"),
        Some("price_ess_a")
    );
    let shown = pending(&app, &token).await;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["cycle"], "annual");

    // Changing their mind upward: the schedule is released first, then the upgrade applies now.
    let up = post_plan(&app, CHANGE, &token, "executive", "monthly").await;
    assert_eq!(up.status, StatusCode::ACCEPTED, "{}", up.body);
    assert_eq!(up.body["action"], "upgrade");
    let writes = stripe.writes();
    let paths: Vec<&str> = writes[3..].iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/subscription_schedules/sub_sched_test_1/release".to_owned(),
            format!("/v1/subscriptions/{SUBSCRIPTION}")
        ]
    );
    assert_eq!(stripe.schedules()[0]["status"], "released");
    assert!(stripe.subscription(SUBSCRIPTION).unwrap()["schedule"].is_null());
    let shown = pending(&app, &token).await;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["action"], "upgrade");
}

#[tokio::test]
async fn keeping_the_current_plan_cancels_a_scheduled_downgrade() {
    let billing = billing().await;
    let Billing { app, stripe, owner } = &billing;
    on_professional(&billing).await;
    let token = user_token(app, *owner);
    scheduled_downgrade(app, &token).await;
    assert_eq!(pending(app, &token).await.len(), 1);
    let schedule = stripe.subscription(SUBSCRIPTION).unwrap()["schedule"].clone();
    assert_eq!(
        schedule, "sub_sched_test_1",
        "the downgrade is scheduled at Stripe"
    );

    // The user changes their mind: the plan they have.
    let kept = post_plan(app, CHANGE, &token, "professional", "monthly").await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    assert_eq!(kept.body["action"], "keep");
    assert_eq!(kept.body["pending"], false);
    assert!(kept.body["effective_at"].is_null());
    let writes = stripe.writes();
    assert_eq!(
        writes.last().map(|w| w.path.as_str()),
        Some("/v1/subscription_schedules/sub_sched_test_1/release"),
        "the schedule is released, nothing else is written"
    );
    assert_eq!(
        writes.len(),
        3,
        "schedule created, its phases set, released"
    );
    assert_eq!(stripe.schedules()[0]["status"], "released");
    assert!(stripe.subscription(SUBSCRIPTION).unwrap()["schedule"].is_null());
    assert!(
        pending(app, &token).await.is_empty(),
        "the downgrade is no longer shown as pending"
    );
    assert_eq!(
        local_plan(&billing).await,
        ("professional".to_owned(), "monthly".to_owned()),
        "the local plan never changed"
    );

    // With nothing scheduled any more, the same request has nothing to do.
    let again = post_plan(app, CHANGE, &token, "professional", "monthly").await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "same_plan")
    );
    assert_eq!(stripe.writes().len(), 3, "no second release");
}

/// Professional locally; the Stripe subscription as the fixture has it.
async fn on_professional(billing: &Billing) {
    sqlx::query(
        "UPDATE subscriptions SET plan_tier = 'professional', plan_price = 29 WHERE user_id = $1",
    )
    .bind(billing.owner)
    .execute(&billing.app.db.pool)
    .await
    .unwrap();
}

/// Downgrades to Essentials monthly (a schedule at Stripe) and checks it was accepted.
async fn scheduled_downgrade(app: &mingus_tests::TestApp, token: &str) -> super::Answer {
    let downgraded = post_plan(app, CHANGE, token, "essentials", "monthly").await;
    assert_eq!(
        downgraded.status,
        StatusCode::ACCEPTED,
        "{}",
        downgraded.body
    );
    downgraded
}

#[tokio::test]
async fn a_trialing_subscriptions_downgrade_keeps_the_trial_in_its_first_phase() {
    let billing = billing().await;
    let Billing { app, stripe, owner } = &billing;
    on_professional(&billing).await;
    let trial_end = chrono::Utc::now().timestamp() + 5 * 86_400;
    assert!(stripe.edit_subscription(SUBSCRIPTION, |sub| {
        sub["status"] = json!("trialing");
        sub["trial_end"] = json!(trial_end);
    }));
    let token = user_token(app, *owner);
    scheduled_downgrade(app, &token).await;
    let writes = stripe.writes();
    assert_eq!(writes.len(), 2, "schedule created, its phases set");
    assert_eq!(
        form(&writes[1], "phases[0][trial_end]"),
        Some(&*trial_end.to_string()),
        "without it the phase would end the trial at once"
    );
    assert_eq!(form(&writes[1], "phases[1][trial_end]"), None);

    // The same request on a subscription that is not trialing sends no trial at all.
    let billing = self::billing().await;
    on_professional(&billing).await;
    let token = user_token(&billing.app, billing.owner);
    let plain = post_plan(&billing.app, CHANGE, &token, "essentials", "monthly").await;
    assert_eq!(plain.status, StatusCode::ACCEPTED, "{}", plain.body);
    assert_eq!(
        form(&billing.stripe.writes()[1], "phases[0][trial_end]"),
        None
    );
}

#[tokio::test]
async fn a_declined_upgrade_after_releasing_a_downgrade_leaves_the_plan_and_nothing_pending() {
    let billing = billing().await;
    let Billing { app, stripe, owner } = &billing;
    on_professional(&billing).await;
    let token = user_token(app, *owner);
    scheduled_downgrade(app, &token).await;

    // The release goes through, the upgrade's proration invoice is declined.
    stripe.script_acting();
    stripe.script(Scripted::card_declined());
    let declined = post_plan(app, CHANGE, &token, "executive", "monthly").await;
    assert_eq!(
        (declined.status, declined.code()),
        (StatusCode::PAYMENT_REQUIRED, "card_declined"),
        "{}",
        declined.body
    );
    let paths: Vec<String> = stripe.writes()[2..]
        .iter()
        .map(|w| w.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/v1/subscription_schedules/sub_sched_test_1/release".to_owned(),
            format!("/v1/subscriptions/{SUBSCRIPTION}")
        ]
    );
    assert_eq!(
        stripe.schedules()[0]["status"],
        "released",
        "the downgrade is gone at Stripe"
    );
    assert!(
        pending(app, &token).await.is_empty(),
        "neither the released downgrade nor the declined upgrade is shown as pending"
    );
    assert_eq!(
        stripe.subscription(SUBSCRIPTION).unwrap()["items"]["data"][0]["price"]["id"],
        FIXTURE_PRICE,
        "the plan is unchanged at Stripe"
    );
    assert_eq!(
        local_plan(&billing).await,
        ("professional".to_owned(), "monthly".to_owned())
    );
}

#[tokio::test]
async fn change_refusals_are_typed_and_a_declined_card_changes_nothing() {
    let billing = billing().await;
    let Billing { app, stripe, owner } = &billing;
    let token = user_token(app, *owner);
    let refusals = [
        ("executive", "monthly", StatusCode::CONFLICT, "same_plan"),
        (
            "gold",
            "monthly",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_plan",
        ),
        (
            "executive",
            "annual",
            StatusCode::UNPROCESSABLE_ENTITY,
            "plan_not_available",
        ),
    ];
    for (tier, cycle, status, code) in refusals {
        let refused = post_plan(app, CHANGE, &token, tier, cycle).await;
        assert_eq!(
            (refused.status, refused.code()),
            (status, code),
            "{tier} {cycle}"
        );
    }
    let nobody = user_on(app, Some("essentials")).await;
    let none = post_plan(
        app,
        CHANGE,
        &user_token(app, nobody),
        "professional",
        "monthly",
    )
    .await;
    assert_eq!(
        (none.status, none.code()),
        (StatusCode::CONFLICT, "no_active_subscription")
    );
    let key = key_with(app, *owner, &["usage:write"], 1000).await;
    let by_key = post_plan(app, CHANGE, &key, "essentials", "monthly").await;
    assert_eq!(
        (by_key.status, by_key.code()),
        (StatusCode::FORBIDDEN, "user_session_required")
    );
    let (admin, _) = super::team::join(app, *owner, "admin").await;
    let acting = app
        .client
        .post(app.url(CHANGE))
        .bearer_auth(user_token(app, admin))
        .header("Mingus-Account", owner.to_string())
        .json(&json!({"tier": "essentials", "cycle": "monthly"}));
    let acting = answer(&Method::POST, CHANGE, acting).await;
    assert_eq!(
        (acting.status, acting.code()),
        (StatusCode::FORBIDDEN, "account_owner_required")
    );
    // `same_plan` reads the subscription (is a downgrade scheduled?); no refusal writes anything.
    assert!(stripe.writes().is_empty(), "nothing written at Stripe");

    // Executive annual has no price here: move the local plan down so Executive monthly upgrades it.
    sqlx::query("UPDATE subscriptions SET plan_tier = 'professional' WHERE user_id = $1")
        .bind(owner)
        .execute(&app.db.pool)
        .await
        .unwrap();
    stripe.script(Scripted::card_declined());
    let declined = post_plan(app, CHANGE, &token, "executive", "monthly").await;
    assert_eq!(
        declined.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        declined.body
    );
    assert_eq!(declined.code(), "card_declined");
    assert!(
        declined.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("insufficient_funds")
    );
    assert_eq!(stripe.writes().len(), 1, "a decline is not retried");
    assert_eq!(
        stripe.subscription(SUBSCRIPTION).unwrap()["items"]["data"][0]["price"]["id"],
        FIXTURE_PRICE,
        "the plan is unchanged at Stripe"
    );
    assert!(
        pending(app, &token).await.is_empty(),
        "nothing pending after a refusal"
    );

    for scripted in [Scripted::rate_limited(), Scripted::server_error()] {
        for _ in 0..3 {
            stripe.script(scripted.clone());
        }
        let unavailable = post_plan(app, CHANGE, &token, "executive", "monthly").await;
        assert_eq!(
            unavailable.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            unavailable.body
        );
        assert_eq!(unavailable.code(), "billing_unavailable");
    }
    assert!(pending(app, &token).await.is_empty());
    assert_eq!(
        local_plan(&billing).await,
        ("professional".to_owned(), "monthly".to_owned())
    );
}
