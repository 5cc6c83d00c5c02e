//! Who a user token may be: a signed-in user (`role` in `MINGUS_JWT_USER_ROLES`) who has a `users`
//! row. A token for a user without one (a sign-up still in progress, a deleted user) gets 403
//! `user_not_provisioned` on every `/v1` route, never a 500; `anon` and `service_role` tokens are not
//! users at all.

use mingus_tests::TestApp;
use mingus_tests::frontend::{sign_token, user_claims, user_token};
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::{list_keys, send, send_to, user_on};

/// Every `/v1` route with its path parameters filled in.
fn every_route() -> Vec<(Method, String)> {
    let id = Uuid::new_v4().to_string();
    mingus_api::v1::route_table()
        .into_iter()
        .map(|(method, template)| {
            let path = template
                .replace("{feature}", "basic_analytics")
                .replace("{id}", &id)
                .replace("{owner_id}", &id)
                .replace("{token}", "an-invitation-token");
            (method, path)
        })
        .collect()
}

#[tokio::test]
async fn a_token_whose_user_has_no_row_is_refused_on_every_route() {
    let app = TestApp::spawn().await;
    let stranger = user_token(&app, Uuid::new_v4());
    for (method, path) in every_route() {
        let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({}));
        let answer = send(&app, method.clone(), &path, Some(&stranger), body).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "user_not_provisioned", "{method} {path}");
    }
    // Nothing was written for the stranger.
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM api_keys) + (SELECT count(*) FROM team_members)
              + (SELECT count(*) FROM reports)",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(rows, 0, "no key, member or report");

    // Once the sign-up has written the row, the same token works.
    let user = user_on(&app, None).await;
    assert_eq!(
        list_keys(&app, &user_token(&app, user)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_deleted_users_token_is_refused() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, None).await;
    let token = user_token(&app, user);
    assert_eq!(list_keys(&app, &token).await.status, StatusCode::OK);
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    // An instance that has not seen the user recently asks the database at once (the one that has
    // remembers it for at most v1::provisioned::REMEMBER_FOR).
    let other = app.another_instance().await;
    let answer = send_to(
        &app,
        other.url("/v1/features"),
        Method::GET,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.code(), "user_not_provisioned");
}

#[tokio::test]
async fn only_signed_in_users_tokens_act_as_users() {
    let app = TestApp::spawn().await;
    let user = user_on(&app, None).await;
    for role in ["anon", "service_role", "supabase_admin"] {
        let mut claims = user_claims(user);
        claims["role"] = json!(role);
        let answer = list_keys(&app, &sign_token(&app, &claims)).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{role}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "token_role_not_user", "{role}");
    }
    let mut no_role = user_claims(user);
    no_role.as_object_mut().unwrap().remove("role");
    assert_eq!(
        list_keys(&app, &sign_token(&app, &no_role)).await.status,
        StatusCode::OK,
        "no role claim counts as authenticated"
    );

    // The list is configurable (an identity provider with its own role names).
    let custom = TestApp::spawn_with(&[("MINGUS_JWT_USER_ROLES", "member, authenticated")]).await;
    let user = user_on(&custom, None).await;
    let mut member = user_claims(user);
    member["role"] = json!("member");
    assert_eq!(
        list_keys(&custom, &sign_token(&custom, &member))
            .await
            .status,
        StatusCode::OK
    );
    member["role"] = json!("service_role");
    assert_eq!(
        list_keys(&custom, &sign_token(&custom, &member))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}
