//! Invitation tokens, the invitation e-mail, and answering an invitation:
//! `POST /v1/team/invitations/{token}/accept` and `…/decline`.
//!
//! A token is 32 bytes from the OS random source, base64url without padding (43 characters). Only its
//! SHA-256 (hex) is stored, in `team_members.invitation_token_hash`; the token itself is written only
//! into the invitation e-mail's data (the accept link). Accepting is one `UPDATE` guarded by
//! `status = 'pending'` and the expiry, so of two concurrent accepts exactly one wins, and the hash is kept
//! after acceptance so a second use answers 410 `invitation_used` rather than 404. Declining is the same
//! guarded `UPDATE` to `declined` (then 410 `invitation_declined`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use mingus_common::email::Template;
use mingus_common::email::deliveries::{self, NewDelivery, Queued};
use mingus_common::jobs::Envelope;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{MEMBER_COLUMNS, MemberView};
use crate::error::ApiError;
use crate::state::AppState;
use crate::v1::auth::{Principal, TeamRole};
use crate::v1::extract::PathParam;
use crate::v1::keys;

/// How long an invitation can be accepted.
pub const INVITATION_TTL_DAYS: i64 = 7;
const TOKEN_BYTES: usize = 32;
/// base64url of 32 bytes without padding.
const TOKEN_CHARS: usize = 43;

/// A fresh invitation: the token for the e-mail, what is stored, and until when it is valid.
pub struct NewInvitation {
    pub token: String,
    pub hash: String,
    pub expires_at: DateTime<Utc>,
}

impl NewInvitation {
    pub fn generate(now: DateTime<Utc>) -> Result<Self, ApiError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        Ok(Self {
            hash: keys::hash(&token),
            token,
            expires_at: now + Duration::days(INVITATION_TTL_DAYS),
        })
    }
}

/// Whether `presented` has the shape of a token (checked before any database read).
fn well_formed(presented: &str) -> bool {
    presented.len() == TOKEN_CHARS
        && presented
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the invitation e-mail says and where it goes.
pub struct InvitationEmail<'a> {
    pub member_id: Uuid,
    /// `team_members.invitations_sent` after this invitation: one e-mail per (member, invitation).
    pub generation: i32,
    pub recipient: &'a str,
    pub role: TeamRole,
    pub owner_id: Uuid,
    pub inviter_id: Uuid,
    pub invitation: &'a NewInvitation,
}

/// Queues the invitation e-mail in `tx`, commits it (with whatever the caller wrote), and pushes the
/// e-mail's job; the outbox sweep pushes it later if Redis is down.
pub async fn send_email(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    state: &AppState,
    email: &InvitationEmail<'_>,
) -> Result<(), ApiError> {
    let envelope = queue_email(&mut tx, state, email).await?;
    tx.commit().await.map_err(crate::v1::db_error)?;
    if let Some(envelope) = envelope {
        mingus_common::jobs::outbox::push_after_commit(&state.db, &state.enqueuer, &[envelope])
            .await;
    }
    Ok(())
}

/// Queues the invitation e-mail in the caller's transaction; returns the job to push after commit.
async fn queue_email(
    conn: &mut PgConnection,
    state: &AppState,
    email: &InvitationEmail<'_>,
) -> Result<Option<Envelope>, ApiError> {
    // A person is named by their full name, else their address.
    let names: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, coalesce(nullif(trim(full_name), ''), email) FROM users WHERE id = ANY($1)",
    )
    .bind(vec![email.owner_id, email.inviter_id])
    .fetch_all(&mut *conn)
    .await
    .map_err(crate::v1::db_error)?;
    let name_of = |id: Uuid| {
        names
            .iter()
            .find(|(user, _)| *user == id)
            .map_or_else(|| "A Mingus user".to_owned(), |(_, name)| name.clone())
    };
    let app_url = state.config.email.app_url.trim_end_matches('/');
    let delivery = NewDelivery {
        // The invitee may have no account: the e-mail goes to the address, and greets "there".
        user_id: None,
        recipient: Some(email.recipient.to_owned()),
        template: Template::TeamInvitation,
        data: json!({
            "inviter_name": name_of(email.inviter_id),
            "team_name": format!("{}'s team", name_of(email.owner_id)),
            "role": email.role.as_str(),
            "accept_url": format!("{app_url}/team/invitations/accept?token={}", email.invitation.token),
            "expires_at": email.invitation.expires_at.to_rfc3339(),
        }),
        dedupe_key: format!("team_invitation:{}:{}", email.member_id, email.generation),
        scheduled_for: Utc::now(),
    };
    let queued = deliveries::queue(conn, &delivery)
        .await
        .map_err(crate::v1::db_error)?;
    if !queued.inserted() {
        // The key names this very invitation, written in this transaction: cannot exist yet.
        return Err(anyhow::anyhow!("invitation e-mail not queued: {queued:?}").into());
    }
    Ok(match queued {
        Queued::Staged(envelope) => Some(envelope),
        _ => None,
    })
}

fn gone(code: &'static str, message: &str) -> ApiError {
    ApiError::client(StatusCode::GONE, code, message)
}

fn invitation_not_found() -> ApiError {
    ApiError::client(
        StatusCode::NOT_FOUND,
        "invitation_not_found",
        "no such invitation (it may have been replaced by a newer one, or withdrawn)",
    )
}

/// Answers the pending, unexpired invitation `{token}` addressed to the caller's e-mail (not the owner's
/// own) with `set` (SQL assignments; `$2` is the caller) in one guarded `UPDATE`: of concurrent answers to
/// one invitation exactly one wins. Nothing matched → the reason from [`refusal`]. `answered` names the
/// outcome in the log.
async fn answer(
    state: &AppState,
    principal: &Principal,
    token: &str,
    set: &str,
    answered: &str,
) -> Result<Json<MemberView>, ApiError> {
    let hash = token_hash(principal, token)?;
    let user = principal.user_id;
    let member: Option<MemberView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE team_members SET {set}
         WHERE invitation_token_hash = $1 AND status = 'pending'
           AND invitation_expires_at > now() AND team_owner_id <> $2
           AND lower(member_email) = (SELECT lower(email) FROM users WHERE id = $2)
         RETURNING {MEMBER_COLUMNS}"
    )))
    .bind(&hash)
    .bind(user)
    .fetch_optional(&state.db)
    .await
    .map_err(|err| match err {
        // Only an accept sets the member's account: it is already on the team under another address.
        sqlx::Error::Database(err) if err.constraint() == Some("idx_team_members_owner_member") => {
            ApiError::conflict(
                "already_a_member",
                "your account is already a member of this team",
            )
        }
        err => crate::v1::db_error(err),
    })?;
    let Some(member) = member else {
        return Err(refusal(state, &hash, user).await?);
    };
    tracing::info!(member_id = %member.id, user_id = %user, "team invitation {answered}");
    Ok(Json(member))
}

/// Hashes a presented token; a malformed one is refused before any database read.
fn token_hash(principal: &Principal, token: &str) -> Result<String, ApiError> {
    principal.require_user_session()?;
    if !well_formed(token) {
        return Err(invitation_not_found());
    }
    Ok(keys::hash(token))
}

/// `POST /v1/team/invitations/{token}/accept` (user token only): the caller becomes an active member.
/// Their account's e-mail must be the invited address (case-insensitive).
pub async fn accept(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(token): PathParam<String>,
) -> Result<Json<MemberView>, ApiError> {
    let set = "member_user_id = $2, status = 'active', accepted_at = now(), \
               invitation_expires_at = NULL";
    answer(&state, &principal, &token, set, "accepted").await
}

/// `POST /v1/team/invitations/{token}/decline` (user token only, the invited address): the invitation
/// ends `declined`; the owner sees it so in the team list and may invite the address again.
pub async fn decline(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(token): PathParam<String>,
) -> Result<Json<MemberView>, ApiError> {
    let set = "status = 'declined', invitation_expires_at = NULL";
    answer(&state, &principal, &token, set, "declined").await
}

/// Why an invitation could not be answered, from its row as it is now.
async fn refusal(state: &AppState, hash: &str, user: Uuid) -> Result<ApiError, ApiError> {
    let row: Option<(String, Option<DateTime<Utc>>, Uuid, bool)> = sqlx::query_as(
        "SELECT status, invitation_expires_at, team_owner_id,
                lower(member_email) IS NOT DISTINCT FROM
                    (SELECT lower(email) FROM users WHERE id = $2)
         FROM team_members WHERE invitation_token_hash = $1",
    )
    .bind(hash)
    .bind(user)
    .fetch_optional(&state.db)
    .await
    .map_err(crate::v1::db_error)?;
    let Some((status, expires_at, owner, email_matches)) = row else {
        return Ok(invitation_not_found());
    };
    Ok(if status == "declined" {
        gone("invitation_declined", "this invitation has been declined")
    } else if status != "pending" {
        gone("invitation_used", "this invitation has already been used")
    } else if expires_at.is_none_or(|at| at <= Utc::now()) {
        gone(
            "invitation_expired",
            "this invitation has expired; ask for a new one",
        )
    } else if owner == user {
        ApiError::forbidden(
            "cannot_accept_own_invitation",
            "the team owner cannot join their own team",
        )
    } else if !email_matches {
        ApiError::forbidden(
            "invitation_email_mismatch",
            "this invitation was sent to another e-mail address; sign in with that account",
        )
    } else {
        // Answered by a concurrent request between the two statements.
        gone("invitation_used", "this invitation has already been used")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_distinct_and_stored_as_hashes() {
        let now = Utc::now();
        let a = NewInvitation::generate(now).unwrap();
        let b = NewInvitation::generate(now).unwrap();
        assert!(
            well_formed(&a.token) && well_formed(&b.token),
            "{}",
            a.token
        );
        assert_ne!(a.token, b.token);
        assert_eq!(a.hash, keys::hash(&a.token));
        assert_eq!(a.hash.len(), 64);
        assert_eq!(a.expires_at, now + Duration::days(7));
        assert!(!well_formed(&a.token[1..]));
        assert!(!well_formed(&format!("{}=", &a.token[1..])));
    }
}
