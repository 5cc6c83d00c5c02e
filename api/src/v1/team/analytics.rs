//! Team analytics (issue 21): `GET /v1/team/analytics?from&to` for an Executive owner, over the members
//! who allowed it, and the member's switch, `GET`/`PUT /v1/team/memberships/{owner_id}/analytics-sharing`.
//!
//! **"Allowed" means** the member turned sharing on for that team (`team_members.analytics_shared_at`,
//! migration `…41`): off when invited, set only by the member themself, reset when the row is renewed by
//! a new invitation, and gone when they leave or are removed (the row is deleted). An accepted invitation
//! is not consent: the invitation is about acting on the owner's data, sharing is about the member's own.
//!
//! **Who may read**: the owner alone, with a user token (not a member acting for them — wellness data of
//! colleagues is not the team's to pass around — and not an API key, which would carry other people's
//! data into an integration), while their plan includes `team_management`. The owner's plan decides the
//! history: Executive sees the whole of it, so the window is only the request's (≤ 366 days).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{TeamError, require_team_plan};
use crate::error::ApiError;
use crate::state::AppState;
use crate::v1::analytics::{WindowParams, window};
use crate::v1::auth::Principal;
use crate::v1::db_error;
use crate::v1::extract::{JsonBody, PathParam};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sharing {
    shared: bool,
}

/// `GET /v1/team/analytics` → `{owner_id, from, to, members: [{member_id, user_id, email, name, role,
/// shared_since, summary}]}`: per sharing member, the window's totals and averages of their days.
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<Query<WindowParams>, QueryRejection>,
) -> Result<Json<Value>, TeamError> {
    principal.require_user_session()?;
    if principal.acting_for.is_some() {
        return Err(ApiError::forbidden(
            "team_owner_required",
            "only the team's owner reads its members' analytics",
        )
        .into());
    }
    let owner = principal.user_id;
    let now = Utc::now();
    let window = window(params, now.date_naive())?;
    require_team_plan(&state, owner, now).await?;
    let members: Value = sqlx::query_scalar(
        "SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'member_id', m.id, 'user_id', m.member_user_id, 'email', m.member_email,
                    'name', m.member_name, 'role', m.role, 'shared_since', m.analytics_shared_at,
                    'summary', s.summary) ORDER BY m.accepted_at, m.id), '[]'::jsonb)
         FROM team_members m
         CROSS JOIN LATERAL (
             SELECT jsonb_build_object(
                 'days_with_data', count(a.date),
                 'login_count', coalesce(sum(a.login_count), 0),
                 'session_duration_minutes', coalesce(sum(a.session_duration_minutes), 0),
                 'health_checkins_completed', coalesce(sum(a.health_checkins_completed), 0),
                 'goals_created', coalesce(sum(a.goals_created), 0),
                 'goals_completed', coalesce(sum(a.goals_completed), 0),
                 'average_stress_level', round(avg(a.average_stress_level), 2)::text,
                 'average_energy_level', round(avg(a.average_energy_level), 2)::text,
                 'average_mood_rating', round(avg(a.average_mood_rating), 2)::text,
                 'latest_financial_health_score',
                     (array_agg(a.financial_health_score ORDER BY a.date DESC)
                         FILTER (WHERE a.financial_health_score IS NOT NULL))[1]) AS summary
             FROM user_analytics a
             WHERE a.user_id = m.member_user_id AND a.date BETWEEN $2 AND $3
         ) s
         WHERE m.team_owner_id = $1 AND m.status = 'active' AND m.analytics_shared_at IS NOT NULL",
    )
    .bind(owner)
    .bind(window.from)
    .bind(window.to)
    .fetch_one(&state.db)
    .await
    .map_err(db_error)?;
    Ok(Json(json!({
        "owner_id": owner,
        "from": window.from,
        "to": window.to,
        "members": members,
    })))
}

/// `GET /v1/team/memberships/{owner_id}/analytics-sharing` → `{owner_id, shared, shared_since}`.
pub async fn sharing(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(owner): PathParam<Uuid>,
) -> Result<Json<Value>, ApiError> {
    principal.require_user_session()?;
    let since: Option<Option<chrono::DateTime<Utc>>> = sqlx::query_scalar(
        "SELECT analytics_shared_at FROM team_members
         WHERE team_owner_id = $1 AND member_user_id = $2 AND status = 'active'",
    )
    .bind(owner)
    .bind(principal.user_id)
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    let since = since.ok_or_else(not_a_member)?;
    Ok(Json(sharing_view(owner, since)))
}

/// `PUT /v1/team/memberships/{owner_id}/analytics-sharing` `{shared}` → the new state. Turning it on
/// again keeps the original `shared_since`.
pub async fn set_sharing(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(owner): PathParam<Uuid>,
    JsonBody(body): JsonBody<Sharing>,
) -> Result<Json<Value>, ApiError> {
    principal.require_user_session()?;
    let since: Option<Option<chrono::DateTime<Utc>>> = sqlx::query_scalar(
        "UPDATE team_members
         SET analytics_shared_at = CASE WHEN $3 THEN coalesce(analytics_shared_at, now()) END
         WHERE team_owner_id = $1 AND member_user_id = $2 AND status = 'active'
         RETURNING analytics_shared_at",
    )
    .bind(owner)
    .bind(principal.user_id)
    .bind(body.shared)
    .fetch_optional(&state.db)
    .await
    .map_err(db_error)?;
    let since = since.ok_or_else(not_a_member)?;
    Ok(Json(sharing_view(owner, since)))
}

fn sharing_view(owner: Uuid, since: Option<chrono::DateTime<Utc>>) -> Value {
    json!({ "owner_id": owner, "shared": since.is_some(), "shared_since": since })
}

fn not_a_member() -> ApiError {
    ApiError::client(
        StatusCode::NOT_FOUND,
        "not_found",
        "the caller is not an active member of that team",
    )
}
