//! `/v1/team/members`: invite (201, pending, e-mail queued), list, change a role, remove, resend.
//!
//! The cap (`team_members` of the owner's plan, Executive 10) counts active and pending rows. Inviting
//! takes a transaction-scoped advisory lock on the owner's team before it counts and inserts, so two
//! concurrent invitations at 9 cannot both pass; the member row, its e-mail delivery and the e-mail's
//! outbox job are one transaction, and the job is pushed after commit.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::invitations::{self, InvitationEmail, NewInvitation};
use super::{
    LIST_LIMIT, MEMBER_COLUMNS, MemberView, TeamError, member_not_found, parse_role, unprocessable,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::v1::auth::{Principal, TeamRole};
use crate::v1::db_error;
use crate::v1::extract::{JsonBody, PathParam};
use crate::v1::scopes::Scope;

const MAX_NAME_CHARS: usize = 255;
/// RFC 5321's limit on a path; the column holds 255.
const MAX_EMAIL_CHARS: usize = 254;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteMember {
    email: String,
    name: Option<String>,
    role: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    role: String,
}

/// The member row an invitation (or a re-send) wrote, and its invitation count (the e-mail's dedupe
/// generation).
#[derive(sqlx::FromRow)]
struct Invited {
    #[sqlx(flatten)]
    member: MemberView,
    invitations_sent: i32,
}

/// An address we can send to: one `@`, a local part without spaces or quoting, a dotted ASCII domain.
fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[]\\,;:\"".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    local_ok && domain_ok && email.len() <= MAX_EMAIL_CHARS
}

/// The validated invitation: what will be stored.
#[derive(Debug)]
struct Invitee {
    email: String,
    name: Option<String>,
    role: TeamRole,
}

fn validate(body: InviteMember) -> Result<Invitee, ApiError> {
    let email = body.email.trim().to_owned();
    if !valid_email(&email) {
        return Err(unprocessable(
            "invalid_email",
            "email must be an e-mail address such as name@example.com",
        ));
    }
    let name = match body.name.map(|n| n.trim().to_owned()) {
        None => None,
        Some(n) if n.is_empty() => None,
        Some(n)
            if n.chars().count() > MAX_NAME_CHARS
                || n.chars().any(crate::v1::display_text::refused) =>
        {
            return Err(unprocessable(
                "invalid_name",
                format!(
                    "name must be at most {MAX_NAME_CHARS} characters without control or bidirectional-control characters"
                ),
            ));
        }
        Some(n) => Some(n),
    };
    Ok(Invitee {
        email,
        name,
        role: parse_role(&body.role)?,
    })
}

/// `POST /v1/team/members` → 201 the pending member; the invitation e-mail is queued.
pub async fn invite(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<InviteMember>,
) -> Result<Response, TeamError> {
    principal.require(Scope::TeamWrite)?;
    let owner = principal.account(TeamRole::Admin)?;
    let invitee = validate(body)?;
    let now = Utc::now();
    let plan = super::require_team_plan(&state, owner, now).await?;
    let invitation = NewInvitation::generate(now)?;

    let mut tx = state.db.begin().await.map_err(db_error)?;
    // One invitation at a time per team: the count below stays true until commit.
    mingus_common::db::advisory_xact_lock(&mut tx, &format!("mingus:team:{owner}"))
        .await
        .map_err(db_error)?;
    let owner_email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    if owner_email.is_some_and(|e| e.eq_ignore_ascii_case(&invitee.email)) {
        return Err(ApiError::bad_request(
            "cannot_invite_self",
            "the account owner is always on the team; invite someone else",
        )
        .into());
    }
    let members: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM team_members
         WHERE team_owner_id = $1 AND status IN ('pending', 'active')",
    )
    .bind(owner)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    if let Some(limit) = plan.limit.filter(|limit| members >= *limit) {
        return Err(ApiError::conflict(
            "team_member_limit_reached",
            format!("the plan allows {limit} members (active and pending); remove one first"),
        )
        .into());
    }
    // A declined invitation is renewed in place (same member id): the address may be invited again.
    let created: Option<Invited> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO team_members (team_owner_id, member_email, member_name, role, status,
                                   invitation_token_hash, invitation_expires_at, invited_by,
                                   invitations_sent)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, 1)
         ON CONFLICT (team_owner_id, lower(member_email)) DO UPDATE
         SET member_email = EXCLUDED.member_email, member_name = EXCLUDED.member_name,
             role = EXCLUDED.role, status = 'pending',
             invitation_token_hash = EXCLUDED.invitation_token_hash,
             invitation_expires_at = EXCLUDED.invitation_expires_at, invited_by = EXCLUDED.invited_by,
             invited_at = now(), invitations_sent = team_members.invitations_sent + 1,
             member_user_id = NULL, accepted_at = NULL
         WHERE team_members.status = 'declined'
         RETURNING {MEMBER_COLUMNS}, invitations_sent"
    )))
    .bind(owner)
    .bind(&invitee.email)
    .bind(&invitee.name)
    .bind(invitee.role.as_str())
    .bind(&invitation.hash)
    .bind(invitation.expires_at)
    .bind(principal.user_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(Invited {
        member,
        invitations_sent,
    }) = created
    else {
        return Err(ApiError::conflict(
            "team_member_exists",
            "this address is already on the team (pending or active)",
        )
        .into());
    };
    let email = InvitationEmail {
        member_id: member.id,
        generation: invitations_sent,
        recipient: &invitee.email,
        role: invitee.role,
        owner_id: owner,
        inviter_id: principal.user_id,
        invitation: &invitation,
    };
    invitations::send_email(tx, &state, &email).await?;
    tracing::info!(%owner, member_id = %member.id, invited_by = %principal.user_id, "team member invited");
    Ok((StatusCode::CREATED, Json(member)).into_response())
}

/// `GET /v1/team/members` → `{"members": [...]}`, oldest invitation first. Any member may list the team.
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require(Scope::TeamRead)?;
    let owner = principal.account(TeamRole::Viewer)?;
    let members: Vec<MemberView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBER_COLUMNS} FROM team_members WHERE team_owner_id = $1
         ORDER BY invited_at, id LIMIT $2"
    )))
    .bind(owner)
    .bind(LIST_LIMIT)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    Ok(Json(json!({ "owner_id": owner, "members": members })))
}

/// `PATCH /v1/team/members/{id}` `{role}` → 200 the member.
pub async fn change_role(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<Uuid>,
    JsonBody(body): JsonBody<ChangeRole>,
) -> Result<Json<MemberView>, ApiError> {
    principal.require(Scope::TeamWrite)?;
    let owner = principal.account(TeamRole::Admin)?;
    let role = parse_role(&body.role)?;
    let updated: Option<MemberView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE team_members SET role = $3 WHERE id = $1 AND team_owner_id = $2
         RETURNING {MEMBER_COLUMNS}"
    )))
    .bind(id)
    .bind(owner)
    .bind(role.as_str())
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    let member = updated.ok_or_else(member_not_found)?;
    tracing::info!(%owner, member_id = %id, role = role.as_str(), by = %principal.user_id, "team role changed");
    Ok(Json(member))
}

/// `DELETE /v1/team/members/{id}` → 204; the member's access ends with their next call.
pub async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::TeamWrite)?;
    let owner = principal.account(TeamRole::Admin)?;
    let removed = sqlx::query("DELETE FROM team_members WHERE id = $1 AND team_owner_id = $2")
        .bind(id)
        .bind(owner)
        .execute(&state.db)
        .await
        .map_err(db_error)?;
    if removed.rows_affected() == 0 {
        return Err(member_not_found());
    }
    tracing::info!(%owner, member_id = %id, by = %principal.user_id, "team member removed");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/team/members/{id}/invitation` → 200 the member with a new token and expiry; the previous
/// token stops working and a new e-mail is queued. Only pending members.
pub async fn resend(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<Uuid>,
) -> Result<Json<MemberView>, TeamError> {
    principal.require(Scope::TeamWrite)?;
    let owner = principal.account(TeamRole::Admin)?;
    let now = Utc::now();
    super::require_team_plan(&state, owner, now).await?;
    let invitation = NewInvitation::generate(now)?;
    let mut tx = state.db.begin().await.map_err(db_error)?;
    let updated: Option<Invited> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE team_members
         SET invitation_token_hash = $3, invitation_expires_at = $4, invited_by = $5,
             invitations_sent = invitations_sent + 1
         WHERE id = $1 AND team_owner_id = $2 AND status = 'pending'
         RETURNING invitations_sent, {MEMBER_COLUMNS}"
    )))
    .bind(id)
    .bind(owner)
    .bind(&invitation.hash)
    .bind(invitation.expires_at)
    .bind(principal.user_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(Invited {
        invitations_sent,
        member,
    }) = updated
    else {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM team_members WHERE id = $1 AND team_owner_id = $2)",
        )
        .bind(id)
        .bind(owner)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        return Err(if exists {
            ApiError::conflict(
                "invitation_not_pending",
                "this member has already accepted or declined; there is nothing to resend",
            )
        } else {
            member_not_found()
        }
        .into());
    };
    let role = TeamRole::parse(&member.role)
        .ok_or_else(|| anyhow::anyhow!("team_members.role {:?} unknown", member.role))?;
    let email = InvitationEmail {
        member_id: member.id,
        generation: invitations_sent,
        recipient: &member.email,
        role,
        owner_id: owner,
        inviter_id: principal.user_id,
        invitation: &invitation,
    };
    invitations::send_email(tx, &state, &email).await?;
    tracing::info!(%owner, member_id = %id, invitations_sent, by = %principal.user_id, "team invitation resent");
    Ok(Json(member))
}
