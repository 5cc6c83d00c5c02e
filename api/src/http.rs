//! The routers and the middleware every request passes through. The public listener serves health,
//! webhooks, `/v1` and unsubscribe; `/ops` and `/metrics` live on the operator listener
//! (`MINGUS_OPS_ADDR`) and on the public one only where `MINGUS_OPS_PUBLIC` allows it (development).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use mingus_common::jobs;

use crate::client_ip::{self, ClientIp};
use crate::error::ApiError;
use crate::state::AppState;
use crate::{health, metrics, ops};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The public listener's router (with `/ops` and `/metrics` when `MINGUS_OPS_PUBLIC` allows).
pub fn router(state: AppState) -> Router {
    let mut routes = Router::new()
        .merge(health_routes())
        .route("/openapi.json", get(crate::openapi::document))
        .merge(crate::webhooks::router())
        .merge(crate::unsubscribe::router())
        .merge(crate::v1::router(state.clone()));
    if state.config.listen.ops_on_public {
        routes = routes.merge(operator_routes(&state));
    }
    let cors = crate::v1::cors::layer(&state.config.frontend.cors_origins);
    let router = finish(routes, state);
    // Around everything, so a browser's preflight is answered before routing and authentication
    // (it carries no token, and OPTIONS is no route's method).
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The operator listener's router: `/ops`, `/metrics` and the health probes.
pub fn ops_router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(health_routes())
        .merge(operator_routes(&state));
    finish(routes, state)
}

fn health_routes() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health/database", get(health::database))
        .route("/health/cache", get(health::cache))
}

fn operator_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics::render))
        .merge(ops::router(state.clone()))
}

fn finish(routes: Router<AppState>, state: AppState) -> Router {
    let proxies = Arc::new(state.config.listen.trusted_proxies.clone());
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .layer(
            ServiceBuilder::new()
                .map_request(move |request: Request| client_ip::tag(&proxies, request))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                    let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    let client_ip = request.extensions().get::<ClientIp>().map(|ip| ip.0.to_string()).unwrap_or_default();
                    tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id, client_ip)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                // Jobs enqueued while the request runs carry its id (`Envelope::request_id`).
                .layer(axum::middleware::from_fn(carry_request_id))
                // A panicking handler answers like any other internal error (and the process lives on).
                .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
                    ApiError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
                }))
                .layer(axum::middleware::from_fn_with_state(
                    state.config.http_request_timeout,
                    deadline,
                ))
                // NUL and broken UTF-8 in any text a client sends: 400 before any handler runs.
                .layer(axum::middleware::from_fn(crate::text_input::check)),
        )
        // Outermost, so timeouts are counted too; per route, so it sees the matched route template.
        .layer(axum::middleware::from_fn_with_state(state, metrics::track))
}

/// `MINGUS_HTTP_REQUEST_TIMEOUT_SECS`: a request still running then gets a typed 503 the client may retry.
async fn deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
            ApiError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!(
                    "the request did not finish within {} s; retry later",
                    timeout.as_secs()
                ),
            )
            .into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::client(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// Runs the request with its `X-Request-Id` as the task's [`jobs::REQUEST_ID`], so every envelope made
/// for it names the request, and the worker's log of each job can be joined to the request's.
async fn carry_request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(jobs::carried_request_id);
    match id {
        Some(id) => jobs::REQUEST_ID.scope(id, next.run(request)).await,
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use mingus_common::Config;
    use tower::ServiceExt;

    use super::*;

    async fn call(timeout_secs: &str, path: &str) -> (StatusCode, serde_json::Value) {
        let config =
            Config::from_vars([("MINGUS_HTTP_REQUEST_TIMEOUT_SECS", timeout_secs)]).unwrap();
        // Lazy pools: nothing here connects to PostgreSQL or Redis.
        let state = crate::build_state(Arc::new(config)).unwrap();
        let routes = Router::new()
            .route(
                "/boom",
                get(|| async {
                    #[allow(clippy::panic)]
                    if true {
                        panic!("a bug in a handler");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            );
        let response = finish(routes, state)
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500() {
        let (status, body) = call("15", "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal", "{body}");
        assert!(!body.to_string().contains("a bug in a handler"), "{body}");
    }

    #[tokio::test]
    async fn a_request_past_the_timeout_answers_a_json_503() {
        let started = std::time::Instant::now();
        let (status, body) = call("1", "/slow").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "request_timeout", "{body}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
