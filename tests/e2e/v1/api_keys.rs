//! API keys: create (shown once, stored as a hash) → use → list (no secret) → revoke → 401; expiry,
//! scopes, the Executive plan gate, `last_used_at`, and bad input answered with JSON 4xx writing nothing.

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use mingus_tests::wait::until;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::{
    LIMIT, count_keys, create_key, executive, key_with, list_keys, move_to_professional, send,
    user_on,
};

/// SHA-256 in hex, computed by PostgreSQL (independently of the API's code).
async fn sha256_hex(app: &TestApp, secret: &str) -> String {
    sqlx::query_scalar("SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')")
        .bind(secret)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_is_shown_once_stored_as_a_hash_used_listed_and_revoked() {
    let app = TestApp::spawn().await;
    let user = executive(&app).await;
    let token = user_token(&app, user);
    let expires = chrono::Utc::now() + chrono::Duration::days(30);
    let created = send(
        &app,
        Method::POST,
        "/v1/api-keys",
        Some(&token),
        Some(
            json!({"name": "CI pipeline", "scopes": ["api_keys:read", "reports:read"],
                    "expires_at": expires, "rate_limit_per_hour": 500}),
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let body = &created.body;
    let secret = body["key"].as_str().unwrap().to_owned();
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    assert!(
        secret.starts_with("mk_live_") && secret.len() == 51,
        "{secret}"
    );
    assert!(secret[8..].chars().all(|c| c.is_ascii_alphanumeric()));
    let prefix = body["key_prefix"].as_str().unwrap();
    assert!(secret.starts_with(prefix) && prefix.len() < secret.len() - 30);
    assert_eq!(body["name"], "CI pipeline");
    assert_eq!(body["scopes"], json!(["reports:read", "api_keys:read"]));
    assert_eq!(body["rate_limit_per_hour"], 500);
    assert_eq!(body["is_active"], true);
    assert!(body["last_used_at"].is_null());

    // Only the SHA-256 is stored; nothing in the row holds the secret.
    let row: (String, String, serde_json::Value, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT api_key_hash, row_to_json(k)::text, permissions, expires_at FROM api_keys k WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(row.0, sha256_hex(&app, &secret).await);
    assert!(!row.1.contains(&secret[8..]), "the row leaks the secret");
    assert_eq!(row.2, json!(["reports:read", "api_keys:read"]));
    assert_eq!(row.3.unwrap().timestamp(), expires.timestamp());

    // The key works; the listing shows it without secret or hash.
    let listed = list_keys(&app, &secret).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let keys = listed.body["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id.to_string());
    assert_eq!(keys[0]["key_prefix"], prefix);
    assert_eq!(keys[0]["scopes"], json!(["reports:read", "api_keys:read"]));
    let text = listed.body.to_string();
    assert!(!text.contains(&secret) && !text.contains(&row.0) && !text.contains("hash"));
    assert!(keys[0].get("key").is_none());

    // last_used_at is written in the background.
    let used: chrono::DateTime<chrono::Utc> = until(LIMIT, "last_used_at", || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT last_used_at FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
    })
    .await;
    assert!((chrono::Utc::now() - used).num_seconds() < 60);
    let listed = list_keys(&app, &token).await;
    assert!(listed.body["api_keys"][0]["last_used_at"].is_string());

    // Someone else cannot revoke it (and learns nothing); the owner can, with a user token only.
    let stranger = user_token(&app, user_on(&app, Some("executive")).await);
    let path = format!("/v1/api-keys/{id}");
    let answer = send(&app, Method::DELETE, &path, Some(&stranger), None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let answer = send(&app, Method::DELETE, &path, Some(&secret), None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "user_session_required")
    );
    assert_eq!(list_keys(&app, &secret).await.status, StatusCode::OK);
    let answer = send(&app, Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let active: bool = sqlx::query_scalar("SELECT is_active FROM api_keys WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(!active);
    let refused = list_keys(&app, &secret).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.code(), "api_key_revoked");
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer ")
    );
    // Still listed, as revoked.
    let listed = list_keys(&app, &token).await;
    assert_eq!(listed.body["api_keys"][0]["is_active"], false);
    let unknown = format!("/v1/api-keys/{}", Uuid::new_v4());
    let answer = send(&app, Method::DELETE, &unknown, Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expired_unknown_and_misshapen_keys_are_refused() {
    let app = TestApp::spawn().await;
    let user = executive(&app).await;
    let secret = key_with(&app, user, &["api_keys:read"], 100).await;
    assert_eq!(list_keys(&app, &secret).await.status, StatusCode::OK);
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let answer = list_keys(&app, &secret).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::UNAUTHORIZED, "api_key_expired")
    );

    let mut other = secret.clone();
    other.replace_range(20..21, if &secret[20..21] == "a" { "b" } else { "a" });
    for (presented, code) in [
        (other.as_str(), "api_key_invalid"),
        ("mk_live_short", "api_key_invalid"),
        (&format!("{secret}x"), "api_key_invalid"),
    ] {
        let answer = list_keys(&app, presented).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{presented}");
        assert_eq!(answer.code(), code, "{presented}");
    }
}

#[tokio::test]
async fn keys_reach_only_what_their_scopes_allow() {
    let app = TestApp::spawn().await;
    let user = executive(&app).await;
    let features_only = key_with(&app, user, &["features:read"], 100).await;
    let answer = list_keys(&app, &features_only).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api_keys:read")
    );
    // Keys never create keys, whatever their scopes.
    let reader = key_with(&app, user, &["api_keys:read", "reports:write"], 100).await;
    assert_eq!(list_keys(&app, &reader).await.status, StatusCode::OK);
    let before = count_keys(&app).await;
    let answer = send(
        &app,
        Method::POST,
        "/v1/api-keys",
        Some(&reader),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "user_session_required")
    );
    assert_eq!(count_keys(&app).await, before);
    // Default scopes: read-only.
    let created = create_key(&app, user, json!({"name": "defaults"})).await;
    assert_eq!(created["scopes"], json!(["features:read", "reports:read"]));
    assert_eq!(created["rate_limit_per_hour"], 1000);
    assert!(created["expires_at"].is_null());
}

#[tokio::test]
async fn only_plans_with_api_access_create_and_use_keys() {
    let app = TestApp::spawn().await;
    for (tier, reason) in [
        (None, "no_active_subscription"),
        (Some("essentials"), "feature_not_included"),
        (Some("professional"), "feature_not_included"),
    ] {
        let user = user_on(&app, tier).await;
        let token = user_token(&app, user);
        let answer = send(
            &app,
            Method::POST,
            "/v1/api-keys",
            Some(&token),
            Some(json!({"name": "k"})),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{tier:?}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "api_access_required", "{tier:?}");
        assert_eq!(answer.body["error"]["reason"], reason, "{tier:?}");
        assert_eq!(answer.body["error"]["tier"], json!(tier), "{tier:?}");
        // Listing stays possible (there is nothing to list).
        assert_eq!(list_keys(&app, &token).await.body["api_keys"], json!([]));
    }
    assert_eq!(count_keys(&app).await, 0);

    // A key stops working when its owner's plan loses API access.
    let user = executive(&app).await;
    let secret = key_with(&app, user, &["api_keys:read"], 100).await;
    assert_eq!(list_keys(&app, &secret).await.status, StatusCode::OK);
    move_to_professional(&app, user).await;
    let answer = list_keys(&app, &secret).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.code(), "api_access_required");
    assert_eq!(answer.body["error"]["reason"], "feature_not_included");
}

#[tokio::test]
async fn bad_input_is_a_json_4xx_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let user = executive(&app).await;
    let token = user_token(&app, user);
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    for (body, status, code) in [
        (
            json!({"name": "k", "admin": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"scopes": ["reports:read"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"name": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"name": "k", "rate_limit_per_hour": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"name": "k", "expires_at": "next week"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"name": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            json!({"name": "k", "scopes": ["reports:read", "root"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_scopes",
        ),
        (
            json!({"name": "k", "scopes": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_scopes",
        ),
        (
            json!({"name": "k", "expires_at": past}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_expires_at",
        ),
        (
            json!({"name": "k", "rate_limit_per_hour": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_rate_limit",
        ),
        (
            json!(["name"]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ] {
        let answer = send(
            &app,
            Method::POST,
            "/v1/api-keys",
            Some(&token),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{body}: {}",
            answer.body
        );
    }
    let raw = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(&token)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request
    };
    for (request, status, code) in [
        (
            raw(b"{\"name\": ".to_vec(), Some("application/json")),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw(
                b"name=k".to_vec(),
                Some("application/x-www-form-urlencoded"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(b"{\"name\":\"k\"}".to_vec(), None),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(
                format!("{{\"name\":\"{}\"}}", "k".repeat(100_000)).into_bytes(),
                Some("application/json"),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{code}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
    }
    let answer = send(
        &app,
        Method::DELETE,
        "/v1/api-keys/not-a-uuid",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    assert_eq!(count_keys(&app).await, 0);
}

/// At most 25 active keys per user, counted under a per-user lock: concurrent creations at 24 keys create
/// exactly one; revoked and expired keys do not count, and revoking a key makes room again.
#[tokio::test]
async fn at_most_25_active_keys_even_when_created_concurrently() {
    let app = TestApp::spawn().await;
    let user = executive(&app).await;
    // Keys 1–24 active, 25 revoked, 26 expired.
    sqlx::query(
        "INSERT INTO api_keys (user_id, key_name, key_prefix, api_key_hash, is_active, expires_at)
         SELECT $1, 'seeded ' || n, 'mk_live_seed', md5($1::text || n), n <> 25,
                CASE WHEN n = 26 THEN now() - interval '1 day' END
         FROM generate_series(1, 26) n",
    )
    .bind(user)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let token = user_token(&app, user);
    let mut set = tokio::task::JoinSet::new();
    for n in 0..8 {
        let request = app
            .client
            .post(app.url("/v1/api-keys"))
            .bearer_auth(&token)
            .json(&json!({ "name": format!("concurrent {n}") }));
        set.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap();
            (
                status,
                body["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        });
    }
    let mut replies = set.join_all().await;
    replies.sort();
    let mut expected = vec![(StatusCode::CONFLICT, "api_key_limit_reached".to_owned()); 7];
    expected.insert(0, (StatusCode::CREATED, String::new()));
    assert_eq!(replies, expected);
    let active = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM api_keys WHERE user_id = $1 AND is_active
               AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(user)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
    };
    assert_eq!(active().await, 25);

    let seeded: Uuid =
        sqlx::query_scalar("SELECT id FROM api_keys WHERE user_id = $1 AND key_name = 'seeded 1'")
            .bind(user)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    let revoked = send(
        &app,
        Method::DELETE,
        &format!("/v1/api-keys/{seeded}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    create_key(&app, user, json!({"name": "after a revocation"})).await;
    assert_eq!(active().await, 25);
}
