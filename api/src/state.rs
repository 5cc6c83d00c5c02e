use std::sync::Arc;

use mingus_common::Config;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

/// What every handler can reach. Cheap to clone: each field is a handle.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub redis: ConnectionManager,
}
