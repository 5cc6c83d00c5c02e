#![doc = include_str!("../README.md")]

pub mod admin;
pub mod admin_analytics;
pub mod admin_stripe;
pub mod bench;
mod error;
mod health;
mod http;
pub mod metrics;
pub mod openapi;
pub mod ops;
mod state;
mod unsubscribe;
pub mod v1;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use mingus_common::{Config, cache, db};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use http::router;
pub use state::AppState;

/// Builds the shared state. Connections are lazy: the API starts (and reports unhealthy) while a
/// dependency is down, and recovers by itself when it comes back.
pub fn build_state(config: Arc<Config>) -> anyhow::Result<AppState> {
    let db = db::lazy_pool(&config.database).context("invalid DATABASE_URL")?;
    let redis = cache::lazy_manager(&config.redis).context("invalid REDIS_URL")?;
    let enqueuer =
        mingus_common::jobs::Enqueuer::new(redis.clone(), config.redis.key_prefix.clone());
    let ingest = webhooks::batch::IngestBatcher::new(db.clone(), enqueuer.clone());
    let entitlements = mingus_common::entitlements::Entitlements::new(
        db.clone(),
        redis.clone(),
        &config.redis.key_prefix,
    );
    let v1 = v1::V1State::new(db.clone(), redis.clone());
    Ok(AppState::new(state::Shared {
        config,
        db,
        redis,
        enqueuer,
        ingest,
        metrics: metrics::ApiMetrics::new(),
        ops: ops::OpsState::default(),
        entitlements,
        v1,
    }))
}

/// Binds `MINGUS_API_ADDR` and serves until `shutdown` resolves.
pub async fn run(
    config: Arc<Config>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.api_addr)
        .await
        .with_context(|| format!("cannot listen on MINGUS_API_ADDR={}", config.api_addr))?;
    serve(listener, build_state(config)?, shutdown).await
}

/// Serves on an already-bound listener (tests bind port 0), draining in-flight requests on shutdown.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    for name in state.config.missing_optional_secrets() {
        tracing::warn!(
            variable = name,
            "secret not configured: the routes that need it refuse requests"
        );
    }
    tracing::info!(%addr, "mingus-api listening on http://{addr}");
    // Responses go out as soon as they are written: without TCP_NODELAY a response that leaves in two
    // segments waits for the client's delayed ACK (~40 ms) before its second part.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, router(state).into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")?;
    tracing::info!("mingus-api stopped");
    Ok(())
}
