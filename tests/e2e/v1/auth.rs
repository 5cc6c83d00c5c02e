//! User tokens (JWT HS256): valid, expired, wrongly signed, `alg: none`, wrong audience, malformed,
//! missing → the exact status, error code and `WWW-Authenticate` challenge.

use mingus_tests::TestApp;
use mingus_tests::frontend::{sign_token, user_claims, user_token};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{list_keys, send, user_on};

fn with(claims: &Value, field: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    claims[field] = value;
    claims
}

fn unsigned(claims: &Value, alg: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

#[tokio::test]
async fn user_tokens_are_verified_with_a_distinct_code_per_failure() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, None).await;
    let valid = user_token(&app, user);
    let answer = list_keys(&app, &valid).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, json!({"api_keys": []}));

    let claims = user_claims(user);
    let now = chrono::Utc::now().timestamp();
    let other_secret =
        mingus_api::v1::jwt::sign_hs256(&claims, b"not-the-secret-0123456789abcdef-xyz");
    let (head, _) = valid.rsplit_once('.').unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            sign_token(&app, &with(&claims, "exp", json!(now - 120))),
            "token_expired",
        ),
        ("wrong secret", other_secret, "token_signature_invalid"),
        (
            "tampered signature",
            format!("{head}.{}", "A".repeat(43)),
            "token_signature_invalid",
        ),
        (
            "alg none",
            unsigned(&claims, "none"),
            "token_algorithm_unsupported",
        ),
        (
            "alg HS512",
            unsigned(&claims, "HS512"),
            "token_algorithm_unsupported",
        ),
        (
            "wrong audience",
            sign_token(&app, &with(&claims, "aud", json!("anon"))),
            "token_audience_invalid",
        ),
        (
            "no audience",
            sign_token(&app, &with(&claims, "aud", Value::Null)),
            "token_audience_invalid",
        ),
        (
            "sub not a uuid",
            sign_token(&app, &with(&claims, "sub", json!("alice"))),
            "token_claims_invalid",
        ),
        (
            "no exp",
            sign_token(&app, &with(&claims, "exp", Value::Null)),
            "token_claims_invalid",
        ),
        (
            "not yet valid",
            sign_token(&app, &with(&claims, "nbf", json!(now + 600))),
            "token_not_yet_valid",
        ),
        ("malformed", "abc.def".to_owned(), "token_malformed"),
        (
            "garbage",
            "not a token at all".to_owned(),
            "token_malformed",
        ),
    ];
    for (what, token, code) in cases {
        let answer = list_keys(&app, &token).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            answer.body
        );
        assert_eq!(answer.code(), code, "{what}");
        let challenge = answer.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
        // A refused call is not counted and carries no rate-limit headers.
        assert!(answer.header("ratelimit-limit").is_none(), "{what}");
    }

    let missing = send(&app, Method::GET, "/v1/api-keys", None, None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.code(), "credentials_missing");
    assert_eq!(
        missing.header("www-authenticate"),
        Some(r#"Bearer realm="mingus""#)
    );
    let basic = app
        .client
        .get(app.url("/v1/api-keys"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let body: Value = basic.json().await.unwrap();
    assert_eq!(body["error"]["code"], "authorization_invalid");
    // The admin token is not a user token.
    let admin = crate::ops::token(&app);
    assert_eq!(
        list_keys(&app, &admin).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Within the leeway an expired token still passes; it is documented as at most 30 s.
    let late = sign_token(&app, &with(&claims, "exp", json!(now - 5)));
    assert_eq!(list_keys(&app, &late).await.status, StatusCode::OK);
    // The /ops admin token is unchanged by /v1.
    let ops = app
        .client
        .get(app.url("/ops/queues"))
        .bearer_auth(&valid)
        .send()
        .await
        .unwrap();
    assert_eq!(ops.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_audience_is_configurable_and_tokens_need_a_configured_secret() {
    let app = TestApp::spawn_with(&[("MINGUS_JWT_AUDIENCE", "mingus-web")]).await;
    let user = user_on(&app, None).await;
    let supabase_default = user_token(&app, user);
    let answer = list_keys(&app, &supabase_default).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "token_audience_invalid");
    let ours = sign_token(
        &app,
        &with(&user_claims(user), "aud", json!(["mingus-web"])),
    );
    assert_eq!(list_keys(&app, &ours).await.status, StatusCode::OK);

    let unconfigured = TestApp::spawn_with(&[("MINGUS_JWT_SECRET", "")]).await;
    let answer = list_keys(&unconfigured, &ours).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.code(), "jwt_disabled");
}
