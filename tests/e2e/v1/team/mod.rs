//! Teams end to end: invitations (row, e-mail, single-use token), the member cap, acting for the owner
//! with `Mingus-Account` within a role, API keys, a lapsed owner, bad input, and the member's side
//! (declining, the teams one belongs to, leaving).

mod input;
mod invitations;
mod leaving;
mod roles;

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Answer;

/// Sends a request, acting for `acting` (the `Mingus-Account` header) when given.
pub(super) async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    credential: &str,
    acting: Option<Uuid>,
    body: Option<Value>,
) -> Answer {
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(credential);
    if let Some(owner) = acting {
        request = request.header("Mingus-Account", owner.to_string());
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    super::answer(&method, path, request).await
}

/// `POST /v1/team/members` with `{email, role}`.
pub(super) async fn invite(
    app: &TestApp,
    credential: &str,
    acting: Option<Uuid>,
    email: &str,
    role: &str,
) -> Answer {
    call(
        app,
        Method::POST,
        "/v1/team/members",
        credential,
        acting,
        Some(json!({"email": email, "role": role})),
    )
    .await
}

/// The address of a fixture user (`fixtures::user`).
pub(super) fn email_of(user: Uuid) -> String {
    format!("{user}@example.com")
}

/// The token in the accept link of the member's latest invitation e-mail.
pub(super) async fn token_of(app: &TestApp, member_id: &str) -> String {
    let url: String = sqlx::query_scalar(
        "SELECT data->>'accept_url' FROM email_deliveries
         WHERE dedupe_key LIKE 'team_invitation:' || $1 || ':%'
         ORDER BY created_at DESC, dedupe_key DESC LIMIT 1",
    )
    .bind(member_id)
    .fetch_one(&app.db.pool)
    .await
    .expect("an invitation e-mail");
    url.rsplit_once("token=")
        .expect("token in the link")
        .1
        .to_owned()
}

pub(super) async fn accept(app: &TestApp, credential: &str, token: &str) -> Answer {
    let path = format!("/v1/team/invitations/{token}/accept");
    call(app, Method::POST, &path, credential, None, None).await
}

/// A new user who joins `owner`'s team as `role` (invited by the owner, accepted); returns the user
/// and the member row's id.
pub(super) async fn join(app: &TestApp, owner: Uuid, role: &str) -> (Uuid, String) {
    let user = crate::fixtures::user(&app.db.pool).await;
    let invited = invite(app, &user_token(app, owner), None, &email_of(user), role).await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    let member_id = invited.body["id"].as_str().unwrap().to_owned();
    let token = token_of(app, &member_id).await;
    let accepted = accept(app, &user_token(app, user), &token).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    (user, member_id)
}

pub(super) async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}
