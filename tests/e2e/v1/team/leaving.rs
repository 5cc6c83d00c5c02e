//! The member's side: declining an invitation (once; the owner may invite the address again, the same
//! row renewed), listing the teams one belongs to, and leaving one.

use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::executive;
use super::{accept, call, email_of, invite, token_of};

async fn decline(app: &TestApp, credential: &str, token: &str) -> super::Answer {
    let path = format!("/v1/team/invitations/{token}/decline");
    call(app, Method::POST, &path, credential, None, None).await
}

async fn member_row(app: &TestApp, id: &str) -> (String, Option<Uuid>, i32) {
    sqlx::query_as(
        "SELECT status, member_user_id, invitations_sent FROM team_members WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_invitee_declines_once_and_the_owner_may_invite_the_address_again() {
    let app = TestApp::spawn().await;
    let owner = executive(&app).await;
    let owner_token = user_token(&app, owner);
    let invitee = crate::fixtures::user(&app.db.pool).await;
    let invitee_token = user_token(&app, invitee);
    let invited = invite(&app, &owner_token, None, &email_of(invitee), "viewer").await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let id = invited.body["id"].as_str().unwrap().to_owned();
    let first = token_of(&app, &id).await;

    // Only the invited address may decline; a refusal changes nothing.
    let stranger = crate::fixtures::user(&app.db.pool).await;
    let refused = decline(&app, &user_token(&app, stranger), &first).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "invitation_email_mismatch")
    );
    assert_eq!(member_row(&app, &id).await.0, "pending");

    let declined = decline(&app, &invitee_token, &first).await;
    assert_eq!(declined.status, StatusCode::OK, "{}", declined.body);
    assert_eq!(declined.body["id"], id.as_str());
    assert_eq!(declined.body["status"], "declined");
    assert!(declined.body["user_id"].is_null() && declined.body["accepted_at"].is_null());
    assert!(declined.body["invitation_expires_at"].is_null());
    for answer in [
        decline(&app, &invitee_token, &first).await,
        accept(&app, &invitee_token, &first).await,
    ] {
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::GONE, "invitation_declined")
        );
    }
    let listed = call(
        &app,
        Method::GET,
        "/v1/team/members",
        &owner_token,
        None,
        None,
    )
    .await;
    assert_eq!(listed.body["members"][0]["status"], "declined");
    let resend_path = format!("/v1/team/members/{id}/invitation");
    let resent = call(&app, Method::POST, &resend_path, &owner_token, None, None).await;
    assert_eq!(
        (resent.status, resent.code()),
        (StatusCode::CONFLICT, "invitation_not_pending")
    );

    // Invited again: the same row, pending with the new role, a new token and a second e-mail.
    let again = invite(&app, &owner_token, None, &email_of(invitee), "editor").await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(
        (&again.body["status"], &again.body["role"]),
        (&json!("pending"), &json!("editor"))
    );
    assert_eq!(member_row(&app, &id).await, ("pending".into(), None, 2));
    let second = token_of(&app, &id).await;
    assert_ne!(second, first);
    let old = accept(&app, &invitee_token, &first).await;
    assert_eq!(
        (old.status, old.code()),
        (StatusCode::NOT_FOUND, "invitation_not_found")
    );
    let accepted = accept(&app, &invitee_token, &second).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(
        (&accepted.body["status"], &accepted.body["role"]),
        (&json!("active"), &json!("editor"))
    );
    // An active member is not renewed by an invitation.
    let duplicate = invite(&app, &owner_token, None, &email_of(invitee), "admin").await;
    assert_eq!(
        (duplicate.status, duplicate.code()),
        (StatusCode::CONFLICT, "team_member_exists")
    );
    assert_eq!(
        member_row(&app, &id).await,
        ("active".into(), Some(invitee), 2)
    );
}

/// `owner` invites `user` as `role` and `user` accepts.
async fn join_team(app: &TestApp, owner: Uuid, user: Uuid, role: &str) {
    let invited = invite(app, &user_token(app, owner), None, &email_of(user), role).await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let token = token_of(app, invited.body["id"].as_str().unwrap()).await;
    let accepted = accept(app, &user_token(app, user), &token).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
}

async fn memberships(app: &TestApp, credential: &str) -> Vec<(String, String)> {
    let listed = call(
        app,
        Method::GET,
        "/v1/team/memberships",
        credential,
        None,
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    listed.body["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m: &Value| {
            assert_eq!(m["status"], "active");
            (
                m["owner_id"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The team list of `owner`, called by `member` acting for them.
async fn acting(app: &TestApp, member: &str, owner: Uuid) -> super::Answer {
    call(
        app,
        Method::GET,
        "/v1/team/members",
        member,
        Some(owner),
        None,
    )
    .await
}

async fn leave(app: &TestApp, credential: &str, owner: &str) -> super::Answer {
    let path = format!("/v1/team/memberships/{owner}");
    call(app, Method::DELETE, &path, credential, None, None).await
}

#[tokio::test]
async fn a_member_lists_their_teams_and_leaves_one() {
    let app = TestApp::spawn().await;
    let (first, second) = (executive(&app).await, executive(&app).await);
    let member = crate::fixtures::user(&app.db.pool).await;
    let member_token = user_token(&app, member);
    assert!(memberships(&app, &member_token).await.is_empty());
    join_team(&app, first, member, "viewer").await;
    join_team(&app, second, member, "admin").await;
    // A pending invitation is not a membership, and cannot be left.
    let pending = crate::fixtures::user(&app.db.pool).await;
    let invited = invite(
        &app,
        &user_token(&app, first),
        None,
        &email_of(pending),
        "viewer",
    )
    .await;
    assert_eq!(invited.status, StatusCode::CREATED);
    assert!(
        memberships(&app, &user_token(&app, pending))
            .await
            .is_empty()
    );

    assert_eq!(
        memberships(&app, &member_token).await,
        vec![
            (first.to_string(), "viewer".to_owned()),
            (second.to_string(), "admin".to_owned())
        ]
    );
    assert_eq!(
        acting(&app, &member_token, first).await.status,
        StatusCode::OK
    );

    let left = leave(&app, &member_token, &first.to_string()).await;
    assert_eq!(left.status, StatusCode::NO_CONTENT, "{}", left.body);
    assert_eq!(
        memberships(&app, &member_token).await,
        vec![(second.to_string(), "admin".to_owned())]
    );
    let refused = acting(&app, &member_token, first).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "team_membership_required")
    );
    assert_eq!(
        acting(&app, &member_token, second).await.status,
        StatusCode::OK
    );
    let listed = call(
        &app,
        Method::GET,
        "/v1/team/members",
        &user_token(&app, first),
        None,
        None,
    )
    .await;
    let emails: Vec<&str> = listed.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        vec![email_of(pending).as_str()],
        "the member's row is gone"
    );

    // Leaving again, a pending invitee, the owner of their own team, a bad id, an API key: refused.
    for (credential, owner, status, code) in [
        (
            member_token.clone(),
            first.to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            user_token(&app, pending),
            first.to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            user_token(&app, first),
            first.to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            member_token.clone(),
            "not-a-uuid".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
    ] {
        let answer = leave(&app, &credential, &owner).await;
        assert_eq!((answer.status, answer.code()), (status, code));
    }
    let key = super::super::key_with(&app, second, &["team:read", "team:write"], 100).await;
    for answer in [
        leave(&app, &key, &first.to_string()).await,
        call(&app, Method::GET, "/v1/team/memberships", &key, None, None).await,
    ] {
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::FORBIDDEN, "user_session_required")
        );
    }
    assert_eq!(memberships(&app, &member_token).await.len(), 1);
}
