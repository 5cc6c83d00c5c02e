//! Queue depth, throughput and pause/resume.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, DurationRound, Utc};
use mingus_common::jobs::Enqueuer;
use mingus_common::queue::Queue;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::actor::Actor;
use super::{actions, audit, db_error, query, queue_param, queue_path, redis_error};
use crate::error::ApiError;
use crate::state::AppState;

/// The ledger aggregates are recomputed at most this often.
const MINUTES_TTL: Duration = Duration::from_secs(3);

/// What Redis says about one queue.
pub struct Depth {
    pub queue: Queue,
    pub waiting: u64,
    pub delayed: u64,
    pub in_flight: u64,
    pub paused: bool,
    pub oldest_pushed_ms: Option<i64>,
    /// Registered workers and their last heartbeat (seconds).
    pub workers: Vec<(String, f64)>,
    /// Jobs each of those workers holds.
    pub busy: Vec<u64>,
}

fn value<T: redis::FromRedisValue>(
    values: &mut impl Iterator<Item = redis::Value>,
) -> anyhow::Result<T> {
    let raw = values
        .next()
        .ok_or_else(|| anyhow::anyhow!("short pipeline reply"))?;
    Ok(redis::from_redis_value(raw)?)
}

/// Every queue's depth in two round trips: counts, heads, pause flags and workers; then the heads' push
/// times and each worker's in-flight set.
pub async fn redis_depths(enqueuer: &Enqueuer) -> anyhow::Result<Vec<Depth>> {
    let mut conn = enqueuer.connection();
    let mut pipe = redis::pipe();
    for queue in Queue::ALL {
        let keys = enqueuer.keys(queue);
        pipe.llen(keys.active())
            .zcard(keys.delayed())
            .lindex(keys.active(), 0)
            .exists(keys.paused())
            .zrange_withscores(keys.workers(), 0, -1);
    }
    let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
    let mut replies = replies.into_iter();
    let mut depths = Vec::with_capacity(Queue::ALL.len());
    let mut heads = Vec::new();
    for queue in Queue::ALL {
        let waiting: u64 = value(&mut replies)?;
        let delayed: u64 = value(&mut replies)?;
        let head: Option<String> = value(&mut replies)?;
        let paused: bool = value(&mut replies)?;
        let workers: Vec<(String, f64)> = value(&mut replies)?;
        heads.push(head);
        depths.push(Depth {
            queue,
            waiting,
            delayed,
            in_flight: 0,
            paused,
            oldest_pushed_ms: None,
            workers,
            busy: Vec::new(),
        });
    }
    let mut pipe = redis::pipe();
    for (depth, head) in depths.iter().zip(&heads) {
        let keys = enqueuer.keys(depth.queue);
        if let Some(id) = head {
            pipe.hget(keys.meta(id), "pushed_at");
        }
        for (worker, _) in &depth.workers {
            pipe.scard(format!("{}:{worker}", keys.inflight_prefix()));
        }
    }
    // Redis refuses an empty pipeline (no waiting job and no worker anywhere).
    let replies: Vec<redis::Value> = if pipe.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(&mut conn).await?
    };
    let mut replies = replies.into_iter();
    for (depth, head) in depths.iter_mut().zip(&heads) {
        if head.is_some() {
            depth.oldest_pushed_ms = value(&mut replies)?;
        }
        for _ in 0..depth.workers.len() {
            depth.busy.push(value(&mut replies)?);
        }
        depth.in_flight = depth.busy.iter().sum();
    }
    Ok(depths)
}

/// Open dead letters per queue.
pub async fn dead_counts(pool: &PgPool) -> Result<HashMap<Queue, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT queue, count(*) FROM job_dead_letters WHERE retried_at IS NULL GROUP BY queue",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, n)| name.parse().ok().map(|q| (q, n)))
        .collect())
}

/// Runs finished in one minute of the last hour, for one queue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MinuteRow {
    queue: String,
    minute: DateTime<Utc>,
    processed: i64,
    failed: i64,
    processed_5m: i64,
    failed_5m: i64,
}

/// The last hour of the ledger, per queue and minute (cached for [`MINUTES_TTL`]).
async fn minutes(state: &AppState) -> Result<Arc<Vec<MinuteRow>>, ApiError> {
    if let Some((at, rows)) = state.ops.minutes.lock().expect("not poisoned").as_ref()
        && at.elapsed() < MINUTES_TTL
    {
        return Ok(rows.clone());
    }
    let rows: Vec<MinuteRow> = sqlx::query_as(
        "SELECT queue, date_trunc('minute', finished_at) AS minute,
                count(*) AS processed,
                count(*) FILTER (WHERE status <> 'succeeded') AS failed,
                count(*) FILTER (WHERE finished_at > now() - interval '5 minutes') AS processed_5m,
                count(*) FILTER (WHERE finished_at > now() - interval '5 minutes' AND status <> 'succeeded') AS failed_5m
         FROM job_runs WHERE finished_at > now() - interval '60 minutes'
         GROUP BY 1, 2",
    )
    .fetch_all(&state.db)
    .await
    .map_err(db_error)?;
    let rows = Arc::new(rows);
    *state.ops.minutes.lock().expect("not poisoned") = Some((Instant::now(), rows.clone()));
    Ok(rows)
}

#[derive(Debug, Default, Serialize)]
struct Window {
    processed: i64,
    failed: i64,
    per_minute: f64,
    failure_rate: f64,
}

impl Window {
    fn new(processed: i64, failed: i64, minutes: f64) -> Self {
        Window {
            processed,
            failed,
            per_minute: (processed as f64 / minutes * 100.0).round() / 100.0,
            failure_rate: if processed == 0 {
                0.0
            } else {
                (failed as f64 / processed as f64 * 10_000.0).round() / 10_000.0
            },
        }
    }
}

/// `GET /ops/queues`: depth, age of the oldest waiting job, dead letters, throughput, paused.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (depths, dead, minutes) = tokio::join!(
        redis_depths(&state.enqueuer),
        dead_counts(&state.db),
        minutes(&state)
    );
    let depths = depths.map_err(redis_error)?;
    let dead = dead.map_err(db_error)?;
    let minutes = minutes?;
    let now_ms = Utc::now().timestamp_millis();
    let queues: Vec<Value> = depths
        .iter()
        .map(|d| {
            let rows = minutes.iter().filter(|r| r.queue == d.queue.name());
            let (mut p5, mut f5, mut p60, mut f60) = (0, 0, 0, 0);
            for r in rows {
                p5 += r.processed_5m;
                f5 += r.failed_5m;
                p60 += r.processed;
                f60 += r.failed;
            }
            json!({
                "queue": d.queue.name(),
                "waiting": d.waiting,
                "delayed": d.delayed,
                "in_flight": d.in_flight,
                "dead": dead.get(&d.queue).copied().unwrap_or(0),
                "oldest_waiting_age_secs": d.oldest_pushed_ms.map(|ms| (now_ms - ms).max(0) as f64 / 1000.0),
                "paused": d.paused,
                "workers": d.workers.len(),
                "last_5m": Window::new(p5, f5, 5.0),
                "last_60m": Window::new(p60, f60, 60.0),
            })
        })
        .collect();
    Ok(Json(json!({ "queues": queues, "sampled_at": Utc::now() })))
}

#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    queue: Option<String>,
}

/// `GET /ops/stats?queue=`: runs per minute over the last 60 minutes (oldest first, zero-filled).
pub async fn stats(
    State(state): State<AppState>,
    params: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let queue = match params.queue.as_deref().filter(|q| !q.is_empty()) {
        Some(raw) => Some(queue_param(raw)?),
        None => None,
    };
    let rows = minutes(&state).await?;
    let now = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut buckets: Vec<(DateTime<Utc>, i64, i64)> = (0..60)
        .rev()
        .map(|ago| (now - chrono::Duration::minutes(ago), 0, 0))
        .collect();
    for row in rows.iter() {
        if queue.is_some_and(|q| q.name() != row.queue) {
            continue;
        }
        if let Some(bucket) = buckets.iter_mut().find(|b| b.0 == row.minute) {
            bucket.1 += row.processed - row.failed;
            bucket.2 += row.failed;
        }
    }
    let minutes: Vec<Value> = buckets
        .into_iter()
        .map(
            |(at, succeeded, failed)| json!({ "at": at, "succeeded": succeeded, "failed": failed }),
        )
        .collect();
    Ok(Json(json!({ "queue": queue, "minutes": minutes })))
}

/// Whether `queue` is paused now, for the audit row's `before` (`None` when Redis does not say).
async fn paused_now(enqueuer: &Enqueuer, queue: Queue) -> Option<bool> {
    let mut conn = enqueuer.connection();
    redis::cmd("EXISTS")
        .arg(enqueuer.keys(queue).paused())
        .query_async::<bool>(&mut conn)
        .await
        .ok()
}

/// Pauses or resumes `queue` and records it; a Redis error is recorded as a failed attempt, since a
/// command that timed out may still have been applied.
async fn set_paused(
    state: &AppState,
    actor: &Actor,
    raw: &str,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    let queue = queue_path(raw)?;
    let before = paused_now(&state.enqueuer, queue).await;
    let (action, result) = if paused {
        (actions::QUEUE_PAUSE, state.enqueuer.pause(queue).await)
    } else {
        (actions::QUEUE_RESUME, state.enqueuer.resume(queue).await)
    };
    let entry = audit::Entry {
        target: Some(queue.name().to_owned()),
        before: Some(json!({ "paused": before })),
        after: Some(json!({ "paused": paused })),
        failure: result.as_ref().err().map(|err| format!("{err:#}")),
    };
    audit::record_after(state, actor, action, entry).await;
    result.map_err(redis_error)?;
    tracing::info!(%queue, paused, operator = %actor.name, "queue paused or resumed by an operator");
    Ok(Json(json!({ "queue": queue, "paused": paused })))
}

/// `POST /ops/queues/{queue}/pause`: waiting jobs are held, in-flight ones finish.
pub async fn pause(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(queue): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &actor, &queue, true).await
}

/// `POST /ops/queues/{queue}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(queue): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &actor, &queue, false).await
}
