//! The simulated users, as Goose scenarios: what each kind of user does, at most one call per tick
//! (`scenarios::fires`: the user's pace is the seed's rate, `rates::tick_and_mean`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use goose::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::platform::{Population, Secrets};
use crate::rates::{self, Allocation};
use crate::stripe_stream::StripeStream;
use crate::timeline;

/// What every simulated user reads: the users and the secrets. Goose transactions are plain functions,
/// so it lives in a static that each run replaces.
pub struct Shared {
    pub population: Population,
    pub secrets: Secrets,
    pub pace: f64,
    pub stripe: StripeStream,
    next_user: AtomicUsize,
    pub reports_requested: AtomicUsize,
    pub reports_ready: AtomicUsize,
}

static SHARED: RwLock<Option<Arc<Shared>>> = RwLock::new(None);

pub fn install(population: Population, secrets: Secrets, pace: f64) -> Arc<Shared> {
    let stripe = StripeStream::new(&population, &secrets.webhook);
    let shared = Arc::new(Shared {
        population,
        secrets,
        pace,
        stripe,
        next_user: AtomicUsize::new(0),
        reports_requested: AtomicUsize::new(0),
        reports_ready: AtomicUsize::new(0),
    });
    *SHARED.write().expect("not poisoned") = Some(shared.clone());
    shared
}

fn shared() -> Arc<Shared> {
    SHARED
        .read()
        .expect("not poisoned")
        .clone()
        .expect("scenarios::install ran")
}

impl Shared {
    /// The next user of a list, round robin over the run (so a part's load spreads over its tier).
    fn pick(&self, users: &[Uuid]) -> Uuid {
        users[self.next_user.fetch_add(1, Ordering::Relaxed) % users.len()]
    }

    fn token(&self, user: Uuid) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({"sub": user.to_string(), "aud": "authenticated", "role": "authenticated",
                            "email": format!("{user}@load.mingus.local"), "iat": now, "exp": now + 3600});
        mingus_api::v1::jwt::sign_hs256(&claims, self.secrets.jwt.as_bytes())
    }
}

/// A user's credentials, kept in Goose's session data.
struct Session {
    bearer: String,
    /// The user's JWT (team analytics takes a user session, not an API key).
    jwt: String,
    /// Calls made so far: the next kind of call is taken in turn ([`next_call`]).
    calls: usize,
}

/// Which of `kinds` kinds of call this user makes now: in turn, so every kind is made within `kinds`
/// calls and they are spread evenly (a random pick left a kind unmade in short runs).
fn next_call(user: &mut GooseUser, kinds: usize) -> usize {
    let session = user.get_session_data_unchecked_mut::<Session>();
    session.calls += 1;
    session.calls % kinds
}

fn wait(range: (f64, f64)) -> (Duration, Duration) {
    (
        Duration::from_secs_f64(range.0),
        Duration::from_secs_f64(range.1),
    )
}

/// The scenarios, with as many users each as `allocation` says (Goose's round-robin allocation gives
/// exactly these counts when the weights add up to the user count).
pub fn all(allocation: &Allocation, users: usize, pace: f64) -> Result<Vec<Scenario>, GooseError> {
    let user_wait = wait(rates::tick_wait(pace, 1.0));
    let report_wait = wait(rates::tick_wait(pace, 5.0));
    Ok(vec![
        scenario!("browser")
            .set_weight(allocation.browsers)?
            .set_wait_time(user_wait.0, user_wait.1)?
            .register_transaction(transaction!(sign_in_browser).set_on_start())
            .register_transaction(transaction!(browse).set_name("browse")),
        scenario!("executive")
            .set_weight(allocation.executives)?
            .set_wait_time(user_wait.0, user_wait.1)?
            .register_transaction(transaction!(sign_in_executive).set_on_start())
            .register_transaction(transaction!(executive_call).set_name("executive call")),
        scenario!("reporter")
            .set_weight(allocation.reporters)?
            .set_wait_time(report_wait.0, report_wait.1)?
            .register_transaction(transaction!(report_session).set_name("report session")),
        scenario!("checkin")
            .set_weight(allocation.checkins)?
            .set_wait_time(user_wait.0, user_wait.1)?
            .register_transaction(transaction!(check_in).set_name("check-in")),
        scenario!("operator")
            .set_weight(allocation.operators)?
            .set_wait_time(
                wait(rates::operator_wait()).0,
                wait(rates::operator_wait()).1,
            )?
            .register_transaction(transaction!(ops_refresh).set_name("ops refresh")),
        scenario!("stripe")
            .set_weight(allocation.stripe)?
            .set_wait_time(
                wait(rates::stripe_wait(users, pace)).0,
                wait(rates::stripe_wait(users, pace)).1,
            )?
            .register_transaction(transaction!(stripe_event).set_name("stripe event")),
    ])
}

/// Sends a request named `name`, adds it to the timeline, and returns its JSON body (if any).
async fn send(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &str,
    build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Result<Option<Value>, Box<TransactionError>> {
    let builder = build(user.get_request_builder(&method, path)?);
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .set_request_builder(builder)
        .build();
    let goose = user.request(request).await?;
    timeline::record(name, goose.request.response_time, goose.request.success);
    match goose.response {
        Ok(response) if goose.request.success => Ok(response.json::<Value>().await.ok()),
        _ => Ok(None),
    }
}

fn bearer(user: &GooseUser) -> String {
    format!(
        "Bearer {}",
        user.get_session_data_unchecked::<Session>().bearer
    )
}

async fn get(
    user: &mut GooseUser,
    path: &str,
    name: &str,
) -> Result<Option<Value>, Box<TransactionError>> {
    let auth = bearer(user);
    send(user, GooseMethod::Get, path, name, |b| {
        b.header("authorization", auth)
    })
    .await
}

/// Whether this tick makes a call. Users tick every `rates::TICK` (jittered) and call with probability
/// tick ÷ mean wait, so each user's calls form a Poisson stream of the seed's rate from the first second
/// (no burst while users start, no silence after it), and Goose can stop a user between two short waits.
fn fires(calls_per_iteration: f64) -> bool {
    let shared = shared();
    let (tick, mean) = rates::tick_and_mean(shared.pace, calls_per_iteration);
    rand::random::<f64>() < tick / mean
}

/// One call of a user browsing the app: the features page, one feature, their usage or their analytics.
async fn browse(user: &mut GooseUser) -> TransactionResult {
    if !fires(1.0) {
        return Ok(());
    }
    match next_call(user, 4) {
        0 => list_features(user).await,
        1 => one_feature(user).await,
        2 => read_usage(user).await,
        _ => read_analytics(user).await,
    }
}

/// One call of an Executive user: features and reports with the API key, the team with the session.
async fn executive_call(user: &mut GooseUser) -> TransactionResult {
    if !fires(1.0) {
        return Ok(());
    }
    if user
        .get_session_data_unchecked::<Session>()
        .bearer
        .is_empty()
    {
        return create_api_key(user).await;
    }
    match next_call(user, 4) {
        0 => list_features(user).await,
        1 => team_members(user).await,
        2 => list_reports(user).await,
        _ => team_analytics(user).await,
    }
}

async fn sign_in_browser(user: &mut GooseUser) -> TransactionResult {
    let shared = shared();
    let tiers = if user.weighted_users_index.is_multiple_of(3) {
        &shared.population.professional
    } else {
        &shared.population.essentials
    };
    let id = shared.pick(tiers);
    user.set_session_data(Session {
        bearer: shared.token(id),
        jwt: String::new(),
        calls: 0,
    });
    Ok(())
}

/// An Executive user signs in (JWT); their first call creates an API key, as the frontend does, and
/// the key is used from then on.
async fn sign_in_executive(user: &mut GooseUser) -> TransactionResult {
    let shared = shared();
    let id = shared.pick(&shared.population.executive);
    user.set_session_data(Session {
        bearer: String::new(),
        jwt: shared.token(id),
        calls: 0,
    });
    Ok(())
}

async fn create_api_key(user: &mut GooseUser) -> TransactionResult {
    let token = user.get_session_data_unchecked::<Session>().jwt.clone();
    let body = json!({"name": "load test", "scopes": ["features:read", "reports:read", "reports:write", "team:read", "analytics:read", "usage:read"]});
    let auth = format!("Bearer {token}");
    let created = send(
        user,
        GooseMethod::Post,
        "/v1/api-keys",
        "/v1/api-keys",
        |b| b.header("authorization", auth).json(&body),
    )
    .await?;
    let key = created
        .and_then(|c| c["key"].as_str().map(str::to_owned))
        .unwrap_or_else(|| token.clone());
    user.set_session_data(Session {
        bearer: key,
        jwt: token,
        calls: 0,
    });
    Ok(())
}

async fn list_features(user: &mut GooseUser) -> TransactionResult {
    get(user, "/v1/features", "/v1/features").await.map(drop)
}

async fn one_feature(user: &mut GooseUser) -> TransactionResult {
    get(
        user,
        "/v1/features/basic_analytics",
        "/v1/features/{feature}",
    )
    .await
    .map(drop)
}

async fn read_usage(user: &mut GooseUser) -> TransactionResult {
    get(user, "/v1/usage", "/v1/usage").await.map(drop)
}

async fn read_analytics(user: &mut GooseUser) -> TransactionResult {
    get(user, "/v1/analytics", "/v1/analytics").await.map(drop)
}

async fn team_members(user: &mut GooseUser) -> TransactionResult {
    get(user, "/v1/team/members", "/v1/team/members")
        .await
        .map(drop)
}

async fn team_analytics(user: &mut GooseUser) -> TransactionResult {
    let auth = format!(
        "Bearer {}",
        user.get_session_data_unchecked::<Session>().jwt
    );
    send(
        user,
        GooseMethod::Get,
        "/v1/team/analytics",
        "/v1/team/analytics",
        |b| b.header("authorization", auth),
    )
    .await
    .map(drop)
}

async fn list_reports(user: &mut GooseUser) -> TransactionResult {
    get(user, "/v1/reports", "/v1/reports").await.map(drop)
}

/// One report as a person asks for it: request, poll every second (bounded: 30 polls), download.
/// Executive users (no monthly report limit), round robin, so compressed time does not run a Professional
/// user past their ten a month.
async fn report_session(user: &mut GooseUser) -> TransactionResult {
    if !fires(5.0) {
        return Ok(());
    }
    let shared = shared();
    let id = shared.pick(&shared.population.executive);
    user.set_session_data(Session {
        bearer: shared.token(id),
        jwt: String::new(),
        calls: 0,
    });
    let today = chrono::Utc::now().date_naive();
    let body = json!({"kind": "financial", "period_start": today - chrono::Days::new(30), "period_end": today, "format": "json"});
    let auth = bearer(user);
    let created = send(user, GooseMethod::Post, "/v1/reports", "/v1/reports", |b| {
        b.header("authorization", auth).json(&body)
    })
    .await?;
    let Some(report) = created.and_then(|c| c["id"].as_str().map(str::to_owned)) else {
        return Ok(());
    };
    shared.reports_requested.fetch_add(1, Ordering::Relaxed);
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let state = get(user, &format!("/v1/reports/{report}"), "/v1/reports/{id}").await?;
        match state.as_ref().and_then(|s| s["status"].as_str()) {
            Some("ready") => {
                get(
                    user,
                    &format!("/v1/reports/{report}/download"),
                    "/v1/reports/{id}/download",
                )
                .await?;
                shared.reports_ready.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Some("failed") | None => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

/// A health check-in counted through the metered-usage API (once per Idempotency-Key).
async fn check_in(user: &mut GooseUser) -> TransactionResult {
    if !fires(1.0) {
        return Ok(());
    }
    let shared = shared();
    let id = shared.pick(&shared.population.executive);
    let token = format!("Bearer {}", shared.token(id));
    let key = Uuid::new_v4().to_string();
    send(
        user,
        GooseMethod::Post,
        "/v1/usage/health_checkins_per_month",
        "/v1/usage/{metric}",
        |b| {
            b.header("authorization", token)
                .header("idempotency-key", key)
                .json(&json!({}))
        },
    )
    .await
    .map(drop)
}

/// What the dashboard fetches on each refresh, with the admin token.
async fn ops_refresh(user: &mut GooseUser) -> TransactionResult {
    let token = format!("Bearer {}", shared().secrets.admin_token);
    for (path, name) in [
        ("/ops/queues", "/ops/queues"),
        ("/ops/stats", "/ops/stats"),
        ("/ops/workers", "/ops/workers"),
        ("/ops/dead", "/ops/dead"),
        ("/ops/stripe-events", "/ops/stripe-events"),
    ] {
        let auth = token.clone();
        send(user, GooseMethod::Get, path, name, |b| {
            b.header("authorization", auth)
        })
        .await?;
    }
    Ok(())
}

async fn stripe_event(user: &mut GooseUser) -> TransactionResult {
    let (body, signature) = shared().stripe.next_event();
    send(
        user,
        GooseMethod::Post,
        "/webhooks/stripe",
        "/webhooks/stripe",
        |b| {
            b.header("stripe-signature", signature)
                .header("content-type", "application/json")
                .body(body)
        },
    )
    .await
    .map(drop)
}
