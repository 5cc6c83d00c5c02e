//! Acting for a team owner: `Mingus-Account: <the owner's user id>` on any `/v1` call.
//!
//! [`super::auth::guard`] calls [`acting_for`] after authentication and the rate limits (so the call
//! counts against the caller's own buckets, and a flood of bad headers is limited like any other
//! call). Without the header, or when it names the caller, the call works on the caller's own account.
//! Otherwise:
//!
//! - the value must be a UUID (400 `invalid_account_header`);
//! - the credential must be a user token: an API key acts only for its own user (403
//!   `user_session_required`), since a key has no member of its own and would otherwise carry its
//!   owner's memberships into every integration;
//! - the caller must be an `active` member of that owner's team (403 `team_membership_required`; the
//!   same answer whether the owner exists or not, so ids reveal nothing);
//! - the owner must still have `team_management` (403 `team_management_required` with the entitlement's
//!   `reason` and `tier`): a lapsed Executive's team loses access at once (within the entitlement
//!   cache's invalidation).
//!
//! The membership is read on every call (one indexed look-up): a removed member or a changed role takes
//! effect with the next request.

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::auth::{Membership, Principal, TeamRole};
use crate::error::ApiError;
use crate::state::AppState;

/// The request header naming the team owner whose account a call acts on.
pub const ACCOUNT_HEADER: &str = "mingus-account";

fn invalid_header() -> ApiError {
    ApiError::bad_request(
        "invalid_account_header",
        "Mingus-Account must be one user id (a UUID)",
    )
}

/// The owner id named by the header, if any.
fn named_owner(headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    let mut values = headers.get_all(ACCOUNT_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid_header());
    }
    let owner = value
        .to_str()
        .ok()
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
        .ok_or_else(invalid_header)?;
    Ok(Some(owner))
}

/// The membership the call acts with (`None`: the caller's own account), or the refusal to answer.
pub async fn acting_for(
    state: &AppState,
    headers: &HeaderMap,
    principal: &Principal,
    now: DateTime<Utc>,
) -> Result<Option<Membership>, Response> {
    resolve(state, headers, principal, now)
        .await
        .map_err(IntoResponse::into_response)
}

async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    principal: &Principal,
    now: DateTime<Utc>,
) -> Result<Option<Membership>, super::team::TeamError> {
    let Some(owner_id) = named_owner(headers)? else {
        return Ok(None);
    };
    if owner_id == principal.user_id {
        return Ok(None);
    }
    principal.require_user_session()?;
    let role: Option<String> = sqlx::query_scalar(
        "SELECT role FROM team_members
         WHERE team_owner_id = $1 AND member_user_id = $2 AND status = 'active'",
    )
    .bind(owner_id)
    .bind(principal.user_id)
    .fetch_optional(&state.db)
    .await
    .map_err(super::db_error)?;
    let role = role.as_deref().and_then(TeamRole::parse).ok_or_else(|| {
        ApiError::forbidden(
            "team_membership_required",
            "you are not an active member of that account's team",
        )
    })?;
    super::team::require_team_plan(state, owner_id, now).await?;
    Ok(Some(Membership { owner_id, role }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_header_names_one_uuid_or_nothing() {
        let id = Uuid::new_v4();
        let mut headers = HeaderMap::new();
        assert_eq!(named_owner(&headers).unwrap(), None);
        headers.insert(
            ACCOUNT_HEADER,
            HeaderValue::from_str(&format!(" {id} ")).unwrap(),
        );
        assert_eq!(named_owner(&headers).unwrap(), Some(id));
        headers.append(ACCOUNT_HEADER, HeaderValue::from_static("x"));
        assert!(named_owner(&headers).is_err());
        for bad in ["", "not-a-uuid", "123"] {
            let mut headers = HeaderMap::new();
            headers.insert(ACCOUNT_HEADER, HeaderValue::from_static(bad));
            assert!(named_owner(&headers).is_err(), "{bad:?}");
        }
    }
}
