//! Team members of an Executive account, `/v1/team/…`.
//!
//! | route | who | scope |
//! |---|---|---|
//! | `POST /v1/team/members` | the owner, or an admin acting for them | `team:write` |
//! | `GET /v1/team/members` | the owner, or any member acting for them | `team:read` |
//! | `PATCH /v1/team/members/{id}` | the owner or an admin | `team:write` |
//! | `DELETE /v1/team/members/{id}` | the owner or an admin | `team:write` |
//! | `POST /v1/team/members/{id}/invitation` (resend) | the owner or an admin | `team:write` |
//! | `POST /v1/team/invitations/{token}/accept` | the invited user (user token only) | — |
//! | `POST /v1/team/invitations/{token}/decline` | the invited user (user token only) | — |
//! | `GET /v1/team/memberships` | any user: the teams they belong to (user token only) | — |
//! | `DELETE /v1/team/memberships/{owner_id}` | a member leaving (user token only) | — |
//! | `GET`/`PUT /v1/team/memberships/{owner_id}/analytics-sharing` | a member: share their analytics with the owner | — |
//! | `GET /v1/team/analytics` | the owner (user token only): sharing members' analytics | — |
//!
//! "Acting for" the owner is the `Mingus-Account` header ([`super::membership`]); the account a call works
//! on is `principal.account(role)`. Inviting and resending need the owner's `team_management` (Executive)
//! and count against its `team_members` cap (active + pending rows); listing, changing roles and removing
//! do not need the plan, so an owner who downgraded can still see and clean up the team.

pub mod analytics;
pub mod invitations;
pub mod members;
pub mod memberships;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use mingus_common::entitlements::FeatureCheck;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::auth::TeamRole;
use crate::error::ApiError;
use crate::state::AppState;

/// Rows in a team listing at most: more than any plan allows today; bounds a listing if a grant makes
/// the cap unlimited.
const LIST_LIMIT: i64 = 500;

/// The feature that allows a team; its metric `team_members` caps the members.
pub const TEAM_MANAGEMENT: &str = "team_management";

impl TeamRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            TeamRole::Viewer => "viewer",
            TeamRole::Editor => "editor",
            TeamRole::Admin => "admin",
        }
    }

    /// The role stored in `team_members.role` (and accepted in request bodies).
    pub fn parse(raw: &str) -> Option<TeamRole> {
        [TeamRole::Viewer, TeamRole::Editor, TeamRole::Admin]
            .into_iter()
            .find(|role| role.as_str() == raw)
    }
}

/// A team member as every team route answers it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct MemberView {
    id: Uuid,
    #[sqlx(rename = "team_owner_id")]
    owner_id: Uuid,
    #[sqlx(rename = "member_email")]
    email: String,
    #[sqlx(rename = "member_name")]
    name: Option<String>,
    role: String,
    status: String,
    /// The member's own account, once they accepted.
    #[sqlx(rename = "member_user_id")]
    user_id: Option<Uuid>,
    invited_at: DateTime<Utc>,
    invited_by: Option<Uuid>,
    invitation_expires_at: Option<DateTime<Utc>>,
    accepted_at: Option<DateTime<Utc>>,
}

/// The columns of [`MemberView`] (the token hash is never among them).
pub const MEMBER_COLUMNS: &str = "id, team_owner_id, member_email, member_name, role, status, \
                                  member_user_id, invited_at, invited_by, invitation_expires_at, \
                                  accepted_at";

/// A team route's error: an [`ApiError`], or a refusal by the owner's plan, which carries the
/// entitlement's `reason` and `tier` like `api_access_required` does.
#[derive(Debug)]
pub enum TeamError {
    Api(ApiError),
    Plan(FeatureCheck),
}

impl From<ApiError> for TeamError {
    fn from(err: ApiError) -> Self {
        TeamError::Api(err)
    }
}

impl From<anyhow::Error> for TeamError {
    fn from(err: anyhow::Error) -> Self {
        TeamError::Api(ApiError::Internal(err))
    }
}

impl IntoResponse for TeamError {
    fn into_response(self) -> Response {
        match self {
            TeamError::Api(err) => err.into_response(),
            TeamError::Plan(check) => plan_refusal(&check),
        }
    }
}

/// 403 `team_management_required` with the owner's entitlement `reason` and `tier`.
pub fn plan_refusal(check: &FeatureCheck) -> Response {
    let mut error = json!({
        "code": "team_management_required",
        "message": "the account owner's plan does not include team management (Executive)",
    });
    error
        .as_object_mut()
        .expect("object")
        .extend(super::check_details(check));
    (StatusCode::FORBIDDEN, Json(json!({ "error": error }))).into_response()
}

/// The owner's `team_management` check; refused → [`TeamError::Plan`].
pub async fn require_team_plan(
    state: &AppState,
    owner: Uuid,
    now: DateTime<Utc>,
) -> Result<FeatureCheck, TeamError> {
    let check = state
        .entitlements
        .check(owner, TEAM_MANAGEMENT, now)
        .await
        .map_err(super::dependency_error)?;
    if check.access {
        Ok(check)
    } else {
        Err(TeamError::Plan(check))
    }
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::unprocessable(code, message)
}

/// A role named in a request body → 422 `invalid_role` when unknown.
pub fn parse_role(raw: &str) -> Result<TeamRole, ApiError> {
    TeamRole::parse(raw).ok_or_else(|| {
        unprocessable(
            "invalid_role",
            format!("unknown role {raw:?}; roles are: viewer, editor, admin"),
        )
    })
}

fn member_not_found() -> ApiError {
    ApiError::client(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such member in this team",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_are_ordered() {
        for role in [TeamRole::Viewer, TeamRole::Editor, TeamRole::Admin] {
            assert_eq!(TeamRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(TeamRole::parse("Admin"), None);
        assert_eq!(TeamRole::parse("owner"), None);
        assert!(TeamRole::Viewer < TeamRole::Editor && TeamRole::Editor < TeamRole::Admin);
        assert!(matches!(
            parse_role("root"),
            Err(ApiError::Client {
                code: "invalid_role",
                ..
            })
        ));
    }
}
