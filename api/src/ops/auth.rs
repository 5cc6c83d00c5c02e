//! Operator authentication: `Authorization: Bearer <MINGUS_ADMIN_TOKEN>` for API clients, or a session
//! cookie for the dashboard. The cookie never holds the token: it holds an issue time and an HMAC of it
//! keyed by the token, so it expires after [`SESSION_TTL`] and stops working when the token is rotated.
//! Every comparison is constant-time and exact (a token with a trailing space is another token).
//! Failed attempts are counted per client address ([`super::guesses`]): past the allowance, 429.
//!
//! Named operators ([`super::operators`]) present their own token the same ways, or arrive through an
//! identity proxy (`MINGUS_OPS_PROXY_USER_HEADER` from `MINGUS_OPS_PROXY_ADDRS` only); the admin token stays as
//! break-glass, acting as an admin and audited as `break-glass`. The role each route needs is checked
//! here, before any handler runs ([`super::actions`]).
//!
//! Cookie-authenticated requests that change something must also carry the `x-mingus-ops` header, which a
//! cross-site form cannot send (on top of `SameSite=Strict`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::actor::{Actor, OpsRole};
use super::{actions, dashboard, db_error, operators};
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::state::AppState;

pub const COOKIE: &str = "mingus_ops";
/// The header the dashboard sends with every change it asks for.
pub const CSRF_HEADER: &str = "x-mingus-ops";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Slows down guessing through the login form.
const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(300);

enum Credential {
    Bearer,
    Cookie,
}

fn disabled() -> ApiError {
    ApiError::client(
        StatusCode::SERVICE_UNAVAILABLE,
        "ops_disabled",
        "the operator API is disabled: MINGUS_ADMIN_TOKEN is not configured",
    )
}

fn unauthorized() -> ApiError {
    ApiError::client(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid operator or admin token is required (Authorization: Bearer <token>)",
    )
}

/// Constant-time equality of a presented token and the configured one (hashing first, so the
/// comparison does not reveal the token's length either).
fn token_matches(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.as_slice().ct_eq(b.as_slice()).into()
}

fn signature(token: &str, issued: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(b"mingus-ops-session\0");
    mac.update(issued.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The cookie value of a session opened now.
fn session_value(token: &str) -> String {
    let issued = chrono::Utc::now().timestamp();
    format!("v1.{issued}.{}", signature(token, issued))
}

fn session_valid(value: &str, token: &str) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some("v1"), Some(issued), Some(presented)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(issued) = issued.parse::<i64>() else {
        return false;
    };
    let age = chrono::Utc::now().timestamp() - issued;
    if age < -60 || age > SESSION_TTL.as_secs() as i64 {
        return false;
    }
    let expected = signature(token, issued);
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn credential(headers: &HeaderMap, token: &str) -> Option<Credential> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let presented = auth.to_str().ok()?.strip_prefix("Bearer ")?;
        return token_matches(presented, token).then_some(Credential::Bearer);
    }
    let value = cookie_value(headers, COOKIE)?;
    session_valid(value, token).then_some(Credential::Cookie)
}

/// Who presents the request's credential: break-glass (the admin token, or its HMAC cookie) or an
/// enabled operator (their token, their session cookie, or the identity proxy's header from a proxy
/// address). `None`: no valid credential. `peer` is the socket's peer address.
async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    token: &str,
) -> Result<Option<(Actor, Credential)>, ApiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        if credential(headers, token).is_some() {
            return Ok(Some((Actor::break_glass(), Credential::Bearer)));
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(presented) = presented else {
            return Ok(None);
        };
        let operator = operators::by_token(&state.db, presented)
            .await
            .map_err(db_error)?;
        return Ok(operator.map(|actor| (actor, Credential::Bearer)));
    }
    if let Some(name) = proxied_user(state, headers, peer) {
        let operator = operators::by_name(&state.db, &name)
            .await
            .map_err(db_error)?;
        // Browser traffic through the proxy's own session: changes need the CSRF header like cookies.
        return Ok(operator.map(|actor| (actor, Credential::Cookie)));
    }
    let Some(value) = cookie_value(headers, COOKIE) else {
        return Ok(None);
    };
    if value.starts_with(operators::SESSION_PREFIX) {
        let operator = operators::by_session(&state.db, value)
            .await
            .map_err(db_error)?;
        return Ok(operator.map(|actor| (actor, Credential::Cookie)));
    }
    Ok(credential(headers, token).map(|via| (Actor::break_glass(), via)))
}

/// The person an identity proxy vouches for: its header, only when the socket peer (never a forwarded
/// address) is one of `MINGUS_OPS_PROXY_ADDRS`.
fn proxied_user(state: &AppState, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<String> {
    let proxy = state.config.listen.ops_proxy.as_ref()?;
    let peer = peer?;
    if !proxy.addrs.iter().any(|net| net.contains(&peer)) {
        return None;
    }
    let name = headers
        .get(proxy.user_header.as_str())?
        .to_str()
        .ok()?
        .trim();
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

fn forbidden(actor: &Actor, method: &Method, route: &str, needed: OpsRole) -> Response {
    ApiError::forbidden(
        "forbidden_role",
        format!(
            "{} is {} {}; {method} {route} needs {}",
            actor.name,
            if actor.role == OpsRole::Admin {
                "an"
            } else {
                "a"
            },
            actor.role.name(),
            needed.name()
        ),
    )
    .into_response()
}

/// Middleware of every protected `/ops` route: identifies the caller, checks the role the route needs
/// ([`actions::required_role`]) and hands the handler an [`Actor`]. The dashboard page answers with
/// the login form instead of a JSON error.
pub async fn require(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let page = request.uri().path() == "/ops";
    let Some(token) = state.config.admin_token.as_ref() else {
        return if page {
            dashboard::disabled_page()
        } else {
            disabled().into_response()
        };
    };
    let client = request.extensions().get::<ClientIp>().map(|ip| ip.0);
    let now = Instant::now();
    let attempted = request.headers().contains_key(header::AUTHORIZATION);
    if attempted && let Some(wait) = state.ops.guesses.locked_out(client, now) {
        return too_many_guesses(wait);
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let identified = match identify(&state, request.headers(), peer, token.expose_secret()).await {
        Ok(identified) => identified,
        Err(err) => return err.into_response(),
    };
    let Some((mut actor, via)) = identified else {
        if attempted {
            state.ops.guesses.failed(client, now);
        }
        return if page {
            dashboard::login_page(StatusCode::UNAUTHORIZED, None)
        } else {
            unauthorized().into_response()
        };
    };
    let method = request.method().clone();
    let safe = matches!(method, Method::GET | Method::HEAD);
    if matches!(via, Credential::Cookie) && !safe && !request.headers().contains_key(CSRF_HEADER) {
        return ApiError::forbidden(
            "csrf_header_missing",
            format!("changes made with the session cookie need the {CSRF_HEADER} header"),
        )
        .into_response();
    }
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |m| m.as_str().to_owned(),
    );
    let needed = actions::required_role(&method, &route);
    if actor.role < needed {
        tracing::warn!(operator = %actor.name, role = actor.role.name(), %method, %route, "operator lacks the role");
        return forbidden(&actor, &method, &route, needed);
    }
    actor.request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    actor.client_ip = client;
    request.extensions_mut().insert(actor);
    next.run(request).await
}

/// 429 for an address that has used up its failed attempts.
fn too_many_guesses(wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = ApiError::client(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed admin-token attempts from this address; retry in {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

/// `GET /ops/login`: the form, or straight to the dashboard when already signed in.
pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.config.admin_token.is_none() {
        return dashboard::disabled_page();
    }
    if let Some(token) = state.config.admin_token.as_ref()
        && let Ok(Some(_)) = identify(&state, &headers, None, token.expose_secret()).await
    {
        return Redirect::to("/ops").into_response();
    }
    dashboard::login_page(StatusCode::OK, None)
}

/// `POST /ops/login` (form field `token`): sets the session cookie and goes to the dashboard.
pub async fn login(
    State(state): State<AppState>,
    client: Option<Extension<ClientIp>>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(token) = state.config.admin_token.as_ref() else {
        return dashboard::disabled_page();
    };
    let client = client.map(|Extension(ip)| ip.0);
    let now = Instant::now();
    if let Some(wait) = state.ops.guesses.locked_out(client, now) {
        return too_many_guesses(wait);
    }
    let presented = form.map(|Form(f)| f.token).unwrap_or_default();
    // The admin token (break-glass) keeps its stateless HMAC cookie; an operator's token opens a
    // session row, so disabling the operator ends it.
    let session = if presented.is_empty() {
        None
    } else if token_matches(&presented, token.expose_secret()) {
        Some(session_value(token.expose_secret()))
    } else {
        match operators::by_token(&state.db, &presented).await {
            Ok(Some(Actor {
                operator_id: Some(id),
                ..
            })) => match operators::open_session(&state.db, id).await {
                Ok(value) => Some(value),
                Err(err) => return ApiError::Internal(err).into_response(),
            },
            Ok(_) => None,
            Err(err) => return db_error(err).into_response(),
        }
    };
    let Some(session) = session else {
        state.ops.guesses.failed(client, now);
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        return dashboard::login_page(StatusCode::UNAUTHORIZED, Some("That token is not valid."));
    };
    let secure = if state.config.environment == mingus_common::config::Environment::Production {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={session}; Path=/ops; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to("/ops").into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /ops/logout`: forgets the cookie, and ends an operator's session on the server.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(value) = cookie_value(&headers, COOKIE)
        && value.starts_with(operators::SESSION_PREFIX)
        && let Err(err) = operators::close_session(&state.db, value).await
    {
        tracing::warn!(error = %err, "could not delete an operator session at logout");
    }
    let mut response = Redirect::to("/ops").into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("mingus_ops=; Path=/ops; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_only_with_the_same_token_and_within_their_lifetime() {
        let value = session_value("token-a");
        assert!(session_valid(&value, "token-a"));
        assert!(!session_valid(&value, "token-b"));
        assert!(!value.contains("token-a"));
        let old = chrono::Utc::now().timestamp() - SESSION_TTL.as_secs() as i64 - 5;
        assert!(!session_valid(
            &format!("v1.{old}.{}", signature("token-a", old)),
            "token-a"
        ));
        assert!(!session_valid("v1.x.y", "token-a"));
        assert!(!session_valid("", "token-a"));
    }

    #[test]
    fn a_bearer_token_with_whitespace_around_it_is_another_token() {
        let mut headers = HeaderMap::new();
        for presented in ["Bearer tok ", "Bearer  tok", "Bearer tok\t"] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(presented));
            assert!(credential(&headers, "tok").is_none(), "{presented:?}");
        }
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok"),
        );
        assert!(credential(&headers, "tok").is_some());
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abcd"));
        assert!(!token_matches("", "abc"));
    }
}
