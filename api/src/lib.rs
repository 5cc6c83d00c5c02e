#![doc = include_str!("../README.md")]

pub mod admin;
pub mod admin_analytics;
pub mod admin_doctor;
pub mod admin_import;
pub mod admin_operators;
pub mod admin_revenue;
pub mod admin_roles;
pub mod admin_stripe;
mod client_ip;
mod error;
mod health;
mod http;
pub mod metrics;
pub mod openapi;
pub mod ops;
mod state;
mod text_input;
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

pub use client_ip::ClientIp;
pub use error::ApiError;
pub use http::{ops_router, router};
pub use state::AppState;

/// Builds the shared state. Connections are lazy: the API starts (and reports unhealthy) while a
/// dependency is down, and recovers by itself when it comes back.
pub fn build_state(config: Arc<Config>) -> anyhow::Result<AppState> {
    // Requests wait for a connection only briefly (DATABASE_API_ACQUIRE_TIMEOUT_MS), then answer 503.
    let database = mingus_common::config::DatabaseConfig {
        acquire_timeout: config.database.api_acquire_timeout,
        ..config.database.clone()
    };
    let db = db::lazy_pool(&database).context("invalid DATABASE_URL")?;
    let redis = cache::lazy_manager(&config.redis).context("invalid REDIS_URL")?;
    let enqueuer =
        mingus_common::jobs::Enqueuer::new(redis.clone(), config.redis.key_prefix.clone());
    let ingest = webhooks::batch::IngestBatcher::new(db.clone(), enqueuer.clone());
    let entitlements = mingus_common::entitlements::Entitlements::new(
        db.clone(),
        redis.clone(),
        &config.redis.key_prefix,
    );
    let v1 = v1::V1State::new(
        db.clone(),
        redis.clone(),
        config.frontend.jwt_jwks_url.clone(),
    );
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

/// Binds `MINGUS_API_ADDR` (and `MINGUS_OPS_ADDR` when set) and serves until `shutdown` resolves.
pub async fn run(
    config: Arc<Config>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.api_addr)
        .await
        .with_context(|| format!("cannot listen on MINGUS_API_ADDR={}", config.api_addr))?;
    let ops_listener = match config.listen.ops_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on MINGUS_OPS_ADDR={addr}"))?,
        ),
        None => None,
    };
    serve_with_ops(listener, ops_listener, build_state(config)?, shutdown).await
}

/// Serves on an already-bound listener (tests bind port 0), draining in-flight requests on shutdown.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_ops(listener, None, state, shutdown).await
}

/// The public listener and, when given, the operator listener. On `shutdown` both stop accepting, the
/// requests in flight finish (axum's graceful shutdown), then this returns.
pub async fn serve_with_ops(
    listener: TcpListener,
    ops_listener: Option<TcpListener>,
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
    if ops_listener.is_none() && !state.config.listen.ops_on_public {
        tracing::warn!(
            "/ops and /metrics are not served: set MINGUS_OPS_ADDR (or MINGUS_OPS_PUBLIC=true)"
        );
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let ops = match ops_listener {
        Some(ops_listener) => {
            let ops_addr = ops_listener.local_addr()?;
            tracing::info!(%ops_addr, "operator listener on http://{ops_addr}/ops");
            let app = http::ops_router(state.clone());
            Some(tokio::spawn(serve_one(ops_listener, app, stopped.clone())))
        }
        None => None,
    };
    tracing::info!(%addr, "mingus-api listening on http://{addr}");
    let public = serve_one(listener, router(state), stopped).await;
    if let Some(ops) = ops {
        ops.await.context("operator listener task")??;
    }
    public?;
    tracing::info!("mingus-api stopped");
    Ok(())
}

async fn serve_one(
    listener: TcpListener,
    app: axum::Router,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Responses go out as soon as they are written: without TCP_NODELAY a response that leaves in two
    // segments waits for the client's delayed ACK (~40 ms) before its second part.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY not set");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    })
    .await
    .context("HTTP server failed")
}
