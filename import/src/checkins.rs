//! Moving the staged check-ins, the largest table by far, into the partitioned `user_health_checkins`.
//!
//! A month that has no partition yet (the history before the premade months: most of an import) is
//! built as its own table and attached (`partitions::create_and_attach`): the rows go in without
//! per-row index maintenance or foreign-key triggers, and attaching builds the indexes once and checks
//! the foreign key with one query. On this machine that made the 1,000-user move about 2.5 times
//! faster than inserting through the parent (docs/sqlite-import.md, "Benchmark"). Months that already
//! have a partition (the current and premade months, or history an earlier import created) take the
//! ordinary row path through the parent, and so does every month with `shape` None (`--online`: no
//! ACCESS EXCLUSIVE lock on the default partition while the move runs). Everything happens in the
//! caller's move transaction.

use chrono::{Months, NaiveDate};
use mingus_common::analytics::partitions::{self, Shape};
use sqlx::PgConnection;

use crate::spec::USER_HEALTH_CHECKINS as CHECKINS;

pub async fn move_checkins(
    tx: &mut PgConnection,
    schema: &str,
    columns: &str,
    shape: Option<&Shape>,
) -> anyhow::Result<u64> {
    let months: Vec<NaiveDate> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT date_trunc('month', checkin_date)::date FROM {schema}.{t} ORDER BY 1",
        t = CHECKINS.name
    )))
    .fetch_all(&mut *tx)
    .await?;
    let (bulk, _rows): (Vec<NaiveDate>, Vec<NaiveDate>) = months
        .into_iter()
        .partition(|month| shape.is_some_and(|shape| partitions::month_is_free(shape, *month)));
    let mut moved = 0;
    if let Some(shape) = shape {
        for month in &bulk {
            let fill = format!(
                "INSERT INTO public.\"{partition}\" ({columns}) SELECT {columns} FROM {schema}.{t}
                 WHERE checkin_date >= '{month}' AND checkin_date < '{end}'",
                partition = partitions::partition_name(CHECKINS.name, *month),
                t = CHECKINS.name,
                end = *month + Months::new(1),
            );
            let (_, filled) = partitions::create_and_attach(tx, shape, *month, Some(fill)).await?;
            moved += filled;
        }
    }
    // The rest through the parent, row by row.
    moved += sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO public.{t} ({columns}) SELECT {columns} FROM {schema}.{t}
         WHERE date_trunc('month', checkin_date)::date <> ALL($1)",
        t = CHECKINS.name
    )))
    .bind(&bulk)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(moved)
}
