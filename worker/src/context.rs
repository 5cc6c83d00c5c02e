//! What a job handler can reach.

use std::sync::Arc;

use mingus_common::Config;
use mingus_common::email::smtp::Mailer;
use mingus_common::entitlements::evict::Evictor;
use mingus_common::jobs::Enqueuer;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

#[derive(Clone)]
pub struct JobContext {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub enqueuer: Enqueuer,
    /// The process's SMTP sender and its connection pool (connects on the first e-mail).
    pub mailer: Arc<Mailer>,
    /// Evicts cached entitlements after a commit that changed access (this context's Redis and prefix).
    pub evictor: Evictor,
}

/// Why a job failed: retried with backoff, or dead at once.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0:#}")]
    Retryable(anyhow::Error),
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl From<anyhow::Error> for JobError {
    fn from(err: anyhow::Error) -> Self {
        JobError::Retryable(err)
    }
}

impl From<sqlx::Error> for JobError {
    fn from(err: sqlx::Error) -> Self {
        JobError::Retryable(err.into())
    }
}

impl From<redis::RedisError> for JobError {
    fn from(err: redis::RedisError) -> Self {
        JobError::Retryable(err.into())
    }
}
