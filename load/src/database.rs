//! What the database says about the run: statement times from `pg_stat_statements` (when the server
//! loads it) and each queue's enqueue→done latency from the platform's job ledger (`job_runs`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// Statement times, or why there are none.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Statements {
    NotAvailable {
        reason: String,
    },
    Measured {
        calls: i64,
        p95_mean_ms: f64,
        share_under_100ms: f64,
        slowest: Vec<(String, i64, f64)>,
    },
}

/// A snapshot of `pg_stat_statements` for this database: (queryid, query, calls, total ms).
pub type Snapshot = Vec<(i64, String, i64, f64)>;

/// Takes a snapshot, or says why it cannot (the extension needs `shared_preload_libraries`, which only a
/// server restart changes: the tool never restarts a shared server).
pub async fn snapshot(pool: &PgPool) -> Result<Snapshot, String> {
    let preload: String = sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())?;
    if !preload.split(',').any(|l| l.trim() == "pg_stat_statements") {
        return Err(format!(
            "pg_stat_statements is not in shared_preload_libraries ({preload:?}) on this server; \
             a private PostgreSQL started by the tool is not implemented yet"
        ));
    }
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(pool)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query_as(
        "SELECT queryid, left(query, 200), calls, total_exec_time FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| e.to_string())
}

/// The delta between two snapshots. Only totals per statement exist, so the p95 is over statements'
/// mean times weighted by their calls (a statement whose mean is under 100 ms counts all its calls as
/// under 100 ms): an estimate, named so in the report.
pub fn delta(before: &Snapshot, after: &Snapshot) -> Statements {
    let mut rows: Vec<(String, i64, f64)> = after
        .iter()
        .filter_map(|(id, query, calls, total)| {
            let (c0, t0) = before
                .iter()
                .find(|b| b.0 == *id)
                .map_or((0, 0.0), |b| (b.2, b.3));
            let calls = calls - c0;
            (calls > 0).then(|| (query.clone(), calls, (total - t0) / calls as f64))
        })
        .collect();
    rows.sort_by(|a, b| a.2.total_cmp(&b.2));
    let calls: i64 = rows.iter().map(|r| r.1).sum();
    let mut seen = 0;
    let mut p95 = 0.0;
    for row in &rows {
        seen += row.1;
        if seen as f64 >= 0.95 * calls as f64 {
            p95 = row.2;
            break;
        }
    }
    let under: i64 = rows.iter().filter(|r| r.2 < 100.0).map(|r| r.1).sum();
    let slowest = rows.iter().rev().take(5).cloned().collect();
    Statements::Measured {
        calls,
        p95_mean_ms: p95,
        share_under_100ms: if calls == 0 {
            1.0
        } else {
            under as f64 / calls as f64
        },
        slowest,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueLatency {
    pub queue: String,
    pub jobs: i64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

/// Enqueue→done of the jobs that succeeded during the run, per queue, from the job ledger.
pub async fn queue_latency(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> anyhow::Result<Vec<QueueLatency>> {
    let rows: Vec<(String, i64, f64, f64, f64)> = sqlx::query_as(
        "SELECT queue, count(*),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), max(ms)
         FROM (SELECT queue, extract(epoch FROM finished_at - enqueued_at)::float8 * 1000 AS ms
               FROM job_runs WHERE status = 'succeeded' AND finished_at >= $1) runs
         GROUP BY queue ORDER BY queue",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(queue, jobs, p50_ms, p95_ms, max_ms)| QueueLatency {
            queue,
            jobs,
            p50_ms,
            p95_ms,
            max_ms,
        })
        .collect())
}

/// How the Stripe events the stream sent ended (by `stripe_events.status`), after the run.
pub async fn stripe_outcomes(
    pool: &PgPool,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM stripe_events GROUP BY status")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_deltas_weight_means_by_calls() {
        let before = vec![(1, "fast".to_owned(), 100, 100.0)];
        let after = vec![
            (1, "fast".to_owned(), 1100, 1100.0),
            (2, "slow".to_owned(), 10, 2000.0),
        ];
        let Statements::Measured {
            calls,
            p95_mean_ms,
            share_under_100ms,
            ..
        } = delta(&before, &after)
        else {
            panic!()
        };
        assert_eq!(calls, 1010);
        assert_eq!(p95_mean_ms, 1.0);
        assert!((share_under_100ms - 1000.0 / 1010.0).abs() < 1e-9);
    }
}
