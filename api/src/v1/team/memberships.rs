//! The caller's own side of teams: `GET /v1/team/memberships` (the teams they belong to) and
//! `DELETE /v1/team/memberships/{owner_id}` (leave one). User tokens only: an API key acts for its own
//! user's data and carries no memberships.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::{LIST_LIMIT, MEMBER_COLUMNS, MemberView};
use crate::error::ApiError;
use crate::state::AppState;
use crate::v1::auth::Principal;
use crate::v1::db_error;
use crate::v1::extract::PathParam;

/// `GET /v1/team/memberships` → `{"memberships": [member…]}`: the caller's active memberships, the
/// oldest first (each carries `owner_id`, the value for the `Mingus-Account` header, and the role).
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require_user_session()?;
    let memberships: Vec<MemberView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBER_COLUMNS} FROM team_members
         WHERE member_user_id = $1 AND status = 'active'
         ORDER BY accepted_at, id LIMIT $2"
    )))
    .bind(principal.user_id)
    .bind(LIST_LIMIT)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    Ok(Json(json!({ "memberships": memberships })))
}

/// `DELETE /v1/team/memberships/{owner_id}` → 204: the caller leaves that team (the row is deleted, as
/// when an admin removes them; the owner may invite the address again). Their access ends with their
/// next call. Not a member of that team → 404 `not_found`.
pub async fn leave(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(owner): PathParam<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.require_user_session()?;
    let left: Option<Uuid> = sqlx::query_scalar(
        "DELETE FROM team_members
         WHERE team_owner_id = $1 AND member_user_id = $2 AND status = 'active'
         RETURNING id",
    )
    .bind(owner)
    .bind(principal.user_id)
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    let Some(member_id) = left else {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "not_found",
            "you are not a member of this team",
        ));
    };
    tracing::info!(%owner, %member_id, user_id = %principal.user_id, "team member left");
    Ok(StatusCode::NO_CONTENT)
}
