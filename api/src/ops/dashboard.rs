//! `GET /ops`: the dashboard, rendered on the server with the current queue figures, then kept live by a
//! small script (`assets/ops.js`) that polls the JSON routes every two seconds. No build step: the
//! assets are compiled into the binary.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use super::actor::Actor;
use super::queues;
use crate::state::AppState;

const DASHBOARD: &str = include_str!("assets/dashboard.html");
const LOGIN: &str = include_str!("assets/login.html");
const SCRIPT: &str = include_str!("assets/ops.js");
const STYLE: &str = include_str!("assets/ops.css");

/// Scripts and styles only from our own files; no framing; forms post only to us.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
    let message = message
        .map(|m| format!(r#"<p class="error" role="alert">{}</p>"#, escape(m)))
        .unwrap_or_default();
    html(status, LOGIN.replace("{{message}}", &message))
}

pub fn disabled_page() -> Response {
    let message = r#"<p class="error" role="alert">The operator dashboard is disabled: MINGUS_ADMIN_TOKEN is not configured on this server.</p>"#;
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        LOGIN
            .replace("{{message}}", message)
            .replace(r#"<form"#, r#"<form hidden"#),
    )
}

/// `GET /ops/assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "ops.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "ops.css" => (STYLE, "text/css; charset=utf-8"),
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

/// The queue rows and overview figures as of now, so the page is useful before the script runs.
fn render_queues(data: &Value) -> (String, [String; 6]) {
    let empty = Vec::new();
    let queues = data["queues"].as_array().unwrap_or(&empty);
    let mut rows = String::new();
    let mut totals = [0.0f64; 4];
    let (mut per_minute, mut processed, mut failed) = (0.0, 0.0, 0.0);
    for q in queues {
        let name = escape(q["queue"].as_str().unwrap_or(""));
        let paused = q["paused"].as_bool().unwrap_or(false);
        for (total, key) in totals
            .iter_mut()
            .zip(["waiting", "delayed", "in_flight", "dead"])
        {
            *total += number(&q[key]);
        }
        per_minute += number(&q["last_5m"]["per_minute"]);
        processed += number(&q["last_5m"]["processed"]);
        failed += number(&q["last_5m"]["failed"]);
        let (pill, action, label) = if paused {
            (
                r#"<span class="pill paused">paused</span>"#,
                "resume",
                "Resume",
            )
        } else {
            (
                r#"<span class="pill running">running</span>"#,
                "pause",
                "Pause",
            )
        };
        rows.push_str(&format!(
            r#"<tr data-queue="{name}"><td class="name">{name}</td><td>{pill}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num{}">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{:.1}%</td><td class="num">{}</td><td><button type="button" class="small" data-action="{action}" data-queue="{name}">{label}</button></td></tr>"#,
            number(&q["waiting"]),
            number(&q["delayed"]),
            number(&q["in_flight"]),
            if number(&q["dead"]) > 0.0 { " bad" } else { "" },
            number(&q["dead"]),
            age(q["oldest_waiting_age_secs"].as_f64()),
            number(&q["last_5m"]["per_minute"]),
            number(&q["last_5m"]["failure_rate"]) * 100.0,
            number(&q["workers"]),
        ));
    }
    let rate = if processed > 0.0 {
        failed / processed * 100.0
    } else {
        0.0
    };
    let overview = [
        format!("{}", totals[0]),
        format!("{}", totals[1]),
        format!("{}", totals[2]),
        format!("{}", totals[3]),
        format!("{per_minute:.1}"),
        format!("{rate:.1}%"),
    ];
    (rows, overview)
}

/// `GET /ops` (signed in). The page names the operator and carries their role, which the stylesheet
/// uses to hide the buttons of actions the role may not take (the server refuses them anyway).
pub async fn page(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> Response {
    let (rows, overview, notice) = match queues::list(State(state.clone())).await {
        Ok(axum::Json(data)) => {
            let (rows, overview) = render_queues(&data);
            (rows, overview, String::new())
        }
        Err(err) => {
            tracing::warn!(error = %err, "dashboard rendered without queue figures");
            (
                String::new(),
                std::array::from_fn(|_| "—".to_owned()),
                r#"<p class="notice bad">Queue figures are unavailable right now (Redis or PostgreSQL did not answer); retrying…</p>"#.to_owned(),
            )
        }
    };
    let mut body = DASHBOARD
        .replace("{{queue_rows}}", &rows)
        .replace("{{notice}}", &notice)
        .replace("{{operator}}", &escape(&actor.name))
        .replace("{{role}}", actor.role.name())
        .replace(
            "{{environment}}",
            if state.config.environment == mingus_common::config::Environment::Production {
                "production"
            } else {
                "development"
            },
        );
    for (key, value) in [
        "waiting",
        "delayed",
        "in_flight",
        "dead",
        "per_minute",
        "failure_rate",
    ]
    .iter()
    .zip(overview)
    {
        body = body.replace(&format!("{{{{{key}}}}}"), &escape(&value));
    }
    html(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_before_it_reaches_the_page() {
        assert_eq!(
            escape(r#"<b a="1">'&'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn queue_rows_render_counts_and_the_pause_action() {
        let data = serde_json::json!({"queues": [{"queue": "bench", "paused": true, "waiting": 2, "delayed": 1,
            "in_flight": 0, "dead": 3, "oldest_waiting_age_secs": 90.0, "workers": 1,
            "last_5m": {"per_minute": 1.5, "processed": 4, "failed": 1, "failure_rate": 0.25}}]});
        let (rows, overview) = render_queues(&data);
        assert!(rows.contains(r#"data-action="resume""#), "{rows}");
        assert!(rows.contains("2 min"), "{rows}");
        assert_eq!(overview[3], "3");
        assert_eq!(overview[5], "25.0%");
    }
}
