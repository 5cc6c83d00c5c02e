//! What each customer action does to the customer, seen where the customer sees it (`/v1/features`,
//! their deliveries and jobs, their Stripe events), right after the answer: the cached entitlements
//! were evicted, not waited out.

use chrono::{DateTime, Duration, Utc};
use mingus_api::ops::actor::OpsRole;
use mingus_tests::TestApp;
use mingus_tests::stripe::status_of;
use mingus_tests::wait::count;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::{
    acted, customer, delivery, failed_event, feature, link_stripe_customer, operator, post,
    trial_end, used,
};

#[tokio::test]
async fn a_promotion_shows_in_v1_features_at_once_and_revoking_it_restores_the_tier() {
    let app = TestApp::spawn().await;
    let support = operator(&app, "sam", OpsRole::Support).await;
    let me = (support.as_str(), "sam");
    let user = customer(&app, "essentials", "active", None).await;
    let base = format!("/ops/customers/{user}");
    // Read (and cached) before the grant.
    let before = feature(&app, user, "custom_reports").await;
    assert_eq!(
        (before["access"].as_bool(), before["reason"].as_str()),
        (Some(false), Some("feature_not_included"))
    );

    let expires = Utc::now() + Duration::days(14);
    let grant = json!({"feature": "custom_reports", "access_level": "unlimited", "expires_at": expires.to_rfc3339()});
    let reply = acted(
        &app,
        me,
        user,
        &format!("{base}/promotions"),
        Some(grant),
        "customer.promotion_grant",
    )
    .await;
    assert_eq!(reply["before"]["grant"], json!(null));
    let granted = feature(&app, user, "custom_reports").await;
    assert_eq!(granted["access"], true, "{granted}");
    assert_eq!(granted["access_level"], "unlimited");
    assert_eq!(
        granted["limit"],
        json!(null),
        "an unlimited grant lifts the metric"
    );
    let page = super::super::get(&app, &format!("/ops/customers/{user}")).await;
    assert_eq!(page["grants"][0]["feature"], "custom_reports", "{page}");
    assert_eq!(page["grants"][0]["granted_by"], "promotion");

    acted(
        &app,
        me,
        user,
        &format!("{base}/promotions/custom_reports/revoke"),
        None,
        "customer.promotion_revoke",
    )
    .await;
    let revoked = feature(&app, user, "custom_reports").await;
    assert_eq!(revoked["access"], false, "{revoked}");
    assert_eq!(revoked["reason"], "feature_not_included");

    // A promotion over a feature the tier includes replaces the tier's grant while it lasts; revoking
    // it gives the tier's back.
    let grant = json!({"feature": "basic_analytics", "access_level": "unlimited", "expires_at": expires.to_rfc3339()});
    let reply = acted(
        &app,
        me,
        user,
        &format!("{base}/promotions"),
        Some(grant),
        "customer.promotion_grant",
    )
    .await;
    assert_eq!(
        reply["before"]["grant"]["granted_by"], "subscription",
        "{reply}"
    );
    assert_eq!(
        feature(&app, user, "basic_analytics").await["access_level"],
        "unlimited"
    );
    let reply = acted(
        &app,
        me,
        user,
        &format!("{base}/promotions/basic_analytics/revoke"),
        None,
        "customer.promotion_revoke",
    )
    .await;
    assert_eq!(
        reply["after"]["grant"]["granted_by"], "subscription",
        "{reply}"
    );
    assert_eq!(reply["after"]["grant"]["access_level"], "basic");
    let restored = feature(&app, user, "basic_analytics").await;
    assert_eq!(
        (
            restored["access"].as_bool(),
            restored["access_level"].as_str()
        ),
        (Some(true), Some("basic"))
    );
    // A promotion that does not raise the plan's level is refused.
    let same = json!({"feature": "basic_analytics", "access_level": "basic", "expires_at": expires.to_rfc3339()});
    let (status, reply) = post(&app, &support, &format!("{base}/promotions"), Some(same)).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_included"))
    );
    // Now a subscription grant again: not revocable here.
    let (status, reply) = post(
        &app,
        &support,
        &format!("{base}/promotions/basic_analytics/revoke"),
        None,
    )
    .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("subscription_grant"))
    );
}

#[tokio::test]
async fn a_local_trial_is_extended_from_the_end_the_operator_saw() {
    let app = TestApp::spawn().await;
    let support = operator(&app, "sam", OpsRole::Support).await;
    let me = (support.as_str(), "sam");
    let user = customer(&app, "professional", "trial", None).await;
    let seen = trial_end(&app, user).await;
    let path = format!("/ops/customers/{user}/trial/extend");
    let body = json!({"days": 10, "expected_trial_end": seen.to_rfc3339()});
    let reply = acted(
        &app,
        me,
        user,
        &path,
        Some(body.clone()),
        "customer.trial_extend",
    )
    .await;
    assert_eq!(reply["changed"], true);
    let extended = trial_end(&app, user).await;
    assert_eq!(extended, seen + Duration::days(10));
    // The trial's grants expire with it, and the page says so.
    let expiry: DateTime<Utc> = sqlx::query_scalar(
        "SELECT expires_at FROM feature_access WHERE user_id = $1 AND feature_name = 'custom_reports'",
    )
    .bind(user)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(expiry, extended);

    // The same request again (a double click, a retried POST): already done.
    let reply = acted(&app, me, user, &path, Some(body), "customer.trial_extend").await;
    assert_eq!(reply["changed"], false);
    assert_eq!(trial_end(&app, user).await, extended);
    // From an end that is not the trial's any more: refused, nothing written.
    let stale = json!({"days": 10, "expected_trial_end": (seen + Duration::days(1)).to_rfc3339()});
    let (status, reply) = post(&app, &support, &path, Some(stale)).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("trial_changed"))
    );
    assert_eq!(trial_end(&app, user).await, extended);
}

#[tokio::test]
async fn a_reset_usage_counter_counts_from_zero_at_once_and_past_periods_stay() {
    let app = TestApp::spawn().await;
    let support = operator(&app, "sam", OpsRole::Support).await;
    let user = customer(&app, "essentials", "active", None).await;
    used(&app, user, "financial_reports_per_month", 2).await;
    // A past period's counter: history, not touched.
    sqlx::query(
        "INSERT INTO usage_counters (user_id, metric, period_start, period_end, used)
         VALUES ($1, 'financial_reports_per_month', now() - interval '2 months', now() - interval '1 month', 2)",
    )
    .bind(user)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let full = feature(&app, user, "basic_analytics").await;
    assert_eq!(
        (
            full["access"].as_bool(),
            full["reason"].as_str(),
            full["usage"].as_i64()
        ),
        (Some(false), Some("usage_limit_exceeded"), Some(2)),
        "{full}"
    );

    let path = format!("/ops/customers/{user}/usage/financial_reports_per_month/reset");
    let reply = acted(
        &app,
        (&support, "sam"),
        user,
        &path,
        None,
        "customer.usage_reset",
    )
    .await;
    assert_eq!(
        (
            reply["before"]["used"].as_i64(),
            reply["after"]["used"].as_i64()
        ),
        (Some(2), Some(0))
    );
    let again = feature(&app, user, "basic_analytics").await;
    assert_eq!(
        (again["access"].as_bool(), again["usage"].as_i64()),
        (Some(true), Some(0)),
        "{again}"
    );
    let kept = count(
        &app.db.pool,
        &format!("SELECT sum(used)::bigint FROM usage_counters WHERE user_id = '{user}'"),
    )
    .await;
    assert_eq!(kept, 2, "the past period keeps its count");
}

#[tokio::test]
async fn a_resend_is_a_new_linked_delivery_through_the_outbox_and_unsubscribed_ones_are_refused() {
    let app = TestApp::spawn().await;
    let support = operator(&app, "sam", OpsRole::Support).await;
    let user = customer(&app, "essentials", "active", None).await;
    let original = delivery(&app, user, "payment_failed", "failed").await;
    let path = format!("/ops/customers/{user}/emails/{original}/resend");
    let first = acted(
        &app,
        (&support, "sam"),
        user,
        &path,
        None,
        "customer.email_resend",
    )
    .await;
    let resent: Uuid = first["after"]["delivery_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (from, status, recipient, data): (Option<Uuid>, String, String, serde_json::Value) =
        sqlx::query_as(
            "SELECT resent_from, status, recipient::text, data FROM email_deliveries WHERE id = $1",
        )
        .bind(resent)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        (from, status.as_str(), recipient.as_str()),
        (Some(original), "queued", "person@example.com")
    );
    assert_eq!(data, json!({"amount": "10.00"}));
    let staged = count(
        &app.db.pool,
        &format!(
            "SELECT count(*) FROM job_outbox WHERE job_id = '{resent}' AND kind = 'email.send'"
        ),
    )
    .await;
    assert_eq!(staged, 1, "its send job is in the outbox");
    let again = acted(
        &app,
        (&support, "sam"),
        user,
        &path,
        None,
        "customer.email_resend",
    )
    .await;
    assert_eq!(again["after"]["delivery_id"], first["after"]["delivery_id"]);
    let resends = count(
        &app.db.pool,
        &format!("SELECT count(*) FROM email_deliveries WHERE resent_from = '{original}'"),
    )
    .await;
    assert_eq!(resends, 1, "one resend however often it is asked");
    let page = super::super::get(&app, &format!("/ops/customers/{user}")).await;
    assert!(
        page["emails"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["resent_from"] == original.to_string()),
        "{page}"
    );

    // A reminder to someone who unsubscribed from reminders, and a delivery that was suppressed.
    sqlx::query("INSERT INTO email_suppressions (user_id, category, source) VALUES ($1, 'reminders', 'link')")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let reminder = delivery(&app, user, "reminder_goal_review", "sent").await;
    let suppressed = delivery(&app, user, "reminder_custom", "suppressed").await;
    let rows = count(&app.db.pool, "SELECT count(*) FROM email_deliveries").await;
    for id in [reminder, suppressed] {
        let (status, reply) = post(
            &app,
            &support,
            &format!("/ops/customers/{user}/emails/{id}/resend"),
            None,
        )
        .await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("recipient_suppressed")),
            "{reply}"
        );
    }
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM email_deliveries").await,
        rows
    );
}

#[tokio::test]
async fn only_the_customers_failed_events_are_replayed_and_their_jobs_show_on_the_page() {
    let app = TestApp::spawn().await;
    let support = operator(&app, "sam", OpsRole::Support).await;
    let user = customer(&app, "essentials", "active", None).await;
    link_stripe_customer(&app, user, "cus_mine").await;
    failed_event(&app, "evt_mine", "cus_mine").await;
    failed_event(&app, "evt_theirs", "cus_theirs").await;
    let path = format!("/ops/customers/{user}/stripe-events/replay");
    let reply = acted(
        &app,
        (&support, "sam"),
        user,
        &path,
        None,
        "customer.stripe_replay",
    )
    .await;
    assert_eq!(reply["after"]["replayed"], json!(["evt_mine"]), "{reply}");
    assert_eq!(status_of(&app.db.pool, "evt_mine").await, "received");
    assert_eq!(status_of(&app.db.pool, "evt_theirs").await, "failed");

    // The replay's job, an e-mail's dead job and a report's run concern the customer; another's do not.
    let replay_job: Uuid =
        sqlx::query_scalar("SELECT job_id FROM stripe_events WHERE id = 'evt_mine'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let mail = delivery(&app, user, "payment_failed", "failed").await;
    let elsewhere = Uuid::now_v7();
    for (job, kind) in [(mail, "email.send"), (elsewhere, "email.send")] {
        sqlx::query(
            "INSERT INTO job_dead_letters (job_id, queue, kind, args, attempts, max_attempts, last_error, enqueued_at)
             VALUES ($1, 'email', $2, '{}', 9, 9, 'smtp 550', now())",
        )
        .bind(job)
        .bind(kind)
        .execute(&app.db.pool)
        .await
        .unwrap();
    }
    for (job, kind) in [
        (replay_job, "stripe.process_event"),
        (mail, "email.send"),
        (elsewhere, "email.send"),
    ] {
        sqlx::query(
            "INSERT INTO job_runs (queue, kind, job_id, task_id, attempt, max_attempts, status, worker,
                                   enqueued_at, started_at, finished_at, duration_ms, args_summary)
             VALUES ('email', $2, $1, $3, 1, 9, 'retrying', 'w1', now(), now(), now(), 1, 'x')",
        )
        .bind(job)
        .bind(kind)
        .bind(Uuid::new_v4().to_string())
        .execute(&app.db.pool)
        .await
        .unwrap();
    }
    let page = super::super::get(&app, &format!("/ops/customers/{user}")).await;
    let mut jobs: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    jobs.sort_unstable();
    let mut expected = vec![replay_job.to_string(), mail.to_string()];
    expected.sort_unstable();
    assert_eq!(jobs, expected, "{page}");
    let dead: Vec<&str> = page["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(dead, [mail.to_string()], "{page}");
}

#[tokio::test]
async fn the_access_recompute_repairs_drift_and_v1_features_sees_it_at_once() {
    let app = TestApp::spawn().await;
    let support = operator(&app, "sam", OpsRole::Support).await;
    let user = customer(&app, "professional", "active", None).await;
    sqlx::query(
        "DELETE FROM feature_access WHERE user_id = $1 AND feature_name = 'custom_reports'",
    )
    .bind(user)
    .execute(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(feature(&app, user, "custom_reports").await["access"], false);
    let path = format!("/ops/customers/{user}/access/recompute");
    let reply = acted(
        &app,
        (&support, "sam"),
        user,
        &path,
        None,
        "customer.access_recompute",
    )
    .await;
    assert_eq!(reply["before"]["grants"]["custom_reports"], json!(null));
    assert_eq!(
        reply["after"]["grants"]["custom_reports"]["granted_by"],
        "subscription"
    );
    assert_eq!(reply["after"]["tier"], "professional");
    let repaired = feature(&app, user, "custom_reports").await;
    assert_eq!(
        (
            repaired["access"].as_bool(),
            repaired["access_level"].as_str()
        ),
        (Some(true), Some("premium"))
    );
}
