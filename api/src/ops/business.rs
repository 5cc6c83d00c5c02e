//! The business view: `GET /ops/business` (the page, `assets/business.html` + `business.js`) and
//! `GET /ops/business/metrics` (its JSON): MRR and its movements, subscribers by tier, trial conversion,
//! refunds and failed-payment recovery by month, the cohort retention grid, and the seed's three success
//! metrics against their targets. Reads the facts the nightly `analytics.revenue_rollup` job writes;
//! their definitions are `mingus_common::revenue`'s README. The currency is `?currency=`, else
//! `MINGUS_REPORTING_CURRENCY` (USD).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{db_error, query};
use crate::error::ApiError;
use crate::state::AppState;

/// The seed's success metrics: trial → paid conversion 10 %+, revenue growth 20 %+ month over month,
/// monthly retention 80 %+.
const CONVERSION_TARGET: f64 = 0.10;
const GROWTH_TARGET: f64 = 0.20;
const RETENTION_TARGET: f64 = 0.80;
/// The window of the conversion and retention figures, ending on the newest computed day.
const WINDOW_DAYS: u64 = 30;
const DEFAULT_DAYS: u64 = 90;
const MAX_DAYS: u64 = 730;
/// Cohorts the grid shows (the newest).
const COHORTS_SHOWN: i64 = 24;

#[derive(Debug, Deserialize)]
pub struct MetricsQuery {
    currency: Option<String>,
    days: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Day {
    day: NaiveDate,
    mrr: f64,
    customers: i32,
    new: f64,
    expansion: f64,
    contraction: f64,
    churned: f64,
    reactivated: f64,
    payments: f64,
    refunds: f64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct TierDay {
    day: NaiveDate,
    essentials: i64,
    professional: i64,
    executive: i64,
    trialing: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Month {
    month: NaiveDate,
    mrr_start: f64,
    mrr_end: f64,
    new: f64,
    expansion: f64,
    contraction: f64,
    churned: f64,
    reactivated: f64,
    customers_start: i64,
    customers_end: i64,
    churned_customers: i64,
    payments: f64,
    refunds: f64,
    refund_count: i64,
    failed_invoices: i64,
    recovered_invoices: i64,
    trial_starts: i64,
    trial_conversions: i64,
    trial_losses: i64,
    /// The month's rates (definitions in the revenue README), `None` where the base is 0.
    #[sqlx(skip)]
    logo_churn: Option<f64>,
    #[sqlx(skip)]
    revenue_churn: Option<f64>,
    #[sqlx(skip)]
    trial_conversion: Option<f64>,
    #[sqlx(skip)]
    recovery_rate: Option<f64>,
}

impl Month {
    fn with_rates(mut self) -> Self {
        self.logo_churn = ratio(self.churned_customers as f64, self.customers_start as f64);
        self.revenue_churn = ratio(self.churned + self.contraction, self.mrr_start);
        self.trial_conversion = ratio(
            self.trial_conversions as f64,
            (self.trial_conversions + self.trial_losses) as f64,
        );
        self.recovery_rate = ratio(self.recovered_invoices as f64, self.failed_invoices as f64);
        self
    }
}

#[derive(Debug, Serialize)]
struct Cohort {
    cohort: NaiveDate,
    customers: i32,
    /// Customers still paying at the end of month 0, 1, 2, … after the cohort's month.
    retained: Vec<i32>,
}

#[derive(Debug, Serialize)]
struct Target {
    value: Option<f64>,
    target: f64,
    met: Option<bool>,
    definition: &'static str,
}

impl Target {
    fn new(value: Option<f64>, target: f64, definition: &'static str) -> Self {
        Target {
            value,
            target,
            met: value.map(|v| v >= target),
            definition,
        }
    }
}

fn ratio(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| part / whole)
}

fn params(raw: MetricsQuery, default_currency: &str) -> Result<(String, u64), ApiError> {
    let currency = match raw.currency.filter(|c| !c.is_empty()) {
        None => default_currency.to_owned(),
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            c.to_ascii_uppercase()
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_currency",
                "currency must be a three-letter ISO code such as USD",
            ));
        }
    };
    let days = match raw.days.filter(|d| !d.is_empty()) {
        None => DEFAULT_DAYS,
        Some(d) => match d.parse::<u64>() {
            Ok(n) if (1..=MAX_DAYS).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_days",
                    format!("days must be an integer from 1 to {MAX_DAYS}"),
                ));
            }
        },
    };
    Ok((currency, days))
}

/// `GET /ops/business/metrics?currency=&days=` (any operator role).
pub async fn metrics(
    State(state): State<AppState>,
    raw: Result<Query<MetricsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (currency, days) = params(query(raw)?, &state.config.jobs.reporting_currency)?;
    let db = &state.db;
    let as_of: Option<NaiveDate> = sqlx::query_scalar("SELECT max(day) FROM revenue_daily")
        .fetch_one(db)
        .await
        .map_err(db_error)?;
    let Some(as_of) = as_of else {
        return Ok(Json(json!({
            "as_of": null, "currency": currency, "currencies": [], "mrr": 0.0, "arr": 0.0, "customers": 0,
            "daily": [], "tiers": [], "months": [], "cohorts": [],
            "targets": targets(None, None, None),
        })));
    };
    let since = as_of - chrono::Days::new(days - 1);

    let currencies: Vec<(String, f64, i32)> = sqlx::query_as(
        "SELECT currency::text, mrr::float8, customers FROM revenue_daily WHERE day = $1 ORDER BY mrr DESC, currency",
    )
    .bind(as_of)
    .fetch_all(db)
    .await
    .map_err(db_error)?;
    let daily: Vec<Day> = sqlx::query_as(
        "SELECT day, mrr::float8 AS mrr, customers, new_mrr::float8 AS new, expansion_mrr::float8 AS expansion,
                contraction_mrr::float8 AS contraction, churned_mrr::float8 AS churned,
                reactivated_mrr::float8 AS reactivated, payments::float8 AS payments, refunds::float8 AS refunds
         FROM revenue_daily WHERE currency = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
    )
    .bind(&currency)
    .bind(since)
    .bind(as_of)
    .fetch_all(db)
    .await
    .map_err(db_error)?;
    let tiers: Vec<TierDay> = sqlx::query_as(
        "SELECT day,
                coalesce(sum(subscribers) FILTER (WHERE plan_tier = 'essentials'), 0) AS essentials,
                coalesce(sum(subscribers) FILTER (WHERE plan_tier = 'professional'), 0) AS professional,
                coalesce(sum(subscribers) FILTER (WHERE plan_tier = 'executive'), 0) AS executive,
                coalesce(sum(trialing), 0) AS trialing
         FROM revenue_daily_tiers WHERE day BETWEEN $1 AND $2 GROUP BY day ORDER BY day",
    )
    .bind(since)
    .bind(as_of)
    .fetch_all(db)
    .await
    .map_err(db_error)?;
    let months = months(&state, &currency, as_of).await?;
    let cohorts = cohorts(&state).await?;

    // The seed's metrics over the last 30 days (conversion, retention) and the last month (growth).
    let window_start = as_of - chrono::Days::new(WINDOW_DAYS - 1);
    let (conversions, losses): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(trial_conversions), 0)::int8, coalesce(sum(trial_losses), 0)::int8
         FROM revenue_daily_tiers WHERE day BETWEEN $1 AND $2",
    )
    .bind(window_start)
    .bind(as_of)
    .fetch_one(db)
    .await
    .map_err(db_error)?;
    let (churned_customers, customers_before): (i64, Option<i32>) = sqlx::query_as(
        "SELECT coalesce((SELECT sum(churned_customers) FROM revenue_daily
                          WHERE currency = $1 AND day BETWEEN $2 AND $3), 0)::int8,
                (SELECT customers FROM revenue_daily WHERE currency = $1 AND day = $2 - 1)",
    )
    .bind(&currency)
    .bind(window_start)
    .bind(as_of)
    .fetch_one(db)
    .await
    .map_err(db_error)?;
    let month_ago = as_of.checked_sub_months(Months::new(1)).unwrap_or(as_of);
    let mrr_month_ago: Option<f64> = sqlx::query_scalar(
        "SELECT mrr::float8 FROM revenue_daily WHERE currency = $1 AND day = $2",
    )
    .bind(&currency)
    .bind(month_ago)
    .fetch_optional(db)
    .await
    .map_err(db_error)?;

    let (mrr, customers) = currencies
        .iter()
        .find(|(c, ..)| *c == currency)
        .map_or((0.0, 0), |(_, mrr, customers)| (*mrr, *customers));
    let conversion = ratio(conversions as f64, (conversions + losses) as f64);
    let growth = mrr_month_ago
        .and_then(|before| ratio(mrr, before))
        .map(|r| r - 1.0);
    let retention = customers_before
        .and_then(|before| ratio(churned_customers as f64, f64::from(before)))
        .map(|churn| 1.0 - churn);
    let others: Vec<Value> = currencies
        .iter()
        .filter(|(c, ..)| *c != currency)
        .map(|(c, mrr, customers)| json!({"currency": c, "mrr": mrr, "customers": customers}))
        .collect();
    Ok(Json(json!({
        "as_of": as_of,
        "currency": currency,
        "currencies": others,
        "mrr": mrr,
        "arr": mrr * 12.0,
        "customers": customers,
        "daily": daily,
        "tiers": tiers,
        "months": months,
        "cohorts": cohorts,
        "targets": targets(conversion, growth, retention),
    })))
}

fn targets(conversion: Option<f64>, growth: Option<f64>, retention: Option<f64>) -> Value {
    json!({
        "conversion": Target::new(conversion, CONVERSION_TARGET,
            "trials that ended in the last 30 days and converted to paid, of all trials that ended"),
        "revenue_growth": Target::new(growth, GROWTH_TARGET,
            "MRR on the newest day over MRR one month before, minus 1"),
        "retention": Target::new(retention, RETENTION_TARGET,
            "1 − customers churned in the last 30 days ÷ paying customers the day before"),
    })
}

/// The last 12 months with facts: movements summed, MRR and customers at the start derived from the end
/// and the movements (MRR(end) = MRR(start) + new + reactivated + expansion − contraction − churned).
async fn months(
    state: &AppState,
    currency: &str,
    as_of: NaiveDate,
) -> Result<Vec<Month>, ApiError> {
    let months: Vec<Month> = sqlx::query_as(
        "WITH d AS (
             SELECT date_trunc('month', day)::date AS month, r.*
             FROM revenue_daily r
             WHERE currency = $1 AND day <= $2 AND day >= date_trunc('month', $2 - interval '11 months')
         ), m AS (
             SELECT month,
                 (array_agg(mrr ORDER BY day DESC))[1] AS mrr_end,
                 (array_agg(customers ORDER BY day DESC))[1]::int8 AS customers_end,
                 sum(new_mrr) AS new, sum(expansion_mrr) AS expansion, sum(contraction_mrr) AS contraction,
                 sum(churned_mrr) AS churned, sum(reactivated_mrr) AS reactivated,
                 sum(new_customers + reactivated_customers - churned_customers)::int8 AS customers_net,
                 sum(churned_customers)::int8 AS churned_customers,
                 sum(payments) AS payments, sum(refunds) AS refunds, sum(refund_count)::int8 AS refund_count,
                 sum(failed_invoices)::int8 AS failed_invoices,
                 sum(recovered_invoices)::int8 AS recovered_invoices
             FROM d GROUP BY month
         ), t AS (
             SELECT date_trunc('month', day)::date AS month, sum(trial_starts)::int8 AS trial_starts,
                    sum(trial_conversions)::int8 AS trial_conversions, sum(trial_losses)::int8 AS trial_losses
             FROM revenue_daily_tiers
             WHERE day <= $2 AND day >= date_trunc('month', $2 - interval '11 months')
             GROUP BY 1
         )
         SELECT m.month, (m.mrr_end - m.new - m.reactivated - m.expansion + m.contraction + m.churned)::float8
                    AS mrr_start,
                m.mrr_end::float8 AS mrr_end, m.new::float8 AS new, m.expansion::float8 AS expansion,
                m.contraction::float8 AS contraction, m.churned::float8 AS churned,
                m.reactivated::float8 AS reactivated, m.customers_end - m.customers_net AS customers_start,
                m.customers_end, m.churned_customers, m.payments::float8 AS payments,
                m.refunds::float8 AS refunds, m.refund_count, m.failed_invoices, m.recovered_invoices,
                coalesce(t.trial_starts, 0) AS trial_starts, coalesce(t.trial_conversions, 0) AS trial_conversions,
                coalesce(t.trial_losses, 0) AS trial_losses
         FROM m LEFT JOIN t USING (month) ORDER BY m.month",
    )
    .bind(currency)
    .bind(as_of)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    Ok(months.into_iter().map(Month::with_rates).collect())
}

/// The newest cohorts, each with its retention row.
async fn cohorts(state: &AppState) -> Result<Vec<Cohort>, ApiError> {
    let rows: Vec<(NaiveDate, i16, i32, i32)> = sqlx::query_as(
        "SELECT cohort_month, month_offset, customers, retained FROM revenue_cohorts
         WHERE cohort_month >= (SELECT max(cohort_month) FROM revenue_cohorts) - make_interval(months => $1::int - 1)
         ORDER BY cohort_month, month_offset",
    )
    .bind(COHORTS_SHOWN)
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let mut cohorts: Vec<Cohort> = Vec::new();
    for (month, _, customers, retained) in rows {
        match cohorts.last_mut() {
            Some(last) if last.cohort == month => last.retained.push(retained),
            _ => cohorts.push(Cohort {
                cohort: month,
                customers,
                retained: vec![retained],
            }),
        }
    }
    Ok(cohorts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(currency: Option<&str>, days: Option<&str>) -> MetricsQuery {
        MetricsQuery {
            currency: currency.map(str::to_owned),
            days: days.map(str::to_owned),
        }
    }

    #[test]
    fn parameters_default_and_refuse_what_they_cannot_mean() {
        assert_eq!(
            params(q(None, None), "GBP").unwrap(),
            ("GBP".to_owned(), 90)
        );
        assert_eq!(
            params(q(Some("eur"), Some("730")), "USD").unwrap(),
            ("EUR".to_owned(), 730)
        );
        for (currency, days) in [
            (Some("EURO"), None),
            (Some("U$D"), None),
            (None, Some("0")),
            (None, Some("731")),
            (None, Some("-1")),
        ] {
            assert!(params(q(currency, days), "USD").is_err());
        }
    }

    #[test]
    fn targets_are_met_at_or_above_and_unknown_without_data() {
        let t = targets(Some(0.10), Some(0.19), None);
        assert_eq!(t["conversion"]["met"], true);
        assert_eq!(t["revenue_growth"]["met"], false);
        assert_eq!(t["retention"]["met"], Value::Null);
        assert_eq!(ratio(1.0, 0.0), None);
    }
}
