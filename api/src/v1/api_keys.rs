//! `POST /v1/api-keys` (201, the key shown once), `GET /v1/api-keys` (never the secret nor its hash),
//! `DELETE /v1/api-keys/{id}` (revokes: `is_active = false`, 204).
//!
//! Creating and revoking need a user token; listing also accepts a key with `api_keys:read`. Creating
//! needs a plan with `api_access` (Executive); listing and revoking do not, so a user who downgraded can
//! still see and revoke old keys (which stopped working with the downgrade anyway).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::auth::Principal;
use super::extract::{JsonBody, PathParam};
use super::keys;
use super::scopes::Scope;
use crate::error::ApiError;
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 100;
/// Active keys per user: enough for every integration, and listings stay small.
pub const MAX_ACTIVE_KEYS: i64 = 25;
const DEFAULT_RATE_LIMIT: u32 = 1_000;
const MAX_RATE_LIMIT: u32 = 1_000_000;
const MAX_LIFETIME_DAYS: i64 = 5 * 366;
/// The most keys a listing shows (newest first; revoked ones included).
const LIST_LIMIT: i64 = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    scopes: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
    rate_limit_per_hour: Option<u32>,
}

/// A key as listings show it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct KeyView {
    id: Uuid,
    #[sqlx(rename = "key_name")]
    name: String,
    key_prefix: String,
    #[sqlx(rename = "permissions")]
    #[serde(serialize_with = "scope_names")]
    scopes: serde_json::Value,
    rate_limit_per_hour: i32,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    is_active: bool,
}

fn scope_names<S: serde::Serializer>(
    permissions: &serde_json::Value,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    Scope::from_permissions(permissions).serialize(serializer)
}

const COLUMNS: &str = "id, key_name, key_prefix, permissions, rate_limit_per_hour, created_at, \
                       last_used_at, expires_at, is_active";

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::unprocessable(code, message)
}

/// The validated request: what will be stored.
#[derive(Debug)]
struct NewKeyRequest {
    name: String,
    scopes: Vec<Scope>,
    expires_at: Option<DateTime<Utc>>,
    rate_limit_per_hour: u32,
}

fn validate(body: CreateKey, now: DateTime<Utc>) -> Result<NewKeyRequest, ApiError> {
    let name = body.name.trim().to_owned();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(super::display_text::refused)
    {
        return Err(invalid(
            "invalid_name",
            format!(
                "name must be 1–{MAX_NAME_CHARS} characters without control or bidirectional-control characters"
            ),
        ));
    }
    let scopes = match body.scopes {
        None => Scope::DEFAULT.to_vec(),
        Some(names) => {
            let mut scopes = names
                .iter()
                .map(|n| {
                    Scope::parse(n).ok_or_else(|| {
                        invalid(
                            "invalid_scopes",
                            format!("unknown scope {n:?}; scopes are: {}", Scope::names()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            scopes.sort();
            scopes.dedup();
            if scopes.is_empty() {
                return Err(invalid("invalid_scopes", "a key needs at least one scope"));
            }
            scopes
        }
    };
    if let Some(at) = body.expires_at {
        if at <= now + Duration::minutes(1) {
            return Err(invalid(
                "invalid_expires_at",
                "expires_at must be at least a minute in the future",
            ));
        }
        if at > now + Duration::days(MAX_LIFETIME_DAYS) {
            return Err(invalid(
                "invalid_expires_at",
                "expires_at must be within five years",
            ));
        }
    }
    let rate_limit_per_hour = body.rate_limit_per_hour.unwrap_or(DEFAULT_RATE_LIMIT);
    if !(1..=MAX_RATE_LIMIT).contains(&rate_limit_per_hour) {
        return Err(invalid(
            "invalid_rate_limit",
            format!("rate_limit_per_hour must be between 1 and {MAX_RATE_LIMIT}"),
        ));
    }
    Ok(NewKeyRequest {
        name,
        scopes,
        expires_at: body.expires_at,
        rate_limit_per_hour,
    })
}

pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<Response, ApiError> {
    principal.require_user_session()?;
    let now = Utc::now();
    let request = validate(body, now)?;
    let check = state
        .entitlements
        .check(principal.user_id, super::API_ACCESS, now)
        .await
        .map_err(super::dependency_error)?;
    if !check.access {
        let mut error = json!({
            "code": "api_access_required",
            "message": "API keys need a plan with API access (Executive)",
        });
        error
            .as_object_mut()
            .expect("object")
            .extend(super::check_details(&check));
        return Ok((StatusCode::FORBIDDEN, Json(json!({ "error": error }))).into_response());
    }
    let key = keys::generate()?;
    let scopes = serde_json::to_value(&request.scopes).map_err(anyhow::Error::from)?;
    // Creations of one user's keys take turns (a transaction-scoped advisory lock), so the count below is
    // taken after any concurrent creation committed: 25 concurrent requests at 24 keys create exactly one.
    let mut tx = state.db.begin().await.map_err(super::db_error)?;
    let lock = format!("mingus:api_keys:{}", principal.user_id);
    mingus_common::db::advisory_xact_lock(&mut tx, &lock)
        .await
        .map_err(super::db_error)?;
    let created: Option<KeyView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO api_keys (user_id, key_name, key_prefix, api_key_hash, permissions,
                               rate_limit_per_hour, expires_at)
         SELECT $1, $2, $3, $4, $5, $6, $7
         WHERE (SELECT count(*) FROM api_keys WHERE user_id = $1 AND is_active
                AND (expires_at IS NULL OR expires_at > now())) < $8
         RETURNING {COLUMNS}"
    )))
    .bind(principal.user_id)
    .bind(&request.name)
    .bind(&key.prefix)
    .bind(&key.hash)
    .bind(&scopes)
    .bind(i32::try_from(request.rate_limit_per_hour).unwrap_or(i32::MAX))
    .bind(request.expires_at)
    .bind(MAX_ACTIVE_KEYS)
    .fetch_optional(&mut *tx)
    .await
    .map_err(super::db_error)?;
    tx.commit().await.map_err(super::db_error)?;
    let Some(created) = created else {
        return Err(ApiError::conflict(
            "api_key_limit_reached",
            format!("at most {MAX_ACTIVE_KEYS} active keys; revoke one first"),
        ));
    };
    tracing::info!(user_id = %principal.user_id, key_id = %created.id, "API key created");
    let mut body = serde_json::to_value(&created).map_err(anyhow::Error::from)?;
    body["key"] = json!(key.secret);
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require(Scope::ApiKeysRead)?;
    let keys: Vec<KeyView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys WHERE user_id = $1
         ORDER BY created_at DESC, id LIMIT $2"
    )))
    .bind(principal.user_id)
    .bind(LIST_LIMIT)
    .fetch_all(&state.db)
    .await
    .map_err(super::db_error)?;
    Ok(Json(json!({ "api_keys": keys })))
}

pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    PathParam(id): PathParam<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.require_user_session()?;
    let revoked: Option<Uuid> = sqlx::query_scalar(
        "UPDATE api_keys SET is_active = false WHERE id = $1 AND user_id = $2 RETURNING id",
    )
    .bind(id)
    .bind(principal.user_id)
    .fetch_optional(&state.db)
    .await
    .map_err(super::db_error)?;
    match revoked {
        // Another user's key is "not found" too: ids reveal nothing.
        None => Err(ApiError::not_found("no such API key")),
        Some(_) => {
            tracing::info!(user_id = %principal.user_id, key_id = %id, "API key revoked");
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: serde_json::Value) -> CreateKey {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn validation_refuses_bad_names_scopes_expiries_and_limits() {
        let now = Utc::now();
        let ok = validate(body(json!({"name": "  ci  "})), now).unwrap();
        assert_eq!(ok.name, "ci");
        assert_eq!(ok.scopes, Scope::DEFAULT);
        assert_eq!(ok.rate_limit_per_hour, 1_000);
        let cases = [
            (json!({"name": " "}), "invalid_name"),
            (json!({"name": "x".repeat(101)}), "invalid_name"),
            (json!({"name": "a\nb"}), "invalid_name"),
            (json!({"name": "key\u{202E}exe.txt"}), "invalid_name"),
            (json!({"name": "k", "scopes": []}), "invalid_scopes"),
            (json!({"name": "k", "scopes": ["admin"]}), "invalid_scopes"),
            (
                json!({"name": "k", "expires_at": now - Duration::hours(1)}),
                "invalid_expires_at",
            ),
            (
                json!({"name": "k", "expires_at": now + Duration::days(4000)}),
                "invalid_expires_at",
            ),
            (
                json!({"name": "k", "rate_limit_per_hour": 0}),
                "invalid_rate_limit",
            ),
            (
                json!({"name": "k", "rate_limit_per_hour": 1_000_001}),
                "invalid_rate_limit",
            ),
        ];
        for (value, code) in cases {
            match validate(body(value.clone()), now) {
                Err(ApiError::Client {
                    code: got, status, ..
                }) => {
                    assert_eq!(
                        (got, status),
                        (code, StatusCode::UNPROCESSABLE_ENTITY),
                        "{value}"
                    );
                }
                other => panic!("{value}: {other:?}"),
            }
        }
        assert!(serde_json::from_value::<CreateKey>(json!({"name": "k", "admin": true})).is_err());
    }
}
