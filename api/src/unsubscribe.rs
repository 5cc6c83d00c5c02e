//! `GET|POST /unsubscribe?token=…`: the target of the unsubscribe link and of `List-Unsubscribe`.
//!
//! `GET` only shows a confirmation page with a button (mail scanners and link previews fetch links
//! in e-mails, and must not unsubscribe anyone); `POST` records the unsubscription. A mail client's
//! one-click unsubscribe (RFC 8058: `POST` with the body `List-Unsubscribe=One-Click`) is recorded
//! as `one_click`, the button as `link`. Repeating it changes nothing. A token that is missing,
//! malformed or not signed by us → 400 `invalid_unsubscribe_token`; no `MINGUS_UNSUBSCRIBE_SECRET`
//! configured → 503 `unsubscribe_disabled`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use mingus_common::email::{Category, unsubscribe};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/unsubscribe",
        get(confirm)
            .post(unsubscribe)
            .layer(DefaultBodyLimit::max(4 * 1024)),
    )
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn verify(state: &AppState, query: &TokenQuery) -> Result<(Uuid, Category), ApiError> {
    let secret = state
        .config
        .email
        .unsubscribe_secret
        .as_ref()
        .ok_or_else(|| {
            ApiError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "unsubscribe_disabled",
                "unsubscribe links are not configured (MINGUS_UNSUBSCRIBE_SECRET)",
            )
        })?;
    let token = query.token.as_deref().unwrap_or_default();
    unsubscribe::verify(secret, token).map_err(|err| {
        ApiError::bad_request(
            "invalid_unsubscribe_token",
            format!("{err}; use the link from the e-mail as it is"),
        )
    })
}

fn what(category: Category) -> &'static str {
    match category {
        Category::Reminders => "reminder e-mails",
        Category::Transactional => "these e-mails",
    }
}

async fn confirm(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    let (_, category) = verify(&state, &query)?;
    let token = query.token.unwrap_or_default();
    Ok(page(
        "Unsubscribe",
        &format!(
            "<p>Stop receiving {what} from Mingus? Billing and account e-mails are not affected.</p>\
             <form method=\"post\" action=\"/unsubscribe?token={token}\">\
             <button type=\"submit\" style=\"background:#3c2a85;color:#fff;border:0;padding:10px 18px;border-radius:6px;font-size:16px;\">Unsubscribe</button>\
             </form>",
            what = what(category),
        ),
    ))
}

async fn unsubscribe(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (user_id, category) = verify(&state, &query)?;
    let one_click = body
        .split(|b| *b == b'&')
        .any(|pair| pair == b"List-Unsubscribe=One-Click");
    let source = if one_click { "one_click" } else { "link" };
    let recorded = unsubscribe::suppress(&state.db, user_id, category, source)
        .await
        .map_err(|err| {
            ApiError::Internal(anyhow::Error::new(err).context("recording an unsubscription"))
        })?;
    if recorded {
        tracing::info!(%user_id, category = category.name(), source, "unsubscribed");
    }
    // A deleted account has nothing left to unsubscribe from: the answer is the same.
    Ok(page(
        "You are unsubscribed",
        &format!(
            "<p>You will no longer receive {} from Mingus. Billing and account e-mails are not affected.</p>",
            what(category)
        ),
    ))
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title} · Mingus</title></head>\
         <body style=\"font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1f2933;max-width:520px;margin:48px auto;padding:0 16px;\">\
         <h1 style=\"font-size:22px;color:#3c2a85;\">{title}</h1>{body}</body></html>"
    );
    (StatusCode::OK, Html(html)).into_response()
}
