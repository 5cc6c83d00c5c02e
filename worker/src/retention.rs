//! Bounded, incremental retention (NOTES-apalis defect 9: nothing trims apalis-redis' `done`/`dead`/`data`/
//! `meta:*`, and its `vacuum` is one O(N) script). Each step removes at most [`BATCH`] jobs per script call,
//! so Redis never blocks on a large set, and a run stops after [`MAX_BATCHES`] calls per queue.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use mingus_common::jobs::{Enqueuer, QueueKeys};
use mingus_common::queue::Queue;
use redis::Script;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

const BATCH: usize = 500;
const MAX_BATCHES: usize = 2_000;

static REMOVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/remove_finished.lua")));

async fn remove(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
    ids: &[String],
) -> redis::RedisResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut invocation = REMOVE.prepare_invoke();
    invocation
        .key(keys.data())
        .key(keys.meta_prefix())
        .key(keys.done())
        .key(keys.dead())
        .key(keys.finished_index());
    for id in ids {
        invocation.arg(id);
    }
    invocation.invoke_async(conn).await
}

/// Removes finished jobs older than `max_age`, then the oldest beyond `max_count`, in every queue.
/// Returns how many jobs were removed.
pub async fn trim_redis(
    enqueuer: &Enqueuer,
    redis: &ConnectionManager,
    max_count: usize,
    max_age: Duration,
) -> redis::RedisResult<usize> {
    let mut conn = redis.clone();
    let cutoff_ms = Utc::now().timestamp_millis() - max_age.as_millis() as i64;
    let mut removed = 0;
    for queue in Queue::ALL {
        let keys = enqueuer.keys(queue);
        for _ in 0..MAX_BATCHES {
            let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(keys.finished_index())
                .arg("-inf")
                .arg(cutoff_ms)
                .arg("LIMIT")
                .arg(0)
                .arg(BATCH)
                .query_async(&mut conn)
                .await?;
            removed += remove(&mut conn, &keys, &ids).await?;
            if ids.len() < BATCH {
                break;
            }
        }
        for _ in 0..MAX_BATCHES {
            let count: usize = redis::cmd("ZCARD")
                .arg(keys.finished_index())
                .query_async(&mut conn)
                .await?;
            let excess = count.saturating_sub(max_count).min(BATCH);
            if excess == 0 {
                break;
            }
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(keys.finished_index())
                .arg(0)
                .arg(excess - 1)
                .query_async(&mut conn)
                .await?;
            removed += remove(&mut conn, &keys, &ids).await?;
        }
        removed += trim_unindexed(&mut conn, &keys, cutoff_ms / 1000).await?;
    }
    Ok(removed)
}

/// Finished jobs the index never saw (a ledger batch lost to a crash): walk `done` and `dead` with SSCAN
/// and remove those whose apalis `done_at` (seconds) is older than the cutoff.
async fn trim_unindexed(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
    cutoff_secs: i64,
) -> redis::RedisResult<usize> {
    let mut removed = 0;
    for set in [keys.done(), keys.dead()] {
        let mut cursor: u64 = 0;
        for _ in 0..MAX_BATCHES {
            let (next, ids): (u64, Vec<String>) = redis::cmd("SSCAN")
                .arg(&set)
                .arg(cursor)
                .arg("COUNT")
                .arg(BATCH)
                .query_async(conn)
                .await?;
            let mut old = Vec::new();
            for id in ids {
                let indexed: Option<f64> = redis::cmd("ZSCORE")
                    .arg(keys.finished_index())
                    .arg(&id)
                    .query_async(conn)
                    .await?;
                if indexed.is_some() {
                    continue;
                }
                let done_at: Option<i64> = redis::cmd("HGET")
                    .arg(keys.meta(&id))
                    .arg("done_at")
                    .query_async(conn)
                    .await?;
                if done_at.is_none_or(|t| t <= cutoff_secs) {
                    old.push(id);
                }
            }
            removed += remove(conn, keys, &old).await?;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    Ok(removed)
}

/// Deletes ledger rows older than `keep`, ten thousand at a time. Returns how many went.
pub async fn trim_ledger(pool: &PgPool, keep: Duration) -> Result<u64, sqlx::Error> {
    trim(
        pool,
        keep,
        "DELETE FROM job_runs WHERE id IN (SELECT id FROM job_runs WHERE finished_at < $1 LIMIT 10000)",
    )
    .await
}

/// How many rows [`trim_history`] removed from each table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HistoryTrimmed {
    pub ledger: u64,
    pub outbox: u64,
    pub cron_runs: u64,
}

/// Deletes the job history older than `keep`: ledger rows, *completed* outbox rows (a row still pending
/// is a job to re-drive, kept whatever its age) and scheduler runs (the schedule's cursor lives in
/// `cron_schedules`, so a deleted run can never fire its tick again).
pub async fn trim_history(pool: &PgPool, keep: Duration) -> Result<HistoryTrimmed, sqlx::Error> {
    Ok(HistoryTrimmed {
        ledger: trim_ledger(pool, keep).await?,
        outbox: trim(
            pool,
            keep,
            "DELETE FROM job_outbox WHERE job_id IN
                 (SELECT job_id FROM job_outbox WHERE completed_at < $1 LIMIT 10000)",
        )
        .await?,
        cron_runs: trim(
            pool,
            keep,
            "DELETE FROM cron_runs WHERE id IN (SELECT id FROM cron_runs WHERE created_at < $1 LIMIT 10000)",
        )
        .await?,
    })
}

/// Runs `delete` (ten thousand rows older than the cutoff `$1` per call) until fewer than that go, at
/// most a thousand times. Returns how many went.
async fn trim(pool: &PgPool, keep: Duration, delete: &'static str) -> Result<u64, sqlx::Error> {
    let cutoff =
        Utc::now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(30));
    let mut removed = 0;
    for _ in 0..1_000 {
        let deleted = sqlx::query(delete)
            .bind(cutoff)
            .execute(pool)
            .await?
            .rows_affected();
        removed += deleted;
        if deleted < 10_000 {
            break;
        }
    }
    Ok(removed)
}
