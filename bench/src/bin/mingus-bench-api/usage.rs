//! `POST /v1/usage/{metric}`: the metered-usage consume (issue 21) — plan from the cached snapshot, then
//! one statement that stores the Idempotency-Key and counts the unit. Every request is a new use (a key
//! of its own), spread over the users (Executive: unlimited, so none is refused) and the four metrics.
//! [`contention`] then checks the other half of the target: one user with a limit, many concurrent
//! consumes, exactly the limit granted.

use mingus_bench::{Request, Scratch, Target, load};
use uuid::Uuid;

const METRICS: [&str; 4] = [
    "health_checkins_per_month",
    "financial_reports_per_month",
    "ai_insights_per_month",
    "custom_reports_per_month",
];

fn consume(token: &str, metric: &str) -> Request {
    Request::post_json(format!("/v1/usage/{metric}"), r#"{"amount":1}"#)
        .header("authorization", &format!("Bearer {token}"))
        .header("idempotency-key", &Uuid::new_v4().to_string())
}

pub fn requests(tokens: &[String], count: usize) -> Vec<Request> {
    (0..count)
        .map(|n| {
            let token = &tokens[n % tokens.len()];
            consume(token, METRICS[(n / tokens.len()) % METRICS.len()])
        })
        .collect()
}

/// Every successful consume left exactly one `usage_events` row and one unit in a counter.
pub async fn verify(scratch: &Scratch, accepted: usize) -> anyhow::Result<()> {
    let (events, units): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM usage_events), (SELECT coalesce(sum(used), 0)::bigint FROM usage_counters)",
    )
    .fetch_one(&scratch.pool)
    .await?;
    anyhow::ensure!(
        events as usize == accepted && units == events,
        "{events} usage events and {units} counted units for {accepted} accepted consumes"
    );
    Ok(())
}

/// `requests` consumes of one Professional user's `ai_insights_per_month` (50 a month) over all
/// connections at once: exactly 50 must be granted (200), the rest refused (429), and the counter must
/// say 50. Returns the number granted.
pub async fn contention(
    scratch: &Scratch,
    target: &Target,
    token: &str,
    requests: usize,
    connections: usize,
) -> anyhow::Result<usize> {
    let batch = (0..requests)
        .map(|_| consume(token, "ai_insights_per_month"))
        .collect();
    let report = load::run(target, batch, connections).await?;
    let granted = report.requests - report.errors;
    let counted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(used), 0)::bigint FROM usage_counters WHERE metric = 'ai_insights_per_month'
         AND user_id NOT IN (SELECT user_id FROM subscriptions WHERE plan_tier = 'executive')",
    )
    .fetch_one(&scratch.pool)
    .await?;
    anyhow::ensure!(
        granted == 50 && counted == 50,
        "contention: {granted} granted and {counted} counted of a limit of 50 ({} refused, first {:?})",
        report.errors,
        report.first_error
    );
    anyhow::ensure!(
        report.first_error.is_none_or(|status| status == 429),
        "contention: refusals must be 429, saw {:?}",
        report.first_error
    );
    Ok(granted)
}
