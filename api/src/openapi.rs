//! `GET /openapi.json`: the OpenAPI 3.1 document of the public API (the webhook, `/v1`, health).
//!
//! The document is written by hand in `openapi/openapi.json` and embedded as it is. The end-to-end tests
//! keep it honest: every route of [`crate::v1::route_table`] and the webhook must be in it, every path
//! in it must be served, and the responses the tests receive must match the schemas it gives.

use axum::http::header;
use axum::response::IntoResponse;

/// The document's bytes.
pub const DOCUMENT: &str = include_str!("openapi/openapi.json");

pub async fn document() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        DOCUMENT,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_json() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
    }
}
