//! Cross-origin calls from the Mingus frontend's pages (`MINGUS_CORS_ORIGINS`), applied around the whole
//! public listener (`http::router`) so preflights are answered before routing. Only the listed origins
//! get `Access-Control-Allow-Origin`; credentials travel as bearer tokens, never cookies, so
//! `Allow-Credentials` stays off. The browser may send the headers the API reads and read the ones
//! it answers with (rate limits, `Retry-After`, the request id).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight answer.
const MAX_AGE: Duration = Duration::from_secs(600);

/// The layer, or `None` when no origin is configured (no CORS headers at all).
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    // The configuration checked each origin's shape, so each is a valid header value.
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("mingus-account"),
            ])
            .expose_headers([
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(MAX_AGE),
    )
}
