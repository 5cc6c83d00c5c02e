//! Inviting (pending row + e-mail + token, only its hash stored), accepting once, resending, expiry,
//! the invited address, the plan gate, duplicates and the member cap under concurrency.

use mingus_common::email::Template;
use mingus_common::email::templates::{RenderInput, render};
use mingus_tests::TestApp;
use mingus_tests::frontend::user_token;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{executive, user_on};
use super::{accept, call, count, email_of, invite, token_of};

#[tokio::test]
async fn an_invitation_is_a_pending_row_an_email_and_a_single_use_token() {
    let app = TestApp::spawn().await;
    let owner = executive(&app).await;
    let owner_token = user_token(&app, owner);
    let invitee = crate::fixtures::user(&app.db.pool).await;
    let created = call(
        &app,
        Method::POST,
        "/v1/team/members",
        &owner_token,
        None,
        Some(json!({"email": email_of(invitee), "name": " Pat Doe ", "role": "editor"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let member = &created.body;
    let id = member["id"].as_str().unwrap().to_owned();
    assert_eq!(member["owner_id"], owner.to_string());
    assert_eq!(member["email"], email_of(invitee));
    assert_eq!(member["name"], "Pat Doe");
    assert_eq!(
        (&member["role"], &member["status"]),
        (&json!("editor"), &json!("pending"))
    );
    assert!(member["user_id"].is_null() && member["accepted_at"].is_null());
    assert_eq!(member["invited_by"], owner.to_string());
    let expires: chrono::DateTime<chrono::Utc> = member["invitation_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let days = (expires - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "expires in {days} h");
    assert!(!member.to_string().contains("hash"));

    // One e-mail, to the invitee, with its job staged; the token is in its link, only its hash in the row.
    let dedupe_key = format!("team_invitation:{id}:1");
    let (recipient, user_id, status, data, staged): (String, Option<Uuid>, String, Value, bool) =
        sqlx::query_as(
            "SELECT recipient, user_id, status, data,
                    EXISTS (SELECT 1 FROM job_outbox o WHERE o.job_id = d.id)
             FROM email_deliveries d WHERE template = 'team_invitation' AND dedupe_key = $1",
        )
        .bind(&dedupe_key)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        (recipient.as_str(), user_id, status.as_str(), staged),
        (email_of(invitee).as_str(), None, "queued", true)
    );
    assert_eq!(data["inviter_name"], "Test User");
    assert_eq!(data["team_name"], "Test User's team");
    assert_eq!(data["role"], "editor");
    let token = token_of(&app, &id).await;
    assert_eq!(token.len(), 43, "{token}");
    let url = data["accept_url"].as_str().unwrap();
    assert!(url.starts_with(&app.config.email.app_url), "{url}");
    let (hash, row): (String, String) = sqlx::query_as(
        "SELECT invitation_token_hash, row_to_json(t)::text FROM team_members t WHERE id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let expected: String =
        sqlx::query_scalar("SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')")
            .bind(&token)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(hash, expected);
    assert!(!row.contains(&token), "the member row holds the token");
    // The e-mail renders with this data (the template's keys are all there) and carries the link.
    let rendered = render(&RenderInput {
        template: Template::TeamInvitation,
        data: &data,
        first_name: None,
        timezone: None,
        app_url: &app.config.email.app_url,
        unsubscribe_url: None,
    })
    .expect("the invitation renders");
    assert_eq!(
        rendered.subject,
        "Test User invited you to Test User's team on Mingus"
    );
    assert!(rendered.text.contains(url) && rendered.text.contains("as editor"));

    // The invitee accepts once; the token then answers 410, an unknown one 404.
    let invitee_token = user_token(&app, invitee);
    let accepted = accept(&app, &invitee_token, &token).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["status"], "active");
    assert_eq!(accepted.body["user_id"], invitee.to_string());
    assert!(accepted.body["accepted_at"].is_string());
    let again = accept(&app, &invitee_token, &token).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::GONE, "invitation_used")
    );
    let unknown = accept(&app, &invitee_token, &"A".repeat(43)).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "invitation_not_found")
    );
    let listed = call(
        &app,
        Method::GET,
        "/v1/team/members",
        &owner_token,
        None,
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["owner_id"], owner.to_string());
    assert_eq!(listed.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["members"][0]["status"], "active");
}

#[tokio::test]
async fn accepting_needs_the_invited_address_an_open_invitation_and_a_user_token() {
    let app = TestApp::spawn().await;
    let owner = executive(&app).await;
    let owner_token = user_token(&app, owner);
    let invitee = crate::fixtures::user(&app.db.pool).await;
    // The address matches case-insensitively.
    let created = invite(
        &app,
        &owner_token,
        None,
        &email_of(invitee).to_uppercase(),
        "viewer",
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let first = token_of(&app, &id).await;

    let stranger = crate::fixtures::user(&app.db.pool).await;
    let answer = accept(&app, &user_token(&app, stranger), &first).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "invitation_email_mismatch")
    );
    let answer = accept(&app, &owner_token, &first).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "cannot_accept_own_invitation")
    );
    let owner_key = super::super::key_with(&app, owner, &["team:read", "team:write"], 100).await;
    let answer = accept(&app, &owner_key, &first).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::FORBIDDEN, "user_session_required")
    );

    // Expired → 410; a resend mints a new token (the old one is gone) and a second e-mail.
    sqlx::query("UPDATE team_members SET invitation_expires_at = now() - interval '1 minute' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let invitee_token = user_token(&app, invitee);
    let answer = accept(&app, &invitee_token, &first).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::GONE, "invitation_expired")
    );
    let path = format!("/v1/team/members/{id}/invitation");
    let resent = call(&app, Method::POST, &path, &owner_token, None, None).await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.body);
    assert_eq!(resent.body["status"], "pending");
    let second = token_of(&app, &id).await;
    assert_ne!(first, second);
    let deliveries = count(
        &app,
        "SELECT count(*) FROM email_deliveries WHERE template = 'team_invitation'",
    )
    .await;
    assert_eq!(deliveries, 2);
    let answer = accept(&app, &invitee_token, &first).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::NOT_FOUND, "invitation_not_found")
    );
    let answer = accept(&app, &invitee_token, &second).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // Nothing to resend once accepted.
    let resent = call(&app, Method::POST, &path, &owner_token, None, None).await;
    assert_eq!(
        (resent.status, resent.code()),
        (StatusCode::CONFLICT, "invitation_not_pending")
    );
    // A removed member's token is gone with the row.
    let removed = call(
        &app,
        Method::DELETE,
        &format!("/v1/team/members/{id}"),
        &owner_token,
        None,
        None,
    )
    .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let answer = accept(&app, &invitee_token, &second).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::NOT_FOUND, "invitation_not_found")
    );
}

#[tokio::test]
async fn only_executive_owners_invite_once_per_address_and_never_themselves() {
    let app = TestApp::spawn().await;
    for (tier, reason) in [
        (None, "no_active_subscription"),
        (Some("essentials"), "feature_not_included"),
        (Some("professional"), "feature_not_included"),
    ] {
        let user = user_on(&app, tier).await;
        let answer = invite(
            &app,
            &user_token(&app, user),
            None,
            "sam@example.org",
            "viewer",
        )
        .await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::FORBIDDEN, "team_management_required"),
            "{tier:?}"
        );
        assert_eq!(answer.body["error"]["reason"], reason, "{tier:?}");
        assert_eq!(answer.body["error"]["tier"], json!(tier), "{tier:?}");
    }
    assert_eq!(count(&app, "SELECT count(*) FROM team_members").await, 0);
    assert_eq!(
        count(&app, "SELECT count(*) FROM email_deliveries").await,
        0
    );

    let owner = executive(&app).await;
    let token = user_token(&app, owner);
    assert_eq!(
        invite(&app, &token, None, "sam@example.org", "viewer")
            .await
            .status,
        StatusCode::CREATED
    );
    let answer = invite(&app, &token, None, " SAM@Example.org ", "admin").await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::CONFLICT, "team_member_exists")
    );
    let answer = invite(&app, &token, None, &email_of(owner).to_uppercase(), "admin").await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "cannot_invite_self")
    );
    assert_eq!(count(&app, "SELECT count(*) FROM team_members").await, 1);
    assert_eq!(
        count(&app, "SELECT count(*) FROM email_deliveries").await,
        1
    );
}

#[tokio::test]
async fn the_cap_counts_active_and_pending_members_and_holds_under_concurrency() {
    let app = TestApp::spawn().await;
    let owner = executive(&app).await;
    let token = user_token(&app, owner);
    // 9 members, one of them active.
    let (_, _) = super::join(&app, owner, "viewer").await;
    for n in 1..9 {
        let answer = invite(&app, &token, None, &format!("m{n}@example.org"), "viewer").await;
        assert_eq!(answer.status, StatusCode::CREATED, "{n}: {}", answer.body);
    }
    // Five concurrent invitations at 9: exactly one gets the 10th seat.
    let emails: Vec<String> = (0..5).map(|n| format!("race{n}@example.org")).collect();
    let race = |n: usize| invite(&app, &token, None, &emails[n], "viewer");
    let (a, b, c, d, e) = tokio::join!(race(0), race(1), race(2), race(3), race(4));
    let answers = [a, b, c, d, e];
    let created = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        1,
        "{:?}",
        answers.iter().map(|a| a.body.clone()).collect::<Vec<_>>()
    );
    for answer in answers.iter().filter(|a| a.status != StatusCode::CREATED) {
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::CONFLICT, "team_member_limit_reached")
        );
    }
    assert_eq!(count(&app, "SELECT count(*) FROM team_members").await, 10);
    assert_eq!(
        count(&app, "SELECT count(*) FROM email_deliveries").await,
        10
    );
    // A removed member frees a seat.
    let listed = call(&app, Method::GET, "/v1/team/members", &token, None, None).await;
    let id = listed.body["members"][3]["id"].as_str().unwrap().to_owned();
    let removed = call(
        &app,
        Method::DELETE,
        &format!("/v1/team/members/{id}"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        invite(&app, &token, None, "late@example.org", "viewer")
            .await
            .status,
        StatusCode::CREATED
    );
    let answer = invite(&app, &token, None, "later@example.org", "viewer").await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::CONFLICT, "team_member_limit_reached")
    );
}
