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

/// One consume of a direct `mingus_consume_usage_many()` call: account, key, metric, amount, limit.
type Item<'a> = (Uuid, &'a str, &'a str, i64, Option<i64>);

/// Calls `mingus_consume_usage_many()` with `items`, in one period for all of them (the function does
/// not care which), each account acting for itself.
async fn many_of(app: &TestApp, items: &[Item<'_>]) -> Result<Vec<Answered>, sqlx::Error> {
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let end = start + chrono::Duration::days(31);
    let n = items.len();
    let users: Vec<Uuid> = items.iter().map(|i| i.0).collect();
    sqlx::query_as(
        "SELECT o_index, o_outcome, o_used, o_metric, o_amount
         FROM mingus_consume_usage_many($1, $2, $3, $4, $5, $6, $7, $8) ORDER BY o_index",
    )
    .bind(&users)
    .bind(items.iter().map(|i| i.1).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.2).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.3).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.4).collect::<Vec<_>>())
    .bind(vec![start; n])
    .bind(vec![end; n])
    .bind(&users)
    .fetch_all(&app.db.pool)
    .await
}

/// [`many_of`] for one account, metric and limit.
async fn many(
    app: &TestApp,
    user: Uuid,
    keys: &[&str],
    metric: &str,
    amounts: &[i64],
    limit: i64,
) -> Result<Vec<Answered>, sqlx::Error> {
    let items: Vec<Item> = keys
        .iter()
        .zip(amounts)
        .map(|(key, amount)| (user, *key, metric, *amount, Some(limit)))
        .collect();
    many_of(app, &items).await
}

/// `(outcome, used)` of each answer, in order.
fn outcomes(answered: &[Answered]) -> Vec<(&str, i64)> {
    answered
        .iter()
        .map(|(_, outcome, used, _, _)| (outcome.as_str(), *used))
        .collect()
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
    assert_eq!(
        outcomes(&answered),
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
async fn a_batch_of_new_keys_with_room_answers_running_totals_and_a_full_counter_refuses_in_order()
{
    let app = TestApp::spawn().await;
    let (one, two) = (
        user_on(&app, Some("professional")).await,
        user_on(&app, Some("professional")).await,
    );
    let (insights, reports) = ("ai_insights_per_month", "custom_reports_per_month");
    // New keys, room everywhere: the set-based path. Each answer is its counter after that consume.
    let answered = many_of(
        &app,
        &[
            (one, "k1", insights, 1, Some(10)),
            (one, "k2", insights, 2, Some(10)),
            (one, "k3", reports, 3, None),
            (two, "k1", insights, 4, Some(10)),
            (one, "k4", insights, 3, Some(10)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        outcomes(&answered),
        [
            ("consumed", 1),
            ("consumed", 3),
            ("consumed", 3),
            ("consumed", 4),
            ("consumed", 6)
        ]
    );
    assert_eq!(counted(&app, one).await, (9, 4));
    assert_eq!(counted(&app, two).await, (4, 1));

    // `one`'s insights counter has 4 left: 3 fits, the next 3 does not, the next 1 does again; the
    // other account is counted as usual. The answers are those of one consume at a time.
    let answered = many_of(
        &app,
        &[
            (one, "k5", insights, 3, Some(10)),
            (one, "k6", insights, 3, Some(10)),
            (one, "k7", insights, 1, Some(10)),
            (two, "k2", insights, 6, Some(10)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        outcomes(&answered),
        [
            ("consumed", 9),
            ("refused", 9),
            ("consumed", 10),
            ("consumed", 10)
        ]
    );
    assert_eq!(
        counted(&app, one).await,
        (13, 6),
        "the refused key is not stored"
    );
    assert_eq!(counted(&app, two).await, (10, 2));

    // One counter under two limits in one batch (a plan changed between two requests): each consume
    // is checked against its own limit, in order.
    let three = user_on(&app, Some("professional")).await;
    let answered = many_of(
        &app,
        &[
            (three, "a", insights, 5, Some(50)),
            (three, "b", insights, 5, Some(8)),
            (three, "c", insights, 5, None),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        outcomes(&answered),
        [("consumed", 5), ("refused", 5), ("consumed", 10)]
    );
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
