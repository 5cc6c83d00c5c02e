//! `GET /v1/analytics?from&to`: the account's daily `user_analytics` rows (issue 21), which the nightly
//! rollup builds.
//!
//! **How far back, by plan** (`basic_analytics`' access level, as `pricing_tiers` gives it): `basic`
//! (Essentials) sees the last 30 days — today (UTC) and the 29 days before; `premium` (Professional) and
//! `unlimited` (Executive) the whole history. A window reaching further back than the plan shows is cut
//! at `available_from` and answered with `limited_by_plan: true` rather than refused, so the app can show
//! what there is and say why the rest is missing. No `basic_analytics` → 403 with the reason as the code.
//!
//! **The window**: `from` and `to` are inclusive `YYYY-MM-DD` dates (the rollup's days, in the user's own
//! zone); default the last 30 days up to today; at most 366 days per request.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Days, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::reports::error_with_code;
use super::{Principal, Scope, TeamRole, db_error, dependency_error};
use crate::error::ApiError;
use crate::state::AppState;

/// The feature whose level decides how much history a plan shows.
const BASIC_ANALYTICS: &str = "basic_analytics";
/// Days the `basic` level shows, today included.
const BASIC_DAYS: u64 = 30;
/// Days one request may cover.
const MAX_DAYS: i64 = 366;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowParams {
    from: Option<String>,
    to: Option<String>,
}

/// An inclusive range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The query's window: strict dates, `from ≤ to`, at most [`MAX_DAYS`]; defaults to the last 30 days.
pub fn window(
    params: Result<Query<WindowParams>, QueryRejection>,
    today: NaiveDate,
) -> Result<Window, ApiError> {
    let Query(params) = params
        .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))?;
    let date = |raw: Option<String>, name: &str| -> Result<Option<NaiveDate>, ApiError> {
        raw.map(|raw| {
            NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
                .ok()
                .filter(|_| raw.len() == 10)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("{name} must be a date written YYYY-MM-DD"),
                    )
                })
        })
        .transpose()
    };
    let to = date(params.to, "to")?.unwrap_or(today);
    let from = date(params.from, "from")?
        .unwrap_or_else(|| to.checked_sub_days(Days::new(BASIC_DAYS - 1)).unwrap_or(to));
    if from > to {
        return Err(ApiError::unprocessable(
            "period_inverted",
            "from must not be after to",
        ));
    }
    if (to - from).num_days() + 1 > MAX_DAYS {
        return Err(ApiError::unprocessable(
            "period_too_long",
            format!("a request covers at most {MAX_DAYS} days"),
        ));
    }
    Ok(Window { from, to })
}

/// The first day a plan at `level` shows (`None`: the whole history).
pub fn available_from(level: &str, today: NaiveDate) -> Option<NaiveDate> {
    (level == "basic").then(|| {
        today
            .checked_sub_days(Days::new(BASIC_DAYS - 1))
            .unwrap_or(today)
    })
}

/// One `user_analytics` row as JSON (ratios and percentages as decimal strings, as stored).
pub const DAY_JSON: &str = "jsonb_build_object(
    'date', a.date, 'login_count', a.login_count,
    'session_duration_minutes', a.session_duration_minutes,
    'features_used', a.features_used, 'pages_visited', a.pages_visited,
    'financial_health_score', a.financial_health_score, 'savings_rate', a.savings_rate::text,
    'debt_to_income_ratio', a.debt_to_income_ratio::text,
    'emergency_fund_coverage', a.emergency_fund_coverage::text,
    'average_stress_level', a.average_stress_level, 'average_energy_level', a.average_energy_level,
    'average_mood_rating', a.average_mood_rating,
    'health_checkins_completed', a.health_checkins_completed, 'goals_created', a.goals_created,
    'goals_completed', a.goals_completed,
    'goals_progress_percentage', a.goals_progress_percentage::text)";

/// `GET /v1/analytics` → `{user_id, from, to, available_from, limited_by_plan, days: [...]}`, oldest
/// day first; days without a row are absent.
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    params: Result<Query<WindowParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    principal.require(Scope::AnalyticsRead)?;
    let account = principal.account(TeamRole::Viewer)?;
    let now = Utc::now();
    let today = now.date_naive();
    let requested = window(params, today)?;
    let snapshot = state
        .entitlements
        .snapshot(account, now)
        .await
        .map_err(dependency_error)?;
    let Some(grant) = snapshot.grant_at(BASIC_ANALYTICS, now) else {
        let reason = snapshot.refusal_at(BASIC_ANALYTICS, now);
        let code = match serde_json::to_value(reason) {
            Ok(Value::String(code)) => code,
            _ => "feature_not_included".to_owned(),
        };
        let mut details = Map::new();
        details.insert("reason".into(), json!(reason));
        details.insert("tier".into(), json!(snapshot.tier));
        details.insert("feature".into(), json!(BASIC_ANALYTICS));
        return Ok(error_with_code(
            StatusCode::FORBIDDEN,
            code,
            "analytics need a plan that includes basic_analytics",
            details,
        ));
    };
    let earliest = available_from(&grant.level, today);
    let from = earliest.map_or(requested.from, |earliest| requested.from.max(earliest));
    let days = days_of(&state, account, from, requested.to).await?;
    Ok(Json(json!({
        "user_id": account,
        "from": from,
        "to": requested.to,
        "available_from": earliest,
        "limited_by_plan": from > requested.from,
        "days": days,
    }))
    .into_response())
}

/// The account's rows of `[from, to]` (empty when `from > to`, i.e. the window lies before the plan's
/// history).
async fn days_of(
    state: &AppState,
    user_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Value, ApiError> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT coalesce(jsonb_agg({DAY_JSON} ORDER BY a.date), '[]'::jsonb)
         FROM user_analytics a WHERE a.user_id = $1 AND a.date BETWEEN $2 AND $3"
    )))
    .bind(user_id)
    .bind(from)
    .bind(to)
    .fetch_one(&state.db)
    .await
    .map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn basic_shows_thirty_days_with_today_and_the_others_everything() {
        let today = day("2026-03-01");
        assert_eq!(available_from("basic", today), Some(day("2026-01-31")));
        assert_eq!(available_from("premium", today), None);
        assert_eq!(available_from("unlimited", today), None);
    }
}
