//! `POST /v1/reports`: the frontend's main enqueue path — entitlement check, usage consumed, `reports`
//! row and outbox row in one transaction, job pushed to Redis. Every request is a new report (no
//! `Idempotency-Key`), spread over the users and the standard kinds.

use mingus_bench::{Request, Scratch};

const KINDS: [&str; 3] = ["financial", "health", "goals"];

pub fn requests(tokens: &[String], count: usize) -> Vec<Request> {
    let end = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let start = end - chrono::Days::new(29);
    (0..count)
        .map(|n| {
            let token = &tokens[n % tokens.len()];
            let kind = KINDS[(n / tokens.len()) % KINDS.len()];
            let body = format!(
                r#"{{"kind":"{kind}","period_start":"{start}","period_end":"{end}","format":"json"}}"#
            );
            Request::post_json("/v1/reports", body)
                .header("authorization", &format!("Bearer {token}"))
        })
        .collect()
}

/// Every accepted request left a `queued` report with its outbox row.
pub async fn verify(scratch: &Scratch, accepted: usize) -> anyhow::Result<()> {
    let (reports, staged): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(o.job_id) FROM reports r LEFT JOIN job_outbox o ON o.job_id = r.id",
    )
    .fetch_one(&scratch.pool)
    .await?;
    anyhow::ensure!(
        reports as usize == accepted && staged == reports,
        "{reports} reports and {staged} outbox rows for {accepted} accepted requests"
    );
    Ok(())
}
