//! Every text a client sends must be text PostgreSQL can store: no NUL (PostgreSQL refuses `\0` in
//! `text` and `jsonb` with an error that would otherwise surface as a 500) and valid UTF-8. Checked once
//! here, for every route, before any handler runs: the URI's path and query after percent-decoding,
//! and JSON and form bodies. Anything else answers 400 `invalid_text` and touches nothing.
//!
//! Webhook bodies are left to the webhook routes: they are signed, and what Stripe signed is stored or
//! refused there (`webhooks::ingest`), never changed or judged on the way in.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Bodies checked here are read up to this size; the routes' own limits are all smaller, so a larger
/// body would be refused by its route anyway.
const MAX_CHECKED_BODY: usize = 1024 * 1024;

/// The middleware.
pub async fn check(request: Request, next: Next) -> Response {
    let uri = request.uri();
    if let Some(part) = [Some(uri.path()), uri.query()]
        .into_iter()
        .flatten()
        .find(|part| !uri_part_clean(part))
    {
        let what = if Some(part) == uri.query() {
            "query"
        } else {
            "path"
        };
        return refuse(format!(
            "the {what} holds a NUL character or bytes that are not UTF-8"
        ));
    }
    if request.uri().path().starts_with("/webhooks/") {
        return next.run(request).await;
    }
    let kind = body_kind(&request);
    let Some(kind) = kind else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_CHECKED_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {MAX_CHECKED_BODY} bytes"),
            )
            .into_response();
        }
    };
    let bad = match kind {
        BodyKind::Json => json_escapes_nul(&bytes),
        BodyKind::Form => !clean(&percent_decode(&bytes)),
    };
    if bad {
        return refuse("the body holds a NUL character or bytes that are not UTF-8".to_owned());
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn refuse(message: String) -> Response {
    ApiError::bad_request("invalid_text", message).into_response()
}

enum BodyKind {
    Json,
    Form,
}

fn body_kind(request: &Request) -> Option<BodyKind> {
    let content_type = request.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    if essence == "application/x-www-form-urlencoded" {
        Some(BodyKind::Form)
    } else if essence == "application/json" || essence.ends_with("+json") {
        Some(BodyKind::Json)
    } else {
        None
    }
}

/// A path or query: without a `%` it is the URI's own ASCII and NUL-free (the URI parser allows neither
/// raw NUL nor non-ASCII), so only escaped text needs decoding — the hot path allocates nothing.
fn uri_part_clean(part: &str) -> bool {
    !part.contains('%') || clean(&percent_decode(part.as_bytes()))
}

/// Valid UTF-8 without NUL.
fn clean(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

/// `%XX` decoded (and `+` left alone: it cannot hide a NUL). A `%` without two hex digits stays as is;
/// the route's own parser decides what it means.
fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if raw[i] == b'%'
            && let (Some(high), Some(low)) = (
                raw.get(i + 1).and_then(|b| hex(*b)),
                raw.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            decoded.push((high * 16 + low) as u8);
            i += 3;
        } else {
            decoded.push(raw[i]);
            i += 1;
        }
    }
    decoded
}

/// Whether a JSON document spells a NUL character. A raw NUL byte and invalid UTF-8 are not JSON at
/// all (the route's parser refuses them with 400 `invalid_json`); the one way to put NUL into a JSON
/// string is the escape `\u0000`, which is an escape only when an odd number of backslashes precede
/// the `u` (`\\u0000` is a backslash followed by the text `u0000`).
fn json_escapes_nul(body: &[u8]) -> bool {
    let mut backslashes = 0usize;
    for (i, &byte) in body.iter().enumerate() {
        if byte == b'\\' {
            backslashes += 1;
            continue;
        }
        if byte == b'u'
            && backslashes % 2 == 1
            && body
                .get(i + 1..i + 5)
                .is_some_and(|digits| digits.iter().all(|d| *d == b'0'))
        {
            return true;
        }
        backslashes = 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_finds_nul_and_broken_utf8() {
        assert!(clean(&percent_decode(b"q=caf%C3%A9&limit=5")));
        assert!(!clean(&percent_decode(b"q=%00")));
        assert!(!clean(&percent_decode(b"q=a%00b")));
        assert!(!clean(&percent_decode(b"q=%ff")));
        assert!(!clean(&percent_decode(b"q=%C3")));
        // Not an escape: left for the route's parser.
        assert!(clean(&percent_decode(b"q=100%")));
        assert!(clean(&percent_decode(b"q=%zz")));
    }

    #[test]
    fn only_a_real_nul_escape_counts_in_json() {
        assert!(json_escapes_nul(br#"{"name":"a\u0000b"}"#));
        assert!(json_escapes_nul(br#"{"name":"\\\u0000"}"#));
        assert!(!json_escapes_nul(br#"{"name":"\\u0000"}"#));
        assert!(!json_escapes_nul(br#"{"name":"\u0041 and \u00e9"}"#));
        assert!(!json_escapes_nul(br#"{"name":"\u000"}"#));
    }
}
