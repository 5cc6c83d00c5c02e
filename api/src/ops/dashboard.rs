//! `GET /ops`: the dashboard, rendered on the server with the current queue figures, then kept live by a
//! small script (`assets/ops.js`) that polls the JSON routes every two seconds. No build step: the
//! assets are compiled into the binary. The pages are minijinja templates (the engine the e-mails use)
//! with HTML auto-escaping, so no value reaches the page unescaped and no escaping is written by hand.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;
use serde_json::Value;

use super::actor::Actor;
use super::queues;
use crate::state::AppState;

const DASHBOARD: &str = include_str!("assets/dashboard.html");
const LOGIN: &str = include_str!("assets/login.html");
const BUSINESS: &str = include_str!("assets/business.html");
const BUSINESS_SCRIPT: &str = include_str!("assets/business.js");
const BUSINESS_STYLE: &str = include_str!("assets/business.css");
const DOM_SCRIPT: &str = include_str!("assets/dom.js");
const SCRIPT: &str = include_str!("assets/ops.js");
const CUSTOMER_SCRIPT: &str = include_str!("assets/customers.js");
const STYLE: &str = include_str!("assets/ops.css");

/// Scripts and styles only from our own files; no framing; forms post only to us.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages, parsed once. Names ending in `.html` are auto-escaped.
static PAGES: std::sync::LazyLock<Environment<'static>> = std::sync::LazyLock::new(|| {
    let mut pages = Environment::new();
    pages
        .add_template("dashboard.html", DASHBOARD)
        .expect("the dashboard template parses");
    pages
        .add_template("login.html", LOGIN)
        .expect("the login template parses");
    pages
        .add_template("business.html", BUSINESS)
        .expect("the business template parses");
    pages
});

/// Renders one of [`PAGES`].
fn render(name: &str, context: impl Serialize) -> Result<String, minijinja::Error> {
    PAGES
        .get_template(name)
        .and_then(|template| template.render(context))
}

/// One of [`PAGES`] as the answer; a failure (a bug in a template) is an opaque 500.
fn respond(status: StatusCode, name: &str, context: impl Serialize) -> Response {
    match render(name, context) {
        Ok(body) => html(status, body),
        Err(err) => crate::error::ApiError::Internal(anyhow::anyhow!("rendering {name}: {err:#}"))
            .into_response(),
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    respond(
        status,
        "login.html",
        minijinja::context! { message => message, disabled => false },
    )
}

pub fn disabled_page() -> Response {
    let message =
        "The operator dashboard is disabled: MINGUS_ADMIN_TOKEN is not configured on this server.";
    respond(
        StatusCode::SERVICE_UNAVAILABLE,
        "login.html",
        minijinja::context! { message => message, disabled => true },
    )
}

/// `GET /ops/assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "dom.js" => (DOM_SCRIPT, "text/javascript; charset=utf-8"),
        "ops.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "ops.css" => (STYLE, "text/css; charset=utf-8"),
        "customers.js" => (CUSTOMER_SCRIPT, "text/javascript; charset=utf-8"),
        "business.js" => (BUSINESS_SCRIPT, "text/javascript; charset=utf-8"),
        "business.css" => (BUSINESS_STYLE, "text/css; charset=utf-8"),
        _ => return crate::error::ApiError::not_found("no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

fn age(seconds: Option<f64>) -> String {
    match seconds {
        None => "—".to_owned(),
        Some(s) if s < 60.0 => format!("{s:.0} s"),
        Some(s) if s < 3600.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// One queue's row, its figures formatted as the script formats them.
#[derive(Debug, Serialize)]
struct QueueRow {
    name: String,
    paused: bool,
    waiting: String,
    delayed: String,
    in_flight: String,
    dead: String,
    has_dead: bool,
    oldest: String,
    per_minute: String,
    failure_rate: String,
    workers: String,
}

/// The overview cards.
#[derive(Debug, Serialize)]
struct Overview {
    waiting: String,
    delayed: String,
    in_flight: String,
    dead: String,
    per_minute: String,
    failure_rate: String,
}

impl Overview {
    fn unavailable() -> Self {
        let dash = || "—".to_owned();
        Overview {
            waiting: dash(),
            delayed: dash(),
            in_flight: dash(),
            dead: dash(),
            per_minute: dash(),
            failure_rate: dash(),
        }
    }
}

/// The queue rows and overview figures as of now, so the page is useful before the script runs.
fn render_queues(data: &Value) -> (Vec<QueueRow>, Overview) {
    let empty = Vec::new();
    let queues = data["queues"].as_array().unwrap_or(&empty);
    let mut totals = [0.0f64; 4];
    let (mut per_minute, mut processed, mut failed) = (0.0, 0.0, 0.0);
    let mut rows = Vec::with_capacity(queues.len());
    for q in queues {
        for (total, key) in totals
            .iter_mut()
            .zip(["waiting", "delayed", "in_flight", "dead"])
        {
            *total += number(&q[key]);
        }
        per_minute += number(&q["last_5m"]["per_minute"]);
        processed += number(&q["last_5m"]["processed"]);
        failed += number(&q["last_5m"]["failed"]);
        rows.push(QueueRow {
            name: q["queue"].as_str().unwrap_or("").to_owned(),
            paused: q["paused"].as_bool().unwrap_or(false),
            waiting: number(&q["waiting"]).to_string(),
            delayed: number(&q["delayed"]).to_string(),
            in_flight: number(&q["in_flight"]).to_string(),
            dead: number(&q["dead"]).to_string(),
            has_dead: number(&q["dead"]) > 0.0,
            oldest: age(q["oldest_waiting_age_secs"].as_f64()),
            per_minute: number(&q["last_5m"]["per_minute"]).to_string(),
            failure_rate: format!("{:.1}%", number(&q["last_5m"]["failure_rate"]) * 100.0),
            workers: number(&q["workers"]).to_string(),
        });
    }
    let rate = if processed > 0.0 {
        failed / processed * 100.0
    } else {
        0.0
    };
    let overview = Overview {
        waiting: totals[0].to_string(),
        delayed: totals[1].to_string(),
        in_flight: totals[2].to_string(),
        dead: totals[3].to_string(),
        per_minute: format!("{per_minute:.1}"),
        failure_rate: format!("{rate:.1}%"),
    };
    (rows, overview)
}

/// `GET /ops` (signed in). The page names the operator and carries their role, which the stylesheet
/// uses to hide the buttons of actions the role may not take (the server refuses them anyway).
pub async fn page(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> Response {
    let (queues, overview, unavailable) = match queues::list(State(state.clone())).await {
        Ok(axum::Json(data)) => {
            let (rows, overview) = render_queues(&data);
            (rows, overview, false)
        }
        Err(err) => {
            tracing::warn!(error = %err, "dashboard rendered without queue figures");
            (Vec::new(), Overview::unavailable(), true)
        }
    };
    let context = minijinja::context! {
        queues => queues,
        overview => overview,
        unavailable => unavailable,
        operator => actor.name,
        role => actor.role.name(),
        environment => environment(&state),
    };
    respond(StatusCode::OK, "dashboard.html", context)
}

fn environment(state: &AppState) -> &'static str {
    if state.config.environment == mingus_common::config::Environment::Production {
        "production"
    } else {
        "development"
    }
}

/// `GET /ops/business` (signed in): the page; its script reads `/ops/business/metrics`.
pub async fn business(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Response {
    let context = minijinja::context! {
        operator => actor.name,
        role => actor.role.name(),
        environment => environment(&state),
    };
    respond(StatusCode::OK, "business.html", context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_before_it_reaches_the_page() {
        let hostile = r#"<b a="1">'&'</b>"#;
        let page = render(
            "login.html",
            minijinja::context! { message => hostile, disabled => false },
        )
        .unwrap();
        assert!(
            page.contains("&lt;b a=&quot;1&quot;&gt;&#x27;&amp;&#x27;&lt;&#x2f;b&gt;"),
            "{page}"
        );
        assert!(!page.contains(hostile));
        let row = QueueRow {
            name: hostile.to_owned(),
            ..row("x")
        };
        let page = dashboard(vec![row]);
        assert!(!page.contains(hostile), "a queue name is escaped too");
    }

    fn row(name: &str) -> QueueRow {
        QueueRow {
            name: name.to_owned(),
            paused: false,
            waiting: "0".into(),
            delayed: "0".into(),
            in_flight: "0".into(),
            dead: "0".into(),
            has_dead: false,
            oldest: "—".into(),
            per_minute: "0".into(),
            failure_rate: "0.0%".into(),
            workers: "0".into(),
        }
    }

    fn dashboard(queues: Vec<QueueRow>) -> String {
        render(
            "dashboard.html",
            minijinja::context! { queues => queues, overview => Overview::unavailable(),
            unavailable => false, operator => "op", role => "admin", environment => "development" },
        )
        .unwrap()
    }

    #[test]
    fn queue_rows_render_counts_and_the_pause_action() {
        let data = serde_json::json!({"queues": [{"queue": "bench", "paused": true, "waiting": 2, "delayed": 1,
            "in_flight": 0, "dead": 3, "oldest_waiting_age_secs": 90.0, "workers": 1,
            "last_5m": {"per_minute": 1.5, "processed": 4, "failed": 1, "failure_rate": 0.25}}]});
        let (rows, overview) = render_queues(&data);
        let page = dashboard(rows);
        assert!(
            page.contains(r#"data-action="resume" data-queue="bench""#),
            "{page}"
        );
        assert!(page.contains(r#"<td class="num bad">3</td>"#), "{page}");
        assert!(page.contains("2 min"), "{page}");
        assert!(page.contains(r#"<td class="num">25.0%</td>"#), "{page}");
        assert_eq!(overview.dead, "3");
        assert_eq!(overview.failure_rate, "25.0%");
        assert!(!dashboard(Vec::new()).contains("unavailable right now"));
    }
}
