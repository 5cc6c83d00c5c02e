//! `POST /webhooks/stripe`: verify → check the timestamp → store the raw event → enqueue → 200.
//!
//! PostgreSQL down → 503 (Stripe retries for three days). Redis down → still 200: the event row and its
//! outbox row are committed, and the outbox sweep pushes the job later. Duplicates answer 200 and change
//! nothing. A verified body that does not parse is stored as `unparseable` and answered 200 (so Stripe
//! does not retry it for days); an event of the other mode (test/live) is stored as `quarantined`.

pub mod batch;
mod ingest;
pub mod signature;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;

use crate::state::AppState;

/// Stripe's payloads are far smaller; anything larger is refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/webhooks/stripe",
        post(ingest::receive).layer(DefaultBodyLimit::max(MAX_BODY)),
    )
}
