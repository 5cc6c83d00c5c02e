//! The probe listener of the worker and the scheduler: `/health/live`, `/health/ready` (PostgreSQL and
//! Redis both answer: neither process can do its work without them) and `/metrics` (Prometheus text), so
//! systemd watchdogs, load balancers and Prometheus see these processes as they see the API.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use redis::aio::ConnectionManager;
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::ListenAddr;
use crate::health;

/// Renders the process's metrics in the Prometheus text format.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// What the probes look at.
#[derive(Clone)]
pub struct Probe {
    pub service: &'static str,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub metrics: RenderMetrics,
}

/// Binds the probe address named by `variable`. An explicit address must be free; the default falls back
/// to a free port on the same interface (logged), so a second process on the host still starts.
pub async fn bind(listen: ListenAddr, variable: &str) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(listen.addr).await {
        Ok(listener) => Ok(listener),
        Err(err) if !listen.explicit => {
            let fallback = std::net::SocketAddr::new(listen.addr.ip(), 0);
            let listener = TcpListener::bind(fallback)
                .await
                .with_context(|| format!("cannot listen on {fallback} ({variable} unset)"))?;
            tracing::warn!(
                default = %listen.addr,
                error = %err,
                addr = %listener.local_addr()?,
                "{variable} unset and its default is taken: probes on a free port instead (set {variable} to choose)"
            );
            Ok(listener)
        }
        Err(err) => {
            Err(err).with_context(|| format!("cannot listen on {variable}={}", listen.addr))
        }
    }
}

/// Serves the probes on `listener` for the life of the process.
pub fn spawn(listener: TcpListener, probe: Probe) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, service = probe.service, "probes on http://{addr}/health/ready and /metrics");
    let app = Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(probe);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "probe listener failed");
        }
    });
    Ok(())
}

async fn live(State(probe): State<Probe>) -> Response {
    let body = json!({ "status": "healthy", "service": probe.service, "version": env!("CARGO_PKG_VERSION") });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn ready(State(probe): State<Probe>) -> Response {
    let (database, cache) = tokio::join!(health::database(&probe.db), health::cache(&probe.redis));
    let healthy = database.healthy() && cache.healthy();
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "service": probe.service,
        "checks": { "database": database, "cache": cache },
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(probe): State<Probe>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        (probe.metrics)() + &crate::process_metrics::render(probe.service),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_default_falls_back_to_a_free_port_and_a_taken_explicit_address_fails() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let fallback = bind(
            ListenAddr {
                addr,
                explicit: false,
            },
            "MINGUS_WORKER_METRICS_ADDR",
        )
        .await
        .unwrap();
        let got = fallback.local_addr().unwrap();
        assert_eq!(got.ip(), addr.ip());
        assert_ne!(got.port(), addr.port());
        let err = bind(
            ListenAddr {
                addr,
                explicit: true,
            },
            "MINGUS_WORKER_METRICS_ADDR",
        )
        .await
        .unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("MINGUS_WORKER_METRICS_ADDR={addr}")),
            "{err:#}"
        );
    }
}
