//! The one error type of the HTTP edge: typed 4xx with a stable code, opaque 500s whose cause is logged.
//! An internal error caused by an unreachable database or Redis (connection refused or cut, pool
//! timeout, the server shutting down; for PostgreSQL every error `mingus_common::db::is_transient`
//! names, the jobs' retry rule too) is a 503 with `Retry-After` wherever it was raised: the client did
//! nothing wrong and may retry, and a handler cannot forget to say so.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400: the request itself is wrong (a parameter, a header, the body's shape).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, code, message)
    }

    /// 403: the caller may not do this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, code, message)
    }

    /// 409: the request is valid, but the state it meets does not allow it (now).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::CONFLICT, code, message)
    }

    /// 422: a well-formed request whose values cannot be accepted.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

/// What a 503 tells the client to wait before retrying.
pub const RETRY_AFTER_SECS: u32 = 2;

/// Whether Redis could not be reached in time.
pub fn redis_unreachable(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
}

/// Whether any cause in `err`'s chain is an unreachable database or Redis.
fn dependency_unreachable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(mingus_common::db::is_transient)
            || cause
                .downcast_ref::<redis::RedisError>()
                .is_some_and(redis_unreachable)
    })
}

fn body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

fn unavailable(reason: &str) -> Response {
    tracing::warn!(%reason, "dependency unavailable");
    let mut response = body(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "a dependency is unavailable, retry later",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// A database error: 503 when it is transient (see the module), else an opaque 500.
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if mingus_common::db::is_transient(&err) {
            ApiError::Unavailable(format!("database: {err}"))
        } else {
            ApiError::Internal(err.into())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Client {
                status,
                code,
                message,
            } => body(status, code, &message),
            Self::Unavailable(reason) => unavailable(&reason),
            Self::Internal(err) if dependency_unreachable(&err) => unavailable(&format!("{err:#}")),
            Self::Internal(err) => {
                // The cause chain goes to the log, never to the client.
                tracing::error!(error = format!("{err:#}"), "internal error");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error",
                )
            }
        }
    }
}
