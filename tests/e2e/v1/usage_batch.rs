//! Group commit of metered-usage consumes (`entitlements::consumes`, `mingus_consume_usage_many()`):
//! a batch applies each consume exactly as alone and in order, a bad consume fails only itself, and
//! concurrent consumes of many accounts with retried keys count each key once.

use chrono::{DateTime, Utc};
use mingus_common::entitlements::Entitlements;
use mingus_common::entitlements::metrics::Outcome;
use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::StatusCode;
use uuid::Uuid;

use super::user_on;

type Answered = (i32, String, i64, String, i64);

/// Calls `mingus_consume_usage_many()` for `user` with one limit and period for every consume.
async fn many(
    app: &TestApp,
    user: Uuid,
    keys: &[&str],
    metric: &str,
    amounts: &[i64],
    limit: i64,
) -> Result<Vec<Answered>, sqlx::Error> {
    let n = keys.len();
    let start: DateTime<Utc> = Utc::now() - chrono::Duration::days(1);
    let end = start + chrono::Duration::days(30);
    sqlx::query_as(
        "SELECT o_index, o_outcome, o_used, o_metric, o_amount
         FROM mingus_consume_usage_many($1, $2, $3, $4, $5, $6, $7, $8) ORDER BY o_index",
    )
    .bind(vec![user; n])
    .bind(keys)
    .bind(vec![metric; n])
    .bind(amounts)
    .bind(vec![Some(limit); n])
    .bind(vec![start; n])
    .bind(vec![end; n])
    .bind(vec![user; n])
    .fetch_all(&app.db.pool)
    .await
}

async fn counted(app: &TestApp, user: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT coalesce(sum(used), 0)::bigint FROM usage_counters WHERE user_id = $1),
                (SELECT count(*) FROM usage_events WHERE user_id = $1)",
    )
    .bind(user)
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn one_call_applies_its_consumes_in_order_and_a_repeated_key_replays_the_first() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("professional")).await;
    let metric = "ai_insights_per_month";

    let answered = many(
        &app,
        user,
        &["a", "a", "b", "c"],
        metric,
        &[2, 2, 49, 48],
        50,
    )
    .await
    .unwrap();
    let outcomes: Vec<(&str, i64)> = answered
        .iter()
        .map(|(_, outcome, used, _, _)| (outcome.as_str(), *used))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("consumed", 2),
            // The same key later in the same call: the first's outcome, nothing counted.
            ("replayed", 2),
            // 2 + 49 > 50: refused against the units counted before it in the call.
            ("refused", 2),
            ("consumed", 50),
        ]
    );
    assert_eq!(
        answered.iter().map(|a| a.0).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(counted(&app, user).await, (50, 2), "units, and keys stored");
}

#[tokio::test]
async fn arrays_of_different_lengths_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, Some("professional")).await;
    let start = Utc::now();
    let err =
        sqlx::query("SELECT * FROM mingus_consume_usage_many($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(vec![user, user])
            .bind(vec!["only-one"])
            .bind(vec!["ai_insights_per_month"; 2])
            .bind(vec![1_i64; 2])
            .bind(vec![Some(50_i64); 2])
            .bind(vec![start; 2])
            .bind(vec![start + chrono::Duration::days(30); 2])
            .bind(vec![user; 2])
            .execute(&app.db.pool)
            .await
            .expect_err("arrays of different lengths");
    assert!(err.to_string().contains("different lengths"), "{err}");
    assert_eq!(counted(&app, user).await, (0, 0));
}

#[tokio::test]
async fn a_failing_consume_fails_only_itself_when_batched_with_others() {
    let app = TestApp::spawn().await;
    let redis = mingus_common::cache::connect(&app.config.redis)
        .await
        .unwrap();
    let entitlements = Entitlements::new(app.db.pool.clone(), redis, &app.redis_prefix);
    let mut users = Vec::new();
    for _ in 0..4 {
        users.push(user_on(&app, Some("professional")).await);
    }
    let now = Utc::now();
    let snapshot = entitlements.snapshot(users[0], now).await.unwrap();
    // No `users` row: its usage event breaks the foreign key, so a batch holding it fails as a whole and
    // is applied one consume at a time.
    let stranger = Uuid::new_v4();
    let mut calls = Vec::new();
    for round in 0..10 {
        for (n, user) in users.iter().enumerate() {
            calls.push((*user, format!("use-{round}-{n}")));
        }
        calls.push((stranger, format!("stranger-{round}")));
    }
    let answers = futures::future::join_all(calls.iter().map(|(user, key)| {
        entitlements.consume_once(
            &snapshot,
            *user,
            "ai_insights_per_month",
            1,
            key,
            *user,
            now,
        )
    }))
    .await;
    for ((user, key), answer) in calls.iter().zip(&answers) {
        if *user == stranger {
            assert!(answer.is_err(), "{key}: {answer:?}");
        } else {
            let consumed = answer.as_ref().unwrap_or_else(|e| panic!("{key}: {e:#}"));
            assert_eq!(consumed.outcome, Outcome::Consumed, "{key}");
        }
    }
    for user in &users {
        assert_eq!(counted(&app, *user).await, (10, 10));
    }
    assert_eq!(counted(&app, stranger).await, (0, 0));
}

#[tokio::test]
async fn concurrent_consumes_of_many_accounts_with_retried_keys_count_each_key_once() {
    let app = TestApp::spawn().await;
    let mut tokens = Vec::new();
    for _ in 0..8 {
        let user = user_on(&app, Some("professional")).await;
        tokens.push((user, user_token(&app, user)));
    }
    // Every key is sent twice at once (a client retrying while the first is in flight).
    let mut calls = Vec::new();
    for (user, token) in &tokens {
        for n in 0..6 {
            for _ in 0..2 {
                calls.push((*user, token.clone(), format!("key-{n}")));
            }
        }
    }
    let answers = futures::future::join_all(calls.iter().map(|(_, token, key)| {
        app.client
            .post(app.url("/v1/usage/ai_insights_per_month"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"amount": 3}))
            .send()
    }))
    .await;
    let mut first_uses = std::collections::HashMap::<(Uuid, &str), usize>::new();
    for ((user, _, key), answer) in calls.iter().zip(answers) {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{key}");
        let body: serde_json::Value = answer.json().await.unwrap();
        if body["replayed"] == false {
            *first_uses.entry((*user, key.as_str())).or_default() += 1;
        }
    }
    assert_eq!(first_uses.len(), 8 * 6, "every key counted once");
    assert!(first_uses.values().all(|n| *n == 1), "{first_uses:?}");
    for (user, _) in &tokens {
        assert_eq!(counted(&app, *user).await, (18, 6));
    }
}
