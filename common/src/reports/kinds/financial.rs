//! The financial summary: the questionnaires the user submitted during the period.
//!
//! - `submissions`: how many were submitted in the period.
//! - `latest`: the figures of the latest one (by `submitted_at`, then id) — the period's closing state.
//! - `average`: each amount averaged over the period's submissions; its ratios are those of the
//!   averages (so the savings rate is `(Σ income − Σ expenses) / Σ income`, not a mean of rates).
//! - `monthly`: for each calendar month (user's zone) with a submission, the month's count and the
//!   figures of its latest submission, oldest month first.
//!
//! The figures of a submission: its amounts, `monthly_savings = income − expenses` (negative when
//! spending exceeds income), `savings_rate = (income − expenses) / income`, `debt_to_income =
//! total_debt / (12 × monthly income)` (debt against a year's income, as the analytics rollup defines
//! it; the questionnaire has no debt-payment figure), `emergency_fund_months = emergency_fund /
//! monthly_expenses`. A ratio whose denominator is zero is `null`; ratios are not clamped.

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use sqlx::PgConnection;

use super::Window;
use super::number::{MONEY_DP, RATIO_DP, decimal, money, quotient};

/// The amounts the ratios are computed from (single values, or averages).
#[derive(Debug, Clone, Copy, Default)]
struct Amounts {
    income: Option<Decimal>,
    expenses: Option<Decimal>,
    savings: Option<Decimal>,
    debt: Option<Decimal>,
    fund: Option<Decimal>,
}

impl Amounts {
    fn figures(&self) -> Map<String, Value> {
        let Amounts {
            income,
            expenses,
            savings,
            debt,
            fund,
        } = *self;
        let saved = income.zip(expenses).map(|(i, e)| i - e);
        let yearly_income = income.map(|i| i * Decimal::from(12));
        let mut map = Map::new();
        map.insert("monthly_income".into(), money(income));
        map.insert("monthly_expenses".into(), money(expenses));
        map.insert("monthly_savings".into(), money(saved));
        map.insert("current_savings".into(), money(savings));
        map.insert("total_debt".into(), money(debt));
        map.insert("emergency_fund".into(), money(fund));
        map.insert("savings_rate".into(), quotient(saved, income, RATIO_DP));
        map.insert(
            "debt_to_income".into(),
            quotient(debt, yearly_income, RATIO_DP),
        );
        map.insert(
            "emergency_fund_months".into(),
            quotient(fund, expenses, MONEY_DP),
        );
        map
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Submission {
    month: String,
    in_month: i64,
    submitted_at: DateTime<Utc>,
    monthly_income: Decimal,
    monthly_expenses: Decimal,
    current_savings: Decimal,
    total_debt: Decimal,
    emergency_fund: Decimal,
    financial_health_score: Option<i16>,
    financial_health_level: Option<String>,
}

impl Submission {
    fn figures(&self) -> Map<String, Value> {
        let mut map = Amounts {
            income: Some(self.monthly_income),
            expenses: Some(self.monthly_expenses),
            savings: Some(self.current_savings),
            debt: Some(self.total_debt),
            fund: Some(self.emergency_fund),
        }
        .figures();
        map.insert(
            "financial_health_score".into(),
            json!(self.financial_health_score),
        );
        map.insert(
            "financial_health_level".into(),
            json!(self.financial_health_level),
        );
        map
    }
}

/// Each month's latest submission (with the month's count), oldest month first.
async fn monthly_latest(conn: &mut PgConnection, w: &Window) -> anyhow::Result<Vec<Submission>> {
    sqlx::query_as(
        "SELECT DISTINCT ON (month) month, in_month, submitted_at, monthly_income, monthly_expenses,
                current_savings, total_debt, emergency_fund, financial_health_score, financial_health_level
         FROM (SELECT f.*, to_char(f.submitted_at AT TIME ZONE $4, 'YYYY-MM') AS month,
                      count(*) OVER (PARTITION BY to_char(f.submitted_at AT TIME ZONE $4, 'YYYY-MM')) AS in_month
               FROM financial_questionnaire_submissions f
               WHERE f.user_id = $1 AND f.submitted_at >= $2 AND f.submitted_at < $3) s
         ORDER BY month, submitted_at DESC, id DESC",
    )
    .bind(w.user_id)
    .bind(w.start)
    .bind(w.end)
    .bind(&w.timezone)
    .fetch_all(conn)
    .await
    .context("read the period's questionnaire submissions")
}

type Sums = (
    i64,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
    Option<Decimal>,
);

/// The period's averages. The sums are exact NUMERICs; only the division rounds.
async fn average(conn: &mut PgConnection, w: &Window) -> anyhow::Result<Map<String, Value>> {
    let (count, income, expenses, savings, debt, fund, score): Sums = sqlx::query_as(
        "SELECT count(*), sum(monthly_income), sum(monthly_expenses), sum(current_savings),
                sum(total_debt), sum(emergency_fund), avg(financial_health_score)
         FROM financial_questionnaire_submissions
         WHERE user_id = $1 AND submitted_at >= $2 AND submitted_at < $3",
    )
    .bind(w.user_id)
    .bind(w.start)
    .bind(w.end)
    .fetch_one(conn)
    .await
    .context("average the period's questionnaire submissions")?;
    let per_submission =
        |sum: Option<Decimal>| sum.filter(|_| count > 0).map(|s| s / Decimal::from(count));
    let mut map = Amounts {
        income: per_submission(income),
        expenses: per_submission(expenses),
        savings: per_submission(savings),
        debt: per_submission(debt),
        fund: per_submission(fund),
    }
    .figures();
    map.insert("financial_health_score".into(), decimal(score, MONEY_DP));
    Ok(map)
}

pub(super) async fn body(
    conn: &mut PgConnection,
    w: &Window,
) -> anyhow::Result<Map<String, Value>> {
    let months = monthly_latest(conn, w).await?;
    let submissions: i64 = months.iter().map(|m| m.in_month).sum();
    let latest = match months.last() {
        Some(last) => {
            let mut map = last.figures();
            map.insert(
                "submitted_at".into(),
                json!(last.submitted_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
            );
            map
        }
        None => {
            let mut map = Amounts::default().figures();
            for key in [
                "financial_health_score",
                "financial_health_level",
                "submitted_at",
            ] {
                map.insert(key.into(), Value::Null);
            }
            map
        }
    };
    let monthly: Vec<Value> = months
        .iter()
        .map(|m| {
            let mut map = m.figures();
            map.insert("month".into(), json!(m.month));
            map.insert("submissions".into(), json!(m.in_month));
            Value::Object(map)
        })
        .collect();
    let mut body = Map::new();
    body.insert("submissions".into(), json!(submissions));
    body.insert("latest".into(), Value::Object(latest));
    body.insert("average".into(), Value::Object(average(conn, w).await?));
    body.insert("monthly".into(), Value::Array(monthly));
    Ok(body)
}
