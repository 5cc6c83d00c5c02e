//! Rate limits: headers on every admitted call, 429 + `Retry-After` at the limit, separate buckets per
//! key and per user, the tier's `api_calls_per_hour` across keys, one bucket shared by two API instances,
//! and fail-open when Redis is unreachable.

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use redis::AsyncCommands;
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use super::{Answer, executive, key_with, list_keys, send, send_to, user_on};

fn assert_counts(answer: &Answer, limit: u64, remaining: u64) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.number("ratelimit-limit"), limit);
    assert_eq!(answer.number("ratelimit-remaining"), remaining);
    let reset = answer.number("ratelimit-reset");
    assert!((1..=3600).contains(&reset), "reset {reset}");
    assert!(answer.header("retry-after").is_none());
}

fn assert_limited(answer: &Answer, limit: u64) {
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "rate_limited");
    assert_eq!(answer.number("ratelimit-limit"), limit);
    assert_eq!(answer.number("ratelimit-remaining"), 0);
    let retry = answer.number("retry-after");
    assert!((3000..=3600).contains(&retry), "retry-after {retry}");
}

#[tokio::test]
async fn a_key_counts_down_to_429_and_other_keys_and_the_user_keep_their_own_buckets() {
    let app = TestApp::spawn().await;
    let user = executive(&app).await;
    let small = key_with(&app, user, &["api_keys:read"], 3).await;
    let other = key_with(&app, user, &["api_keys:read"], 5).await;
    for remaining in [2, 1, 0] {
        assert_counts(&list_keys(&app, &small).await, 3, remaining);
    }
    for _ in 0..2 {
        assert_limited(&list_keys(&app, &small).await, 3);
    }
    // Refused calls were not counted: the counter stayed at the limit.
    let mut redis = mingus_common::cache::connect(&app.config.redis)
        .await
        .unwrap();
    let id: Uuid = sqlx::query_scalar("SELECT id FROM api_keys WHERE rate_limit_per_hour = 3")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let counted: u64 = redis
        .get(format!("{}:ratelimit:key:{id}", app.redis_prefix))
        .await
        .unwrap();
    assert_eq!(counted, 3);
    // Another key of the same user, and the user's own token, have buckets of their own.
    assert_counts(&list_keys(&app, &other).await, 5, 4);
    let token = user_token(&app, user);
    // Its two key creations counted there: 3,600 − 3.
    assert_counts(&list_keys(&app, &token).await, 3600, 3597);
    assert_limited(&list_keys(&app, &small).await, 3);
    // The webhook route is not rate limited.
    let webhook = app
        .client
        .post(app.url("/webhooks/stripe"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(webhook.headers().get("ratelimit-limit").is_none());
}

#[tokio::test]
async fn user_tokens_are_limited_per_user() {
    let app = TestApp::spawn_with(&[("MINGUS_USER_RATE_LIMIT_PER_HOUR", "2")]).await;
    let alice = user_token(&app, user_on(&app, None).await);
    let bob = user_token(&app, user_on(&app, None).await);
    assert_counts(&list_keys(&app, &alice).await, 2, 1);
    assert_counts(&list_keys(&app, &alice).await, 2, 0);
    let refused = list_keys(&app, &alice).await;
    assert_limited(&refused, 2);
    assert_eq!(refused.header("ratelimit-policy"), Some("2;w=3600"));
    // A 429 is JSON, like every error.
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 calls per hour")
    );
    assert_counts(&list_keys(&app, &bob).await, 2, 1);
    // Errors inside the handler count too (the call reached the API), and still carry the headers.
    let bad = send(&app, Method::DELETE, "/v1/api-keys/nope", Some(&bob), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.number("ratelimit-remaining"), 0);
}

#[tokio::test]
async fn the_tier_limit_caps_all_keys_of_a_user_together() {
    let app = TestApp::spawn().await;
    let user = executive(&app).await;
    let first = key_with(&app, user, &["api_keys:read"], 1_000).await;
    let second = key_with(&app, user, &["api_keys:read"], 1_000).await;
    assert_counts(&list_keys(&app, &first).await, 1_000, 999);
    // Bring the tier's counter (Executive: 10,000 calls an hour) to one call below its limit.
    let mut redis = mingus_common::cache::connect(&app.config.redis)
        .await
        .unwrap();
    let tier_key = format!("{}:ratelimit:tier:{user}", app.redis_prefix);
    let _: () = redis.set_ex(&tier_key, 9_999, 3_600).await.unwrap();
    // The most constrained bucket is the one reported.
    assert_counts(&list_keys(&app, &second).await, 10_000, 0);
    assert_limited(&list_keys(&app, &first).await, 10_000);
    assert_limited(&list_keys(&app, &second).await, 10_000);
    // The user's own token is not an API call.
    let token = user_token(&app, user);
    assert_eq!(list_keys(&app, &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn two_api_instances_share_one_bucket() {
    let app = TestApp::spawn().await;
    let replica = app.another_instance().await;
    let user = executive(&app).await;
    let key = key_with(&app, user, &["api_keys:read"], 4).await;
    let mut remaining = 4;
    for round in 0..4 {
        let url = if round % 2 == 0 {
            app.url("/v1/api-keys")
        } else {
            replica.url("/v1/api-keys")
        };
        remaining -= 1;
        let answer = send_to(&app, url, Method::GET, Some(&key), None).await;
        assert_counts(&answer, 4, remaining);
    }
    assert_limited(
        &send_to(
            &app,
            replica.url("/v1/api-keys"),
            Method::GET,
            Some(&key),
            None,
        )
        .await,
        4,
    );
    assert_limited(&list_keys(&app, &key).await, 4);
}

#[tokio::test]
async fn an_unreachable_redis_lets_calls_through_without_headers() {
    // Nothing listens on port 1: every Redis command fails at once.
    let app = TestApp::spawn_with(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;
    let token = user_token(&app, user_on(&app, None).await);
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let answer = list_keys(&app, &token).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(answer.header("ratelimit-limit").is_none());
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
