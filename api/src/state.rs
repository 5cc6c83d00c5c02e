use std::sync::Arc;

use mingus_common::Config;
use mingus_common::jobs::Enqueuer;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

/// What every handler can reach: one `Arc`, so the clone every extractor and middleware makes is one
/// reference-count increment (the fields are handles, but some hold strings, and cloning them all was
/// measurable on the `/v1` hot path).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state's parts.
pub struct Shared {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub redis: ConnectionManager,
    /// Pushes, pauses and reads queues under `REDIS_KEY_PREFIX` (shares the `redis` connection).
    pub enqueuer: Enqueuer,
    /// This instance's Prometheus recorder (not the process-global one).
    pub metrics: Arc<crate::metrics::ApiMetrics>,
    pub ops: crate::ops::OpsState,
    /// Group commit of webhook deliveries.
    pub ingest: crate::webhooks::batch::IngestBatcher,
    /// Feature access and plan limits (cached in Redis): the API-key gate and tier rate limits.
    pub entitlements: mingus_common::entitlements::Entitlements,
    /// The `/v1` API's rate limiter and API-key use recorder.
    pub v1: crate::v1::V1State,
}
