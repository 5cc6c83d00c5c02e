//! `GET /ops/db`: the database at a glance — connections by state and this instance's pool, table and
//! index sizes, partitions with their row counts, the cache hit ratio, long-running transactions, waiting
//! locks, and the slowest statements from `pg_stat_statements` when the server has it.
//!
//! Everything comes from the statistics views and catalogs (no table is scanned), except the row count
//! of each default partition, counted exactly up to [`DEFAULT_ROWS_CAP`] since rows there are the ones
//! partition maintenance has to move. Other partitions show the statistics' live-row estimate.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{db_error, query};
use crate::error::ApiError;
use crate::state::AppState;

/// Default partitions are counted exactly up to this many rows.
pub const DEFAULT_ROWS_CAP: i64 = 100_000;

#[derive(Debug, Deserialize)]
pub struct DbQuery {
    /// Transactions open longer than this many seconds are listed (default 60).
    long_running_secs: Option<String>,
}

fn long_running_secs(raw: Option<&str>) -> Result<f64, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(60.0);
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=86_400).contains(&n) => Ok(f64::from(n)),
        _ => Err(ApiError::bad_request(
            "invalid_long_running_secs",
            "long_running_secs must be an integer from 1 to 86400",
        )),
    }
}

pub async fn overview(
    State(state): State<AppState>,
    params: Result<Query<DbQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let threshold = long_running_secs(params.long_running_secs.as_deref())?;
    let pool = &state.db;
    let options = pool.options();
    Ok(Json(json!({
        "database": current_database(pool).await.map_err(db_error)?,
        "connections": connections(pool).await.map_err(db_error)?,
        "pool": {
            "size": pool.size(),
            "idle": pool.num_idle(),
            "in_use": (pool.size() as usize).saturating_sub(pool.num_idle()),
            "max": options.get_max_connections(),
            "min": options.get_min_connections(),
        },
        "cache_hit_ratio": cache_hit_ratio(pool).await.map_err(db_error)?,
        "tables": tables(pool).await.map_err(db_error)?,
        "indexes": indexes(pool).await.map_err(db_error)?,
        "partitions": partitions(pool).await.map_err(db_error)?,
        "long_running_transactions": long_running(pool, threshold).await.map_err(db_error)?,
        "long_running_secs": threshold,
        "waiting_locks": waiting_locks(pool).await.map_err(db_error)?,
        "slow_statements": slow_statements(pool).await,
    })))
}

async fn current_database(pool: &PgPool) -> Result<Value, sqlx::Error> {
    let (name, version): (String, String) =
        sqlx::query_as("SELECT current_database()::text, current_setting('server_version')")
            .fetch_one(pool)
            .await?;
    Ok(json!({ "name": name, "server_version": version }))
}

async fn connections(pool: &PgPool) -> Result<Value, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND backend_type = 'client backend'
         GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    .fetch_all(pool)
    .await?;
    let (server_total, max): (i64, i32) = sqlx::query_as(
        "SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity
         WHERE backend_type = 'client backend'",
    )
    .fetch_one(pool)
    .await?;
    let by_state: Vec<Value> = rows
        .iter()
        .map(|(state, count)| json!({ "state": state, "count": count }))
        .collect();
    Ok(json!({
        "by_state": by_state,
        "database_total": rows.iter().map(|(_, n)| n).sum::<i64>(),
        "server_total": server_total,
        "max_connections": max,
    }))
}

async fn cache_hit_ratio(pool: &PgPool) -> Result<Value, sqlx::Error> {
    let (hit, read): (i64, i64) = sqlx::query_as(
        "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    let total = hit + read;
    Ok(if total == 0 {
        Value::Null
    } else {
        json!((hit as f64 / total as f64 * 10_000.0).round() / 10_000.0)
    })
}

/// The seed's table-size query (`pg_total_relation_size` per table, largest first), with partitioned
/// tables summed over their partitions (their own size is 0) and partitions folded into their parent.
async fn tables(pool: &PgPool) -> Result<Vec<Value>, sqlx::Error> {
    let rows: Vec<(String, bool, i64, i64, i64, f64)> = sqlx::query_as(
        "SELECT c.oid::regclass::text, c.relkind = 'p',
                sum(pg_total_relation_size(t.relid))::bigint,
                sum(pg_table_size(t.relid))::bigint,
                sum(pg_indexes_size(t.relid))::bigint,
                sum(greatest(tc.reltuples, 0))::float8
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN LATERAL pg_partition_tree(c.oid) t
         JOIN pg_class tc ON tc.oid = t.relid
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
         GROUP BY c.oid, c.relkind
         ORDER BY 3 DESC, 1 LIMIT 40",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(table, partitioned, total, data, index, rows)| {
            json!({
                "table": table,
                "partitioned": partitioned,
                "total_bytes": total,
                "table_bytes": data,
                "index_bytes": index,
                "rows_estimate": rows.round() as i64,
            })
        })
        .collect())
}

async fn indexes(pool: &PgPool) -> Result<Vec<Value>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT s.indexrelid::regclass::text, s.relid::regclass::text,
                pg_relation_size(s.indexrelid), s.idx_scan
         FROM pg_stat_user_indexes s
         ORDER BY 3 DESC, 1 LIMIT 40",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(index, table, bytes, scans)| {
            json!({ "index": index, "table": table, "bytes": bytes, "scans": scans })
        })
        .collect())
}

async fn partitions(pool: &PgPool) -> Result<Vec<Value>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Bounds of timestamptz partitions are shown in UTC, as they are made.
    sqlx::query("SET LOCAL TimeZone = 'UTC'")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(String, String, String, bool, i64, i64)> = sqlx::query_as(
        "SELECT p.partrelid::regclass::text, c.oid::regclass::text, pg_get_expr(c.relpartbound, c.oid),
                c.oid = p.partdefid, coalesce(s.n_live_tup, 0), pg_total_relation_size(c.oid)
         FROM pg_partitioned_table p
         JOIN pg_inherits i ON i.inhparent = p.partrelid
         JOIN pg_class c ON c.oid = i.inhrelid
         LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
         ORDER BY 1, 4, 3",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let policies: Vec<(String, i32, Option<i32>, String)> = sqlx::query_as(
        "SELECT table_name, premake_months, retention_months, retention_action FROM partitioned_tables",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let mut out: Vec<Value> = Vec::new();
    for (parent, partition, bounds, is_default, live, bytes) in rows {
        let (rows, exact) = if is_default {
            let sql = format!(
                "SELECT count(*) FROM (SELECT 1 FROM {partition} LIMIT {DEFAULT_ROWS_CAP}) x"
            );
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await?;
            (n, n < DEFAULT_ROWS_CAP)
        } else {
            (live, false)
        };
        let policy = policies.iter().find(|p| p.0 == parent).map(
            |p| json!({ "premake_months": p.1, "retention_months": p.2, "retention_action": p.3 }),
        );
        out.push(json!({
            "table": parent,
            "partition": partition,
            "bounds": bounds,
            "default": is_default,
            "rows": rows,
            "rows_exact": exact,
            "bytes": bytes,
            "policy": policy,
        }));
    }
    Ok(out)
}

type ActivityRow = (
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    f64,
    Option<String>,
    Option<String>,
);

async fn long_running(pool: &PgPool, threshold_secs: f64) -> Result<Vec<Value>, sqlx::Error> {
    let rows: Vec<ActivityRow> = sqlx::query_as(
        "SELECT pid, usename::text, application_name, state, xact_start,
                extract(epoch FROM now() - xact_start)::float8,
                wait_event_type || ':' || wait_event, left(query, 300)
         FROM pg_stat_activity
         WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
           AND now() - xact_start > make_interval(secs => $1)
         ORDER BY xact_start LIMIT 50",
    )
    .bind(threshold_secs)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(pid, user, app, state, started, age, wait, query)| {
            json!({
                "pid": pid, "user": user, "application": app, "state": state,
                "xact_start": started, "age_secs": (age * 10.0).round() / 10.0,
                "wait_event": wait, "query": query,
            })
        })
        .collect())
}

type LockRow = (
    i32,
    String,
    String,
    Option<String>,
    f64,
    Vec<i32>,
    Option<String>,
);

async fn waiting_locks(pool: &PgPool) -> Result<Vec<Value>, sqlx::Error> {
    let rows: Vec<LockRow> = sqlx::query_as(
        "SELECT l.pid, l.locktype, l.mode, l.relation::regclass::text,
                coalesce(extract(epoch FROM now() - a.state_change), 0)::float8,
                pg_blocking_pids(l.pid), left(a.query, 300)
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE NOT l.granted
         ORDER BY a.state_change LIMIT 50",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(pid, locktype, mode, relation, waiting, blocked_by, query)| {
                json!({
                    "pid": pid, "lock_type": locktype, "mode": mode, "relation": relation,
                    "waiting_secs": (waiting * 10.0).round() / 10.0, "blocked_by": blocked_by,
                    "query": query,
                })
            },
        )
        .collect())
}

/// query, calls, total ms, mean ms, rows.
type StatementRow = (Option<String>, i64, f64, f64, i64);

/// The slowest statements by mean time, or why they are not available (the extension is missing in this
/// database, or the server does not preload its library). Never an error: the rest of the page stands.
async fn slow_statements(pool: &PgPool) -> Value {
    let unavailable = |reason: String| json!({ "available": false, "reason": reason, "items": [] });
    let schema: Option<String> = match sqlx::query_scalar(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements'",
    )
    .fetch_optional(pool)
    .await
    {
        Ok(schema) => schema,
        Err(err) => return unavailable(format!("cannot read pg_extension: {err}")),
    };
    let Some(schema) = schema else {
        return unavailable(
            "the pg_stat_statements extension is not installed in this database \
             (it needs shared_preload_libraries = 'pg_stat_statements' and CREATE EXTENSION)"
                .into(),
        );
    };
    let sql = format!(
        "SELECT left(query, 500), calls, total_exec_time, mean_exec_time, rows
         FROM \"{}\".pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         ORDER BY mean_exec_time DESC LIMIT 20",
        schema.replace('"', "\"\"")
    );
    let rows: Result<Vec<StatementRow>, _> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await;
    match rows {
        Ok(rows) => {
            let items: Vec<Value> = rows
                .into_iter()
                .map(|(query, calls, total, mean, rows)| {
                    json!({
                        "query": query, "calls": calls,
                        "total_ms": (total * 100.0).round() / 100.0,
                        "mean_ms": (mean * 1000.0).round() / 1000.0, "rows": rows,
                    })
                })
                .collect();
            json!({ "available": true, "reason": null, "items": items })
        }
        Err(sqlx::Error::Database(err)) => unavailable(err.message().to_owned()),
        Err(err) => unavailable(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::long_running_secs;

    #[test]
    fn the_long_running_threshold_is_validated() {
        assert_eq!(long_running_secs(None).unwrap(), 60.0);
        assert_eq!(long_running_secs(Some("")).unwrap(), 60.0);
        assert_eq!(long_running_secs(Some("5")).unwrap(), 5.0);
        for bad in ["0", "-1", "x", "86401"] {
            assert!(long_running_secs(Some(bad)).is_err(), "{bad}");
        }
    }
}
