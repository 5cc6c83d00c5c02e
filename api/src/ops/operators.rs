//! Named operators and their dashboard sessions (tables `ops_operators`, `ops_sessions`).
//!
//! An operator's credential is a token `mop_` + 64 hex digits (256 bits from the OS random source),
//! printed once by `mingus-admin operators create`; only its SHA-256 is stored. A plain hash is the
//! right tool here, as for the `/v1` API keys: Argon2 and bcrypt exist to slow down guessing of
//! human-chosen passwords, and nobody can guess 256 random bits at any speed — while a deliberately
//! slow hash would cost tens of milliseconds of CPU on every bearer request (the dashboard polls every
//! two seconds) and hand anyone who sends tokens a cheap way to load the server.
//!
//! The same token signs in to the dashboard: the login opens a session (a fresh random cookie value,
//! stored hashed, 12 hours), so the token itself never sits in a browser cookie. Disabling an operator
//! ends their bearer access and every session at the next request.

use std::time::Duration;

use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::actor::{Actor, OpsRole};

pub const TOKEN_PREFIX: &str = "mop_";
/// Dashboard sessions' value prefix (break-glass sessions are `v1.…`, see [`super::auth`]).
pub const SESSION_PREFIX: &str = "s1.";
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

fn random_hex() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
    Ok(hex::encode(bytes))
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether `raw` has the shape of an operator token (checked before any database look-up).
pub fn looks_like_token(raw: &str) -> bool {
    raw.strip_prefix(TOKEN_PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An operator name: 1–64 of `a-z 0-9 . _ @ -`, starting with a letter or digit, not `break-glass`
/// nor `mingus-admin` (the same rule as the table's CHECK, so the CLI can explain it).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._@-".contains(c))
        && name != super::actor::BREAK_GLASS
        && name != super::actor::CLI
}

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct Operator {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Creates an operator and returns it with its token (the only time the token exists in clear).
pub async fn create(
    executor: impl PgExecutor<'_>,
    name: &str,
    role: OpsRole,
) -> anyhow::Result<(Operator, String)> {
    anyhow::ensure!(
        valid_name(name),
        "operator name {name:?} must be 1–64 of a-z 0-9 . _ @ -, start with a letter or digit, and not be break-glass or mingus-admin"
    );
    let token = format!("{TOKEN_PREFIX}{}", random_hex()?);
    let operator = sqlx::query_as(
        "INSERT INTO ops_operators (name, role, token_hash) VALUES ($1, $2, $3)
         RETURNING id, name, role, created_at, disabled_at",
    )
    .bind(name)
    .bind(role.name())
    .bind(digest(&token))
    .fetch_one(executor)
    .await
    .map_err(
        |err| match err.as_database_error().and_then(|e| e.constraint()) {
            Some("ops_operators_name_key") => anyhow::anyhow!("an operator named {name:?} exists"),
            _ => anyhow::Error::new(err).context("cannot create the operator"),
        },
    )?;
    Ok((operator, token))
}

/// Disables an operator (idempotent). `None` when no operator has that name.
pub async fn disable(executor: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<Operator>> {
    sqlx::query_as(
        "UPDATE ops_operators SET disabled_at = coalesce(disabled_at, now()) WHERE name = $1
         RETURNING id, name, role, created_at, disabled_at",
    )
    .bind(name)
    .fetch_optional(executor)
    .await
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Operator>> {
    sqlx::query_as(
        "SELECT id, name, role, created_at, disabled_at FROM ops_operators ORDER BY name",
    )
    .fetch_all(pool)
    .await
}

type ActorRow = (Uuid, String, String);

fn actor((id, name, role): ActorRow) -> Actor {
    Actor {
        name,
        operator_id: Some(id),
        // The table's CHECK allows only the three names.
        role: role.parse().unwrap_or(OpsRole::Viewer),
        request_id: None,
        client_ip: None,
    }
}

/// The enabled operator holding `token`.
pub async fn by_token(pool: &PgPool, token: &str) -> sqlx::Result<Option<Actor>> {
    if !looks_like_token(token) {
        return Ok(None);
    }
    let row: Option<ActorRow> = sqlx::query_as(
        "SELECT id, name, role FROM ops_operators WHERE token_hash = $1 AND disabled_at IS NULL",
    )
    .bind(digest(token))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(actor))
}

/// The enabled operator of this name (an identity proxy's user).
pub async fn by_name(pool: &PgPool, name: &str) -> sqlx::Result<Option<Actor>> {
    if !valid_name(name) {
        return Ok(None);
    }
    let row: Option<ActorRow> = sqlx::query_as(
        "SELECT id, name, role FROM ops_operators WHERE name = $1 AND disabled_at IS NULL",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(actor))
}

/// Opens a dashboard session for an operator; returns the cookie value.
pub async fn open_session(pool: &PgPool, operator_id: Uuid) -> anyhow::Result<String> {
    let value = format!("{SESSION_PREFIX}{}", random_hex()?);
    // Expired sessions of anyone are swept here: sign-ins are rare, and the table stays small.
    sqlx::query("DELETE FROM ops_sessions WHERE expires_at < now()")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO ops_sessions (token_hash, operator_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(digest(&value))
    .bind(operator_id)
    .bind(SESSION_TTL.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(value)
}

/// The enabled operator of a live session cookie.
pub async fn by_session(pool: &PgPool, value: &str) -> sqlx::Result<Option<Actor>> {
    let row: Option<ActorRow> = sqlx::query_as(
        "SELECT o.id, o.name, o.role FROM ops_sessions s JOIN ops_operators o ON o.id = s.operator_id
         WHERE s.token_hash = $1 AND s.expires_at > now() AND o.disabled_at IS NULL",
    )
    .bind(digest(value))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(actor))
}

pub async fn close_session(pool: &PgPool, value: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM ops_sessions WHERE token_hash = $1")
        .bind(digest(value))
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_table_rule() {
        for good in ["alice", "a", "ops.bot-1", "bob@example.com"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Alice",
            "-x",
            "break-glass",
            "mingus-admin",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_have_one_shape() {
        let token = format!("{TOKEN_PREFIX}{}", random_hex().unwrap());
        assert!(looks_like_token(&token));
        assert!(!looks_like_token(&token[..token.len() - 1]));
        assert!(!looks_like_token(&token.replace("mop_", "mk_live_")));
    }
}
