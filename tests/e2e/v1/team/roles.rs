//! Acting for the owner with `Mingus-Account`: viewers and editors read the team, admins manage it;
//! strangers, pending and removed members are refused; a lapsed owner's team loses access; API keys
//! need the team scopes and act only for their own user.

use mingus_common::entitlements::Entitlements;
use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use super::super::{executive, grant_plan, key_with};
use super::{call, email_of, invite, join};

const MEMBERS: &str = "/v1/team/members";

fn member_path(id: &str) -> String {
    format!("{MEMBERS}/{id}")
}

#[tokio::test]
async fn members_act_for_the_owner_within_their_role() {
    let app = TestApp::spawn().await;
    let owner = executive(&app).await;
    let (viewer, viewer_id) = join(&app, owner, "viewer").await;
    let (editor, _) = join(&app, owner, "editor").await;
    let (admin, admin_id) = join(&app, owner, "admin").await;
    let [viewer, editor, admin] = [viewer, editor, admin].map(|user| user_token(&app, user));
    let acting = Some(owner);

    // Everyone lists the owner's team; without the header a member sees their own (empty) team.
    for token in [&viewer, &editor, &admin] {
        let listed = call(&app, Method::GET, MEMBERS, token, acting, None).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        assert_eq!(listed.body["owner_id"], owner.to_string());
        assert_eq!(listed.body["members"].as_array().unwrap().len(), 3);
        assert!(listed.header("ratelimit-limit").is_some());
    }
    let own = call(&app, Method::GET, MEMBERS, &viewer, None, None).await;
    assert_eq!(own.body["members"], json!([]));

    // Viewers and editors cannot manage members.
    for token in [&viewer, &editor] {
        let answer = invite(&app, token, acting, "new@example.org", "viewer").await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::FORBIDDEN, "team_role_insufficient")
        );
        let patch = call(
            &app,
            Method::PATCH,
            &member_path(&viewer_id),
            token,
            acting,
            Some(json!({"role": "admin"})),
        )
        .await;
        assert_eq!(
            (patch.status, patch.code()),
            (StatusCode::FORBIDDEN, "team_role_insufficient")
        );
        let delete = call(
            &app,
            Method::DELETE,
            &member_path(&viewer_id),
            token,
            acting,
            None,
        )
        .await;
        assert_eq!(
            (delete.status, delete.code()),
            (StatusCode::FORBIDDEN, "team_role_insufficient")
        );
    }

    // An admin invites (for the owner's team, as the inviter), changes roles and removes members.
    let invited = invite(&app, &admin, acting, "new@example.org", "viewer").await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    assert_eq!(invited.body["owner_id"], owner.to_string());
    let admin_user: Uuid =
        sqlx::query_scalar("SELECT member_user_id FROM team_members WHERE id = $1::uuid")
            .bind(&admin_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(invited.body["invited_by"], admin_user.to_string());
    let patch = call(
        &app,
        Method::PATCH,
        &member_path(&viewer_id),
        &admin,
        acting,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    assert_eq!(patch.body["role"], "admin");
    let new_id = invited.body["id"].as_str().unwrap();
    let delete = call(
        &app,
        Method::DELETE,
        &member_path(new_id),
        &admin,
        acting,
        None,
    )
    .await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    // The owner is not a row: nothing to demote or remove.
    let answer = call(
        &app,
        Method::PATCH,
        &member_path(&owner.to_string()),
        &admin,
        acting,
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );

    // Another team's member ids are not found; its owner cannot be acted for.
    let other_owner = executive(&app).await;
    let (_, other_id) = join(&app, other_owner, "viewer").await;
    let owner_token = user_token(&app, owner);
    let answer = call(
        &app,
        Method::DELETE,
        &member_path(&other_id),
        &owner_token,
        None,
        None,
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let answer = call(&app, Method::GET, MEMBERS, &admin, Some(other_owner), None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "team_membership_required")
    );
    assert!(
        answer.header("ratelimit-limit").is_some(),
        "refusals after admission carry the limits"
    );

    // A pending invitee is not a member yet; a removed member no longer is; the role change shows at once.
    let pending = crate::fixtures::user(&app.db.pool).await;
    assert_eq!(
        invite(&app, &owner_token, None, &email_of(pending), "admin")
            .await
            .status,
        StatusCode::CREATED
    );
    let answer = call(
        &app,
        Method::GET,
        MEMBERS,
        &user_token(&app, pending),
        acting,
        None,
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "team_membership_required")
    );
    let answer = invite(&app, &viewer, acting, "again@example.org", "viewer").await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "the viewer is an admin now: {}",
        answer.body
    );
    let removed = call(
        &app,
        Method::DELETE,
        &member_path(&admin_id),
        &owner_token,
        None,
        None,
    )
    .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let answer = call(&app, Method::GET, MEMBERS, &admin, acting, None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "team_membership_required")
    );

    // The header naming the caller is their own account; a malformed one is a 400.
    let answer = call(&app, Method::GET, MEMBERS, &owner_token, Some(owner), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["owner_id"], owner.to_string());
    let response = app
        .client
        .get(app.url(MEMBERS))
        .bearer_auth(&viewer)
        .header("Mingus-Account", "not-a-uuid")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_account_header");
}

#[tokio::test]
async fn a_lapsed_owners_team_loses_access() {
    let app = TestApp::spawn().await;
    let owner = executive(&app).await;
    let (member, _) = join(&app, owner, "admin").await;
    let member = user_token(&app, member);
    assert_eq!(
        call(&app, Method::GET, MEMBERS, &member, Some(owner), None)
            .await
            .status,
        StatusCode::OK
    );
    sqlx::query(
        "UPDATE subscriptions SET plan_tier = 'professional', plan_price = 29 WHERE user_id = $1",
    )
    .bind(owner)
    .execute(&app.db.pool)
    .await
    .unwrap();
    grant_plan(&app, owner).await;
    let redis = mingus_common::cache::connect(&app.config.redis)
        .await
        .unwrap();
    Entitlements::new(app.db.pool.clone(), redis, &app.redis_prefix)
        .invalidate(owner)
        .await
        .unwrap();
    let answer = call(&app, Method::GET, MEMBERS, &member, Some(owner), None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "team_management_required"),
        "{}",
        answer.body
    );
    assert_eq!(answer.body["error"]["reason"], "feature_not_included");
    assert_eq!(answer.body["error"]["tier"], "professional");
    // The owner can still see and clean up the team, but not invite.
    let owner_token = user_token(&app, owner);
    let listed = call(&app, Method::GET, MEMBERS, &owner_token, None, None).await;
    assert_eq!(listed.body["members"].as_array().unwrap().len(), 1);
    let answer = invite(&app, &owner_token, None, "sam@example.org", "viewer").await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "team_management_required")
    );
}

#[tokio::test]
async fn api_keys_need_the_team_scopes_and_act_only_for_their_user() {
    let app = TestApp::spawn().await;
    let owner = executive(&app).await;
    let reader = key_with(&app, owner, &["team:read"], 100).await;
    let writer = key_with(&app, owner, &["team:read", "team:write"], 100).await;
    let neither = key_with(&app, owner, &["features:read"], 100).await;

    let answer = call(&app, Method::GET, MEMBERS, &neither, None, None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    let answer = invite(&app, &reader, None, "sam@example.org", "viewer").await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    let invited = invite(&app, &writer, None, "sam@example.org", "viewer").await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    assert_eq!(invited.body["invited_by"], owner.to_string());
    let listed = call(&app, Method::GET, MEMBERS, &reader, None, None).await;
    assert_eq!(listed.body["members"].as_array().unwrap().len(), 1);

    // A member's own key cannot act for the team they belong to.
    let (member, _) = join(&app, owner, "admin").await;
    sqlx::query(
        "INSERT INTO subscriptions (user_id, plan_tier, plan_price, billing_cycle, status,
                                    current_period_start, current_period_end)
         VALUES ($1, 'executive', 99, 'monthly', 'active', now() - interval '1 day', now() + interval '29 days')",
    )
    .bind(member)
    .execute(&app.db.pool)
    .await
    .unwrap();
    grant_plan(&app, member).await;
    let member_key = key_with(&app, member, &["team:read", "team:write"], 100).await;
    let answer = call(&app, Method::GET, MEMBERS, &member_key, Some(owner), None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "user_session_required")
    );
    let answer = call(&app, Method::GET, MEMBERS, &member_key, None, None).await;
    assert_eq!(answer.status, StatusCode::OK, "its own account");
}
